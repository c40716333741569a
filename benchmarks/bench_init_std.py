"""Time to fill a weight matrix with `su_notes.bert.init.bert_trunc_normal_` against PyTorch's
`torch.nn.init.normal_` (no truncation) and `torch.nn.init.trunc_normal_` with explicit ±2σ bounds.

`bert_trunc_normal_` calls `trunc_normal_` with bounds it computes from `std` (inverse-CDF sampling: uniform,
erfinv, scale, clamp), so its ratio to `trunc_normal_` measures only the argument checks; the ratio to `normal_`
is the cost of truncation. The post's size, a 250k×4096 float32 matrix, is 4.1 GB (one buffer, filled in
place; no second copy is made for float32/float64), so the full run needs about 4.5 GB free. On a CPU the run
stops at 25k×4096 (the full size takes minutes per call there); `--quick` uses
500×4096 (8 MB) and 3 short rounds: the
CPU erfinv makes trunc_normal_ about 20× slower than normal_ (24 s for 25k×4096 on one loaded thread).

    python benchmarks/bench_init_std.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/init_std-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.bert.init import bert_trunc_normal_, truncated_normal_std  # noqa: E402

POST = "bert/20_init_std.ipynb"  # its post (under nbs/): run_all.py links the two

FULL = [(25_000, 4096), (250_000, 4096)]
# on a CPU the post's 250k×4096 takes minutes per call (erfinv): the CPU run stops at 25k×4096
FULL_CPU = [(2_500, 4096), (25_000, 4096)]
QUICK = [(500, 4096)]


def main(argv=None) -> str:
    p = bench_parser(__doc__, "500×4096 only, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    shapes = QUICK if a.quick else FULL_CPU if device.type == "cpu" else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (5, 0.5)
    res, rows = None, []
    for shape in shapes:
        w = torch.empty(shape, device=device)
        # correctness before timing: the truncation holds and the std is 0.02·c(2)
        bert_trunc_normal_(w)
        assert w.abs().max().item() <= 0.04 and abs(w.std().item() - 0.02 * truncated_normal_std()) < 1e-4
        tasks = {
            "bert_trunc_normal_": lambda w=w: bert_trunc_normal_(w),
            "trunc_normal_": lambda w=w: torch.nn.init.trunc_normal_(w, 0.0, 0.02, -0.04, 0.04),
            "normal_": lambda w=w: torch.nn.init.normal_(w, 0.0, 0.02),
        }
        sl = f"{shape[0]:,}×{shape[1]}"
        res = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            label="BERT initialisation",
            sub_label=sl,
            rounds_out=res,
            warmup=1,
        )
        gb = w.numel() * w.element_size() / 1e9
        rows.append(
            f"| {sl} | {gb:.2f} | {res.median_s('bert_trunc_normal_', sl) * 1e3:.1f} "
            f"| {res.median_s('trunc_normal_', sl) * 1e3:.1f} | {res.median_s('normal_', sl) * 1e3:.1f} "
            f"| {ratio_cell(res.ratio('bert_trunc_normal_', 'trunc_normal_', sl))} "
            f"| {ratio_cell(res.ratio('bert_trunc_normal_', 'normal_', sl))} |"
        )
        del w
    quick = " **quick run (500×4096, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### BERT initialisation: `bert_trunc_normal_` vs `torch.nn.init.trunc_normal_` / `normal_`",
            "",
            machine_line(device),
            "",
            f"float32, std 0.02, ±2σ; {rounds} interleaved rounds of `blocked_autorange(min_run_time={min_run_time})`; "
            f"the bound and the std 0.0176 were checked before timing.{quick}",
            "",
            "| shape | GB | ours (ms) | trunc_normal_ (ms) | normal_ (ms) | ours / trunc_normal_ | ours / normal_ |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Ratios: median (min–max) of the per-round time ratios (< 1: ours faster). ours / trunc_normal_ ≈ 1 is "
            "expected (same kernel, plus argument checks); ours / normal_ is the price of the inverse-CDF "
            "truncation.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("init_std", device, md)
    return md


if __name__ == "__main__":
    print(main())
