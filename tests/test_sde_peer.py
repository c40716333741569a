"""Solver tests for `su_notes.generative.sde.odeint_dopri5`, after the ideas of torchdiffeq's and
scipy's own solver tests, written for this project.

From torchdiffeq's suite: problems with a known solution (a linear system solved by the matrix
exponential, an oscillator, a time-dependent decay), several output times, integration backwards
in time, float32 and float64, the dtype of `t` independent of the state's, tighter tolerances giving
smaller errors, and the convergence order of dopri5. From scipy's `test_ivp.py`: the error measured
in units of the tolerance, `atol + rtol·|y|`, a zero right-hand side integrated exactly, and the
step sequence of `solve_ivp(method="RK45")`. Each problem is also solved by torchdiffeq 0.2.5's
`dopri5` and scipy's `RK45`, and the three must agree. Cross-checks run on `--device`.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from torchdiffeq import odeint

from su_notes.generative.sde import odeint_dopri5

F64, F32 = torch.float64, torch.float32
EPS64 = torch.finfo(F64).eps
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- problems with a known solution


class Linear:
    "dy/dt = A y with A = −0.2 I + (skew-symmetric): a damped rotation; y(t) = expm(tA) y0."

    name = "linear"

    def __init__(self, device, dtype=F64, seed=0):
        g = torch.Generator().manual_seed(seed)
        B = torch.randn(4, 4, dtype=F64, generator=g)
        self.A64 = -0.2 * torch.eye(4, dtype=F64) + (B - B.T) / 2
        self.y0_64 = torch.randn(4, dtype=F64, generator=g)
        self.A, self.y0 = self.A64.to(device, dtype), self.y0_64.to(device, dtype)

    def f(self, t, y):
        return self.A @ y

    def exact(self, ts):
        "Solution at the times ts, (len(ts), 4), float64 on the CPU."
        return torch.stack([torch.from_numpy(expm(t * self.A64.numpy())) @ self.y0_64 for t in ts])


class Oscillator:
    "u' = v, v' = −ω²u from (1, 0): u = cos ωt, v = −ω sin ωt; ω = 3, six periods on [0, 4π]."

    name = "oscillator"
    w = 3.0

    def __init__(self, device, dtype=F64):
        self.y0 = torch.tensor([1.0, 0.0], dtype=dtype, device=device)

    def f(self, t, y):
        return torch.stack([y[1], -(self.w**2) * y[0]])

    def exact(self, ts):
        return torch.tensor([[math.cos(self.w * t), -self.w * math.sin(self.w * t)] for t in ts], dtype=F64)


class Decay:
    "dy/dt = −2t·y (time-dependent rate) for 3 initial values: y = y0·exp(−t²)."

    name = "decay"

    def __init__(self, device, dtype=F64):
        self.y0 = torch.tensor([1.0, -0.5, 2.0], dtype=dtype, device=device)

    def f(self, t, y):
        return -2 * t * y

    def exact(self, ts):
        return torch.stack([self.y0.cpu().double() * math.exp(-t * t) for t in ts])


PROBLEMS = {
    "linear": (Linear, [0.0, 0.5, 1.0, 2.0, 4.0]),
    "oscillator": (Oscillator, np.linspace(0.0, 4 * math.pi, 9).tolist()),
    "decay": (Decay, [0.0, 0.3, 1.0, 2.5]),
}


def tol_units(y, exact, rtol, atol):
    "scipy's measure: the largest |y − exact| / (atol + rtol·|exact|)."
    y, exact = y.detach().cpu().double(), exact.double()
    return ((y - exact).abs() / (atol + rtol * exact.abs())).max().item()


# global error in units of the (local) tolerance: scipy's tests ask < 5 on short problems; over
# six periods the oscillator accumulates up to ~40 at rtol 1e-4 (measured: linear ≤ 1.8,
# decay ≤ 2, oscillator 38 / 16 / 7.5 at 1e-4 / 1e-6 / 1e-8)
UNITS = {"linear": 5.0, "oscillator": 60.0, "decay": 5.0}


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-8])
def test_known_solution_at_several_output_times(name, tol, device):
    cls, ts = PROBLEMS[name]
    prob = cls(device)
    out = odeint_dopri5(prob.f, prob.y0, ts, rtol=tol, atol=tol)
    # shapes, dtypes, devices and step counts are integers or enums: exact
    assert out.shape == (len(ts), *prob.y0.shape) and out.device == prob.y0.device
    assert tol_units(out, prob.exact(ts), tol, tol) < UNITS[name]
    # the same check fails on a wrong answer: the solution one output time late
    assert tol_units(out[:-1], prob.exact(ts[1:]), tol, tol) > 100 * UNITS[name]


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_backward_in_time_recovers_the_initial_value(name, device):
    # start from the exact state at the last time and integrate down to t = 0 (t decreasing)
    cls, ts = PROBLEMS[name]
    prob = cls(device)
    back_ts = ts[::-1]
    exact = prob.exact(back_ts)
    y_end = exact[0].to(prob.y0)
    # local errors at the tolerance are amplified at most by how much the solution grows on the
    # way (backwards, the decay grows 518-fold: measured 43 units for ours, 66 for torchdiffeq)
    growth = (exact.abs().max() / exact[0].abs().max()).item()
    out = odeint_dopri5(prob.f, y_end, back_ts, rtol=1e-8, atol=1e-8)
    assert tol_units(out, exact, 1e-8, 1e-8) < UNITS[name] * growth
    ref = odeint(
        prob.f,
        y_end,
        torch.tensor(back_ts, dtype=F64, device=device),
        rtol=1e-8,
        atol=1e-8,
        method="dopri5",
    )
    assert tol_units(ref, exact, 1e-8, 1e-8) < UNITS[name] * growth  # torchdiffeq, same bound
    # the bound is not vacuous: the initial value itself is off by far more than that
    assert tol_units(exact[:1].expand_as(exact), exact, 1e-8, 1e-8) > 1e3 * UNITS[name] * growth


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_tighter_tolerance_lowers_the_error_and_raises_the_cost(name):
    cls, ts = PROBLEMS[name]
    prob = cls("cpu")
    errs, nfes = [], []
    for tol in (1e-3, 1e-5, 1e-7, 1e-9, 1e-11):
        st = {}
        out = odeint_dopri5(prob.f, prob.y0, ts, rtol=tol, atol=tol, stats=st)
        errs.append((out - prob.exact(ts)).abs().max().item())
        nfes.append(st["nfe"])
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert all(b > a for a, b in zip(nfes, nfes[1:])), nfes
    assert errs[-1] < 1e-6 * errs[0]  # eight decades of tolerance: ≥ six of error


def test_convergence_order_is_five():
    # a huge tolerance accepts every step, and each step is clipped to the next output time, so
    # N equal output intervals make a fixed-step RK5 (after a few tiny start-up steps): the global
    # error falls as N^-5
    prob = Decay("cpu")
    errs = {}
    for N in (16, 32, 64, 128):
        st = {}
        ts = torch.linspace(0.0, 2.0, N + 1, dtype=F64)
        out = odeint_dopri5(prob.f, prob.y0, ts, rtol=1e3, atol=1e3, stats=st)
        # shapes, dtypes, devices and step counts are integers or enums: exact
        assert st["n_rejected"] == 0 and N <= st["n_accepted"] <= N + 6
        errs[N] = (out[-1].double() - prob.exact([2.0])[0]).abs().max().item()
    orders = [math.log2(errs[n] / errs[2 * n]) for n in (16, 32, 64)]
    assert all(4.5 < p < 6.2 for p in orders), orders
    assert abs(orders[-1] - 5) < 0.5, orders  # the asymptotic order


def test_polynomial_quadrature_is_exact_to_degree_four():
    # for dy/dt = q(t) a step is a quadrature with the 5th-order weights, exact for deg q ≤ 4
    q4 = lambda t, y: (5 * t**4 - 3 * t**2 + 1).expand_as(y)  # y = t⁵ − t³ + t
    q5 = lambda t, y: (6 * t**5).expand_as(y)  # y = t⁶: not exact
    y0 = torch.zeros(1, dtype=F64)
    st = {}
    out4 = odeint_dopri5(q4, y0, [0.0, 2.0], rtol=1e-3, atol=1e-3, stats=st)[-1]
    out5 = odeint_dopri5(q5, y0, [0.0, 2.0], rtol=1e-3, atol=1e-3)[-1]
    err4, err5 = (out4 - 26.0).abs().item(), (out5 - 64.0).abs().item()
    # a few roundings of numbers of size ≤ 32 per step, over st["n_accepted"] steps
    assert err4 <= 64 * EPS64 * 32 * st["n_accepted"], (err4, st)
    assert err5 > 1e4 * max(err4, EPS64)


def test_float32_and_float64(device):
    prob64, prob32 = Linear(device), Linear(device, F32)
    ts = PROBLEMS["linear"][1]
    exact = prob64.exact(ts)
    out64 = odeint_dopri5(prob64.f, prob64.y0, ts, rtol=1e-10, atol=1e-10)
    out32 = odeint_dopri5(prob32.f, prob32.y0, ts, rtol=1e-5, atol=1e-5)
    # shapes, dtypes, devices and step counts are integers or enums: exact
    assert out64.dtype == F64 and out32.dtype == F32
    assert tol_units(out64, exact, 1e-10, 1e-10) < UNITS["linear"]
    # float32 at rtol 1e-5: the tolerance, plus ~1e-6 of rounding over the steps
    assert tol_units(out32, exact, 1e-5, 1e-5) < UNITS["linear"]
    ref32 = odeint(prob32.f, prob32.y0, torch.tensor(ts, device=device), rtol=1e-5, atol=1e-5)
    # shapes, dtypes, devices and step counts are integers or enums: exact
    assert ref32.dtype == F32 and tol_units(ref32, exact, 1e-5, 1e-5) < UNITS["linear"]


def test_time_dtype_is_independent_of_the_state_dtype():
    # float32 output times with a float64 state: func sees float64 0-d times, and the result is
    # the solve through the same times given as Python floats
    prob = Decay("cpu")
    t32 = torch.tensor([0.0, 0.3, 1.0, 2.5], dtype=F32)
    seen = []

    def f(t, y):
        seen.append((t.dtype, t.ndim))
        return prob.f(t, y)

    out = odeint_dopri5(f, prob.y0, t32, rtol=1e-8, atol=1e-8)
    # shapes, dtypes, devices and step counts are integers or enums: exact
    assert set(seen) == {(F64, 0)}
    # the same floats, the same kernels: bit-exact by construction
    torch.testing.assert_close(
        out, odeint_dopri5(prob.f, prob.y0, t32.tolist(), rtol=1e-8, atol=1e-8), rtol=0, atol=0
    )  # exact: see the comment above


def test_single_output_time_returns_the_initial_state():
    prob = Decay("cpu")
    out = odeint_dopri5(prob.f, prob.y0, [0.7])
    # a copy of y0, not a computation: bit-exact by construction
    assert out.shape == (1, 3) and torch.equal(out[0], prob.y0)


# ---------------------------------------------------------------- against the peers


@pytest.mark.parametrize("name", list(PROBLEMS))
@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-9])
def test_same_steps_as_scipy_rk45(name, tol):
    # one output interval, forward in time: scipy's step control, so the same NFE and states
    cls, ts = PROBLEMS[name]
    prob = cls("cpu")
    shape = prob.y0.shape
    st = {}
    ours = odeint_dopri5(prob.f, prob.y0, [ts[0], ts[-1]], rtol=tol, atol=tol, stats=st)[-1]
    fun = lambda t, y: prob.f(torch.tensor(t, dtype=F64), torch.from_numpy(y).view(shape)).numpy()
    ref = solve_ivp(fun, (ts[0], ts[-1]), prob.y0.numpy(), method="RK45", rtol=tol, atol=tol)
    # shapes, dtypes, devices and step counts are integers or enums: exact
    assert ref.success and st["nfe"] == ref.nfev
    # the same steps: the states differ by rounding only (sums in another order)
    np.testing.assert_allclose(ours.numpy(), ref.y[:, -1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_agrees_with_torchdiffeq_and_scipy_at_tight_tolerance(name, device):
    cls, ts = PROBLEMS[name]
    prob = cls(device)
    ours = odeint_dopri5(prob.f, prob.y0, ts, rtol=1e-11, atol=1e-11)
    tdq = odeint(
        prob.f,
        prob.y0,
        torch.tensor(ts, dtype=F64, device=device),
        rtol=1e-11,
        atol=1e-11,
        method="dopri5",
    )
    shape = prob.y0.shape
    fun = lambda t, y: prob.f(torch.tensor(t, dtype=F64), torch.from_numpy(y).view(shape).to(F64)).numpy()
    sp = solve_ivp(
        fun,
        (ts[0], ts[-1]),
        prob.y0.cpu().numpy(),
        method="RK45",
        t_eval=ts,
        rtol=1e-11,
        atol=1e-11,
    )
    # each within its tolerance of the exact solution, hence of each other (1e-11 × 60 units)
    bound = dict(rtol=UNITS[name] * 1e-11, atol=UNITS[name] * 1e-11 * 2)
    torch.testing.assert_close(ours.cpu(), tdq.cpu(), **bound)
    torch.testing.assert_close(ours.cpu(), torch.from_numpy(sp.y.T.copy()), **bound)


def test_never_evaluates_outside_the_interval_unlike_torchdiffeq():
    prob = Decay("cpu")
    for ts in ([0.0, 0.45, 1.3], [1.3, 0.45, 0.0]):
        seen = []
        f = lambda t, y: seen.append(float(t)) or prob.f(t, y)
        odeint_dopri5(f, prob.y0, ts, rtol=1e-6, atol=1e-6)
        assert min(ts) <= min(seen) and max(seen) <= max(ts)
    # the property is not automatic: torchdiffeq's dopri5 steps past the last time and
    # interpolates back
    seen = []
    odeint(
        lambda t, y: seen.append(float(t)) or prob.f(t, y),
        prob.y0,
        torch.tensor([0.0, 0.45, 1.3], dtype=F64),
        rtol=1e-6,
        atol=1e-6,
        method="dopri5",
    )
    assert max(seen) > 1.3
