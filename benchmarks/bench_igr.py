"""Cost of a gradient-norm-penalised training step (su_notes.optim.igr) against a plain step.

One timed call = one full-batch SGD step of an MLP (tanh, float32, cross-entropy on random data):
  - `plain step`: `loss.backward()` and `p -= lr·p.grad` — the baseline every ratio is divided by;
  - `double_backward`: `modified_loss(closure, params, lr)` (L + (γ/4)‖∇L‖², `create_graph=True`), backward, update;
  - `finite_diff`: the same with `mode="finite_diff"` (one extra first-order gradient at θ + h·g/‖g‖);
  - `torch.func jvp`: the peer formulation of the same update, g + (γ/2)Hg with Hg by forward-over-reverse
    `torch.func.jvp(torch.func.grad(f))` over `functional_call` (no double backward, no finite difference).
Before timing, the three penalised updates are checked to agree (float32 tolerance) on the first step.
Sizes: (a) digits-sized, 64 → 256 → 256 → 10, batch 256; (b) 784 → 1024 → 1024 → 10, batch 512.
Ratios = task / plain step, median (min–max) of the per-round ratios of `harness.interleaved`.

    python benchmarks/bench_igr.py [--device cpu|cuda] [--quick] [--rounds N] [--no-write]
prints the Markdown section and writes benchmarks/results/igr-<device>.md (unless --no-write).
--quick: case (a) only at batch 64, 3 short rounds — labelled, a smoke test.
"""

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.optim.igr import modified_loss  # noqa: E402

POST = "optim/30_implicit_gradient_regularization.ipynb"  # its post (under nbs/): run_all.py links the two

LR = 0.05


def make_tasks(widths, batch, device):
    "name -> zero-argument training step on its own copy of one MLP; plus the parameter count."
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, widths[0], generator=g).to(device)
    y = torch.randint(0, widths[-1], (batch,), generator=g).to(device)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    torch.manual_seed(0)
    base = nn.Sequential(*layers[:-1]).to(device)

    def copy_model():
        m = nn.Sequential(
            *[type(l)(l.in_features, l.out_features) if isinstance(l, nn.Linear) else nn.Tanh() for l in base]
        ).to(device)
        m.load_state_dict(base.state_dict())
        return m

    def sgd(ps):
        with torch.no_grad():
            for p in ps:
                p.sub_(p.grad, alpha=LR)
                p.grad = None

    def plain_step(m, ps):
        F.cross_entropy(m(x), y).backward()
        sgd(ps)

    def penalised_step(m, ps, mode):
        modified_loss(lambda: F.cross_entropy(m(x), y), ps, LR, mode=mode).backward()
        sgd(ps)

    def func_step(m, ps, names):
        params = {n: p.detach() for n, p in zip(names, ps)}
        f = lambda pr: F.cross_entropy(torch.func.functional_call(m, pr, (x,)), y)
        grad = torch.func.grad(f)
        gr = grad(params)
        _, hg = torch.func.jvp(grad, (params,), (gr,))
        with torch.no_grad():
            for n, p in zip(names, ps):
                p.sub_(gr[n] + 0.5 * LR * hg[n], alpha=LR)  # θ -= γ(g + (γ/2)Hg)

    models = {k: copy_model() for k in ("plain", "double_backward", "finite_diff", "func")}
    ps = {k: list(m.parameters()) for k, m in models.items()}
    names = [n for n, _ in models["func"].named_parameters()]
    # one step each from the same θ: the three penalised updates agree
    check = {k: copy_model() for k in ("double_backward", "finite_diff", "func")}
    cps = {k: list(m.parameters()) for k, m in check.items()}
    penalised_step(check["double_backward"], cps["double_backward"], "double_backward")
    penalised_step(check["finite_diff"], cps["finite_diff"], "finite_diff")
    func_step(check["func"], cps["func"], names)
    th0 = torch.cat([p.detach().flatten() for p in base.parameters()])
    ref = torch.cat([p.detach().flatten() for p in cps["double_backward"]]) - th0
    for k in ("finite_diff", "func"):
        d = torch.cat([p.detach().flatten() for p in cps[k]]) - th0
        rel = ((d - ref).norm() / ref.norm()).item()
        assert rel < 2e-2, f"{k} update differs from double_backward by {rel:.1e} (relative)"
    tasks = {
        "plain step": lambda: plain_step(models["plain"], ps["plain"]),
        "double_backward": lambda: penalised_step(models["double_backward"], ps["double_backward"], "double_backward"),
        "finite_diff": lambda: penalised_step(models["finite_diff"], ps["finite_diff"], "finite_diff"),
        "torch.func jvp": lambda: func_step(models["func"], ps["func"], names),
    }
    return tasks, th0.numel()


def main(argv=None) -> str:
    p = bench_parser(__doc__, "one small case, 3 short rounds (smoke test)", threads=False, rounds=True)
    a, device = parse_bench_args(p, argv)
    rounds = a.rounds or (3 if a.quick else 7)
    min_run_time = 0.05 if a.quick else 0.3
    cases = (
        [("64-256-256-10", (64, 256, 256, 10), 64)]
        if a.quick
        else [
            ("64-256-256-10", (64, 256, 256, 10), 256),
            ("784-1024-1024-10", (784, 1024, 1024, 10), 512),
        ]
    )
    res, rows = None, []
    for label, widths, batch in cases:
        tasks, n = make_tasks(widths, batch, device)
        sub = f"MLP {label}, batch {batch}, {n / 1e6:.2f}M params"
        res = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            label="IGR training step, float32",
            sub_label=sub,
            rounds_out=res,
        )
        base = "plain step"
        rows.append(
            f"| {sub} | {res.median_s(base, sub) * 1e3:.3f} "
            + "".join(
                f"| {ratio_cell(res.ratio(k, base, sub))} "
                for k in ("double_backward", "finite_diff", "torch.func jvp")
            )
            + "|"
        )
        del tasks
    quick = " — **quick run (one small case, 3 short rounds): a smoke test, not a measurement**" if a.quick else ""
    md = "\n".join(
        [
            f"### Implicit gradient regularisation: penalised step vs a plain step{quick}",
            "",
            machine_line(device),
            "",
            f"float32, full-batch SGD step (γ = {LR}) of a tanh MLP; {rounds} interleaved rounds of "
            f"`Timer.blocked_autorange(min_run_time={min_run_time})`; ratios = time / plain step, median (min–max) "
            "over rounds.",
            "",
            "| case | plain step (ms) | `double_backward` / plain | `finite_diff` / plain | `torch.func` jvp / plain |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            "A plain step is one forward and one backward. `finite_diff` adds one forward and backward at the "
            "perturbed "
            "point θ + h·g/‖g‖ (its result is a first-order surrogate, so no second backward through L), so "
            "about 2× is "
            "its floor; `double_backward` keeps the graph of the first backward and differentiates through it. "
            "`torch.func` jvp computes the same g + (γ/2)Hg by forward-over-reverse over `functional_call`. On small "
            "models the ratios also carry per-call Python overhead.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("igr", device, md)
    return md


if __name__ == "__main__":
    print(main())
