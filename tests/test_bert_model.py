"""su_notes.bert.model on its own: bad input (clear errors, nothing mutated), from_config errors, missing
checkpoint files and keys, state_dict round trip, float64, eager = SDPA, padding invariance, mean_pool,
BertClassifier, batch_encode, and char_aligned_tokenize properties (hypothesis). Runs on `--device`.
Random-init tiny models only; the peer cross-checks are in tests/test_bert_peer.py."""

import json
import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from su_notes.bert.model import (
    BertClassifier,
    BertEncoder,
    WordPieceTokenizer,
    char_aligned_tokenize,
    load_vocab,
    mean_pool,
)
from su_notes.core import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
TINY = dict(
    vocab_size=40,
    hidden_size=16,
    num_layers=2,
    num_heads=4,
    intermediate_size=24,
    max_position_embeddings=12,
)
VOCAB = {
    t: i
    for i, t in enumerate(
        [
            "[PAD]",
            "[unused1]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "[MASK]",
            "a",
            "b",
            "c",
            "e",
            "é",
            "中",
            "文",
            ",",
            "!",
            "hello",
            "##lo",
            "hel",
            "world",
            "##s",
        ]
    )
}


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return BertEncoder(**{**TINY, **kw}).eval()


def batch(device, b=3, n=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, TINY["vocab_size"], (b, n), generator=g)
    lengths = torch.randint(2, n + 1, (b,), generator=g)
    lengths[0] = n
    mask = (torch.arange(n) < lengths[:, None]).long()
    types = ((torch.arange(n) >= (lengths // 2)[:, None]) & mask.bool()).long()
    return ids.masked_fill(mask == 0, 0).to(device), mask.to(device), types.to(device)


# ------------------------------------------------------------------ constructor / from_config
@pytest.mark.parametrize(
    "kw, err, msg",
    [
        (dict(hidden_size=15), ValueError, "divisible"),
        (dict(num_layers=0), ValueError, "num_layers"),
        (dict(num_heads=2.0), TypeError, "num_heads"),
        (dict(vocab_size=True), TypeError, "vocab_size"),
        (dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(dropout=float("nan")), ValueError, "dropout"),
        (dict(attention="flash"), ValueError, "attention"),
    ],
)
def test_constructor_errors(kw, err, msg):
    with pytest.raises(err, match=msg):
        BertEncoder(**{**TINY, **kw})


def test_from_config():
    cfg = dict(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=24,
        max_position_embeddings=12,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        layer_norm_eps=1e-7,
        model_type="bert",
    )
    m = BertEncoder.from_config(cfg)
    # exact: the config stores the given Python floats unchanged (no arithmetic)
    assert m.config["num_layers"] == 2 and m.config["layer_norm_eps"] == 1e-7
    # exact: as above, a stored copy of the argument
    assert len(m.layers) == 2 and m.config["dropout"] == 0.0
    assert BertEncoder.from_config(cfg, attention="eager").config["attention"] == "eager"
    with pytest.raises(TypeError, match="config"):
        BertEncoder.from_config([("hidden_size", 16)])
    with pytest.raises(ValueError, match="hidden_act"):
        BertEncoder.from_config({**cfg, "hidden_act": "gelu_new"})
    with pytest.raises(ValueError, match="position_embedding_type"):
        BertEncoder.from_config({**cfg, "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="divisible"):
        BertEncoder.from_config({**cfg, "num_attention_heads": 5})


def test_init_statistics():
    m = BertEncoder(vocab_size=2000, hidden_size=64, num_layers=1, num_heads=4, intermediate_size=128)
    w = m.embeddings.word_embeddings.weight
    assert abs(w.std().item() - 0.02) < 0.02 * 0.05  # 128k samples: std error ~0.2%
    assert torch.count_nonzero(m.layers[0].intermediate.bias) == 0
    assert torch.all(m.layers[0].output_norm.weight == 1)  # set by ones_, exact


# ------------------------------------------------------------------ checkpoints
def save_checkpoint(model, path, prefix=""):
    from safetensors.torch import save_file
    from su_notes.bert.model import _checkpoint_name

    c = model.config
    cfg = dict(
        vocab_size=c["vocab_size"],
        hidden_size=c["hidden_size"],
        num_hidden_layers=c["num_layers"],
        num_attention_heads=c["num_heads"],
        intermediate_size=c["intermediate_size"],
        max_position_embeddings=c["max_position_embeddings"],
        type_vocab_size=c["type_vocab_size"],
        layer_norm_eps=c["layer_norm_eps"],
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
    )
    (path / "config.json").write_text(json.dumps(cfg))
    tensors = {prefix + _checkpoint_name(k): v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path / "model.safetensors"))
    return tensors


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_checkpoint_round_trip(tmp_path, prefix, device):
    m = tiny(1)
    save_checkpoint(m, tmp_path, prefix)
    loaded = BertEncoder.from_pretrained_dir(tmp_path).to(device)
    assert not loaded.training
    ids, mask, types = batch(device)
    with torch.no_grad():
        got, want = loaded(ids, mask, types), m.to(device)(ids, mask, types)
        # exact: the same weights and the same kernels on the same inputs and device
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        BertEncoder.from_pretrained_dir(tmp_path)
    tensors = save_checkpoint(tiny(), tmp_path)
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        BertEncoder.from_pretrained_dir(tmp_path)
    from safetensors.torch import save_file

    missing = {k: v for k, v in tensors.items() if "layer.1.output.dense.weight" not in k}
    save_file(missing, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="encoder.layer.1.output.dense.weight"):
        BertEncoder.from_pretrained_dir(tmp_path)
    wrong = dict(tensors)
    wrong["embeddings.word_embeddings.weight"] = torch.zeros(41, 16)
    save_file(wrong, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="shape"):
        BertEncoder.from_pretrained_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_vocab(tmp_path / "nope.txt")


def test_state_dict_round_trip(device):
    a, b = tiny(0).to(device), tiny(1).to(device)
    b.load_state_dict(a.state_dict())
    ids, mask, types = batch(device)
    with torch.no_grad():
        # identical weights, identical kernels and inputs: bit-identical outputs
        torch.testing.assert_close(a(ids, mask, types), b(ids, mask, types), rtol=0, atol=0)
    assert set(a.state_dict()) == set(b.state_dict())


# ------------------------------------------------------------------ forward
def test_forward_bad_input(device):
    m = tiny().to(device)
    ids, mask, types = batch(device)
    before = (ids.clone(), mask.clone(), types.clone())
    with pytest.raises(TypeError, match="input_ids"):
        m(ids.float())
    with pytest.raises(TypeError, match="input_ids"):
        m(ids.bool())
    with pytest.raises(TypeError, match="input_ids"):
        m(ids.tolist())
    with pytest.raises(ValueError, match="input_ids"):
        m(ids[0])
    with pytest.raises(ValueError, match="input_ids"):
        m(ids[:, None])
    with pytest.raises(ValueError, match="input_ids"):
        m(ids[:, :0])
    with pytest.raises(ValueError, match="max_position_embeddings"):
        m(torch.zeros(1, 13, dtype=torch.long, device=device))
    with pytest.raises(ValueError, match="attention_mask"):
        m(ids, mask[:, :-1])
    with pytest.raises(TypeError, match="attention_mask"):
        m(ids, mask.tolist())
    with pytest.raises(ValueError, match="token_type_ids"):
        m(ids, mask, types[:, :-1])
    with pytest.raises(TypeError, match="token_type_ids"):
        m(ids, mask, types.float())
    for x, y in zip(before, (ids, mask, types)):
        # exact: integer/copied tensors compared after the failed call (nothing mutated)
        assert torch.equal(x, y)


def test_float64_and_eager_equals_sdpa(device):
    m = tiny(2).double().to(device)
    e = BertEncoder(**{**m.config, "attention": "eager"}).double().to(device).eval()
    e.load_state_dict(m.state_dict())
    ids, mask, types = batch(device, seed=2)
    with torch.no_grad():
        h, he = m(ids, mask, types), e(ids, mask, types)
    assert h.dtype == torch.float64 and h.shape == (3, 9, 16)
    real = mask.bool()
    assert_close(h[real], he[real], rtol=1e-10, atol=1e-12)


def test_padding_invariance(device):
    "Real tokens' states do not depend on padding: batch vs each sentence alone (float64)."
    m = tiny(3).double().to(device)
    ids, mask, types = batch(device, seed=3)
    junk = ids.masked_fill(mask == 0, 7)
    with torch.no_grad():
        h = m(ids, mask, types)
        hj = m(junk, mask, types)
        for i in range(ids.shape[0]):
            n = int(mask[i].sum())
            alone = m(ids[i : i + 1, :n], None, types[i : i + 1, :n])[0]
            assert_close(h[i, :n], alone, rtol=1e-10, atol=1e-12)
    real = mask.bool()
    assert_close(h[real], hj[real], rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # the test can fail: without the mask, padding leaks in
        assert (m(junk, None, types) - h)[real].abs().max() > 1e-3


def test_dropout_only_in_train_mode():
    m = tiny(4, dropout=0.5)
    ids, mask, types = batch("cpu")
    with torch.no_grad():
        a, b = m(ids, mask), m(ids, mask)
        # exact: eval mode is deterministic, same kernels on the same inputs
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        m.train()
        # exact inequality is the point: train-mode dropout draws new masks each call
        assert not torch.equal(m(ids, mask), m(ids, mask))


def test_gradients_flow(device):
    m = tiny(5).to(device).train()
    ids, mask, types = batch(device)
    m(ids, mask, types).pow(2).mean().backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in m.parameters()
        if p is not m.embeddings.position_embeddings.weight
    )


# ------------------------------------------------------------------ mean_pool, BertClassifier
def test_mean_pool(device):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 5, 4, generator=g, dtype=torch.float64).to(device)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], device=device)
    ref = torch.stack([h[i, : int(mask[i].sum())].mean(0) for i in range(3)])
    assert_close(mean_pool(h, mask), ref, rtol=1e-12, atol=1e-14)
    assert_close(mean_pool(h), h.mean(1), rtol=1e-12, atol=1e-14)
    u = mean_pool(h, mask.bool(), normalize=True)
    assert_close(u, ref / ref.norm(dim=-1, keepdim=True), rtol=1e-12, atol=1e-14)
    assert torch.isfinite(mean_pool(h, torch.zeros_like(mask))).all()  # empty row: 0, not NaN
    with pytest.raises(TypeError, match="hidden"):
        mean_pool(h.long(), mask)
    with pytest.raises(ValueError, match="hidden"):
        mean_pool(h[0], mask)
    with pytest.raises(ValueError, match="attention_mask"):
        mean_pool(h, mask[:, :3])
    with pytest.raises(TypeError, match="normalize"):
        mean_pool(h, mask, normalize=1)


def test_bert_classifier(device):
    enc = tiny(6)
    clf = BertClassifier(enc, num_outputs=3).to(device).eval()
    ids, mask, types = batch(device)
    with torch.no_grad():
        z = clf(ids, mask, types)
        h = enc(ids, mask, types)
    assert z.shape == (3, 3)
    assert_close(z, clf.head(h[:, 0]), rtol=1e-5, atol=1e-6)
    clf_mean = BertClassifier(enc, pooling="mean").to(device).eval()
    with torch.no_grad():
        assert_close(
            clf_mean(ids, mask),
            clf_mean.head(mean_pool(enc(ids, mask), mask)),
            rtol=1e-5,
            atol=1e-6,
        )
    with pytest.raises(TypeError, match="encoder"):
        BertClassifier(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="num_outputs"):
        BertClassifier(enc, num_outputs=0)
    with pytest.raises(ValueError, match="pooling"):
        BertClassifier(enc, pooling="max")


# ------------------------------------------------------------------ tokenizers
def test_wordpiece_tokenizer_basics():
    tok = WordPieceTokenizer(VOCAB)
    assert tok.tokenize("Hello, worlds!") == ["hello", ",", "world", "##s", "!"]
    assert tok.tokenize("hel\x00lo\u200b") == ["hello"]  # NUL and format chars dropped
    assert tok.tokenize("xyz 中文") == ["[UNK]", "中", "文"]
    ids, types = tok.encode("a", pair="b c")
    assert ids == [3, 6, 4, 7, 8, 4] and types == [0, 0, 0, 1, 1, 1]
    b_ids, b_mask, b_types = tok.batch_encode(["a", "a b c"], ["b", "c"])
    assert b_ids.tolist() == [[3, 6, 4, 7, 4, 0, 0], [3, 6, 7, 8, 4, 8, 4]]
    assert b_mask.tolist() == [[1, 1, 1, 1, 1, 0, 0], [1] * 7]
    assert b_types.tolist() == [[0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1, 1]]
    with pytest.raises(TypeError, match="vocab"):
        WordPieceTokenizer(list(VOCAB))
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        WordPieceTokenizer({k: v for k, v in VOCAB.items() if k != "[MASK]"})
    with pytest.raises(TypeError, match="text"):
        tok.tokenize(b"bytes")
    with pytest.raises(ValueError, match="pairs"):
        tok.batch_encode(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="texts"):
        tok.batch_encode("a b")


SPACES = " \t\n\r\u00a0\u2002\u3000"


@given(
    st.text(
        alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPACES + "aé中")),
        max_size=60,
    ),
    st.booleans(),
)
def test_char_aligned_properties(text, lowercase):
    out = char_aligned_tokenize(text, VOCAB, lowercase=lowercase)
    assert len(out) == len(text) + 2 and out[0] == "[CLS]" and out[-1] == "[SEP]"
    for ch, t in zip(text, out[1:-1]):
        is_space = ch in " \t\n\r" or __import__("unicodedata").category(ch) == "Zs"
        if ch in VOCAB:
            assert t == ch
        elif is_space:
            assert t == "[unused1]"
        else:
            assert t in VOCAB  # [UNK] or the lower-cased / accent-stripped character
            assert t == "[UNK]" or (lowercase and len(t) == 1)


def test_char_aligned_cases():
    assert char_aligned_tokenize("", VOCAB) == ["[CLS]", "[SEP]"]
    assert char_aligned_tokenize("A é\u3000中", VOCAB) == [
        "[CLS]",
        "[UNK]",
        "[unused1]",
        "é",
        "[unused1]",
        "中",
        "[SEP]",
    ]
    assert char_aligned_tokenize("AÉ\x0b", VOCAB, lowercase=True) == [
        "[CLS]",
        "a",
        "é",
        "[UNK]",
        "[SEP]",
    ]  # \x0b is a control, not a keras-bert space
    assert char_aligned_tokenize("Ê", VOCAB, lowercase=True)[1] == "e"  # accent stripped
    with pytest.raises(TypeError, match="text"):
        char_aligned_tokenize(["a"], VOCAB)
    with pytest.raises(TypeError, match="vocab"):
        char_aligned_tokenize("a", list(VOCAB))
    with pytest.raises(ValueError, match=r"\[unused1\]"):
        char_aligned_tokenize("a", {k: v for k, v in VOCAB.items() if k != "[unused1]"})
