"""su_notes.optim.mgs: the sampling view's closed form against numerical integration (scipy), the MGS weights against
the paper's code (wellecks/mgs `perturb` + `compute_weight`, re-implemented from their equations: the repository needs
GPT-2 and cannot be imported), the update's paths, and bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import integrate
from torch import nn
from torch.func import functional_call

from su_notes.optim.mgs import (
    MGSStep,
    effective_sample_size,
    mgs_candidates,
    mgs_log_proposal,
    mgs_log_weights,
    mgs_update,
    tilted_gaussian_mean,
    weighted_mean,
)


@given(g=st.floats(-3, 3), sigma=st.floats(0.2, 2), alpha=st.floats(0.3, 3))
@settings(max_examples=25, deadline=None)
def test_tilted_mean_matches_numerical_integration(g, sigma, alpha):
    "1-D: ∫Δ N(Δ; 0, σ²) e^{−gΔ/α} dΔ / ∫ N(Δ; 0, σ²) e^{−gΔ/α} dΔ by quadrature equals −σ²g/α."
    dens = lambda d: math.exp(-d * d / (2 * sigma**2) - g * d / alpha)
    lo, hi = -(sigma**2) * g / alpha - 12 * sigma, -(sigma**2) * g / alpha + 12 * sigma
    z = integrate.quad(dens, lo, hi, epsabs=1e-13, epsrel=1e-12)[0]
    m = integrate.quad(lambda d: d * dens(d), lo, hi, epsabs=1e-13 * z, epsrel=1e-12)[0] / z
    ours = tilted_gaussian_mean(torch.tensor([g], dtype=torch.float64), sigma, alpha).item()
    assert abs(ours - m) <= 1e-8 * (1 + abs(m))


def _paper_log_weights(eps, g, d0, dk, beta):
    "wellecks/mgs: log ρ_k = log(½e^{−½|ε|²} + ½e^{−½|ε|² + εᵀg − ½|g|²}); log w = log_softmax(β(−d_k + d_0) − log ρ)."
    ee, eg, gg = (eps * eps).sum(1), eps @ g, (g * g).sum()
    log_rho = np.log(0.5 * np.exp(-0.5 * ee) + 0.5 * np.exp(-0.5 * ee + eg - 0.5 * gg))
    ws = beta * (np.log(np.exp(-dk)) - np.log(np.exp(-d0))) - log_rho
    return ws - np.logaddexp.reduce(ws)


@pytest.mark.parametrize("seed", range(5))
def test_weights_match_the_paper_at_unit_noise(device, seed):
    rng = np.random.default_rng(seed)
    P, K, beta = 7, 10, float(rng.uniform(0.5, 20))
    g = rng.normal(size=P) * 0.7
    eps = rng.normal(size=(K, P))
    eps[0::2] += g
    d0, dk = float(rng.uniform()), rng.uniform(size=K)
    want = _paper_log_weights(eps, g, d0, dk, beta)
    t = lambda a: torch.tensor(a, dtype=torch.float64, device=device)
    got = mgs_log_weights(t(dk) - d0, mgs_log_proposal(t(eps), t(g), 1.0), beta)
    # log(½eᵃ + ½eᵇ) vs logaddexp on values of order 10: a few roundings of the larger term
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-12, atol=1e-12)


def test_paper_density_ignores_the_noise_scale_and_underflows():
    "For σ ≠ 1 the paper's density is not the sampling density (weights differ); at large |ε|² it is log 0."
    rng = np.random.default_rng(0)
    g = rng.normal(size=5) * 0.1
    eps = 0.1 * rng.normal(size=(6, 5))
    eps[0::2] += g
    ours = mgs_log_weights(
        torch.zeros(6, dtype=torch.float64),
        mgs_log_proposal(torch.tensor(eps), torch.tensor(g), 0.1),
        1.0,
    )
    paper = _paper_log_weights(eps, g, 0.0, np.zeros(6), 1.0)
    assert np.abs(ours.exp().numpy() - np.exp(paper)).max() > 0.01
    big = rng.normal(size=(4, 2000)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.isnan(_paper_log_weights(big, np.zeros(2000, np.float32), 0.0, np.zeros(4), 1.0)).all()
    lw = mgs_log_weights(torch.zeros(4), mgs_log_proposal(torch.tensor(big), torch.zeros(2000), 1.0), 1.0)
    assert torch.isfinite(lw).all() and abs(lw.exp().sum().item() - 1) < 1e-5


def test_proposal_is_the_mixture_density(device):
    "exp(mgs_log_proposal) · (2πσ²)^{-P/2} equals the mixture density computed with torch.distributions."
    gen = torch.Generator(device=device).manual_seed(1)
    d = torch.randn(3, dtype=torch.float64, device=device, generator=gen)
    eps = mgs_candidates(d, 9, 0.6, gen)
    comps = [
        torch.distributions.MultivariateNormal(m, 0.36 * torch.eye(3, dtype=torch.float64, device=device))
        for m in (torch.zeros_like(d), d)
    ]
    want = torch.logsumexp(torch.stack([c.log_prob(eps) for c in comps]), 0) - math.log(2)
    got = mgs_log_proposal(eps, d, 0.6) - 1.5 * math.log(2 * math.pi * 0.36)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert eps.shape == (9, 3)


def test_candidates_alternate_guided_and_noise_rows(device):
    "Even rows ~ N(d, σ²I), odd rows ~ N(0, σ²I): means within 5 standard errors, and not the other way round."
    gen = torch.Generator(device=device).manual_seed(2)
    d = torch.tensor([0.5, -1.0, 0.25], dtype=torch.float64, device=device)
    K, sigma = 20_000, 0.6
    eps = mgs_candidates(d, K, sigma, gen)
    se = sigma / math.sqrt(K // 2)  # s.e. of a mean of K/2 rows
    guided, noise = eps[0::2].mean(0), eps[1::2].mean(0)
    assert bool(((guided - d).abs() < 5 * se).all()) and bool((noise.abs() < 5 * se).all())
    assert not bool(((noise - d).abs() < 5 * se).all())  # the check tells the two rows apart
    torch.testing.assert_close(eps[1::2].std(0), torch.full_like(d, sigma), rtol=0.05, atol=0)


def test_ess_and_weighted_mean():
    assert effective_sample_size(torch.zeros(7)).item() == pytest.approx(7)
    assert effective_sample_size(torch.tensor([0.0, -1e4, -1e4])).item() == pytest.approx(1)
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(weighted_mean(s, torch.log(torch.tensor([0.25, 0.75]))), torch.tensor([0.25, 0.75]))


def _setup(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).to(device)
    x, y = torch.randn(20, 3, device=device), torch.randint(2, (20,), device=device)
    cost = lambda p: (functional_call(net, p, (x,)).argmax(-1) != y).float().mean()
    P = sum(p.numel() for p in net.parameters())
    return net, cost, torch.randn(P, device=device)


def test_update_paths_agree_and_leave_the_model(device):
    net, cost, grad = _setup(device)
    before = [p.detach().clone() for p in net.parameters()]
    a = mgs_update(net, cost, grad, 12, 0.1, 30.0, generator=torch.Generator(device=device).manual_seed(3))
    b = mgs_update(
        net,
        cost,
        grad,
        12,
        0.1,
        30.0,
        generator=torch.Generator(device=device).manual_seed(3),
        vectorize=False,
    )
    assert isinstance(a, MGSStep) and a.delta.shape == grad.shape
    torch.testing.assert_close(a.delta, b.delta)
    torch.testing.assert_close(a.log_weights, b.log_weights)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))  # exact: never written
    assert 1 - 1e-5 <= a.ess.item() <= 12 + 1e-5 and abs(a.log_weights.exp().sum().item() - 1) < 1e-5


def test_update_with_flat_cost_weights_by_inverse_proposal(device):
    "A constant cost leaves only 1/q in the weights: the log-weights equal log_softmax(−log q)."
    net, _, grad = _setup(device)
    step = mgs_update(
        net,
        lambda p: torch.zeros((), device=device),
        grad,
        6,
        0.3,
        5.0,
        generator=torch.Generator(device=device).manual_seed(0),
    )
    eps = mgs_candidates(-grad, 6, 0.3, torch.Generator(device=device).manual_seed(0))
    torch.testing.assert_close(step.log_weights, torch.log_softmax(-mgs_log_proposal(eps, -grad, 0.3), 0))
    torch.testing.assert_close(step.delta, weighted_mean(eps, step.log_weights))


@pytest.mark.parametrize(
    "call, exc, msg",
    [
        (lambda: tilted_gaussian_mean(torch.ones(2), 0.0, 1.0), ValueError, "Invalid sigma: 0.0"),
        (
            lambda: tilted_gaussian_mean(torch.ones(2), 1.0, float("nan")),
            ValueError,
            "Invalid alpha: nan",
        ),
        (lambda: tilted_gaussian_mean([1.0], 1.0, 1.0), TypeError, "Invalid g"),
        (lambda: mgs_log_weights(torch.zeros(3), torch.zeros(4), 1.0), ValueError, "Invalid log_q"),
        (
            lambda: mgs_log_weights(torch.zeros(3), torch.zeros(3), True),
            TypeError,
            "Invalid beta: True",
        ),
        (
            lambda: mgs_log_weights(torch.zeros(3), torch.zeros(3), -1.0),
            ValueError,
            "Invalid beta: -1.0",
        ),
        (lambda: effective_sample_size(torch.zeros(2, 2)), ValueError, "Invalid log_weights"),
        (lambda: weighted_mean(torch.zeros(3), torch.zeros(3)), ValueError, "Invalid samples"),
        (
            lambda: weighted_mean(torch.zeros(3, 2), torch.zeros(2)),
            ValueError,
            "Invalid log_weights",
        ),
        (lambda: mgs_candidates(torch.zeros(3), 0, 1.0), ValueError, "Invalid k: 0"),
        (lambda: mgs_candidates(torch.zeros(3), 2.0, 1.0), TypeError, "Invalid k: 2.0"),
        (lambda: mgs_candidates(torch.zeros(2, 3), 2, 1.0), ValueError, "Invalid direction"),
        (
            lambda: mgs_log_proposal(torch.zeros(2, 3), torch.zeros(4), 1.0),
            ValueError,
            "Invalid direction",
        ),
        (
            lambda: mgs_log_proposal(torch.zeros(2, 3), torch.zeros(3), float("inf")),
            ValueError,
            "Invalid sigma: inf",
        ),
    ],
)
def test_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg.replace("(", r"\(")):
        call()


def test_update_bad_input_mutates_nothing():
    net, cost, grad = _setup("cpu")
    before = [p.detach().clone() for p in net.parameters()]
    for kw, exc, msg in [
        (dict(model="net"), TypeError, "Invalid model: 'net'"),
        (dict(cost_fn=3), TypeError, "Invalid cost_fn: 3"),
        (dict(mle_grad=grad[:-1]), ValueError, "Invalid mle_grad"),
        (dict(k=-1), ValueError, "Invalid k: -1"),
        (dict(sigma=-0.1), ValueError, "Invalid sigma: -0.1"),
        (dict(beta=float("nan")), ValueError, "Invalid beta: nan"),
        (dict(vectorize=1), TypeError, "Invalid vectorize: 1"),
    ]:
        args = dict(model=net, cost_fn=cost, mle_grad=grad, k=4, sigma=0.1, beta=1.0) | kw
        with pytest.raises(exc, match=msg):
            mgs_update(**args)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before))  # exact: never written
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="Invalid model: 'Linear'"):
        mgs_update(frozen, cost, grad, 4, 0.1, 1.0)
