"""Benchmark `su_notes.smoothing.smooth_max` against `torch.logsumexp` (its peer), in one process.

smooth_max(x, tau) computes tau·logsumexp(x/tau) with its own max-shift; the peer is `tau * torch.logsumexp(x / tau, dim)`,
i.e. the same function written with PyTorch's fused kernel. Reported: median time per call of each and the ratio of
medians (ours / peer; < 1 means faster), forward only and forward + backward.

    python benchmarks/bench_smoothing.py [--device cpu|cuda] [--quick] [--threads N]

As a script it prints the Markdown section and writes it to benchmarks/results/smoothing-<device>.md (the file name
`benchmarks/run_all.py` collects into the Benchmarks page).
"""
import argparse, os, platform, statistics, sys, time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from su_notes.smoothing import smooth_max  # noqa: E402

FULL_SHAPES = [(4096, 64), (1024, 1024), (64, 16384), (8, 262144)]
QUICK_SHAPES = [(1024, 64), (256, 1024)]


def _sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def _median_times(fns, device, repeats, target=0.02):
    """Median over `repeats` rounds of the mean time per call, for each of `fns` (name -> callable), in seconds.
    Each round times every function in turn (interleaved), so load drifts hit ours and the peer alike."""
    numbers = {k: _calibrate(f, device, target) for k, f in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(numbers[k]): f()
            _sync(device)
            times[k].append((time.perf_counter() - t0) / numbers[k])
    return {k: statistics.median(v) for k, v in times.items()}


def _calibrate(fn, device, target=0.02):
    "Calls per timing block so that one block takes about `target` seconds (after one warm-up call)."
    fn(); _sync(device)
    t0 = time.perf_counter(); fn(); _sync(device); dt = max(time.perf_counter() - t0, 1e-6)
    return max(1, min(1000, int(target / dt)))


def _machine(device):
    if device.type == "cuda": return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"): cpu = line.split(":", 1)[1].strip(); break
    except OSError: pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def _parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--quick", action="store_true", help="two small shapes, fewer repeats")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for CPU runs (default: torch's choice)")
    return p


def main(argv=None) -> str:
    "Run the benchmark; returns a Markdown section (### heading, device/torch line, table)."
    p = _parser()
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if a.threads is not None:
        if a.threads < 1: p.error(f"--threads must be >= 1, got {a.threads}")
        torch.set_num_threads(a.threads)
    if device.type == "cuda" and not torch.cuda.is_available(): p.error("--device cuda but CUDA is not available")
    shapes, repeats = (QUICK_SHAPES, 5) if a.quick else (FULL_SHAPES, 9)
    tau, dtype = 0.5, torch.float32
    g = torch.Generator().manual_seed(0)

    rows = []
    for shape in shapes:
        x = (torch.randn(shape, generator=g) * 3).to(device=device, dtype=dtype)
        xg = x.clone().requires_grad_()
        ours = lambda: smooth_max(x, tau)
        peer = lambda: tau * torch.logsumexp(x / tau, -1)
        torch.testing.assert_close(ours(), peer(), rtol=1e-5, atol=1e-5)  # same function before timing it

        def ours_fb(): smooth_max(xg, tau).sum().backward(); xg.grad = None
        def peer_fb(): (tau * torch.logsumexp(xg / tau, -1)).sum().backward(); xg.grad = None

        rows.append((shape, _median_times(dict(ours=ours, peer=peer, ours_fb=ours_fb, peer_fb=peer_fb), device, repeats)))

    lines = [
        "### Smoothing: `smooth_max` vs `torch.logsumexp`",
        "",
        f"{device.type}: {_machine(device)}; torch {torch.__version__}; float32, tau = {tau}, reduction over the last axis; "
        f"median of {repeats} interleaved timing rounds{' (--quick)' if a.quick else ''}.",
        "",
        "| shape (rows, n) | smooth_max fwd (µs) | tau·torch.logsumexp fwd (µs) | ratio fwd | ratio fwd+bwd |",
        "|---|---:|---:|---:|---:|",
    ]
    for shape, r in rows:
        lines.append(f"| {shape[0]} × {shape[1]} | {r['ours'] * 1e6:.1f} | {r['peer'] * 1e6:.1f} | "
                     f"{r['ours'] / r['peer']:.2f} | {r['ours_fb'] / r['peer_fb']:.2f} |")
    lines += ["", "Ratio = median time of `smooth_max` / median time of the peer on the same input (< 1: ours faster). "
              "`smooth_max` is written from elementwise ops (shift by the detached max, exp, sum, log), so it makes several "
              "passes over memory where `torch.logsumexp` makes fewer; the ratio measures that cost."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    md = main()
    print(md)
    out = HERE / "results" / f"smoothing-{torch.device(_parser().parse_args().device).type}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(md, encoding="utf-8")
    print("wrote", out)
