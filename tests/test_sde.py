"""Tests for su_notes.generative.sde beyond the notebook's checks.

Peers that share no code with the module: score_sde's VP-SDE formulas (`sde_lib.VPSDE`), written out here from
the paper's equations; score_sde's likelihood path (`likelihood.py`) re-implemented with scipy's
`solve_ivp(method="RK45")` on flattened NumPy and an exact divergence from `torch.func.jacrev`; torchdiffeq's
`dopri5`; closed forms (Gaussian data: the PF-ODE map and log-density; a Gaussian mixture: scipy's
`multivariate_normal`). Also hypothesis properties and bad input (clear errors, nothing mutated).
Cross-checks and property tests run on `--device` (default cpu).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.integrate import solve_ivp
from scipy.stats import multivariate_normal
from torchdiffeq import odeint

from su_notes.core import GaussianMixture
from su_notes.generative.sde import (
    VPSDE,
    mixture_log_prob_t,
    mixture_score_fn,
    ode_log_likelihood,
    odeint_dopri5,
    pf_ode_sample,
    pf_ode_solve,
    probability_flow_drift,
    reverse_drift,
    reverse_sde_sample,
)

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- the peer's formulas, from the paper (eq. 11, 29)


def peer_vp(beta_min, beta_max):
    "score_sde's VPSDE written from Song et al. (2021): β(t), drift, diffusion, marginal mean coefficient and std."
    beta = lambda t: beta_min + t * (beta_max - beta_min)
    log_mean = lambda t: -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min
    return dict(
        beta=beta,
        drift=lambda x, t: -0.5 * beta(t).reshape(-1, *[1] * (x.ndim - 1)) * x,
        diffusion=lambda t: torch.sqrt(beta(t)),
        mean=lambda x, t: torch.exp(log_mean(t)).reshape(-1, *[1] * (x.ndim - 1)) * x,
        std=lambda t: torch.sqrt(1.0 - torch.exp(2.0 * log_mean(t))),
    )


def mixture(device, dtype=F64):
    return GaussianMixture(
        torch.tensor([0.3, 0.3, 0.4], dtype=dtype, device=device),
        torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=dtype, device=device),
        torch.stack(
            [
                0.3 * torch.eye(2, dtype=dtype, device=device),
                torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=dtype, device=device),
                0.4 * torch.eye(2, dtype=dtype, device=device),
            ]
        ),
    )


def gaussian_data(mu, s0, sde):
    """Data N(mu, s0² I): p_t = N(ā μ, V_t I) with V_t = ā²s0² + β̄²; exact score, log p_t, and the prior at T.
    ā, β̄ are computed from the peer's formulas, not the module's."""
    pv = peer_vp(sde.beta_min, sde.beta_max)

    def coeffs(t):
        t = torch.as_tensor(t, dtype=mu.dtype, device=mu.device)
        a = (
            pv["mean"](torch.ones_like(t), t)
            if t.ndim
            else pv["mean"](torch.ones(1, dtype=t.dtype, device=t.device), t.reshape(1))[0]
        )
        return a, a**2 * s0**2 + pv["std"](t) ** 2

    def score_fn(x, t):
        a, V = coeffs(t)
        return -(x - a[:, None] * mu) / V[:, None]

    def log_p(x, t):
        a, V = coeffs(t)
        d = x.shape[-1]
        return -0.5 * ((x - a[:, None] * mu) ** 2).sum(-1) / V - 0.5 * d * torch.log(2 * math.pi * V)

    return score_fn, log_p, coeffs


class ExactPrior(VPSDE):
    "The same SDE with log p_T taken from a given closed form (isolates the solver from the N(0, I) approximation)."

    def __init__(self, log_pT, **kw):
        super().__init__(**kw)
        self._log_pT = log_pT

    def prior_logp(self, z):
        return self._log_pT(z)


# ---------------------------------------------------------------- VPSDE against score_sde's formulas


@settings(max_examples=25)
@given(beta_min=st.floats(0.01, 1.0), span=st.floats(0.0, 30.0), seed=st.integers(0, 10_000))
def test_vpsde_matches_score_sde_formulas(beta_min, span, seed, device):
    sde, pv = VPSDE(beta_min, beta_min + span), peer_vp(beta_min, beta_min + span)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, 4, 4, dtype=F64, generator=g).to(device)  # image-shaped, as score_sde
    t = (0.01 + 0.99 * torch.rand(6, dtype=F64, generator=g)).to(device)
    drift, diff = sde.sde(x, t)
    mean, std = sde.marginal_prob(x, t)
    # drift, diffusion and mean: the same few elementwise operations, so a few ulp of the value
    ulp = dict(rtol=16 * EPS64, atol=16 * EPS64)
    torch.testing.assert_close(drift, pv["drift"](x, t), **ulp)
    torch.testing.assert_close(diff, pv["diffusion"](t), **ulp)
    torch.testing.assert_close(mean, pv["mean"](x, t), **ulp)
    # the peer's 1 − exp(2ℓ) loses log10(1/|2ℓ|) digits near t = 0.01 (ours uses expm1)
    torch.testing.assert_close(std, pv["std"](t), rtol=1e-9, atol=1e-12)
    assert drift.shape == x.shape and diff.shape == (6,) and std.device == x.device


def test_vpsde_std_keeps_precision_near_zero():
    # 1 − exp(2 log ā) loses digits at t ~ 1e-7 in float32; expm1 does not
    sde = VPSDE()
    t = torch.tensor([1e-7, 1e-5], dtype=torch.float32)
    exact = torch.sqrt(-torch.expm1(2 * (-0.25 * t.double() ** 2 * 19.9 - 0.05 * t.double())))
    # a float32 result against float64: relative error is the measure (β̄ ≈ 1e-3 here), 84 ulp
    torch.testing.assert_close(sde.marginal_coeffs(t)[1].double(), exact, rtol=1e-5, atol=0)
    naive = peer_vp(0.1, 20.0)["std"](t).double()
    assert (naive - exact).abs().max() / exact.max() > 1e-3  # the naive float32 form is off by > 0.1 %


def test_time_broadcasting_and_prior_logp(device):
    sde = VPSDE()
    x = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0)).to(device)
    d_float, _ = sde.sde(x, 0.3)
    d_vec, _ = sde.sde(x, torch.full((5,), 0.3, dtype=F64, device=device))
    d_zero, _ = sde.sde(x, torch.tensor(0.3, device=device))
    torch.testing.assert_close(d_float, d_vec)
    torch.testing.assert_close(d_zero, d_vec)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(x.cpu()).sum(-1)
    # two formulas for a sum of 2 terms of size O(1): a handful of roundings
    torch.testing.assert_close(sde.prior_logp(x).cpu(), ref, rtol=256 * EPS64, atol=256 * EPS64)


# ---------------------------------------------------------------- the solver against scipy and torchdiffeq


def _test_system(y, t):
    A = torch.tensor([[-1.0, 2.0], [-3.0, -0.5]], dtype=y.dtype, device=y.device)
    return torch.sin(3 * t) * (y @ A.T) + 0.1 * y**2


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), log_tol=st.integers(-10, -3), t1=st.floats(0.3, 3.0))
def test_dopri5_takes_scipy_rk45_steps(seed, log_tol, t1):
    # forward in time, same right-hand side and tolerances: identical step sequence (NFE) and states to rounding
    tol = 10.0**log_tol
    y0 = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))
    stats = {}
    ours = odeint_dopri5(lambda t, y: _test_system(y, t), y0, [0.0, t1], rtol=tol, atol=tol, stats=stats)[-1]
    ref = solve_ivp(
        lambda t, y: _test_system(torch.from_numpy(y).view(4, 2), torch.tensor(t)).flatten().numpy(),
        (0.0, t1),
        y0.flatten().numpy(),
        method="RK45",
        rtol=tol,
        atol=tol,
    )
    assert stats["nfe"] == ref.nfev
    np.testing.assert_allclose(ours.flatten().numpy(), ref.y[:, -1], rtol=1e-11, atol=1e-12)


def test_dopri5_backward_and_intermediate_times_match_scipy_to_tolerance():
    y0 = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    ts = [2.0, 1.5, 0.7, 0.0]
    ours = odeint_dopri5(lambda t, y: _test_system(y, t), y0, ts, rtol=1e-9, atol=1e-9)
    ref = solve_ivp(
        lambda t, y: _test_system(torch.from_numpy(y).view(4, 2), torch.tensor(t)).flatten().numpy(),
        (2.0, 0.0),
        y0.flatten().numpy(),
        method="RK45",
        rtol=1e-12,
        atol=1e-12,
        t_eval=ts,
    )
    np.testing.assert_allclose(ours.reshape(4, -1).numpy(), ref.y.T, rtol=1e-6, atol=1e-7)
    # the first output is the solver's copy of y0: bit-exact by construction
    assert (ours[0] == y0).all()


def test_dopri5_exact_on_exponential_and_constant(device):
    y0 = torch.tensor([[1.0, -2.0]], dtype=F64, device=device)
    out = odeint_dopri5(lambda t, y: -0.7 * y, y0, torch.tensor([0.0, 1.0, 3.0], dtype=F64), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out[-1], y0 * math.exp(-2.1), rtol=1e-8, atol=1e-12)
    stats = {}
    const = odeint_dopri5(lambda t, y: torch.zeros_like(y), y0, [1.0, 0.0], stats=stats)[-1]
    # every stage adds dt·0 = 0 exactly: the state is bit-for-bit y0
    assert (const == y0).all() and stats["n_rejected"] == 0


def test_pf_ode_matches_torchdiffeq_dopri5(device):
    gm, sde = mixture(device), VPSDE()
    score = mixture_score_fn(gm, sde)
    x_T = torch.randn(200, 2, dtype=F64, generator=torch.Generator().manual_seed(2)).to(device)
    ours = pf_ode_sample(score, sde, x_T, rtol=1e-8, atol=1e-8)
    t = torch.tensor([1.0, 1e-3], dtype=F64, device=device)
    # step_t: without it torchdiffeq steps past 1e-3 into t < 0, where the VP score is NaN
    ref = odeint(
        lambda tt, y: probability_flow_drift(score, sde, y, tt),
        x_T,
        t,
        rtol=1e-8,
        atol=1e-8,
        method="dopri5",
        options={"step_t": t[1:]},
    )[-1]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- closed forms: Gaussian data


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), s0=st.floats(0.2, 2.0), shift=st.floats(-3.0, 3.0))
def test_pf_ode_map_is_the_closed_form_for_gaussian_data(seed, s0, shift, device):
    # p_0 = N(μ, s0² I): the flow is affine, x_t = ā_t μ + sqrt(V_t / V_s)(x_s − ā_s μ)
    sde = VPSDE()
    mu = torch.tensor([shift, -0.5 * shift, 1.0], dtype=F64, device=device)
    score, _, coeffs = gaussian_data(mu, s0, sde)
    x_s = torch.randn(30, 3, dtype=F64, generator=torch.Generator().manual_seed(seed)).to(device)
    ys = pf_ode_solve(score, sde, x_s, [0.9, 0.4, 0.05], rtol=1e-9, atol=1e-9)
    a_s, V_s = coeffs(0.9)
    for tv, y in zip((0.4, 0.05), ys[1:]):
        a_t, V_t = coeffs(tv)
        torch.testing.assert_close(y, a_t * mu + torch.sqrt(V_t / V_s) * (x_s - a_s * mu), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_log_likelihood_gaussian_data_closed_form(trace, device):
    # the Jacobian of v is c(t)·I: Rademacher Hutchinson is exact (ε_i² = 1), so both traces must match
    sde0 = VPSDE()
    mu = torch.tensor([1.0, -2.0], dtype=F64, device=device)
    score, log_p, _ = gaussian_data(mu, 0.6, sde0)
    sde = ExactPrior(lambda z: log_p(z, torch.full(z.shape[:1], 1.0, dtype=z.dtype, device=z.device)))
    x = torch.tensor([[1.0, -2.0], [0.0, 0.0], [3.0, 1.0]], dtype=F64, device=device)
    ll = ode_log_likelihood(
        score, sde, x, rtol=1e-9, atol=1e-9, trace=trace, generator=torch.Generator().manual_seed(0)
    )
    exact = log_p(x, torch.full((3,), 1e-5, dtype=F64, device=device))
    torch.testing.assert_close(ll, exact, rtol=1e-7, atol=1e-7)
    assert ll.shape == (3,) and ll.device == x.device


def test_hutchinson_gaussian_probe_is_unbiased_not_exact():
    sde0 = VPSDE()
    mu = torch.tensor([1.0, -2.0], dtype=F64)
    score, log_p, _ = gaussian_data(mu, 0.6, sde0)
    sde = ExactPrior(lambda z: log_p(z, torch.ones(z.shape[0], dtype=z.dtype)))
    x = torch.tensor([[0.5, -1.0]], dtype=F64).repeat(400, 1)
    ll = ode_log_likelihood(
        score,
        sde,
        x,
        trace="hutchinson",
        noise="gaussian",
        generator=torch.Generator().manual_seed(3),
        rtol=1e-7,
        atol=1e-7,
    )
    exact = log_p(x[:1], torch.tensor([1e-5], dtype=F64))
    assert ll.std() > 0.1  # individual estimates scatter ...
    assert (ll.mean() - exact).abs() < 4 * ll.std() / 20  # ... around the exact value (4 s.e., n = 400)


# ---------------------------------------------------------------- score_sde's scipy likelihood path, re-implemented


def scipy_likelihood(log_p0_score, beta_min, beta_max, x, rtol, atol, eps):
    """score_sde `likelihood.py` path: solve_ivp(RK45) on the flattened (x, Δlogp) from eps to 1, exact divergence
    of the PF drift by torch.func.jacrev per point, prior N(0, I). Everything from the peer's own formulas."""
    pv = peer_vp(beta_min, beta_max)
    n, d = x.shape

    def drift_one(xi, t):  # xi (d,), t 0-d
        tt = t.reshape(1)
        return (pv["drift"](xi[None], tt) - 0.5 * pv["beta"](tt)[:, None] * log_p0_score(xi[None], tt))[0]

    jac = torch.func.vmap(torch.func.jacrev(drift_one), in_dims=(0, None))

    def ode_func(t, y):
        xs = torch.from_numpy(y[:-n]).view(n, d)
        tt = torch.tensor(t, dtype=F64)
        drift = torch.stack([drift_one(xs[i], tt) for i in range(n)])
        div = torch.diagonal(jac(xs, tt), dim1=-2, dim2=-1).sum(-1)
        return np.concatenate([drift.flatten().numpy(), div.numpy()])

    init = np.concatenate([x.flatten().numpy(), np.zeros(n)])
    sol = solve_ivp(ode_func, (eps, 1.0), init, rtol=rtol, atol=atol, method="RK45")
    z = sol.y[:-n, -1].reshape(n, d)
    prior = -0.5 * (z**2).sum(1) - 0.5 * d * math.log(2 * math.pi)
    return prior + sol.y[-n:, -1], sol.nfev


def test_log_likelihood_matches_score_sde_scipy_path_and_closed_form():
    gm = mixture("cpu")
    pv = peer_vp(0.1, 20.0)

    def peer_score(x, t):  # exact mixture score with the peer's own ā, β̄
        return gm.noised_score(x, pv["mean"](torch.ones_like(t), t), pv["std"](t))

    x = torch.tensor([[-2.0, 0.0], [0.0, 2.5], [4.0, 4.0], [0.3, -0.7]], dtype=F64)
    ref, nfev = scipy_likelihood(peer_score, 0.1, 20.0, x, 1e-5, 1e-5, 1e-5)
    stats = {}
    ours = ode_log_likelihood(mixture_score_fn(gm, VPSDE()), VPSDE(), x, stats=stats)
    assert stats["nfe"] == nfev  # the same RK45 steps as scipy
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-8, atol=1e-8)
    # the closed-form mixture density (scipy), up to the N(0, I) prior approximation (≤ 0.05 nats here)
    closed = np.log(
        sum(
            w * multivariate_normal(m, c).pdf(x.numpy())
            for w, m, c in zip([0.3, 0.3, 0.4], gm.means.numpy(), gm.covs.numpy())
        )
    )
    np.testing.assert_allclose(ours.numpy(), closed, atol=0.05)


def test_log_likelihood_exact_prior_matches_closed_form(device):
    gm, sde0 = mixture(device), VPSDE()
    sde = ExactPrior(lambda z: mixture_log_prob_t(gm, sde0, z, 1.0))
    x = gm.sample(20, generator=torch.Generator().manual_seed(4))
    ll = ode_log_likelihood(mixture_score_fn(gm, sde), sde, x, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(ll, mixture_log_prob_t(gm, sde, x, 1e-5), rtol=1e-6, atol=1e-6)


def test_detached_score_is_refused_and_create_graph_score_accepted(device):
    gm, sde = mixture(device), VPSDE()
    score = mixture_score_fn(gm, sde)
    x = torch.tensor([[0.0, 1.0]], dtype=F64, device=device)
    with pytest.raises(ValueError, match="detached from x"):
        ode_log_likelihood(lambda xx, t: score(xx, t).detach(), sde, x)

    def autograd_score(xx, t):
        (g,) = torch.autograd.grad(mixture_log_prob_t(gm, sde, xx, t).sum(), xx, create_graph=True)
        return g

    torch.testing.assert_close(
        ode_log_likelihood(autograd_score, sde, x),
        ode_log_likelihood(score, sde, x),
        rtol=1e-7,
        atol=1e-7,
    )


def test_float32_runs_and_agrees_with_float64(device):
    gm64, gm32 = mixture(device), mixture(device, torch.float32)
    sde = VPSDE()
    x = torch.tensor([[-2.0, 0.0], [0.0, 2.5]], dtype=F64, device=device)
    l64 = ode_log_likelihood(mixture_score_fn(gm64, sde), sde, x)
    l32 = ode_log_likelihood(mixture_score_fn(gm32, sde), sde, x.float())
    assert l32.dtype == torch.float32
    torch.testing.assert_close(l32.double(), l64, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- samplers


def test_reverse_drift_family_endpoints(device):
    gm, sde = mixture(device), VPSDE()
    score = mixture_score_fn(gm, sde)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 2, dtype=F64, generator=g).to(device)
    t = (torch.rand(7, dtype=F64, generator=g) * 0.9 + 0.05).to(device)
    pv = peer_vp(0.1, 20.0)
    f, b, s = pv["drift"](x, t), pv["beta"](t)[:, None], score(x, t)
    torch.testing.assert_close(reverse_drift(score, sde, x, t, 1.0), f - b * s)  # score_sde reverse SDE
    torch.testing.assert_close(probability_flow_drift(score, sde, x, t), f - 0.5 * b * s)  # probability_flow=True
    torch.testing.assert_close(reverse_drift(score, sde, x, t, 0.5), f - 0.75 * b * s)


def test_reverse_sde_lambda_zero_converges_to_pf_ode(device):
    gm, sde = mixture(device), VPSDE()
    score = mixture_score_fn(gm, sde)
    x_T = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(5)).to(device)
    ode = pf_ode_sample(score, sde, x_T, rtol=1e-8, atol=1e-8)
    errs = [
        (reverse_sde_sample(score, sde, x_T, 0.0, n_steps=n, show_progress=False) - ode).abs().max().item()
        for n in (50, 200)
    ]
    assert errs[1] < errs[0] / 2.5 and errs[1] < 0.05  # Euler: first order in the step


def test_reverse_sde_gaussian_data_marginal_and_reproducibility():
    # data N(μ, 0.5² I): every member of the family must end near N(ā_eps μ, V_eps I)
    sde = VPSDE()
    mu = torch.tensor([1.5, -1.0], dtype=F64)
    score, _, coeffs = gaussian_data(mu, 0.5, sde)
    x_T = torch.randn(4000, 2, dtype=F64, generator=torch.Generator().manual_seed(6))
    a, V = coeffs(1e-3)
    for lam in (1.0, 0.5):
        xs = reverse_sde_sample(
            score,
            sde,
            x_T,
            lam,
            n_steps=200,
            generator=torch.Generator().manual_seed(7),
            show_progress=False,
        )
        # sampling error: ~4 s.e. of a mean of 4000 (absolute: the mean may be near 0) and of a
        # variance (relative: V > 0)
        torch.testing.assert_close(xs.mean(0), a * mu, rtol=0, atol=0.05)
        torch.testing.assert_close(xs.var(0), V.expand(2), rtol=0.08, atol=0)
    again = reverse_sde_sample(
        score,
        sde,
        x_T[:10],
        1.0,
        n_steps=20,
        generator=torch.Generator().manual_seed(7),
        show_progress=False,
    )
    # the same kernels on the same inputs and the same seeded noise: bit-exact by construction
    assert (
        again
        == reverse_sde_sample(
            score,
            sde,
            x_T[:10],
            1.0,
            n_steps=20,
            generator=torch.Generator().manual_seed(7),
            show_progress=False,
        )
    ).all()


def test_pf_ode_sample_path_and_stats(device):
    gm, sde = mixture(device), VPSDE()
    x_T = torch.randn(10, 2, dtype=F64, generator=torch.Generator().manual_seed(2)).to(device)
    st_ = {}
    path = pf_ode_sample(mixture_score_fn(gm, sde), sde, x_T, t_eval=[1.0, 0.5, 1e-3], stats=st_)
    # path[0] is the solver's copy of x_T: bit-exact by construction
    assert path.shape == (3, 10, 2) and (path[0] == x_T).all() and st_["nfe"] > 0
    end = pf_ode_sample(mixture_score_fn(gm, sde), sde, x_T)
    torch.testing.assert_close(path[-1], end, rtol=1e-3, atol=1e-3)


@pytest.mark.cuda
def test_cuda_likelihood_matches_cpu():
    gm_c, gm_g, sde = mixture("cpu"), mixture("cuda"), VPSDE()
    x = torch.tensor([[-2.0, 0.0], [4.0, 4.0]], dtype=F64)
    l_c = ode_log_likelihood(mixture_score_fn(gm_c, sde), sde, x)
    l_g = ode_log_likelihood(mixture_score_fn(gm_g, sde), sde, x.cuda(), trace="exact")
    assert l_g.device.type == "cuda"
    torch.testing.assert_close(l_g.cpu(), l_c, rtol=1e-6, atol=1e-6)
    h = ode_log_likelihood(
        mixture_score_fn(gm_g, sde),
        sde,
        x.cuda(),
        trace="hutchinson",
        generator=torch.Generator().manual_seed(0),
    )
    assert h.device.type == "cuda" and torch.isfinite(h).all()


# ---------------------------------------------------------------- bad input


def test_bad_input():
    gm, sde = mixture("cpu"), VPSDE()
    score = mixture_score_fn(gm, sde)
    x = torch.randn(4, 2, dtype=F64)
    x0 = x.clone()
    cases = [
        (lambda: VPSDE(beta_min=-0.1), ValueError, "Invalid beta_min: -0.1"),
        (lambda: VPSDE(beta_min=True), TypeError, "Invalid beta_min: True"),
        (lambda: VPSDE(beta_max=float("nan")), ValueError, "Invalid beta_max: nan"),
        (lambda: VPSDE(N=0), ValueError, "Invalid N: 0"),
        (lambda: sde.sde(x, torch.zeros(3)), ValueError, "Invalid t"),
        (lambda: sde.marginal_prob([1.0], 0.5), TypeError, "Invalid x"),
        (lambda: sde.marginal_prob(x, "0.5"), TypeError, "Invalid t: '0.5'"),
        (lambda: sde.prior_logp(np.zeros((2, 2))), TypeError, "Invalid z"),
        (lambda: mixture_score_fn(gm, None), TypeError, "Invalid sde: None"),
        (lambda: mixture_log_prob_t(gm, sde, x[:, :1], 0.5), ValueError, "Invalid x"),
        (lambda: reverse_drift(None, sde, x, 0.5), TypeError, "Invalid score_fn: None"),
        (lambda: reverse_drift(score, sde, x, 0.5, -0.5), ValueError, "Invalid sigma2_ratio: -0.5"),
        (
            lambda: probability_flow_drift(lambda a, t: a[:, 0], sde, x, 0.5),
            ValueError,
            "Invalid score_fn",
        ),
        (lambda: odeint_dopri5(1.0, x, [0.0, 1.0]), TypeError, "Invalid func: 1.0"),
        (
            lambda: odeint_dopri5(lambda t, y: y, torch.ones(2, dtype=torch.int64), [0.0, 1.0]),
            TypeError,
            "Invalid y0",
        ),
        (lambda: odeint_dopri5(lambda t, y: y, x, [0.0, 0.0]), ValueError, "strictly monotone"),
        (
            lambda: odeint_dopri5(lambda t, y: y, x, [0.0, float("inf")]),
            ValueError,
            "Invalid t: inf",
        ),
        (
            lambda: odeint_dopri5(lambda t, y: y, x, [0.0, 1.0], rtol=0.0),
            ValueError,
            "Invalid rtol: 0.0",
        ),
        (
            lambda: odeint_dopri5(lambda t, y: y, x, [0.0, 1.0], max_steps=0),
            ValueError,
            "Invalid max_steps: 0",
        ),
        (lambda: pf_ode_solve(score, sde, x, [1.0, -0.1]), ValueError, "Invalid t"),
        (lambda: pf_ode_solve(score, sde, x[0], [1.0, 0.5]), ValueError, "Invalid x"),
        (lambda: pf_ode_sample(score, sde, x, eps=1.0), ValueError, "Invalid eps: 1.0"),
        (lambda: pf_ode_sample(score, sde, x, rtol=-1e-5), ValueError, "Invalid rtol: -1e-05"),
        (
            lambda: ode_log_likelihood(score, sde, x, trace="Exact"),
            ValueError,
            "Invalid trace: 'Exact'",
        ),
        (
            lambda: ode_log_likelihood(score, sde, x, trace="hutchinson", noise="normal"),
            ValueError,
            "Invalid noise: 'normal'",
        ),
        (lambda: ode_log_likelihood(score, sde, x, eps=0), ValueError, "Invalid eps: 0"),
        (lambda: ode_log_likelihood(score, sde, x, atol=None), TypeError, "Invalid atol: None"),
        (lambda: ode_log_likelihood(score, sde, x[0]), ValueError, "Invalid x"),
        (lambda: ode_log_likelihood(score, "VP", x), TypeError, "Invalid sde: 'VP'"),
        (lambda: reverse_sde_sample(score, sde, x, 2.0), ValueError, "Invalid sigma2_ratio: 2.0"),
        (
            lambda: reverse_sde_sample(score, sde, x, n_steps=10.0),
            TypeError,
            "Invalid n_steps: 10.0",
        ),
        (lambda: reverse_sde_sample(score, sde, x, show_progress=1), TypeError, "Invalid show: 1"),
    ]
    for fn, err, msg in cases:
        with pytest.raises(err, match=msg.replace("(", r"\(").replace(".", r"\.").replace("+", r"\+")):
            fn()
    # nothing was modified: a bit-for-bit comparison with the copy taken before
    assert (x == x0).all()


def test_solver_limits_raise_runtime_errors():
    with pytest.raises(RuntimeError, match="max_steps=2"):
        odeint_dopri5(
            lambda t, y: torch.cos(50 * t) * y,
            torch.ones(3, dtype=F64),
            [0.0, 5.0],
            rtol=1e-10,
            atol=1e-10,
            max_steps=2,
        )
    with pytest.raises(RuntimeError, match="non-finite"):
        odeint_dopri5(
            lambda t, y: torch.where(t > 0.5, float("nan"), 1.0) * y,
            torch.ones(3, dtype=F64),
            [0.0, 1.0],
        )


# ---------------------------------------------------------------- API: keyword-only options, no graph, no host reads


def test_solver_options_are_keyword_only():
    # a tolerance passed by position used to land in another option's slot (pf_ode_sample's third
    # option was eps); now every option after the data is keyword-only, in the order rtol, atol, ...
    gm, sde = mixture("cpu"), VPSDE()
    score = mixture_score_fn(gm, sde)
    x = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    calls = [
        lambda: pf_ode_sample(score, sde, x, 1e-5),
        lambda: pf_ode_sample(score, sde, x, 1e-5, 1e-5, 1e-3),
        lambda: pf_ode_solve(score, sde, x, [1.0, 0.5], 1e-5),
        lambda: ode_log_likelihood(score, sde, x, 1e-5, 1e-5),
        lambda: odeint_dopri5(lambda t, y: -y, x, [0.0, 1.0], 1e-5),
        lambda: reverse_sde_sample(score, sde, x, 1.0, 10),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="positional argument"):
            call()
    import inspect

    for fn in (odeint_dopri5, pf_ode_solve, pf_ode_sample, ode_log_likelihood):
        kw = [n for n, p in inspect.signature(fn).parameters.items() if p.kind == p.KEYWORD_ONLY]
        assert kw[:2] == ["rtol", "atol"], (fn.__name__, kw)


def _saved_tensors_during(fn):
    "How many tensors autograd saves for backward while fn() runs, and fn's result."
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda v: saved.append(v.shape) or v, lambda v: v):
        out = fn()
    return len(saved), out


@pytest.mark.parametrize("t1", [1.0, 10.0])
def test_dopri5_keeps_no_graph_when_func_closes_over_a_parameter(t1, device):
    w = torch.nn.Parameter(torch.tensor([[-0.5, 1.0], [-1.0, -0.5]], dtype=F64, device=device))
    func = lambda t, y: y @ w.T
    y0 = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0)).to(device)
    n_saved, out = _saved_tensors_during(lambda: odeint_dopri5(func, y0, [0.0, t1]))
    assert n_saved == 0 and out.grad_fn is None and not out.requires_grad
    # the probe sees a graph where one is built: the same func under torchdiffeq (differentiable)
    # saves tensors at every stage, more for the longer interval
    t = torch.tensor([0.0, t1], dtype=F64, device=device)
    n_tdq, out_tdq = _saved_tensors_during(lambda: odeint(func, y0, t, method="dopri5"))
    assert n_tdq > 40 * t1 and out_tdq.grad_fn is not None
    # with grad enabled or not around the call, and within it: the same (detached) numbers
    # the same kernels on the same inputs whether autograd is on around the call or not: bit-exact
    with torch.no_grad():
        out_no_grad = odeint_dopri5(func, y0, [0.0, t1])
    torch.testing.assert_close(out_no_grad, out, rtol=0, atol=0)  # exact: see the comment above


def test_likelihood_and_pf_ode_keep_no_graph_with_a_parametrised_score():
    # a "network" score s(x, t) = −x/σ² with a learnable σ: the divergence needs autograd in x, but
    # nothing may be kept for backward through σ across the solve
    sigma = torch.nn.Parameter(torch.tensor(1.3, dtype=F64))
    score = lambda x, t: -x / sigma**2
    sde = VPSDE()
    x = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    ll = ode_log_likelihood(score, sde, x)
    x0 = pf_ode_sample(score, sde, x)
    assert ll.grad_fn is None and x0.grad_fn is None and sigma.grad is None


_HOST_READS = {
    "item",
    "__bool__",
    "tolist",
    "__float__",
    "__int__",
    "__index__",
    "numpy",
    "__array__",
    "cpu",
}


class _HostReads(torch.overrides.TorchFunctionMode):
    "Records tensor methods that copy a value to the host (device syncs on an accelerator)."

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _HOST_READS:
            self.calls.append(name)
        return func(*args, **(kwargs or {}))


def test_mixture_score_and_drifts_read_nothing_from_the_device():
    gm, sde = mixture("cpu"), VPSDE()
    score = mixture_score_fn(gm, sde)
    x = torch.randn(50, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    t_shared, t_each = torch.tensor(0.4, dtype=F64), torch.linspace(0.1, 0.9, 50, dtype=F64)
    with _HostReads() as rec:
        s1 = score(x, sde._t(x, t_shared))  # how the solvers call it: one time, expanded
        s2 = score(x, t_each)
        probability_flow_drift(score, sde, x, t_shared)
        reverse_drift(score, sde, x, t_each, 1.0)
    assert rec.calls == [], rec.calls
    # the recorder does catch a read: the former shared-time path built the noised mixture from
    # host floats
    a, s = sde.marginal_coeffs(t_shared)
    with _HostReads() as rec_old:
        old = gm.noised(a.item(), s.item()).score(x)
    assert "item" in rec_old.calls
    torch.testing.assert_close(s1, old, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s2, gm.noised_score(x, *sde.marginal_coeffs(t_each)), rtol=1e-12, atol=1e-12)


def test_solver_host_reads_are_the_step_control_only():
    # the docstring's count: 3 reads for the initial step, then one error norm per attempted step
    gm, sde = mixture("cpu"), VPSDE()
    x = torch.randn(40, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    stats = {}
    with _HostReads() as rec:
        pf_ode_sample(mixture_score_fn(gm, sde), sde, x, stats=stats)
    assert rec.calls == ["item"] * (3 + stats["n_accepted"] + stats["n_rejected"]), (
        rec.calls,
        stats,
    )
