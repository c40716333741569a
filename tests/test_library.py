"""Tests for su_notes.text.library beyond the notebook's checks.

- independent references: the loss and log-probabilities against a NumPy/SciPy implementation
  (`scipy.special.logsumexp` per row), the PMI matrix against the formula in NumPy, the PMI-SVD embedding against
  scikit-learn's `TruncatedSVD` (Gram matrices, which do not depend on column signs), neighbour recall against
  scikit-learn's `NearestNeighbors`;
- peer: scikit-learn's `adjusted_rand_score` on k-means of the fitted layout (planted groups recovered);
- hypothesis properties: invariance of the loss to rotations, reflections and translations of V, to a common
  scale of the counts ("mean"), and equivariance under a joint permutation of the items;
- gradients: `gradcheck`/`gradgradcheck` in float64, SNE's spring form against autograd on `--device`;
- the diagonal of the counts is ignored (bitwise), reductions, the planted generator's structure, `fit` determinism,
  dtype/device following, and bad input of every public name (clear error naming the argument, nothing mutated).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from scipy.special import logsumexp

from su_notes.core import assert_close
from su_notes.text.library import (
    LibraryFit,
    fit_library_embedding,
    library_log_probs,
    library_loss,
    neighbor_recall,
    planted_cooccurrence,
    pmi_matrix,
    pmi_svd_embedding,
    retrieval_cost,
    squared_distances,
)

F64 = torch.float64
EPS = torch.finfo(F64).eps
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def data(n=7, d=3, seed=0, device="cpu", dtype=F64, symmetric=False):
    g = gen(seed)
    V = torch.randn(n, d, generator=g, dtype=F64)
    C = torch.randint(0, 12, (n, n), generator=g).to(F64)
    if symmetric:
        C = C + C.T
    C[0, 1] += 1  # some mass off the diagonal
    return V.to(device, dtype), C.to(device, dtype)


def numpy_loss(V, C):
    "−Σ_{i≠j} C_ij log p(j|i) / Σ_{i≠j} C_ij with p from scipy's logsumexp, rows one by one."
    V, C = np.asarray(V, dtype=np.float64), np.asarray(C, dtype=np.float64).copy()
    np.fill_diagonal(C, 0)
    n = len(V)
    logp = np.full((n, n), -np.inf)
    for i in range(n):
        others = [k for k in range(n) if k != i]
        s = -((V[i] - V[others]) ** 2).sum(1)
        logp[i, others] = s - logsumexp(s)
    mask = ~np.eye(n, dtype=bool)
    return -(C[mask] * logp[mask]).sum() / C.sum(), logp


# ---------------------------------------------------------------- references
@pytest.mark.parametrize("n,d,seed", [(2, 1, 0), (5, 2, 1), (9, 4, 2), (16, 3, 3)])
def test_loss_and_log_probs_match_numpy(n, d, seed, device):
    V, C = data(n, d, seed)
    ref, logp = numpy_loss(V.numpy(), C.numpy())
    assert_close(library_loss(V.to(device), C.to(device)).cpu(), ref, rtol=200 * EPS, atol=0)
    lp = library_log_probs(V.to(device)).cpu()
    mask = ~torch.eye(n, dtype=torch.bool)
    assert torch.isneginf(lp.diagonal()).all()
    assert_close(lp[mask], torch.from_numpy(logp)[mask], rtol=200 * EPS, atol=200 * EPS)


def test_reductions_and_diagonal(device):
    V, C = data(8, 3, 4, device=device)
    mean, total, none = (library_loss(V, C, r) for r in ("mean", "sum", "none"))
    N = (C * (1 - torch.eye(8, dtype=F64, device=device))).sum()
    assert_close(total, mean * N, rtol=100 * EPS, atol=0)
    assert_close(none.sum(), total, rtol=100 * EPS, atol=0)
    assert none.shape == (8, 8) and (none.diagonal() == 0).all()
    C2 = C.clone()
    C2.diagonal().fill_(1e9)
    # exact by construction: the diagonal is zeroed before any arithmetic
    assert torch.equal(library_loss(V, C2), mean)
    # exact: the same zeroed matrix goes through the same kernels
    assert torch.equal(retrieval_cost(V, C2), retrieval_cost(V, C))
    # exact: the same zeroed matrix goes through the same kernels
    assert torch.equal(pmi_matrix(C2), pmi_matrix(C))


def test_integer_counts_and_dtypes(device):
    V, C = data(6, 2, 5, device=device)
    # exact: integer counts are cast to the float dtype first (small integers convert exactly)
    assert_close(library_loss(V, C.long()), library_loss(V, C), rtol=0, atol=0)
    out = library_loss(V.float(), C)
    assert out.dtype == torch.float32 and out.device.type == torch.device(device).type
    assert_close(out, library_loss(V, C), rtol=1e-5, atol=0)


def test_retrieval_cost_matches_loop():
    V, C = data(7, 3, 6)
    num = sum(C[i, j] * (V[i] - V[j]).norm() for i in range(7) for j in range(7) if i != j)
    den = sum(C[i, j] for i in range(7) for j in range(7) if i != j)
    assert_close(retrieval_cost(V, C), num / den, rtol=100 * EPS, atol=0)
    num2 = sum(C[i, j] * (V[i] - V[j]).pow(2).sum() for i in range(7) for j in range(7) if i != j)
    assert_close(retrieval_cost(V, C, squared=True), num2 / den, rtol=100 * EPS, atol=0)
    assert_close(squared_distances(V), torch.cdist(V, V) ** 2, rtol=1e3 * EPS, atol=1e3 * EPS)


def test_loss_splits_into_cost_and_crowding():
    V, C = data(9, 2, 7)
    Coff = C * (1 - torch.eye(9, dtype=F64))
    logZ = torch.logsumexp((-squared_distances(V)).fill_diagonal_(-math.inf), 1)
    split = retrieval_cost(V, C, squared=True) + (Coff.sum(1) / Coff.sum() * logZ).sum()
    assert_close(library_loss(V, C), split, rtol=100 * EPS, atol=0)


# ---------------------------------------------------------------- properties
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 10),
    d=st.integers(1, 4),
    shift=st.floats(-5, 5),
    scale=st.floats(0.01, 100),
)
def test_invariances(seed, n, d, shift, scale):
    V, C = data(n, d, seed)
    L = library_loss(V, C)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen(seed + 1), dtype=F64))  # orthogonal
    tol = dict(rtol=1e4 * EPS, atol=1e4 * EPS)
    assert_close(library_loss(V @ Q + shift, C), L, **tol)  # rigid motions
    assert_close(library_loss(V, C * scale), L, **tol)  # mean: scale of counts
    perm = torch.randperm(n, generator=gen(seed + 2))
    assert_close(library_loss(V[perm], C[perm][:, perm]), L, **tol)  # relabelling items


@given(seed=st.integers(0, 10_000), n=st.integers(3, 9))
def test_spring_gradient(seed, n):
    V, C = data(n, 2, seed)
    Vg = V.clone().requires_grad_()
    (auto,) = torch.autograd.grad(library_loss(Vg, C), Vg)
    Coff = C * (1 - torch.eye(n, dtype=F64))
    N = Coff.sum()
    W = Coff / N - Coff.sum(1, keepdim=True) / N * library_log_probs(V).exp()
    S = W + W.T
    spring = 2 * (S.sum(1, keepdim=True) * V - S @ V)
    assert_close(auto, spring, rtol=1e3 * EPS, atol=1e3 * EPS)
    assert_close(auto.sum(0), torch.zeros(2, dtype=F64), rtol=0, atol=1e3 * EPS)


def test_gradcheck_and_gradgradcheck(device):
    V, C = data(6, 2, 8, device=device)
    Vg = V.clone().requires_grad_()
    for red in ("mean", "sum", "none"):
        assert torch.autograd.gradcheck(lambda v: library_loss(v, C, red), (Vg,))
    assert torch.autograd.gradgradcheck(lambda v: library_loss(v, C), (Vg,))
    assert torch.autograd.gradcheck(lambda v: retrieval_cost(v, C, squared=True), (Vg,))


# ---------------------------------------------------------------- PMI and PMI-SVD
def numpy_pmi(C, positive):
    C = np.asarray(C, dtype=np.float64).copy()
    np.fill_diagonal(C, 0)
    r, c, N = C.sum(1), C.sum(0), C.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.where(C > 0, np.log(C * N / np.outer(r, c)), 0.0)
    return np.maximum(pmi, 0) if positive else pmi


@pytest.mark.parametrize("positive", [True, False])
def test_pmi_matrix_matches_numpy(positive, device):
    _, C = data(10, 1, 9)
    C[2, :] = 0  # a row with no counts
    got = pmi_matrix(C.to(device), positive=positive).cpu()
    assert got.dtype == F64
    assert_close(got, numpy_pmi(C.numpy(), positive), rtol=200 * EPS, atol=200 * EPS)
    if positive:
        assert (got >= 0).all()


def test_pmi_svd_matches_sklearn_truncated_svd():
    from sklearn.decomposition import TruncatedSVD

    C, _ = planted_cooccurrence((12, 10, 8), n_sessions=400, noise=0.2, seed=3)
    M = numpy_pmi(C.numpy(), True)
    Z = TruncatedSVD(n_components=4, algorithm="arpack", random_state=0).fit_transform(M)  # U Σ
    E = pmi_svd_embedding(C, 4, power=1.0)
    # Gram matrices do not depend on the (arbitrary) column signs
    assert_close(E @ E.T, Z @ Z.T, rtol=1e-8, atol=1e-8 * np.abs(Z).max() ** 2)
    E_half = pmi_svd_embedding(C, 4)
    S = np.linalg.svd(M, compute_uv=False)[:4]
    assert_close(E_half.T @ E_half, np.diag(S), rtol=1e-10, atol=1e-10 * S[0])
    # deterministic sign convention: the largest-|entry| of each column is positive
    idx = E_half.abs().argmax(0)
    assert (E_half[idx, torch.arange(4)] > 0).all()


# ---------------------------------------------------------------- planted data, recall, fitting
def test_planted_cooccurrence_structure():
    C, lab = planted_cooccurrence((5, 7, 3), n_sessions=300, noise=0.0, seed=1)
    assert C.shape == (15, 15) and lab.tolist() == [0] * 5 + [1] * 7 + [2] * 3
    # exact by construction: C = XᵀX of 0/1 session indicators, diagonal zeroed
    assert torch.equal(C, C.T) and (C.diagonal() == 0).all()
    # exact by construction: counts are sums of 0/1 products
    assert torch.equal(C, C.round()) and (C >= 0).all()
    # no noise, no overlap: items of different groups never share a session
    cross = lab[:, None] != lab[None, :]
    assert (C[cross] == 0).all() and C[~cross].sum() > 0
    C2, lab2 = planted_cooccurrence((5, 7, 3), n_sessions=300, noise=0.0, seed=1)
    # exact: the same seed gives the same draws and the same integer sums
    assert torch.equal(C2, C) and torch.equal(lab2, lab)
    C3, _ = planted_cooccurrence((5, 7, 3), n_sessions=300, noise=0.5, overlap=0.3, zipf=1.0, seed=1)
    assert (C3[cross] > 0).any()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbor_recall_matches_sklearn(metric):
    from sklearn.neighbors import NearestNeighbors

    g = gen(11)
    X = torch.randn(40, 3, generator=g, dtype=F64)
    lab = torch.randint(0, 3, (40,), generator=g)
    k = 4
    nn_ = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(X.numpy())
    idx = nn_.kneighbors(X.numpy(), return_distance=False)[:, 1:]  # drop the point itself
    ref = (lab.numpy()[idx] == lab.numpy()[:, None]).mean()
    assert abs(neighbor_recall(X, lab, k=k, metric=metric) - ref) < 1e-12
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0]], dtype=F64)
    two = torch.repeat_interleave(torch.arange(2), 6)
    pts = centres[two] + 0.01 * torch.randn(12, 2, generator=g, dtype=F64)
    assert neighbor_recall(pts, two, k=5) == 1.0


def test_fit_recovers_planted_groups_ari():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    for seed in (0, 1):
        C, lab = planted_cooccurrence((20, 20, 20), n_sessions=1200, noise=0.1, seed=seed)
        fit = fit_library_embedding(C, 2, n_steps=200, seed=seed, show_progress=False)
        assert isinstance(fit, LibraryFit) and fit.embedding.shape == (60, 2)
        assert fit.losses.shape == (200,) and fit.losses[-1] < fit.losses[0]
        pred = KMeans(3, n_init=10, random_state=0).fit_predict(fit.embedding.numpy())
        assert adjusted_rand_score(lab.numpy(), pred) > 0.95


def test_fit_lbfgs_recovers_representable_distances():
    V_star = torch.randn(6, 2, generator=gen(21), dtype=F64)
    D_star = squared_distances(V_star)
    C = torch.exp(-D_star).fill_diagonal_(0)
    best = min(
        (
            fit_library_embedding(C, 2, n_steps=100, optimizer="lbfgs", init_scale=1.0, seed=s, show_progress=False)
            for s in range(3)
        ),
        key=lambda f: f.losses[-1].item(),
    )
    assert (squared_distances(best.embedding) - D_star).abs().max() < 1e-5


def test_fit_determinism_dtype_device(device):
    C, _ = planted_cooccurrence((6, 6), n_sessions=200, seed=2)
    a = fit_library_embedding(C.to(device), 2, n_steps=20, seed=5, show_progress=False)
    b = fit_library_embedding(C.to(device), 2, n_steps=20, seed=5, show_progress=False)
    # exact by construction on one device: the same start and the same kernels
    assert torch.equal(a.embedding, b.embedding)
    assert a.embedding.dtype == F64 and a.embedding.device.type == torch.device(device).type
    c = fit_library_embedding(C.long().to(device), 2, n_steps=5, show_progress=False)
    assert c.embedding.dtype == torch.float32
    h = fit_library_embedding(C.to(device), 2, n_steps=5, dtype=torch.float32, show_progress=False)
    assert h.embedding.dtype == torch.float32 and not h.embedding.requires_grad


# ---------------------------------------------------------------- bad input
def test_bad_input_raises_and_mutates_nothing():
    V, C = data(5, 2, 0)
    V0, C0 = V.clone(), C.clone()
    cases = [
        (lambda: library_loss(V, -C), ValueError, "Invalid cooc"),
        (lambda: library_loss(V, C[:4, :4]), ValueError, "must be (5, 5)"),
        (lambda: library_loss(V, C[:, :4]), ValueError, "square"),
        (lambda: library_loss(V, torch.eye(5, dtype=F64)), ValueError, "off the diagonal"),
        (lambda: library_loss(V, C.masked_fill(C > 5, math.nan)), ValueError, "finite"),
        (lambda: library_loss(V, C, reduction="avg"), ValueError, "Invalid reduction"),
        (lambda: library_loss(V.long(), C), TypeError, "Invalid V"),
        (lambda: library_loss(V[0], C), ValueError, "Invalid V"),
        (lambda: library_loss(V.masked_fill(V > 1, math.inf), C), ValueError, "finite"),
        (lambda: library_loss(V, C > 0), TypeError, "Invalid cooc"),
        (lambda: library_loss(V, C.numpy()), TypeError, "Invalid cooc"),
        (lambda: library_log_probs(V[:1]), ValueError, "Invalid V"),
        (lambda: squared_distances([[0.0]]), TypeError, "Invalid V"),
        (lambda: retrieval_cost(V, C, squared=1), TypeError, "Invalid squared"),
        (lambda: pmi_matrix(C, positive="yes"), TypeError, "Invalid positive"),
        (lambda: pmi_svd_embedding(C, 0), ValueError, "Invalid dim: 0"),
        (lambda: pmi_svd_embedding(C, 6), ValueError, "Invalid dim: 6"),
        (lambda: pmi_svd_embedding(C, 2, power=-1), ValueError, "Invalid power"),
        (lambda: fit_library_embedding(C, 0), ValueError, "Invalid dim"),
        (lambda: fit_library_embedding(C, 2, n_steps=0), ValueError, "Invalid n_steps"),
        (lambda: fit_library_embedding(C, 2, lr=0.0), ValueError, "Invalid lr"),
        (lambda: fit_library_embedding(C, 2, optimizer="sgd"), ValueError, "Invalid optimizer"),
        (
            lambda: fit_library_embedding(C, 2, init_scale=math.nan),
            ValueError,
            "Invalid init_scale",
        ),
        (lambda: fit_library_embedding(C, 2, seed=-1), ValueError, "Invalid seed"),
        (lambda: fit_library_embedding(C, 2, dtype=torch.int32), TypeError, "Invalid dtype"),
        (lambda: fit_library_embedding(C, 2, show_progress=1), TypeError, "Invalid show_progress"),
        (lambda: planted_cooccurrence([]), TypeError, "Invalid sizes"),
        (lambda: planted_cooccurrence((3, 0)), ValueError, "Invalid sizes"),
        (lambda: planted_cooccurrence((3, 3), noise=1.5), ValueError, "Invalid noise"),
        (lambda: planted_cooccurrence((3, 3), overlap=-0.1), ValueError, "Invalid overlap"),
        (lambda: planted_cooccurrence((3, 3), session_size=1), ValueError, "Invalid session_size"),
        (lambda: planted_cooccurrence((3, 3), zipf=True), TypeError, "Invalid zipf"),
        (lambda: neighbor_recall(V, torch.zeros(5)), TypeError, "Invalid labels"),
        (
            lambda: neighbor_recall(V, torch.zeros(4, dtype=torch.long)),
            ValueError,
            "Invalid labels",
        ),
        (
            lambda: neighbor_recall(V, torch.zeros(5, dtype=torch.long), k=5),
            ValueError,
            "Invalid k",
        ),
        (
            lambda: neighbor_recall(V, torch.zeros(5, dtype=torch.long), k=2, metric="l1"),
            ValueError,
            "Invalid metric",
        ),
    ]
    for fn, err, msg in cases:
        with pytest.raises(err, match=None) as info:
            fn()
        assert msg in str(info.value), (msg, str(info.value))
    # exact: a refused call must leave its inputs untouched (compared with copies)
    assert torch.equal(V, V0) and torch.equal(C, C0)
