"""Tests for su_notes.optim.multitask_loss beyond the notebook's checks.

- peers: LibMTL 1.1.5's `UW` (same trajectory of s under SGD, optimum s* = log L, same θ-gradient, same returned
  weights); DB-MTL with β = 0 run through LibMTL 1.1.5's own per-task gradient machinery (`AbsWeighting`), since
  1.1.5 has no `DB_MTL` class (it was added to LibMTL later): its update must point along ours (cosine 1);
- independent references: `torch.func.grad` of Σ log L for the real-time gradient, the Jacobian
  (`torch.autograd.functional.jacobian`) for the gradient norms, scipy's entropy and numpy's variance for
  `prior_loss`;
- hypothesis properties: scale invariance (real-time and grad-norm), shift invariance (grad-norm), value T;
- module reductions, `state_dict` round trips, dtype/device following; bad input of every public name (clear
  error naming the argument, nothing mutated); no host reads (meta-device run on the CPU) and no host sync on CUDA
  (`@pytest.mark.cuda`).
"""

import copy
import io
import math
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, strategies as st
from scipy import stats

from peers import load_submodule
from su_notes.core import assert_close
from su_notes.optim.multitask_loss import (
    RealtimeLoss,
    UncertaintyWeighting,
    grad_norm_weights,
    prior_loss,
    realtime_loss,
    uncertainty_weighted_loss,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class Shared(nn.Module):
    "A shared trunk and T linear heads; `losses(x, Y)` gives T MSE losses with task scales `scales`."

    def __init__(self, T=3, d=6, h=8, seed=0, dtype=torch.float64):
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(d, h), nn.Tanh())
        self.heads = nn.Linear(h, T)
        self.to(dtype)

    def losses(self, x, Y):
        return ((self.heads(self.trunk(x)).T - Y) ** 2).mean(1)  # (T,)


def data(T=3, n=32, d=6, seed=1, device="cpu", dtype=torch.float64, scales=(0.01, 1.0, 100.0)):
    g = gen(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    Y = torch.randn(T, n, generator=g, dtype=torch.float64) * torch.tensor(scales[:T], dtype=torch.float64)[:, None]
    return x.to(device, dtype), Y.to(device, dtype)


def flat_grad(out, params):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params, retain_graph=True)])


# ---------------------------------------------------------------- peer: LibMTL 1.1.5 UW
def libmtl_uw(T, device="cpu"):
    UW = load_submodule("LibMTL.weighting.UW").UW
    w = UW()
    w.task_num, w.device = T, device
    w.init_param()
    return w


def test_libmtl_uw_trajectory_and_optimum():
    L = torch.tensor([3e-3, 0.7, 40.0])  # fixed losses, float32 like LibMTL
    peer, ours = libmtl_uw(3), UncertaintyWeighting(3, init=-0.5)
    # exact: both start from the same constant −0.5 in float32
    assert_close(ours.log_vars.detach(), peer.loss_scale.detach(), rtol=0, atol=0)
    opt_p, opt_o = (
        torch.optim.SGD([peer.loss_scale], lr=0.5),
        torch.optim.SGD(ours.parameters(), lr=0.5),
    )
    for step in range(400):
        opt_p.zero_grad()
        opt_o.zero_grad()
        w_peer = peer.backward(L.clone())  # LibMTL calls loss.backward() itself
        ours(L.clone()).backward()
        if step < 50:  # identical steps, then the same limit
            assert_close(ours.log_vars.grad, peer.loss_scale.grad, rtol=1e-6, atol=1e-7)
            assert_close(ours.weights, torch.as_tensor(w_peer), rtol=1e-6, atol=0)
        opt_p.step()
        opt_o.step()
    assert_close(peer.loss_scale.detach(), L.log(), rtol=0, atol=1e-5)  # LibMTL's optimum s* = log L
    assert_close(ours.log_vars.detach(), L.log(), rtol=0, atol=1e-5)
    assert_close(ours.log_vars.detach(), peer.loss_scale.detach(), rtol=0, atol=1e-5)


def test_libmtl_uw_same_model_gradient():
    x, Y = data(dtype=torch.float32)
    m1 = Shared(dtype=torch.float32)
    m2 = copy.deepcopy(m1)
    peer, ours = libmtl_uw(3), UncertaintyWeighting(3, init=-0.5)
    with torch.no_grad():
        peer.loss_scale.copy_(torch.tensor([-2.0, 0.3, 4.0]))
        ours.log_vars.copy_(peer.loss_scale)
    peer.backward(m1.losses(x, Y))
    ours(m2.losses(x, Y)).backward()
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert_close(p2.grad, p1.grad, rtol=1e-5, atol=1e-7)
    assert_close(ours.log_vars.grad, peer.loss_scale.grad, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- peer: DB-MTL(β=0) on LibMTL's machinery
def db_mtl_class():
    "DB-MTL's backward (Lin et al. 2023, eqs. of the log transform, EMA and max-norm rescaling) on LibMTL 1.1.5."
    Abs = load_submodule("LibMTL.weighting.abstract_weighting").AbsWeighting

    class DBMTL(Abs):
        def __init__(self, model, T, beta=0.0, beta_sigma=0.0):
            super().__init__()
            self.model, self.task_num, self.device, self.rep_grad = model, T, "cpu", False
            self.beta, self.beta_sigma, self.t = beta, beta_sigma, 0
            self._compute_grad_dim()
            self.buffer = torch.zeros(T, self.grad_dim)

        def get_share_params(self):
            return self.model.trunk.parameters()

        def zero_grad_share_params(self):
            self.model.trunk.zero_grad(set_to_none=False)

        def backward(self, losses, **kwargs):
            self.t += 1
            G = self._compute_grad(torch.log(losses + 1e-8), mode="backward")  # (T, P): ∇ log(L_i + ε)
            self.buffer = G + self.beta / self.t**self.beta_sigma * (self.buffer - G)  # EMA; = G at β = 0
            n = self.buffer.norm(dim=-1)
            self._reset_grad(((n.max() / (n + 1e-8))[:, None] * self.buffer).sum(0))

    return DBMTL


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shift", [0.0, 5.0])
def test_db_mtl_beta0_direction(seed, shift):
    x, Y = data(seed=seed + 10, dtype=torch.float32)
    model = Shared(seed=seed, dtype=torch.float32)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # LibMTL's _reset_grad writes into .grad
    peer = db_mtl_class()(model, 3)
    peer.backward(model.losses(x, Y) + shift)
    d_peer = torch.cat([p.grad.reshape(-1) for p in model.trunk.parameters()])
    trunk = list(model.trunk.parameters())
    L = model.losses(x, Y) + shift
    alpha = grad_norm_weights(L, trunk)
    ours = flat_grad((alpha * L).sum(), trunk)
    cos = torch.nn.functional.cosine_similarity(d_peer.double(), ours.double(), dim=0).item()
    assert 1 - cos < 1e-6, cos
    # magnitude: DB-MTL scales the sum of unit gradients by the largest ‖∇ log(L_j + ε)‖
    G = torch.stack([flat_grad(l, trunk) / (l.detach() + 1e-8) for l in L])
    gap = (d_peer - G.norm(dim=1).max() * ours).norm() / d_peer.norm()  # float32 sums
    assert gap < 1e-5, gap


def test_db_mtl_with_ema_is_not_the_grad_norm_direction():
    "The β = 0 check can fail: with the EMA on (β > 0) and a changed batch the directions differ."
    model = Shared(seed=3, dtype=torch.float32)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    peer = db_mtl_class()(model, 3, beta=0.9, beta_sigma=0.0)
    x1, Y1 = data(seed=20, dtype=torch.float32)
    x2, Y2 = data(seed=21, dtype=torch.float32)
    peer.backward(model.losses(x1, Y1))
    peer.backward(model.losses(x2, Y2))
    d_peer = torch.cat([p.grad.reshape(-1) for p in model.trunk.parameters()])
    trunk = list(model.trunk.parameters())
    L = model.losses(x2, Y2)
    ours = flat_grad((grad_norm_weights(L, trunk) * L).sum(), trunk)
    assert 1 - torch.nn.functional.cosine_similarity(d_peer, ours, dim=0).item() > 1e-3


# ---------------------------------------------------------------- independent references
def test_realtime_gradient_matches_torch_func(device):
    x, Y = data(device=device)
    model = Shared().to(device)
    params = {k: v.detach() for k, v in model.named_parameters()}

    ref = torch.func.grad(lambda p: torch.log(_losses_f(model, p, x, Y)).sum())(params)  # ∇ Σ log L_i
    out = realtime_loss(model.losses(x, Y))
    # exact: x/x = 1 in IEEE arithmetic and 1 + 1 + 1 = 3
    assert out.item() == 3.0 and out.dtype == torch.float64 and out.device.type == torch.device(device).type
    out.backward()
    for k, p in model.named_parameters():
        assert_close(p.grad, ref[k], rtol=1e-12, atol=1e-14)


def _losses_f(model, p, x, Y):
    "The model's losses as a pure function of its parameter dict (for torch.func)."
    h = torch.tanh(x @ p["trunk.0.weight"].T + p["trunk.0.bias"])
    return ((h @ p["heads.weight"].T + p["heads.bias"]).T - Y).pow(2).mean(1)


def test_realtime_sequence_input_and_module_reductions(device):
    x, Y = data(device=device)
    model = Shared().to(device)
    L = model.losses(x, Y)
    g_vec = flat_grad(realtime_loss(L), list(model.parameters()))
    g_seq = flat_grad(realtime_loss([l for l in L.unbind()]), list(model.parameters()))
    # exact: stacking the unbound scalars gives the same values, and both backward passes run the same ops
    assert_close(g_seq, g_vec, rtol=0, atol=0)
    # exact: 'sum' is the same (L / sg(L)).sum() as realtime_loss
    assert_close(flat_grad(RealtimeLoss()(L), list(model.parameters())), g_vec, rtol=0, atol=0)
    # 1/3 enters the backward pass instead of dividing the result: rounding, and cancellation near 0
    assert_close(
        flat_grad(RealtimeLoss("mean")(L), list(model.parameters())),
        g_vec / 3,
        rtol=1e-12,
        atol=1e-14 * g_vec.abs().max().item(),
    )
    none = RealtimeLoss("none")(L)
    # exact: every term is x/x = 1
    assert none.shape == (3,) and torch.equal(none.detach(), torch.ones(3, dtype=L.dtype, device=L.device))
    assert "reduction='mean'" in repr(RealtimeLoss("mean"))


def test_grad_norm_weights_match_jacobian(device):
    x, Y = data(device=device)
    model = Shared().to(device)
    trunk = list(model.trunk.parameters())
    names = [k for k, _ in model.trunk.named_parameters()]

    def losses_of(*ps):
        p = {f"trunk.{k}": v for k, v in zip(names, ps)}
        p.update({k: v for k, v in model.named_parameters() if k.startswith("heads")})
        return _losses_f(model, p, x, Y)

    J = torch.autograd.functional.jacobian(losses_of, tuple(t.detach() for t in trunk))
    norms = torch.cat([j.reshape(3, -1) for j in J], dim=1).norm(dim=1)
    a = grad_norm_weights(model.losses(x, Y), trunk)
    assert a.dtype == torch.float64 and not a.requires_grad and a.shape == (3,)
    assert_close(a, 1 / norms, rtol=1e-12, atol=0)
    assert_close(grad_norm_weights(model.losses(x, Y), trunk, eps=0.5), 1 / (norms + 0.5), rtol=1e-12, atol=0)
    assert all(p.grad is None for p in model.parameters())  # autograd.grad only, no .grad writes


def test_grad_norm_weights_unused_and_unreached_params():
    x, Y = data()
    model = Shared()
    spare = torch.zeros(4, dtype=torch.float64, requires_grad=True)  # reached by no loss
    L = model.losses(x, Y)
    a = grad_norm_weights(L, list(model.trunk.parameters()) + [spare])
    assert_close(a, grad_norm_weights(model.losses(x, Y), model.trunk.parameters()), rtol=1e-14, atol=0)
    a2 = grad_norm_weights(L, [spare])
    assert torch.isinf(a2).all() and torch.isfinite(grad_norm_weights(L, [spare], eps=1e-3)).all()
    # the graph is retained: the weighted loss can be back-propagated afterwards
    (a * L).sum().backward()
    assert all(p.grad is not None for p in model.trunk.parameters())


def test_prior_loss_vs_scipy_numpy():
    g = gen(5)
    y = torch.multinomial(torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0]), 1000, True, generator=g)
    counts = np.bincount(y.numpy(), minlength=5)
    assert abs(prior_loss(y, num_classes=5).item() - stats.entropy(counts)) < 1e-6
    assert abs(prior_loss(y).item() - stats.entropy(counts[counts > 0])) < 1e-6  # K = max label + 1 = 4
    Yr = torch.randn(200, 4, generator=g, dtype=torch.float64) * 7 + 3
    assert abs(prior_loss(Yr, "regression").item() - np.var(Yr.numpy(), axis=0).mean()) < 1e-12
    assert abs(prior_loss(Yr[:, 0], "regression").item() - np.var(Yr[:, 0].numpy())) < 1e-12
    assert prior_loss(Yr, "regression").dtype == torch.float64
    assert prior_loss(torch.zeros(10, dtype=torch.long), num_classes=3).item() == 0.0


def test_uncertainty_weighted_loss_closed_form(device):
    L = torch.tensor([1e-3, 2.0, 5e3], dtype=torch.float64, device=device)
    s = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, device=device)
    ref = L / (2 * s.exp()) + s / 2
    tol = 64 * torch.finfo(torch.float64).eps  # e^(-s) vs 1/e^s: a few ulp per term
    assert_close(uncertainty_weighted_loss(L, s, "none"), ref, rtol=tol, atol=0)
    assert_close(uncertainty_weighted_loss(L, s), ref.sum(), rtol=tol, atol=0)
    assert_close(uncertainty_weighted_loss(list(L.unbind()), s, "mean"), ref.mean(), rtol=tol, atol=0)
    at_opt = uncertainty_weighted_loss(L, L.log())
    assert_close(at_opt, 0.5 * L.log().sum() + 1.5, rtol=tol, atol=tol)
    # the optimum is a minimum: perturbing s in any coordinate increases the loss
    for i in range(3):
        for e in (-1e-3, 1e-3):
            s2 = L.log().clone()
            s2[i] += e
            assert uncertainty_weighted_loss(L, s2) > at_opt


def test_uncertainty_weighting_module_state_dict_and_dtype(device):
    uw = UncertaintyWeighting(3, init=0.25, reduction="mean")
    # exact: filled with the same constant
    assert uw.log_vars.dtype == torch.float32 and torch.equal(uw.log_vars.detach(), torch.full((3,), 0.25))
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([0.1, -2.0, 3.0]))
    buf = io.BytesIO()
    torch.save(uw.state_dict(), buf)
    buf.seek(0)
    uw2 = UncertaintyWeighting(3, reduction="mean")
    uw2.load_state_dict(torch.load(buf))
    assert torch.equal(uw2.log_vars, uw.log_vars)  # exact: a saved copy
    uw2 = uw2.to(device)
    L = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, device=device)
    out = uw2(L)
    assert out.dtype == torch.float64 and out.device == L.device
    assert_close(out, uncertainty_weighted_loss(L, uw2.log_vars.double()).div(3), rtol=1e-7, atol=0)
    # exact: the same expression on the same tensor
    assert_close(uw2.weights, 0.5 * torch.exp(-uw2.log_vars.detach()), rtol=0, atol=0)
    assert "num_tasks=3" in repr(uw2)


# ---------------------------------------------------------------- hypothesis properties
scales = st.lists(st.floats(1e-4, 1e4), min_size=3, max_size=3)


@given(c=scales, seed=st.integers(0, 10_000))
def test_property_scale_invariance(c, seed):
    x, Y = data(seed=seed)
    model = Shared(seed=seed % 7)
    ps = list(model.trunk.parameters())
    ct = torch.tensor(c, dtype=torch.float64)
    L = model.losses(x, Y)
    assert realtime_loss(ct * L).item() == 3.0  # exact: x/x = 1, 1 + 1 + 1 = 3
    rt, rt_c = flat_grad(realtime_loss(L), ps), flat_grad(realtime_loss(ct * L), ps)
    assert_close(rt_c, rt, rtol=1e-10, atol=1e-12 * rt.norm().item())
    gn = flat_grad((grad_norm_weights(L, ps) * L).sum(), ps)
    Lc = ct * model.losses(x, Y)
    gn_c = flat_grad((grad_norm_weights(Lc, ps) * Lc).sum(), ps)
    assert_close(gn_c, gn, rtol=1e-10, atol=1e-12)


@given(b=st.lists(st.floats(-1e-3, 1e3), min_size=3, max_size=3), seed=st.integers(0, 10_000))
def test_property_shift(b, seed):
    x, Y = data(seed=seed)
    model = Shared(seed=seed % 7)
    ps = list(model.trunk.parameters())
    bt = torch.tensor(b, dtype=torch.float64)
    L = model.losses(x, Y)
    gn = flat_grad((grad_norm_weights(L, ps) * L).sum(), ps)
    Lb = model.losses(x, Y) + bt
    assert_close(flat_grad((grad_norm_weights(Lb, ps) * Lb).sum(), ps), gn, rtol=1e-10, atol=1e-12)
    # the real-time update reweights task i by L_i / (L_i + b_i): equal to the closed form
    Ld = L.detach()
    G = torch.stack([flat_grad(l, ps) for l in L])
    assert_close(flat_grad(realtime_loss(Lb), ps), (G / (Ld + bt)[:, None]).sum(0), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- bad input (clear errors, nothing mutated)
def _bad_loss_inputs():
    ok = torch.tensor([1.0, 2.0])
    return [
        (TypeError, [1.0, 2.0], "losses[0]"),  # floats, not tensors
        (TypeError, "ab", "losses"),
        (TypeError, torch.tensor([1, 2]), "losses"),  # integer dtype
        (ValueError, torch.tensor(1.0), "losses"),  # 0-dim
        (ValueError, torch.ones(2, 2), "losses"),  # 2-D
        (ValueError, torch.ones(0), "losses"),
        (ValueError, [], "losses"),
        (ValueError, [ok[0], torch.ones(2)], "losses[1]"),  # not a scalar
        (ValueError, [ok[0], torch.tensor(1.0, dtype=torch.float64)], "losses[1]"),  # mixed dtype
    ]


@pytest.mark.parametrize("err, bad, name", _bad_loss_inputs())
def test_bad_losses_every_function(err, bad, name):
    snap = copy.deepcopy(bad)
    p = torch.zeros(2, requires_grad=True)
    calls = [
        lambda: realtime_loss(bad),
        lambda: RealtimeLoss()(bad),
        lambda: grad_norm_weights(bad, [p]),
        lambda: uncertainty_weighted_loss(bad, torch.zeros(2)),
        lambda: UncertaintyWeighting(2)(bad),
    ]
    for call in calls:
        with pytest.raises(err, match=re.escape(f"Invalid {name}:")):
            call()
    if isinstance(bad, torch.Tensor):
        assert torch.equal(bad, snap)
    assert p.grad is None


def test_bad_other_arguments():
    p = torch.zeros(3, requires_grad=True)
    L = (p * torch.tensor([1.0, 2.0, 3.0])).exp()  # (3,) with a graph
    with pytest.raises(TypeError, match="Invalid params"):
        grad_norm_weights(L, p)
    with pytest.raises(ValueError, match="Invalid params"):
        grad_norm_weights(L, [])
    with pytest.raises(ValueError, match=r"Invalid params\[0\]"):
        grad_norm_weights(L, [torch.zeros(3)])
    with pytest.raises(TypeError, match=r"Invalid params\[0\]"):
        grad_norm_weights(L, [1.0])
    for eps, err in (
        (-1.0, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ("0", TypeError),
    ):
        with pytest.raises(err, match="Invalid eps"):
            grad_norm_weights(L, [p], eps=eps)
    with pytest.raises(ValueError, match="Invalid losses"):
        grad_norm_weights(L.detach(), [p])
    s = torch.zeros(3)
    with pytest.raises(ValueError, match="Invalid log_vars"):
        uncertainty_weighted_loss(L, torch.zeros(2))
    with pytest.raises(ValueError, match="Invalid log_vars"):
        uncertainty_weighted_loss(L, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="Invalid log_vars"):
        uncertainty_weighted_loss(L, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="Invalid reduction"):
        uncertainty_weighted_loss(L, s, "avg")
    for kw, err, name in (
        (dict(num_tasks=0), ValueError, "num_tasks"),
        (dict(num_tasks=2.0), TypeError, "num_tasks"),
        (dict(num_tasks=True), TypeError, "num_tasks"),
        (dict(num_tasks=2, init=math.inf), ValueError, "init"),
        (dict(num_tasks=2, reduction="max"), ValueError, "reduction"),
    ):
        with pytest.raises(err, match=f"Invalid {name}"):
            UncertaintyWeighting(**kw)
    with pytest.raises(ValueError, match="Invalid reduction"):
        RealtimeLoss("avg")
    assert p.grad is None and torch.equal(s, torch.zeros(3))


def test_bad_prior_loss():
    y = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="Invalid kind"):
        prior_loss(y, "ranking")
    with pytest.raises(TypeError, match="Invalid targets"):
        prior_loss([0, 1])
    with pytest.raises(TypeError, match="Invalid targets"):
        prior_loss(torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="Invalid targets"):
        prior_loss(torch.tensor([True, False]))
    with pytest.raises(ValueError, match="Invalid targets"):
        prior_loss(torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="Invalid targets"):
        prior_loss(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="Invalid targets"):
        prior_loss(torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="Invalid targets"):
        prior_loss(y, num_classes=2)
    with pytest.raises(ValueError, match="Invalid num_classes"):
        prior_loss(y, num_classes=0)
    with pytest.raises(TypeError, match="Invalid targets"):
        prior_loss(y, "regression")
    with pytest.raises(ValueError, match="Invalid targets"):
        prior_loss(torch.zeros(2, 2, 2), "regression")
    assert torch.equal(y, torch.tensor([0, 1, 2]))


# ---------------------------------------------------------------- no host syncs
def test_no_host_reads_on_meta_device():
    "Meta tensors have no values, so any host read (.item(), bool(), data-dependent if) raises: none happens."
    w = torch.randn(3, 4, device="meta", requires_grad=True)
    L = (torch.randn(5, 4, device="meta") @ w.T).pow(2).mean(0)  # (3,) losses without values
    with pytest.raises(RuntimeError):
        L[0].item()  # the probe works
    a = grad_norm_weights(L, [w], eps=1e-8)
    total = (
        realtime_loss(L)
        + (a * L).sum()
        + UncertaintyWeighting(3).to("meta")(L)
        + RealtimeLoss("mean")(list(L.unbind()))
        + uncertainty_weighted_loss(L, torch.zeros(3, device="meta"))
    )
    total.backward()
    assert a.shape == (3,) and w.grad.device.type == "meta"


# ---------------------------------------------------------------- CUDA: no host syncs
@pytest.mark.cuda
def test_no_host_sync_on_cuda():
    x, Y = data(device="cuda", dtype=torch.float32)
    model = Shared(dtype=torch.float32).cuda()
    uw = UncertaintyWeighting(3).cuda()
    L = model.losses(x, Y)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        a = grad_norm_weights(L, model.trunk.parameters())
        total = realtime_loss(L) + (a * L).sum() + uw(L) + RealtimeLoss("mean")(list(L.unbind()))
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()
