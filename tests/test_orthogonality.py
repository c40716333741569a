"""Tests for su_notes.gan.orthogonality beyond the notebook's checks.

Peers:
- BigGAN-PyTorch's `utils.ortho(model, strength, blacklist)` (ajbrock/BigGAN-PyTorch): BigGAN-PyTorch is not a
  package (it cannot be installed or imported), so `biggan_ortho` below is an independent port of its documented
  behaviour: after `backward()`, for every parameter with at least 2 dims, view it as (k, -1) and add
  strength · 2((WWᵀ)⊙(1 − I))W to its `.grad`. We check that this equals autograd of
  loss + (strength/2) Σ `ortho_penalty(param, "biggan")` on whole models (linear and conv layers).
- The closed form 1 − 2θ/π: against an exact quadrature over the circle (d = 2: the sign agreement of a uniform
  direction integrated on a fine grid) and Monte Carlo in higher d; the angle itself from atan2(‖a∧b‖, a·b) and
  at known tiny, right and straight angles, where arccos(cos θ) loses half the digits (θ ≈ 0, π).
- autograd: ∇‖(WWᵀ)⊙(1−I)‖² = 4((WWᵀ)⊙(1−I))W, gradcheck of `som_penalty`, and `som_penalty` against a
  double loop over ordered pairs.
Bad input: clear errors naming the argument, nothing mutated. Numerical tests take `--device`.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from torch import nn

from su_notes.gan.orthogonality import (
    SOMPenalty,
    SOMRegularizer,
    angle_similarity,
    filter_angles,
    ortho_penalty,
    sign_similarity,
    som_penalty,
)

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
pytestmark = pytest.mark.usefixtures("one_thread")


def rand(gen, *shape, device="cpu", dtype=F64, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen, dtype=F64)).to(device=device, dtype=dtype)


def biggan_ortho(model, strength=1e-4, blacklist=()):
    "Port of BigGAN-PyTorch utils.ortho: add strength·2((WWᵀ)⊙(1−I))W to each ≥2-D parameter's .grad."
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim < 2 or any(p is q for q in blacklist):
                continue
            w = p.reshape(p.shape[0], -1)
            off = 1.0 - torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
            p.grad += strength * (2 * ((w @ w.t()) * off) @ w).reshape(p.shape)


# ---------------------------------------------------------------- peer: BigGAN-PyTorch utils.ortho


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_biggan_ortho_is_half_the_autograd_gradient_on_a_model(device, dtype, tol):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5)).to(device, dtype)
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)
    strength = 1e-2
    model.zero_grad()
    model(x).square().mean().backward()
    biggan_ortho(model, strength)
    theirs = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    pen = sum(ortho_penalty(p) for p in model.parameters() if p.ndim >= 2)
    (model(x).square().mean() + 0.5 * strength * pen).backward()
    for a, b in zip(theirs, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_biggan_ortho_blacklist_and_full_strength(device):
    # with strength β, ortho's increment alone is (β/2)·∇P, i.e. β·∇P/2 for every non-blacklisted matrix
    torch.manual_seed(2)
    lin1, lin2 = nn.Linear(7, 9).double().to(device), nn.Linear(9, 4).double().to(device)
    model = nn.Sequential(lin1, lin2)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    biggan_ortho(model, 1.0, blacklist=[lin2.weight])
    (g_auto,) = torch.autograd.grad(ortho_penalty(lin1.weight), lin1.weight)
    torch.testing.assert_close(lin1.weight.grad, 0.5 * g_auto, rtol=1e-13, atol=1e-13)
    assert lin2.weight.grad.abs().max() == 0 and lin1.bias.grad.abs().max() == 0


@given(k=st.integers(1, 9), d=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_ortho_penalty_gradient_closed_form(device, k, d, seed):
    w = rand(torch.Generator().manual_seed(seed), k, d, device=device).requires_grad_(True)
    (g,) = torch.autograd.grad(ortho_penalty(w), w)
    m = (w @ w.T) * (1 - torch.eye(k, dtype=F64, device=device))
    torch.testing.assert_close(g, 4 * m.detach() @ w.detach(), rtol=1e-12, atol=1e-12)
    (g2,) = torch.autograd.grad(ortho_penalty(w, "orthogonal"), w)
    ref = 4 * (w @ w.T - torch.eye(k, dtype=F64, device=device)).detach() @ w.detach()
    torch.testing.assert_close(g2, ref, rtol=1e-12, atol=1e-12)


def test_ortho_penalty_pair_sums_and_conv_layout(device):
    gen = torch.Generator().manual_seed(3)
    w = rand(gen, 5, 2, 3, 3, device=device)  # conv kernel (k, c, h, w)
    flat = w.reshape(5, -1)
    pairs = sum(float(flat[i] @ flat[j]) ** 2 for i in range(5) for j in range(5) if i != j)
    assert math.isclose(ortho_penalty(w).item(), pairs, rel_tol=1e-12)
    full = sum((float(flat[i] @ flat[j]) - (i == j)) ** 2 for i in range(5) for j in range(5))
    assert math.isclose(ortho_penalty(w, "orthogonal").item(), full, rel_tol=1e-12)
    out = ortho_penalty(w.float())
    assert out.ndim == 0 and out.dtype == torch.float32 and out.device == w.device


# ---------------------------------------------------------------- peer: closed form 1 − 2θ/π


def test_angle_similarity_against_circle_quadrature():
    # d = 2: x = (cos φ, sin φ) uniform; sign agreement integrated on 200 000 midpoints of [0, 2π)
    n = 200_000
    phi = (torch.arange(n, dtype=F64) + 0.5) * (2 * math.pi / n)
    x = torch.stack([phi.cos(), phi.sin()], 1)
    gen = torch.Generator().manual_seed(4)
    w = rand(gen, 12, 2)
    s = torch.where(x @ w.T > 0, 1.0, -1.0).double()
    quad = s.T @ s / n
    torch.testing.assert_close(angle_similarity(w), quad, rtol=0, atol=5e-5)


@given(seed=st.integers(0, 2**16), d=st.integers(2, 40))
def test_angle_similarity_matches_atan2_angle(device, seed, d):
    gen = torch.Generator().manual_seed(seed)
    a, b = rand(gen, d, device=device), rand(gen, d, device=device)
    dot = float(a @ b)
    cross = math.sqrt(max(float(a @ a) * float(b @ b) - dot * dot, 0.0))
    theta = math.atan2(cross, dot)  # independent of arccos and of the half-angle form
    got = angle_similarity(torch.stack([a, b]))
    # a d-term dot product and a sqrt of a difference: a few hundred eps at most for Gaussian a, b
    assert abs(got[0, 1].item() - (1 - 2 * theta / math.pi)) < 1e-12
    # exact: θ_ii = 2·atan2(0, 2) = 0 since â − â is exactly 0, and cdist is symmetric elementwise
    assert got[0, 0].item() == 1.0 and got[1, 1].item() == 1.0 and torch.equal(got, got.T)


@pytest.mark.parametrize("d", [3, 16, 64])
def test_hard_sign_estimate_is_monte_carlo_of_closed_form(device, d):
    gen = torch.Generator().manual_seed(d)
    w, x = rand(gen, 6, d, device=device), rand(gen, 100_000, d, device=device)
    b = x.shape[0]
    est, exact = sign_similarity(x @ w.T, gamma=None), angle_similarity(w)
    # exact: the closed form's diagonal is 1 by construction (half-angle form), so its standard error is 0
    assert torch.equal(torch.diagonal(exact), torch.ones(6, dtype=F64, device=device))
    se = ((1 - exact.square()) / b).sqrt()  # standard error of each entry
    # plus rounding: each estimate is a b-term sum of ±1/b products, error ≤ b·eps (Higham's γ_b)
    assert ((est - exact).abs() <= 5 * se + b * EPS64).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_filter_angles_known_angles_and_exact_diagonal(device, dtype):
    eps = torch.finfo(dtype).eps
    t = 1e-9 if dtype == F64 else 1e-4  # tiny against sqrt(eps): arccos returns 0 there
    w = torch.tensor(
        [[1.0, 0.0, 0.0], [1.0, t, 0.0], [0.0, 3.0, 0.0], [-2.0, -2 * t, 0.0], [0.0, 0.0, 0.0]],
        dtype=dtype,
        device=device,
    )
    theta = filter_angles(w)
    ref = torch.tensor([math.atan(t), math.pi / 2, math.pi], dtype=dtype, device=device)
    got = torch.stack([theta[0, 1], theta[1, 2] + theta[0, 1], theta[1, 3]])
    torch.testing.assert_close(got, ref, rtol=8 * eps, atol=8 * eps)
    # exact: ŵ_i − ŵ_i is exactly 0, so θ_ii = 2·atan2(0, 2) = 0; a zero filter gets π/2 by definition
    assert torch.equal(torch.diagonal(theta)[:4], torch.zeros(4, dtype=dtype, device=device))
    assert bool((theta[4] == theta[4, 0]).all()) and abs(theta[4, 0].item() - math.pi / 2) < 8 * eps
    sim = angle_similarity(w)
    assert torch.equal(torch.diagonal(sim)[:4], torch.ones(4, dtype=dtype, device=device))
    assert bool((sim[4] == 0).all()) and bool((sim[:, 4] == 0).all())
    # the ill-conditioned form fails the same check: arccos(cos θ) for θ = t is 0 (cos θ rounds to 1)
    u = F.normalize(w[:2], dim=1)
    assert torch.arccos((u[0] @ u[1]).clamp(-1, 1)).item() < 0.5 * t


def test_filter_angles_conv_layout_and_gradient(device):
    gen = torch.Generator().manual_seed(12)
    w = rand(gen, 5, 2, 3, 3, device=device).requires_grad_(True)
    theta = filter_angles(w)
    flat = filter_angles(w.detach().reshape(5, -1))
    # exact: filter_angles flattens the kernel to the same (5, 18) tensor and runs the same kernels
    assert theta.shape == (5, 5) and torch.equal(theta.detach(), flat)
    theta.triu(1).sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().max() > 0
    off = lambda t: filter_angles(t).triu(1)
    assert torch.autograd.gradcheck(off, (rand(gen, 4, 6, device=device).requires_grad_(True),))


def test_tanh_estimate_tends_to_hard_sign_as_gamma_grows(device):
    gen = torch.Generator().manual_seed(5)
    y = rand(gen, 512, 7, device=device)
    hard = sign_similarity(y, None)
    errs = [(sign_similarity(y, g) - hard).abs().max().item() for g in (10.0, 1e3, 1e6)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3


def test_small_scale_estimate_is_cosine_of_columns(device):
    gen = torch.Generator().manual_seed(6)
    y = rand(gen, 300, 5, device=device, scale=1e-6)
    cos = F.normalize(y, dim=0).T @ F.normalize(y, dim=0)
    torch.testing.assert_close(sign_similarity(y), cos, rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------- som_penalty


def test_som_penalty_matches_pair_loop(device):
    gen = torch.Generator().manual_seed(7)
    y = rand(gen, 40, 6, device=device, scale=0.2)
    s = torch.tanh(3.0 * y)
    s = s / s.norm(dim=0, keepdim=True)
    v = [[float(s[:, i] @ s[:, j]) for j in range(6)] for i in range(6)]
    tot = sum(v[i][j] for i in range(6) for j in range(6) if i != j)
    sq = sum(v[i][j] ** 2 for i in range(6) for j in range(6) if i != j)
    assert math.isclose(som_penalty(y, 7.0, 0.3, 3.0).item(), 7.0 * tot**2 + 0.3 * sq, rel_tol=1e-12)
    assert math.isclose(SOMPenalty(7.0, 0.3, 3.0)(y).item(), 7.0 * tot**2 + 0.3 * sq, rel_tol=1e-12)


def test_som_penalty_gradcheck_and_dtype(device):
    gen = torch.Generator().manual_seed(8)
    y = rand(gen, 16, 4, device=device, scale=0.3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: som_penalty(t, 2.0, 1.0, 5.0), (y,))
    out = som_penalty(y.detach().float())
    assert out.ndim == 0 and out.dtype == torch.float32 and out.device == y.device


@given(b=st.integers(1, 30), k=st.integers(1, 8), seed=st.integers(0, 2**16), log_s=st.floats(-3, 2))
def test_som_penalty_bounds(device, b, k, seed, log_s):
    y = rand(torch.Generator().manual_seed(seed), b, k, device=device, scale=10**log_s)
    v = sign_similarity(y)
    n = k * (k - 1)
    r = som_penalty(y).item()
    assert -1e-9 <= r <= 100.0 * n**2 + n + 1e-6
    # Σ_{i≠j} ϑ_ij = ‖Ỹ1‖² − k ≥ −k (unit columns)
    assert (v.sum() - v.trace()).item() >= -k - 1e-9
    assert torch.allclose(v, v.T, atol=1e-12)


def test_som_penalty_zero_for_orthogonal_sign_patterns(device):
    h = torch.tensor([[1.0]], dtype=F64)
    for _ in range(3):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)  # 8 × 8 Hadamard
    y = (0.4 * h[:, 1:6]).to(device)
    assert som_penalty(y).item() < 1e-20
    assert som_penalty(y, gamma=0.01).item() < 1e-20


# ---------------------------------------------------------------- SOMRegularizer


def test_regularizer_records_linear_and_conv_preactivations(device):
    torch.manual_seed(9)
    lin, conv = nn.Linear(5, 4).double().to(device), nn.Conv1d(2, 3, 3).double().to(device)
    gen = torch.Generator().manual_seed(10)
    x3 = rand(gen, 2, 7, 5, device=device)  # extra leading dim: every row is a sample
    xc = rand(gen, 3, 2, 9, device=device)
    with SOMRegularizer([lin, conv], lam1=1.0, lam2=2.0, gamma=4.0) as reg:
        lin(x3)
        conv(xc)
        y_lin = x3.reshape(-1, 5) @ lin.weight.T
        patches = xc.unfold(2, 3, 1).permute(0, 2, 1, 3).reshape(-1, 6)  # (3·7, 2·3)
        y_conv = patches @ conv.weight.reshape(3, -1).T
        torch.testing.assert_close(reg._y[0], y_lin, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(reg._y[1], y_conv, rtol=1e-12, atol=1e-12)
        expect = som_penalty(y_lin, 1.0, 2.0, 4.0) + som_penalty(y_conv, 1.0, 2.0, 4.0)
        torch.testing.assert_close(reg(), expect, rtol=1e-10, atol=1e-12)
    assert not lin._forward_hooks and not conv._forward_hooks


def test_regularizer_keeps_latest_forward_and_skips_no_grad(device):
    lin = nn.Linear(3, 3, bias=False).double().to(device)
    gen = torch.Generator().manual_seed(11)
    a, b = rand(gen, 10, 3, device=device), rand(gen, 10, 3, device=device)
    reg = SOMRegularizer(lin)
    lin(a)
    lin(b)
    with torch.no_grad():
        lin(a)
    torch.testing.assert_close(reg(), som_penalty(b @ lin.weight.T), rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="no forward pass recorded"):
        reg()
    reg.remove()
    lin(a)
    with pytest.raises(RuntimeError, match="no forward pass recorded"):
        reg()


def test_regularizer_in_train_gan_changes_training_and_stays_finite():
    from su_notes.gan.toy import train_gan
    from su_notes.core import make_gaussian_mixture_2d

    ring = make_gaussian_mixture_2d("ring", dtype=torch.float32)

    def build():
        torch.manual_seed(0)
        g = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        d = nn.Sequential(
            nn.Linear(2, 16),
            nn.ReLU(),
            nn.Linear(16, 16),
            nn.ReLU(),
            nn.Linear(16, 1),
            nn.Flatten(0),
        )
        return g, d

    g0, d0 = build()
    h0 = train_gan(g0, d0, ring.sample, 2, n_steps=5, batch_size=32, show_progress=False)
    g1, d1 = build()
    reg = SOMRegularizer(d1[2])
    h1 = train_gan(g1, d1, ring.sample, 2, n_steps=5, batch_size=32, d_penalty=reg, show_progress=False)
    assert all(math.isfinite(v) for v in h1.d_loss) and h1.d_loss != h0.d_loss


# ---------------------------------------------------------------- bad input


def test_bad_input_messages_and_nothing_mutated():
    y = torch.randn(8, 3)
    w = torch.randn(4, 5)
    y0, w0 = y.clone(), w.clone()
    cases = [
        (lambda: som_penalty([[1.0]]), TypeError, "Invalid y"),
        (lambda: som_penalty(torch.ones(3, 2, dtype=torch.int64)), TypeError, "Invalid y"),
        (lambda: som_penalty(y[0]), ValueError, "Invalid y"),
        (lambda: som_penalty(torch.empty(0, 3)), ValueError, "Invalid y"),
        (lambda: som_penalty(y, lam1=-1.0), ValueError, "Invalid lam1: -1.0"),
        (lambda: som_penalty(y, lam2=True), TypeError, "Invalid lam2: True"),
        (lambda: som_penalty(y, lam2=float("nan")), ValueError, "Invalid lam2: nan"),
        (lambda: som_penalty(y, gamma=0.0), ValueError, "Invalid gamma: 0.0"),
        (lambda: som_penalty(y, gamma=None), TypeError, "Invalid gamma: None"),
        (lambda: som_penalty(y, gamma=float("inf")), ValueError, "Invalid gamma: inf"),
        (lambda: sign_similarity(y, gamma=-1.0), ValueError, "Invalid gamma: -1.0"),
        (lambda: sign_similarity(torch.randn(2, 3, 4)), ValueError, "Invalid y"),
        (lambda: ortho_penalty(w, mode="srip"), ValueError, "Invalid mode: 'srip'"),
        (lambda: ortho_penalty(w[0]), ValueError, "Invalid weight"),
        (lambda: ortho_penalty(w.long()), TypeError, "Invalid weight"),
        (lambda: angle_similarity("w"), TypeError, "Invalid weight"),
        (lambda: angle_similarity(torch.empty(3, 0)), ValueError, "Invalid weight"),
        (lambda: filter_angles(torch.ones(3, 2, dtype=torch.int64)), TypeError, "Invalid weight"),
        (lambda: filter_angles(w[0]), ValueError, "Invalid weight"),
        (lambda: SOMPenalty(lam1=-2.0), ValueError, "Invalid lam1: -2.0"),
        (lambda: SOMPenalty(gamma=None), TypeError, "Invalid gamma: None"),
        (lambda: SOMRegularizer([]), ValueError, "Invalid layers"),
        (lambda: SOMRegularizer([nn.ReLU()]), TypeError, "Invalid layers"),
        (lambda: SOMRegularizer(nn.Linear(2, 2), gamma=0), ValueError, "Invalid gamma: 0"),
    ]
    for fn, err, msg in cases:
        with pytest.raises(err, match=msg.replace("(", r"\(").replace(")", r"\)")):
            fn()
    assert torch.equal(y, y0) and torch.equal(w, w0)


def test_regularizer_bad_layer_registers_no_hook():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError):
        SOMRegularizer([lin, nn.Tanh()])
    assert not lin._forward_hooks
