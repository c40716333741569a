"""Throughput of the Wasserstein-gradient-flow particle steps (su_notes.dynamics.gradient_flow), in particles·steps/s.

Target p: the 8-mode ring mixture of su_notes.core in 2-D (exact score, float32). Rows:
- `langevin_step`: one Euler–Maruyama step = one score evaluation + Gaussian noise;
- `particle_ode_step` (Heun) with an analytic Gaussian score for q_t: two evaluations of each score per step;
- the bare `score_p` evaluation, as the reference each step is divided by (the step's overhead over the score);
- `particle_ode_step` with `gaussian_kde_score` (the O(n²) approximation used when q_t's score is unknown), small n only.
Each timing is the median over blocks of several steps (CUDA: synchronised); there is no peer library for these steps,
so the ratios are against the score evaluation they are built from.

    python benchmarks/bench_gradient_flow.py [--device cpu|cuda] [--quick] [--budget-s 30] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/gradient_flow-<device>.md (the file `run_all.py` reads).
On a machine shared by many processes, `--threads 1` avoids measuring OpenMP oversubscription instead of the code.
"""
import argparse, os, statistics, sys, time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import machine_line  # noqa: E402
from su_notes.core import GaussianMixture, make_gaussian_mixture_2d  # noqa: E402
from su_notes.dynamics.gradient_flow import gaussian_kde_score, langevin_step, particle_ode_step  # noqa: E402


def _sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def time_interleaved(fns: dict, device, steps: int, blocks: int, deadline: float) -> dict:
    "Seconds per call of each fn, per block: every block times every fn once (`steps` calls), so load changes hit all alike."
    for fn in fns.values(): fn()                          # warm-up
    _sync(device)
    per = {k: [] for k in fns}
    for b in range(blocks):
        if b >= 2 and time.perf_counter() > deadline: break
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps): fn()
            _sync(device)
            per[k].append((time.perf_counter() - t0) / steps)
    return per


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quick", action="store_true", help="n in {1e3, 1e4}, fewer blocks")
    p.add_argument("--budget-s", type=float, default=30.0, help="stop adding blocks once this many seconds are spent")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--no-write", action="store_true", help="only print (the script otherwise writes results/)")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available(): p.error("--device cuda but CUDA is not available")
    if a.threads: torch.set_num_threads(a.threads)
    sizes = [1_000, 10_000] if a.quick else [1_000, 10_000, 100_000]
    blocks, steps = (3, 3) if a.quick else (5, 5)
    start = time.perf_counter()
    ring = make_gaussian_mixture_2d("ring", dtype=torch.float32)
    gm = GaussianMixture(ring.weights.to(device), ring.means.to(device), ring.covs.to(device))  # parameters on the device
    score_q = lambda x, t: -x / 4.0                       # q_t = N(0, 4 I): analytic, cheap
    gen = torch.Generator(device=device).manual_seed(0)
    rows = ["| n particles | score_p only (particles·evals/s) | `langevin_step` (particles·steps/s) | vs score | "
            "`particle_ode_step`, analytic q (particles·steps/s) | vs score |", "|---:|---:|---:|---:|---:|---:|"]
    for i, n in enumerate(sizes):
        deadline = start + a.budget_s * (i + 1) / (len(sizes) + 1)
        x = torch.randn(n, 2, generator=gen, device=device)
        per = time_interleaved({"score": lambda: gm.score(x),
                                "lan": lambda: langevin_step(x, gm.score, 0.01, generator=gen),
                                "ode": lambda: particle_ode_step(x, gm.score, score_q, 0.01, 0.0)}, device, steps, blocks, deadline)
        med = {k: statistics.median(v) for k, v in per.items()}
        ratio = {k: statistics.median(t / r for t, r in zip(per[k], per["score"])) for k in ("lan", "ode")}  # paired per block
        rows.append(f"| {n:,} | {n / med['score']:,.0f} | {n / med['lan']:,.0f} | {ratio['lan']:.2f}× | "
                    f"{n / med['ode']:,.0f} | {ratio['ode']:.2f}× |")
    kde_rows = ["| n particles | `particle_ode_step` with `gaussian_kde_score` (particles·steps/s) |", "|---:|---:|"]
    for n in (300, 1_000):
        x = torch.randn(n, 2, generator=gen, device=device)
        per = time_interleaved({"kde": lambda: particle_ode_step(x, gm.score, lambda y, t: gaussian_kde_score(y, 0.3), 0.01)},
                               device, max(1, steps // 2), blocks, start + a.budget_s)
        kde_rows.append(f"| {n:,} | {n / statistics.median(per['kde']):,.0f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    md = "\n".join([
        "### Gradient flow: particle steps (Langevin and the KL-flow ODE)", "",
        machine_line(device.type), "",
        f"2-D, float32, target = 8-mode ring mixture (exact score); median over {blocks} interleaved blocks of {steps} steps (fewer once the time budget is spent)"
        f"{' (--quick)' if a.quick else ''}; 1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores.", "",
        *rows, "",
        "“vs score” = time per step / time of one `score_p` evaluation on the same particles (median of per-block ratios). "
        "A Langevin step is one score evaluation plus a noise draw and two axpy's, so its ratio should be close to 1; the Heun "
        "ODE step evaluates `score_p` twice (and the cheap analytic `score_q` twice), so about 2× is its floor. Ratios well "
        "above those mean per-call overhead in the step itself.", "",
        *kde_rows, "",
        "With an estimated score (`gaussian_kde_score`) each ODE step builds an n × n kernel matrix twice, so the cost per "
        "particle grows with n (throughput ∝ 1/n once the pairwise term dominates the fixed per-call cost); compare with "
        "the exact-score rows above. This is why the notebook keeps that experiment at a few hundred particles.",
    ])
    if not a.no_write:
        out = HERE / "results" / f"gradient_flow-{device.type}.md"
        out.parent.mkdir(exist_ok=True); out.write_text(md + "\n", encoding="utf-8")
    return md


if __name__ == "__main__":
    print(main())
