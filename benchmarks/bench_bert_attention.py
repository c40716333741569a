"""Forward time of `su_notes.bert.BertEncoder` with its two attention paths, `attention="eager"` (explicit
softmax(QKᵀ/√d_h + M)V) and `attention="sdpa"` (`F.scaled_dot_product_attention`), against transformers 5.23.0
`BertModel` (its default attention implementation, SDPA) as the peer, in the same process.

The model is MiniLM-shaped (6 layers, d = 384, 12 heads, d_ff = 1536, vocabulary 30522), randomly initialised from
one seed and loaded with the same weights into all three (asserted equal within 1e-5 before timing); eval() mode,
float32, no gradients. Inputs: a batch of 8 sequences of length n with the last quarter of every other sequence
padded (a key mask is passed to all three). Tasks are timed by `benchmarks/harness.py` in interleaved rounds.

    python benchmarks/bench_bert_attention.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/bert_attention-<device>.md (unless --no-write).
"""

import os
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402
from su_notes.bert.model import BertEncoder, _checkpoint_name  # noqa: E402

POST = "bert/10_bert_in_torch.ipynb"  # its post (under nbs/): run_all.py links the two

MINILM = dict(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536)
FULL_LENGTHS, QUICK_LENGTHS, BATCH, QUICK_BATCH = (32, 128, 512), (16, 64), 8, 2


def build(device):
    "Our encoder (sdpa and eager) and BertModel with identical random weights, eval mode."
    torch.manual_seed(0)
    sdpa = BertEncoder(**MINILM).eval()
    eager = BertEncoder(**MINILM, attention="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        add_pooling_layer=False,
    )
    peer = BertModel(cfg, add_pooling_layer=False).eval()
    state = {_checkpoint_name(k): v for k, v in sdpa.state_dict().items()}
    missing = peer.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys and all(
        "position_ids" in k or "token_type_ids" in k for k in missing.missing_keys
    ), missing
    return sdpa.to(device), eager.to(device), peer.to(device)


def main(argv=None) -> str:
    p = bench_parser(__doc__, "b = 2, n = 16 and 64 only, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    lengths = QUICK_LENGTHS if a.quick else FULL_LENGTHS
    batch = QUICK_BATCH if a.quick else BATCH
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    sdpa, eager, peer = build(device)
    g = torch.Generator().manual_seed(0)
    res, rows = None, []
    for n in lengths:
        ids = torch.randint(1000, 30522, (batch, n), generator=g).to(device)
        mask = torch.ones_like(ids)
        mask[1::2, n - n // 4 :] = 0
        with torch.no_grad():
            h_s, h_e = sdpa(ids, mask), eager(ids, mask)
            h_p = peer(input_ids=ids, attention_mask=mask).last_hidden_state
        real = mask.bool()
        err = max((h_s - h_p)[real].abs().max().item(), (h_e - h_p)[real].abs().max().item())
        assert err < 1e-4, err  # same function before timing it (1e-5 on MiniLM's weights)

        def run(m):
            def f():
                with torch.no_grad():
                    return m(ids, mask)

            return f

        def run_peer():
            with torch.no_grad():
                return peer(input_ids=ids, attention_mask=mask)

        sl = f"b={batch}, n={n}"
        res = interleaved(
            {"ours sdpa": run(sdpa), "ours eager": run(eager), "BertModel": run_peer},
            rounds=rounds,
            min_run_time=min_run_time,
            label="BERT forward",
            sub_label=sl,
            rounds_out=res,
        )
        rows.append((n, sl, err))
    table = [
        "| n | ours sdpa (ms) | ours eager (ms) | BertModel (ms) | eager / sdpa | BertModel / ours sdpa "
        "| max abs diff |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, sl, err in rows:
        ms = {k: 1e3 * res.median_s(k, sl) for k in ("ours sdpa", "ours eager", "BertModel")}
        table.append(
            f"| {n} | {ms['ours sdpa']:.2f} | {ms['ours eager']:.2f} | {ms['BertModel']:.2f} "
            f"| {ratio_cell(res.ratio('ours eager', 'ours sdpa', sl))} "
            f"| {ratio_cell(res.ratio('BertModel', 'ours sdpa', sl))} | {err:.1e} |"
        )
    quick = " **quick run (n = 32, 128; 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### BERT attention: `BertEncoder` eager vs SDPA vs transformers `BertModel`",
            "",
            machine_line(device),
            "",
            f"MiniLM-shaped random-init encoder (6 layers, d = 384, 12 heads), batch {batch}, every other sequence "
            f"a quarter padding, float32 forward without gradients; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`; outputs checked equal at real tokens before "
            f"timing.{quick}",
            "",
            *table,
            "",
            "Ratios: median (min–max) of the per-round ratios of median times (> 1: the numerator is slower). "
            "eager / sdpa is the cost of writing the softmax out (an (b, h, n, n) score tensor) instead of the "
            "fused kernel; BertModel / ours sdpa compares two SDPA implementations of the same network.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("bert_attention", device, md)
    return md


if __name__ == "__main__":
    print(main())
