"""Cost of monitoring the gradient noise scale (su_notes.optim.batch_size) on top of a training step.

Model: a ReLU MLP 64 → h → h → 10 with cross-entropy, float32, a batch of B examples split into k = 4
micro-batches. Tasks, timed by `benchmarks/harness.py` in interleaved rounds; every ratio is against `step`:
- `step`: the plain gradient of the batch loss (forward + backward on B examples), no monitoring;
- `two-batch, accumulated`: the same gradient by accumulating k micro-batch backwards, keeping the first
  micro-batch's gradient as the small batch, then `GradientNoiseScale.update` (what a single device pays);
- `two-batch, update only`: `GradientNoiseScale.update` on gradients that already exist (data-parallel training,
  where one worker's gradient is the small batch and the all-reduced one the big batch);
- `vmap per-example`: per-example gradients with `torch.func.vmap(torch.func.grad(...))` (the peer), then the
  unbiased |G|² and tr Σ from their mean and variance.

    python benchmarks/bench_batch_size.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/batch_size-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.optim.batch_size import GradientNoiseScale  # noqa: E402

POST = "optim/40_batch_size_scaling.ipynb"  # its post (under nbs/): run_all.py links the two

K = 4  # micro-batches per batch
FULL = [(128, 256), (512, 256), (256, 512)]  # vmap materialises B × n_params floats
QUICK = [(64, 128), (256, 256)]


def make_tasks(B, h, device):
    "The four tasks for batch B and width h, after checking that they compute the same gradient."
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, h),
        torch.nn.ReLU(),
        torch.nn.Linear(h, h),
        torch.nn.ReLU(),
        torch.nn.Linear(h, 10),
    ).to(device)
    X = torch.randn(B, 64, generator=gen).to(device)
    y = torch.randint(0, 10, (B,), generator=gen).to(device)
    params = list(model.parameters())
    gns = GradientNoiseScale(0.99)

    def step():
        return torch.autograd.grad(F.cross_entropy(model(X), y), params)

    def accumulated():
        mb = B // K
        total, small = None, None
        for i in range(K):
            sl = slice(i * mb, (i + 1) * mb)
            gi = torch.autograd.grad(F.cross_entropy(model(X[sl]), y[sl]), params)
            if i == 0:
                small = gi
            total = list(gi) if total is None else [t + u for t, u in zip(total, gi)]
        big = [t / K for t in total]
        gns.update(small, big, mb, B)
        return big

    g_small, g_big = accumulated(), step()

    def update_only():
        return gns.update(g_small, g_big, B // K, B)

    named = {k: v.detach() for k, v in model.named_parameters()}

    def loss1(p, x, t):
        return F.cross_entropy(torch.func.functional_call(model, p, (x[None],)), t[None])

    per_ex = torch.func.vmap(torch.func.grad(loss1), in_dims=(None, 0, 0))

    def vmap_per_example():
        P = per_ex(named, X, y)
        mean = {k: v.mean(0) for k, v in P.items()}
        tr = sum(v.var(0).sum() for v in P.values())  # unbiased tr Σ (1/(B−1))
        g2 = sum(m.pow(2).sum() for m in mean.values()) - tr / B  # unbiased |G|²
        return g2, tr

    # the four compute the same things before they are timed
    for a, b in zip(accumulated(), step()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    P = per_ex(named, X, y)
    for (k, v), b in zip(P.items(), step()):
        torch.testing.assert_close(v.mean(0), b, rtol=1e-4, atol=1e-6)
    return {
        "step": step,
        "two-batch, accumulated": accumulated,
        "two-batch, update only": update_only,
        "vmap per-example": vmap_per_example,
    }


def main(argv=None) -> str:
    p = bench_parser(__doc__, "small sizes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    res, labels = None, []
    for B, h in cases:
        sl = f"B={B} h={h}"
        labels.append((B, h, sl))
        res = interleaved(
            make_tasks(B, h, device),
            rounds=rounds,
            min_run_time=min_run_time,
            label="noise-scale monitoring vs a plain gradient",
            sub_label=sl,
            rounds_out=res,
        )
    rows = [
        "| batch B, width h | `step` (ms) | two-batch, accumulated | two-batch, update only | vmap per-example |",
        "|---|---:|---:|---:|---:|",
    ]
    for B, h, sl in labels:
        r = lambda n: ratio_cell(res.ratio(n, "step", sl))
        rows.append(
            f"| {B}, {h} | {res.median_s('step', sl) * 1e3:.2f} | {r('two-batch, accumulated')} "
            f"| {r('two-batch, update only')} | {r('vmap per-example')} |"
        )
    quick = " **quick run (small sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Batch size: noise-scale monitoring, two-batch vs per-example gradients (`torch.func.vmap`)",
            "",
            machine_line(device),
            "",
            f"MLP 64 → h → h → 10, float32, {K} micro-batches; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            *rows,
            "",
            "Each cell: time of the task / time of `step` (the plain batch gradient), median (min–max) of the "
            "per-round ratios. `update only` is the whole cost where the two gradients exist anyway (data-parallel "
            "training); `accumulated` adds the cost of computing the gradient in micro-batches on one device.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("batch_size", device, md)
    return md


if __name__ == "__main__":
    print(main())
