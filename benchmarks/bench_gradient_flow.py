"""Throughput of the Wasserstein-gradient-flow particle steps (su_notes.dynamics.gradient_flow).

Target p: the 8-mode ring mixture of su_notes.core in 2-D (exact score, float32). Tasks, timed by
`benchmarks/harness.py` in interleaved rounds:
- `score_p`: one evaluation of the target's score, the reference every step is divided by;
- `langevin_step`: one Euler–Maruyama step = one score evaluation + a Gaussian noise draw;
- `particle_ode_step` (Heun) with an analytic Gaussian score for q_t: two evaluations of each score per step;
- `particle_ode_step` with `gaussian_kde_score` (the O(n²) approximation used when q_t's score is unknown), small n.
There is no peer library for these steps, so the ratios are against the score evaluation they are built from.

    python benchmarks/bench_gradient_flow.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/gradient_flow-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.core import GaussianMixture, make_gaussian_mixture_2d  # noqa: E402
from su_notes.dynamics.gradient_flow import gaussian_kde_score, langevin_step, particle_ode_step  # noqa: E402

POST = "dynamics/10_gradient_flow.ipynb"  # its post (under nbs/): run_all.py links the two


def main(argv=None) -> str:
    p = bench_parser(__doc__, "n in {1e3, 1e4}, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    sizes = [1_000, 10_000] if a.quick else [1_000, 10_000, 100_000]
    kde_sizes = [300] if a.quick else [300, 1_000]
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.4)

    ring = make_gaussian_mixture_2d("ring", dtype=torch.float32)
    gm = GaussianMixture(ring.weights.to(device), ring.means.to(device), ring.covs.to(device))
    score_q = lambda x, t: -x / 4.0  # q_t = N(0, 4 I): analytic and cheap
    kde_q = lambda x, t: gaussian_kde_score(x, 0.3)
    gen = torch.Generator(device=device).manual_seed(0)

    res = None
    for n in sizes:
        x = torch.randn(n, 2, generator=gen, device=device)
        res = interleaved(
            {
                "score_p": lambda x=x: gm.score(x),
                "langevin_step": lambda x=x: langevin_step(x, gm.score, 0.01, generator=gen),
                "particle_ode_step": lambda x=x: particle_ode_step(x, gm.score, score_q, 0.01, 0.0),
            },
            rounds=rounds,
            min_run_time=min_run_time,
            label="gradient-flow particle steps",
            sub_label=f"n={n}",
            rounds_out=res,
        )
    for n in kde_sizes:
        x = torch.randn(n, 2, generator=gen, device=device)
        res = interleaved(
            {
                "score_p": lambda x=x: gm.score(x),
                "particle_ode_step, KDE score": lambda x=x: particle_ode_step(x, gm.score, kde_q, 0.01),
            },
            rounds=rounds,
            min_run_time=min_run_time,
            label="gradient-flow particle steps",
            sub_label=f"n={n} (KDE)",
            rounds_out=res,
        )

    rows = [
        "| n particles | `score_p` (particles·evals/s) | `langevin_step` (particles·steps/s) | vs score | "
        "`particle_ode_step`, analytic q (particles·steps/s) | vs score |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        sl = f"n={n}"
        rows.append(
            f"| {n:,} | {n / res.median_s('score_p', sl):,.0f} "
            f"| {n / res.median_s('langevin_step', sl):,.0f} "
            f"| {ratio_cell(res.ratio('langevin_step', 'score_p', sl))} "
            f"| {n / res.median_s('particle_ode_step', sl):,.0f} "
            f"| {ratio_cell(res.ratio('particle_ode_step', 'score_p', sl))} |"
        )
    kde_rows = [
        "| n particles | `particle_ode_step` with `gaussian_kde_score` (particles·steps/s) | vs score |",
        "|---:|---:|---:|",
    ]
    for n in kde_sizes:
        sl = f"n={n} (KDE)"
        kde_rows.append(
            f"| {n:,} | {n / res.median_s('particle_ode_step, KDE score', sl):,.0f} "
            f"| {ratio_cell(res.ratio('particle_ode_step, KDE score', 'score_p', sl))} |"
        )
    quick = " **quick run (smaller sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Gradient flow: particle steps (Langevin and the KL-flow ODE)",
            "",
            machine_line(device),
            "",
            f"2-D, float32, target = 8-mode ring mixture (exact score); {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            *rows,
            "",
            "“vs score” = time per step / time of one `score_p` evaluation on the same particles: median (min–max) of "
            "the per-round ratios. A Langevin step is one score evaluation plus a noise draw and two axpy's, so its "
            "ratio should be close to 1; the Heun ODE step evaluates `score_p` twice (and the cheap analytic `score_q` "
            "twice), so about 2× is its floor. Ratios well above those mean per-call overhead in the step itself.",
            "",
            *kde_rows,
            "",
            "With an estimated score (`gaussian_kde_score`) each ODE step builds an n × n kernel matrix twice, so the "
            "cost per particle grows with n; compare with the exact-score rows above. This is why the notebook keeps "
            "that experiment at a few hundred particles.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("gradient_flow", device, md)
    return md


if __name__ == "__main__":
    print(main())
