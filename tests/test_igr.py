"""Tests for su_notes.optim.igr beyond the notebook's checks.

Independent references that share no code with the module: the modified-flow drift written with `torch.func`
(forward-over-reverse `jvp` of `grad`, no double backward), integrated by torchdiffeq's `odeint`; a central
finite-difference Hessian-vector product of `torch.func.grad`; explicit Hessians of random quadratics
(hypothesis). Then the penalty inside a real training step (`nn.Module`, `.grad`), parameters and earlier
graphs left intact, float32, and bad input for every public function (clear errors, nothing mutated).
Numerical tests run on `--device` (default cpu).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torchdiffeq import odeint

from su_notes.optim.igr import PENALTY_MODES, grad_norm_penalty, igr_vector_field, modified_loss

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def toy_problem(device, dtype=F64, n=48, d=5, hidden=6, seed=0):
    "A tanh MLP regression on random data: flat loss L(θ), θ0 and the shapes (everything on `device`)."
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=F64).to(device, dtype)
    Y = torch.sin(X @ torch.randn(d, 2, generator=gen, dtype=F64).to(device, dtype))
    shapes = [(d, hidden), (hidden,), (hidden, 2), (2,)]
    sizes = [math.prod(s) for s in shapes]

    def unflat(th):
        return [c.view(s) for c, s in zip(th.split(sizes), shapes)]

    def loss(th):
        W1, b1, W2, b2 = unflat(th)
        return 0.5 * ((torch.tanh(X @ W1 + b1) @ W2 + b2 - Y) ** 2).sum(-1).mean()

    th0 = (0.7 * torch.randn(sum(sizes), generator=gen, dtype=F64)).to(device, dtype)
    return loss, th0, unflat


def peer_modified_drift(loss, lr):
    "-(∇L + (γ/2)H∇L) with H∇L by forward-over-reverse jvp (torch.func), no double backward."
    grad = torch.func.grad(loss)

    def f(t, th):
        g = grad(th)
        _, hg = torch.func.jvp(grad, (th,), (g,))
        return -(g + 0.5 * lr * hg)

    return f


def peer_hvp_central(loss, th, v, eps=1e-5):
    "Central difference of torch.func.grad along v: (∇L(θ + εv) − ∇L(θ − εv)) / 2ε ≈ Hv."
    grad = torch.func.grad(loss)
    return (grad(th + eps * v) - grad(th - eps * v)) / (2 * eps)


# ---------------------------------------------------------------- peers: torch.func drift + torchdiffeq


@pytest.mark.parametrize("lr", [0.0, 0.05, 0.3])
def test_vector_field_matches_torch_func_drift(lr, device):
    loss, th0, _ = toy_problem(device)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        th = th0 + 0.3 * torch.randn(th0.shape, generator=gen, dtype=F64).to(device)
        ours = igr_vector_field(loss, lr)(0.0, th)
        torch.testing.assert_close(ours, peer_modified_drift(loss, lr)(0.0, th), rtol=1e-11, atol=1e-13)
        assert ours.shape == th.shape and ours.device == th.device


def test_gd_is_second_order_close_to_odeint_of_the_peer_modified_flow(device):
    # GD against odeint of the peer's drift: slope 2 in γ; against the plain flow: slope 1
    loss, th0, _ = toy_problem(device)
    T = 1.0
    tT = torch.tensor([0.0, T], dtype=F64, device=device)
    plain = odeint(peer_modified_drift(loss, 0.0), th0, tT, rtol=1e-10, atol=1e-12)[-1]
    grad = torch.func.grad(loss)
    gammas, e1, e2 = [0.1, 0.05, 0.025], [], []
    for gm in gammas:
        th = th0.clone()
        for _ in range(round(T / gm)):
            th = th - gm * grad(th)
        mod = odeint(peer_modified_drift(loss, gm), th0, tT, rtol=1e-10, atol=1e-12)[-1]
        ours = odeint(igr_vector_field(loss, gm), th0, tT, rtol=1e-10, atol=1e-12)[-1]
        torch.testing.assert_close(ours, mod, rtol=1e-8, atol=1e-9)
        e1.append((th - plain).norm().item())
        e2.append((th - mod).norm().item())
    s1 = np.polyfit(np.log(gammas), np.log(e1), 1)[0]
    s2 = np.polyfit(np.log(gammas), np.log(e2), 1)[0]
    assert abs(s1 - 1) < 0.15 and abs(s2 - 2) < 0.2, (s1, s2, e1, e2)


# ---------------------------------------------------------------- peer: finite-difference HVP


@pytest.mark.parametrize("mode", PENALTY_MODES)
def test_penalty_gradient_matches_central_difference_hvp(mode, device):
    loss, th0, _ = toy_problem(device)
    w = 0.7
    th = th0.clone().requires_grad_(True)
    pen = grad_norm_penalty(lambda: loss(th), th, w, mode=mode)
    (got,) = torch.autograd.grad(pen, th)
    g = torch.func.grad(loss)(th0)
    # ‖g‖² summed in another order (per-tensor norms vs a dot product): rounding of a short sum
    torch.testing.assert_close(pen.detach(), w * g.dot(g), rtol=1e-12, atol=0)
    want = 2 * w * peer_hvp_central(loss, th0, g)
    tol = 1e-7 if mode == "double_backward" else 2e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol * want.abs().max().item())


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 6), w=st.floats(0.0, 3.0))
def test_quadratic_penalty_gradient_is_2wA_times_gradient(seed, d, w, device):
    # L = ½θᵀAθ + bᵀθ (A symmetric): ‖∇L‖² = ‖Aθ + b‖², ∇(w‖∇L‖²) = 2wA(Aθ + b), in both modes
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(d, d, generator=gen, dtype=F64)
    A, b = (M + M.T).to(device), torch.randn(d, generator=gen, dtype=F64).to(device)
    th = torch.randn(d, generator=gen, dtype=F64).to(device).requires_grad_(True)
    fn = lambda: 0.5 * th @ A @ th + b @ th
    r = (A @ th + b).detach()
    for mode in PENALTY_MODES:
        pen = grad_norm_penalty(fn, [th], w, mode=mode)
        (got,) = torch.autograd.grad(pen, th)
        torch.testing.assert_close(pen.detach(), w * r.dot(r), rtol=1e-12, atol=1e-14)
        scale = 1e-12 + (2 * w * A.abs().sum(1) * r.abs().max()).max().item()
        torch.testing.assert_close(got, 2 * w * A @ r, rtol=0, atol=2e-6 * scale)


def test_modified_loss_is_loss_plus_quarter_lr_penalty(device):
    loss, th0, _ = toy_problem(device)
    lr = 0.2
    for mode in PENALTY_MODES:
        th = th0.clone().requires_grad_(True)
        mod = modified_loss(lambda: loss(th), th, lr, mode=mode)
        g = torch.func.grad(loss)(th0)
        torch.testing.assert_close(mod.detach(), loss(th0) + lr / 4 * g.dot(g), rtol=1e-12, atol=0)
        (got,) = torch.autograd.grad(mod, th)
        want = g + lr / 2 * peer_hvp_central(loss, th0, g)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- in a training step


@pytest.mark.parametrize("mode", PENALTY_MODES)
def test_penalty_in_a_module_training_step(mode, device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3), nn.Linear(3, 3)).to(device, F64)
    unused = nn.Parameter(torch.ones(2, dtype=F64, device=device))  # not in the loss: zero contribution
    x, y = torch.randn(16, 4, dtype=F64, device=device), torch.randint(0, 3, (16,), device=device)
    closure = lambda: F.cross_entropy(model(x), y)
    params = list(model.parameters()) + [unused]
    before = [p.detach().clone() for p in params]
    loss = closure()  # graph built before the penalty call
    pen = grad_norm_penalty(closure, iter(params), 0.05, mode=mode)  # a generator of params is fine
    assert all(p.grad is None for p in params)  # .grad untouched by the call
    assert all(torch.equal(p, b) for p, b in zip(params, before))  # exact: restored from a copy
    (loss + pen).backward()  # no version-counter error
    names = [n for n, _ in model.named_parameters()]
    flat0 = torch.cat([p.detach().flatten() for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def flat_loss(th):
        ps = [c.view(s) for c, s in zip(th.split([math.prod(s) for s in shapes]), shapes)]
        return F.cross_entropy(torch.func.functional_call(model, dict(zip(names, ps)), (x,)), y)

    g = torch.func.grad(flat_loss)(flat0)
    want = g + 2 * 0.05 * peer_hvp_central(flat_loss, flat0, g)
    got = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
    assert unused.grad is None or torch.equal(unused.grad, torch.zeros_like(unused))


def test_zero_gradient_gives_zero_penalty_and_no_nan(device):
    th = torch.zeros(3, dtype=F64, device=device, requires_grad=True)
    fn = lambda: (th**2).sum()  # ∇L = 0 at θ = 0
    for mode in PENALTY_MODES:
        pen = grad_norm_penalty(fn, th, 1.0, mode=mode)
        (got,) = torch.autograd.grad(pen, th)
        # exact: ∇L = 0 exactly at θ = 0, so the penalty and its gradient are products with 0
        assert pen.item() == 0 and torch.equal(got, torch.zeros_like(got))


def test_float32(device):
    loss, th0, _ = toy_problem(device, dtype=torch.float32)
    loss64, th64, _ = toy_problem(device)
    ref = igr_vector_field(loss64, 0.1)(0.0, th64)
    for mode in PENALTY_MODES:
        out = igr_vector_field(loss, 0.1, mode=mode)(0.0, th0)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, rtol=5e-3, atol=5e-3 * ref.abs().max().item())


def test_explicit_eps(device):
    loss, th0, _ = toy_problem(device)
    th = th0.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(grad_norm_penalty(lambda: loss(th), th, 1.0), th)
    errs = []
    for eps in (1e-2, 1e-4):
        (got,) = torch.autograd.grad(grad_norm_penalty(lambda: loss(th), th, 1.0, "finite_diff", eps), th)
        errs.append(((got - ref).norm() / ref.norm()).item())
    assert errs[1] < errs[0] / 30, errs  # forward difference: error O(eps)


@pytest.mark.cuda
def test_no_host_sync_cuda():
    loss, th0, _ = toy_problem("cuda")
    th = th0.clone().requires_grad_(True)
    for mode in PENALTY_MODES:  # warm up (lazy CUDA init may sync)
        torch.autograd.grad(grad_norm_penalty(lambda: loss(th), th, 0.1, mode=mode), th)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for mode in PENALTY_MODES:
            pen = grad_norm_penalty(lambda: loss(th), th, 0.1, mode=mode)
            torch.autograd.grad(pen, th)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ---------------------------------------------------------------- bad input, nothing mutated


def _setup():
    th = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    return th, (lambda: (th**4).sum())


@pytest.mark.parametrize("fn", ["grad_norm_penalty", "modified_loss"])
def test_bad_input(fn):
    th, closure = _setup()
    f = {
        "grad_norm_penalty": lambda *a, **k: grad_norm_penalty(*a, **k),
        "modified_loss": lambda *a, **k: modified_loss(*a, **k),
    }[fn]
    x = 0.1
    cases = [
        ((None, th, x), TypeError, "Invalid loss_fn"),
        ((closure, 3.0, x), TypeError, "Invalid params"),
        ((closure, [], x), ValueError, "Invalid params"),
        ((closure, [th, "a"], x), TypeError, "Invalid params"),
        ((closure, torch.tensor([1, 2]), x), TypeError, "Invalid params"),
        ((closure, torch.ones(2, dtype=F64), x), ValueError, "must require grad"),
        ((closure, th, float("nan")), ValueError, "nan"),
        ((closure, th, True), TypeError, "True"),
        ((closure, th, "0.1"), TypeError, "0.1"),
        ((closure, th, x, "hvp"), ValueError, "Invalid mode: 'hvp'"),
        ((closure, th, x, "finite_diff", 0.0), ValueError, "Invalid eps: 0.0"),
        ((closure, th, x, "finite_diff", -1e-3), ValueError, "Invalid eps: -0.001"),
        ((lambda: th.detach().sum(), th, x), ValueError, "Invalid loss_fn"),
        ((lambda: th**2, th, x), ValueError, "scalar"),
        ((lambda: 1.0, th, x), ValueError, "Invalid loss_fn"),
    ]
    for args, err, msg in cases:
        with pytest.raises(err, match=None) as e:
            f(*args)
        assert msg in str(e.value), (args, str(e.value))
        # exact: bad input raises before anything is touched
        assert torch.equal(th.detach(), torch.tensor([1.0, -2.0], dtype=F64)) and th.grad is None
    name = "weight" if fn == "grad_norm_penalty" else "lr"
    with pytest.raises(ValueError, match=f"Invalid {name}: -0.5"):
        f(closure, th, -0.5)


def test_modified_loss_needs_positive_lr_penalty_accepts_zero():
    th, closure = _setup()
    with pytest.raises(ValueError, match="Invalid lr: 0.0"):
        modified_loss(closure, th, 0.0)
    assert grad_norm_penalty(closure, th, 0.0).item() == 0


def test_failing_closure_in_the_perturbed_call_restores_params():
    th = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return (th**4).sum()

    with pytest.raises(RuntimeError, match="boom"):
        grad_norm_penalty(closure, th, 1.0, "finite_diff")
    # exact: restored from a saved copy
    assert torch.equal(th.detach(), torch.tensor([1.0, -2.0], dtype=F64))


def test_vector_field_bad_input():
    loss = lambda th: (th**2).sum()
    with pytest.raises(TypeError, match="Invalid loss"):
        igr_vector_field("L")
    with pytest.raises(ValueError, match="Invalid lr: -0.1"):
        igr_vector_field(loss, -0.1)
    with pytest.raises(TypeError, match="Invalid lr: None"):
        igr_vector_field(loss, None)
    with pytest.raises(ValueError, match="Invalid mode"):
        igr_vector_field(loss, 0.1, "exact")
    f = igr_vector_field(loss, 0.1)
    with pytest.raises(ValueError, match="Invalid theta"):
        f(0.0, torch.ones(2, 3, dtype=F64))
    with pytest.raises(TypeError, match="Invalid theta"):
        f(0.0, [1.0, 2.0])
    with pytest.raises(TypeError, match="Invalid theta"):
        f(0.0, torch.tensor([1, 2]))
    th = torch.ones(3, dtype=F64)
    f(0.0, th)
    assert torch.equal(th, torch.ones(3, dtype=F64)) and not th.requires_grad
