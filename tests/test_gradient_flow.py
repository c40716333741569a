"""Tests for su_notes.dynamics.gradient_flow beyond the notebook's checks.

Peers that share no code with the module (torchdiffeq `odeint` fed Rosenbrock's gradient written out by hand,
scipy `linprog`, scikit-learn's `KernelDensity`), exact solutions (matrix exponential, closed-form flows) checked
over many random inputs with hypothesis, progress bars, and bad input (clear errors, nothing mutated).
Cross-checks and property tests run on `--device` (default cpu).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy.optimize import linprog
from torchdiffeq import odeint

from su_notes.dynamics.gradient_flow import (
    NORMS,
    gaussian_kde_score,
    gaussian_kl_flow_moments,
    gradient_descent,
    gradient_flow,
    langevin_step,
    particle_flow,
    particle_ode_step,
    rosenbrock,
    steepest_descent_direction,
)

F64 = torch.float64


def quadratic(A, b=None):
    "f(x) = ½xᵀAx + bᵀx, batched over leading dims."

    def f(x):
        out = 0.5 * torch.einsum("...i,ij,...j->...", x, A, x)
        return out if b is None else out + x @ b

    return f


def rosenbrock_grad(x, a=1.0, b=100.0):
    "∇ of (a - x₁)² + b(x₂ - x₁²)², written out by hand: the peer's right-hand side shares no code with the module."
    r = x[..., 1] - x[..., 0] ** 2
    return torch.stack([-2 * (a - x[..., 0]) - 4 * b * x[..., 0] * r, 2 * b * r], -1)


def random_spd(gen, d, device, low=0.5, high=3.0):
    "SPD matrix with eigenvalues drawn in [low, high]."
    Q, _ = torch.linalg.qr(torch.randn(d, d, dtype=F64, generator=gen))
    lam = low + (high - low) * torch.rand(d, dtype=F64, generator=gen)
    return ((Q * lam) @ Q.T).to(device)


# ---------------------------------------------------------------- peer cross-checks: torchdiffeq


def test_hand_written_gradient_is_rosenbrocks(device):
    # the peer's gradient must be the gradient of the function under test (checked here once, by autograd)
    x = torch.randn(20, 2, dtype=F64, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    (g,) = torch.autograd.grad(rosenbrock(x).sum(), x)
    torch.testing.assert_close(rosenbrock_grad(x.detach()), g, rtol=1e-13, atol=1e-12)


def test_rk4_matches_torchdiffeq_dopri5_on_rosenbrock_batch(device):
    x0 = torch.tensor([[-1.2, 1.0], [0.5, -0.5], [1.5, 2.5]], dtype=F64, device=device)
    t = torch.linspace(0, 0.03, 4, dtype=F64, device=device)
    ours = gradient_flow(rosenbrock, x0, t, step_size=1e-4)
    ref = odeint(lambda s, y: -rosenbrock_grad(y), x0, t, rtol=1e-11, atol=1e-11, method="dopri5")
    assert ours.shape == (4, 3, 2) and ours.device == x0.device
    torch.testing.assert_close(ours, ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("method", ["euler", "midpoint"])
def test_fixed_grid_solvers_match_torchdiffeq(method, device):
    # torchdiffeq's euler / midpoint on the same grid are the same arithmetic: agreement to rounding
    x0 = torch.tensor([[-1.2, 1.0], [0.3, 0.2]], dtype=F64, device=device)
    t = torch.linspace(0, 0.02, 41, dtype=F64, device=device)
    ours = gradient_flow(rosenbrock, x0, t, method=method)
    ref = odeint(lambda s, y: -rosenbrock_grad(y), x0, t, method=method)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- our solvers against exact solutions


@settings(max_examples=8)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 4))
@pytest.mark.parametrize("method,order,h0", [("euler", 1, 0.02), ("midpoint", 2, 0.05), ("rk4", 4, 0.1)])
def test_solver_order_against_matrix_exponential(method, order, h0, seed, d, device):
    # f = ½xᵀAx: x(T) = e^{-TA}x0 exactly; halving h must divide the error by 2^order (asymptotically)
    gen = torch.Generator().manual_seed(seed)
    A = random_spd(gen, d, device)
    x0 = torch.randn(3, d, dtype=F64, generator=gen).to(device)
    exact = x0 @ torch.linalg.matrix_exp(-A).mT  # T = 1, rows of x0
    errs = [
        (gradient_flow(quadratic(A), x0, [0.0, 1.0], method=method, step_size=h)[-1] - exact).norm().item()
        for h in (h0, h0 / 2, h0 / 4)
    ]
    observed = np.polyfit(np.log([h0, h0 / 2, h0 / 4]), np.log(errs), 1)[0]
    assert abs(observed - order) < 0.15 * order, (method, observed, errs)


def test_intermediate_output_times_and_step_size_grid(device):
    # output times that are not multiples of step_size: each interval is cut into equal sub-steps
    A = torch.diag(torch.tensor([1.0, 4.0], dtype=F64, device=device))
    x0 = torch.tensor([1.0, 1.0], dtype=F64, device=device)
    t = torch.tensor([0.0, 0.13, 0.5, 1.37], dtype=F64, device=device)
    out = gradient_flow(quadratic(A), x0, t, step_size=0.01)
    lam = torch.diag(A)
    torch.testing.assert_close(out, x0 * torch.exp(-t[:, None] * lam), rtol=1e-6, atol=1e-9)  # RK4, hλ ≤ 0.04
    assert torch.equal(out[0], x0)  # exact: row 0 is a copy of x0
    # Euler makes the sub-step count visible: ⌈Δ/h⌉ = 13, 37, 87 equal steps, so x = Π_j (1 - λΔ_j/n_j)^{n_j} x0
    eu = gradient_flow(quadratic(A), x0, t, method="euler", step_size=0.01)
    factors = [(1 - lam * dlt / n) ** n for dlt, n in zip((0.13, 0.37, 0.87), (13, 37, 87))]
    expect = torch.stack(
        [
            x0,
            x0 * factors[0],
            x0 * factors[0] * factors[1],
            x0 * factors[0] * factors[1] * factors[2],
        ]
    )
    torch.testing.assert_close(eu, expect, rtol=1e-12, atol=1e-13)


@settings(max_examples=10)
@given(k=st.integers(10, 14), batch=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_gradient_descent_is_euler_on_a_power_of_two_grid(k, batch, seed, device):
    x0 = torch.randn(batch, 2, dtype=F64, generator=torch.Generator().manual_seed(seed)).to(device)
    lr = 2.0**-k  # the grid j·lr and its spacings are exact, so h == lr bit for bit
    gd = gradient_descent(rosenbrock, x0, lr=lr, n_steps=20)
    eu = gradient_flow(rosenbrock, x0, lr * torch.arange(21, dtype=F64, device=device), method="euler")
    assert gd.shape == (21, batch, 2)
    # exact by construction: the same autograd gradient of the same x, and x - lr·g == x + h·(-g) in IEEE
    # arithmetic when h == lr (negation is exact); nothing is fused in eager mode
    assert torch.equal(gd, eu)


def test_flows_run_in_float32(device):
    x0 = torch.tensor([-1.2, 1.0], device=device)
    out = gradient_flow(rosenbrock, x0, [0.0, 0.01, 0.02], step_size=1e-3)
    assert out.dtype == torch.float32 and out.device == x0.device
    ref = gradient_flow(rosenbrock, x0.double(), [0.0, 0.01, 0.02], step_size=1e-3)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- closed-form flows over random inputs


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), d=st.integers(2, 6))
def test_kl_flow_of_cross_entropy_is_the_chord(seed, d, device):
    # natural-gradient flow of -Σπ log p: p(t) = π + (p0 - π)e^{-t}, on the simplex, cross-entropy decreasing
    gen = torch.Generator().manual_seed(seed)
    pi = torch.softmax(2 * torch.randn(d, dtype=F64, generator=gen), 0).to(device)
    p0 = torch.softmax(2 * torch.randn(2, d, dtype=F64, generator=gen), -1).to(device)
    ce = lambda q: -(pi * q.log()).sum(-1)
    t = torch.linspace(0, 2, 21, dtype=F64, device=device)
    out = gradient_flow(ce, p0, t, norm="kl", step_size=0.02)
    torch.testing.assert_close(out, pi + (p0 - pi) * torch.exp(-t)[:, None, None], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(out.sum(-1), torch.ones(21, 2, dtype=F64, device=device), rtol=1e-12, atol=1e-12)
    assert (out > 0).all() and (ce(out).diff(dim=0) <= 1e-12).all()


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 5))
def test_metric_flow_with_hessian_is_newton_flow(seed, d, device):
    gen = torch.Generator().manual_seed(seed)
    A = random_spd(gen, d, device, 0.1, 50.0)  # conditioning up to 500
    x0 = torch.randn(3, d, dtype=F64, generator=gen).to(device)
    t = torch.linspace(0, 2, 9, dtype=F64, device=device)
    out = gradient_flow(quadratic(A), x0, t, norm="metric", metric=A, step_size=0.01)
    torch.testing.assert_close(out, x0 * torch.exp(-t)[:, None, None], rtol=1e-8, atol=1e-12)


spd = st.tuples(st.integers(0, 10_000), st.integers(1, 5), st.floats(0.05, 3.0))


@settings(max_examples=15)
@given(args=spd)
def test_f_non_increasing_along_flow_for_convex_quadratics(args, device):
    seed, d, shift = args
    gen = torch.Generator().manual_seed(seed)
    B = torch.randn(d, d, dtype=F64, generator=gen)
    A = (B @ B.T + shift * torch.eye(d, dtype=F64)).to(device)
    b = torch.randn(d, dtype=F64, generator=gen).to(device)
    lam = torch.linalg.eigvalsh(A).max().item()
    f = quadratic(A, b)
    x0 = 3 * torch.randn(4, d, dtype=F64, generator=gen).to(device)
    t = torch.linspace(0, 1, 21, dtype=F64, device=device)
    for method in ("rk4", "euler"):
        fv = f(gradient_flow(f, x0, t, method=method, step_size=0.5 / lam))  # hλ ≤ 1/2: stable for all solvers
        assert (fv.diff(dim=0) <= 1e-12 * (1 + fv[:-1].abs())).all(), method
    fv = f(gradient_descent(f, x0, lr=1.9 / lam, n_steps=20))  # GD decreases f for any α < 2/λ_max
    assert (fv.diff(dim=0) <= 1e-12 * (1 + fv[:-1].abs())).all()
    xmin = torch.linalg.solve(A, -b)
    assert (fv >= f(xmin) - 1e-9 * (1 + f(xmin).abs())).all()  # never below the minimum


@settings(max_examples=15)
@given(mu0=st.floats(-3, 3), s0=st.floats(0.3, 2.0))
def test_particle_ode_follows_the_exact_transport_map(mu0, s0, device):
    # p = N(0,1), q0 = N(μ0, σ0²): the ODE particles sit on x_t = μ_t + (σ_t/σ0)(x0 - μ0), up to Heun's O(dt²)
    x0 = (mu0 + s0 * torch.randn(200, 1, dtype=F64, generator=torch.Generator().manual_seed(0))).to(device)

    def score_q(x, t):
        m, v = gaussian_kl_flow_moments(t, mu0, s0**2)
        return -(x - m.to(x)) / v.to(x)

    ts, xs = particle_flow(x0, lambda x: -x, 0.01, 100, "ode", score_q, save_every=50)
    m, v = gaussian_kl_flow_moments(ts.to(device), mu0, s0**2)
    transport = m[:, None, None] + (v.sqrt() / s0)[:, None, None] * (x0 - mu0)
    assert xs.device == x0.device
    torch.testing.assert_close(xs, transport, rtol=0, atol=2e-3 * (1 + abs(mu0)) / min(s0, 1) ** 2)


# ---------------------------------------------------------------- KDE score against scikit-learn


def test_kde_score_matches_sklearn_kernel_density_by_finite_differences(device):
    from sklearn.neighbors import KernelDensity

    x = torch.randn(40, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    h = 0.7
    kde = KernelDensity(kernel="gaussian", bandwidth=h).fit(x.numpy())
    eps = 1e-5
    fd = np.stack(
        [
            (kde.score_samples(x.numpy() + eps * e) - kde.score_samples(x.numpy() - eps * e)) / (2 * eps)
            for e in np.eye(2)
        ],
        -1,
    )
    ours = gaussian_kde_score(x.to(device), h)
    assert ours.device.type == torch.device(device).type
    np.testing.assert_allclose(ours.cpu().numpy(), fd, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- particle steps


def test_langevin_step_reproducible_with_generator_and_shape(device):
    x = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(1)).to(device)
    gen = lambda: torch.Generator(device=device).manual_seed(5)
    a = langevin_step(x, lambda y: -y, 0.1, generator=gen())
    b = langevin_step(x, lambda y: -y, 0.1, generator=gen())
    # exact: the same kernels on the same inputs with the same random stream
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    noise = torch.randn(7, 3, generator=gen(), dtype=F64, device=device)
    torch.testing.assert_close(a, x + 0.1 * (-x) + math.sqrt(0.2) * noise)


def test_particle_flow_snapshots():
    x0 = torch.zeros(4, 2, dtype=F64)
    ts, xs = particle_flow(
        x0,
        lambda y: -y,
        0.1,
        7,
        "langevin",
        save_every=3,
        generator=torch.Generator().manual_seed(0),
        show_progress=False,
    )
    torch.testing.assert_close(ts, torch.tensor([0.0, 0.3, 0.6, 0.7], dtype=F64))
    assert xs.shape == (4, 4, 2) and torch.equal(xs[0], x0)  # exact: snapshot 0 is a copy of x0
    ts, xs = particle_flow(x0, lambda y: -y, 0.1, 0, show_progress=False)
    assert xs.shape == (1, 4, 2)


# ---------------------------------------------------------------- steepest-descent directions


@settings(max_examples=40)
@given(gl=st.lists(st.floats(-10, 10, allow_nan=False, width=64), min_size=2, max_size=6))
def test_polyhedral_directions_match_linprog(gl, device):
    g = torch.tensor(gl, dtype=F64)
    d = len(gl)
    lp_inf = linprog(g.numpy(), bounds=[(-1, 1)] * d)
    lp_one = linprog(
        np.r_[g.numpy(), -g.numpy()],
        A_ub=np.ones((1, 2 * d)),
        b_ub=[1],
        bounds=[(0, None)] * (2 * d),
    )
    for norm, lp, unit in (
        ("linf", lp_inf, lambda u: u.abs().max()),
        ("l1", lp_one, lambda u: u.abs().sum()),
    ):
        u = steepest_descent_direction(g.to(device), norm).cpu()
        assert abs((-g @ u).item() + lp.fun) <= 1e-7 * (1 + abs(lp.fun))
        if g.abs().max() > 0:
            assert abs(unit(u).item() - 1) < 1e-12


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), d=st.integers(2, 6))
def test_directions_attain_dual_norm_and_beat_random(seed, d, device):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(3, d, dtype=F64, generator=gen).to(device)
    B = torch.randn(d, d, dtype=F64, generator=gen)
    M = (B @ B.T + 0.3 * torch.eye(d, dtype=F64)).to(device)
    p = torch.softmax(torch.randn(3, d, dtype=F64, generator=gen), -1).to(device)
    Minv = torch.linalg.inv(M)
    dual = {
        "l2": g.norm(dim=-1),
        "linf": g.abs().sum(-1),
        "l1": g.abs().amax(-1),
        "metric": torch.einsum("bi,ij,bj->b", g, Minv, g).sqrt(),
        "kl": (p * (g - (p * g).sum(-1, keepdim=True)) ** 2).sum(-1).sqrt(),
    }
    norm_of = {
        "l2": lambda v: v.norm(dim=-1),
        "linf": lambda v: v.abs().amax(-1),
        "l1": lambda v: v.abs().sum(-1),
        "metric": lambda v: torch.einsum("...i,ij,...j->...", v, M, v).sqrt(),
        "kl": lambda v: (v**2 / p[:, None]).sum(-1).sqrt(),
    }
    R = torch.randn(3, 500, d, dtype=F64, generator=gen).to(device)
    for norm in NORMS:
        kw = {"metric": dict(metric=M), "kl": dict(probs=p)}.get(norm, {})
        u = steepest_descent_direction(g, norm, **kw)
        val = -(g * u).sum(-1)
        torch.testing.assert_close(val, dual[norm], rtol=1e-10, atol=1e-12)
        s = steepest_descent_direction(g, norm, scaled=True, **kw)
        torch.testing.assert_close((g * s).sum(-1), -(dual[norm] ** 2), rtol=1e-10, atol=1e-12)
        Rn = R - R.mean(-1, keepdim=True) if norm == "kl" else R
        Rn = Rn / norm_of[norm](Rn)[..., None]
        assert (-(Rn * g[:, None]).sum(-1)).amax(-1).le(val + 1e-10).all(), norm


def test_zero_gradient_gives_zero_direction(device):
    z = torch.zeros(2, 3, dtype=F64, device=device)
    # exact: a zero gradient is multiplied by finite numbers; for "kl" the gradient 1 is centred by
    # Σ p_i = 1, three equal terms fl(1/3) whose sum rounds to 1 in any order
    for norm in ("l2", "linf", "l1"):
        assert torch.equal(steepest_descent_direction(z, norm), z)
    assert torch.equal(steepest_descent_direction(z, "metric", metric=torch.eye(3, dtype=F64, device=device)), z)
    p = torch.full((2, 3), 1 / 3, dtype=F64, device=device)
    assert torch.equal(steepest_descent_direction(torch.ones(2, 3, dtype=F64, device=device), "kl", probs=p), z)


# ---------------------------------------------------------------- progress bars


def test_every_long_loop_shows_a_bar_by_default(monkeypatch, capsys):
    monkeypatch.setenv("SU_NOTES_PROGRESS", "1")
    x0 = torch.tensor([-1.2, 1.0], dtype=F64)
    calls = {
        "gradient_flow": lambda **kw: gradient_flow(rosenbrock, x0, [0.0, 0.01], step_size=1e-3, **kw),
        "gradient_descent": lambda **kw: gradient_descent(rosenbrock, x0, 1e-3, 5, **kw),
        "particle_flow": lambda **kw: particle_flow(torch.zeros(3, 2), lambda y: -y, 0.1, 5, **kw),
    }
    for name, call in calls.items():
        call()
        err = capsys.readouterr().err
        assert name in err and "100%" in err, (name, err)
        call(show_progress=False)
        assert capsys.readouterr().err == "", name


# ---------------------------------------------------------------- bad input: clear errors, nothing mutated


def _raises_all(cases):
    for i, (fn, exc, msg) in enumerate(cases):
        try:
            fn()
        except exc as e:
            assert __import__("re").search(msg, str(e)), (i, msg, str(e))
        else:
            pytest.fail(f"case {i} did not raise {exc.__name__} ({msg})")


def test_bad_input_gradient_flow_and_descent():
    x0 = torch.tensor([-1.2, 1.0], dtype=F64)
    keep = x0.clone()
    t = [0.0, 0.1]
    nan, inf = float("nan"), float("inf")
    _raises_all(
        [
            (lambda: gradient_flow("rosenbrock", x0, t), TypeError, r"Invalid f: 'rosenbrock'"),
            (
                lambda: gradient_flow(rosenbrock, [1.0, 2.0], t),
                TypeError,
                r"Invalid x0: \[1.0, 2.0\]",
            ),
            (
                lambda: gradient_flow(rosenbrock, torch.tensor([1, 2]), t),
                TypeError,
                r"Invalid x0: tensor\(shape=\(2,\)",
            ),
            (lambda: gradient_flow(rosenbrock, torch.tensor(1.0), t), ValueError, "Invalid x0"),
            (
                lambda: gradient_flow(rosenbrock, x0, [0.0, 0.1, 0.05]),
                ValueError,
                r"Invalid t: .*0\.05.*strictly increasing",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, [[0.0, 0.1]]),
                ValueError,
                r"Invalid t: tensor\(shape=\(1, 2\)",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, [0.0, nan]),
                ValueError,
                r"Invalid t: .*nan.*must be finite",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, [0.0, inf]),
                ValueError,
                r"Invalid t: .*inf.*must be finite",
            ),
            (lambda: gradient_flow(rosenbrock, x0, "0 1"), TypeError, r"Invalid t: '0 1'"),
            (
                lambda: gradient_flow(rosenbrock, x0, torch.tensor([False, True])),
                TypeError,
                "Invalid t",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, step_size=0.0),
                ValueError,
                r"Invalid step_size: 0.0",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, step_size=-1e-3),
                ValueError,
                r"Invalid step_size: -0.001",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, step_size=True),
                TypeError,
                r"Invalid step_size: True",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, step_size=nan),
                ValueError,
                r"Invalid step_size: nan",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, step_size=inf),
                ValueError,
                r"Invalid step_size: inf",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, method="rk45"),
                ValueError,
                r"Invalid method: 'rk45'",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, norm="l3"),
                ValueError,
                r"Invalid norm: 'l3'",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, norm="metric"),
                TypeError,
                r"Invalid metric: None",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, norm="metric", metric=-torch.eye(2, dtype=F64)),
                ValueError,
                r"Invalid metric: tensor\(shape=\(2, 2\).*positive-definite",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, norm="metric", metric=torch.eye(3, dtype=F64)),
                ValueError,
                r"Invalid metric: tensor\(shape=\(3, 3\)",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, norm="kl"),
                ValueError,
                r"Invalid x0: tensor\(shape=\(2,\).*-1.2",
            ),
            (
                lambda: gradient_flow(rosenbrock, x0, t, show_progress=1),
                TypeError,
                r"Invalid show_progress: 1",
            ),
            (
                lambda: gradient_flow(lambda x: x.sum(), torch.zeros(3, 2, dtype=F64), t),
                ValueError,
                r"Invalid f: .*returned tensor\(shape=\(\)",
            ),
            (
                lambda: gradient_flow(lambda x: torch.ones(()), torch.zeros(2, dtype=F64), t),
                ValueError,
                "does not depend differentiably",
            ),
            (
                lambda: gradient_flow(rosenbrock, torch.zeros(3, dtype=F64), t),
                ValueError,
                r"Invalid x: tensor\(shape=\(3,\)",
            ),
            (lambda: gradient_descent(None, x0, 0.1, 3), TypeError, "Invalid f: None"),
            (lambda: gradient_descent(rosenbrock, x0, 0.0, 3), ValueError, "Invalid lr: 0.0"),
            (lambda: gradient_descent(rosenbrock, x0, inf, 3), ValueError, "Invalid lr: inf"),
            (lambda: gradient_descent(rosenbrock, x0, nan, 3), ValueError, "Invalid lr: nan"),
            (lambda: gradient_descent(rosenbrock, x0, True, 3), TypeError, "Invalid lr: True"),
            (lambda: gradient_descent(rosenbrock, x0, 0.1, -1), ValueError, "Invalid n_steps: -1"),
            (
                lambda: gradient_descent(rosenbrock, x0, 0.1, 2.5),
                TypeError,
                r"Invalid n_steps: 2.5",
            ),
            (
                lambda: gradient_descent(rosenbrock, x0, 0.1, True),
                TypeError,
                "Invalid n_steps: True",
            ),
            (
                lambda: gradient_descent(rosenbrock, x0, 0.1, 3, show_progress="yes"),
                TypeError,
                "Invalid show_progress",
            ),
            (
                lambda: gradient_descent(rosenbrock, x0.numpy(), 0.1, 3),
                TypeError,
                "Invalid x0: array",
            ),
            (lambda: rosenbrock(torch.zeros(3, dtype=F64)), ValueError, "Invalid x"),
            (lambda: rosenbrock(x0, a=nan), ValueError, "Invalid a: nan"),
            (lambda: rosenbrock(x0, b=-1.0), ValueError, r"Invalid b: -1.0"),
            (lambda: rosenbrock(x0, b=True), TypeError, "Invalid b: True"),
        ]
    )
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x0, keep)
    # successful calls leave x0 untouched and return fresh tensors
    out = gradient_flow(rosenbrock, x0, t, step_size=0.01)
    gd = gradient_descent(rosenbrock, x0, 1e-3, 3)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x0, keep) and out.data_ptr() != x0.data_ptr() and gd[0].data_ptr() != x0.data_ptr()
    assert not out.requires_grad and not gd.requires_grad


def test_bad_input_steepest_descent_direction():
    g = torch.randn(4, 3, dtype=F64)
    keep = g.clone()
    p = torch.softmax(torch.randn(4, 3, dtype=F64), -1)
    pk = p.clone()
    _raises_all(
        [
            (lambda: steepest_descent_direction(g, "l0"), ValueError, "Invalid norm: 'l0'"),
            (lambda: steepest_descent_direction(g, 2), ValueError, "Invalid norm: 2"),
            (lambda: steepest_descent_direction(g.tolist(), "l2"), TypeError, "Invalid grad"),
            (
                lambda: steepest_descent_direction(torch.tensor(1.0), "l2"),
                ValueError,
                "Invalid grad",
            ),
            (lambda: steepest_descent_direction(g, "l2", scaled=1), TypeError, "Invalid scaled: 1"),
            (lambda: steepest_descent_direction(g, "metric"), TypeError, "Invalid metric: None"),
            (
                lambda: steepest_descent_direction(g, "metric", metric=torch.eye(4, dtype=F64)),
                ValueError,
                r"Invalid metric: tensor\(shape=\(4, 4\)",
            ),
            (
                lambda: steepest_descent_direction(
                    g,
                    "metric",
                    metric=torch.tensor([[2.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]], dtype=F64),
                ),
                ValueError,
                "positive-definite",
            ),
            (
                lambda: steepest_descent_direction(g, "metric", metric=torch.full((3, 3), float("nan"), dtype=F64)),
                ValueError,
                "positive-definite",
            ),
            (lambda: steepest_descent_direction(g, "kl"), TypeError, "Invalid probs: None"),
            (
                lambda: steepest_descent_direction(g, "kl", probs=p[:, :2]),
                ValueError,
                r"Invalid probs: tensor\(shape=\(4, 2\)",
            ),
            (
                lambda: steepest_descent_direction(g, "kl", probs=2 * p),
                ValueError,
                "rows summing to 1",
            ),
            (
                lambda: steepest_descent_direction(g, "kl", probs=p.roll(1, 0) - p + 1 / 3),
                ValueError,
                "Invalid probs",
            ),
        ]
    )
    steepest_descent_direction(g, "kl", probs=p, scaled=True)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(g, keep) and torch.equal(p, pk)


def test_bad_input_particles():
    x = torch.randn(5, 2, dtype=F64)
    keep = x.clone()
    sp, sq = (lambda y: -y), (lambda y, t: -y)
    nan, inf = float("nan"), float("inf")
    _raises_all(
        [
            (lambda: particle_ode_step(x, sp, sq, 0.0), ValueError, "Invalid dt: 0.0"),
            (lambda: particle_ode_step(x, sp, sq, -0.1), ValueError, "Invalid dt: -0.1"),
            (lambda: particle_ode_step(x, sp, sq, nan), ValueError, "Invalid dt: nan"),
            (lambda: particle_ode_step(x, sp, sq, True), TypeError, "Invalid dt: True"),
            (lambda: particle_ode_step(x, "score", sq, 0.1), TypeError, "Invalid score_p: 'score'"),
            (lambda: particle_ode_step(x, sp, None, 0.1), TypeError, "Invalid score_q: None"),
            (lambda: particle_ode_step(x, sp, sq, 0.1, t=inf), ValueError, "Invalid t: inf"),
            (lambda: particle_ode_step(x, sp, sq, 0.1, t=False), TypeError, "Invalid t: False"),
            (lambda: particle_ode_step(x.tolist(), sp, sq, 0.1), TypeError, "Invalid x"),
            (
                lambda: particle_ode_step(x, lambda y: y[:, :1], sq, 0.1),
                ValueError,
                r"Invalid score_p: .*returned tensor\(shape=\(5, 1\)",
            ),
            (
                lambda: particle_ode_step(x, sp, lambda y, t: y.sum(), 0.1),
                ValueError,
                "Invalid score_q",
            ),
            (lambda: langevin_step(x, sp, 0.0), ValueError, "Invalid dt: 0.0"),
            (lambda: langevin_step(x, sp, inf), ValueError, "Invalid dt: inf"),
            (lambda: langevin_step(x, 3, 0.1), TypeError, "Invalid score_p: 3"),
            (lambda: langevin_step(x, sp, 0.1, generator=0), TypeError, "Invalid generator: 0"),
            (lambda: langevin_step(x, lambda y: y.T, 0.1), ValueError, "Invalid score_p"),
            (lambda: langevin_step(torch.arange(4), sp, 0.1), TypeError, "Invalid x"),
            (
                lambda: particle_flow(x, sp, 0.1, 3, method="sde"),
                ValueError,
                "Invalid method: 'sde'",
            ),
            (
                lambda: particle_flow(x, sp, 0.1, 3, method="ode"),
                TypeError,
                "Invalid score_q: None",
            ),
            (lambda: particle_flow(x, sp, 0.1, -1), ValueError, "Invalid n_steps: -1"),
            (lambda: particle_flow(x, sp, 0.1, 3.0), TypeError, r"Invalid n_steps: 3.0"),
            (
                lambda: particle_flow(x, sp, 0.1, 3, save_every=0),
                ValueError,
                "Invalid save_every: 0",
            ),
            (
                lambda: particle_flow(x, sp, 0.1, 3, save_every=True),
                TypeError,
                "Invalid save_every: True",
            ),
            (lambda: particle_flow(x, sp, 0.0, 3), ValueError, "Invalid dt: 0.0"),
            (lambda: particle_flow(x, None, 0.1, 3), TypeError, "Invalid score_p: None"),
            (
                lambda: particle_flow(x, sp, 0.1, 3, generator="g"),
                TypeError,
                "Invalid generator: 'g'",
            ),
            (
                lambda: particle_flow(x, sp, 0.1, 3, show_progress=None),
                TypeError,
                "Invalid show_progress: None",
            ),
            (lambda: gaussian_kde_score(x, 0.0), ValueError, "Invalid bandwidth: 0.0"),
            (lambda: gaussian_kde_score(x, True), TypeError, "Invalid bandwidth: True"),
            (lambda: gaussian_kde_score(x, nan), ValueError, "Invalid bandwidth: nan"),
            (lambda: gaussian_kde_score(x, inf), ValueError, "Invalid bandwidth: inf"),
            (lambda: gaussian_kde_score(x[0], 0.5), ValueError, r"Invalid x: tensor\(shape=\(2,\)"),
            (
                lambda: gaussian_kde_score(x[None], 0.5),
                ValueError,
                r"Invalid x: tensor\(shape=\(1, 5, 2\)",
            ),
            (lambda: gaussian_kl_flow_moments(-1.0, 0.0, 1.0), ValueError, "Invalid t: -1.0"),
            (lambda: gaussian_kl_flow_moments(nan, 0.0, 1.0), ValueError, "Invalid t: nan"),
            (
                lambda: gaussian_kl_flow_moments(torch.tensor([0.0, inf]), 0.0, 1.0),
                ValueError,
                r"Invalid t: tensor",
            ),
            (lambda: gaussian_kl_flow_moments(True, 0.0, 1.0), TypeError, "Invalid t: True"),
            (lambda: gaussian_kl_flow_moments(1.0, nan, 1.0), ValueError, "Invalid mu0: nan"),
            (lambda: gaussian_kl_flow_moments(1.0, 0.0, 0.0), ValueError, "Invalid var0: 0.0"),
            (lambda: gaussian_kl_flow_moments(1.0, 0.0, inf), ValueError, "Invalid var0: inf"),
        ]
    )
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x, keep)
    # successful steps return new tensors and leave x as it was
    particle_ode_step(x, sp, sq, 0.1)
    langevin_step(x, sp, 0.1)
    particle_flow(x, sp, 0.1, 2, show_progress=False)
    gaussian_kde_score(x, 0.5)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x, keep)
