"""Tests for su_notes.gan.cascading beyond the notebook's checks.

Peers: `torch.nn.Linear(bias=False)` (a one-stage head is that layer); BigGAN-PyTorch's hinge losses
(ajbrock/BigGAN-PyTorch `losses.py`: `loss_hinge_dis(dis_fake, dis_real)` returns the real and fake halves
`mean(relu(1 - D(x)))`, `mean(relu(1 + D(G(z))))`, `loss_hinge_gen(dis_fake) = -mean(D(G(z)))`; the repository is not
installable as a package, so the two functions are re-written below from those formulas, in their argument order);
`su_notes.gan.toy`'s hinge losses (N = 1 and equal-size stages); `torch.linalg.qr` (Gram–Schmidt) for the
orthogonal case, and `torch.linalg.solve_triangular` for the forward-substitution form of the cascade.
Properties with hypothesis; bad input raises clearly and mutates nothing.
Numerical tests take `--device`.
"""

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from torch import nn

from su_notes.gan import toy
from su_notes.gan.cascading import (
    CascadingRejectionHead,
    CRHingeLossD,
    CRHingeLossG,
    cascading_rejection,
    cr_hinge_loss_d,
    cr_hinge_loss_g,
    rejection_residuals,
)

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps
pytestmark = pytest.mark.usefixtures("one_thread")


def rand(gen, *shape, device="cpu", dtype=F64, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen, dtype=F64)).to(device=device, dtype=dtype)


# BigGAN-PyTorch losses.py, re-written from its formulas (argument order as there: fake first)
def biggan_loss_hinge_dis(dis_fake, dis_real):
    return torch.mean(F.relu(1.0 - dis_real)), torch.mean(F.relu(1.0 + dis_fake))


def biggan_loss_hinge_gen(dis_fake):
    return -torch.mean(dis_fake)


# ---------------------------------------------------------------- peer: nn.Linear(bias=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("b,d", [(1, 1), (7, 3), (128, 64)])
def test_one_stage_head_is_a_linear_layer(device, dtype, b, d):
    torch.manual_seed(0)
    lin = nn.Linear(d, 1, bias=False).to(device=device, dtype=dtype)
    head = CascadingRejectionHead(d, 1, device=device, dtype=dtype)
    with torch.no_grad():
        head.weight.copy_(lin.weight)
    x = rand(torch.Generator().manual_seed(1), b, d, device=device, dtype=dtype).requires_grad_(True)
    out, ref = head(x), lin(x).T
    assert out.shape == (1, b) and out.dtype == dtype and out.device == x.device
    # mm and linear may sum the d products in different orders: |Δ| ≤ d·eps·Σ|x_i w_i| (Higham's γ_d)
    eps = torch.finfo(dtype).eps
    tol = d * eps * (x.abs() @ lin.weight.abs().T).max().item()
    torch.testing.assert_close(out, ref, rtol=0, atol=tol)
    gx, gw = torch.autograd.grad((out * out).sum(), (x, head.weight))
    rx, rw = torch.autograd.grad((ref * ref).sum(), (x, lin.weight))
    w_max = lin.weight.abs().max().item()
    torch.testing.assert_close(gx, rx, rtol=0, atol=2 * tol * w_max + 4 * eps * gx.abs().max().item())
    # ∂/∂w sums 2·out_b·x_b over the batch: (b + d)·eps times the sum of |terms|
    scale_w = (2 * ref.abs().T * x.abs()).sum(0).max().item()
    torch.testing.assert_close(gw, rw, rtol=0, atol=(b + d) * eps * scale_w)


def test_head_init_matches_linear_distribution():
    "Each stage's weight is drawn like nn.Linear(dim, 1, bias=False).weight: uniform on ±1/√dim (same RNG use)."
    torch.manual_seed(3)
    head = CascadingRejectionHead(400, 3)
    bound = 1 / 400**0.5
    assert head.weight.abs().max() <= bound and head.weight.abs().max() > 0.95 * bound
    torch.manual_seed(5)
    h1 = CascadingRejectionHead(10, 1)
    torch.manual_seed(5)
    lin = nn.Linear(10, 1, bias=False)
    # same uniform draws; the bounds 1/√10 and kaiming's gain·√(3/10) may differ in their last bit
    eps32 = torch.finfo(torch.float32).eps
    torch.testing.assert_close(h1.weight, lin.weight.detach(), rtol=0, atol=4 * eps32 / 10**0.5)


def test_head_state_dict_round_trip_and_prefix_stages(device):
    torch.manual_seed(0)
    head = CascadingRejectionHead(12, 5).to(device)
    buf = io.BytesIO()
    torch.save(head.state_dict(), buf)
    buf.seek(0)
    other = CascadingRejectionHead(12, 5).to(device)
    other.load_state_dict(torch.load(buf))
    x = torch.randn(9, 12, device=device)
    # exact: a copy of the same weights through the same kernels on the same input
    torch.testing.assert_close(other(x), head(x), rtol=0, atol=0)
    short = CascadingRejectionHead(12, 2).to(device)
    with torch.no_grad():
        short.weight.copy_(head.weight[:2])
    torch.testing.assert_close(short(x), head(x)[:2], rtol=1e-6, atol=1e-6)  # more stages never change earlier ones
    assert "dim=12, n_stages=5" in repr(head)


# ---------------------------------------------------------------- peer: BigGAN-PyTorch hinge losses


# batch means of 64 and 40 terms, then N = 5 stages: rounding ≲ 128 eps of values of order 1
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 128 * EPS64), (torch.float32, 128 * EPS32)])
def test_losses_equal_biggan_per_stage(device, dtype, tol):
    gen = torch.Generator().manual_seed(0)
    N, b_real, b_fake = 5, 64, 40
    real = rand(gen, N, b_real, device=device, dtype=dtype, scale=2.0)
    fake = rand(gen, N, b_fake, device=device, dtype=dtype, scale=2.0)
    lam = [0.5, 0.0, 2.0, 1.0, 0.25]
    halves = [biggan_loss_hinge_dis(fake[k], real[k]) for k in range(N)]
    per_stage = torch.stack([r + f for r, f in halves])
    lam_t = torch.tensor(lam, dtype=dtype, device=device)
    torch.testing.assert_close(cr_hinge_loss_d(real, fake), per_stage.mean(), rtol=tol, atol=tol)
    torch.testing.assert_close(
        cr_hinge_loss_d(real, fake, lam),
        (lam_t * per_stage).sum() / lam_t.sum(),
        rtol=tol,
        atol=tol,
    )
    torch.testing.assert_close(
        cr_hinge_loss_d(real, fake, lam, reduction="none"), lam_t * per_stage, rtol=tol, atol=tol
    )
    torch.testing.assert_close(
        cr_hinge_loss_d(real, fake, lam, reduction="sum"),
        (lam_t * per_stage).sum(),
        rtol=tol,
        atol=tol,
    )
    g_stage = torch.stack([biggan_loss_hinge_gen(fake[k]) for k in range(N)])
    torch.testing.assert_close(cr_hinge_loss_g(fake), g_stage.mean(), rtol=tol, atol=tol)
    torch.testing.assert_close(cr_hinge_loss_g(fake, lam), (lam_t * g_stage).sum() / lam_t.sum(), rtol=tol, atol=tol)
    # exact: the modules call the functions with the same arguments on the same tensors
    torch.testing.assert_close(CRHingeLossD(lam)(real, fake), cr_hinge_loss_d(real, fake, lam), rtol=0, atol=0)
    g_module, g_function = CRHingeLossG(lam, "sum")(fake), cr_hinge_loss_g(fake, lam, "sum")
    torch.testing.assert_close(g_module, g_function, rtol=0, atol=0)  # exact, as above
    # the comparison can fail: equal weights are not the λ-weighted mean here
    assert (cr_hinge_loss_d(real, fake) - cr_hinge_loss_d(real, fake, lam)).abs() > 1e3 * tol


def test_one_stage_losses_equal_biggan_and_gradients(device):
    gen = torch.Generator().manual_seed(1)
    real = rand(gen, 1, 32, device=device).requires_grad_(True)
    fake = rand(gen, 1, 32, device=device).requires_grad_(True)
    ours = cr_hinge_loss_d(real, fake)
    r, f = biggan_loss_hinge_dis(fake[0], real[0])
    torch.testing.assert_close(ours, r + f, rtol=64 * EPS64, atol=64 * EPS64)  # 32-term means
    g_ours = torch.autograd.grad(ours, (real, fake))
    g_ref = torch.autograd.grad(r + f, (real, fake))
    # exact: every gradient entry is 0 or ±1/32 (a power of two) on both sides
    for a, c in zip(g_ours, g_ref):
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    torch.testing.assert_close(cr_hinge_loss_g(fake), biggan_loss_hinge_gen(fake[0]), rtol=64 * EPS64, atol=64 * EPS64)


def test_one_stage_losses_equal_the_toy_bench_losses(device):
    "With N = 1 the CR losses are the shared bench's hinge losses on the (b,) logits (su_notes.gan.toy)."
    gen = torch.Generator().manual_seed(3)
    real, fake = rand(gen, 1, 50, device=device), rand(gen, 1, 30, device=device)
    tol = 128 * EPS64  # means of 50 and 30 terms
    torch.testing.assert_close(cr_hinge_loss_d(real, fake), toy.hinge_loss_d(real[0], fake[0]), rtol=tol, atol=tol)
    torch.testing.assert_close(cr_hinge_loss_g(fake), toy.hinge_loss_g(fake[0]), rtol=tol, atol=tol)
    # with equal batch sizes, equal weights over N stages are the bench losses on the (N, b) logits
    real, fake = rand(gen, 4, 30, device=device), rand(gen, 4, 30, device=device)
    torch.testing.assert_close(cr_hinge_loss_d(real, fake), toy.hinge_loss_d(real, fake), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(cr_hinge_loss_g(fake), toy.hinge_loss_g(fake), rtol=1e-14, atol=1e-14)


def test_first_stage_only_generator_weights_ignore_later_stages(device):
    gen = torch.Generator().manual_seed(2)
    fake = rand(gen, 4, 16, device=device).requires_grad_(True)
    (grad,) = torch.autograd.grad(cr_hinge_loss_g(fake, [1, 0, 0, 0]), fake)
    # exact: the later stages' losses are multiplied by weight 0.0
    assert bool((grad[1:] == 0).all()) and bool((grad[0] != 0).all())


# ---------------------------------------------------------------- the geometry: QR, triangular solve, properties


@pytest.mark.parametrize("N,d", [(1, 5), (3, 8), (8, 8), (6, 32)])
def test_orthonormal_directions_give_the_gram_schmidt_projection(device, N, d):
    gen = torch.Generator().manual_seed(N * 100 + d)
    v, W = rand(gen, 50, d, device=device), rand(gen, N, d, device=device)
    Q, _ = torch.linalg.qr(W.T)  # (d, N), orthonormal columns spanning the w's
    Wq = Q.T.contiguous()
    torch.testing.assert_close(cascading_rejection(v, Wq), (v @ Q).T, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rejection_residuals(v, Wq)[-1], v - (v @ Q) @ Q.T, rtol=1e-12, atol=1e-12)
    # orthogonal (not normalised) directions: the cascade is a plain N-output linear layer
    Wo = Wq * rand(gen, N, 1, device=device).abs().add(0.1)
    torch.testing.assert_close(cascading_rejection(v, Wo), (v @ Wo.T).T, rtol=1e-12, atol=1e-12)
    # integers: a full basis leaves nothing
    if N == d:
        assert rejection_residuals(v, Wq)[-1].abs().max() < 1e-12


def test_overlapping_directions_are_not_the_gram_schmidt_projection(device):
    gen = torch.Generator().manual_seed(7)
    W = rand(gen, 3, 6, device=device) + 2.0  # strongly overlapping directions
    v = rand(gen, 40, 6, device=device)
    Q, _ = torch.linalg.qr(W.T)
    gap = (rejection_residuals(v, W)[-1] - (v - (v @ Q) @ Q.T)).norm(dim=1).mean()
    assert gap > 0.1 * v.norm(dim=1).mean()


@given(
    b=st.integers(1, 6),
    d=st.integers(1, 12),
    N=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-3, 3),
)
def test_cascade_properties(device, b, d, N, seed, log_scale):
    gen = torch.Generator().manual_seed(seed)
    v, W = rand(gen, b, d, device=device, scale=10**log_scale), rand(gen, N, d, device=device)
    D, R = cascading_rejection(v, W), rejection_residuals(v, W)
    assert D.shape == (N, b) and R.shape == (N + 1, b, d)
    tol = 1e-12 * (1 + v.abs().max().item())
    torch.testing.assert_close(D, torch.einsum("kbd,kd->kb", R[:-1], W), rtol=1e-12, atol=tol)
    for k in range(N):
        assert (R[k + 1] @ W[k]).abs().max() <= tol * (1 + W[k].norm().item()) * 10
    # ‖v‖² = Σ D_k²/‖w_k‖² + ‖v_{N+1}‖²
    energy = (D**2 / (W**2).sum(1, keepdim=True)).sum(0) + (R[-1] ** 2).sum(1)
    torch.testing.assert_close(energy, (v**2).sum(1), rtol=1e-10, atol=1e-10 * (1 + (v**2).sum().item()))
    # forward substitution D U = P with U the unit upper-triangular normalised Gram matrix
    Gm = W @ W.T
    U = torch.triu(Gm / Gm.diagonal()[:, None], diagonal=1) + torch.eye(N, dtype=F64, device=W.device)
    D_tri = torch.linalg.solve_triangular(U, v @ W.T, upper=True, left=False).T
    torch.testing.assert_close(D, D_tri, rtol=1e-8, atol=1e-8 * (1 + v.abs().max().item()))
    # stage k is linear in w_k and blind to the lengths of w_1..w_{k-1}
    s = rand(gen, N, 1, device=device).abs() + 0.1
    torch.testing.assert_close(cascading_rejection(v, s * W), s * D, rtol=1e-9, atol=1e-9 * (1 + D.abs().max().item()))


def test_zero_direction_scores_zero_and_rejects_nothing(device):
    gen = torch.Generator().manual_seed(4)
    v, W = rand(gen, 10, 5, device=device), rand(gen, 3, 5, device=device)
    Wz = torch.cat([W[:1], torch.zeros(1, 5, dtype=F64, device=device), W[1:]])
    Dz = cascading_rejection(v, Wz)
    # exact: P_2 = v·0 = 0 and Γ_12 = 0, so D_2 = (0 − D_1·0)/1 = 0
    assert bool(torch.isfinite(Dz).all()) and bool((Dz[1] == 0).all())
    torch.testing.assert_close(Dz[[0, 2, 3]], cascading_rejection(v, W), rtol=1e-12, atol=1e-12)
    # gradients stay finite too
    Wz.requires_grad_(True)
    (g,) = torch.autograd.grad(cascading_rejection(v, Wz).sum(), Wz)
    assert bool(torch.isfinite(g).all())


def test_gradcheck_in_both_arguments(device):
    gen = torch.Generator().manual_seed(5)
    v = rand(gen, 4, 6, device=device).requires_grad_(True)
    W = rand(gen, 3, 6, device=device).requires_grad_(True)
    assert torch.autograd.gradcheck(cascading_rejection, (v, W))
    assert torch.autograd.gradgradcheck(cascading_rejection, (v, W))


def test_later_stages_are_not_the_plain_scores(device):
    "Stage 1 is the plain score ⟨v, w_1⟩; later stages score the remainders, which differ for overlapping w's."
    gen = torch.Generator().manual_seed(6)
    v, W = rand(gen, 20, 4, device=device), rand(gen, 3, 4, device=device) + 1.0
    D = cascading_rejection(v, W)
    plain = (v @ W.T).T
    assert (D[1:] - plain[1:]).abs().max() > 0.1  # later stages differ from plain scores
    torch.testing.assert_close(D[0], plain[0], rtol=1e-14, atol=1e-14)  # D_1 = P_1/U_11, U_11 = 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dtype_follows_input(device, dtype):
    gen = torch.Generator().manual_seed(8)
    v, W = rand(gen, 8, 4, device=device, dtype=dtype), rand(gen, 3, 4, device=device, dtype=dtype)
    D = cascading_rejection(v, W)
    assert D.dtype == dtype and D.device == v.device
    ref = cascading_rejection(v.double(), W.double())
    tol = 1e-4 if dtype == torch.float32 else 0.1
    torch.testing.assert_close(D.double(), ref, rtol=tol, atol=tol)
    real, fake = (
        rand(gen, 3, 8, device=device, dtype=dtype),
        rand(gen, 3, 8, device=device, dtype=dtype),
    )
    assert cr_hinge_loss_d(real, fake, [1, 2, 3]).dtype == dtype and cr_hinge_loss_g(fake, [1, 2, 3]).dtype == dtype


@pytest.mark.cuda
def test_no_host_sync_on_cuda():
    v, W = torch.randn(64, 32, device="cuda"), torch.randn(6, 32, device="cuda")
    real, fake = torch.randn(6, 64, device="cuda"), torch.randn(6, 64, device="cuda")
    head = CascadingRejectionHead(32, 6, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        cascading_rejection(v, W)
        head(v)
        cr_hinge_loss_d(real, fake)
        cr_hinge_loss_g(fake)
    finally:
        torch.cuda.set_sync_debug_mode(0)


# ---------------------------------------------------------------- bad input: clear errors, nothing mutated

V, W = torch.randn(5, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
RL, FK = torch.randn(3, 5, dtype=F64), torch.randn(3, 7, dtype=F64)


@pytest.mark.parametrize(
    "args,err,msg",
    [
        (([[1.0]], W), TypeError, "Invalid v"),
        ((V.long(), W), TypeError, "Invalid v"),
        ((V[0], W), ValueError, "Invalid v"),
        ((V[None], W), ValueError, "Invalid v"),
        ((V, W[0]), ValueError, "Invalid weights"),
        ((V, W[:0]), ValueError, "Invalid weights"),
        ((V, W[:, :3]), ValueError, "feature dim d = 4"),
        ((V, W.float()), TypeError, "Invalid weights"),
        ((V, "w"), TypeError, "Invalid weights"),
    ],
)
@pytest.mark.parametrize("fn", [cascading_rejection, rejection_residuals])
def test_bad_input_cascade(fn, args, err, msg):
    before = [a.clone() if torch.is_tensor(a) else a for a in args]
    with pytest.raises(err, match=msg):
        fn(*args)
    for a, c in zip(args, before):
        if torch.is_tensor(a):
            # exact: compared with copies taken before the call
            assert torch.equal(a, c)


@pytest.mark.parametrize(
    "kw,err,msg",
    [
        (dict(dim=0, n_stages=2), ValueError, "Invalid dim: 0"),
        (dict(dim=3.0, n_stages=2), TypeError, "Invalid dim: 3.0"),
        (dict(dim=3, n_stages=0), ValueError, "Invalid n_stages: 0"),
        (dict(dim=3, n_stages=True), TypeError, "Invalid n_stages: True"),
    ],
)
def test_bad_input_head(kw, err, msg):
    with pytest.raises(err, match=msg):
        CascadingRejectionHead(**kw)
    head = CascadingRejectionHead(4, 3)
    w0 = head.weight.detach().clone()
    with pytest.raises(ValueError, match=r"Invalid v: .*\(expected shape \(b, dim=4\)\)"):
        head(torch.randn(2, 5))
    with pytest.raises(TypeError, match="Invalid v: .*head's dtype"):
        head(torch.randn(2, 4, dtype=F64))
    # exact: compared with a copy taken before the call
    assert torch.equal(head.weight, w0)


@pytest.mark.parametrize(
    "call,err,msg",
    [
        (lambda: cr_hinge_loss_d(RL[0], FK), ValueError, "Invalid real"),
        (lambda: cr_hinge_loss_d(RL, FK[:2]), ValueError, "number of stages N = 3"),
        (lambda: cr_hinge_loss_d(RL.long(), FK), TypeError, "Invalid real"),
        (lambda: cr_hinge_loss_d(RL, "x"), TypeError, "Invalid fake"),
        (lambda: cr_hinge_loss_d(RL, FK[:, :0]), ValueError, "Invalid fake"),
        (lambda: cr_hinge_loss_d(RL, FK, [1, 1]), TypeError, "N = 3"),
        (lambda: cr_hinge_loss_d(RL, FK, torch.ones(3)), TypeError, "Invalid stage_weights"),
        (
            lambda: cr_hinge_loss_d(RL, FK, [1, -1, 1]),
            ValueError,
            r"Invalid stage_weights\[1\]: -1",
        ),
        (
            lambda: cr_hinge_loss_d(RL, FK, [1, float("nan"), 1]),
            ValueError,
            r"Invalid stage_weights\[1\]: nan",
        ),
        (
            lambda: cr_hinge_loss_d(RL, FK, [1, True, 1]),
            TypeError,
            r"Invalid stage_weights\[1\]: True",
        ),
        (lambda: cr_hinge_loss_d(RL, FK, [0, 0, 0]), ValueError, "must not all be 0"),
        (lambda: cr_hinge_loss_d(RL, FK, reduction="avg"), ValueError, "Invalid reduction: 'avg'"),
        (lambda: cr_hinge_loss_g(FK[0]), ValueError, "Invalid fake"),
        (lambda: cr_hinge_loss_g(FK, [1, 2]), TypeError, "N = 3"),
        (lambda: cr_hinge_loss_g(FK, reduction=None), ValueError, "Invalid reduction: None"),
        (lambda: CRHingeLossD(reduction="max"), ValueError, "Invalid reduction: 'max'"),
        (lambda: CRHingeLossG([1, 0])(FK), TypeError, "N = 3"),
    ],
)
def test_bad_input_losses(call, err, msg):
    before = (RL.clone(), FK.clone())
    with pytest.raises(err, match=msg):
        call()
    # exact: compared with copies taken before the call
    assert torch.equal(RL, before[0]) and torch.equal(FK, before[1])


def test_works_under_autocast():
    "Inside CPU autocast (bf16 matmuls) the cascade still solves in float32 and returns the input's dtype."
    gen = torch.Generator().manual_seed(9)
    v, W = rand(gen, 16, 8, dtype=torch.float32), rand(gen, 3, 8, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        D = cascading_rejection(v, W)
    assert D.dtype == torch.float32
    torch.testing.assert_close(D, cascading_rejection(v, W), rtol=1e-6, atol=1e-6)
