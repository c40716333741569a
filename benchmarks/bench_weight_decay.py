"""AdamW (su_notes.optim.weight_decay) step vs torch.optim.AdamW, and AdamW vs Adam + L2, on `benchmarks/harness.py`.

Two cases, float32:
  (a) GPT-2-small shapes (d=768, vocab 50257, context 1024, 12 blocks, 148 tensors; 124M parameters) — on the
      CPU at half width (about 31M parameters) to keep the full run within a few minutes on 2 cores;
  (b) many small tensors: 1536 tensors of 256–4096 elements (a deep stack of norms, biases and small matrices).
Methods: our AdamW foreach / single-tensor; torch.optim.AdamW foreach / fused / single-tensor; torch.optim.Adam
with `weight_decay` (Adam + L2: λθ added to the gradient) foreach / fused. Each method owns its parameters and
state; all share one read-only set of gradients. One timed call = one `step()`; rounds interleaved. Reported as
median (min–max) over rounds: ours / torch AdamW (same path), ours foreach / torch AdamW fused, and
torch AdamW fused / torch Adam + L2 fused (what decoupling the decay costs or saves).

    python benchmarks/bench_weight_decay.py [--device cpu|cuda] [--quick] [--rounds N] [--no-write]
prints the Markdown section and writes benchmarks/results/weight_decay-<device>.md (unless --no-write).
--quick: case (a) at width 0.1 (~1.2M parameters) and case (b) with 384 tensors, 3 rounds — labelled.
"""

import math
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, gpt2_shapes, parse_bench_args, small_shapes  # noqa: E402
from su_notes.optim.weight_decay import AdamW  # noqa: E402

POST = "optim/50_weight_scale_shift.ipynb"  # its post (under nbs/): run_all.py links the two

WD = 0.1


METHODS = {
    "ours foreach": lambda ps: AdamW(ps, weight_decay=WD, foreach=True),
    "torch AdamW foreach": lambda ps: torch.optim.AdamW(ps, weight_decay=WD, foreach=True),
    "torch AdamW fused": lambda ps: torch.optim.AdamW(ps, weight_decay=WD, fused=True),
    "torch Adam+L2 foreach": lambda ps: torch.optim.Adam(ps, weight_decay=WD, foreach=True),
    "torch Adam+L2 fused": lambda ps: torch.optim.Adam(ps, weight_decay=WD, fused=True),
    "ours single": lambda ps: AdamW(ps, weight_decay=WD, foreach=False),
    "torch AdamW single": lambda ps: torch.optim.AdamW(ps, weight_decay=WD, foreach=False),
}
RATIOS = [
    ("ours foreach", "torch AdamW foreach"),
    ("ours single", "torch AdamW single"),
    ("ours foreach", "torch AdamW fused"),
    ("torch AdamW fused", "torch Adam+L2 fused"),
    ("torch AdamW foreach", "torch Adam+L2 foreach"),
]


def check_same_update(device):
    "Before timing: our AdamW and torch's take the same first 3 steps on a small set (both paths)."
    g = torch.Generator().manual_seed(1)
    base = [torch.randn(s, generator=g).to(device) for s in [(64, 32), (32,), (7, 5, 3)]]
    grads = [[torch.randn(b.shape, generator=g).to(device) for b in base] for _ in range(3)]
    for foreach in (False, True):
        a = [b.clone().requires_grad_() for b in base]
        c = [b.clone().requires_grad_() for b in base]
        oa, oc = (
            AdamW(a, weight_decay=WD, foreach=foreach),
            torch.optim.AdamW(c, weight_decay=WD, foreach=foreach),
        )
        for gs in grads:
            for x, z, gr in zip(a, c, gs):
                x.grad, z.grad = gr, gr
            oa.step()
            oc.step()
        worst = max((x - z).abs().max().item() for x, z in zip(a, c))
        if worst > 1e-7:
            raise AssertionError(f"ours vs torch.optim.AdamW (foreach={foreach}): max|Δθ| = {worst}")


def make_tasks(shapes, device, names):
    "name -> optimizer.step on its own parameter copy; gradients shared and never written."
    g = torch.Generator().manual_seed(0)
    base = [(torch.randn(s, generator=g) * 0.02).to(device) for s in shapes]
    grads = [(torch.randn(s, generator=g) * 1e-3).to(device) for s in shapes]
    tasks = {}
    for name in names:
        ps = [b.clone().requires_grad_() for b in base]
        for p, gr in zip(ps, grads):
            p.grad = gr
        try:
            opt = METHODS[name](ps)
            opt.step()  # creates the state (outside the timing)
        except (
            RuntimeError,
            ValueError,
            TypeError,
        ) as e:  # e.g. a fused kernel missing on this device
            print(f"skipping {name}: {e}", file=sys.stderr)
            continue
        tasks[name] = opt.step
    return tasks


def main(argv=None) -> str:
    p = bench_parser(__doc__, "smaller sizes (labelled 'quick'), 3 rounds", threads=False, rounds=True)
    a, device = parse_bench_args(p, argv)
    rounds = a.rounds or (3 if a.quick else 5)
    min_run_time = 0.05 if a.quick else 0.2
    check_same_update(device)
    width = 0.1 if a.quick else (1.0 if device.type == "cuda" else 0.5)
    cases = [
        (
            f"GPT-2 small shapes × {width:g} width" + (" (quick)" if a.quick else ""),
            gpt2_shapes(width),
        ),
        ("small tensors" + (" (quick)" if a.quick else ""), small_shapes(384 if a.quick else 1536)),
    ]
    results, lines = None, []
    for label, shapes in cases:
        n = sum(math.prod(s) for s in shapes)
        sub = f"{label}: {len(shapes)} tensors, {n / 1e6:.1f}M params"
        tasks = make_tasks(shapes, device, list(METHODS))
        results = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            label="optimizer step, float32",
            sub_label=sub,
            rounds_out=results,
        )
        row = [f"| {sub} |"]
        for num, den in RATIOS:
            row.append(f" {ratio_cell(results.ratio(num, den, sub))} |" if num in tasks and den in tasks else " — |")
        lines.append("".join(row))
        del tasks
    quick = " — **quick sizes, not the benchmark**" if a.quick else ""
    md = "\n".join(
        [
            f"### AdamW step vs `torch.optim.AdamW`, and AdamW vs Adam + L2{quick}",
            "",
            machine_line(device),
            "",
            f"float32, weight decay {WD}; {rounds} interleaved rounds of `Timer.blocked_autorange` "
            f"(min_run_time {min_run_time}); ratios of median step times, median (min–max) over rounds; < 1: the "
            "numerator is faster. Our AdamW runs the same sequence of kernels as torch's per-tensor and foreach paths "
            "(checked before timing), so those ratios measure Python overhead; it has no fused path.",
            "",
            "| case | ours / torch AdamW, foreach | ours / torch AdamW, single-tensor | ours foreach / torch "
            "AdamW fused "
            "| torch AdamW fused / Adam + L2 fused | torch AdamW foreach / Adam + L2 foreach |",
            "|---|---:|---:|---:|---:|---:|",
            *lines,
            "",
            "```",
            results.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("weight_decay", device, md)
    return md


if __name__ == "__main__":
    print(main())
