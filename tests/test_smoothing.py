"""Tests for su_notes.smoothing that the notebook does not run: independent peers (scipy's logsumexp,
softmax and erf, scikit-learn's accuracy_score and f1_score) over many shapes, dtypes and seeds on the
`--device`; the ±inf table with gradients; hypothesis properties (bounds, ranges, one rounding of the
float32 computation for 16-bit inputs); bad input for every public name (clear error, nothing mutated)."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays
from scipy import special
from sklearn.metrics import accuracy_score, f1_score

from su_notes.core import assert_close
from su_notes.smoothing import (
    SoftF1Loss,
    erf_abs,
    erf_max,
    erf_min,
    smooth_max,
    smooth_min,
    smooth_relu,
    soft_accuracy,
    soft_argmax,
    soft_f1,
    soft_onehot,
)

C_ERF = 0.24037558682955276  # max_u u·erfc(u), at u ≈ 0.5316
HALF = [torch.float16, torch.bfloat16]
# tolerance of one rounding to the dtype (relative), and of float32 arithmetic
TOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
INF = math.inf


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, scale=1.0, device="cpu", dtype=torch.float64):
    "Seeded normal tensor made on the CPU (same numbers on every device), then moved."
    return (torch.randn(*shape, generator=gen(seed), dtype=torch.float64) * scale).to(device=device, dtype=dtype)


def np64(t):
    return t.detach().double().cpu().numpy()


# ---------------------------------------------------------------- peers: scipy
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "shape, dim",
    [((7,), 0), ((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), -3), ((4, 1), 1)],
)
@pytest.mark.parametrize("tau", [1.0, 0.05, 7.0])
def test_smooth_max_min_match_scipy_logsumexp(device, dtype, shape, dim, tau):
    x = randn(*shape, seed=1, scale=4, device=device, dtype=dtype)
    ref = tau * special.logsumexp(np64(x) / tau, axis=dim)  # peer, float64, on the rounded inputs
    out = smooth_max(x, tau, dim)
    assert out.dtype == dtype and out.device == x.device and tuple(out.shape) == np.shape(ref)
    scale = np.maximum(np.abs(ref), tau)  # |τ·LSE| or the τ·log n term
    assert np.all(np.abs(np64(out) - ref) <= TOL[dtype] * scale)
    ref_min = -tau * special.logsumexp(-np64(x) / tau, axis=dim)
    assert np.all(np.abs(np64(smooth_min(x, tau, dim)) - ref_min) <= TOL[dtype] * np.maximum(np.abs(ref_min), tau))
    kd = smooth_max(x, tau, dim, keepdim=True)
    assert tuple(kd.shape) == tuple(np.expand_dims(ref, dim).shape)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("tau, dim", [(1.0, -1), (0.2, 0), (3.0, 1)])
def test_soft_onehot_and_soft_argmax_match_scipy_softmax(device, dtype, tau, dim):
    x = randn(6, 8, seed=3, scale=2, device=device, dtype=dtype)
    s = special.softmax(np64(x) / tau, axis=dim)
    out = soft_onehot(x, tau, dim)
    assert out.dtype == dtype and out.shape == x.shape
    assert np.all(np.abs(np64(out) - s) <= TOL[dtype] * np.maximum(s, 1e-3))
    idx = np.arange(x.shape[dim]).reshape([-1 if d == dim % 2 else 1 for d in range(2)])
    ref = (s * idx).sum(axis=dim)
    assert np.all(np.abs(np64(soft_argmax(x, tau, dim)) - ref) <= TOL[dtype] * np.maximum(ref, 1))


def test_gradients_are_softmax_and_gradcheck(device):
    x = randn(4, 6, seed=2, device=device).requires_grad_()
    for tau, dim in [(1.0, -1), (0.2, 0), (3.0, 1)]:
        assert torch.autograd.gradcheck(lambda t: smooth_min(t, tau, dim), (x,))
        (grad,) = torch.autograd.grad(smooth_min(x, tau, dim).sum(), x)  # ∇smin = softmax(-x/τ)
        np.testing.assert_allclose(np64(grad), special.softmax(-np64(x) / tau, axis=dim), rtol=1e-12, atol=1e-13)
        assert torch.autograd.gradcheck(lambda t: soft_argmax(t, tau, dim), (x,))
        assert torch.autograd.gradcheck(lambda t: soft_onehot(t, tau, dim), (x,))


def test_soft_argmax_limit(device):
    x = randn(50, 8, seed=3, device=device)
    top = x.topk(2, -1).values
    tau = float((top[:, 0] - top[:, 1]).min()) / 40  # every row: (n-1)² e^{-Δ/τ} ≤ 49 e^{-40}
    assert_close(soft_argmax(x, tau), x.argmax(-1).double(), rtol=0, atol=1e-12)
    assert soft_argmax(x, 0.3, dim=0, keepdim=True).shape == (1, 8)


# ---------------------------------------------------------------- infinities, pinned
ROWS = [  # row, value of smooth_max(row, tau=0.5), its gradient (torch.logsumexp's conventions)
    ([-INF, -INF], -INF, [math.nan, math.nan]),  # all -inf
    ([-INF, 2.0], 2.0, [0.0, 1.0]),  # -inf next to a finite entry drops out
    ([-INF, 2.0, 2.0], 2.0 + 0.5 * math.log(2), [0.0, 0.5, 0.5]),
    ([1.0, INF], INF, [0.0, math.nan]),  # a +inf entry
    ([-INF, INF], INF, [0.0, math.nan]),  # mixed infinities
    ([INF, INF], INF, [math.nan, math.nan]),
    ([math.nan, 0.0], math.nan, [math.nan, math.nan]),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("row, value, grad", ROWS)
def test_smooth_max_infinities(device, dtype, row, value, grad):
    x = torch.tensor(row, dtype=dtype, device=device, requires_grad=True)
    out = smooth_max(x, 0.5)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.item(), value, rtol=TOL[dtype])  # inf == inf, nan == nan
    (g,) = torch.autograd.grad(out, x)
    assert g.dtype == dtype
    np.testing.assert_allclose(np64(g), grad, rtol=TOL[dtype])
    # smooth_min mirrors it
    np.testing.assert_allclose(smooth_min(-x.detach(), 0.5).item(), -value, rtol=TOL[dtype])


def test_smooth_max_infinity_rows_in_a_batch(device):
    x = torch.tensor([[-INF, -INF, -INF], [0.0, 1.0, INF], [-INF, 0.0, 0.0], [3.0, 3.0, 3.0]], device=device)
    out = smooth_max(x, 2.0)
    expect = torch.tensor([-INF, INF, 2.0 * math.log(2), 3.0 + 2.0 * math.log(3)])
    assert torch.equal(out[:2].cpu(), expect[:2]) and torch.allclose(out[2:].cpu(), expect[2:], rtol=1e-6)


# ---------------------------------------------------------------- scikit-learn: hard limits
@pytest.mark.parametrize("seed", range(4))
def test_soft_accuracy_equals_accuracy_score_for_one_hot(device, seed):
    g = gen(seed)
    y, pred = torch.randint(0, 5, (3, 40), generator=g), torch.randint(0, 5, (3, 40), generator=g)
    ref = accuracy_score(y.flatten().numpy(), pred.flatten().numpy())
    p = torch.nn.functional.one_hot(pred, 5).double().to(device)
    # exact: an integer count (exact in any summation order) divided once by the same n
    assert soft_accuracy(p, y.to(device)).item() == ref
    assert soft_accuracy(p.movedim(-1, 1), y.to(device), dim=1).item() == ref
    assert soft_accuracy(p.float(), y.to(device)).item() == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rate", [0.05, 0.3, 0.7])
def test_soft_f1_equals_f1_score_binary(device, seed, rate):
    g = gen(seed)
    y, pred = torch.rand(200, generator=g) < rate, (torch.rand(200, generator=g) < rate).double()
    ref = f1_score(y.numpy(), pred.numpy())
    # float64: exact, both are 2·TP / (Σp + Σy) of integer counts, one correctly rounded division
    assert soft_f1(pred.to(device), y.to(device)).item() == ref
    assert soft_f1(pred.float().to(device), y.long().to(device)).item() == pytest.approx(ref, rel=1e-6)
    assert soft_f1(pred.half().to(device), y.to(device)).item() == pytest.approx(ref, rel=1e-3)


def test_soft_f1_degenerate_cases_match_sklearn(device):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for y, p in [([0, 0, 0], [0, 0, 0]), ([1, 1], [0, 0]), ([0, 0], [1, 1]), ([1, 0], [1, 0])]:
            out = soft_f1(torch.tensor(p, dtype=torch.float64, device=device), torch.tensor(y, device=device))
            assert out.item() == f1_score(y, p)  # exact: 0 or 1 from integer counts


@pytest.mark.parametrize("seed", range(3))
def test_soft_f1_macro_and_multilabel_equal_sklearn(device, seed):
    g = gen(seed)
    y, pred = torch.randint(0, 4, (300,), generator=g), torch.randint(0, 4, (300,), generator=g)
    P, Yc = (
        torch.nn.functional.one_hot(pred, 4).double().to(device),
        torch.nn.functional.one_hot(y, 4).to(device),
    )
    np.testing.assert_array_equal(np64(soft_f1(P, Yc)), f1_score(y.numpy(), pred.numpy(), average=None))
    macro = f1_score(y.numpy(), pred.numpy(), average="macro")
    # means of 4 values, summed in another order than scikit-learn's: a few ulps
    assert 1 - SoftF1Loss(from_logits=False)(P, Yc).item() == pytest.approx(macro, rel=1e-13)
    assert SoftF1Loss(from_logits=False, reduction="sum")(P, Yc).item() == pytest.approx(4 * (1 - macro), rel=1e-13)
    # multi-label indicators, classes on the last axis; an absent class scores 0 as in sklearn with zero_division=0
    Y = torch.rand(100, 6, generator=g) < 0.3
    Y[:, 5] = False
    Q = (torch.rand(100, 6, generator=g) < 0.3).double()
    Q[:, 5] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f1_score(Y.numpy(), Q.numpy(), average=None, zero_division=0)
    np.testing.assert_array_equal(np64(soft_f1(Q.to(device), Y.to(device))), ref)
    np.testing.assert_array_equal(np64(soft_f1(Q.T.contiguous().to(device), Y.T.contiguous().to(device), dim=1)), ref)


def test_soft_f1_loss_layouts_and_descent(device):
    g = gen(5)
    z = torch.randn(80, 4, dtype=torch.float64, generator=g).to(device).requires_grad_()
    t = (torch.rand(80, 4, generator=g) < 0.2).double().to(device)
    per = SoftF1Loss(reduction="none")(z, t)
    # peer: F1 from explicit TP/FP/FN counts of the sigmoid probabilities (numpy)
    p, tn = 1 / (1 + np.exp(-np64(z))), np64(t)
    tp, fp, fn = (p * tn).sum(0), (p * (1 - tn)).sum(0), ((1 - p) * tn).sum(0)
    np.testing.assert_allclose(np64(per), 1 - 2 * tp / (2 * tp + fp + fn), rtol=1e-13)
    # exact: the same sigmoid kernel on the same logits, then the same sums
    assert_close(SoftF1Loss(from_logits=False, reduction="none")(torch.sigmoid(z), t), per, rtol=0, atol=0)
    # the sums run over a transposed layout, possibly in another order: a few ulps
    assert_close(SoftF1Loss(dim=1, reduction="none")(z.T, t.T), per, rtol=1e-13, atol=0)
    for red in ("none", "mean", "sum"):
        assert SoftF1Loss(reduction=red)(z[:, 0], t[:, 0]).shape == ()
    loss = SoftF1Loss()(z, t)
    (gz,) = torch.autograd.grad(loss, z)  # one gradient step raises the soft F1
    assert SoftF1Loss()(z.detach() - 0.5 * gz, t) < loss
    assert repr(SoftF1Loss(dim=1)) == "SoftF1Loss(from_logits=True, eps=1e-08, dim=1, reduction='mean')"


# ---------------------------------------------------------------- erf max, softplus
def test_erf_max_min_abs_match_scipy_erf_and_identities(device):
    a, b = randn(1000, seed=6, scale=3, device=device), randn(1000, seed=7, scale=3, device=device)
    an, bn = np64(a), np64(b)
    for mu in (0.5, 2.0, 20.0):
        d = an - bn
        np.testing.assert_allclose(
            np64(erf_max(a, b, mu)), (an + bn + d * special.erf(mu * d)) / 2, rtol=1e-13, atol=1e-13
        )  # torch's and scipy's erf differ by an ulp
        np.testing.assert_allclose(np64(erf_abs(a, mu)), an * special.erf(mu * an), rtol=1e-13, atol=1e-13)
        assert_close(erf_max(a, b, mu) + erf_min(a, b, mu), a + b, rtol=1e-13, atol=1e-13)
        assert_close(erf_abs(a - b, mu), erf_max(a, b, mu) - erf_min(a, b, mu), rtol=1e-12, atol=1e-12)
    z = torch.zeros(3, 1, device=device)
    assert erf_max(z, torch.zeros(1, 4, device=device)).shape == (3, 4)
    assert erf_max(z.half(), z.double()).dtype == torch.float64  # torch's type promotion


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_smooth_relu_is_scaled_softplus_and_two_point_lse(device, dtype):
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64).to(device=device, dtype=dtype)
    xn = np64(x)
    for tau in (0.1, 1.0, 4.0):
        out = smooth_relu(x, tau)
        assert out.dtype == dtype
        exact = np.logaddexp(xn / tau, 0) * tau  # numpy peer
        assert np.all(np.abs(np64(out) - exact) <= TOL[dtype] * np.maximum(np.abs(exact), tau))
        two = smooth_max(torch.stack([x, torch.zeros_like(x)], -1), tau)
        assert np.all(np.abs(np64(out) - np64(two)) <= 2 * TOL[dtype] * np.maximum(np.abs(exact), tau))


# ---------------------------------------------------------------- hypothesis property tests
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
taus = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)


@given(arrays(np.float64, st.integers(1, 12), elements=finite), taus)
def test_property_lse_bounds(device, xs, tau):
    x = torch.from_numpy(xs).to(device)
    n, slack = len(xs), 1e-12 * (1 + np.abs(xs).max() + tau)
    m, mn = xs.max(), xs.min()
    lse, smin = smooth_max(x, tau).item(), smooth_min(x, tau).item()
    assert m - slack <= lse <= m + tau * math.log(n) + slack
    assert mn - tau * math.log(n) - slack <= smin <= mn + slack
    assert abs(lse - tau * special.logsumexp(xs / tau)) <= slack


@given(
    arrays(np.float32, st.integers(1, 12), elements=st.floats(-6e4, 6e4, width=32)),
    st.floats(1e-3, 1e2),
    st.sampled_from(HALF),
)
def test_property_half_precision_lse_finite_and_accurate(device, xs, tau, dtype):
    "16-bit input, tau as small as 1e-3 (x/tau far outside float16): finite, within one 16-bit rounding."
    x = torch.from_numpy(xs).to(device=device, dtype=dtype)
    out = smooth_max(x, tau)
    ref = tau * special.logsumexp(np64(x) / tau)
    assert out.dtype == dtype and torch.isfinite(out)
    assert abs(out.item() - ref) <= TOL[dtype] * max(abs(ref), tau)


@given(arrays(np.float64, st.integers(1, 30), elements=finite), taus)
def test_property_softplus_and_erf_bounds(device, xs, tau):
    x = torch.from_numpy(xs).to(device)
    gap = np64(smooth_relu(x, tau)) - np.maximum(xs, 0)
    ulp = 4e-16 * np.abs(xs)  # τ·(x/τ) need not round back to x exactly
    assert (gap >= -ulp).all() and (gap <= tau * math.log(2) * (1 + 1e-12) + ulp).all()
    e = np.abs(xs) - np64(erf_abs(x, 1 / tau))
    assert (e >= 0).all() and (e <= C_ERF * tau * (1 + 1e-9)).all()


@given(arrays(np.float64, st.integers(2, 10), elements=finite), taus)
def test_property_soft_onehot_and_argmax_ranges(device, xs, tau):
    x = torch.from_numpy(xs).to(device)
    s = soft_onehot(x, tau)
    assert (s >= 0).all() and abs(s.sum().item() - 1) < 1e-12
    assert -1e-12 <= soft_argmax(x, tau).item() <= len(xs) - 1 + 1e-9


@given(
    arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1)),
    arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1)),
)
def test_property_soft_f1_in_unit_interval(device, p, y):
    k = min(len(p), len(y))
    f = soft_f1(torch.from_numpy(p[:k]).to(device), torch.from_numpy(y[:k]).to(device)).item()
    assert 0.0 <= f <= 1.0 + 1e-15


ALL = {  # every public function as a function of one floating tensor (classes/samples on axes 1/0)
    "smooth_max": lambda t: smooth_max(t, 0.3),
    "smooth_min": lambda t: smooth_min(t, 0.3, 0),
    "smooth_max_keepdim": lambda t: smooth_max(t, 2.0, 0, keepdim=True),
    "soft_onehot": lambda t: soft_onehot(t, 0.3),
    "soft_argmax": lambda t: soft_argmax(t, 0.3),
    "soft_accuracy": lambda t: soft_accuracy(t, torch.arange(t.shape[0], device=t.device) % t.shape[1]),
    "soft_f1": lambda t: soft_f1(t, t > 0),
    "SoftF1Loss": lambda t: SoftF1Loss(reduction="none")(t, t > 0),
    "SoftF1Loss_mean": lambda t: SoftF1Loss(from_logits=False)(t, t > 0),
    "erf_abs": lambda t: erf_abs(t, 2.0),
    "erf_max": lambda t: erf_max(t, t.flip(0), 2.0),
    "erf_min": lambda t: erf_min(t, t.flip(0), 0.5),
    "smooth_relu": lambda t: smooth_relu(t, 0.3),
}


@pytest.mark.parametrize("name", list(ALL))
@given(
    xs=arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.floats(-300, 300, width=32),
    ),
    dtype=st.sampled_from(HALF),
)
def test_property_16_bit_inputs_computed_in_float32(device, name, xs, dtype):
    "A 16-bit input gives the float32 computation on the same numbers, rounded once to the input's dtype."
    fn = ALL[name]
    t = torch.from_numpy(xs).to(device=device, dtype=dtype)
    out = fn(t)
    assert out.dtype == dtype and out.device == t.device
    # exact by construction: a 16-bit input runs the same float32 kernels on the same numbers, rounded once
    torch.testing.assert_close(out, fn(t.float()).to(dtype), rtol=0, atol=0, equal_nan=True)


# ---------------------------------------------------------------- bad input: clear error, nothing mutated
X = torch.randn(3, 4, dtype=torch.float64, generator=gen(11))
REDUCERS = [smooth_max, smooth_min, soft_onehot, soft_argmax]
BAD_REAL = [
    (0.0, ValueError, r"Invalid {}: 0\.0"),
    (-1.0, ValueError, r"Invalid {}: -1\.0"),
    (math.nan, ValueError, r"Invalid {}: nan"),
    (math.inf, ValueError, r"Invalid {}: inf"),
    (True, TypeError, r"Invalid {}: True"),
    ("1", TypeError, r"Invalid {}: '1'"),
    (None, TypeError, r"Invalid {}: None"),
    (torch.tensor(1.0), TypeError, r"Invalid {}: tensor\("),
]


@pytest.mark.parametrize("fn", REDUCERS)
@pytest.mark.parametrize("bad, exc, msg", BAD_REAL)
def test_reducers_bad_tau(fn, bad, exc, msg):
    x = X.clone()
    with pytest.raises(exc, match=msg.format("tau")):
        fn(x, tau=bad)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x, X)


@pytest.mark.parametrize("fn", REDUCERS)
@pytest.mark.parametrize(
    "kw, exc, msg",
    [
        (dict(dim=2), ValueError, "Invalid dim: 2"),
        (dict(dim=-3), ValueError, "Invalid dim: -3"),
        (dict(dim=1.0), TypeError, r"Invalid dim: 1\.0"),
        (dict(dim=True), TypeError, "Invalid dim: True"),
    ],
)
def test_reducers_bad_dim(fn, kw, exc, msg):
    x = X.clone()
    with pytest.raises(exc, match=msg):
        fn(x, **kw)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x, X)


@pytest.mark.parametrize("fn", [smooth_max, smooth_min, soft_argmax])
def test_reducers_bad_keepdim(fn):
    with pytest.raises(TypeError, match="Invalid keepdim: 1"):
        fn(X, keepdim=1)


@pytest.mark.parametrize("fn", REDUCERS)
def test_reducers_bad_x(fn):
    with pytest.raises(TypeError, match=r"Invalid x: \[1\.0, 2\.0\] \(expected a torch.Tensor"):
        fn([1.0, 2.0])
    with pytest.raises(TypeError, match=r"Invalid x: tensor\(shape=\(3,\), dtype=torch.int64.*floating-point"):
        fn(torch.arange(3))
    with pytest.raises(ValueError, match="at least 1 dims"):
        fn(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"Invalid x: tensor\(shape=\(2, 0\).*non-empty"):
        fn(torch.zeros(2, 0))


def test_soft_accuracy_bad_input():
    p = torch.softmax(X, -1)
    y = torch.tensor([0, 1, 3])
    p0, y0 = p.clone(), y.clone()
    for args, exc, msg in [
        ((p, y.double()), TypeError, r"Invalid y: tensor\(.*float64.*expected an integer"),
        ((p, y.bool()), TypeError, "Invalid y"),
        ((p, [0, 1, 3]), TypeError, r"Invalid y: \[0, 1, 3\]"),
        ((p, y[:2]), ValueError, r"must have shape \(3,\)"),
        ((p, y[None]), ValueError, "Invalid y"),
        ((p.long(), y), TypeError, "floating-point"),
        ((p, torch.zeros(3, dtype=torch.long), 0), ValueError, r"must have shape \(4,\)"),
        ((p, y, 5), ValueError, "Invalid dim: 5"),
        ((p, y, True), TypeError, "Invalid dim: True"),
        ((torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), ValueError, "at least one sample"),
    ]:
        with pytest.raises(exc, match=msg):
            soft_accuracy(*args)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(p, p0) and torch.equal(y, y0)


@pytest.mark.parametrize("bad, exc, msg", BAD_REAL)
def test_soft_f1_and_loss_bad_eps(bad, exc, msg):
    p = torch.rand(10, 3, dtype=torch.float64, generator=gen(1))
    y = p > 0.5
    p0 = p.clone()
    with pytest.raises(exc, match=msg.format("eps")):
        soft_f1(p, y, eps=bad)
    with pytest.raises(exc, match=msg.format("eps")):
        SoftF1Loss(eps=bad)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(p, p0)


def test_soft_f1_and_loss_bad_input():
    p = torch.rand(10, 3, dtype=torch.float64, generator=gen(2))
    y = torch.rand(10, 3, generator=gen(3)) < 0.5
    p0, y0 = p.clone(), y.clone()
    for args, kw, exc, msg in [
        (
            (p, y[:5]),
            {},
            ValueError,
            r"Invalid y: tensor\(shape=\(5, 3\).*must have the shape of p \(10, 3\)",
        ),
        ((p, y.T), {}, ValueError, "Invalid y"),
        ((p, y.to(torch.complex64)), {}, TypeError, "Invalid y: .*expected real"),
        ((p, y.tolist()), {}, TypeError, "Invalid y: .*expected a torch.Tensor"),
        ((p.long(), y), {}, TypeError, "Invalid p: .*floating-point"),
        ((p, y), dict(dim=2), ValueError, "Invalid dim: 2"),
        ((p, y), dict(dim=0.0), TypeError, "Invalid dim"),
    ]:
        with pytest.raises(exc, match=msg):
            soft_f1(*args, **kw)
    for kw, exc, msg in [
        (
            dict(reduction="batchmean"),
            ValueError,
            r"Invalid reduction: 'batchmean' \(expected one of",
        ),
        (dict(reduction=None), ValueError, "Invalid reduction: None"),
        (dict(from_logits=1), TypeError, "Invalid from_logits: 1"),
        (dict(from_logits=None), TypeError, "Invalid from_logits: None"),
        (dict(dim="0"), TypeError, "Invalid dim: '0'"),
        (dict(dim=True), TypeError, "Invalid dim: True"),
    ]:
        with pytest.raises(exc, match=msg):
            SoftF1Loss(**kw)
    loss = SoftF1Loss()
    with pytest.raises(ValueError, match="Invalid target"):
        loss(p, y[:5])
    with pytest.raises(TypeError, match="Invalid input"):
        loss(p.long(), y)
    with pytest.raises(TypeError, match="Invalid target"):
        loss(p, y.numpy())
    with pytest.raises(ValueError, match="Invalid dim: 2"):
        SoftF1Loss(dim=2)(p, y)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(p, p0) and torch.equal(y, y0)


@pytest.mark.parametrize("bad, exc, msg", BAD_REAL)
def test_erf_and_relu_bad_scalars(bad, exc, msg):
    a = X.clone()
    for fn in (
        lambda mu: erf_max(a, a, mu),
        lambda mu: erf_min(a, a, mu),
        lambda mu: erf_abs(a, mu),
    ):
        with pytest.raises(exc, match=msg.format("mu")):
            fn(bad)
    with pytest.raises(exc, match=msg.format("tau")):
        smooth_relu(a, bad)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(a, X)


def test_erf_and_relu_bad_tensors():
    a = torch.randn(3, dtype=torch.float64, generator=gen(4))
    b = torch.randn(4, dtype=torch.float64, generator=gen(5))
    a0, b0 = a.clone(), b.clone()
    for fn in (erf_max, erf_min):
        with pytest.raises(
            ValueError,
            match=r"Invalid b: tensor\(shape=\(4,\).*does not broadcast with a's shape \(3,\)",
        ):
            fn(a, b)
        with pytest.raises(TypeError, match=r"Invalid b: 0\.0"):
            fn(a, 0.0)
        with pytest.raises(TypeError, match="Invalid a: .*floating-point"):
            fn(a.long(), a)
    with pytest.raises(TypeError, match=r"Invalid x: \[1\.0\]"):
        erf_abs([1.0])
    with pytest.raises(TypeError, match="Invalid x: .*floating-point"):
        erf_abs(torch.arange(3))
    with pytest.raises(TypeError, match="Invalid x: .*floating-point"):
        smooth_relu(torch.arange(3))
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(a, a0) and torch.equal(b, b0)


def test_inputs_not_mutated_and_device_preserved(device):
    x = randn(5, 6, seed=9, device=device, dtype=torch.float32)
    x0 = x.clone()
    for name, fn in ALL.items():
        out = fn(x)
        assert out.dtype == x.dtype and out.device == x.device, name
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x, x0)
