"""One masked-LM training step of `su_notes.bert.pretraining`: eager vs
`torch.compile(fullgraph=True)`, and all-position logits vs k gathered positions, on
`benchmarks/harness.py`.

A step is `make_mlm_step(model, AdamW)(input_ids, labels, attention_mask)`: forward,
masked-LM loss, `backward()`, `optimizer.step()`, `zero_grad()`. The compiled variant
compiles the forward and loss with `fullgraph=True, dynamic=False` (inductor;
AOTAutograd compiles the backward); the optimizer step stays eager in both. Models:
random-init `BertForMaskedLM` on `BertEncoder` with MiniLM's vocabulary size (30522),
dropout 0; batches: random ids with 15% of positions predicted, every row full length
(packed rows). Each task owns a copy of the model and its optimizer; before timing, the
first step's losses of the eager and compiled copies are checked equal to 1e-4 relative
(float32; inductor reorders arithmetic). Reported: compiled / eager speed-up for both
loss variants (median and min–max over interleaved rounds), the first compiled call's
wall time (compilation), and the Compare table.

python benchmarks/bench_pretraining.py [--device cpu|cuda] [--quick] [--threads N]
[--no-write] prints the Markdown section and writes
benchmarks/results/pretraining-<device>.md (unless --no-write). --quick: one tiny shape
(1 layer, d=32, vocabulary 1000, b=2, n=32), only the k-position loss compiled (one
compilation: on a CPU inductor's C++ build dominates), 3 short rounds — a smoke test,
labelled.
"""

import copy
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.bert.model import BertEncoder  # noqa: E402
from su_notes.bert.pretraining import IGNORE_INDEX, BertForMaskedLM, make_mlm_step  # noqa: E402

POST = "bert/60_pretraining_pipeline.ipynb"  # its post (under nbs/): run_all.py links the two

# (name, encoder config, batch rows b, row length n, gathered positions k)
FULL = [
    (
        "L=2, d=128, h=2",
        dict(
            vocab_size=30522,
            hidden_size=128,
            num_layers=2,
            num_heads=2,
            intermediate_size=512,
        ),
        8,
        128,
        24,
    ),
    (
        "L=4, d=256, h=4",
        dict(
            vocab_size=30522,
            hidden_size=256,
            num_layers=4,
            num_heads=4,
            intermediate_size=1024,
        ),
        8,
        256,
        48,
    ),
]
QUICK = [
    (
        "L=1, d=32, h=2, V=1000",
        dict(
            vocab_size=1000,
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            intermediate_size=64,
        ),
        2,
        32,
        8,
    )
]


def make_batch(V, b, n, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(5, V, (b, n), generator=g)
    y = torch.where(torch.rand(b, n, generator=g) < 0.15, x, torch.full_like(x, IGNORE_INDEX))
    return x.to(device), y.to(device), torch.ones_like(x).to(device)


def main(argv=None) -> str:
    p = bench_parser(
        __doc__,
        "one tiny shape, one compilation, 3 short rounds (smoke test)",
        threads=True,
    )
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.5)
    res, rows = None, []
    for name, cfg, b, n, k in cases:
        torch.manual_seed(0)
        base = BertForMaskedLM(BertEncoder(**cfg, max_position_embeddings=max(512, n), dropout=0.0)).to(device)
        x, y, am = make_batch(cfg["vocab_size"], b, n, device)
        steps, first = {}, {}
        for kname, kk in (("all positions", None), (f"k={k}", k)):
            modes = ("eager",) if a.quick and kk is None else ("eager", "compiled")  # quick: one compile
            for mode in modes:
                m = copy.deepcopy(base).train()
                opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
                step = make_mlm_step(m, opt, max_predictions=kk, compile=mode == "compiled")
                t = time.perf_counter()
                first[(kname, mode)] = step(x, y, am)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if mode == "compiled":
                    first[(kname, "compile_s")] = time.perf_counter() - t
                steps[f"{mode}, {kname}"] = lambda step=step: step(x, y, am)
            if "compiled" in modes:
                torch.testing.assert_close(
                    first[(kname, "compiled")],
                    first[(kname, "eager")],
                    rtol=1e-4,
                    atol=1e-5,
                )
        sl = f"{name}, b={b}, n={n}"
        res = interleaved(
            steps,
            rounds=rounds,
            min_run_time=min_run_time,
            label="MLM training step",
            sub_label=sl,
            rounds_out=res,
        )
        for kname in ("all positions", f"k={k}"):
            if (kname, "compile_s") not in first:
                continue
            r = res.ratio(f"eager, {kname}", f"compiled, {kname}", sl)
            rows.append(
                f"| {name} | {b}×{n} | {kname} | "
                f"{1e3 * res.median_s(f'eager, {kname}', sl):.1f} "
                f"| {1e3 * res.median_s(f'compiled, {kname}', sl):.1f} | "
                f"{ratio_cell(r)} "
                f"| {first[(kname, 'compile_s')]:.1f} |"
            )
        r = res.ratio("eager, all positions", f"eager, k={k}", sl)
        rows.append(f"| {name} | {b}×{n} | eager: all / k={k} | | | {ratio_cell(r)} | |")
    quick = (
        (
            " **quick run (one tiny shape, k-position loss compiled only, 3 short "
            "rounds): a smoke test, not a "
            "measurement.**"
        )
        if a.quick
        else ""
    )
    md = "\n".join(
        [
            "### Pretraining: masked-LM training step, eager vs `torch.compile(fullgraph=True)`",
            "",
            machine_line(device),
            "",
            f"float32, random-init BertForMaskedLM (dropout 0), AdamW; {rounds} "
            "interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`; first-step losses of "
            "eager and compiled copies "
            f"checked equal (rtol 1e-4) before timing.{quick}",
            "",
            "| model | b×n | loss positions | eager (ms) | compiled (ms) | speed-up "
            "(eager / compiled) "
            "| first compiled call (s) |",
            "|---|---|---|---:|---:|---:|---:|",
            *rows,
            "",
            "Speed-up: median (min–max) of the per-round time ratios; > 1 means the "
            "second variant is faster. "
            "The 'eager: all / k' rows compare the two loss variants, both eager: "
            "gathering k positions skips the "
            "V-wide output layer at the unpredicted positions.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("pretraining", device, md)
    return md


if __name__ == "__main__":
    print(main())
