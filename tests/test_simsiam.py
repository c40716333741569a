"""Tests for su_notes.dynamics.simsiam beyond the notebook's checks.

Peers: lightly 1.6.0's `NegativeCosineSimilarity` (loaded with `peers.load_submodule`, it needs only torch) and
lightly's `SimSiamProjectionHead`/`SimSiamPredictionHead`. `lightly.models.modules.heads` imports
`lightly.models.utils`, whose first lines import `torchvision.ops.StochasticDepth`; torchvision cannot be installed
for this torch. The SimSiam heads never use it, so `peers.lightly_heads()` registers a placeholder
`torchvision.ops` module (one empty `StochasticDepth` class) in `sys.modules` only while lightly's modules are
imported, and removes it afterwards: the heads that are compared are lightly's own, unmodified classes. The toy
field is checked against autograd of the toy loss written with `.detach()`; the closed-form limits against their
conserved quantities (hypothesis). Bad input: clear errors, nothing mutated. Numerical tests take `--device`.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from torch import nn

from peers import lightly_heads, load_submodule
from su_notes.dynamics.simsiam import (
    SimSiam,
    SimSiamLoss,
    augment_digits,
    negative_cosine_similarity,
    representation_std,
    simsiam_loss,
    simsiam_predictor,
    simsiam_projector,
    toy_simsiam_euler,
    toy_simsiam_field,
    toy_simsiam_limit,
    train_simsiam,
)

F64 = torch.float64


def lightly_loss():
    return load_submodule("lightly.loss.negative_cosine_similarity").NegativeCosineSimilarity


def rand(gen, *shape, device="cpu", dtype=F64, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen, dtype=F64)).to(device=device, dtype=dtype)


# ---------------------------------------------------------------- peer: lightly NegativeCosineSimilarity


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_loss_equals_lightly_symmetrised(device, dtype):
    # means of O(1) cosines of 32 products: both sides round each row differently by a few ulps
    tol = 64 * torch.finfo(dtype).eps
    gen = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (rand(gen, 64, 32, device=device, dtype=dtype) for _ in range(4))
    crit = lightly_loss()()  # dim=1, eps=1e-8: lightly's defaults
    ref = 0.5 * (crit(p1, z2.detach()) + crit(p2, z1.detach()))
    ours = simsiam_loss(p1, p2, z1, z2)
    assert ours.dtype == dtype and ours.device == p1.device
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol)
    torch.testing.assert_close(SimSiamLoss()(p1, p2, z1, z2), ref, rtol=tol, atol=tol)
    torch.testing.assert_close(negative_cosine_similarity(p1, z2), crit(p1, z2), rtol=tol, atol=tol)


@given(
    b=st.integers(1, 9),
    d=st.integers(1, 17),
    log_scale=st.floats(-10, 6),
    seed=st.integers(0, 2**16),
)
def test_negative_cosine_matches_lightly_for_any_scale(device, b, d, log_scale, seed):
    # tiny norms included: both floor each norm at eps (torch's cosine_similarity semantics)
    gen = torch.Generator().manual_seed(seed)
    p, z = rand(gen, b, d, device=device, scale=10**log_scale), rand(gen, b, d, device=device)
    crit = lightly_loss()(dim=1, eps=1e-8)
    # cosines are O(1); the two formulas round differently by a few ulps (1e-13 ≈ 450 ulps of 1)
    torch.testing.assert_close(negative_cosine_similarity(p, z), crit(p, z), rtol=1e-12, atol=1e-13)
    out = negative_cosine_similarity(p, z, reduction="none")
    assert out.shape == (b,) and bool((out.abs() <= 1 + 1e-12).all())


def test_gradients_equal_lightlys_with_stop_gradient(device):
    gen = torch.Generator().manual_seed(1)
    leaves = [rand(gen, 16, 8, device=device).requires_grad_(True) for _ in range(4)]
    crit = lightly_loss()()
    p1, p2, z1, z2 = leaves
    g_ours = torch.autograd.grad(simsiam_loss(p1, p2, z1, z2), (p1, p2))
    g_ref = torch.autograd.grad(0.5 * (crit(p1, z2.detach()) + crit(p2, z1.detach())), (p1, p2))
    # the gradients are ~1e-2 (1/(b‖p‖)): atol 1e-14 is 1e-12 of their scale
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # without the stop-gradient the targets get lightly's full gradient
    g_full = torch.autograd.grad(simsiam_loss(p1, p2, z1, z2, stop_gradient=False), leaves)
    g_full_ref = torch.autograd.grad(0.5 * (crit(p1, z2) + crit(p2, z1)), leaves)
    for a, b in zip(g_full, g_full_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # and with it, z only reaches the loss through no path at all
    assert torch.autograd.grad(simsiam_loss(p1, p2, z1, z2), (z1, z2), allow_unused=True) == (
        None,
        None,
    )


def test_loss_is_symmetric_and_reductions_agree(device):
    gen = torch.Generator().manual_seed(2)
    p1, p2, z1, z2 = (rand(gen, 10, 5, device=device) for _ in range(4))
    # exact: swapping the views only swaps the two terms of one (commutative) floating-point addition per row
    assert torch.equal(simsiam_loss(p1, p2, z1, z2), simsiam_loss(p2, p1, z2, z1))
    per_row = simsiam_loss(p1, p2, z1, z2, reduction="none")
    assert per_row.shape == (10,)
    # exact: "sum"/"mean" are one reduction (su_notes.core.reduce_loss) of these same per-row values
    assert torch.equal(simsiam_loss(p1, p2, z1, z2, reduction="sum"), per_row.sum())
    assert torch.equal(simsiam_loss(p1, p2, z1, z2, reduction="mean"), per_row.mean())
    # -1 for aligned outputs (positive factors), +1 for anti-aligned, up to a few ulps of the norms
    v = rand(gen, 1, 5, device=device).expand(10, 5)
    assert abs(simsiam_loss(v, 2 * v, 3 * v, v).item() + 1) < 64 * torch.finfo(F64).eps
    assert abs(simsiam_loss(v, v, -v, -v).item() - 1) < 64 * torch.finfo(F64).eps


# ---------------------------------------------------------------- peer: lightly SimSiam heads


def _ours_and_lightlys(in_dim=12, hidden=24, dim=16, pred=6, seed=0):
    heads = lightly_heads()
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Linear(10, in_dim), nn.ReLU())
    ours = SimSiam(backbone, dim=dim, pred_dim=pred, hidden_dim=hidden).double()
    proj = heads.SimSiamProjectionHead(in_dim, hidden, dim).double()
    pred_h = heads.SimSiamPredictionHead(dim, pred, dim).double()
    # same layer order, so the state dicts map index to index; strict loading proves the shapes and biases agree
    proj.layers.load_state_dict(ours.projector.state_dict(), strict=True)
    pred_h.layers.load_state_dict(ours.predictor.state_dict(), strict=True)
    bb = nn.Sequential(nn.Linear(10, in_dim), nn.ReLU()).double()
    bb.load_state_dict(ours.encoder.state_dict())
    return ours, bb, proj, pred_h


def test_architecture_matches_lightly_heads():
    ours, _, proj, pred_h = _ours_and_lightlys()
    for a, b in ((ours.projector, proj.layers), (ours.predictor, pred_h.layers)):
        assert [type(m) for m in a] == [type(m) for m in b]
        for ma, mb in zip(a, b):
            if isinstance(ma, nn.Linear):
                assert (ma.bias is None) == (mb.bias is None)
            if isinstance(ma, nn.BatchNorm1d):
                assert ma.affine == mb.affine and ma.eps == mb.eps
    assert ours.projector[-1].affine is False  # the pitfall: affine-free final BN


@pytest.mark.parametrize("train", [True, False])
def test_forward_and_training_equal_lightlys_model(device, train):
    # lightly's SimSiam recipe: backbone -> SimSiamProjectionHead -> z, SimSiamPredictionHead -> p, per view
    ours, bb, proj, pred_h = (m.to(device) for m in _ours_and_lightlys())
    crit = lightly_loss()()
    gen = torch.Generator().manual_seed(3)
    theirs = nn.ModuleList([bb, proj, pred_h])
    opt_o = torch.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        x1, x2 = rand(gen, 32, 10, device=device), rand(gen, 32, 10, device=device)
        ours.train(train)
        theirs.train(train)
        p1, p2, z1, z2 = ours(x1, x2)
        tz1, tz2 = proj(bb(x1)), proj(bb(x2))
        tp1, tp2 = pred_h(tz1), pred_h(tz2)
        for a, b in ((p1, tp1), (p2, tp2), (z1, tz1), (z2, tz2)):
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)
        loss_o = simsiam_loss(p1, p2, z1, z2)
        loss_t = 0.5 * (crit(tp1, tz2.detach()) + crit(tp2, tz1.detach()))
        torch.testing.assert_close(loss_o, loss_t, rtol=1e-12, atol=1e-14)
        if not train:
            return
        opt_o.zero_grad()
        loss_o.backward()
        opt_o.step()
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_feat_dim_inferred_and_explicit():
    enc = nn.Sequential(nn.Linear(5, 7), nn.Tanh())
    net = SimSiam(enc, dim=8, pred_dim=3)
    assert net.projector[0].in_features == 7 and net.projector[0].out_features == 7
    net2 = SimSiam(nn.Flatten(), dim=8, pred_dim=3, feat_dim=4, hidden_dim=6)
    p1, p2, z1, z2 = net2(torch.randn(5, 2, 2), torch.randn(5, 2, 2))
    assert p1.shape == z2.shape == (5, 8)
    assert isinstance(simsiam_projector(4, 6, 8, out_bn=False)[-1], nn.Linear)


# ---------------------------------------------------------------- toy dynamics


def test_toy_field_is_autograd_of_the_toy_loss(device):
    gen = torch.Generator().manual_seed(4)
    phi, theta = rand(gen, 50, device=device), rand(gen, 50, device=device)
    for sg in (True, False):
        ph, th = phi.clone().requires_grad_(True), theta.clone().requires_grad_(True)
        target = th.detach() if sg else th
        loss = 0.5 * (ph * th - target).pow(2).sum()
        gph, gth = torch.autograd.grad(loss, (ph, th))
        dphi, dth = toy_simsiam_field(phi, theta, sg)
        torch.testing.assert_close(dphi, -gph, rtol=1e-14, atol=1e-15)
        torch.testing.assert_close(dth, -gth, rtol=1e-14, atol=1e-15)


@given(phi0=st.floats(-3, 3), theta0=st.floats(-3, 3), sg=st.booleans())
def test_limit_is_a_fixed_point_on_the_conserved_curve(phi0, theta0, sg):
    phi, theta = toy_simsiam_limit(phi0, theta0, sg)
    assert theta == 0 or phi == 1  # the fixed-point set
    shift = 0.0 if sg else 1.0
    q0, q = theta0**2 - (phi0 - shift) ** 2, theta**2 - (phi - shift) ** 2
    assert abs(q - q0) <= 1e-12 * max(1.0, abs(q0))
    assert theta == 0 or math.copysign(1, theta) == math.copysign(1, theta0)
    if not sg:
        assert abs(theta) <= abs(theta0) + 1e-15  # full gradient never grows |θ|


@pytest.mark.parametrize("phi0,theta0", [(0.6, 0.1), (1.8, 0.3), (-0.5, 0.2), (-0.2, 0.9), (0.3, -0.8)])
def test_limit_matches_long_euler(device, phi0, theta0):
    p0 = torch.tensor(phi0, dtype=F64, device=device)
    t0 = torch.tensor(theta0, dtype=F64, device=device)
    for sg in (True, False):
        end = toy_simsiam_euler(p0, t0, 0.01, 40000, stop_gradient=sg, show_progress=False)[-1]
        assert end.device == p0.device
        torch.testing.assert_close(
            end.cpu(),
            torch.tensor(toy_simsiam_limit(phi0, theta0, sg), dtype=F64),
            rtol=0,
            atol=1e-2,
        )


def test_euler_shapes_and_no_mutation(device):
    p0 = torch.full((2, 3), 0.6, dtype=F64, device=device)
    t0 = torch.full((2, 3), 0.1, dtype=F64, device=device)
    keep = p0.clone(), t0.clone()
    tr = toy_simsiam_euler(p0, t0, 0.1, 7, show_progress=False)
    assert tr.shape == (8, 2, 3, 2)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(p0, keep[0]) and torch.equal(t0, keep[1])
    assert toy_simsiam_euler(p0, t0, 0.1, 0, show_progress=False).shape == (1, 2, 3, 2)


# ---------------------------------------------------------------- collapse measure, augmentation, training


def test_representation_std_values(device):
    gen = torch.Generator().manual_seed(5)
    z = rand(gen, 20000, 16, device=device)
    assert abs(representation_std(z).item() * 4 - 1) < 0.02
    v = rand(gen, 1, 16, device=device)
    assert representation_std(v.expand(30, 16) * rand(gen, 30, 1, device=device).abs()).item() < 1e-12
    # invariant to a positive rescaling of each row
    s = rand(gen, 20000, 1, device=device).abs() + 0.1
    torch.testing.assert_close(representation_std(z * s), representation_std(z), rtol=1e-12, atol=0)


def test_augment_digits_shapes_determinism_and_no_mutation(device):
    x = torch.rand(9, 64, generator=torch.Generator().manual_seed(6)).to(device)
    keep = x.clone()
    a = augment_digits(x, torch.Generator().manual_seed(7))
    b = augment_digits(x, torch.Generator().manual_seed(7))
    # exact: the same kernels on the same inputs with the same random stream
    assert a.shape == x.shape and a.device == x.device and torch.equal(a, b)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x, keep)
    # with every augmentation off, the view is the image
    same = augment_digits(x, max_shift=0, contrast=0.0, noise=0.0, drop=0.0)
    assert torch.equal(same, x)  # exact: each pixel is multiplied by 1 (twice) and gets + 0
    # a one-pixel shift moves the image: the view is x shifted by (dy-1, dx-1) with zero fill
    shifted = augment_digits(x, torch.Generator().manual_seed(8), contrast=0.0, noise=0.0, drop=0.0)
    img, out = x.view(9, 8, 8), shifted.view(9, 8, 8)
    pad = F.pad(img, (1, 1, 1, 1))
    windows = [pad[:, i : i + 8, j : j + 8] for i in range(3) for j in range(3)]
    # exact: a shift copies pixels (and zeros); the other steps multiply by 1 and add 0
    assert all(any(torch.equal(out[k], w[k]) for w in windows) for k in range(9))


def test_train_simsiam_runs_and_records(device):
    X = torch.rand(300, 64, generator=torch.Generator().manual_seed(9)).to(device)
    torch.manual_seed(0)
    net = SimSiam(nn.Sequential(nn.Linear(64, 16), nn.ReLU()), dim=8, pred_dim=4).to(device)
    before = [p.detach().clone() for p in net.parameters()]
    hist = train_simsiam(net, X, 5, batch_size=32, generator=torch.Generator().manual_seed(0), show_progress=False)
    assert hist["loss"].shape == hist["std"].shape == (5,)
    assert bool(torch.isfinite(hist["loss"]).all()) and bool((hist["loss"].abs() <= 1).all())
    # training must have changed some parameter (compared with copies taken before)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.cuda
def test_loss_and_training_step_have_no_host_sync():
    dev = torch.device("cuda")
    net = SimSiam(nn.Sequential(nn.Linear(64, 32), nn.ReLU()), dim=16, pred_dim=4).to(dev)
    x1, x2 = torch.randn(64, 64, device=dev), torch.randn(64, 64, device=dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = simsiam_loss(*net(x1, x2))
        loss.backward()
        opt.step()
        representation_std(net.embed(x1).detach())
    finally:
        torch.cuda.set_sync_debug_mode(0)


# ---------------------------------------------------------------- bad input


def _t(*shape):
    return torch.randn(*shape, dtype=F64)


@pytest.mark.parametrize(
    "call,err,text",
    [
        (lambda: simsiam_loss(_t(4, 3), _t(4, 3), _t(4, 3), _t(4, 2)), ValueError, "Invalid z2"),
        (lambda: simsiam_loss(_t(4, 3), _t(5, 3), _t(4, 3), _t(4, 3)), ValueError, "Invalid p2"),
        (lambda: simsiam_loss([1.0], _t(1), _t(1), _t(1)), TypeError, "Invalid p1: [1.0]"),
        (
            lambda: simsiam_loss(_t(2, 2), _t(2, 2), torch.ones(2, 2, dtype=torch.long), _t(2, 2)),
            TypeError,
            "Invalid z1",
        ),
        (
            lambda: simsiam_loss(_t(2, 2), _t(2, 2), _t(2, 2), _t(2, 2), stop_gradient=None),
            TypeError,
            "Invalid stop_gradient: None",
        ),
        (
            lambda: simsiam_loss(_t(2, 2), _t(2, 2), _t(2, 2), _t(2, 2), reduction="batchmean"),
            ValueError,
            "Invalid reduction: 'batchmean'",
        ),
        (
            lambda: simsiam_loss(_t(2, 2), _t(2, 2), _t(2, 2), _t(2, 2), eps=-1.0),
            ValueError,
            "Invalid eps: -1.0",
        ),
        (lambda: negative_cosine_similarity(_t(3), _t(4)), ValueError, "Invalid z"),
        (
            lambda: negative_cosine_similarity(torch.tensor(1.0), torch.tensor(1.0)),
            ValueError,
            "Invalid p",
        ),
        (
            lambda: negative_cosine_similarity(_t(3), _t(3), eps=float("nan")),
            ValueError,
            "Invalid eps: nan",
        ),
        (lambda: SimSiamLoss(reduction="max"), ValueError, "Invalid reduction: 'max'"),
        (lambda: SimSiamLoss(stop_gradient="yes"), TypeError, "Invalid stop_gradient: 'yes'"),
        (lambda: simsiam_projector(0, 4, 4), ValueError, "Invalid in_dim: 0"),
        (lambda: simsiam_projector(4, 4.0, 4), TypeError, "Invalid hidden_dim: 4.0"),
        (lambda: simsiam_projector(4, 4, 4, out_bn=1), TypeError, "Invalid out_bn: 1"),
        (lambda: simsiam_predictor(4, -1), ValueError, "Invalid pred_dim: -1"),
        (lambda: simsiam_predictor(True, 2), TypeError, "Invalid dim: True"),
        (lambda: SimSiam(lambda x: x), TypeError, "Invalid encoder"),
        (lambda: SimSiam(nn.Identity()), ValueError, "Invalid feat_dim: None"),
        (lambda: SimSiam(nn.Linear(3, 3), pred_dim=0), ValueError, "Invalid pred_dim: 0"),
        (lambda: SimSiam(nn.Linear(3, 3), feat_dim=2.5), TypeError, "Invalid feat_dim: 2.5"),
        (lambda: toy_simsiam_field(_t(3), _t(2)), ValueError, "Invalid theta"),
        (lambda: toy_simsiam_field(0.5, _t(2)), TypeError, "Invalid phi: 0.5"),
        (
            lambda: toy_simsiam_field(_t(2), _t(2), stop_gradient=0),
            TypeError,
            "Invalid stop_gradient: 0",
        ),
        (lambda: toy_simsiam_euler(_t(2), _t(2), 0.0, 5), ValueError, "Invalid lr: 0.0"),
        (lambda: toy_simsiam_euler(_t(2), _t(2), 0.1, -1), ValueError, "Invalid n_steps: -1"),
        (lambda: toy_simsiam_euler(_t(2), _t(3), 0.1, 1), ValueError, "Invalid theta0"),
        (
            lambda: toy_simsiam_euler(_t(2), _t(2), 0.1, 1, show_progress="no"),
            TypeError,
            "Invalid show_progress",
        ),
        (lambda: toy_simsiam_limit(float("inf"), 0.1), ValueError, "Invalid phi0: inf"),
        (lambda: toy_simsiam_limit(0.5, "0.1"), TypeError, "Invalid theta0: '0.1'"),
        (
            lambda: toy_simsiam_limit(0.5, 0.1, stop_gradient=None),
            TypeError,
            "Invalid stop_gradient: None",
        ),
        (lambda: representation_std(_t(1, 4)), ValueError, "Invalid z"),
        (lambda: representation_std(_t(5)), ValueError, "Invalid z"),
        (lambda: representation_std(_t(5, 2), eps=0), ValueError, "Invalid eps: 0"),
        (lambda: augment_digits(_t(3, 63)), ValueError, "Invalid x"),
        (lambda: augment_digits(_t(3, 64), max_shift=8), ValueError, "Invalid max_shift: 8"),
        (lambda: augment_digits(_t(3, 64), drop=1.0), ValueError, "Invalid drop: 1.0"),
        (lambda: augment_digits(_t(3, 64), contrast=-0.1), ValueError, "Invalid contrast: -0.1"),
        (lambda: augment_digits(_t(3, 64), noise=-1), ValueError, "Invalid noise: -1"),
        (lambda: train_simsiam(nn.Linear(2, 2), _t(4, 64), 1), TypeError, "Invalid model"),
    ],
)
def test_bad_input(call, err, text):
    with pytest.raises(err, match=None) as info:
        call()
    assert text in str(info.value), str(info.value)


def test_bad_input_to_forward_and_training_mutates_nothing():
    torch.manual_seed(0)
    net = SimSiam(nn.Sequential(nn.Linear(64, 8), nn.ReLU()), dim=4, pred_dim=2)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    X = torch.rand(20, 64)
    with pytest.raises(ValueError, match="Invalid x2"):
        net(torch.randn(3, 64), torch.randn(4, 64))
    with pytest.raises(ValueError, match="Invalid batch_size: 1"):
        train_simsiam(net, X, 2, batch_size=1)
    with pytest.raises(ValueError, match="Invalid lr: -0.1"):
        train_simsiam(net, X, 2, lr=-0.1)
    with pytest.raises(ValueError, match="Invalid n_steps: 0"):
        train_simsiam(net, X, 0)
    with pytest.raises(TypeError, match="Invalid augment"):
        train_simsiam(net, X, 2, augment=None)
    with pytest.raises(TypeError, match="Invalid stop_gradient"):
        train_simsiam(net, X, 2, stop_gradient=1)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
