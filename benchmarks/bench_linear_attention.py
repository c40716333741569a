"""Linear attention (su_notes.attention.linear) vs torch's fused `F.scaled_dot_product_attention` (SDPA): forward time
and peak memory against the sequence length n, and the length from which linear attention is faster.

Forms, all on q, k, v of shape (b, h, n, d) under `torch.no_grad()`:
  causal:     SDPA(is_causal=True)  |  linear_attention(causal=True) (chunked, C=64)  |  method="cumsum"
  non-causal: SDPA                  |  linear_attention (elu+1 features)
Time: median of repeats after a warm-up call (the memory measurement) (CUDA: synchronised); CPU runs use one torch thread unless --threads. Peak memory: bytes allocated by the call on top
of its inputs; on CUDA `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`; on CPU the running sum of
the allocation/free events that `torch.profiler` records with `profile_memory=True` (the CPU allocator has no peak
counter, and process RSS does not shrink when torch frees memory, so RSS deltas would overstate later sizes).
The cumsum form stores n·D·e numbers per head; it is skipped where its analytic size exceeds --cumsum-max-gib.

    python benchmarks/bench_linear_attention.py [--device cpu|cuda] [--quick] [--max-n N]
prints the Markdown section and writes benchmarks/results/linear_attention-<device>.md (the file `run_all.py` reads).
"""
import argparse, statistics, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import machine_line  # noqa: E402
from su_notes.attention.linear import DEFAULT_CHUNK_SIZE, linear_attention  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda": torch.cuda.synchronize(device)


def time_ms(fn, device, repeats: int, budget_s: float) -> float:
    "Median wall time of `fn()` in ms over up to `repeats` runs (at least 3, fewer budget permitting); warm `fn` up first."
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter(); fn(); _sync(device)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def peak_mib(fn, device) -> float:
    "Peak bytes allocated during `fn()` above what was allocated before it, in MiB."
    if device.type == "cuda":
        _sync(device); torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn(); _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes(); peak = max(peak, cur)
    return peak / 2**20


def crossover(ns, linear, sdpa):
    "Smallest n from which linear is faster at every measured length, or None."
    for i, n in enumerate(ns):
        if all(linear[m] is not None and linear[m] < sdpa[m] for m in ns[i:]): return n
    return None


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quick", action="store_true", help="n up to 4096, fewer repeats")
    p.add_argument("--max-n", type=int, default=None, help="largest n (power-of-two grid from 256)")
    p.add_argument("--batch", type=int, default=1); p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=64, help="d = e per head")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU torch threads (default 1: on shared machines multi-threaded timings are scheduling noise); "
                        "0 keeps torch's default")
    p.add_argument("--cumsum-max-gib", type=float, default=1.0, help="skip cumsum above this analytic state size")
    p.add_argument("--no-write", action="store_true", help="only print (the script otherwise writes results/)")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available(): p.error("--device cuda but CUDA is not available")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if a.threads < 0: p.error(f"--threads must be >= 0, got {a.threads}")
    if device.type == "cpu" and a.threads: torch.set_num_threads(a.threads)
    max_n = a.max_n or (4096 if a.quick else 16384)
    if max_n < 256: p.error(f"--max-n must be >= 256, got {max_n}")
    ns = [256 * 2**i for i in range(20) if 256 * 2**i <= max_n]
    repeats, budget = (3, 0.5) if a.quick else (7, 1.5)
    b, h, d = a.batch, a.heads, a.dim
    itemsize = torch.empty((), dtype=dtype).element_size()

    forms = {
        "sdpa_causal": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "chunked": lambda q, k, v: linear_attention(q, k, v, causal=True),
        "cumsum": lambda q, k, v: linear_attention(q, k, v, causal=True, method="cumsum"),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        "linear": lambda q, k, v: linear_attention(q, k, v),
    }
    T = {f: {} for f in forms}; M = {f: {} for f in forms}
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for n in ns:
            q, k, v = (torch.randn(b, h, n, d, generator=g, device=device).to(dtype) for _ in range(3))
            for name, f in forms.items():
                if name == "cumsum" and b * h * n * d * d * itemsize > a.cumsum_max_gib * 2**30:
                    T[name][n] = M[name][n] = None; continue
                call = lambda: f(q, k, v)
                M[name][n] = peak_mib(call, device)  # doubles as the warm-up call
                T[name][n] = time_ms(call, device, repeats, budget)
            print(f"n={n}: " + ", ".join(f"{k_} {T[k_][n]:.2f} ms" for k_ in forms if T[k_][n] is not None),
                  file=sys.stderr, flush=True)

    def cell(x, ref=None, unit=""):
        if x is None: return "skipped"
        return f"{x:.3g}{unit}" + (f" ({x / ref:.2f}×)" if ref else "")

    head = ("| n | SDPA causal | linear causal, chunked C={C} | linear causal, cumsum | SDPA | linear |\n"
            "|---:|---:|---:|---:|---:|---:|").format(C=DEFAULT_CHUNK_SIZE)
    rows_t = [f"| {n} | {cell(T['sdpa_causal'][n])} | {cell(T['chunked'][n], T['sdpa_causal'][n])} | "
              f"{cell(T['cumsum'][n], T['sdpa_causal'][n])} | {cell(T['sdpa'][n])} | {cell(T['linear'][n], T['sdpa'][n])} |"
              for n in ns]
    rows_m = [f"| {n} | " + " | ".join(cell(M[f][n]) for f in forms) + " |" for n in ns]
    cc = crossover(ns, T["chunked"], T["sdpa_causal"]); cn = crossover(ns, T["linear"], T["sdpa"])
    say = lambda c: f"n = {c}" if c else f"none up to n = {ns[-1]}"
    md = [
        "### Linear attention vs `F.scaled_dot_product_attention`", "",
        f"{machine_line(device.type)}; {str(dtype).replace('torch.', '')}; b={b}, h={h}, d=e={d}; elu+1 features; "
        f"forward under no_grad; time = median of up to {repeats} runs after a warm-up.", "",
        "Time in ms (ratio to SDPA with the same masking; < 1 means linear attention is faster):", "",
        head, *rows_t, "",
        "Peak memory in MiB allocated by the call beyond its inputs "
        + ("(`torch.cuda.max_memory_allocated`)" if device.type == "cuda" else
           "(running sum of `torch.profiler` allocation events, `profile_memory=True`)")
        + f"; cumsum is skipped above {a.cumsum_max_gib:g} GiB of stored states:", "",
        head, *rows_m, "",
        f"**Crossover** (smallest n from which linear attention is faster at every larger measured n): causal, chunked "
        f"vs SDPA causal: {say(cc)}; non-causal: {say(cn)}.",
    ]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    md = main()
    print(md)
    known = argparse.ArgumentParser(add_help=False)
    known.add_argument("--device", default="cpu"); known.add_argument("--no-write", action="store_true")
    known = known.parse_known_args()[0]
    if not known.no_write:
        out = HERE / "results" / f"linear_attention-{torch.device(known.device).type}.md"
        out.parent.mkdir(exist_ok=True)
        out.write_text(md, encoding="utf-8")
        print("wrote", out, file=sys.stderr)
