"""Training throughput (images/s) of `su_notes.dynamics.SimSiam` + `simsiam_loss` against lightly's SimSiam recipe.

lightly 1.6.0 has no SimSiam model class; its SimSiam is a backbone followed by `SimSiamProjectionHead` and
`SimSiamPredictionHead` (lightly.models.modules.heads) trained with `NegativeCosineSimilarity` on
`p1, z2.detach()` and `p2, z1.detach()`, as in lightly's examples. lightly's `heads` module imports torchvision
(through `lightly.models.utils`, for `torchvision.ops.StochasticDepth`, which the SimSiam heads do not use), and
torchvision cannot be installed for this torch: a placeholder `torchvision.ops` with an empty `StochasticDepth` is
put in `sys.modules` only while lightly's modules are imported (a real torchvision is used when present). Both
models get the same backbone weights and head weights (copied with strict state-dict loading) and are checked to
give the same loss before timing.

Tasks, timed by `benchmarks/harness.py` in interleaved rounds: one training step = forward of both views through
backbone, projector and predictor, the symmetrised loss, backward and `torch.optim.SGD` (momentum 0.9) step; and
the loss alone (forward + backward of the four (b, d) tensors). Sizes: the digits setting of the notebook, a
mid-size head and the paper's head widths (d = 2048, predictor 512) on a 2048-wide MLP "backbone".

    python benchmarks/bench_simsiam.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/simsiam-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # peers: load_submodule, lightly_heads
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from peers import lightly_heads, load_submodule  # noqa: E402
from su_notes.dynamics.simsiam import SimSiam, simsiam_loss  # noqa: E402

POST = "dynamics/30_simsiam.ipynb"  # its post (under nbs/): run_all.py links the two

# (batch, input width, backbone width = projector hidden width, dim, pred_dim)
FULL = [(256, 64, 128, 64, 16), (256, 512, 512, 512, 128), (128, 2048, 2048, 2048, 512)]
QUICK = [(64, 64, 128, 64, 16), (64, 256, 256, 256, 64)]


def load_lightly():
    try:
        import torchvision  # noqa: F401  (a real one: import lightly normally)

        have_tv = True
    except ImportError:
        have_tv = False
    heads = lightly_heads()
    ncs = load_submodule("lightly.loss.negative_cosine_similarity").NegativeCosineSimilarity
    return heads, ncs, have_tv


def backbone(in_dim, width):
    return nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())


def build(case, device, heads, ncs):
    b, in_dim, width, dim, pred = case
    torch.manual_seed(0)
    ours = SimSiam(backbone(in_dim, width), dim=dim, pred_dim=pred).to(device)
    proj = heads.SimSiamProjectionHead(width, width, dim)
    pred_h = heads.SimSiamPredictionHead(dim, pred, dim)
    proj.layers.load_state_dict(ours.projector.state_dict(), strict=True)
    pred_h.layers.load_state_dict(ours.predictor.state_dict(), strict=True)
    bb = backbone(in_dim, width)
    bb.load_state_dict(ours.encoder.state_dict())
    theirs = nn.ModuleList([bb, proj, pred_h]).to(device)
    crit = ncs()
    gen = torch.Generator(device=device).manual_seed(1)
    x1, x2 = (torch.randn(b, in_dim, generator=gen, device=device) for _ in range(2))
    opt_o = torch.optim.SGD(ours.parameters(), lr=1e-3, momentum=0.9)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=1e-3, momentum=0.9)

    def their_loss():
        z1, z2 = proj(bb(x1)), proj(bb(x2))
        p1, p2 = pred_h(z1), pred_h(z2)
        return 0.5 * (crit(p1, z2.detach()) + crit(p2, z1.detach()))

    def step_ours():
        opt_o.zero_grad(set_to_none=True)
        simsiam_loss(*ours(x1, x2)).backward()
        opt_o.step()

    def step_theirs():
        opt_t.zero_grad(set_to_none=True)
        their_loss().backward()
        opt_t.step()

    with torch.no_grad():  # same model, same value, before timing (eval mode: no running-stat updates)
        ours.eval()
        theirs.eval()
        torch.testing.assert_close(simsiam_loss(*ours(x1, x2)), their_loss(), rtol=1e-4, atol=1e-5)
        ours.train()
        theirs.train()

    leaves = [torch.randn(b, dim, generator=gen, device=device).requires_grad_(True) for _ in range(4)]

    def loss_ours():
        simsiam_loss(*leaves).backward()

    def loss_theirs():
        p1, p2, z1, z2 = leaves
        (0.5 * (crit(p1, z2.detach()) + crit(p2, z1.detach()))).backward()

    return step_ours, step_theirs, loss_ours, loss_theirs


def main(argv=None) -> str:
    p = bench_parser(__doc__, "two small sizes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    heads, ncs, have_tv = load_lightly()

    res, labels = None, []
    for case in cases:
        step_o, step_t, loss_o, loss_t = build(case, device, heads, ncs)
        b, in_dim, width, dim, pred = case
        sl = f"b={b} in={in_dim} w={width} d={dim} k={pred}"
        labels.append((case, sl))
        res = interleaved(
            {
                "ours step": step_o,
                "lightly step": step_t,
                "ours loss": loss_o,
                "lightly loss": loss_t,
            },
            rounds=rounds,
            min_run_time=min_run_time,
            label="SimSiam training step",
            sub_label=sl,
            rounds_out=res,
        )

    rows = [
        "| batch, input, backbone/hidden width, d, predictor | ours (img/s) | lightly (img/s) | step ratio "
        "| loss fwd+bwd ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for (b, in_dim, width, dim, pred), sl in labels:
        rows.append(
            f"| {b}, {in_dim}, {width}, {dim}, {pred} | {b / res.median_s('ours step', sl):,.0f} "
            f"| {b / res.median_s('lightly step', sl):,.0f} "
            f"| {ratio_cell(res.ratio('ours step', 'lightly step', sl))} "
            f"| {ratio_cell(res.ratio('ours loss', 'lightly loss', sl))} |"
        )
    quick = " **quick run (small sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    tv_note = (
        "a real torchvision was importable"
        if have_tv
        else "lightly's heads imported with a placeholder `torchvision.ops` (torchvision is not installable here; "
        "the SimSiam heads do not use it)"
    )
    md = "\n".join(
        [
            "### SimSiam: training throughput vs lightly's SimSiam heads + `NegativeCosineSimilarity`",
            "",
            machine_line(device),
            "",
            f"One SGD step on two views (images/s = batch / step time); {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`; {tv_note}.{quick}",
            "",
            *rows,
            "",
            "Ratio = our time / lightly's time on the same model weights and inputs: median (min–max) of the per-round "
            "ratios (< 1: ours faster). The architectures are layer for layer the same, so a step ratio near 1 is the "
            "expected result; the loss column isolates `simsiam_loss` (own normalisation, argument checks) against "
            "`torch.nn.functional.cosine_similarity` inside lightly's loss.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("simsiam", device, md)
    return md


if __name__ == "__main__":
    print(main())
