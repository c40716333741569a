"""Tests for su_notes.text.jose beyond the notebook's checks.

- peer: geoopt 0.5.1 — `RiemannianSGD` on `ManifoldParameter(..., manifold=Sphere())` for the plain dense step and
  `SparseRiemannianSGD` for row-sparse gradients of `nn.Embedding(sparse=True)` (several steps, float32/float64,
  `--device`); geoopt is handed only the starting points and the gradients, never our code;
- independent references: autograd of f(θ/‖θ‖) for the projected gradient, `cosine_similarity` loops for the
  loss, the C code's update lines (yumeng5/Spherical-Text-Embedding `src/jose.c`) written out for one tuple;
- hypothesis properties: the rescaling s = 1 − cos∠(x, −∇f) lies in [0, 2], steps keep rows unit, `normalize=True`
  makes the loss invariant to positive row scalings;
- `reduction=` semantics, state_dict round trip and param groups, bad input of every public name (clear error
  naming the argument, nothing mutated).
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from su_notes.core import assert_close
from su_notes.text.jose import (
    SphereSGD,
    jose_loss,
    jose_step_scale,
    jose_update_,
    sphere_retract,
    sphere_rgrad,
    sphere_sgd_step,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def unit(*shape, seed=0, dtype=torch.float64, device="cpu"):
    return F.normalize(torch.randn(*shape, generator=gen(seed), dtype=dtype), dim=-1).to(device)


# ---------------------------------------------------------------- peer: geoopt 0.5.1
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lr", [0.01, 0.7])
def test_plain_step_equals_geoopt_riemannian_sgd(device, dtype, lr):
    geoopt = pytest.importorskip("geoopt")
    X = unit(500, 24, dtype=dtype, device=device)
    ours = torch.nn.Parameter(X.clone())
    peer = geoopt.ManifoldParameter(X.clone(), manifold=geoopt.Sphere())
    o1, o2 = SphereSGD([ours], lr=lr), geoopt.optim.RiemannianSGD([peer], lr=lr)
    g = gen(1)
    for _ in range(10):
        G = torch.randn(500, 24, generator=g, dtype=dtype).to(device)
        ours.grad, peer.grad = G.clone(), G.clone()
        o1.step()
        o2.step()
    eps = torch.finfo(dtype).eps
    assert_close(ours.detach(), peer.detach(), rtol=0, atol=10 * 4 * eps)  # 4 eps per step


def test_sparse_step_equals_geoopt_sparse_riemannian_sgd(device):
    geoopt = pytest.importorskip("geoopt")
    X = unit(100, 8, seed=3)
    emb = torch.nn.Embedding.from_pretrained(X.clone(), freeze=False, sparse=True).to(device)
    peer = geoopt.ManifoldParameter(X.clone().to(device), manifold=geoopt.Sphere())
    o1 = SphereSGD(emb.parameters(), lr=0.3)
    o2 = geoopt.optim.SparseRiemannianSGD([peer], lr=0.3)
    g = gen(4)
    for _ in range(5):
        ids = torch.randint(0, 100, (40,), generator=g).to(device)  # repeated ids: summed gradients
        W = torch.randn(40, 8, generator=g, dtype=torch.float64).to(device)
        o1.zero_grad()
        (emb(ids) * W).sum().backward()
        peer.grad = emb.weight.grad.clone()
        o1.step()
        o2.step()
    assert_close(emb.weight.detach(), peer.detach(), rtol=0, atol=5 * 8 * torch.finfo(torch.float64).eps)


def test_sparse_equals_dense_modified(device):
    X = unit(50, 6, seed=5, device=device)
    ids = torch.tensor([1, 4, 4, 9, 30], device=device)
    W = torch.randn(5, 6, generator=gen(6), dtype=torch.float64).to(device)
    out = []
    for sparse in (True, False):
        e = torch.nn.Embedding.from_pretrained(X.clone(), freeze=False, sparse=sparse)
        (e(ids) * W).sum().backward()
        SphereSGD(e.parameters(), lr=0.4, modified=True).step()
        out.append(e.weight.detach())
    assert_close(out[0], out[1], rtol=0, atol=16 * torch.finfo(torch.float64).eps)
    untouched = torch.ones(50, dtype=torch.bool)
    untouched[ids.cpu()] = False
    # rows without a gradient are not touched by the sparse path: exact copies
    assert torch.equal(out[0][untouched.to(device)], X[untouched.to(device)])


# ---------------------------------------------------------------- the gradient identity
@given(st.integers(2, 12), st.floats(0.1, 10.0), st.integers(0, 10**6))
def test_gradient_of_normalised_vector(dim, scale, seed):
    g = gen(seed)
    A = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    theta = (torch.randn(dim, generator=g, dtype=torch.float64) * scale).requires_grad_()
    f = lambda x: torch.tanh(A @ x).pow(2).sum()
    (gt,) = torch.autograd.grad(f(theta / theta.norm()), theta)
    x = (theta / theta.norm()).detach().requires_grad_()
    (gx,) = torch.autograd.grad(f(x), x)
    rhs = sphere_rgrad(x.detach(), gx) / theta.norm().detach()
    assert_close(gt, rhs, rtol=1e-12, atol=1e-13 * gx.norm().item() / scale)
    assert abs((rhs @ x.detach()).item()) <= 1e-13 * gx.norm().item() / scale  # tangent


# ---------------------------------------------------------------- steps: properties
@given(st.integers(1, 20), st.integers(0, 10**6), st.floats(0.0, 5.0))
def test_scale_range_and_unit_rows(dim, seed, lr):
    g = gen(seed)
    X = F.normalize(torch.randn(7, dim, generator=g, dtype=torch.float64), dim=-1)
    G = torch.randn(7, dim, generator=g, dtype=torch.float64)
    s = jose_step_scale(X, G)
    assert s.shape == (7, 1) and (s >= -1e-15).all() and (s <= 2 + 1e-15).all()
    assert_close(s[:, 0], 1 - F.cosine_similarity(X, -G, dim=-1), rtol=0, atol=1e-14)
    for modified in (False, True):
        Y = sphere_sgd_step(X, G, lr, modified)
        assert_close(Y.norm(dim=-1), torch.ones(7, dtype=torch.float64), rtol=0, atol=8e-16 * dim)


def test_retract_and_modified_step_formula(device):
    X = unit(30, 5, device=device)
    G = torch.randn(30, 5, generator=gen(2), dtype=torch.float64).to(device)
    rg = G - (X * G).sum(-1, keepdim=True) * X
    s = 1 + (X * G).sum(-1, keepdim=True) / G.norm(dim=-1, keepdim=True)
    y = X - 0.2 * s * rg
    assert_close(sphere_sgd_step(X, G, 0.2, True), y / y.norm(dim=-1, keepdim=True), rtol=0, atol=1e-15)
    assert_close(sphere_retract(X, -0.2 * rg), sphere_sgd_step(X, G, 0.2), rtol=0, atol=1e-15)


def test_float32_rows_stay_unit_over_many_steps(device):
    p = torch.nn.Parameter(unit(200, 32, dtype=torch.float32, device=device))
    opt = SphereSGD([p], lr=0.5, modified=True)
    g = gen(7)
    for _ in range(200):
        p.grad = torch.randn(200, 32, generator=g).to(device)
        opt.step()
    assert (p.detach().norm(dim=-1) - 1).abs().max().item() < 4 * torch.finfo(torch.float32).eps


# ---------------------------------------------------------------- loss
def test_loss_against_cosine_loops_and_reductions(device):
    b, dim, k = 10, 6, 4
    u, v, d = (unit(b, dim, seed=s, device=device) for s in (1, 2, 3))
    un = unit(b, k, dim, seed=4, device=device)
    for m in (0.15, 1.0):
        ref = torch.zeros(b, dtype=torch.float64, device=device)
        ref_sep = torch.zeros_like(ref)
        for j in range(k):
            cuv, cud = F.cosine_similarity(u, v), F.cosine_similarity(u, d)
            cnv, cnd = F.cosine_similarity(un[:, j], v), F.cosine_similarity(un[:, j], d)
            ref += (m - cuv - cud + cnv + cnd).clamp_min(0)
            ref_sep += (m - cuv + cnv).clamp_min(0) + (m - cud + cnd).clamp_min(0)
        assert_close(jose_loss(u, v, d, un, m, reduction="none"), ref, rtol=1e-14, atol=1e-14)
        assert_close(
            jose_loss(u, v, d, un, m, variant="official", reduction="none"),
            ref_sep,
            rtol=1e-14,
            atol=1e-14,
        )
        assert_close(jose_loss(u, v, d, un, m), ref.mean(), rtol=1e-14, atol=1e-14)
        assert_close(jose_loss(u, v, d, un, m, reduction="sum"), ref.sum(), rtol=1e-14, atol=1e-14)


@given(st.lists(st.floats(0.05, 20.0), min_size=4, max_size=4), st.integers(0, 10**6))
def test_normalize_makes_loss_scale_invariant(scales, seed):
    g = gen(seed)
    u, v, d = (torch.randn(5, 7, generator=g, dtype=torch.float64) for _ in range(3))
    un = torch.randn(5, 2, 7, generator=g, dtype=torch.float64)
    a = jose_loss(u, v, d, un, normalize=True, reduction="none")
    b = jose_loss(
        u * scales[0],
        v * scales[1],
        d * scales[2],
        un * scales[3],
        normalize=True,
        reduction="none",
    )
    assert_close(a, b, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- per-term updates
def test_update_paper_equals_autograd_plus_sphere_sgd():
    U0, V0, D0 = unit(40, 8, seed=1), unit(40, 8, seed=2), unit(20, 8, seed=3)
    perm = torch.randperm(40, generator=gen(4))
    word, neg = perm[:10], perm[10:20]
    context, doc = (
        torch.randperm(40, generator=gen(5))[:10],
        torch.randperm(20, generator=gen(6))[:10],
    )
    U, V, D = U0.clone(), V0.clone(), D0.clone()
    jose_update_(U, V, D, word, context, doc, neg, 0.2, 1.0)
    ps = [torch.nn.Parameter(t.clone()) for t in (U0, V0, D0)]
    opt = SphereSGD(ps, lr=0.2, modified=True)
    jose_loss(ps[0][word], ps[1][context], ps[2][doc], ps[0][neg], 1.0, reduction="sum").backward()
    opt.step()
    for a, p in zip((U, V, D), ps):
        assert_close(a, p.detach(), rtol=0, atol=64 * torch.finfo(torch.float64).eps)


def test_update_official_follows_the_c_lines_for_one_tuple():
    "One tuple, one negative, margin large enough that both hinges are active: jose.c's lines written out."
    U, V, D = unit(4, 5, seed=1), unit(3, 5, seed=2), unit(2, 5, seed=3)
    w, c, dc, n, lr = 0, 1, 1, 2, 0.05
    u, v, d, un = U[w].clone(), V[c].clone(), D[dc].clone(), U[n].clone()
    U2, V2, D2 = U.clone(), V.clone(), D.clone()
    jose_update_(
        U2,
        V2,
        D2,
        torch.tensor([w]),
        torch.tensor([c]),
        torch.tensor([dc]),
        torch.tensor([n]),
        lr,
        margin=5.0,
        variant="official",
    )
    du, dn = 0, 0
    steps = {}
    for name, o in (("v", v), ("d", d)):
        f, h = u @ o, un @ o
        du = du + lr * (1 - f) * (o - f * u)  # positive center word: step 1 − f
        dn = dn + lr * (2 * h) * (h * un - o)  # negative: step 2h
        steps[name] = lr * (1 - (f - h)) * (u - f * o + h * o - un)  # context/document: 1 − (f − h)
    nrm = lambda t: t / t.norm()
    assert_close(U2[w], nrm(u + du), rtol=0, atol=1e-15)
    assert_close(U2[n], nrm(un + dn), rtol=0, atol=1e-15)
    assert_close(V2[c], nrm(v + steps["v"]), rtol=0, atol=1e-15)
    assert_close(D2[dc], nrm(d + steps["d"]), rtol=0, atol=1e-15)
    # untouched rows: exact copies (never written)
    assert torch.equal(U2[[1, 3]], U[[1, 3]]) and torch.equal(V2[[0, 2]], V[[0, 2]])


# ---------------------------------------------------------------- optimizer API
def test_state_dict_round_trip_and_param_groups():
    a, b_ = torch.nn.Parameter(unit(6, 4, seed=1)), torch.nn.Parameter(unit(3, 4, seed=2))
    opt = SphereSGD([{"params": [a]}, {"params": [b_], "lr": 0.5, "modified": True}], lr=0.1)
    sd = copy.deepcopy(opt.state_dict())
    a2, b2 = torch.nn.Parameter(a.detach().clone()), torch.nn.Parameter(b_.detach().clone())
    opt2 = SphereSGD([{"params": [a2]}, {"params": [b2]}], lr=9.0)
    opt2.load_state_dict(sd)
    assert [gr["lr"] for gr in opt2.param_groups] == [0.1, 0.5]
    assert [gr["modified"] for gr in opt2.param_groups] == [False, True]
    for p, q, s in ((a, a2, 1), (b_, b2, 2)):
        G = torch.randn(p.shape, generator=gen(s), dtype=torch.float64)
        p.grad, q.grad = G.clone(), G.clone()
    opt.step()
    opt2.step()
    # same kernels on the same inputs and hyper-parameters: bit-identical
    assert torch.equal(a, a2) and torch.equal(b_, b2)
    loss = opt.step(lambda: torch.tensor(3.0))
    assert loss.item() == 3.0


def test_bad_input_and_nothing_mutated():
    p = torch.nn.Parameter(unit(5, 3))
    with pytest.raises(ValueError, match="Invalid lr"):
        SphereSGD([p], lr=-0.1)
    with pytest.raises(TypeError, match="Invalid lr"):
        SphereSGD([p], lr="0.1")
    with pytest.raises(ValueError, match="Invalid lr"):
        SphereSGD([p], lr=float("nan"))
    with pytest.raises(TypeError, match="Invalid modified"):
        SphereSGD([p], lr=0.1, modified=1)
    opt = SphereSGD([p], lr=0.1)
    with pytest.raises(ValueError, match="Invalid lr"):
        opt.add_param_group({"params": [torch.zeros(2, 3)], "lr": -1})
    assert len(opt.param_groups) == 1
    # a 0-dim parameter in the same step: the error comes before the first parameter is changed
    q = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    p.grad, q.grad = torch.ones(5, 3, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    before = p.detach().clone()
    with pytest.raises(ValueError, match="Invalid params"):
        SphereSGD([p, q], lr=0.1).step()
    assert torch.equal(p.detach(), before)
    ip = torch.nn.Parameter(torch.ones(3, 2, dtype=torch.int64), requires_grad=False)
    ip.grad = torch.ones(3, 2, dtype=torch.int64)
    with pytest.raises(TypeError, match="Invalid params"):
        SphereSGD([ip], lr=0.1).step()
    # functional step
    X, G = unit(4, 3), torch.ones(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="Invalid egrad"):
        sphere_sgd_step(X, G[:2], 0.1)
    with pytest.raises(TypeError, match="Invalid x"):
        sphere_sgd_step(X.numpy(), G, 0.1)
    with pytest.raises(ValueError, match="Invalid lr"):
        sphere_sgd_step(X, G, -1.0)
    X0, G0 = X.clone(), G.clone()
    for fn, other in ((sphere_rgrad, "egrad"), (sphere_retract, "u"), (jose_step_scale, "egrad")):
        with pytest.raises(ValueError, match=f"Invalid {other}"):
            fn(X, G[:2])
        with pytest.raises(TypeError, match="Invalid x"):
            fn(X.numpy(), G)
        with pytest.raises(TypeError, match=f"Invalid {other}"):
            fn(X, G.long())
        with pytest.raises(ValueError, match="Invalid x"):
            fn(torch.tensor(1.0), torch.tensor(1.0))
    # exact: a refused call leaves its inputs as they were (compared with copies)
    assert torch.equal(X, X0) and torch.equal(G, G0)
    # loss
    u = unit(4, 3)
    with pytest.raises(ValueError, match="Invalid u:"):
        jose_loss(u[0], u, u, u)
    with pytest.raises(ValueError, match="Invalid d"):
        jose_loss(u, u, u[:2], u)
    with pytest.raises(ValueError, match="Invalid u_neg"):
        jose_loss(u, u, u, u[:3])
    with pytest.raises(TypeError, match="Invalid v"):
        jose_loss(u, u.long(), u, u)
    with pytest.raises(ValueError, match="Invalid reduction"):
        jose_loss(u, u, u, u, reduction="avg")
    with pytest.raises(ValueError, match="Invalid margin"):
        jose_loss(u, u, u, u, margin=float("inf"))
    with pytest.raises(TypeError, match="Invalid normalize"):
        jose_loss(u, u, u, u, normalize="yes")
    # per-term update: tables unchanged on a refused call
    U, V, D = unit(6, 3, seed=1), unit(6, 3, seed=2), unit(2, 3, seed=3)
    saved = [t.clone() for t in (U, V, D)]
    i = torch.tensor([0, 1])
    with pytest.raises(TypeError, match="Invalid word"):
        jose_update_(U, V, D, i.int(), i, i, i, 0.1)
    with pytest.raises(ValueError, match="Invalid context"):
        jose_update_(U, V, D, i, i[:1], i, i, 0.1)
    with pytest.raises(ValueError, match="Invalid variant"):
        jose_update_(U, V, D, i, i, i, i, 0.1, variant="c")
    with pytest.raises(ValueError, match="Invalid D"):
        jose_update_(U, V, D[:, :2], i, i, i, i, 0.1)
    with pytest.raises(ValueError, match="Invalid lr"):
        jose_update_(U, V, D, i, i, i, i, -0.1)
    for a, s in zip((U, V, D), saved):
        assert torch.equal(a, s)
