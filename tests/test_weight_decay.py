"""Tests for su_notes.optim.weight_decay beyond the notebook's checks.

- `AdamW` against the peer `torch.optim.AdamW` (the fixed signature's contract): per step, both paths, dtypes,
  param groups, maximize, closures, parameters without gradients, hypothesis over hyper-parameters and shapes;
- `state_dict` round trips through a file, and state dicts exchanged with `torch.optim.AdamW` in both directions;
- SGD + L2 ≡ `torch.optim.SGD(weight_decay)` and Adam + L2 ≠ AdamW (the post's point), with peers from torch;
- weight-scale shifts: outputs invariant (hypothesis), the invariant penalty unchanged, L2's minimum over shifts
  against scipy's BFGS (an independent minimiser, not our closed form);
- bad input of every public function: clear TypeError/ValueError naming the argument, nothing mutated.
"""

import copy
import io
import math

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, strategies as st

from su_notes.core import assert_close
from su_notes.optim.weight_decay import (
    AdamW,
    adamw,
    balanced_gammas,
    l2_penalty,
    min_l2_over_shifts,
    shift_weight_scales,
    weight_matrices,
    weissi_penalty,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def mlp(seed=0, dtype=torch.float32, device="cpu", sizes=(6, 8, 5, 3)):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).to(device)


def twin_runs(
    opt_kw,
    n_steps=25,
    dtype=torch.float32,
    device="cpu",
    groups=False,
    ref_cls=torch.optim.AdamW,
    ours_cls=AdamW,
    closure=False,
):
    "Same model, same batches, ours vs the peer; returns the largest |Δθ| over all steps."
    a, b = mlp(dtype=dtype, device=device), mlp(dtype=dtype, device=device)

    def params(m):
        if not groups:
            return m.parameters()
        return [
            {"params": m[0].parameters(), "lr": 3e-3, "weight_decay": 0.3},
            {"params": [*m[2].parameters(), *m[4].parameters()], "betas": (0.8, 0.99)},
        ]

    oa, ob = ours_cls(params(a), **opt_kw), ref_cls(params(b), **opt_kw)
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    for k in range(n_steps):
        x = torch.randn(16, 6, generator=g, dtype=torch.float64).to(device, dtype)
        t = torch.randint(0, 3, (16,), generator=g).to(device)
        for m, o in ((a, oa), (b, ob)):

            def loss_fn():
                o.zero_grad()
                loss = F.cross_entropy(m(x), t)
                loss.backward()
                return loss

            if closure:
                o.step(loss_fn)
            else:
                loss_fn()
                o.step()
        worst = max(worst, max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())))
    return worst, a, b, oa, ob


# --------------------------------------------------------------------------- peer: torch.optim.AdamW
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(lr=1e-2, weight_decay=0.0),
        dict(lr=3e-3, weight_decay=0.7, eps=1e-6),
        dict(betas=(0.0, 0.5), maximize=True),
        dict(lr=0.0),
    ],
)
def test_matches_torch_adamw(foreach, dtype, kw, device):
    worst, *_ = twin_runs({**kw, "foreach": foreach}, dtype=dtype, device=device)
    assert worst <= 1e-7, worst


@pytest.mark.parametrize("foreach", [False, True])
def test_param_groups_and_closure(foreach, device):
    worst, a, b, oa, ob = twin_runs({"foreach": foreach}, groups=True, closure=True, device=device)
    assert worst <= 1e-7
    assert oa.param_groups[0]["lr"] == 3e-3 and oa.param_groups[1]["betas"] == (0.8, 0.99)
    assert oa.param_groups[1]["weight_decay"] == 1e-2  # the fixed default


def test_foreach_equals_single_tensor_bitwise():
    "Exact on CPU: the _foreach_ kernels run the per-tensor ops in the same order."
    _, a, _, _, _ = twin_runs({"foreach": True}, ref_cls=AdamW)
    _, b, _, _, _ = twin_runs({"foreach": False}, ref_cls=AdamW)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_defaults_are_the_fixed_signature():
    import inspect

    sig = inspect.signature(AdamW.__init__)
    names = list(sig.parameters)[1:6]
    assert names == ["params", "lr", "betas", "eps", "weight_decay"]
    assert [sig.parameters[n].default for n in names[1:]] == [1e-3, (0.9, 0.999), 1e-8, 1e-2]
    p = torch.zeros(2, requires_grad=True)
    assert AdamW([p]).defaults["weight_decay"] == torch.optim.AdamW([p]).defaults["weight_decay"]


def test_params_without_grad_untouched_and_grad_not_written(device):
    p, q = (
        torch.randn(4, device=device, requires_grad=True),
        torch.randn(3, device=device, requires_grad=True),
    )
    q0 = q.detach().clone()
    opt = AdamW([p, q], maximize=True)
    p.grad = torch.ones_like(p)
    g0 = p.grad.clone()
    opt.step()
    assert torch.equal(q.detach(), q0) and q not in opt.state
    assert torch.equal(p.grad, g0)  # maximize does not negate p.grad


@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4),
    lr=st.floats(0, 0.1),
    wd=st.floats(0, 2),
    b1=st.floats(0, 0.99),
    b2=st.floats(0, 0.9999),
    eps=st.floats(1e-10, 1e-3),
    foreach=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_matches_torch(shapes, lr, wd, b1, b2, eps, foreach, seed):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    a = [p.clone().requires_grad_() for p in ps]
    b = [p.clone().requires_grad_() for p in ps]
    kw = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=foreach)
    oa, ob = AdamW(a, **kw), torch.optim.AdamW(b, **kw)
    for _ in range(4):
        for x, y in zip(a, b):
            gr = torch.randn(x.shape, generator=g, dtype=torch.float64)
            x.grad, y.grad = gr.clone(), gr.clone()
        oa.step()
        ob.step()
    # the same ops as torch's loop in the same order: equal in practice; a tolerance of ~50 ulp keeps
    # the test meaningful if torch reorders an expression
    for x, y in zip(a, b):
        assert_close(x.detach(), y.detach(), rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- state dicts
def test_state_dict_round_trip_through_a_file():
    _, a, _, oa, _ = twin_runs({}, n_steps=5)
    buf = io.BytesIO()
    torch.save({"model": a.state_dict(), "opt": oa.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    b = mlp()
    b.load_state_dict(ck["model"])
    ob = AdamW(b.parameters())
    ob.load_state_dict(ck["opt"])
    g = torch.Generator().manual_seed(7)
    for _ in range(5):
        x, t = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            F.cross_entropy(m(x), t).backward()
            o.step()
    # exact: the reloaded state and parameters are copies, stepped by the same kernels
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    st_ = ob.state_dict()["state"][0]
    assert (
        set(st_) == {"step", "exp_avg", "exp_avg_sq"}
        and st_["step"].item() == 10.0
        and st_["step"].device.type == "cpu"
    )


@pytest.mark.parametrize("direction", ["torch->ours", "ours->torch"])
def test_state_dict_exchange_with_torch(direction):
    src_cls, dst_cls = (torch.optim.AdamW, AdamW) if direction == "torch->ours" else (AdamW, torch.optim.AdamW)
    _, a, _, oa, _ = twin_runs({"weight_decay": 0.2}, n_steps=4, ours_cls=src_cls, ref_cls=src_cls)
    b = copy.deepcopy(a)
    # deep copy: state_dict() returns references and load_state_dict keeps the 0-dim `step` tensors as they are,
    # so loading a live state dict would make both optimizers increment the same counters
    ob = dst_cls(b.parameters())
    ob.load_state_dict(copy.deepcopy(oa.state_dict()))
    assert ob.param_groups[0]["weight_decay"] == 0.2
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        x, t = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            F.cross_entropy(m(x), t).backward()
            o.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_load_old_state_without_foreach_maximize():
    p = torch.randn(3, requires_grad=True)
    opt = AdamW([p])
    p.grad = torch.ones(3)
    opt.step()
    sd = opt.state_dict()
    for g in sd["param_groups"]:
        del g["foreach"], g["maximize"]
    opt2 = AdamW([p])
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["foreach"] is None and opt2.param_groups[0]["maximize"] is False
    p.grad = torch.ones(3)
    opt2.step()


# --------------------------------------------------------------------------- the post's comparisons, torch peers
def _train(make_opt, penalty=None, steps=30, seed=0, device="cpu"):
    m = mlp(seed, torch.float64, device)
    opt = make_opt(m.parameters())
    g = torch.Generator().manual_seed(5)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=g, dtype=torch.float64).to(device)
        t = torch.randint(0, 3, (32,), generator=g).to(device)
        opt.zero_grad()
        loss = F.cross_entropy(m(x), t)
        if penalty is not None:
            loss = loss + penalty(m)
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_sgd_l2_equals_sgd_weight_decay(device):
    lam = 0.03
    pen = lambda m: 0.5 * lam * sum(p.square().sum() for p in m.parameters())
    a = _train(lambda ps: torch.optim.SGD(ps, lr=0.2, weight_decay=lam), device=device)
    b = _train(lambda ps: torch.optim.SGD(ps, lr=0.2), penalty=pen, device=device)
    c = _train(lambda ps: torch.optim.SGD(ps, lr=0.2), device=device)
    # float64, 30 steps: autograd's λθ and SGD's add(θ, alpha=λ) round differently, ~1e-16 per step
    assert_close(a, b, rtol=1e-11, atol=1e-12)
    assert (a - c).abs().max() > 1e-3


def test_adam_l2_differs_from_adamw(device):
    lam = 0.05
    l2 = _train(lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=lam), device=device)
    pen = _train(
        lambda ps: torch.optim.Adam(ps, lr=1e-2),
        device=device,
        penalty=lambda m: 0.5 * lam * sum(p.square().sum() for p in m.parameters()),
    )
    ours = _train(lambda ps: AdamW(ps, lr=1e-2, weight_decay=lam), device=device)
    peer = _train(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=lam), device=device)
    assert_close(l2, pen, rtol=1e-10, atol=1e-10)  # Adam(weight_decay) is Adam on the L2 loss
    assert_close(ours, peer, rtol=1e-12, atol=1e-14)  # float64, torch's ops in torch's order
    assert (l2 - ours).norm() > 0.05 * ours.norm()  # but it is not AdamW


def test_decay_is_lr_times_lambda_without_gradient_signal():
    "With g = 0 (m = v = 0) one AdamW step is exactly θ ← (1 − αλ)θ: PyTorch's coupling of decay to lr."
    p = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = torch.zeros_like(p)
    opt.step()
    # exact by construction: the Adam term is 0/ε = 0, and both sides multiply by the same double
    assert torch.equal(p.detach(), torch.tensor([2.0, -1.0], dtype=torch.float64) * (1 - 0.1 * 0.5))


# --------------------------------------------------------------------------- weight-scale shift and penalties
@given(
    depth=st.integers(2, 5),
    seed=st.integers(0, 2**16),
    logs=st.lists(st.floats(-2, 2), min_size=5, max_size=5),
)
def test_property_shift_invariance(depth, seed, logs):
    sizes = tuple([4] + [5] * (depth - 1) + [3])
    m = mlp(seed, torch.float64, sizes=sizes)
    lin = [l for l in m if isinstance(l, nn.Linear)]
    W, b = [l.weight for l in lin], [l.bias for l in lin]
    u = np.array(logs[:depth])
    u -= u.mean()
    W2, b2 = shift_weight_scales(W, b, list(np.exp(u)))
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    h, h2 = x, x
    for i in range(depth):
        h, h2 = F.linear(h, W[i], b[i]), F.linear(h2, W2[i], b2[i])
        if i < depth - 1:
            h, h2 = torch.relu(h), torch.relu(h2)
    assert_close(h2, h, rtol=1e-10, atol=1e-12)
    for lam1, lam2 in ((1.0, 0.0), (0.0, 1.0), (0.3, 2.0)):
        assert_close(weissi_penalty(W2, lam1, lam2), weissi_penalty(W, lam1, lam2), rtol=1e-11, atol=1e-12)
    assert_close(min_l2_over_shifts(W2), min_l2_over_shifts(W), rtol=1e-10, atol=0)
    assert l2_penalty(W2) >= min_l2_over_shifts(W) * (1 - 1e-12)


def test_float32_shift_invariance_tolerance(device):
    m = mlp(0, torch.float32, device, sizes=(64, 128, 64, 10))
    lin = [l for l in m if isinstance(l, nn.Linear)]
    W, b = [l.weight for l in lin], [l.bias for l in lin]
    W2, b2 = shift_weight_scales(W, b, torch.tensor([8.0, 0.5, 0.25]))
    x = torch.rand(256, 64, device=device)
    with torch.no_grad():
        out = m(x)
        h = x
        for i in range(3):
            h = F.linear(h, W2[i], b2[i])
            h = torch.relu(h) if i < 2 else h
    # γ are powers of two, so the shift is exact up to the kernels' summation order
    assert_close(h, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("depth", [2, 3, 5, 8])
def test_min_l2_against_scipy_bfgs(depth):
    g = torch.Generator().manual_seed(depth)
    W = [torch.randn(4, 3, generator=g, dtype=torch.float64) * math.exp(2 * (k % 3) - 2) for k in range(depth)]
    n2 = np.array([w.norm().item() ** 2 for w in W])
    obj = lambda u: float((np.exp(2 * np.append(u, -u.sum())) * n2).sum())
    r = scipy.optimize.minimize(obj, np.zeros(depth - 1), method="BFGS", options=dict(gtol=1e-12))
    assert_close(min_l2_over_shifts(W).item(), r.fun, rtol=1e-8, atol=0)
    gam = balanced_gammas(W)
    assert_close(gam.prod().item(), 1.0, rtol=1e-12, atol=0)
    assert_close(l2_penalty([w * c for w, c in zip(W, gam)]).item(), r.fun, rtol=1e-8, atol=0)


def test_weissi_value_gradient_and_module(device):
    W = [
        torch.tensor([[3.0, -4.0]], dtype=torch.float64, device=device),
        torch.tensor([[1.0], [0.0]], dtype=torch.float64, device=device),
    ]
    # ‖W1‖ = 5, ‖W1‖₁/‖W1‖ = 7/5; ‖W2‖ = 1, ratio 1
    want = 0.5 * math.log(5.0) + 2.0 * (7 / 5 + 1)
    # a few correctly rounded ops (norms, log, division) on exact inputs: well within 1e-13
    assert_close(weissi_penalty(W, 0.5, 2.0).item(), want, rtol=1e-13, atol=0)
    Wg = [w.clone().requires_grad_() for w in W]
    assert torch.autograd.gradcheck(lambda a, b: weissi_penalty([a, b], 0.5, 2.0), (Wg[0] + 0.1, Wg[1] + 0.2))
    m = mlp(0, torch.float64, device)
    assert len(weight_matrices(m)) == 3
    # exact: the module form calls the same kernels on the same tensors; 0·x is exactly 0
    assert torch.equal(weissi_penalty(m, 0.1, 0.2), weissi_penalty(weight_matrices(m), 0.1, 0.2))
    assert weissi_penalty(W, 0.0, 0.0).item() == 0.0
    # a zero layer: log 0 = −inf (documented; not checked, to avoid a device sync)
    assert weissi_penalty([W[0], torch.zeros(2, 2, dtype=torch.float64, device=device)], 1.0, 0.0).item() == -math.inf


# --------------------------------------------------------------------------- bad input
def test_bad_adamw_hyperparameters():
    p = torch.zeros(2, requires_grad=True)
    for kw, err, text in [
        (dict(lr=-1e-3), ValueError, "Invalid learning rate"),
        (dict(lr=float("nan")), ValueError, "Invalid learning rate"),
        (dict(lr=True), TypeError, "Invalid learning rate"),
        (dict(betas=(0.9,)), ValueError, "Invalid betas"),
        (dict(betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0"),
        (dict(betas=(0.9, -0.1)), ValueError, "Invalid beta parameter at index 1"),
        (dict(eps=-1.0), ValueError, "Invalid epsilon value"),
        (dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value"),
        (dict(weight_decay=float("inf")), ValueError, "Invalid weight_decay value"),
        (dict(foreach=1), TypeError, "Invalid foreach"),
        (dict(maximize=None), TypeError, "Invalid maximize"),
    ]:
        with pytest.raises(err, match=text):
            AdamW([p], **kw)


def test_bad_param_group_adds_nothing():
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    opt = AdamW([p])
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        opt.add_param_group({"params": [q], "lr": -1})
    assert len(opt.param_groups) == 1


def test_sparse_gradient_raises_before_any_change():
    p, q = torch.randn(3, requires_grad=True), torch.randn(4, requires_grad=True)
    opt = AdamW([{"params": [p]}, {"params": [q]}])
    p.grad = torch.ones(3)
    q.grad = torch.ones(4).to_sparse()
    p0 = p.detach().clone()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    assert torch.equal(p.detach(), p0) and len(opt.state) == 0


def test_bad_functional_adamw_lists():
    p = torch.zeros(2)
    with pytest.raises(ValueError, match="Invalid len\\(grads\\)"):
        adamw([p], [], [torch.zeros(2)], [torch.zeros(2)], [torch.tensor(0.0)])
    with pytest.raises(TypeError, match="Invalid grads\\[0\\]"):
        adamw([p], [1.0], [torch.zeros(2)], [torch.zeros(2)], [torch.tensor(0.0)])
    with pytest.raises(TypeError, match="Invalid params\\[0\\]"):
        adamw(
            [torch.zeros(2, dtype=torch.complex64)],
            [torch.ones(2, dtype=torch.complex64)],
            [torch.zeros(2)],
            [torch.zeros(2)],
            [torch.tensor(0.0)],
        )
    assert torch.equal(p, torch.zeros(2))


def test_bad_weissi_input_nothing_mutated():
    W = [torch.randn(3, 2), torch.randn(2, 3)]
    W0 = [w.clone() for w in W]
    cases = [
        ((W, -1.0, 0.0), ValueError, "Invalid lam1"),
        ((W, 0.0, float("nan")), ValueError, "Invalid lam2"),
        ((W, True, 0.0), TypeError, "Invalid lam1"),
        ((W, 1.0, "0"), TypeError, "Invalid lam2"),
        ((W, float("inf"), 0.0), ValueError, "Invalid lam1"),
        (([], 1.0, 1.0), ValueError, "Invalid weights"),
        ((W[0], 1.0, 1.0), TypeError, "Invalid weights"),
        (([W[0], None], 1.0, 1.0), TypeError, "Invalid weights\\[1\\]"),
        (
            ([W[0], torch.ones(2, 2, dtype=torch.int64)], 1.0, 1.0),
            TypeError,
            "Invalid weights\\[1\\]",
        ),
        (([W[0], torch.tensor(2.0)], 1.0, 1.0), ValueError, "Invalid weights\\[1\\]"),
        (([W[0], W[1].double()], 1.0, 1.0), ValueError, "Invalid weights\\[1\\]"),
    ]
    for args, err, text in cases:
        with pytest.raises(err, match=text):
            weissi_penalty(*args)
    assert all(torch.equal(a, b) for a, b in zip(W, W0))


def test_bad_shift_and_l2_input_nothing_mutated():
    W, b = [torch.randn(3, 2), torch.randn(2, 3)], [torch.randn(3), None]
    W0, b0 = [w.clone() for w in W], b[0].clone()
    cases = [
        ((W, b, [1.0, 0.0]), ValueError, "Invalid gammas"),
        ((W, b, [1.0, -2.0]), ValueError, "Invalid gammas"),
        ((W, b, [1.0, float("nan")]), ValueError, "Invalid gammas"),
        ((W, b, [1.0]), ValueError, "Invalid gammas"),
        ((W, b, 2.0), TypeError, "Invalid gammas"),
        ((W, b, [1.0, True]), TypeError, "Invalid gammas\\[1\\]"),
        ((W, b, torch.ones(2, 1)), TypeError, "Invalid gammas"),
        ((W, b[:1], [1.0, 1.0]), ValueError, "Invalid biases"),
        ((W, [b[0], "b"], [1.0, 1.0]), TypeError, "Invalid biases\\[1\\]"),
    ]
    for args, err, text in cases:
        with pytest.raises(err, match=text):
            shift_weight_scales(*args)
    assert all(torch.equal(x, y) for x, y in zip(W, W0)) and torch.equal(b[0], b0)
    for fn in (l2_penalty, min_l2_over_shifts, balanced_gammas):
        with pytest.raises(ValueError, match="Invalid weights"):
            fn([])
        with pytest.raises(TypeError, match="Invalid weights\\[0\\]"):
            fn([[1.0, 2.0]])
    with pytest.raises(TypeError, match="Invalid model"):
        weight_matrices([torch.zeros(2, 2)])
