"""Tests for su_notes.optim.batch_size that the notebook does not run.

- Peer 1, per-example gradients with `torch.func` (vmap of grad): on an MLP and a fixed data set, the exact
  |G|² and tr Σ of sampling with replacement, against the mean of the two-batch estimators over many batch
  draws whose gradients come from `torch.func.grad` of the batch loss (the estimators are unbiased).
- Peer 2, EleutherAI/gpt-neox's `GradientNoiseScale._update`, re-implemented here from its equations (fed the
  same sequence of gradients): the same B_simple; its `noise`/`scale` are our |G|²/tr Σ (names swapped) and
  its EMA bias correction uses the step counter, which the ratio hides.
- Peer 3, scipy: `minimize_scalar` of the expected second-order loss (numpy, scipy.special.erf) for SGD and
  sign updates; the peak of the mean-field sign curve found numerically.
- hypothesis properties; bad input of every public name (clear error, nothing mutated); state_dict round trip;
  no host sync in `GradientNoiseScale.update` on CUDA.
"""

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from scipy import optimize, special

from su_notes.core import assert_close
from su_notes.optim.batch_size import (
    GradientNoiseScale,
    NoiseEstimate,
    expected_sign,
    optimal_lr_sgd,
    optimal_lr_sign,
    optimal_lr_sign_quadratic,
    sgd_noise_scales,
    sign_mean_field,
    sign_surge_params,
    two_batch_noise_estimates,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def quadratic(seed, d=6, device="cpu"):
    "A random SPD H, SPD Σ and g (float64)."
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=gen, dtype=F64)
    L = torch.randn(d, d, generator=gen, dtype=F64)
    H = A @ A.T / d + 0.1 * torch.eye(d, dtype=F64)
    S = L @ L.T / d + 0.05 * torch.eye(d, dtype=F64)
    g = torch.randn(d, generator=gen, dtype=F64)
    return g.to(device), H.to(device), S.to(device)


# ------------------------------------------------------------------ peer 1: torch.func per-example gradients
def test_two_batch_unbiased_against_per_example_gradients(device):
    gen = torch.Generator().manual_seed(0)
    N, din = 48, 5
    X = torch.randn(N, din, generator=gen, dtype=F64).to(device)
    y = torch.randn(N, generator=gen, dtype=F64).to(device)
    model = torch.nn.Sequential(torch.nn.Linear(din, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(device, F64)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xb, yb):
        return (torch.func.functional_call(model, p, (xb,)).squeeze(-1) - yb).pow(2).mean()

    flat = lambda gr: torch.cat([v.reshape(-1) for v in gr.values()])
    # per-example gradients (vmap over examples) → exact population |G|² and tr Σ
    per_ex = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, X[:, None], y[:, None])
    P = torch.cat([v.reshape(N, -1) for v in per_ex.values()], 1)  # (N, n_params)
    G = P.mean(0)
    true_g2, true_tr = (G @ G).item(), (P - G).pow(2).sum(1).mean().item()  # with-replacement Σ
    # batch gradients from the batch loss itself (not from P), many draws with replacement
    R, bs, bb = 6000, 3, 12
    idx = torch.randint(0, N, (R, bb), generator=gen).to(device)
    batch_grad = torch.func.vmap(lambda i: flat(torch.func.grad(loss)(params, X[i], y[i])))
    g_big = batch_grad(idx)
    g_small = batch_grad(idx[:, :bs])  # small ⊂ big
    est = torch.func.vmap(lambda s, b: two_batch_noise_estimates(s, b, bs, bb))(g_small, g_big)
    for v, truth in ((est.grad_sq, true_g2), (est.trace_sigma, true_tr)):
        z = (v.mean().item() - truth) / (v.std().item() / math.sqrt(R))
        assert abs(z) < 4, (z, v.mean().item(), truth)
    # the naive big-batch |G|² is biased by tr Σ / B_big: the test can tell
    naive = g_big.pow(2).sum(1)
    assert (naive.mean().item() - true_g2) / (naive.std().item() / math.sqrt(R)) > 6


def test_gradient_lists_equal_flat_tensor(device):
    "A model's gradient list gives the same estimate as the concatenated vector; fp16 accumulates in fp32."
    gen = torch.Generator().manual_seed(1)
    a = [torch.randn(3, 4, generator=gen).to(device), torch.randn(5, generator=gen).to(device)]
    b = [t * 0.5 + 0.1 for t in a]
    e_list = two_batch_noise_estimates(a, b, 2, 8)
    cat = lambda ts: torch.cat([t.flatten() for t in ts])
    e_flat = two_batch_noise_estimates(cat(a), cat(b), 2, 8)
    assert_close(torch.stack(list(e_list)), torch.stack(list(e_flat)), rtol=1e-6, atol=1e-6)
    big = [torch.full((4096,), 200.0, dtype=torch.float16, device=device)]  # |g|² = 1.6e8 > fp16 max
    e16 = two_batch_noise_estimates(big, [t / 2 for t in big], 1, 4)
    assert e16.grad_sq.dtype == torch.float32
    assert torch.isfinite(e16.grad_sq) and torch.isfinite(e16.trace_sigma)
    assert_close(
        e16.trace_sigma,
        torch.tensor((4096 * 200.0**2 - 4096 * 100.0**2) / 0.75, device=device),
        rtol=1e-5,
        atol=0,
    )


# ------------------------------------------------------------------ peer 2: gpt-neox, re-implemented
class NeoxNoiseScale:
    """EleutherAI/gpt-neox `GradientNoiseScale._update` (megatron/gradient_noise_scale), re-written from its
    equations for one process: a buffer sums `n_batches` consecutive gradients; every n_batches-th call forms
    `noise` (its |G|² estimate) and `scale` (its tr Σ estimate), EMAs them with bias correction 1/(1 − β^(i+1)),
    i = the call counter, and stores noise_scale = scale / noise."""

    def __init__(self, batch_size_small, n_batches, beta):
        self.bs, self.bb, self.n, self.beta = (
            batch_size_small,
            batch_size_small * n_batches,
            n_batches,
            beta,
        )
        self.buffer, self.ema_noise, self.ema_scale, self.n_updates = None, 0.0, 0.0, 0
        self.noise_scale = self.noise = self.scale = None

    def update(self, grad):
        self.buffer = grad.clone() if self.buffer is None else self.buffer + grad
        if self.n_updates % self.n == self.n - 1:
            big = self.buffer / self.n
            self.buffer = None
            g_big, g_small = big.norm() ** 2, grad.norm() ** 2
            noise = (self.bb * g_big - self.bs * g_small) / (self.bb - self.bs)
            scale = (g_small - g_big) / (1 / self.bs - 1 / self.bb)
            corr = 1 - self.beta ** (self.n_updates + 1)
            self.ema_noise = self.beta * self.ema_noise + (1 - self.beta) * noise
            self.ema_scale = self.beta * self.ema_scale + (1 - self.beta) * scale
            self.noise, self.scale = self.ema_noise / corr, self.ema_scale / corr
            self.noise_scale = (self.scale / self.noise).item()
        self.n_updates += 1


@pytest.mark.parametrize("n_batches, beta", [(4, 0.9), (10, 0.99), (3, 0.0)])
def test_matches_gpt_neox_given_the_same_batches(device, n_batches, beta):
    gen = torch.Generator().manual_seed(2)
    bs, d, windows = 4, 20, 7
    grads = (torch.randn(windows * n_batches, d, generator=gen, dtype=F64) + 0.3).to(device)
    neox, ours = NeoxNoiseScale(bs, n_batches, beta), GradientNoiseScale(beta)
    for k in range(windows):
        w = grads[k * n_batches : (k + 1) * n_batches]
        for gk in w:
            neox.update(gk)
        ours.update(w[-1], w.mean(0), bs, bs * n_batches)  # small = the window's last, big = its mean
        ref = torch.tensor(neox.noise_scale, dtype=F64, device=device)
        assert_close(ours.b_simple, ref, rtol=1e-10, atol=0)
        # names swapped: gpt-neox's `noise` is |G|², `scale` is tr Σ; its bias correction counts every call
        fix = (1 - beta ** (k + 1)) / (1 - beta ** ((k + 1) * n_batches))
        assert_close(neox.noise, ours.grad_sq * fix, rtol=1e-10, atol=1e-12)
        assert_close(neox.scale, ours.trace_sigma * fix, rtol=1e-10, atol=1e-12)
    if 0 < beta:
        assert fix != pytest.approx(1.0)  # the counters really differ (hidden in the ratio)


# ------------------------------------------------------------------ peer 3: scipy minimisation
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("B", [0.5, 3.0, 40.0, 1e4])
def test_optimal_lr_sgd_vs_scipy(device, seed, B):
    g, H, S = (t.cpu().numpy() for t in quadratic(seed))
    f = lambda eta: -eta * g @ g + 0.5 * eta**2 * (g @ H @ g + np.trace(S @ H) / B)  # E ΔL, 2nd order
    ref = optimize.minimize_scalar(f, bounds=(0, 100), method="bounded", options={"xatol": 1e-12}).x
    out = optimal_lr_sgd(*quadratic(seed, device=device), B)
    assert out.device.type == torch.device(device).type and out.dtype == F64
    assert abs(out.item() - ref) <= 1e-6 * ref


@pytest.mark.parametrize("seed", range(3))
def test_optimal_lr_sign_quadratic_vs_scipy(device, seed):
    g, H, _ = quadratic(seed)
    sigma = (torch.rand(g.shape, generator=torch.Generator().manual_seed(seed), dtype=F64) + 0.2) * 2
    gn, Hn, sn = g.numpy(), H.numpy(), sigma.numpy()
    Bs = [0.1, 1.0, 7.0, 300.0]
    out = optimal_lr_sign_quadratic(
        g.to(device), H.to(device), sigma.to(device), torch.tensor(Bs, dtype=F64, device=device)
    ).cpu()
    for B, o in zip(Bs, out.tolist()):
        m = special.erf(gn / sn * math.sqrt(B / 2))
        E_pp = np.outer(m, m)
        np.fill_diagonal(E_pp, 1.0)  # E[φφᵀ], independent coordinates
        f = lambda eta: -eta * m @ gn + 0.5 * eta**2 * np.trace(E_pp @ Hn)
        ref = optimize.minimize_scalar(f, bounds=(0, 100), method="bounded", options={"xatol": 1e-12}).x
        assert abs(o - ref) <= 1e-6 * ref, (B, o, ref)


def test_sign_surge_peak_vs_numerical_maximum(device):
    d, kappa2 = 6, 3.0
    H = (0.2 * torch.eye(d, dtype=F64) + 0.15 * torch.ones(d, d, dtype=F64)).to(device)
    signs = torch.tensor([1, -1] * 3, dtype=F64, device=device)
    g = torch.linspace(0.5, 2.0, d, dtype=F64, device=device) * signs
    Hs = H * torch.outer(torch.sign(g), torch.sign(g))  # same-sign curvature sᵢsⱼH
    p = sign_surge_params(g, Hs, kappa2)
    gn, Hn = g.cpu().numpy(), Hs.cpu().numpy()
    s = np.sign(gn)

    def mf(logB):  # mean-field η*(B), numpy
        beta = (1 + np.pi * kappa2 / (2 * np.exp(logB))) ** -0.5
        return beta * np.abs(gn).sum() / (np.trace(Hn) * (1 - beta**2) + beta**2 * s @ Hn @ s)

    res = optimize.minimize_scalar(lambda x: -mf(x), bounds=(-8, 12), method="bounded", options={"xatol": 1e-10})
    assert abs(math.exp(res.x) / p.b_peak.item() - 1) < 1e-4
    assert abs(-res.fun / p.lr_max.item() - 1) < 1e-9
    assert_close(optimal_lr_sign(p.b_peak, kappa2, p.beta_noise, p.lr_max), p.lr_max, rtol=1e-12, atol=0)
    # the same curve from the per-coordinate mean-field formula (σᵢ = κ|gᵢ|)
    sigma = math.sqrt(kappa2) * g.abs()
    Bs = torch.logspace(-2, 3, 50, dtype=F64, device=device)
    assert_close(
        optimal_lr_sign_quadratic(g, Hs, sigma, Bs, approx=True),
        optimal_lr_sign(Bs, kappa2, p.beta_noise, p.lr_max),
        rtol=1e-12,
        atol=0,
    )


def test_expected_sign_vs_scipy_and_monte_carlo(device):
    g = torch.tensor([-1.5, -0.2, 0.0, 0.3, 2.0], dtype=F64, device=device)
    sigma = torch.tensor([1.0, 0.5, 2.0, 3.0, 1.0], dtype=F64, device=device)
    for B in (1, 4.5, 64):
        ref = special.erf(g.cpu().numpy() / sigma.cpu().numpy() * math.sqrt(B / 2))
        # two erf implementations (torch's kernels differ by CPU vector width), each within a few ulp
        assert np.allclose(expected_sign(g, sigma, B).cpu().numpy(), ref, rtol=1e-13, atol=1e-16)
    z = torch.randn(200_000, 5, generator=torch.Generator().manual_seed(3), dtype=F64)
    x = g.cpu() + z * sigma.cpu() / 2
    mc = torch.sign(x).mean(0)  # B = 4
    tol = 4 * (1 - mc**2).sqrt() / math.sqrt(2e5) + 1e-3
    assert bool(((mc - expected_sign(g, sigma, 4).cpu()).abs() < tol).all())
    # exact: g = 0 gives x = 0 and 0·rsqrt(π/4) = 0, no NaN
    assert sign_mean_field(g, sigma, 4)[2].item() == 0.0


# ------------------------------------------------------------------ hypothesis properties
@given(st.integers(0, 10_000), st.floats(0.1, 1e3), st.floats(1.01, 50), st.floats(0.01, 100))
def test_sgd_properties(seed, B, factor, c):
    g, H, S = quadratic(seed, d=4)
    e1, e2 = optimal_lr_sgd(g, H, S, B), optimal_lr_sgd(g, H, S, B * factor)
    ns = sgd_noise_scales(g, H, S)
    assert 0 < e1 < e2 <= ns.lr_max * (1 + 1e-12)  # increasing, below the ceiling
    assert_close(optimal_lr_sgd(c * g, H, c**2 * S, B), e1, rtol=1e-9, atol=0)  # gradient units cancel
    assert_close(optimal_lr_sgd(g, c * H, S, B), e1 / c, rtol=1e-9, atol=0)  # curvature units
    assert_close(optimal_lr_sgd(g, H, S, ns.b_noise), ns.lr_max / 2, rtol=1e-9, atol=0)


@given(st.floats(0.05, 0.99), st.floats(0.1, 50), st.floats(1e-3, 1e4))
def test_sign_curve_properties(beta_n, kappa2, B):
    out = optimal_lr_sign(B, kappa2, beta_n, 1.0)
    assert 0 < out <= 1 + 1e-12  # η_max is the maximum
    b_peak = math.pi * kappa2 * beta_n**2 / (2 * (1 - beta_n**2))
    if B < b_peak:
        assert optimal_lr_sign(B * 0.9, kappa2, beta_n, 1.0) < out  # rises before the peak
    else:
        assert optimal_lr_sign(B * 1.1, kappa2, beta_n, 1.0) < out  # falls after it
    assert abs(optimal_lr_sign(b_peak, kappa2, beta_n, 1.0).item() - 1) < 1e-12


# ------------------------------------------------------------------ state, syncs
def test_state_dict_round_trip(device):
    gen = torch.Generator().manual_seed(4)
    r = lambda: torch.randn(9, generator=gen).to(device)
    pairs = [(r(), r()) for _ in range(8)]
    a = GradientNoiseScale(0.9)
    for s, b in pairs[:5]:
        a.update(s, b, 2, 16)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = GradientNoiseScale(0.5)
    c.load_state_dict(torch.load(buf))
    for s, b in pairs[5:]:
        a.update(s, b, 2, 16)
        c.update(s, b, 2, 16)
    assert c.step == a.step == 8 and c.beta == 0.9
    # exact: the restored state is a copy and both then run the same ops on the same inputs
    assert torch.equal(a.b_simple, c.b_simple) and torch.equal(a.grad_sq, c.grad_sq)
    sd = a.state_dict()
    sd["grad_sq"] += 1  # a copy, not a view
    assert not torch.equal(sd["grad_sq"], a._grad_sq)
    a.reset()
    assert a.step == 0
    with pytest.raises(RuntimeError, match="call update"):
        a.b_simple


def test_update_returns_tensors_on_the_gradients_device(device):
    "CPU side of 'no host sync': everything stays a tensor on the gradients' device."
    gns = GradientNoiseScale()
    est = gns.update(torch.ones(4, device=device), torch.ones(4, device=device) * 0.5, 1, 4)
    assert isinstance(est, NoiseEstimate)
    for t in (*est, gns.grad_sq, gns.trace_sigma, gns.b_simple):
        assert isinstance(t, torch.Tensor) and t.device.type == torch.device(device).type


@pytest.mark.cuda
def test_no_host_sync_in_update_cuda():
    gns = GradientNoiseScale()
    gs = [torch.randn(1000, device="cuda") for _ in range(3)]
    gns.update(gs, [g * 0.5 for g in gs], 4, 32)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            gns.update(gs, [g * 0.5 for g in gs], 4, 32)
        gns.b_simple
        two_batch_noise_estimates(gs, gs, 4, 32)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ------------------------------------------------------------------ bad input
def _unchanged(*ts):
    snaps = [t.clone() for t in ts]
    return lambda: all(torch.equal(a, b) for a, b in zip(ts, snaps))


def test_bad_input_sgd():
    g, H, S = quadratic(0, d=3)
    ok = _unchanged(g, H, S)
    cases = [
        ((g[None], H, S, 4), ValueError, "Invalid g"),
        ((g, H[:2], S, 4), ValueError, "Invalid H"),
        ((g, H, S.float(), 4), TypeError, "Invalid Sigma"),
        ((g.long(), H, S, 4), TypeError, "Invalid g"),
        ((g, H, [[1.0]], 4), TypeError, "Invalid Sigma"),
        ((g, H, S, 0), ValueError, "Invalid batch_size: 0"),
        ((g, H, S, -2.0), ValueError, "Invalid batch_size"),
        ((g, H, S, math.nan), ValueError, "NaN"),
        ((g, H, S, True), TypeError, "Invalid batch_size"),
        ((g, H, S, "8"), TypeError, "Invalid batch_size"),
        ((g, H, S, torch.tensor([1.0, 0.0])), ValueError, "Invalid batch_size"),
        ((g, H, S, torch.tensor([1 + 1j])), TypeError, "Invalid batch_size"),
    ]
    for args, err, msg in cases:
        with pytest.raises(err, match=msg):
            optimal_lr_sgd(*args)
    with pytest.raises(ValueError, match="Invalid H"):
        sgd_noise_scales(g, H[:, :2], S)
    assert ok()
    # no minimum along the step (negative curvature): inf, not a negative rate
    assert optimal_lr_sgd(g, -H, 0 * S, 4).item() == math.inf


def test_bad_input_two_batch():
    a, b = torch.ones(3), torch.ones(3) * 0.5
    ok = _unchanged(a, b)
    for args, err, msg in [
        ((a, b, 4, 4), ValueError, "Invalid b_big"),
        ((a, b, 0, 4), ValueError, "Invalid b_small"),
        ((a, b, 8, 4), ValueError, "Invalid b_big"),
        (([], b, 1, 4), TypeError, "grad_small"),
        ((a, "x", 1, 4), TypeError, "grad_big"),
        ((a.long(), b, 1, 4), TypeError, "grad_small"),
        ((a, b, True, 4), TypeError, "b_small"),
        ((a, b, 1, math.inf), ValueError, "b_big"),
    ]:
        with pytest.raises(err, match=msg):
            two_batch_noise_estimates(*args)
    for beta, err in [
        (1.0, ValueError),
        (-0.1, ValueError),
        (True, TypeError),
        (math.nan, ValueError),
    ]:
        with pytest.raises(err, match="Invalid beta"):
            GradientNoiseScale(beta)
    gns = GradientNoiseScale()
    with pytest.raises(ValueError, match="Invalid b_big"):
        gns.update(a, b, 4, 2)
    assert gns.step == 0  # a failed update changes nothing
    with pytest.raises(ValueError, match="Invalid state"):
        gns.load_state_dict({"beta": 0.9})
    with pytest.raises(ValueError, match="Invalid step"):
        gns.load_state_dict({"beta": 0.9, "step": -1, "grad_sq": None, "trace_sigma": None})
    assert ok()


def test_bad_input_sign():
    g = torch.tensor([1.0, -2.0], dtype=F64)
    s = torch.tensor([1.0, 1.0], dtype=F64)
    H = torch.eye(2, dtype=F64) + 0.5
    ok = _unchanged(g, s, H)
    for fn in (expected_sign, sign_mean_field):
        with pytest.raises(ValueError, match="Invalid sigma"):
            fn(g, torch.tensor([1.0, 0.0], dtype=F64), 1)
        with pytest.raises(ValueError, match="Invalid sigma"):
            fn(g, s[:1], 1)
        with pytest.raises(TypeError, match="Invalid sigma"):
            fn(g, s.float(), 1)
        with pytest.raises(ValueError, match="Invalid batch_size"):
            fn(g, s, -1)
        with pytest.raises(TypeError, match="Invalid g"):
            fn([1.0], s, 1)
    with pytest.raises(TypeError, match="Invalid approx"):
        optimal_lr_sign_quadratic(g, H, s, 1, approx=1)
    with pytest.raises(ValueError, match="Invalid batch_size"):
        optimal_lr_sign_quadratic(g, H, s, torch.ones(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="Invalid H"):
        optimal_lr_sign_quadratic(g, H[:1], s, 1)
    with pytest.raises(ValueError, match="same-sign off-diagonal"):
        sign_surge_params(g, torch.eye(2, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="Invalid kappa2"):
        sign_surge_params(g, H, 0.0)
    for args, err, msg in [
        ((4, 0.0, 0.5, 1.0), ValueError, "kappa2"),
        ((4, 1.0, 0.0, 1.0), ValueError, "beta_noise"),
        ((4, 1.0, 0.5, -1.0), ValueError, "lr_max"),
        ((0, 1.0, 0.5, 1.0), ValueError, "batch_size"),
        ((4, math.nan, 0.5, 1.0), ValueError, "kappa2"),
        ((4, 1.0, None, 1.0), TypeError, "beta_noise"),
    ]:
        with pytest.raises(err, match=f"Invalid {msg}"):
            optimal_lr_sign(*args)
    assert ok()
