"""Multi-task loss weighting (su_notes.optim.multitask_loss) against LibMTL 1.1.5, on `benchmarks/harness.py`.

One timed call = one training step's gradient computation from the forward pass to the shared parameters' `.grad`
(no optimizer step), float32, a shared MLP trunk (d → h → h, tanh) with T linear heads, batch 256:

- gradient-norm weighting: `grad_norm_weights` (T `autograd.grad` calls) + backward of Σ αᵢLᵢ, against DB-MTL with
  β = 0 (the same direction, shown in the notebook and the tests) run on LibMTL 1.1.5's per-task gradient
  machinery (`AbsWeighting._compute_grad` in 'backward' mode, which flattens every task's gradient into a
  (T, P) matrix on the CPU, then `_reset_grad`). LibMTL 1.1.5 has no `DB_MTL` class, so its update rule (log
  transform, max-norm rescaling) is written here on top of LibMTL's `AbsWeighting`; the directions are checked
  (1 − cosine < 1e-5) before timing. The two do not do identical work: ours also back-propagates the weighted
  loss into the heads, LibMTL's accumulates the heads' unweighted per-task gradients.
- uncertainty weighting: `UncertaintyWeighting` forward + backward against LibMTL's `UW.backward`.
- real-time weighting: `realtime_loss` + backward against the bare expression `(L / L.detach()).sum()` + backward
  (the cost of the argument checks).

    python benchmarks/bench_multitask_loss.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/multitask_loss-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # peers.load_submodule (LibMTL without torchvision)
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from peers import load_submodule  # noqa: E402
from su_notes.optim.multitask_loss import UncertaintyWeighting, grad_norm_weights, realtime_loss  # noqa: E402

POST = "optim/70_multitask_loss_weighting.ipynb"  # its post (under nbs/): run_all.py links the two

FULL = [(256, 256, 2), (256, 256, 4), (256, 256, 8), (256, 1024, 2), (256, 1024, 4), (256, 1024, 8)]
QUICK = [(64, 128, 2), (64, 128, 4)]
BATCH = 256


class Net(nn.Module):
    "Shared trunk d → h → h (tanh), T linear heads; `losses(x, Y)` gives the T per-task MSE losses."

    def __init__(self, d, h, T):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh())
        self.heads = nn.Linear(h, T)

    def losses(self, x, Y):
        return ((self.heads(self.trunk(x)).T - Y) ** 2).mean(1)


def db_mtl_beta0(model, T, device):
    "DB-MTL's update with β = 0 (Lin et al. 2023) on LibMTL 1.1.5's AbsWeighting gradient machinery."
    Abs = load_submodule("LibMTL.weighting.abstract_weighting").AbsWeighting

    class DBMTL0(Abs):
        def __init__(self):
            super().__init__()
            self.task_num, self.device, self.rep_grad = T, device, False

        def get_share_params(self):
            return model.trunk.parameters()

        def zero_grad_share_params(self):
            model.trunk.zero_grad(set_to_none=False)

        def backward(self, losses, **kwargs):
            self._compute_grad_dim()
            G = self._compute_grad(torch.log(losses + 1e-8), mode="backward")  # (T, P)
            n = G.norm(dim=-1)
            self._reset_grad(((n.max() / (n + 1e-8))[:, None] * G).sum(0))

    return DBMTL0()


def flat_trunk_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.trunk.parameters()])


def main(argv=None) -> str:
    p = bench_parser(__doc__, "small shapes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    UW = load_submodule("LibMTL.weighting.UW").UW

    res, labels = None, []
    for d, h, T in cases:
        torch.manual_seed(0)
        x = torch.randn(BATCH, d, device=device)
        Y = torch.randn(T, BATCH, device=device) * torch.logspace(-2, 2, T, device=device)[:, None]
        model = Net(d, h, T).to(device)
        for q in model.parameters():
            q.grad = torch.zeros_like(q)  # LibMTL's _reset_grad writes .grad
        trunk = list(model.trunk.parameters())
        n_params = sum(q.numel() for q in trunk)
        peer_db = db_mtl_beta0(model, T, device)
        peer_uw = UW()
        peer_uw.task_num, peer_uw.device = T, device
        peer_uw.init_param()
        ours_uw = UncertaintyWeighting(T, init=-0.5).to(device)

        def ours_gn():
            L = model.losses(x, Y)
            (grad_norm_weights(L, trunk) * L).sum().backward()

        def peer_gn():
            peer_db.backward(model.losses(x, Y))

        def ours_uwf():
            ours_uw(model.losses(x, Y)).backward()

        def peer_uwf():
            peer_uw.backward(model.losses(x, Y))

        def ours_rt():
            realtime_loss(model.losses(x, Y)).backward()

        def bare_rt():
            L = model.losses(x, Y)
            (L / L.detach()).sum().backward()

        # same direction before timing: DB-MTL(β=0) ∥ Σ gᵢ/‖gᵢ‖
        model.zero_grad(set_to_none=False)
        peer_gn()
        d_peer = flat_trunk_grad(model).clone()
        model.zero_grad(set_to_none=False)
        ours_gn()
        d_ours = flat_trunk_grad(model).clone()
        cos = torch.nn.functional.cosine_similarity(d_peer.double(), d_ours.double(), dim=0).item()
        assert 1 - cos < 1e-5, f"directions differ at d={d}, h={h}, T={T}: cosine {cos}"

        sl = f"h={h} T={T}"
        labels.append((d, h, T, n_params, sl, cos))
        res = interleaved(
            {
                "grad_norm_weights": ours_gn,
                "LibMTL DB-MTL(β=0)": peer_gn,
                "UncertaintyWeighting": ours_uwf,
                "LibMTL UW": peer_uwf,
                "realtime_loss": ours_rt,
                "bare L/sg(L)": bare_rt,
            },
            rounds=rounds,
            min_run_time=min_run_time,
            label="multi-task loss weighting, one step",
            sub_label=sl,
            rounds_out=res,
        )

    rows = [
        "| trunk (d → h → h), T tasks | shared params | grad-norm (ms) | DB-MTL(β=0) on LibMTL (ms) "
        "| ratio grad-norm | ratio UW | ratio real-time vs bare |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d, h, T, n_params, sl, cos in labels:
        rows.append(
            f"| {d} → {h} → {h}, T = {T} | {n_params:,} | {res.median_s('grad_norm_weights', sl) * 1e3:.2f} "
            f"| {res.median_s('LibMTL DB-MTL(β=0)', sl) * 1e3:.2f} "
            f"| {ratio_cell(res.ratio('grad_norm_weights', 'LibMTL DB-MTL(β=0)', sl))} "
            f"| {ratio_cell(res.ratio('UncertaintyWeighting', 'LibMTL UW', sl))} "
            f"| {ratio_cell(res.ratio('realtime_loss', 'bare L/sg(L)', sl))} |"
        )
    quick = " **quick run (small shapes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    worst = max(1 - c for *_, c in labels)
    md = "\n".join(
        [
            "### Multi-task loss weighting: `grad_norm_weights`, `UncertaintyWeighting`, `realtime_loss` vs "
            "LibMTL 1.1.5",
            "",
            machine_line(device),
            "",
            f"float32, batch {BATCH}; one call = forward + the weighting's backward into `.grad`; {rounds} interleaved "
            f"rounds of `blocked_autorange(min_run_time={min_run_time})`. DB-MTL(β=0) is LibMTL 1.1.5's `AbsWeighting` "
            f"gradient machinery with DB-MTL's rule (1.1.5 has no `DB_MTL`); its update is parallel to ours "
            f"(largest 1 − cosine {worst:.1e}).{quick}",
            "",
            *rows,
            "",
            "Ratio = our time / the peer's on the same model and batch: median (min–max) of the per-round ratios "
            "(< 1: ours faster). Grad-norm: ours takes T + 1 backward passes (T for the norms, one for Σ αᵢLᵢ), LibMTL "
            "T, but it copies each task's gradient into a flat CPU vector and writes the combined gradient "
            "back. UW and real-time: the same arithmetic, so the "
            "ratio is the cost of our argument checks.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("multitask_loss", device, md)
    return md


if __name__ == "__main__":
    print(main())
