"""su_notes.bert.wobert (post 31): the WoBERT tokenizer against jieba 0.42.1's `cut(HMM=False)` and
transformers' BertTokenizer, the vocabulary extension against the reference code's ranking of
`jieba.dt.FREQ`, the embedding initialisation against a per-word mean, bad input (clear error,
nothing mutated), and round-trip properties (hypothesis)."""

import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from su_notes.bert.model import WordPieceTokenizer
from su_notes.bert.wobert import (
    SAMPLE_TEXTS,
    SPECIAL_TOKENS,
    WoBertTokenizer,
    build_char_vocab,
    extend_vocab,
    init_word_embeddings_,
    jieba_word_counts,
)
from su_notes.core import assert_close

jieba = pytest.importorskip("jieba")

pytestmark = pytest.mark.usefixtures("one_thread")

# sentences written for these tests (not the notebook's paragraphs)
SENTENCES = [
    "我们明天上午去图书馆借几本关于历史的书。",
    "这台新电脑的速度很快，但是价格有点贵。",
    "他从小就喜欢画画，后来考上了美术学院。",
    "天气预报说下午有雷阵雨，出门记得带伞。",
    "研究人员发现，适量运动可以改善记忆力。",
    "用Python写一个程序，统计文章里每个词出现的次数。",
]


@pytest.fixture(scope="module")
def counts():
    return jieba_word_counts()


@pytest.fixture(scope="module")
def base(counts):
    return build_char_vocab(counts)


@pytest.fixture(scope="module")
def extended(base, counts):
    return extend_vocab(base, 20000, counts)


@pytest.fixture(scope="module")
def tok(extended):
    return WoBertTokenizer(extended[0])


# --- peer: jieba 0.42.1 cut(HMM=False) ------------------------------------------------------


def test_segmentation_matches_jieba(tok, extended):
    vocab = extended[0]
    chars = WordPieceTokenizer(vocab)  # BERT's char-level tokenizer, for the fallback pieces
    for s in SENTENCES + SAMPLE_TEXTS:
        pieces = list(jieba.cut(s.lower(), HMM=False))
        tokens = tok.tokenize(s)
        in_vocab = [p for p in pieces if p in vocab]
        # every in-vocabulary jieba piece is a token, in order, and the other tokens come from the
        # pieces jieba returned outside the vocabulary
        assert [t for t in tokens if len(t) > 1 and not t.startswith("##")] == [p for p in in_vocab if len(p) > 1]
        it = iter(tokens)
        for p in pieces:
            if p in vocab:
                assert next(it) == p
            else:
                for t in chars.tokenize(p):
                    assert next(it) == t
        assert next(it, None) is None


def test_hmm_would_differ(extended):
    "The peer comparison can fail: full-mode segmentation gives other tokens."
    vocab = extended[0]
    full = WoBertTokenizer(vocab, pre_tokenize=lambda s: jieba.cut(s, cut_all=True))
    default = WoBertTokenizer(vocab)
    assert any(full.tokenize(s) != default.tokenize(s) for s in SENTENCES)


def test_oov_word_falls_back_to_characters(tok, counts, extended):
    vocab = extended[0]
    assert "今天天气" in counts and "今天天气" not in vocab
    assert tok.tokenize("今天天气很好") == ["今", "天", "天", "气", "很", "好"]
    assert tok.tokenize("学习Python") == ["学习", "p", "##y", "##t", "##h", "##o", "##n"]
    assert tok.tokenize("一个𠀋字") == ["一个", "[UNK]", "字"]


# --- peer: transformers' BertTokenizer (N = 0 reduces to BERT's tokenizer) ---------------------


def test_base_vocab_equals_bert_tokenizer(base):
    transformers = pytest.importorskip("transformers")
    ref = transformers.BertTokenizer(vocab=dict(base), do_lower_case=True)
    ours = WoBertTokenizer(base)
    for s in SENTENCES + SAMPLE_TEXTS + ["Hello, Wörld! naïve café 3.14 e-mail"]:
        assert ours.tokenize(s) == ref.tokenize(s), s


# --- vocabulary ---------------------------------------------------------------------------------


def test_extend_vocab_matches_reference_ranking(base, counts):
    "The reference (train.py) ranks jieba's in-memory table jieba.dt.FREQ; rebuild that list."
    jieba.initialize()
    ranked = sorted(jieba.dt.FREQ.items(), key=lambda kv: -kv[1])
    for n in (0, 1, 500, 3000):
        ref, taken = dict(base), []
        for w, _ in ranked:
            if len(taken) == n:
                break
            if w not in ref:
                ref[w] = len(ref)
                taken.append(w)
        vocab, words = extend_vocab(base, n, counts)
        assert words == taken and vocab == ref


def test_extend_vocab_properties(base, extended, counts):
    vocab, words = extended
    assert len(words) == 20000 and len(vocab) == len(base) + 20000
    assert all(vocab[w] == len(base) + i for i, w in enumerate(words))
    c = [counts[w] for w in words]
    assert c == sorted(c, reverse=True)
    assert max(v for w, v in counts.items() if w not in vocab) <= c[-1]


@given(
    st.dictionaries(st.text("abcdefg", min_size=1, max_size=3), st.integers(0, 9), max_size=30),
    st.integers(0, 40),
)
def test_extend_vocab_hypothesis(counts, n):
    base = {"[PAD]": 0, "a": 1}
    before = dict(base)
    vocab, words = extend_vocab(base, n, counts)
    assert base == before  # not mutated
    missing = [w for w in counts if w not in base]
    assert len(words) == min(n, len(missing))
    assert sorted(vocab.values()) == list(range(len(vocab)))
    if words:  # nothing left out is more frequent than what was taken
        assert all(counts[w] <= counts[words[-1]] for w in missing if w not in vocab)


def test_build_char_vocab(counts):
    v = build_char_vocab({"中国": 3, "AB": 1}, extra="龘")
    assert [v[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert all(t in v for t in ("中", "国", "a", "b", "##a", "龘", "，"))
    assert "A" not in v  # the tokenizer lower-cases, so capitals are never looked up
    assert sorted(v.values()) == list(range(len(v)))
    full = build_char_vocab(counts)
    assert all(w.lower() in full for w in counts if len(w) == 1)


def test_jieba_word_counts_file(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("中国 5 ns\n人 3\n中国 7 ns\n\n", encoding="utf-8")
    assert jieba_word_counts(str(p)) == {"中国": 7, "人": 3}  # a repeated word keeps its last count
    p.write_text("中国 five\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        jieba_word_counts(str(p))


# --- round trip and encode ----------------------------------------------------------------------


def _normal(s):
    return "".join(s.lower().split())


def test_round_trip_sample(tok):
    for s in SENTENCES + SAMPLE_TEXTS:
        tokens = tok.tokenize(s)
        assert "[UNK]" not in tokens
        assert "".join(t.removeprefix("##") for t in tokens) == _normal(s)


ALPHABET = (  # common characters, Latin letters, digits and a space
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
    "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自"
    "二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日"
    "那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变"
    "条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指"
    "几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器"
    "压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安"
    "场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集"
    "温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连"
    "断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精"
    "值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属"
    "圆包火住调满县局照参红细引听该铁价严abcXYZ09 "
)


@given(st.text(ALPHABET, max_size=40))
def test_round_trip_property(tok, s):
    tokens = tok.tokenize(s)
    assert "".join(t.removeprefix("##") for t in tokens) == _normal(s)
    assert len(tokens) <= len(_normal(s))  # words never lengthen the char-level sequence


def test_encode(tok):
    ids, types = tok.encode("今天很好", pair="明天呢")
    assert ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2
    n_a = len(tok.tokenize("今天很好")) + 2
    assert types == [0] * n_a + [1] * (len(ids) - n_a)
    assert [tok.ids_to_tokens[i] for i in ids[1 : n_a - 1]] == tok.tokenize("今天很好")
    ids1, types1 = tok.encode("今天很好")
    assert ids1 == ids[:n_a] and set(types1) == {0}


# --- embedding initialisation -------------------------------------------------------------------


def test_init_is_mean_of_characters(extended, device):
    vocab, words = extended
    g = torch.Generator().manual_seed(0)
    w = torch.randn(len(vocab), 8, generator=g, dtype=torch.float64).to(device)
    before = w.clone()
    out = init_word_embeddings_(w, words, vocab)
    assert out is w
    pick = torch.randperm(len(words), generator=g)[:200].tolist()
    for i in pick:
        expected = torch.stack([before[vocab[c]] for c in words[i]]).mean(0)
        assert_close(w[vocab[words[i]]], expected, rtol=1e-14, atol=1e-14)
    n_base = len(vocab) - len(words)
    # exact: rows of the base vocabulary are never written
    assert torch.equal(w[:n_base], before[:n_base])


def test_init_module_order_and_precall_rows(device):
    vocab = {"[UNK]": 0, "a": 1, "b": 2, "ab": 3, "ba": 4}
    emb = nn.Embedding(5, 3).to(device)
    before = emb.weight.detach().clone()
    init_word_embeddings_(emb, ["ab", "ba", "a"], vocab)  # "a" is rewritten with its own row
    w1 = emb.weight.detach().clone()
    emb.weight.data.copy_(before)
    init_word_embeddings_(emb, ["a", "ba", "ab"], vocab)
    # exact: the same means of the same pre-call rows, whatever the order of the words
    assert torch.equal(emb.weight.detach(), w1)
    assert_close(w1[3], (before[1] + before[2]) / 2, rtol=1e-6, atol=1e-7)
    assert_close(w1[1], before[1], rtol=1e-6, atol=1e-7)
    assert emb.weight.requires_grad and emb.weight.grad is None


def test_init_missing_modes():
    vocab = {"[UNK]": 0, "中": 1, "中𠀋": 2}
    w0 = torch.tensor([[2.0, 0.0], [4.0, 8.0], [0.0, 0.0]])
    # exact: means of small integers
    assert init_word_embeddings_(w0.clone(), ["中𠀋"], vocab, missing="skip")[2].tolist() == [4, 8]
    assert init_word_embeddings_(w0.clone(), ["中𠀋"], vocab, missing="unk")[2].tolist() == [3, 4]
    split = lambda w: ["中", "中"]  # noqa: E731
    assert init_word_embeddings_(w0.clone(), ["中𠀋"], vocab, split=split)[2].tolist() == [4, 8]


@pytest.mark.parametrize(
    "call, err, msg",
    [
        (lambda w, v: init_word_embeddings_(w, ["中𠀋"], v), ValueError, "is not in vocab"),
        (lambda w, v: init_word_embeddings_(w, ["中"] + ["不在"], v), ValueError, "Invalid words"),
        (lambda w, v: init_word_embeddings_(w, "中𠀋", v), TypeError, "not one string"),
        (lambda w, v: init_word_embeddings_(w, [3], v), TypeError, "must be strings"),
        (lambda w, v: init_word_embeddings_(w, ["中"], v, missing="drop"), ValueError, "missing"),
        (
            lambda w, v: init_word_embeddings_(w, ["中"], v, split="list"),
            TypeError,
            "Invalid split",
        ),
        (lambda w, v: init_word_embeddings_(w, ["中"], list(v)), TypeError, "Invalid vocab"),
        (
            lambda w, v: init_word_embeddings_(w[:2], ["中𠀋"], v, missing="skip"),
            ValueError,
            "outside",
        ),
        (lambda w, v: init_word_embeddings_(w.long(), ["中"], v), TypeError, "floating"),
        (lambda w, v: init_word_embeddings_(w[0], ["中"], v), ValueError, "Invalid emb"),
        (
            lambda w, v: init_word_embeddings_(w, ["中𠀋"], {"中": 1, "中𠀋": 2}, missing="unk"),
            ValueError,
            "has no [UNK]",
        ),
    ],
)
def test_init_bad_input_mutates_nothing(call, err, msg):
    vocab = {"[UNK]": 0, "中": 1, "中𠀋": 2}
    w = torch.tensor([[2.0, 0.0], [4.0, 8.0], [1.0, 1.0]])
    w0 = w.clone()
    with pytest.raises(err, match=msg.replace("[", r"\[").replace("]", r"\]")):
        call(w, vocab)
    assert torch.equal(w, w0)  # exact: nothing was written


# --- bad input and the lazy jieba import --------------------------------------------------------


def test_tokenizer_bad_input(extended, tok):
    vocab = extended[0]
    with pytest.raises(TypeError, match="Invalid text"):
        tok.tokenize(None)
    with pytest.raises(TypeError, match="Invalid vocab"):
        WoBertTokenizer(list(vocab))
    with pytest.raises(ValueError, match="ids must be 0..V-1"):
        WoBertTokenizer({"[PAD]": 0, "[UNK]": 2})
    with pytest.raises(ValueError, match="has no"):
        WoBertTokenizer({"[PAD]": 0, "[UNK]": 1}, pre_tokenize=str.split)
    with pytest.raises(TypeError, match="Invalid lowercase"):
        WoBertTokenizer(vocab, lowercase="yes")
    with pytest.raises(TypeError, match="Invalid pre_tokenize"):
        WoBertTokenizer(vocab, pre_tokenize=3)
    with pytest.raises(TypeError, match="Invalid num_words"):
        extend_vocab(vocab, 2.0)
    with pytest.raises(ValueError, match="Invalid num_words"):
        extend_vocab(vocab, -1)
    with pytest.raises(TypeError, match="Invalid counts"):
        build_char_vocab(["中国"])
    with pytest.raises(TypeError, match="Invalid extra"):
        build_char_vocab({}, extra=["a"])


def test_missing_jieba_raises_importerror(monkeypatch, base):
    monkeypatch.setitem(sys.modules, "jieba", None)  # `import jieba` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install su_notes\[text\]"):
        WoBertTokenizer(base)
    with pytest.raises(ImportError, match="jieba"):
        jieba_word_counts()
    # a custom segmenter needs no jieba
    t = WoBertTokenizer(base, pre_tokenize=lambda s: [s])
    assert t.tokenize("中文abc") == ["中", "文", "a", "##b", "##c"]
