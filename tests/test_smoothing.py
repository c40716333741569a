"Cross-checks (torch.logsumexp/softmax/softplus/gelu, scikit-learn metrics), property tests and bad-input tests for su_notes.smoothing."
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import accuracy_score, f1_score

from su_notes.core import assert_close
from su_notes.smoothing import (SoftF1Loss, erf_abs, erf_max, erf_min, smooth_max, smooth_min, smooth_relu,
                                soft_accuracy, soft_argmax, soft_f1, soft_onehot)

C_ERF = 0.24037558682955276  # max_u u·erfc(u), at u ≈ 0.5316
TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}


def gen(seed=0): return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- cross-checks vs torch
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape, dim", [((7,), 0), ((3, 5), -1), ((3, 5), 0), ((2, 3, 4), 1), ((2, 3, 4), -3), ((4, 1), 1)])
@pytest.mark.parametrize("tau", [1.0, 0.05, 7.0])
def test_smooth_max_matches_torch_logsumexp(dtype, shape, dim, tau):
    x = (torch.randn(shape, generator=gen(1), dtype=torch.float64) * 4).to(dtype)
    rtol, atol = TOL[dtype]
    ref = tau * torch.logsumexp(x.double() / tau, dim)
    out = smooth_max(x, tau, dim)
    assert out.dtype == dtype and out.shape == ref.shape
    assert_close(out.double(), ref, rtol=rtol, atol=atol * max(1.0, tau))
    assert_close(smooth_min(x, tau, dim).double(), -tau * torch.logsumexp(-x.double() / tau, dim), rtol=rtol, atol=atol * max(1.0, tau))
    kd = smooth_max(x, tau, dim, keepdim=True)
    assert kd.shape == torch.logsumexp(x.double(), dim, keepdim=True).shape


def test_smooth_max_infinities_and_nan_like_torch():
    x = torch.tensor([[-math.inf, -math.inf], [1.0, math.inf], [-math.inf, 2.0], [math.nan, 0.0]], dtype=torch.float64)
    out, ref = smooth_max(x, 0.5), 0.5 * torch.logsumexp(x / 0.5, -1)
    assert torch.equal(out[:3], ref[:3]) and torch.isnan(out[3]) and torch.isnan(ref[3])
    t = torch.tensor([1.0, -math.inf], dtype=torch.float64, requires_grad=True)
    grad, = torch.autograd.grad(smooth_max(t), t)
    assert torch.equal(grad, torch.tensor([1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_naive_form_overflows_stable_form_does_not(dtype):
    big = {torch.float16: 12.0, torch.bfloat16: 100.0}[dtype]
    x = torch.tensor([big, big - 2.0], dtype=dtype)
    naive = torch.log(torch.exp(x).sum())
    assert torch.isinf(naive)
    assert torch.isnan(torch.exp(x) / torch.exp(x).sum()).any()
    out = smooth_max(x)
    assert torch.isfinite(out) and out.dtype == dtype
    assert_close(out.double(), torch.logsumexp(x.double(), 0), rtol=TOL[dtype][0], atol=0)
    assert torch.isfinite(soft_onehot(x)).all() and torch.isfinite(soft_argmax(x))
    # small temperature: x/τ would overflow float16 itself; computed in float32 internally
    assert torch.isfinite(smooth_max(torch.tensor([1000.0, 999.0], dtype=torch.float16), tau=1e-3))


def test_gradient_is_softmax_gradcheck():
    x = torch.randn(4, 6, dtype=torch.float64, generator=gen(2), requires_grad=True)
    for tau, dim in [(1.0, -1), (0.2, 0), (3.0, 1)]:
        assert torch.autograd.gradcheck(lambda t: smooth_max(t, tau, dim), (x,))
        assert torch.autograd.gradcheck(lambda t: smooth_min(t, tau, dim), (x,))
        grad, = torch.autograd.grad(smooth_max(x, tau, dim).sum(), x)
        assert_close(grad, torch.softmax(x.detach() / tau, dim), rtol=1e-13, atol=1e-15)
        assert_close(soft_onehot(x.detach(), tau, dim), torch.softmax(x.detach() / tau, dim), rtol=1e-14, atol=0)
    assert torch.autograd.gradcheck(lambda t: soft_argmax(t, 0.5), (x,))


def test_soft_argmax_limit_and_value():
    x = torch.randn(50, 8, dtype=torch.float64, generator=gen(3))
    s = torch.softmax(x / 0.7, -1)
    assert_close(soft_argmax(x, 0.7), (s * torch.arange(8, dtype=torch.float64)).sum(-1), rtol=1e-14, atol=0)
    top = x.topk(2, -1).values
    gap = top[:, 0] - top[:, 1]
    tau = float(gap.min()) / 40  # every row: (n-1)² e^{-Δ/τ} ≤ 49 e^{-40}
    assert_close(soft_argmax(x, tau), x.argmax(-1).double(), rtol=0, atol=1e-12)
    assert soft_argmax(x, 0.3, dim=0, keepdim=True).shape == (1, 8)


# ---------------------------------------------------------------- scikit-learn: hard limits
@pytest.mark.parametrize("seed", range(4))
def test_soft_accuracy_equals_accuracy_score_for_one_hot(seed):
    g = gen(seed)
    y = torch.randint(0, 5, (3, 40), generator=g)
    pred = torch.randint(0, 5, (3, 40), generator=g)
    p = F.one_hot(pred, 5).double()
    assert soft_accuracy(p, y).item() == accuracy_score(y.flatten().numpy(), pred.flatten().numpy())
    assert soft_accuracy(p.movedim(-1, 1), y, dim=1).item() == accuracy_score(y.flatten().numpy(), pred.flatten().numpy())
    probs = torch.softmax(torch.randn(3, 40, 5, dtype=torch.float64, generator=g), -1)
    assert_close(soft_accuracy(probs, y), probs.gather(-1, y[..., None]).mean(), rtol=1e-15, atol=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rate", [0.05, 0.3, 0.7])
def test_soft_f1_equals_f1_score_binary(seed, rate):
    g = gen(seed)
    y = (torch.rand(200, generator=g) < rate)
    pred = (torch.rand(200, generator=g) < rate).double()
    assert soft_f1(pred, y).item() == f1_score(y.numpy(), pred.numpy())                    # float64: exact
    assert_close(soft_f1(pred.float(), y.long()).item(), f1_score(y.numpy(), pred.numpy()), rtol=1e-7, atol=0)


def test_soft_f1_degenerate_cases_match_sklearn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for y, p in [([0, 0, 0], [0, 0, 0]), ([1, 1], [0, 0]), ([0, 0], [1, 1]), ([1, 0], [1, 0])]:
            assert soft_f1(torch.tensor(p, dtype=torch.float64), torch.tensor(y)).item() == f1_score(y, p)


@pytest.mark.parametrize("seed", range(3))
def test_soft_f1_macro_and_multilabel_equal_sklearn(seed):
    g = gen(seed)
    y, pred = torch.randint(0, 4, (300,), generator=g), torch.randint(0, 4, (300,), generator=g)
    per = soft_f1(F.one_hot(pred, 4).double(), F.one_hot(y, 4))
    np.testing.assert_array_equal(per.numpy(), f1_score(y.numpy(), pred.numpy(), average=None))
    assert_close(per.mean().item(), f1_score(y.numpy(), pred.numpy(), average="macro"), rtol=1e-15, atol=0)
    assert_close(1 - SoftF1Loss(from_logits=False)(F.one_hot(pred, 4).double(), F.one_hot(y, 4)).item(),
                 f1_score(y.numpy(), pred.numpy(), average="macro"), rtol=1e-15, atol=0)
    # multi-label indicators, classes on the last axis; an absent class scores 0 as in sklearn with labels given
    Y = (torch.rand(100, 6, generator=g) < 0.3); Y[:, 5] = False
    P = (torch.rand(100, 6, generator=g) < 0.3).double(); P[:, 5] = 0.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = f1_score(Y.numpy(), P.numpy(), average=None, zero_division=0)
    np.testing.assert_array_equal(soft_f1(P, Y).numpy(), ref)
    # same numbers with the sample axis last
    np.testing.assert_array_equal(soft_f1(P.T.contiguous(), Y.T.contiguous(), dim=1).numpy(), ref)


def test_soft_f1_loss_reductions_and_gradients():
    g = gen(5)
    z = torch.randn(80, 4, dtype=torch.float64, generator=g, requires_grad=True)
    t = (torch.rand(80, 4, generator=g) < 0.2).double()
    per = 1 - soft_f1(torch.sigmoid(z), t)
    assert_close(SoftF1Loss(reduction="none")(z, t), per, rtol=1e-15, atol=0)
    assert_close(SoftF1Loss(reduction="mean")(z, t), per.mean(), rtol=1e-15, atol=0)
    assert_close(SoftF1Loss(reduction="sum")(z, t), per.sum(), rtol=1e-15, atol=0)
    assert_close(SoftF1Loss(from_logits=False)(torch.sigmoid(z), t), per.mean(), rtol=1e-15, atol=0)
    assert_close(SoftF1Loss(dim=1, reduction="none")(z.T, t.T), per, rtol=1e-15, atol=0)
    for red in ("none", "mean", "sum"): assert SoftF1Loss(reduction=red)(z[:, 0], t[:, 0]).shape == ()
    assert torch.autograd.gradcheck(lambda q: SoftF1Loss()(q, t), (z,))
    # one gradient step on the loss raises the soft F1
    loss = SoftF1Loss()(z, t); gz, = torch.autograd.grad(loss, z)
    assert SoftF1Loss()(z.detach() - 0.5 * gz, t) < loss
    assert "reduction='mean'" in repr(SoftF1Loss())


# ---------------------------------------------------------------- erf max, softplus
def test_erf_max_gelu_and_bounds():
    x = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    assert_close(erf_max(x, torch.zeros(()), 1 / math.sqrt(2)), F.gelu(x), rtol=1e-13, atol=1e-15)
    a, b = torch.randn(1000, dtype=torch.float64, generator=gen(6)) * 3, torch.randn(1000, dtype=torch.float64, generator=gen(7)) * 3
    for mu in (0.5, 2.0, 20.0):
        e = torch.maximum(a, b) - erf_max(a, b, mu)
        ulp = 1e-15 * (a.abs() + b.abs())      # (a + b + d·erf)/2 rounds; the bound holds up to that
        assert (e >= -ulp).all() and (e <= C_ERF / (2 * mu) + ulp).all()
        assert_close(erf_max(a, b, mu) + erf_min(a, b, mu), a + b, rtol=1e-14, atol=1e-14)
        assert_close(erf_abs(a - b, mu), erf_max(a, b, mu) - erf_min(a, b, mu), rtol=1e-12, atol=1e-12)
    assert erf_max(torch.zeros(3, 1), torch.zeros(1, 4)).shape == (3, 4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_smooth_relu_is_scaled_softplus_and_two_point_lse(dtype):
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64).to(dtype)
    rtol, atol = TOL[dtype]
    for tau in (0.1, 1.0, 4.0):
        out = smooth_relu(x, tau)
        assert out.dtype == dtype
        xd = x.double()
        exact = F.relu(xd) + tau * torch.log1p(torch.exp(-xd.abs() / tau))
        assert_close(out.double(), exact, rtol=rtol, atol=atol)
        assert_close(out.double(), F.softplus(xd, beta=1 / tau), rtol=max(rtol, 1e-8), atol=atol)  # softplus: linear past x/τ > 20
        assert_close(out.double(), smooth_max(torch.stack([x, torch.zeros_like(x)], -1), tau).double(), rtol=rtol, atol=atol * tau)


# ---------------------------------------------------------------- hypothesis property tests
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
taus = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)


@given(arrays(np.float64, st.integers(1, 12), elements=finite), taus)
def test_property_lse_bounds(xs, tau):
    x = torch.from_numpy(xs)
    n, slack = len(xs), 1e-12 * (1 + np.abs(xs).max() + tau)
    m, mn = x.max().item(), x.min().item()
    lse, smin = smooth_max(x, tau).item(), smooth_min(x, tau).item()
    assert m - slack <= lse <= m + tau * math.log(n) + slack
    assert mn - tau * math.log(n) - slack <= smin <= mn + slack
    assert_close(lse, tau * torch.logsumexp(x / tau, 0).item(), rtol=1e-12, atol=slack)


@given(arrays(np.float64, st.integers(1, 30), elements=finite), taus)
def test_property_softplus_and_erf_bounds(xs, tau):
    x = torch.from_numpy(xs)
    gap = smooth_relu(x, tau) - F.relu(x)
    ulp = 4e-16 * x.abs()  # τ·(x/τ) need not round back to x exactly
    assert (gap >= -ulp).all() and (gap <= tau * math.log(2) * (1 + 1e-12) + ulp).all()
    mu = 1 / tau
    e = x.abs() - erf_abs(x, mu)
    assert (e >= 0).all() and (e <= C_ERF / mu * (1 + 1e-9)).all()


@given(arrays(np.float64, st.integers(2, 10), elements=finite), taus)
def test_property_soft_onehot_and_argmax_ranges(xs, tau):
    x = torch.from_numpy(xs)
    s = soft_onehot(x, tau)
    assert (s >= 0).all() and abs(s.sum().item() - 1) < 1e-12
    assert -1e-12 <= soft_argmax(x, tau).item() <= len(xs) - 1 + 1e-9


@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1)),
       arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1)))
def test_property_soft_f1_in_unit_interval(p, y):
    k = min(len(p), len(y))
    f = soft_f1(torch.from_numpy(p[:k]), torch.from_numpy(y[:k])).item()
    assert 0.0 <= f <= 1.0 + 1e-15


# ---------------------------------------------------------------- bad input: clear error, nothing mutated
X = torch.randn(3, 4, dtype=torch.float64)
REDUCERS = [smooth_max, smooth_min, soft_onehot, soft_argmax]


@pytest.mark.parametrize("fn", REDUCERS)
@pytest.mark.parametrize("kw, exc, msg", [
    (dict(tau=0.0), ValueError, "Invalid tau: 0.0"), (dict(tau=-1.0), ValueError, "Invalid tau: -1.0"),
    (dict(tau=math.nan), ValueError, "Invalid tau: nan"), (dict(tau=math.inf), ValueError, "Invalid tau: inf"),
    (dict(tau=True), TypeError, "Invalid tau"), (dict(tau="1"), TypeError, "Invalid tau"),
    (dict(tau=torch.tensor(1.0)), TypeError, "Invalid tau"),
    (dict(dim=2), ValueError, "Invalid dim: 2"), (dict(dim=-3), ValueError, "Invalid dim: -3"),
    (dict(dim=1.0), TypeError, "Invalid dim"),
])
def test_reducers_bad_arguments(fn, kw, exc, msg):
    x = X.clone()
    with pytest.raises(exc, match=msg): fn(x, **kw)
    assert torch.equal(x, X)


@pytest.mark.parametrize("fn", REDUCERS)
def test_reducers_bad_x(fn):
    with pytest.raises(TypeError, match="expected a torch.Tensor"): fn([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"): fn(torch.arange(3))
    with pytest.raises(ValueError, match="at least 1 dims"): fn(torch.tensor(1.0))
    with pytest.raises(ValueError, match="non-empty"): fn(torch.zeros(2, 0))


def test_soft_accuracy_bad_input():
    p = torch.softmax(X, -1); y = torch.tensor([0, 1, 3]); p0, y0 = p.clone(), y.clone()
    for args, exc, msg in [
        ((p, y.double()), TypeError, "Invalid y: expected an integer"), ((p, y.bool()), TypeError, "Invalid y"),
        ((p, [0, 1, 3]), TypeError, "Invalid y"), ((p, y[:2]), ValueError, r"must have shape \(3,\)"),
        ((p, y[None]), ValueError, "Invalid y"), ((p.long(), y), TypeError, "floating-point"),
        ((p, torch.zeros(3, dtype=torch.long), 0), ValueError, r"must have shape \(4,\)"),
        ((p, y, 5), ValueError, "Invalid dim: 5"), ((torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), ValueError, "at least one sample"),
    ]:
        with pytest.raises(exc, match=msg): soft_accuracy(*args)
    assert torch.equal(p, p0) and torch.equal(y, y0)


def test_soft_f1_and_loss_bad_input():
    p = torch.rand(10, 3, dtype=torch.float64); y = (torch.rand(10, 3) < 0.5); p0, y0 = p.clone(), y.clone()
    for args, kw, exc, msg in [
        ((p, y[:5]), {}, ValueError, r"Invalid y: \(5, 3\)"), ((p, y.T), {}, ValueError, "Invalid y"),
        ((p, y.to(torch.complex64)), {}, TypeError, "Invalid y: expected real"), ((p, y.tolist()), {}, TypeError, "Invalid y"),
        ((p.long(), y), {}, TypeError, "floating-point"), ((p, y), dict(eps=0.0), ValueError, "Invalid eps: 0.0"),
        ((p, y), dict(eps=-1e-8), ValueError, "Invalid eps"), ((p, y), dict(dim=2), ValueError, "Invalid dim: 2"),
    ]:
        with pytest.raises(exc, match=msg): soft_f1(*args, **kw)
    for kw, exc, msg in [(dict(reduction="batchmean"), ValueError, "Invalid reduction: 'batchmean'"),
                         (dict(reduction=None), ValueError, "Invalid reduction"), (dict(eps=0), ValueError, "Invalid eps"),
                         (dict(from_logits=1), TypeError, "Invalid from_logits"), (dict(dim="0"), TypeError, "Invalid dim")]:
        with pytest.raises(exc, match=msg): SoftF1Loss(**kw)
    loss = SoftF1Loss()
    with pytest.raises(ValueError, match="Invalid target"): loss(p, y[:5])
    with pytest.raises(TypeError, match="Invalid input"): loss(p.long(), y)
    with pytest.raises(TypeError, match="Invalid target"): loss(p, y.numpy())
    with pytest.raises(ValueError, match="Invalid dim: 2"): SoftF1Loss(dim=2)(p, y)
    assert torch.equal(p, p0) and torch.equal(y, y0)


def test_erf_and_relu_bad_input():
    a = torch.randn(3, dtype=torch.float64); b = torch.randn(4, dtype=torch.float64); a0, b0 = a.clone(), b.clone()
    for fn in (erf_max, erf_min):
        with pytest.raises(ValueError, match="does not broadcast"): fn(a, b)
        with pytest.raises(ValueError, match="Invalid mu: 0.0"): fn(a, a, mu=0.0)
        with pytest.raises(TypeError, match="Invalid mu"): fn(a, a, mu=None)
        with pytest.raises(TypeError, match="Invalid b"): fn(a, 0.0)
        with pytest.raises(TypeError, match="Invalid a"): fn(a.long(), a)
    with pytest.raises(ValueError, match="Invalid mu: -1.0"): erf_abs(a, -1.0)
    with pytest.raises(TypeError, match="Invalid x"): erf_abs([1.0])
    with pytest.raises(ValueError, match="Invalid tau: 0.0"): smooth_relu(a, 0.0)
    with pytest.raises(TypeError, match="floating-point"): smooth_relu(torch.arange(3))
    assert torch.equal(a, a0) and torch.equal(b, b0)


def test_inputs_not_mutated_and_dtype_device_preserved():
    x = torch.randn(5, 6, dtype=torch.float32, generator=gen(9)); x0 = x.clone()
    for fn in REDUCERS:
        out = fn(x, 0.5, 0)
        assert out.dtype == x.dtype and out.device == x.device
    smooth_relu(x); erf_abs(x); erf_max(x, x.flip(0))
    assert torch.equal(x, x0)
