"""Cost of a cascading-rejection (CR) discriminator head against a linear head, one discriminator step.

Task: one discriminator training step of a GAN discriminator = body forward on a real and a fake batch, head, hinge
loss, backward and a `torch.optim.Adam` step. The body is an MLP (input → width → width, ReLU); the head is either
`nn.Linear(width, 1, bias=False)` with the shared `su_notes.gan.toy.hinge_loss_d` (the baseline) or
`su_notes.gan.cascading.CascadingRejectionHead(width, N)` with `cr_hinge_loss_d`, for N = 1…8. A third variant,
"CR by recursion", scores the stages with the recursion written out (`rejection_residuals`, N full-size (b, d)
updates) instead of the library's triangular solve, to show what that choice buys. All heads see the same body
weights and batches; the N = 1 head is checked to give the linear head's loss before timing.

Reported: time of a CR step / time of a linear-head step, median (min–max) over interleaved rounds of
`torch.utils.benchmark` (benchmarks/harness.py), per size: the 8-Gaussian toy of the notebook (2 → 64 → 64, batch
256) and a wider body (512 → 512 → 512, batch 256). Expected: close to 1 (the head is a small part of the step).

    python benchmarks/bench_cascading.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/cascading-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import (  # noqa: E402
    bench_parser,
    interleaved,
    machine_line,
    parse_bench_args,
    ratio_cell,
    write_result,
)
from su_notes.gan.cascading import CascadingRejectionHead, cr_hinge_loss_d, rejection_residuals  # noqa: E402
from su_notes.gan.toy import hinge_loss_d  # noqa: E402

POST = "gan/20_cascading_rejection.ipynb"  # its post (under nbs/): run_all.py links the two

# (batch, input width, body width)
FULL = [(256, 2, 64), (256, 512, 512)]
QUICK = [(64, 2, 32)]
STAGES_FULL, STAGES_QUICK = (1, 2, 4, 8), (1, 4)


class RecursionHead(nn.Module):
    "CR head scored through the written-out recursion: D_k = ⟨v_k, w_k⟩ from `rejection_residuals`."

    def __init__(self, head: CascadingRejectionHead):
        super().__init__()
        self.weight = head.weight

    def forward(self, v):
        return torch.einsum("kbd,kd->kb", rejection_residuals(v, self.weight)[:-1], self.weight)


def body(in_dim, width):
    return nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())


def make_step(case, head_kind, n_stages, device):
    b, in_dim, width = case
    torch.manual_seed(0)
    net_body = body(in_dim, width)
    if head_kind == "linear":
        head, loss = nn.Sequential(nn.Linear(width, 1, bias=False), nn.Flatten(0)), hinge_loss_d
    else:
        torch.manual_seed(1)
        cr = CascadingRejectionHead(width, n_stages)
        head, loss = (cr if head_kind == "cr" else RecursionHead(cr)), cr_hinge_loss_d
    net = nn.Sequential(net_body, head).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.5, 0.9))
    gen = torch.Generator(device=device).manual_seed(2)
    real, fake = (torch.randn(b, in_dim, generator=gen, device=device) for _ in range(2))

    def step():
        opt.zero_grad(set_to_none=True)
        loss(net(real), net(fake)).backward()
        opt.step()

    return step, net, loss, real, fake


def check_one_stage(case, device):
    "The N = 1 CR head with the linear head's weight gives the linear head's loss."
    _, lin, lin_loss, real, fake = make_step(case, "linear", 1, device)
    _, cr, cr_loss, _, _ = make_step(case, "cr", 1, device)
    with torch.no_grad():
        cr[1].weight.copy_(lin[1][0].weight)
        torch.testing.assert_close(cr_loss(cr(real), cr(fake)), lin_loss(lin(real), lin(fake)), rtol=1e-5, atol=1e-6)


def main(argv=None) -> str:
    p = bench_parser(__doc__, "one small size, N in {1, 4}, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    cases, stages = (QUICK, STAGES_QUICK) if a.quick else (FULL, STAGES_FULL)
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.2)
    res, rows = None, []
    for case in cases:
        check_one_stage(case, device)
        sl = "b={} in={} width={}".format(*case)
        tasks = {"linear": make_step(case, "linear", 1, device)[0]}
        for n in stages:
            tasks[f"CR N={n}"] = make_step(case, "cr", n, device)[0]
            tasks[f"CR recursion N={n}"] = make_step(case, "recursion", n, device)[0]
        res = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            label="discriminator step",
            sub_label=sl,
            rounds_out=res,
        )
        for n in stages:
            rows.append(
                f"| {case[0]}, {case[1]}, {case[2]} | {n} | {res.median_s('linear', sl) * 1e6:,.0f} "
                f"| {ratio_cell(res.ratio(f'CR N={n}', 'linear', sl))} "
                f"| {ratio_cell(res.ratio(f'CR recursion N={n}', 'linear', sl))} |"
            )
    quick = " **quick run (small size, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Cascading rejection: discriminator step, CR head vs linear head",
            "",
            machine_line(device),
            "",
            f"One Adam step of an MLP discriminator on a real and a fake batch with the hinge loss; {rounds} "
            "interleaved "
            f"rounds of `blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            "| batch, input, width | N | linear head step (µs) | CR / linear | CR by recursion / linear |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            "Ratio = step time with the CR head / step time with `nn.Linear(width, 1, bias=False)` on the same "
            "body and "
            "batches: median (min–max) of the per-round ratios. 'CR' is the library's triangular-solve form; 'CR by "
            "recursion' forms the N remainders v_k explicitly (N full-size (b, width) updates). At the toy's sizes "
            "every op is overhead-bound, so extra head ops show as a visible fraction of a tiny step.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("cascading", device, md)
    return md


if __name__ == "__main__":
    print(main())
