"""Tests of `su_notes.text.tokenize` (post 28, Viterbi sampling): peers, closed forms, bad input.

Peers, each given only the dictionary file and the text, never a piece of the code under test:
- sentencepiece 0.2.3: a Unigram `ModelProto` written here from jieba's `dict.txt` (its own parsing and
  normalisation); `encode` must give `viterbi_decode`'s tokens (runs of unknown characters joined, as
  sentencepiece reports them), and `encode(enable_sampling=True, nbest_size=-1)` samples the same P^α.
- jieba 0.42.1: `cut(HMM=False)` is the same max-log-probability DAG search on the same frequencies (with a
  backward recursion, its own tie rule and a total that counts one repeated line twice): equal on pure-Chinese
  text except near-ties.
Closed forms: brute-force enumeration of all segmentations (argmax, logsumexp, P^α) on random small vocabularies
(hypothesis), chi-square tests of the samplers against enumeration with fixed seeds.
"""

import collections
import itertools
import math
import os
import random
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from su_notes.text.tokenize import (
    SAMPLING_METHODS,
    UnigramModel,
    log_partition,
    segmentation_log_prob,
    segmentations,
    to_sentencepiece,
    viterbi_decode,
    viterbi_decode_batch,
    viterbi_sample,
    viterbi_sample_batch,
)

jieba = pytest.importorskip("jieba")
JIEBA_DICT = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")


@pytest.fixture(scope="module")
def model():
    return UnigramModel.from_jieba()


@pytest.fixture(scope="module")
def counts():
    "Word -> count, read here from dict.txt (independent of the module's reader)."
    out = {}
    for line in open(JIEBA_DICT, encoding="utf-8"):
        w, c = line.rstrip("\n").split(" ")[:2]
        out[w] = int(c)
    return out


def word_sentences(counts, n, seed, pattern=None):
    "n concatenations of 2–8 dictionary words drawn by frequency (only words matching `pattern`)."
    rng = random.Random(seed)
    words = [w for w in counts if pattern is None or re.fullmatch(pattern, w)]
    cum = list(itertools.accumulate(counts[w] for w in words))
    return ["".join(rng.choices(words, cum_weights=cum, k=rng.randint(2, 8))) for _ in range(n)]


def chi2_p(counter, probs, n):
    "Chi-square p-value of sampled paths against exact probabilities; cells expected < 5 pooled."
    keys = sorted(probs, key=probs.get, reverse=True)
    obs = np.array([counter.get(k, 0) for k in keys], dtype=float)
    exp = np.array([probs[k] * n for k in keys])
    assert sum(counter.values()) == obs.sum(), "a path outside the lattice was sampled"
    small = exp < 5
    obs, exp = (
        np.append(obs[~small], obs[small].sum()),
        np.append(exp[~small], exp[small].sum()),
    )
    keep = exp > 0
    return stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue


def exact_q(text, model, alpha):
    "P^α / Z by brute force: exp and sum over the enumerated paths (no forward algorithm)."
    paths = segmentations(text, model)
    m = max(alpha * lp for _, lp in paths)
    z = math.fsum(math.exp(alpha * lp - m) for _, lp in paths)
    return {tuple(ws): math.exp(alpha * lp - m) / z for ws, lp in paths}


# ---------------------------------------------------------------- the model
def test_jieba_model_counts(model, counts):
    assert len(model) == len(counts) == 349_045
    total = sum(counts.values())
    for w in ("的", "今天", "中国科学院", "AT&T"):
        assert abs(model.log_prob(w) - math.log(counts[w] / total)) < 1e-12
    assert model.log_prob("不是一个词吗") == -math.inf and model.log_prob("") == -math.inf
    assert model.unk_log_prob == pytest.approx(math.log(min(counts.values()) / total) - 10, abs=1e-12)
    assert UnigramModel.from_jieba() is model  # cached per process


def test_from_counts_drops_zero_and_normalises():
    m = UnigramModel.from_counts({"a": 1, "b": 3, "c": 0})
    assert "c" not in m and len(m) == 2
    assert m.log_prob("b") == pytest.approx(math.log(0.75), abs=1e-15)
    assert m.unk_log_prob == pytest.approx(math.log(0.25) - 10, abs=1e-15)


# ---------------------------------------------------------------- peers: sentencepiece, jieba
@pytest.fixture(scope="module")
def sp(counts):
    "sentencepiece Unigram model written here from dict.txt: pieces = words, score = log(c/total)."
    spm = pytest.importorskip("sentencepiece")
    from sentencepiece import sentencepiece_model_pb2 as pb

    p = pb.ModelProto()
    p.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    p.normalizer_spec.name = "identity"
    p.normalizer_spec.add_dummy_prefix = False
    p.normalizer_spec.remove_extra_whitespaces = False
    p.normalizer_spec.escape_whitespaces = False
    for piece, kind in (
        ("<unk>", pb.ModelProto.SentencePiece.UNKNOWN),
        ("<s>", pb.ModelProto.SentencePiece.CONTROL),
        ("</s>", pb.ModelProto.SentencePiece.CONTROL),
    ):
        p.pieces.add(piece=piece, type=kind)
    log_total = math.log(sum(counts.values()))
    for w, c in counts.items():
        p.pieces.add(piece=w, score=math.log(c) - log_total)
    return spm.SentencePieceProcessor(model_proto=p.SerializeToString())


def join_unknown(words, model):
    "Runs of one-character words outside the vocabulary joined into one, as sentencepiece reports them."
    out, prev_unk = [], False
    for w in words:
        unk = len(w) == 1 and w not in model
        if unk and prev_unk:
            out[-1] += w
        else:
            out.append(w)
        prev_unk = unk
    return out


def test_decode_equals_sentencepiece(model, counts, sp):
    texts = word_sentences(counts, 300, seed=10) + [
        "今天天气不错",
        "南京市长江大桥",
        "工信处女干事每月经过下属科室",
        "A股abc的走势🐍🐍",
        "ⅩⅣ世纪x的欧洲",
    ]
    ours = [join_unknown(viterbi_decode(t, model), model) for t in texts]
    assert ours == sp.encode(texts, out_type=str)


@given(st.text(alphabet="今天天气不错研究生命的起源结婚和尚未x🐍", min_size=1, max_size=14))
def test_decode_equals_sentencepiece_property(model, sp, text):
    assert join_unknown(viterbi_decode(text, model), model) == sp.encode(text, out_type=str)


def test_decode_matches_jieba_no_hmm(model, counts):
    "jieba.cut(HMM=False) on pure-Chinese text: same tokens, or a tie to within 1e-9 nats."
    tk = jieba.Tokenizer()
    tk.initialize()
    texts = word_sentences(counts, 300, seed=11, pattern="[\u4e00-\u9fd5]+")
    ties = 0
    for t in texts:
        ours, theirs = viterbi_decode(t, model), list(tk.cut(t, HMM=False))
        if ours != theirs:
            assert "".join(theirs) == t
            assert abs(segmentation_log_prob(ours, model) - segmentation_log_prob(theirs, model)) < 1e-9
            ties += 1
    assert ties <= 3


# ---------------------------------------------------------------- closed forms on small random vocabularies
@st.composite
def small_case(draw):
    "A random vocabulary over 'abc' with random log-probabilities and a text over 'abcd' (d unknown)."
    words = draw(st.sets(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=12))
    lps = draw(st.lists(st.floats(-8, -0.1), min_size=len(words), max_size=len(words)))
    text = draw(st.text(alphabet="abcd", min_size=1, max_size=9))
    return UnigramModel(dict(zip(sorted(words), lps))), text


@given(small_case(), st.floats(0.05, 3.0))
def test_decode_and_partition_match_enumeration(case, alpha):
    m, text = case
    paths = segmentations(text, m)
    assert all("".join(ws) == text for ws, _ in paths)
    assert len({tuple(ws) for ws, _ in paths}) == len(paths)
    best = viterbi_decode(text, m)
    # the same float additions in the same order as the enumeration's
    assert segmentation_log_prob(best, m) == max(lp for _, lp in paths)
    brute = max(alpha * lp for _, lp in paths)
    brute += math.log(math.fsum(math.exp(alpha * lp - brute) for _, lp in paths))
    assert log_partition(text, m, alpha) == pytest.approx(brute, rel=1e-12, abs=1e-12)


@given(small_case(), st.sampled_from(SAMPLING_METHODS), st.integers(0, 2**32))
def test_samples_are_segmentations(case, method, seed):
    m, text = case
    ws = viterbi_sample(text, m, 0.5, method, random.Random(seed))
    assert "".join(ws) == text
    assert tuple(ws) in {tuple(p) for p, _ in segmentations(text, m)}


# ---------------------------------------------------------------- the samplers' distributions
TOY = UnigramModel({"a": -1.0, "ab": -2.0, "bc": -2.0, "c": -1.0, "abc": -3.0}, unk_penalty=1e3)


def test_sigmoid_three_equal_paths_quarter_quarter_half():
    rng = random.Random(0)
    c = collections.Counter(tuple(viterbi_sample("abc", TOY, 1.0, "sigmoid", rng)) for _ in range(12_000))
    q = {("abc",): 0.25, ("a", "bc"): 0.25, ("ab", "c"): 0.5}
    assert chi2_p(c, q, 12_000) > 1e-3
    assert chi2_p(c, {k: 1 / 3 for k in q}, 12_000) < 1e-6


@pytest.mark.parametrize(
    "text,alpha,seed",
    [
        ("今天天气不错", 0.1, 0),
        ("结婚的和尚未结婚的", 0.3, 1),
        ("研究生命的起源", 1.0, 2),
        ("abc", 1.0, 3),
    ],
)
def test_reservoir_is_exact(model, text, alpha, seed):
    m = TOY if text == "abc" else model
    rng, n = random.Random(seed), 6000
    c = collections.Counter(tuple(viterbi_sample(text, m, alpha, "reservoir", rng)) for _ in range(n))
    assert chi2_p(c, exact_q(text, m, alpha), n) > 1e-3


def test_sigmoid_is_rejected_by_the_same_test(model):
    "The chi-square test above can fail: it rejects the biased rule."
    rng, n = random.Random(5), 6000
    c = collections.Counter(tuple(viterbi_sample("结婚的和尚未结婚的", model, 0.1, "sigmoid", rng)) for _ in range(n))
    assert chi2_p(c, exact_q("结婚的和尚未结婚的", model, 0.1), n) < 1e-6


def test_sentencepiece_sampling_alpha_is_the_exponent(model, sp):
    spm = pytest.importorskip("sentencepiece")
    text, n = "结婚的和尚未结婚的", 6000
    for k, alpha in enumerate((0.1, 0.7)):
        spm.set_random_generator_seed(20 + k)
        c = collections.Counter(
            tuple(sp.encode(text, out_type=str, enable_sampling=True, alpha=alpha, nbest_size=-1)) for _ in range(n)
        )
        # sentencepiece's draws differ between processes even with a seed (0.2.3), so this test is random:
        # 1e-6 keeps its false-alarm rate negligible; the wrong exponent below still gives p < 1e-6
        assert chi2_p(c, exact_q(text, model, alpha), n) > 1e-6
        # the same counts are far from a temperature reading P^(1/α)
        assert chi2_p(c, exact_q(text, model, 1 / alpha), n) < 1e-6


def test_alpha_limits(model):
    text = "结婚的和尚未结婚的"
    rng = random.Random(0)
    assert all(
        viterbi_sample(text, model, 1e3, m, rng) == viterbi_decode(text, model)
        for m in SAMPLING_METHODS
        for _ in range(20)
    )
    c = collections.Counter(tuple(viterbi_sample(text, model, 1e-9, "reservoir", rng)) for _ in range(4000))
    paths = segmentations(text, model)
    assert chi2_p(c, {tuple(ws): 1 / len(paths) for ws, _ in paths}, 4000) > 1e-3


def test_generators_reproducible(model, device):
    text = "研究生命的起源结婚的和尚未结婚的"
    a = [viterbi_sample(text, model, 0.2, generator=random.Random(7)) for _ in range(3)]
    b = [viterbi_sample(text, model, 0.2, generator=random.Random(7)) for _ in range(3)]
    assert a == b
    g1, g2 = (
        torch.Generator(device=device).manual_seed(3),
        torch.Generator(device=device).manual_seed(3),
    )
    s1 = [viterbi_sample(text, model, 0.2, generator=g1) for _ in range(10)]
    s2 = [viterbi_sample(text, model, 0.2, generator=g2) for _ in range(10)]
    assert s1 == s2 and len({tuple(s) for s in s1}) > 1  # each call draws a fresh seed
    random.seed(1)
    c = viterbi_sample(text, model, 0.2)
    random.seed(1)
    assert viterbi_sample(text, model, 0.2) == c  # None: the module-level `random`


# ---------------------------------------------------------------- batch versions
def test_batch_decode_equals_loop(model, counts):
    texts = word_sentences(counts, 200, seed=12) + ["今天天气不错😀😀真好", "a", "ⅩⅣ世纪x"]
    assert viterbi_decode_batch(texts, model) == [viterbi_decode(t, model) for t in texts]


@given(
    st.lists(small_case(), min_size=1, max_size=1),
    st.lists(st.text("abcd", min_size=1, max_size=9), min_size=1, max_size=5),
)
def test_batch_decode_property(cases, more):
    m, text = cases[0]
    texts = [text] + more
    assert viterbi_decode_batch(texts, m) == [viterbi_decode(t, m) for t in texts]
    out = viterbi_sample_batch(texts, m, 0.7, np.random.default_rng(0))
    assert ["".join(ws) for ws in out] == texts


@pytest.mark.parametrize("text,alpha,seed", [("结婚的和尚未结婚的", 0.1, 0), ("今天天气不错", 1.0, 1), ("abc", 1.0, 2)])
def test_batch_sample_is_exact(model, text, alpha, seed):
    m, n = (TOY if text == "abc" else model), 6000
    out = viterbi_sample_batch([text] * n, m, alpha, np.random.default_rng(seed))
    c = collections.Counter(map(tuple, out))
    assert chi2_p(c, exact_q(text, m, alpha), n) > 1e-3


def test_batch_bad_input(model):
    for call, err, msg in [
        (lambda: viterbi_decode_batch([], model), TypeError, "Invalid texts"),
        (lambda: viterbi_decode_batch("今天", model), TypeError, "Invalid texts"),
        (lambda: viterbi_decode_batch(["今天", ""], model), ValueError, "Invalid text"),
        (lambda: viterbi_decode_batch(["今天", 3], model), TypeError, "Invalid text"),
        (lambda: viterbi_sample_batch(["今天"], model, 0.0), ValueError, "Invalid alpha"),
        (
            lambda: viterbi_sample_batch(["今天"], model, 0.1, random.Random(0)),
            TypeError,
            "Invalid generator",
        ),
        (lambda: viterbi_sample_batch(["今天"], {}, 0.1), TypeError, "Invalid model"),
    ]:
        with pytest.raises(err, match=re.escape(msg)):
            call()


# ---------------------------------------------------------------- bad input: error naming the argument, nothing mutated
@pytest.mark.parametrize(
    "call,err,msg",
    [
        (lambda m: viterbi_decode("", m), ValueError, "Invalid text"),
        (lambda m: viterbi_decode(b"abc", m), TypeError, "Invalid text"),
        (lambda m: viterbi_decode("abc", {"a": -1.0}), TypeError, "Invalid model"),
        (lambda m: viterbi_sample("", m, 0.1), ValueError, "Invalid text"),
        (lambda m: viterbi_sample("今天", m, 0), ValueError, "Invalid alpha"),
        (lambda m: viterbi_sample("今天", m, -1.0), ValueError, "Invalid alpha"),
        (lambda m: viterbi_sample("今天", m, math.inf), ValueError, "Invalid alpha"),
        (lambda m: viterbi_sample("今天", m, math.nan), ValueError, "Invalid alpha"),
        (lambda m: viterbi_sample("今天", m, True), TypeError, "Invalid alpha"),
        (
            lambda m: viterbi_sample("今天", m, 0.1, method="exact"),
            ValueError,
            "Invalid method",
        ),
        (
            lambda m: viterbi_sample("今天", m, 0.1, generator=np.random.default_rng(0)),
            TypeError,
            "Invalid generator",
        ),
        (lambda m: log_partition("今天", m, 0.0), ValueError, "Invalid alpha"),
        (lambda m: log_partition("", m), ValueError, "Invalid text"),
        (lambda m: segmentations("今天天气不错", m, limit=3), ValueError, "limit=3"),
        (lambda m: segmentation_log_prob([], m), TypeError, "Invalid words"),
        (lambda m: segmentation_log_prob(["今天", ""], m), TypeError, "Invalid words"),
        (lambda m: to_sentencepiece({"a": -1.0}), TypeError, "Invalid model"),
    ],
)
def test_bad_input(model, call, err, msg):
    n, lp, unk = len(model), model.log_prob("今天"), model.unk_log_prob
    with pytest.raises(err, match=re.escape(msg)):
        call(model)
    assert (len(model), model.log_prob("今天"), model.unk_log_prob) == (n, lp, unk)


@pytest.mark.parametrize(
    "make,err,msg",
    [
        (lambda d: UnigramModel({}), ValueError, "Invalid log_probs"),
        (lambda d: UnigramModel([("a", -1.0)]), TypeError, "Invalid log_probs"),
        (lambda d: UnigramModel({**d, "": -1.0}), TypeError, "Invalid log_probs"),
        (lambda d: UnigramModel({**d, 3: -1.0}), TypeError, "Invalid log_probs"),
        (
            lambda d: UnigramModel({**d, "x": math.nan}),
            ValueError,
            "Invalid log_probs['x']",
        ),
        (
            lambda d: UnigramModel({**d, "x": -math.inf}),
            ValueError,
            "Invalid log_probs['x']",
        ),
        (lambda d: UnigramModel({**d, "x": "1"}), TypeError, "Invalid log_probs['x']"),
        (
            lambda d: UnigramModel(d, unk_penalty=-1.0),
            ValueError,
            "Invalid unk_penalty",
        ),
        (
            lambda d: UnigramModel.from_counts({"a": -1}),
            ValueError,
            "Invalid counts['a']",
        ),
        (lambda d: UnigramModel.from_counts({"a": 0}), ValueError, "Invalid counts"),
        (
            lambda d: UnigramModel.from_counts({"a": True}),
            TypeError,
            "Invalid counts['a']",
        ),
        (
            lambda d: UnigramModel.from_counts({"a": math.inf}),
            ValueError,
            "Invalid counts['a']",
        ),
    ],
)
def test_bad_model_input(make, err, msg):
    d = {"a": -1.0, "ab": -2.0}
    before = dict(d)
    with pytest.raises(err, match=re.escape(msg)):
        make(d)
    assert d == before
