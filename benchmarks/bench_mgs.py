"""MGS candidate evaluation: `su_notes.optim.mgs.mgs_update` (one `torch.func.vmap` over `functional_call`) against
the paper's approach, one `copy.deepcopy` of the model per candidate with the perturbation added in place
(wellecks/mgs `perturb`), for K candidates of an MLP scored on the 0-1 error of a batch.

Both sides do the same work per step: draw K perturbations, evaluate the cost of θ + ε_k for each, and form the
weighted step. The baseline's weighting uses the same log-space formulas, so the ratio isolates how candidates are
evaluated (copies vs one batched call).

    python benchmarks/bench_mgs.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/mgs-<device>.md (unless --no-write).
"""

import copy
import sys
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.optim.mgs import (  # noqa: E402
    effective_sample_size,
    mgs_candidates,
    mgs_log_proposal,
    mgs_log_weights,
    mgs_update,
    weighted_mean,
)

POST = "optim/60_sampling_view.ipynb"  # its post (under nbs/): run_all.py links the two

FULL = [(64, 256, 8), (64, 256, 32), (256, 1024, 8), (256, 1024, 32)]  # (input dim, hidden, K)
QUICK = [(64, 128, 8), (64, 128, 16)]
SIGMA, BETA, BATCH = 0.01, 100.0, 512


def copies_step(model, x, y, grad, k, generator):
    "The paper's structure: deepcopy per candidate, add ε in place, forward each copy."
    direction = -grad
    eps = mgs_candidates(direction, k, SIGMA, generator)
    with torch.no_grad():
        c0 = (model(x).argmax(-1) != y).float().mean()
        costs = []
        for i in range(k):
            m = copy.deepcopy(model)
            offset = 0
            for p in m.parameters():
                p.add_(eps[i, offset : offset + p.numel()].view_as(p))
                offset += p.numel()
            costs.append((m(x).argmax(-1) != y).float().mean())
        lw = mgs_log_weights(torch.stack(costs) - c0, mgs_log_proposal(eps, direction, SIGMA), BETA)
    return weighted_mean(eps, lw), effective_sample_size(lw)


def main(argv=None) -> str:
    p = bench_parser(__doc__, "small models, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)

    res, labels = None, []
    for d_in, hidden, k in cases:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, 10)).to(device)
        x = torch.randn(BATCH, d_in, device=device)
        y = torch.randint(10, (BATCH,), device=device)
        P = sum(q.numel() for q in model.parameters())
        grad = torch.randn(P, device=device) / P**0.5
        cost = lambda prm: (functional_call(model, prm, (x,)).argmax(-1) != y).float().mean()
        # same step from both before timing: same noise (same generator seed), same weights
        a_ = mgs_update(model, cost, grad, k, SIGMA, BETA, generator=torch.Generator(device).manual_seed(1))
        b_ = copies_step(model, x, y, grad, k, torch.Generator(device).manual_seed(1))
        torch.testing.assert_close(a_.delta, b_[0], rtol=1e-4, atol=1e-6)
        sl = f"{d_in}→{hidden}→10, P = {P}, K = {k}"
        labels.append(sl)
        g1, g2 = torch.Generator(device).manual_seed(2), torch.Generator(device).manual_seed(2)
        res = interleaved(
            {
                "vmap": lambda: mgs_update(model, cost, grad, k, SIGMA, BETA, generator=g1),
                "deepcopy": lambda: copies_step(model, x, y, grad, k, g2),
            },
            rounds=rounds,
            min_run_time=min_run_time,
            label="MGS step: vmap vs per-candidate copies",
            sub_label=sl,
            rounds_out=res,
        )
    rows = [
        "| model, candidates | vmap step (ms) | deepcopy step (ms) | vmap / deepcopy |",
        "|---|---:|---:|---:|",
    ]
    for sl in labels:
        rows.append(
            f"| {sl} | {res.median_s('vmap', sl) * 1e3:.2f} | {res.median_s('deepcopy', sl) * 1e3:.2f} "
            f"| {ratio_cell(res.ratio('vmap', 'deepcopy', sl))} |"
        )
    quick = " **quick run (small models, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### MGS: candidates by `torch.func.vmap` vs one model copy per candidate",
            "",
            machine_line(device),
            "",
            f"float32, batch {BATCH}, 0-1 cost, σ = {SIGMA}, β = {BETA}; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            *rows,
            "",
            "Ratio = time of one `mgs_update` / time of the same step with a `copy.deepcopy` of the model per "
            "candidate "
            "(the paper's `perturb`): median (min–max) of the per-round ratios (< 1: vmap faster). Both "
            "produce the same "
            "step (asserted before timing).",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("mgs", device, md)
    return md


if __name__ == "__main__":
    print(main())
