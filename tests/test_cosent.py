"""Tests of `su_notes.text.cosent`: CoSENT against sentence-transformers 6.2.0 and a pairwise reference.

The peer is `sentence_transformers.sentence_transformer.losses.CoSENTLoss(model, scale=20.0)` driven through
`compute_loss_from_embeddings([u, v], labels)`: it gets the raw embeddings and computes its own cosines, so no piece
of the code under test reaches it. The second reference is the O(b²) definition written out below (every ordered
pair of pairs with a strictly lower label). Test ideas ported from sentence-transformers' loss tests (values and
gradients against an explicit-pair reference, tied labels, low precision) and from the post (label-order
invariance); the exact accuracy threshold is checked against brute force. Runs on `--device` (tests/conftest.py).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from su_notes.core import assert_close
from su_notes.text.cosent import CoSENTLoss, best_threshold, cosent_loss

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def pairwise_reference(scores, labels, scale=20.0):
    "log(1 + Σ_{y_i < y_j} exp(λ(c_i − c_j))) by explicit double loop over the b × b comparisons (float64)."
    s = scale * scores.double()
    terms = [torch.zeros((), dtype=F64, device=scores.device)]
    for j in range(len(s)):
        lower = labels < labels[j]
        if lower.any():
            terms.append(torch.logsumexp(s[lower] - s[j], 0))
    return torch.logsumexp(torch.stack(terms), 0)


def st_peer(scale=20.0):
    losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    return losses.CoSENTLoss(None, scale=scale)  # the model is unused by compute_loss_from_embeddings


def ours_from_embeddings(u, v, labels, scale=20.0):
    "Our side of the peer comparison: cosine by normalise + dot, then cosent_loss."
    return cosent_loss((F.normalize(u, dim=1) * F.normalize(v, dim=1)).sum(1), labels, scale)


def random_batch(b, d, n_levels, device, seed=0, dtype=F64):
    g = gen(seed)
    u = torch.randn(b, d, generator=g, dtype=F64)
    v = u + 1.5 * torch.randn(b, d, generator=g, dtype=F64)
    y = torch.randint(0, n_levels, (b,), generator=g)
    return u.to(device, dtype), v.to(device, dtype), y.to(device)


# ---------------------------------------------------------------- sentence-transformers cross-checks
@pytest.mark.parametrize(
    "b,d,n_levels,scale",
    [
        (2, 4, 2, 20.0),
        (64, 384, 6, 20.0),
        (257, 16, 2, 20.0),
        (1000, 32, 1000, 20.0),
        (500, 8, 3, 1.0),
        (300, 8, 5, 80.0),
    ],
)
def test_equals_sentence_transformers_fp64(device, b, d, n_levels, scale):
    peer = st_peer(scale)
    u, v, y = random_batch(b, d, n_levels, device, seed=b)
    theirs = peer.compute_loss_from_embeddings([u, v], y)
    assert_close(ours_from_embeddings(u, v, y, scale), theirs, rtol=1000 * EPS64, atol=1000 * EPS64)


def test_gradients_equal_sentence_transformers(device):
    peer = st_peer()
    u, v, y = random_batch(128, 16, 4, device, seed=3)
    u1, v1 = u.clone().requires_grad_(), v.clone().requires_grad_()
    u2, v2 = u.clone().requires_grad_(), v.clone().requires_grad_()
    g_ours = torch.autograd.grad(ours_from_embeddings(u1, v1, y), (u1, v1))
    g_peer = torch.autograd.grad(peer.compute_loss_from_embeddings([u2, v2], y), (u2, v2))
    for a, b in zip(g_ours, g_peer):
        assert_close(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("labels", ["bool", "float", "real"])
def test_label_dtypes_equal_sentence_transformers(device, labels):
    peer = st_peer()
    u, v, y = random_batch(100, 8, 2, device, seed=5)
    y = {
        "bool": y.bool(),
        "float": y.float(),
        "real": torch.randn(100, generator=gen(6)).round(decimals=1).to(device),
    }[labels]
    assert_close(
        ours_from_embeddings(u, v, y),
        peer.compute_loss_from_embeddings([u, v], y),
        rtol=1000 * EPS64,
        atol=0,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_promoted_like_sentence_transformers(device, dtype):
    peer = st_peer()
    u, v, y = random_batch(200, 16, 4, device, seed=7, dtype=torch.float32)
    c = (F.normalize(u, dim=1) * F.normalize(v, dim=1)).sum(1).to(dtype)
    ours = cosent_loss(c, y)
    assert ours.dtype == torch.float32  # half scores are scanned in float32, as ST does
    ref = pairwise_reference(c.float(), y)
    assert_close(ours.double(), ref, rtol=64 * torch.finfo(torch.float32).eps, atol=0)
    if dtype == torch.float32:
        theirs = peer.compute_loss_from_embeddings([u, v], y)
        assert_close(ours, theirs, rtol=1e-5, atol=1e-5)  # different cosine formulas, float32


def test_sentence_transformers_docstring_sign():
    "6.2.0 documents exp(scale·(s(k,l) − s(i,j))) with label(i,j) > label(k,l): the form the code computes."
    peer = st_peer()
    doc = " ".join(type(peer).__init__.__doc__.split())
    assert "exp(scale * (s(k,l) - s(i,j)))" in doc and "``(i,j)`` is greater than that of ``(k,l)``" in doc
    # two pairs on the unit circle with cosines 0.9 (label 0) and 0.2 (label 1)
    ang = torch.tensor([0.9, 0.2], dtype=F64).acos()
    val = peer.compute_loss_from_embeddings(
        [torch.tensor([[1.0, 0.0]] * 2, dtype=F64), torch.stack([ang.cos(), ang.sin()], 1)],
        torch.tensor([0.0, 1.0]),
    )
    assert_close(val, torch.tensor(math.log1p(math.exp(20 * 0.7)), dtype=F64), rtol=1e-12, atol=0)


# ---------------------------------------------------------------- pairwise definition and properties
@given(
    b=st.integers(1, 60),
    n_levels=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    scale=st.floats(0.1, 100.0),
)
def test_sorted_equals_pairwise_with_ties(device, b, n_levels, seed, scale):
    g = gen(seed)
    c = (torch.rand(b, generator=g, dtype=F64) * 2 - 1).to(device)
    y = torch.randint(0, n_levels, (b,), generator=g).to(device)
    assert_close(
        cosent_loss(c, y, scale),
        pairwise_reference(c, y, scale),
        rtol=256 * EPS64,
        atol=256 * EPS64,
    )


def test_ties_are_not_compared(device):
    c = torch.tensor([0.9, -0.5, 0.3], dtype=F64, device=device)
    # equal labels: Ω is empty and the loss is log 1 = 0 exactly
    assert cosent_loss(c, torch.ones(3, device=device)).item() == 0.0
    # two tied pairs above one lower pair: only the 2 cross comparisons count
    y = torch.tensor([1, 1, 0], device=device)
    expected = math.log(1 + math.exp(20 * (0.3 - 0.9)) + math.exp(20 * (0.3 + 0.5)))
    assert_close(cosent_loss(c, y), torch.tensor(expected, dtype=F64, device=device), rtol=4 * EPS64, atol=0)


@given(seed=st.integers(0, 10_000), b=st.integers(2, 80))
def test_label_order_invariance(device, seed, b):
    g = gen(seed)
    c = (torch.rand(b, generator=g, dtype=F64) * 2 - 1).to(device)
    y = torch.randint(0, 5, (b,), generator=g).to(device, F64)
    base = cosent_loss(c, y)
    # stable sort + searchsorted see only comparisons: the same order gives the same bits
    for mapped in (
        y.exp(),
        3 * y - 7,
        y**3,
        torch.atan(y),
        torch.unique(y, return_inverse=True)[1],
    ):  # last: dense rank
        assert torch.equal(cosent_loss(c, mapped), base)


@given(seed=st.integers(0, 10_000))
def test_permutation_and_shift_invariance(device, seed):
    g = gen(seed)
    c = (torch.rand(50, generator=g, dtype=F64) * 2 - 1).to(device)
    y = torch.randint(0, 4, (50,), generator=g).to(device)
    perm = torch.randperm(50, generator=g).to(device)
    base = cosent_loss(c, y)
    assert_close(cosent_loss(c[perm], y[perm]), base, rtol=64 * EPS64, atol=64 * EPS64)
    assert_close(cosent_loss(c + 0.37, y), base, rtol=1e-12, atol=1e-12)  # only differences c_i − c_j enter


def test_smooth_max_bounds(device):
    "max(0, λ·max violation) ≤ L ≤ that + log(1 + |Ω|)."
    g = gen(11)
    c = (torch.rand(90, generator=g, dtype=F64) * 2 - 1).to(device)
    y = torch.randint(0, 3, (90,), generator=g).to(device)
    lower = y[:, None] < y[None, :]
    worst = (20 * (c[:, None] - c[None, :]))[lower].max().clamp_min(0)
    L = cosent_loss(c, y)
    assert worst <= L <= worst + math.log1p(lower.sum().item())


def test_gradcheck_fp64(device):
    g = gen(12)
    c = (torch.rand(30, generator=g, dtype=F64) * 2 - 1).to(device).requires_grad_()
    y = torch.randint(0, 4, (30,), generator=g).to(device)
    assert torch.autograd.gradcheck(lambda c: cosent_loss(c, y, scale=3.0), (c,))


def test_linear_memory_large_batch(device):
    "b = 2^18: the pairwise form would need a 2^36-entry matrix (256 GiB in float32); the sorted form is O(b)."
    g = gen(13)
    b = 2**18
    c = (torch.rand(b, generator=g) * 2 - 1).to(device).requires_grad_()
    y = torch.randint(0, 6, (b,), generator=g).to(device)
    L = cosent_loss(c, y)
    L.backward()
    assert torch.isfinite(L) and torch.isfinite(c.grad).all()


def test_empty_and_single_pair(device):
    c = torch.zeros(0, dtype=F64, device=device, requires_grad=True)
    L = cosent_loss(c, torch.zeros(0, device=device))
    assert L.item() == 0.0  # logsumexp of the lone 0
    L.backward()
    assert cosent_loss(torch.tensor([0.5], device=device), torch.tensor([1.0], device=device)).item() == 0.0


# ---------------------------------------------------------------- module
def test_module(device):
    g = gen(14)
    c, y = (
        (torch.rand(20, generator=g) * 2 - 1).to(device),
        torch.randint(0, 3, (20,), generator=g).to(device),
    )
    crit = CoSENTLoss(scale=7.5)
    assert torch.equal(crit(c, y), cosent_loss(c, y, 7.5))  # the same function on the same inputs
    assert repr(crit) == "CoSENTLoss(scale=7.5)" and len(list(crit.parameters())) == 0
    assert crit.state_dict() == {}


# ---------------------------------------------------------------- best_threshold
def brute_force_accuracy(scores, labels):
    cands = [-math.inf] + scores.unique().tolist()
    return max(((scores > t) == labels.bool()).double().mean().item() for t in cands)


@given(b=st.integers(1, 200), seed=st.integers(0, 10_000), rounding=st.sampled_from([None, 1, 2]))
def test_best_threshold_is_exact(device, b, seed, rounding):
    g = gen(seed)
    y = torch.randint(0, 2, (b,), generator=g)
    s = (0.4 * y + 0.4 * torch.randn(b, generator=g, dtype=F64)).tanh()
    if rounding is not None:
        s = s.round(decimals=rounding)
    s, y = s.to(device), y.to(device)
    t, acc = best_threshold(s, y)
    # accuracies are integer counts over the same b: exact comparison
    assert acc == brute_force_accuracy(s, y)
    assert ((s > t) == y.bool()).double().mean().item() == acc


def test_best_threshold_edge_cases(device):
    s = torch.tensor([0.1, 0.2, 0.3], device=device)
    assert best_threshold(s, torch.ones(3, device=device)) == (-math.inf, 1.0)
    t, acc = best_threshold(s, torch.zeros(3, dtype=torch.bool, device=device))
    assert acc == 1.0 and t >= 0.3 - 1e-7
    t, acc = best_threshold(s, torch.tensor([0, 0, 1], device=device))
    assert acc == 1.0 and 0.2 < t < 0.3
    t, acc = best_threshold(torch.tensor([0.5, 0.5], device=device), torch.tensor([0.0, 1.0], device=device))
    assert acc == 0.5  # tied scores cannot be split
    nxt = torch.nextafter(torch.tensor(0.5, dtype=F64), torch.tensor(1.0, dtype=F64))
    t, acc = best_threshold(
        torch.stack([torch.tensor(0.5, dtype=F64), nxt]).to(device),
        torch.tensor([0, 1], device=device),
    )
    assert acc == 1.0 and 0.5 <= t < nxt.item()  # adjacent floats: still a valid cut


# ---------------------------------------------------------------- bad input: clear errors, nothing mutated
@pytest.mark.parametrize(
    "call,err,contains",
    [
        (lambda c, y: cosent_loss(c.tolist(), y), TypeError, "scores"),
        (lambda c, y: cosent_loss(c.long(), y), TypeError, "floating"),
        (lambda c, y: cosent_loss(c[None], y[None]), ValueError, "(b,)"),
        (lambda c, y: cosent_loss(c, y[:3]), ValueError, "labels"),
        (lambda c, y: cosent_loss(c, y.tolist()), TypeError, "labels"),
        (lambda c, y: cosent_loss(c, y.to(torch.complex64)), TypeError, "real"),
        (lambda c, y: cosent_loss(c, y, scale=0.0), ValueError, "scale"),
        (lambda c, y: cosent_loss(c, y, scale=-1.0), ValueError, "scale"),
        (lambda c, y: cosent_loss(c, y, scale=float("inf")), ValueError, "scale"),
        (lambda c, y: cosent_loss(c, y, scale=True), TypeError, "scale"),
        (lambda c, y: cosent_loss(c, y, scale="20"), TypeError, "scale"),
        (lambda c, y: CoSENTLoss(scale=float("nan")), ValueError, "scale"),
        (lambda c, y: best_threshold(c, y * 3), ValueError, "binary"),
        (lambda c, y: best_threshold(c[:0], y[:0]), ValueError, "at least one"),
        (lambda c, y: best_threshold(c, y[:2]), ValueError, "labels"),
        (lambda c, y: best_threshold(c.int(), y), TypeError, "floating"),
    ],
)
def test_bad_input(device, call, err, contains):
    c = torch.tensor([0.1, 0.5, -0.2, 0.9], device=device)
    y = torch.tensor([0, 1, 1, 0], device=device)
    c0, y0 = c.clone(), y.clone()
    with pytest.raises(err, match=None) as e:
        call(c, y)
    assert contains in str(e.value)
    # unchanged: the clones were taken before the call
    assert torch.equal(c, c0) and torch.equal(y, y0)


def test_device_mismatch_rejected():
    if not torch.cuda.is_available():
        pytest.skip("needs a second device")
    with pytest.raises(ValueError, match="device"):
        cosent_loss(torch.rand(3, device="cuda"), torch.zeros(3))
