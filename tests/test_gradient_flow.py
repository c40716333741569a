"Cross-checks (torchdiffeq, scipy, scikit-learn), closed forms, property tests and bad-input tests for su_notes.dynamics.gradient_flow."
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.optimize import linprog
from torchdiffeq import odeint

from su_notes.core import make_gaussian_mixture_2d
from su_notes.dynamics.gradient_flow import (NORMS, _value_and_grad, gaussian_kde_score, gaussian_kl_flow_moments,
                                             gradient_descent, gradient_flow, langevin_step, particle_flow,
                                             particle_ode_step, rosenbrock, steepest_descent_direction)

F64 = torch.float64


def quadratic(A, b=None):
    "f(x) = ½xᵀAx + bᵀx, batched over leading dims."
    def f(x):
        out = 0.5 * torch.einsum("...i,ij,...j->...", x, A, x)
        return out if b is None else out + x @ b
    return f


# ---------------------------------------------------------------- peer cross-checks: torchdiffeq

def test_rk4_matches_torchdiffeq_dopri5_on_rosenbrock_batch():
    x0 = torch.tensor([[-1.2, 1.0], [0.5, -0.5], [1.5, 2.5]], dtype=F64)
    t = torch.linspace(0, 0.03, 4, dtype=F64)
    ours = gradient_flow(rosenbrock, x0, t, step_size=1e-4)
    ref = odeint(lambda s, y: -_value_and_grad(rosenbrock, y)[1], x0, t, rtol=1e-11, atol=1e-11, method="dopri5")
    assert ours.shape == (4, 3, 2)
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_fixed_grid_solvers_match_torchdiffeq_exactly(method):
    # torchdiffeq's euler / midpoint on the same grid are the same arithmetic: agreement to rounding
    x0 = torch.tensor([[-1.2, 1.0], [0.3, 0.2]], dtype=F64)
    t = torch.linspace(0, 0.02, 41, dtype=F64)
    ours = gradient_flow(rosenbrock, x0, t, method=method)
    ref = odeint(lambda s, y: -_value_and_grad(rosenbrock, y)[1], x0, t, method=method)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)


def test_rk4_and_torchdiffeq_rk4_both_fourth_order_on_quadratic():
    # torchdiffeq's "rk4" is the 3/8 rule, ours the classic tableau: both must converge to e^{-tA}x0 at order 4
    A = torch.tensor([[3.0, 1.2], [1.2, 1.0]], dtype=F64); x0 = torch.tensor([2.0, -2.5], dtype=F64)
    exact = torch.linalg.matrix_exp(-2 * A) @ x0
    hs = [0.1, 0.05, 0.025]
    ours = [(gradient_flow(quadratic(A), x0, [0., 2.], step_size=h)[-1] - exact).norm().item() for h in hs]
    theirs = [(odeint(lambda s, y: -A @ y, x0, torch.tensor([0., 2.], dtype=F64), method="rk4",
                      options=dict(step_size=h))[-1] - exact).norm().item() for h in hs]
    for errs in (ours, theirs):
        order = np.polyfit(np.log(hs), np.log(errs), 1)[0]
        assert 3.7 < order < 4.4, (order, errs)
    assert max(ours) < 1e-4


def test_intermediate_output_times_and_step_size_grid():
    # output times that are not multiples of step_size: each interval is cut into equal sub-steps
    A = torch.diag(torch.tensor([1.0, 4.0], dtype=F64)); x0 = torch.tensor([1.0, 1.0], dtype=F64)
    t = torch.tensor([0.0, 0.13, 0.5, 1.37], dtype=F64)
    out = gradient_flow(quadratic(A), x0, t, step_size=0.01)
    exact = x0 * torch.exp(-t[:, None] * torch.diag(A))
    torch.testing.assert_close(out, exact, rtol=1e-6, atol=1e-9)     # RK4, hλ ≤ 0.04
    assert torch.equal(out[0], x0)
    # Euler makes the sub-step count visible: ⌈Δ/h⌉ = 13, 37, 87 equal steps, so x = Π_j (1 - λΔ_j/n_j)^{n_j} x0
    eu = gradient_flow(quadratic(A), x0, t, method="euler", step_size=0.01)
    lam = torch.diag(A)
    factors = [(1 - lam * dlt / n) ** n for dlt, n in zip((0.13, 0.37, 0.87), (13, 37, 87))]
    expect = torch.stack([x0, x0 * factors[0], x0 * factors[0] * factors[1], x0 * factors[0] * factors[1] * factors[2]])
    torch.testing.assert_close(eu, expect, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- closed forms and identities

def test_gradient_descent_is_euler_on_grid():
    x0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0]], dtype=F64)
    lr = 2.0 ** -13                       # a power of two: the grid k·lr and its spacings are exact, so h == lr
    gd = gradient_descent(rosenbrock, x0, lr=lr, n_steps=30)
    eu = gradient_flow(rosenbrock, x0, lr * torch.arange(31, dtype=F64), method="euler")
    assert gd.shape == (31, 2, 2)
    assert torch.equal(gd, eu)


def test_gd_error_is_first_order():
    x0 = torch.tensor([-1.2, 1.0], dtype=F64); T = 0.05
    ref = gradient_flow(rosenbrock, x0, torch.linspace(0, T, 501, dtype=F64))[-1]
    alphas = [5e-5, 1e-4, 2e-4]
    errs = [(gradient_descent(rosenbrock, x0, a, round(T / a))[-1] - ref).norm().item() for a in alphas]
    slope = np.polyfit(np.log(alphas), np.log(errs), 1)[0]
    assert 0.85 < slope < 1.15, (slope, errs)


def test_natural_gradient_flow_of_cross_entropy_closed_form():
    pi = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=F64); p0 = torch.tensor([0.05, 0.05, 0.1, 0.8], dtype=F64)
    t = torch.linspace(0, 3, 16, dtype=F64)
    out = gradient_flow(lambda q: -(pi * q.log()).sum(-1), p0, t, norm="kl", step_size=0.02)
    torch.testing.assert_close(out, pi + (p0 - pi) * torch.exp(-t)[:, None], rtol=1e-7, atol=1e-9)


def test_metric_flow_with_hessian_is_newton_flow():
    A = torch.tensor([[5.0, 2.0], [2.0, 1.0]], dtype=F64); x0 = torch.tensor([[1.0, -3.0], [0.2, 0.4]], dtype=F64)
    t = torch.linspace(0, 2, 9, dtype=F64)
    out = gradient_flow(quadratic(A), x0, t, norm="metric", metric=A, step_size=0.01)
    torch.testing.assert_close(out, x0 * torch.exp(-t)[:, None, None], rtol=1e-8, atol=1e-12)


def test_flows_run_in_float32():
    x0 = torch.tensor([-1.2, 1.0])
    out = gradient_flow(rosenbrock, x0, [0., 0.01, 0.02], step_size=1e-3)
    assert out.dtype == torch.float32
    ref = gradient_flow(rosenbrock, x0.double(), [0., 0.01, 0.02], step_size=1e-3)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


def test_gaussian_kl_flow_ou_particles_match_closed_form():
    mu0, s0, n, dt, k = -2.0, 1.5, 10_000, 0.01, 100
    g = torch.Generator().manual_seed(0)
    x0 = mu0 + s0 * torch.randn(n, 1, dtype=F64, generator=g)
    def score_q(x, t):
        m, v = gaussian_kl_flow_moments(t, mu0, s0 ** 2)
        return -(x - m) / v
    ts, xo = particle_flow(x0, lambda x: -x, dt, k, "ode", score_q, save_every=k, show_progress=False)
    _, xl = particle_flow(x0, lambda x: -x, dt, k, "langevin", save_every=k, generator=g, show_progress=False)
    m, v = gaussian_kl_flow_moments(ts[-1], mu0, s0 ** 2)
    # ODE: exact transport map x_t = μ_t + (σ_t/σ_0)(x_0 - μ_0), up to Heun's O(dt²)
    torch.testing.assert_close(xo[-1], m + v.sqrt() / s0 * (x0 - mu0), rtol=0, atol=1e-4)
    # Langevin (Euler–Maruyama): exact discrete-recursion bias + 4 standard errors
    v_star = 1 / (1 - dt / 2)
    m_em, v_em = mu0 * (1 - dt) ** k, v_star + (s0 ** 2 - v_star) * (1 - dt) ** (2 * k)
    assert abs(xl[-1].mean() - m) <= abs(m_em - m) + 4 * math.sqrt(v / n)
    assert abs(xl[-1].var() - v) <= abs(v_em - v) + 4 * v * math.sqrt(2 / (n - 1))


def test_kde_score_matches_sklearn_kernel_density_by_finite_differences():
    from sklearn.neighbors import KernelDensity
    x = torch.randn(40, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    h = 0.7
    kde = KernelDensity(kernel="gaussian", bandwidth=h).fit(x.numpy())
    eps = 1e-5
    fd = np.stack([(kde.score_samples(x.numpy() + eps * e) - kde.score_samples(x.numpy() - eps * e)) / (2 * eps)
                   for e in np.eye(2)], -1)
    np.testing.assert_allclose(gaussian_kde_score(x, h).numpy(), fd, rtol=1e-5, atol=1e-6)


def test_langevin_step_reproducible_with_generator_and_shape():
    x = torch.randn(7, 3, dtype=F64)
    a = langevin_step(x, lambda y: -y, 0.1, generator=torch.Generator().manual_seed(5))
    b = langevin_step(x, lambda y: -y, 0.1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    noise = torch.randn(7, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    torch.testing.assert_close(a, x + 0.1 * (-x) + math.sqrt(0.2) * noise)


def test_particle_flow_snapshots():
    x0 = torch.zeros(4, 2, dtype=F64)
    ts, xs = particle_flow(x0, lambda y: -y, 0.1, 7, "langevin", save_every=3,
                           generator=torch.Generator().manual_seed(0), show_progress=False)
    torch.testing.assert_close(ts, torch.tensor([0.0, 0.3, 0.6, 0.7], dtype=F64))
    assert xs.shape == (4, 4, 2) and torch.equal(xs[0], x0)
    ts, xs = particle_flow(x0, lambda y: -y, 0.1, 0, show_progress=False)
    assert xs.shape == (1, 4, 2)


def test_langevin_reaches_mixture():
    gm = make_gaussian_mixture_2d("two")
    g = torch.Generator().manual_seed(0)
    x = 0.5 * torch.randn(1000, 2, dtype=F64, generator=g)
    ll0 = gm.log_prob(x).mean().item()
    for _ in range(150): x = langevin_step(x, gm.score, 0.02, generator=g)
    ll, ref = gm.log_prob(x).mean().item(), gm.log_prob(gm.sample(4000, generator=g))
    # start between the modes, end at the level of true samples: 4 s.e. of the difference + 0.05 for the O(dt) bias
    assert ll0 < ref.mean().item() - 1
    assert abs(ll - ref.mean().item()) < 4 * ref.std().item() * math.sqrt(1 / 1000 + 1 / 4000) + 0.05


# ---------------------------------------------------------------- steepest-descent directions

@settings(max_examples=40)
@given(st.lists(st.floats(-10, 10, allow_nan=False, width=64), min_size=2, max_size=6))
def test_polyhedral_directions_match_linprog(gl):
    g = torch.tensor(gl, dtype=F64)
    d = len(gl)
    lp_inf = linprog(g.numpy(), bounds=[(-1, 1)] * d)
    lp_one = linprog(np.r_[g.numpy(), -g.numpy()], A_ub=np.ones((1, 2 * d)), b_ub=[1], bounds=[(0, None)] * (2 * d))
    for norm, lp, unit in (("linf", lp_inf, lambda u: u.abs().max()), ("l1", lp_one, lambda u: u.abs().sum())):
        u = steepest_descent_direction(g, norm)
        assert abs((-g @ u).item() + lp.fun) <= 1e-7 * (1 + abs(lp.fun))
        if g.abs().max() > 0: assert abs(unit(u).item() - 1) < 1e-12


@settings(max_examples=20)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_directions_attain_dual_norm_and_beat_random(seed, d):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(3, d, dtype=F64, generator=gen)
    B = torch.randn(d, d, dtype=F64, generator=gen); M = B @ B.T + 0.3 * torch.eye(d, dtype=F64)
    p = torch.softmax(torch.randn(3, d, dtype=F64, generator=gen), -1)
    Minv = torch.linalg.inv(M)
    dual = {"l2": g.norm(dim=-1), "linf": g.abs().sum(-1), "l1": g.abs().amax(-1),
            "metric": torch.einsum("bi,ij,bj->b", g, Minv, g).sqrt(),
            "kl": (p * (g - (p * g).sum(-1, keepdim=True)) ** 2).sum(-1).sqrt()}
    norm_of = {"l2": lambda v: v.norm(dim=-1), "linf": lambda v: v.abs().amax(-1), "l1": lambda v: v.abs().sum(-1),
               "metric": lambda v: torch.einsum("...i,ij,...j->...", v, M, v).sqrt(),
               "kl": lambda v: (v ** 2 / p[:, None]).sum(-1).sqrt()}
    R = torch.randn(3, 500, d, dtype=F64, generator=gen)
    for norm in NORMS:
        kw = {"metric": dict(metric=M), "kl": dict(probs=p)}.get(norm, {})
        u = steepest_descent_direction(g, norm, **kw)
        val = -(g * u).sum(-1)
        torch.testing.assert_close(val, dual[norm], rtol=1e-10, atol=1e-12)
        s = steepest_descent_direction(g, norm, scaled=True, **kw)
        torch.testing.assert_close((g * s).sum(-1), -dual[norm] ** 2, rtol=1e-10, atol=1e-12)
        Rn = R - R.mean(-1, keepdim=True) if norm == "kl" else R
        Rn = Rn / norm_of[norm](Rn)[..., None]
        assert (-(Rn * g[:, None]).sum(-1)).amax(-1).le(val + 1e-10).all(), norm


def test_zero_gradient_gives_zero_direction():
    z = torch.zeros(2, 3, dtype=F64)
    for norm in ("l2", "linf", "l1"):
        assert torch.equal(steepest_descent_direction(z, norm), z)
    assert torch.equal(steepest_descent_direction(z, "metric", metric=torch.eye(3, dtype=F64)), z)
    p = torch.full((2, 3), 1 / 3, dtype=F64)
    assert torch.equal(steepest_descent_direction(torch.ones(2, 3, dtype=F64), "kl", probs=p), z)


# ---------------------------------------------------------------- property tests

spd = st.tuples(st.integers(0, 10_000), st.integers(1, 5), st.floats(0.05, 3.0))


@settings(max_examples=15)
@given(spd)
def test_f_non_increasing_along_flow_for_convex_quadratics(args):
    seed, d, shift = args
    gen = torch.Generator().manual_seed(seed)
    B = torch.randn(d, d, dtype=F64, generator=gen)
    A = B @ B.T + shift * torch.eye(d, dtype=F64); b = torch.randn(d, dtype=F64, generator=gen)
    lam = torch.linalg.eigvalsh(A).max().item()
    f = quadratic(A, b)
    x0 = 3 * torch.randn(4, d, dtype=F64, generator=gen)
    t = torch.linspace(0, 1, 21, dtype=F64)
    for method in ("rk4", "euler"):
        fv = f(gradient_flow(f, x0, t, method=method, step_size=0.5 / lam))   # hλ ≤ 1/2: stable for all three solvers
        assert (fv.diff(dim=0) <= 1e-12 * (1 + fv[:-1].abs())).all(), method
    fv = f(gradient_descent(f, x0, lr=1.9 / lam, n_steps=20))                 # GD decreases f for any α < 2/λ_max
    assert (fv.diff(dim=0) <= 1e-12 * (1 + fv[:-1].abs())).all()
    xmin = torch.linalg.solve(A, -b)
    assert (fv >= f(xmin) - 1e-9 * (1 + f(xmin).abs())).all()                # never below the minimum


@settings(max_examples=25)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_kl_flow_stays_on_simplex_and_decreases_cross_entropy(seed, d):
    gen = torch.Generator().manual_seed(seed)
    pi = torch.softmax(2 * torch.randn(d, dtype=F64, generator=gen), 0)
    p0 = torch.softmax(2 * torch.randn(d, dtype=F64, generator=gen), 0)
    ce = lambda q: -(pi * q.log()).sum(-1)
    out = gradient_flow(ce, p0, torch.linspace(0, 2, 21, dtype=F64), norm="kl", step_size=0.05)
    torch.testing.assert_close(out.sum(-1), torch.ones(21, dtype=F64), rtol=1e-12, atol=1e-12)
    assert (out > 0).all()
    assert (ce(out).diff() <= 1e-12).all()


# ---------------------------------------------------------------- bad input: clear errors, nothing mutated

def test_bad_input_gradient_flow_and_descent():
    x0 = torch.tensor([-1.2, 1.0], dtype=F64); keep = x0.clone()
    t = [0.0, 0.1]
    cases = [
        (lambda: gradient_flow("rosenbrock", x0, t), TypeError, "Invalid f"),
        (lambda: gradient_flow(rosenbrock, [1.0, 2.0], t), TypeError, "Invalid x0"),
        (lambda: gradient_flow(rosenbrock, torch.tensor([1, 2]), t), TypeError, "Invalid x0"),
        (lambda: gradient_flow(rosenbrock, torch.tensor(1.0), t), ValueError, "Invalid x0"),
        (lambda: gradient_flow(rosenbrock, x0, [0.0, 0.1, 0.05]), ValueError, "strictly increasing"),
        (lambda: gradient_flow(rosenbrock, x0, [[0.0, 0.1]]), ValueError, "Invalid t"),
        (lambda: gradient_flow(rosenbrock, x0, [0.0, float("nan")]), ValueError, "Invalid t"),
        (lambda: gradient_flow(rosenbrock, x0, "0 1"), TypeError, "Invalid t"),
        (lambda: gradient_flow(rosenbrock, x0, t, step_size=0.0), ValueError, "Invalid step_size"),
        (lambda: gradient_flow(rosenbrock, x0, t, step_size=-1e-3), ValueError, "Invalid step_size"),
        (lambda: gradient_flow(rosenbrock, x0, t, method="rk45"), ValueError, "Invalid method"),
        (lambda: gradient_flow(rosenbrock, x0, t, norm="l3"), ValueError, "Invalid norm"),
        (lambda: gradient_flow(rosenbrock, x0, t, norm="metric"), TypeError, "Invalid metric"),
        (lambda: gradient_flow(rosenbrock, x0, t, norm="metric", metric=-torch.eye(2, dtype=F64)), ValueError, "positive-definite"),
        (lambda: gradient_flow(rosenbrock, x0, t, norm="kl"), ValueError, "Invalid x0"),
        (lambda: gradient_flow(lambda x: x.sum(), torch.zeros(3, 2, dtype=F64), t), ValueError, "Invalid f"),
        (lambda: gradient_flow(lambda x: torch.ones(()), torch.zeros(2, dtype=F64), t), ValueError, "Invalid f"),
        (lambda: gradient_flow(rosenbrock, torch.zeros(3, dtype=F64), t), ValueError, "Invalid x"),
        (lambda: gradient_descent(None, x0, 0.1, 3), TypeError, "Invalid f"),
        (lambda: gradient_descent(rosenbrock, x0, 0.0, 3), ValueError, "Invalid lr"),
        (lambda: gradient_descent(rosenbrock, x0, float("inf"), 3), ValueError, "Invalid lr"),
        (lambda: gradient_descent(rosenbrock, x0, 0.1, -1), ValueError, "Invalid n_steps"),
        (lambda: gradient_descent(rosenbrock, x0, 0.1, 2.5), ValueError, "Invalid n_steps"),
        (lambda: gradient_descent(rosenbrock, x0.numpy(), 0.1, 3), TypeError, "Invalid x0"),
        (lambda: rosenbrock(torch.zeros(3, dtype=F64)), ValueError, "Invalid x"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg): fn()
    assert torch.equal(x0, keep)
    # successful calls leave x0 untouched and return fresh tensors
    out = gradient_flow(rosenbrock, x0, t, step_size=0.01); gd = gradient_descent(rosenbrock, x0, 1e-3, 3)
    assert torch.equal(x0, keep) and out.data_ptr() != x0.data_ptr() and gd[0].data_ptr() != x0.data_ptr()
    assert not out.requires_grad and not gd.requires_grad


def test_bad_input_steepest_descent_direction():
    g = torch.randn(4, 3, dtype=F64); keep = g.clone()
    p = torch.softmax(torch.randn(4, 3, dtype=F64), -1); pk = p.clone()
    cases = [
        (lambda: steepest_descent_direction(g, "l0"), ValueError, "Invalid norm"),
        (lambda: steepest_descent_direction(g.tolist(), "l2"), TypeError, "Invalid grad"),
        (lambda: steepest_descent_direction(torch.tensor(1.0), "l2"), ValueError, "Invalid grad"),
        (lambda: steepest_descent_direction(g, "metric"), TypeError, "Invalid metric"),
        (lambda: steepest_descent_direction(g, "metric", metric=torch.eye(4, dtype=F64)), ValueError, "Invalid metric"),
        (lambda: steepest_descent_direction(g, "metric", metric=torch.tensor([[2., 1., 0.], [0., 2., 0.], [0., 0., 2.]], dtype=F64)), ValueError, "positive-definite"),
        (lambda: steepest_descent_direction(g, "kl"), TypeError, "Invalid probs"),
        (lambda: steepest_descent_direction(g, "kl", probs=p[:, :2]), ValueError, "Invalid probs"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg): fn()
    steepest_descent_direction(g, "kl", probs=p, scaled=True)
    assert torch.equal(g, keep) and torch.equal(p, pk)


def test_bad_input_particles():
    x = torch.randn(5, 2, dtype=F64); keep = x.clone()
    sp, sq = (lambda y: -y), (lambda y, t: -y)
    cases = [
        (lambda: particle_ode_step(x, sp, sq, 0.0), ValueError, "Invalid dt"),
        (lambda: particle_ode_step(x, sp, sq, -0.1), ValueError, "Invalid dt"),
        (lambda: particle_ode_step(x, sp, sq, float("nan")), ValueError, "Invalid dt"),
        (lambda: particle_ode_step(x, "score", sq, 0.1), TypeError, "Invalid score_p"),
        (lambda: particle_ode_step(x, sp, None, 0.1), TypeError, "Invalid score_q"),
        (lambda: particle_ode_step(x, sp, sq, 0.1, t=float("inf")), ValueError, "Invalid t"),
        (lambda: particle_ode_step(x.tolist(), sp, sq, 0.1), TypeError, "Invalid x"),
        (lambda: particle_ode_step(x, lambda y: y[:, :1], sq, 0.1), ValueError, "Invalid score_p"),
        (lambda: particle_ode_step(x, sp, lambda y, t: y.sum(), 0.1), ValueError, "Invalid score_q"),
        (lambda: langevin_step(x, sp, 0.0), ValueError, "Invalid dt"),
        (lambda: langevin_step(x, 3, 0.1), TypeError, "Invalid score_p"),
        (lambda: langevin_step(x, sp, 0.1, generator=0), TypeError, "Invalid generator"),
        (lambda: langevin_step(x, lambda y: y.T, 0.1), ValueError, "Invalid score_p"),
        (lambda: langevin_step(torch.arange(4), sp, 0.1), TypeError, "Invalid x"),
        (lambda: particle_flow(x, sp, 0.1, 3, method="sde"), ValueError, "Invalid method"),
        (lambda: particle_flow(x, sp, 0.1, 3, method="ode"), TypeError, "Invalid score_q"),
        (lambda: particle_flow(x, sp, 0.1, -1), ValueError, "Invalid n_steps"),
        (lambda: particle_flow(x, sp, 0.1, 3, save_every=0), ValueError, "Invalid save_every"),
        (lambda: particle_flow(x, sp, 0.0, 3), ValueError, "Invalid dt"),
        (lambda: particle_flow(x, None, 0.1, 3), TypeError, "Invalid score_p"),
        (lambda: gaussian_kde_score(x, 0.0), ValueError, "Invalid bandwidth"),
        (lambda: gaussian_kde_score(x[0], 0.5), ValueError, "Invalid x"),
        (lambda: gaussian_kde_score(x[None], 0.5), ValueError, "Invalid x"),
        (lambda: gaussian_kl_flow_moments(-1.0, 0.0, 1.0), ValueError, "Invalid t"),
        (lambda: gaussian_kl_flow_moments(1.0, 0.0, 0.0), ValueError, "Invalid var0"),
    ]
    for fn, exc, msg in cases:
        with pytest.raises(exc, match=msg): fn()
    assert torch.equal(x, keep)
    # successful steps return new tensors and leave x as it was
    particle_ode_step(x, sp, sq, 0.1); langevin_step(x, sp, 0.1); particle_flow(x, sp, 0.1, 2, show_progress=False)
    gaussian_kde_score(x, 0.5)
    assert torch.equal(x, keep)
