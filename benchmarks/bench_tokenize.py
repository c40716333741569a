"""Throughput in MB/s (UTF-8 bytes of input text) of `su_notes.text.tokenize`'s Viterbi decoding and sampling
against sentencepiece 0.2.3's C++ Unigram `encode` (plain, and with `enable_sampling=True, nbest_size=-1`) on
the same sentences and the same model: jieba's dictionary (349,045 words, log p = log c/Σc), written as a
sentencepiece `ModelProto` by `to_sentencepiece`.

Ours: `viterbi_decode` / `viterbi_sample` (pure Python, one text per call) and `viterbi_decode_batch` /
`viterbi_sample_batch` (NumPy, all texts in one call). Text: honest synthetic Chinese, sentences of 3–10 jieba
dictionary words drawn by frequency (seeded), more sentences than the per-text lattice cache holds (1,024
texts), visited in order, so no call hits the cache. sentencepiece gets the list of sentences in one call with
`num_threads=1`. Tokens are checked equal before timing. Tasks are timed by `benchmarks/harness.py` in
interleaved rounds; the ratio is sentencepiece's time / ours on the same text (> 1: ours faster).

    python benchmarks/bench_tokenize.py [--quick] [--no-write]
prints the Markdown section and writes benchmarks/results/tokenize-cpu.md (unless --no-write).
"""

import itertools
import math
import random
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.text.tokenize import (  # noqa: E402
    UnigramModel,
    to_sentencepiece,
    viterbi_decode,
    viterbi_decode_batch,
    viterbi_sample,
    viterbi_sample_batch,
)

POST = "text/60_viterbi_sampling.ipynb"  # its post (under nbs/): run_all.py links the two


def corpus(model, n, seed=0):
    "n sentences of 3–10 dictionary words drawn by frequency."
    rng = random.Random(seed)
    words = list(model._logp)
    cum = list(itertools.accumulate(math.exp(v) for v in model._logp.values()))
    return ["".join(rng.choices(words, cum_weights=cum, k=rng.randint(3, 10))) for _ in range(n)]


def main(argv=None) -> str:
    p = bench_parser(__doc__, "1,200 sentences, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    if device.type != "cpu":
        p.error("this benchmark is pure Python, NumPy and C++: CPU only")
    n_sent, rounds, min_run_time = (1200, 3, 0.05) if a.quick else (4000, 7, 0.5)
    model = UnigramModel.from_jieba()
    sp = to_sentencepiece(model)
    texts = corpus(model, n_sent)
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    # same tokens before timing (the corpus has no unknown characters: every word is a piece)
    loop = [viterbi_decode(t, model) for t in texts]
    assert loop == sp.encode(texts, out_type=str, num_threads=1)
    assert viterbi_decode_batch(texts, model) == loop
    rng, nrng, alpha = random.Random(0), np.random.default_rng(0), 0.1
    tasks = {
        "viterbi_decode": lambda: [viterbi_decode(t, model) for t in texts],
        "viterbi_decode_batch": lambda: viterbi_decode_batch(texts, model),
        "sentencepiece encode": lambda: sp.encode(texts, out_type=str, num_threads=1),
        "viterbi_sample (reservoir)": lambda: [viterbi_sample(t, model, alpha, "reservoir", rng) for t in texts],
        "viterbi_sample (sigmoid)": lambda: [viterbi_sample(t, model, alpha, "sigmoid", rng) for t in texts],
        "viterbi_sample_batch": lambda: viterbi_sample_batch(texts, model, alpha, nrng),
        "sentencepiece sample": lambda: sp.encode(
            texts, out_type=str, enable_sampling=True, alpha=alpha, nbest_size=-1, num_threads=1
        ),
    }
    sl = f"{n_sent} sentences"
    res = interleaved(
        tasks,
        rounds=rounds,
        min_run_time=min_run_time,
        label="Viterbi decoding / sampling",
        sub_label=sl,
    )
    pairs = [
        ("viterbi_decode", "sentencepiece encode"),
        ("viterbi_decode_batch", "sentencepiece encode"),
        ("viterbi_sample (reservoir)", "sentencepiece sample"),
        ("viterbi_sample (sigmoid)", "sentencepiece sample"),
        ("viterbi_sample_batch", "sentencepiece sample"),
    ]
    rows = [
        "| ours | ours (MB/s) | sentencepiece | sentencepiece (MB/s) | sentencepiece time / ours |",
        "|---|---:|---|---:|---:|",
    ]
    for ours, peer in pairs:
        r = res.ratio(peer, ours, sl)
        rows.append(
            f"| {ours} | {mb / res.median_s(ours, sl):.2f} | {peer} | {mb / res.median_s(peer, sl):.2f} "
            f"| {ratio_cell(r, 3)} |"
        )
    quick = " **quick run (1,200 sentences, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Viterbi sampling: `viterbi_decode` / `viterbi_sample` (Python and NumPy batch) vs sentencepiece's C++",
            "",
            machine_line(device),
            "",
            f"{n_sent:,} synthetic sentences of jieba dictionary words ({mb * 1e3:.0f} KB of UTF-8), jieba's "
            f"349,045-word model in both; sampling at α = {alpha}; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`; tokens checked equal before timing.{quick}",
            "",
            *rows,
            "",
            "Throughput = input bytes / median time of one pass over the sentences, output as lists of strings. "
            "Ratio = sentencepiece's time / ours: median (min–max) of the per-round ratios; below 1 ours is slower. "
            "`viterbi_decode` / `viterbi_sample` loop over the lattice's edges in Python (dict lookups stopped early "
            "by a prefix set); the batch versions walk a trie with one NumPy `searchsorted` per word length and "
            "vectorise the recursion over sentences; sentencepiece walks a double-array trie in C++.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("tokenize", device, md)
    return md


if __name__ == "__main__":
    print(main())
