"""Forward time of `su_notes.bert.model.BertEncoder` at a char-level length L against the WoBERT length
L' = round(L / r), where r is measured here: BERT's char-level tokens over `WoBertTokenizer` tokens (N = 20,000
jieba words) on `su_notes.bert.wobert.SAMPLE_TEXTS`. Both sides are the same random-init encoder (the speed of a
forward pass does not depend on trained weights), eval() mode, `torch.no_grad()`, one sequence, float32. Tasks are
timed by `benchmarks/harness.py` in interleaved rounds; the speed-up is T(L) / T(L') per round, reported with
r, r² and the operation-count model 2n(4d² + 2d·d_ff) + 4n²d, whose ratio lies in [r, r²].

    python benchmarks/bench_wobert.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/wobert-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.bert.model import BertEncoder  # noqa: E402
from su_notes.bert.wobert import (  # noqa: E402
    SAMPLE_TEXTS,
    WoBertTokenizer,
    build_char_vocab,
    extend_vocab,
    jieba_word_counts,
)

POST = "bert/30_wobert.ipynb"  # its post (under nbs/): run_all.py links the two

# (name, config overrides, lengths L)
SMALL = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
FULL = [("4 layers × 256", SMALL, (128, 512)), ("BERT-base 12 × 768", BASE, (128, 512))]
QUICK = [("4 layers × 256", SMALL, (128,))]


def length_ratio(num_words: int = 20000) -> tuple[float, int, int, int]:
    "(r = L / L', L char-level tokens, L' WoBERT tokens, vocabulary size) on SAMPLE_TEXTS."
    counts = jieba_word_counts()
    base = build_char_vocab(counts)
    vocab, _ = extend_vocab(base, num_words, counts)
    tok = WoBertTokenizer(vocab)
    L = sum(len(tok.chars.tokenize(s)) for s in SAMPLE_TEXTS)
    Lw = sum(len(tok.tokenize(s)) for s in SAMPLE_TEXTS)
    return L / Lw, L, Lw, len(vocab)


def op_ratio(cfg: dict, L: int, Lp: int) -> float:
    "T(L)/T(L') predicted by the multiply-add count of one layer."
    d, dff = cfg["hidden_size"], cfg["intermediate_size"]
    cost = lambda n: 2 * n * (4 * d * d + 2 * d * dff) + 4 * n * n * d  # noqa: E731
    return cost(L) / cost(Lp)


def main(argv=None) -> str:
    p = bench_parser(__doc__, "the 4-layer encoder at L = 128 only, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.5)
    r, L_chars, L_words, V = length_ratio()
    gen = torch.Generator().manual_seed(0)
    res, rows = None, []
    for name, shape, lengths in cases:
        cfg = dict(vocab_size=V, max_position_embeddings=512, **shape)
        torch.manual_seed(0)
        model = BertEncoder.from_config(cfg).to(device).eval()
        for L in lengths:
            Lp = round(L / r)
            x = {n: torch.randint(0, V, (1, n), generator=gen).to(device) for n in (L, Lp)}

            def fwd(n):
                def run():
                    with torch.no_grad():
                        model(x[n])

                return run

            sl, n_char, n_word = f"{name}, L={L}", "char length L", "word length L'"
            res = interleaved(
                {n_char: fwd(L), n_word: fwd(Lp)},
                rounds=rounds,
                min_run_time=min_run_time,
                label="encoder forward, char vs word length",
                sub_label=sl,
                rounds_out=res,
            )
            ratio = res.ratio(n_char, n_word, sl)
            rows.append(
                f"| {name} | {L} | {Lp} | {1e3 * res.median_s(n_char, sl):.1f} "
                f"| {1e3 * res.median_s(n_word, sl):.1f} | {ratio_cell(ratio)} "
                f"| {op_ratio(cfg, L, Lp):.2f} |"
            )
    quick = (
        " **quick run (4-layer encoder, L = 128, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    )
    md = "\n".join(
        [
            "### WoBERT: encoder forward at the char-level length L vs the word-level length L' = L / r",
            "",
            machine_line(device),
            "",
            f"r = {r:.3f} measured on `SAMPLE_TEXTS` ({L_chars:,} char-level tokens, {L_words:,} WoBERT tokens, "
            f"N = 20,000 jieba words; vocabulary {V:,}); bounds [r, r²] = [{r:.2f}, {r * r:.2f}]. Random-init "
            f"`BertEncoder`, eval(), no_grad, batch 1, float32; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            "| encoder | L | L' | T(L) ms | T(L') ms | speed-up T(L)/T(L') | operation-count model |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Speed-up: median (min–max) of the per-round ratios (> 1: the word-level length is faster). The "
            "operation-count model counts the multiply-adds of one layer's linear maps (∝ n) and attention (∝ n²): "
            "the speed-up expected from arithmetic alone; memory traffic and per-call overhead move the measured "
            "value away from it.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("wobert", device, md)
    return md


if __name__ == "__main__":
    print(main())
