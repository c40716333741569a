"""Attributions per second of `su_notes.interpret.integrated_gradients` against captum 0.9.0's
`IntegratedGradients(f).attribute(inputs, target=..., n_steps=..., method="gausslegendre")`.

Both evaluate the same n_steps·b path points in one forward and one backward pass and give bit-identical
Gauss–Legendre attributions on CPU in float32 (asserted before timing; on CUDA to 1e-5). What differs is the work
around the network: captum rebuilds its quadrature rule with NumPy on every call, builds the path points from a
Python list of n_steps tensors and reshapes through its generic multi-input machinery; ours caches the rule per
(method, n, dtype, device) and forms the points with one broadcast. Models: the notebook's digits MLP (64-64-10,
tanh), a wider MLP (784-512-512-10) and a small conv net on 1×28×28 inputs, eval() mode, random-init weights (the
timing does not depend on training). Tasks are timed by `benchmarks/harness.py` in interleaved rounds; one call
attributes b inputs, so attributions/s = b / time.

    python benchmarks/bench_integrated_gradients.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/integrated_gradients-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from captum.attr import IntegratedGradients as CaptumIG  # noqa: E402
from su_notes.interpret.integrated_gradients import integrated_gradients  # noqa: E402

POST = "interpret/10_integrated_gradients.ipynb"  # its post (under nbs/): run_all.py links the two


def digits_mlp():
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


def wide_mlp():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def conv():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 49, 10),
    )


# (name, model, input shape without batch, batch sizes, n_steps)
FULL = [
    ("digits MLP 64-64-10", digits_mlp, (64,), (1, 16, 128), 50),
    ("MLP 784-512-512-10", wide_mlp, (1, 28, 28), (1, 16), 50),
    ("conv net, 1×28×28", conv, (1, 28, 28), (1, 16), 50),
]
QUICK = [("digits MLP 64-64-10", digits_mlp, (64,), (1, 16), 20)]


def main(argv=None) -> str:
    p = bench_parser(__doc__, "the digits MLP only, 20 steps, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    gen = torch.Generator().manual_seed(0)
    res, labels = None, []
    for name, make, shape, batches, n in cases:
        torch.manual_seed(0)
        net = make().to(device).eval()
        captum = CaptumIG(net)
        for b in batches:
            x = torch.rand(b, *shape, generator=gen).to(device)
            t = torch.randint(0, 10, (b,), generator=gen).to(device)
            ours = lambda x=x, t=t, n=n: integrated_gradients(net, x, target=t, n_steps=n)
            peer = lambda x=x, t=t, n=n: captum.attribute(x, target=t, n_steps=n, method="gausslegendre")
            mine, theirs = ours(), peer()  # same values before timing them
            if device.type == "cpu":
                assert torch.equal(mine, theirs), (name, b)
            else:
                torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
            sl = f"{name}, b={b}, n={n}"
            labels.append((name, b, n, sl))
            res = interleaved(
                {"integrated_gradients": ours, "captum": peer},
                rounds=rounds,
                min_run_time=min_run_time,
                label="integrated gradients vs captum",
                sub_label=sl,
                rounds_out=res,
            )
    rows = [
        "| model | b | n_steps | ours (attr/s) | captum (attr/s) | speed-up (captum time / ours) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, b, n, sl in labels:
        r = res.ratio("captum", "integrated_gradients", sl)
        rows.append(
            f"| {name} | {b} | {n} | {b / res.median_s('integrated_gradients', sl):,.0f} "
            f"| {b / res.median_s('captum', sl):,.0f} | {ratio_cell(r)} |"
        )
    quick = " **quick run (digits MLP, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Integrated gradients: `integrated_gradients` vs captum's `IntegratedGradients.attribute`",
            "",
            machine_line(device),
            "",
            f"Gauss–Legendre, float32, random-init models in eval() mode; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`; the attributions of both were checked equal "
            f"(bit-identical on CPU) before timing.{quick}",
            "",
            *rows,
            "",
            "Speed-up = captum's time / ours on the same call: median (min–max) of the per-round ratios (> 1: ours "
            "faster). Both run one forward and one backward pass over the n_steps·b path points, so the gap is the "
            "per-call overhead (captum's NumPy rule and per-step tensor list), large for small models and small "
            "batches and shrinking as the network's own cost grows.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("integrated_gradients", device, md)
    return md


if __name__ == "__main__":
    print(main())
