"""Linear attention (su_notes.attention.linear) vs torch's fused `F.scaled_dot_product_attention`
(SDPA): forward time ratios and peak memory against the sequence length n, and the length from which
linear attention is faster.

Forms, all on q, k, v of shape (b, h, n, d) under `torch.no_grad()`:
  causal:     SDPA(is_causal=True) | linear_attention(causal=True) (chunked, C=64) | method="cumsum"
  non-causal: SDPA                 | linear_attention (elu+1 features)

Time: `harness.interleaved` per n (rounds of `Timer.blocked_autorange`, every task once per round in
shuffled order); each ratio against SDPA with the same masking is the median (min–max) of the
per-round ratios. CPU runs use one torch thread unless --threads (restored on return).

Peak memory: bytes allocated by one call on top of its inputs (the output included), measured once
per form and n before timing. CUDA: `torch.cuda.max_memory_allocated` after
`reset_peak_memory_stats`. CPU: torch 2.13 keeps no CPU allocator statistics (there is no
`torch.cpu.memory_allocated`) and `tracemalloc` does not see torch's allocator, so the call runs
under `torch.profiler` with `profile_memory=True` and the peak of the running sum of its
allocation/free events is taken. Kineto writes `USDT ... profiler_start/stop` lines straight to file
descriptor 2 on every profile; during the profiled call fd 2 is redirected to a temporary file, and
every line in it that is not one of those profiler lines is passed on to stderr afterwards (nothing
else is swallowed). The cumsum form stores n·D·e numbers per head; it is skipped where that size
exceeds --cumsum-max-gib.

    python benchmarks/bench_linear_attention.py [--device cpu|cuda] [--quick] [--max-n N]
                                                [--no-write]
prints the Markdown section and writes benchmarks/results/linear_attention-<device>.md (unless
--no-write).
"""

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import Rounds, interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from su_notes.attention.linear import DEFAULT_CHUNK_SIZE, linear_attention  # noqa: E402

POST = "attention/10_linear_attention.ipynb"  # its post (under nbs/): run_all.py links the two

PROFILER_LINES = ("USDT:", "STAGE:")  # kineto's own log lines on fd 2


@contextlib.contextmanager
def profiler_stderr_filtered():
    "Redirect fd 2 to a temporary file; afterwards pass its non-kineto lines on to stderr."
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if not line.startswith(PROFILER_LINES):
                    print(line, file=sys.stderr)


def peak_mib(fn, device: torch.device) -> float:
    "Peak bytes allocated during `fn()` above those allocated before it, in MiB (see the docstring)."
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profiler_stderr_filtered():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    )
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak / 2**20


def crossover(ns, ratio):
    "Smallest n from which the median ratio is < 1 at every larger measured n (or None)."
    for i, n in enumerate(ns):
        if all(ratio[m] is not None and ratio[m].median < 1 for m in ns[i:]):
            return n
    return None


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--quick",
        action="store_true",
        help="n up to 2048, fewer and shorter rounds (labelled quick)",
    )
    p.add_argument("--max-n", type=int, default=None, help="largest n (power-of-two grid from 256)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=64, help="d = e per head")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU torch threads (default 1); 0 keeps torch's default",
    )
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per n (default 5, quick 3)")
    p.add_argument(
        "--cumsum-max-gib",
        type=float,
        default=0.25,
        help="skip cumsum above this stored-state size",
    )
    p.add_argument("--no-write", action="store_true", help="only print (the script otherwise writes results/)")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if a.threads < 0:
        p.error(f"--threads must be >= 0, got {a.threads}")
    max_n = a.max_n or (2048 if a.quick else 16384)
    if max_n < 256:
        p.error(f"--max-n must be >= 256, got {max_n}")
    rounds = a.rounds or (3 if a.quick else 5)
    if rounds < 1:
        p.error(f"--rounds must be >= 1, got {rounds}")
    min_run_time = 0.05 if a.quick else 0.2
    ns = [256 * 2**i for i in range(20) if 256 * 2**i <= max_n]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    b, h, d = a.batch, a.heads, a.dim
    itemsize = torch.empty((), dtype=dtype).element_size()

    forms = {
        "sdpa_causal": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "chunked": lambda q, k, v: linear_attention(q, k, v, causal=True),
        "cumsum": lambda q, k, v: linear_attention(q, k, v, causal=True, method="cumsum"),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        "linear": lambda q, k, v: linear_attention(q, k, v),
    }
    baseline = {"chunked": "sdpa_causal", "cumsum": "sdpa_causal", "linear": "sdpa"}
    threads_before = torch.get_num_threads()
    if device.type == "cpu" and a.threads:
        torch.set_num_threads(a.threads)
    try:
        R, M = Rounds(), {f: {} for f in forms}
        ratios = {f: {} for f in baseline}
        g = torch.Generator(device=device).manual_seed(0)
        with torch.no_grad():
            for n in ns:
                q, k, v = (torch.randn(b, h, n, d, generator=g, device=device).to(dtype) for _ in range(3))
                tasks = {}
                for name, f in forms.items():
                    if name == "cumsum" and b * h * n * d * d * itemsize > a.cumsum_max_gib * 2**30:
                        M[name][n] = None
                        continue
                    tasks[name] = lambda f=f: f(q, k, v)
                    M[name][n] = peak_mib(tasks[name], device)
                interleaved(
                    tasks,
                    rounds=rounds,
                    min_run_time=min_run_time,
                    label="linear attention forward",
                    sub_label=f"n={n}",
                    rounds_out=R,
                )
                for name, base in baseline.items():
                    ratios[name][n] = R.ratio(name, base, f"n={n}") if name in tasks else None
                print(
                    f"n={n}: " + ", ".join(f"{f} {1e3 * R.median_s(f, f'n={n}'):.2f} ms" for f in tasks),
                    file=sys.stderr,
                    flush=True,
                )
        machine = machine_line(device)
    finally:
        torch.set_num_threads(threads_before)

    ms = lambda f, n: f"{1e3 * R.median_s(f, f'n={n}'):.3g}"
    rc = lambda r: "skipped" if r is None else ratio_cell(r)
    mib = lambda x: "skipped" if x is None else f"{x:.3g}"
    C = DEFAULT_CHUNK_SIZE
    quick = " **quick run** (small sizes, short rounds)." if a.quick else ""
    head_t = (
        f"| n | SDPA causal, ms | chunked C={C} / SDPA causal | cumsum / SDPA causal | SDPA, ms "
        "| linear / SDPA |\n|---:|---:|---:|---:|---:|---:|"
    )
    rows_t = [
        f"| {n} | {ms('sdpa_causal', n)} | {rc(ratios['chunked'][n])} | {rc(ratios['cumsum'][n])} | "
        f"{ms('sdpa', n)} | {rc(ratios['linear'][n])} |"
        for n in ns
    ]
    head_m = (
        f"| n | SDPA causal | linear causal, chunked C={C} | linear causal, cumsum | SDPA | linear |\n"
        "|---:|---:|---:|---:|---:|---:|"
    )
    rows_m = [f"| {n} | " + " | ".join(mib(M[f][n]) for f in forms) + " |" for n in ns]
    cc, cn = crossover(ns, ratios["chunked"]), crossover(ns, ratios["linear"])
    say = lambda c: f"n = {c}" if c else f"none up to n = {ns[-1]}"
    over = [n for n in ns if M["chunked"][n] > M["sdpa_causal"][n]]
    md = [
        "### Linear attention vs `F.scaled_dot_product_attention`",
        "",
        f"{machine}; {str(dtype).replace('torch.', '')}; b={b}, h={h}, d=e={d}; elu+1 features; "
        f"forward under no_grad; {rounds} interleaved rounds of `blocked_autorange` "
        f"(min_run_time {min_run_time:g} s) per n.{quick}",
        "",
        "Time: SDPA's median in ms, and each linear form's time as a ratio to SDPA with the same masking, median "
        "(min–max) over the rounds; < 1 means linear attention is faster:",
        "",
        head_t,
        *rows_t,
        "",
        "Peak memory in MiB allocated by one call beyond its inputs (the output included; "
        + (
            "`torch.cuda.max_memory_allocated`"
            if device.type == "cuda"
            else "peak of the running sum of `torch.profiler` allocation events, `profile_memory=True`"
        )
        + f"); cumsum is skipped above {a.cumsum_max_gib:g} GiB of stored states:",
        "",
        head_m,
        *rows_m,
        "",
        f"**Crossover** (smallest n from which linear attention's median ratio is < 1 at every larger "
        f"measured n): causal, chunked vs SDPA causal: {say(cc)}; non-causal: {say(cn)}. "
        "**Memory**: chunked causal "
        + (
            "allocates at most what causal SDPA does at every measured n."
            if not over
            else "allocates more than causal SDPA at n = " + ", ".join(map(str, over)) + "."
        ),
        "",
        "```",
        R.compare("Compare (all rounds, times per call)"),
        "```",
    ]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    md = main()
    print(md)
    known = argparse.ArgumentParser(add_help=False)
    known.add_argument("--device", default="cpu")
    known.add_argument("--no-write", action="store_true")
    known = known.parse_known_args()[0]
    if not known.no_write:
        print("wrote", write_result("linear_attention", known.device, md), file=sys.stderr)
