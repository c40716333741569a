"""Tests for su_notes.generative.vae beyond the notebook's checks.

Peer: `torch.distributions` — `kl_divergence` of `Normal` (per coordinate, summed) and of `Independent(Normal, 1)`
against `Independent(Normal(0, 1), 1)` for `gaussian_kl`, its gradients through autograd, and `Normal.rsample` for
`reparameterize` (same random stream). The VAE loss is checked against `torch.nn.functional.mse_loss` plus the
peer's KL; `class_entropy` against `scipy.stats.entropy`. Bad input for every public name: a clear error naming
the argument, nothing mutated. Numerical tests take `--device`.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from scipy.stats import entropy as scipy_entropy
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from su_notes.generative.vae import (
    VAE,
    Autoencoder,
    VAEOutput,
    class_entropy,
    gaussian_kl,
    reparameterize,
    train_autoencoder,
    vae_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64
EPS64 = torch.finfo(F64).eps  # float64 tolerances are multiples of it


def rand(seed, *shape, device="cpu", dtype=F64, scale=1.0, shift=0.0):
    "Seeded normal tensor made on the CPU (same numbers on every device), then moved."
    g = torch.Generator().manual_seed(seed)
    return (shift + scale * torch.randn(*shape, generator=g, dtype=F64)).to(device=device, dtype=dtype)


def peer_kl(mu, logvar):
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return kl_divergence(q, p)


def tiny_vae(dtype=F64, d_in=6, latent=2, seed=0):
    torch.manual_seed(seed)
    return VAE(nn.Linear(d_in, 2 * latent), nn.Linear(latent, d_in), latent).to(dtype)


# ---------------------------------------------------------------- peer: torch.distributions


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("shape", [(3,), (64, 2), (5, 7, 4), (2, 3, 1, 8)])
def test_gaussian_kl_equals_torch_distributions(device, dtype, tol, shape):
    mu, lv = (
        rand(0, *shape, device=device, dtype=dtype, scale=2.0),
        rand(1, *shape, device=device, dtype=dtype),
    )
    ours = gaussian_kl(mu, lv)
    assert ours.shape == shape[:-1] and ours.dtype == dtype and ours.device == mu.device
    torch.testing.assert_close(ours, peer_kl(mu, lv), rtol=tol, atol=tol)
    # the per-coordinate Normal KL, summed over the last axis, is the same number
    per = kl_divergence(Normal(mu, (0.5 * lv).exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
    torch.testing.assert_close(ours, per, rtol=tol, atol=tol)


@given(
    d=st.integers(1, 6),
    b=st.integers(1, 5),
    mu_scale=st.floats(0.0, 10.0),
    lv_shift=st.floats(-8.0, 5.0),
    seed=st.integers(0, 2**16),
)
def test_gaussian_kl_matches_peer_and_is_nonnegative(device, d, b, mu_scale, lv_shift, seed):
    mu = rand(seed, b, d, device=device, scale=mu_scale)
    lv = rand(seed + 1, b, d, device=device, shift=lv_shift)
    ours = gaussian_kl(mu, lv)
    torch.testing.assert_close(ours, peer_kl(mu, lv), rtol=1e-10, atol=1e-10)
    assert bool((ours >= 0).all())


def test_gaussian_kl_gradients_equal_peers(device):
    mu = rand(2, 16, 3, device=device, scale=1.5).requires_grad_(True)
    lv = rand(3, 16, 3, device=device).requires_grad_(True)
    g_ours = torch.autograd.grad(gaussian_kl(mu, lv).sum(), (mu, lv))
    g_peer = torch.autograd.grad(peer_kl(mu, lv).sum(), (mu, lv))
    for a, b in zip(g_ours, g_peer):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        gaussian_kl,
        (mu.detach().clone().requires_grad_(True), lv.detach().clone().requires_grad_(True)),
    )


def test_gaussian_kl_is_zero_only_at_the_unit_circle():
    z = torch.zeros(4, 3, dtype=F64)
    assert (gaussian_kl(z, z) == 0).all()  # exact: ½(0 + e⁰ − 0 − 1) = 0 in floating point
    assert (gaussian_kl(z + 1e-3, z) > 0).all() and (gaussian_kl(z, z + 1e-3) > 0).all()


def test_reparameterize_equals_normal_rsample(device):
    mu, lv = rand(4, 32, 5, device=device), rand(5, 32, 5, device=device)
    torch.manual_seed(11)
    ours = reparameterize(mu, lv)
    torch.manual_seed(11)
    peer = Normal(mu, (0.5 * lv).exp()).rsample()
    # the same draws through the same two operations (μ + ε·σ): a few ulps at most
    torch.testing.assert_close(ours, peer, rtol=4 * EPS64, atol=4 * EPS64)
    m, l = mu.clone().requires_grad_(True), lv.clone().requires_grad_(True)
    m2, l2 = mu.clone().requires_grad_(True), lv.clone().requires_grad_(True)
    w = rand(6, 32, 5, device=device)
    torch.manual_seed(12)
    g_ours = torch.autograd.grad((w * reparameterize(m, l)).sum(), (m, l))
    torch.manual_seed(12)
    g_peer = torch.autograd.grad((w * Normal(m2, (0.5 * l2).exp()).rsample()).sum(), (m2, l2))
    # gradients summed over 32 rows by two autograd graphs: tens of ulps of O(1) values
    for a, b in zip(g_ours, g_peer):
        torch.testing.assert_close(a, b, rtol=256 * EPS64, atol=64 * EPS64)


def test_reparameterize_with_given_noise_is_the_affine_map(device):
    mu, lv, eps = (rand(s, 7, 3, device=device) for s in (7, 8, 9))
    # exp(½ log σ²) against √(exp log σ²): two roundings apart, a few ulps of O(1) values
    torch.testing.assert_close(
        reparameterize(mu, lv, eps), mu + eps * lv.exp().sqrt(), rtol=16 * EPS64, atol=16 * EPS64
    )
    assert torch.equal(reparameterize(mu, lv, torch.zeros_like(mu)), mu)  # exact: μ + 0·σ = μ


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_vae_loss_equals_mse_plus_peer_kl(device, dtype, tol):
    x, recon = (
        rand(10, 9, 4, 4, device=device, dtype=dtype),
        rand(11, 9, 4, 4, device=device, dtype=dtype),
    )
    mu, lv = rand(12, 9, 3, device=device, dtype=dtype), rand(13, 9, 3, device=device, dtype=dtype)
    per = F.mse_loss(recon, x, reduction="none").flatten(1).sum(1) + 0.05 * peer_kl(mu, lv)
    torch.testing.assert_close(vae_loss(x, recon, mu, lv, 0.05, "none"), per, rtol=tol, atol=tol)
    torch.testing.assert_close(vae_loss(x, recon, mu, lv, 0.05), per.mean(), rtol=tol, atol=tol)
    torch.testing.assert_close(vae_loss(x, recon, mu, lv, 0.05, "sum"), per.sum(), rtol=tol, atol=tol)
    # kl_weight = 0: only the summed squared error, F.mse_loss(sum) / b
    torch.testing.assert_close(
        vae_loss(x, recon, mu, lv, 0.0),
        F.mse_loss(recon, x, reduction="sum") / 9,
        rtol=tol,
        atol=tol,
    )


def test_losses_reduce_through_core_reduce_loss():
    # one reduction helper for the project: per-sample sums, then su_notes.core.reduce_loss over the batch
    from su_notes.core import REDUCTIONS, reduce_loss

    x, recon = rand(20, 7, 3, 4), rand(21, 7, 3, 4)
    mu, lv = rand(22, 7, 2), rand(23, 7, 2)
    per = vae_loss(x, recon, mu, lv, 0.2, "none")
    assert per.shape == (7,)
    for r in REDUCTIONS:
        # exact: the same per-sample tensor through the same reduction
        assert torch.equal(vae_loss(x, recon, mu, lv, 0.2, r), reduce_loss(per, r))
    ae = Autoencoder(lambda t: t.flatten(1)[:, :2], lambda z: z.repeat(1, 6).reshape(-1, 3, 4), 2)
    per_ae = ae.loss(x, "none")
    for r in REDUCTIONS:
        assert torch.equal(ae.loss(x, r), reduce_loss(per_ae, r))
    # "mean" is per sample, not nn.MSELoss's per element: 12 features per sample here
    torch.testing.assert_close(
        vae_loss(x, recon, mu, lv, 0.0), 12 * F.mse_loss(recon, x), rtol=64 * EPS64, atol=64 * EPS64
    )


# ---------------------------------------------------------------- modules


def test_vae_forward_loss_and_sample(device):
    vae = tiny_vae().to(device)
    x, eps = rand(14, 5, 6, device=device), rand(15, 5, 2, device=device)
    out = vae(x, eps)
    assert isinstance(out, VAEOutput) and out.recon.shape == x.shape and out.z.shape == (5, 2)
    h = vae.encoder(x)
    torch.testing.assert_close(out.mu, h[:, :2])
    torch.testing.assert_close(out.logvar, h[:, 2:])
    ref = F.mse_loss(out.recon, x, reduction="none").sum(1) + 0.3 * peer_kl(out.mu, out.logvar)
    torch.testing.assert_close(vae.loss(x, 0.3, "none", eps), ref, rtol=1e-13, atol=1e-13)
    s = vae.sample(4, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 6) and s.device == x.device and s.dtype == F64
    s2 = vae.sample(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, s2)  # exact: the same seed, the same operations


def test_autoencoder_loss_is_mse_sum(device):
    torch.manual_seed(0)
    ae = Autoencoder(nn.Linear(6, 2), nn.Linear(2, 6), 2).double().to(device)
    x = rand(16, 8, 6, device=device)
    recon, z = ae(x)
    assert z.shape == (8, 2)
    torch.testing.assert_close(ae.loss(x), F.mse_loss(recon, x, reduction="sum") / 8, rtol=1e-13, atol=1e-13)


def test_state_dict_round_trip():
    a, b = tiny_vae(seed=0), tiny_vae(seed=1)
    x, eps = rand(17, 3, 6), rand(18, 3, 2)
    assert not torch.equal(a(x, eps).recon, b(x, eps).recon)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x, eps).recon, b(x, eps).recon)  # exact: copied weights, same operations


def test_training_lowers_the_loss_and_is_seeded():
    X = torch.rand(200, 6, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        vae = tiny_vae(torch.float32)
        runs.append(
            train_autoencoder(
                vae,
                X,
                200,
                batch_size=32,
                kl_weight=0.05,
                generator=torch.Generator().manual_seed(3),
                show_progress=False,
            )
        )
    # exact: the same seeds and operations in one process with one thread
    assert runs[0].shape == (200,) and torch.equal(runs[0], runs[1])
    assert runs[0][-20:].mean() < 0.5 * runs[0][:20].mean()
    torch.manual_seed(0)
    ae = Autoencoder(nn.Linear(6, 2), nn.Linear(2, 6))
    l_ae = train_autoencoder(ae, X, 200, batch_size=32, generator=torch.Generator().manual_seed(3), show_progress=False)
    assert l_ae[-20:].mean() < 0.5 * l_ae[:20].mean()


def test_training_on_the_device_with_its_generator(device):
    X = torch.rand(64, 6, generator=torch.Generator().manual_seed(0)).to(device)
    vae = tiny_vae(torch.float32).to(device)
    losses = train_autoencoder(
        vae,
        X,
        20,
        batch_size=16,
        kl_weight=0.05,
        generator=torch.Generator(device=device).manual_seed(0),
        show_progress=False,
    )
    assert losses.device == X.device and bool(torch.isfinite(losses).all())
    s = vae.sample(5, generator=torch.Generator(device=device).manual_seed(0))
    assert s.device == X.device and s.shape == (5, 6)


@pytest.mark.cuda
def test_training_steps_do_not_synchronize_on_cuda():
    dev = torch.device("cuda")
    X = torch.rand(64, 6, device=dev)
    vae, gen = tiny_vae(torch.float32).to(dev), torch.Generator(device=dev).manual_seed(0)
    train_autoencoder(vae, X, 2, batch_size=16, generator=gen, show_progress=False)  # warm-up (lazy init)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_autoencoder(vae, X, 5, batch_size=16, kl_weight=0.05, generator=gen, show_progress=False)
        vae.sample(4, generator=gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_class_entropy_equals_scipy():
    g = torch.Generator().manual_seed(0)
    for n, c in ((5, 10), (100, 3), (1000, 10)):
        lab = torch.randint(0, c, (n,), generator=g)
        ref = scipy_entropy(torch.bincount(lab, minlength=c).numpy())
        assert abs(class_entropy(lab, c).item() - ref) < 1e-12
    assert class_entropy(torch.tensor([2], dtype=torch.int32)) == 0  # exact: log 1 = 0


# ---------------------------------------------------------------- bad input

GOOD = torch.zeros(4, 2)


@pytest.mark.parametrize(
    "args,err,match",
    [
        ((GOOD.numpy(), GOOD), TypeError, "Invalid mu"),
        ((GOOD, GOOD.long()), TypeError, "Invalid logvar"),
        ((GOOD, GOOD[:, :1]), ValueError, "Invalid logvar"),
        ((GOOD, GOOD.double()), TypeError, "must have the dtype of mu"),
        ((torch.tensor(0.0), torch.tensor(0.0)), ValueError, "at least 1 dims"),
    ],
)
def test_gaussian_kl_bad_input(args, err, match):
    before = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    with pytest.raises(err, match=match):
        gaussian_kl(*args)
    for a, b in zip(args, before):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)  # exact: inputs untouched


@pytest.mark.parametrize(
    "args,err,match",
    [
        ((None, GOOD), TypeError, "Invalid mu"),
        ((GOOD, GOOD[:1]), ValueError, "Invalid logvar"),
        ((GOOD, GOOD, GOOD[:, :1]), ValueError, "Invalid noise"),
        ((GOOD, GOOD, [0.0]), TypeError, "Invalid noise"),
    ],
)
def test_reparameterize_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        reparameterize(*args)


X4, R4 = torch.zeros(4, 6), torch.ones(4, 6)


@pytest.mark.parametrize(
    "kw,err,match",
    [
        (dict(recon=R4[:3]), ValueError, "Invalid recon"),
        (dict(x=torch.zeros(6)), ValueError, "Invalid x"),
        (dict(mu=GOOD[:3], logvar=GOOD[:3]), ValueError, "Invalid mu"),
        (dict(mu=torch.zeros(4, 2, 1), logvar=torch.zeros(4, 2, 1)), ValueError, "Invalid mu"),
        (dict(logvar=GOOD[:, :1]), ValueError, "Invalid logvar"),
        (dict(kl_weight=-0.1), ValueError, "Invalid kl_weight: -0.1"),
        (dict(kl_weight=float("nan")), ValueError, "Invalid kl_weight"),
        (dict(kl_weight=True), TypeError, "Invalid kl_weight: True"),
        (dict(reduction="avg"), ValueError, "Invalid reduction: 'avg'"),
    ],
)
def test_vae_loss_bad_input(kw, err, match):
    args = dict(x=X4, recon=R4, mu=GOOD, logvar=GOOD, kl_weight=1.0, reduction="mean") | kw
    with pytest.raises(err, match=match):
        vae_loss(**args)


@pytest.mark.parametrize("cls", [VAE, Autoencoder])
def test_module_constructor_bad_input(cls):
    with pytest.raises(TypeError, match="Invalid encoder"):
        cls(3, nn.Linear(2, 6))
    with pytest.raises(TypeError, match="Invalid decoder"):
        cls(nn.Linear(6, 4), None)
    with pytest.raises(ValueError, match="Invalid latent_dim: 0"):
        cls(nn.Linear(6, 4), nn.Linear(2, 6), 0)
    with pytest.raises(TypeError, match="Invalid latent_dim: 2.0"):
        cls(nn.Linear(6, 4), nn.Linear(2, 6), 2.0)


def test_module_methods_bad_input():
    vae = tiny_vae(torch.float32)
    x = torch.zeros(3, 6)
    x0 = x.clone()
    with pytest.raises(ValueError, match="Invalid encoder output"):
        VAE(nn.Linear(6, 3), nn.Linear(2, 6)).encode(x)
    with pytest.raises(ValueError, match="Invalid encoder output"):
        Autoencoder(nn.Linear(6, 3), nn.Linear(2, 6)).encode(x)
    with pytest.raises(ValueError, match="Invalid x"):
        vae.encode(torch.zeros(6))
    with pytest.raises(TypeError, match="Invalid x"):
        vae.encode(x.long())
    with pytest.raises(ValueError, match="Invalid z"):
        vae.decode(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="Invalid noise"):
        vae(x, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="Invalid kl_weight"):
        vae.loss(x, kl_weight=-1.0)
    with pytest.raises(ValueError, match="Invalid reduction"):
        vae.loss(x, reduction="avg")
    with pytest.raises(ValueError, match="Invalid n: 0"):
        vae.sample(0)
    with pytest.raises(TypeError, match="Invalid n: 2.5"):
        vae.sample(2.5)
    with pytest.raises(TypeError, match="Invalid generator: 3"):
        vae.sample(2, generator=3)
    with pytest.raises(ValueError, match="Invalid reduction"):
        Autoencoder(nn.Linear(6, 2), nn.Linear(2, 6)).loss(x, reduction="avg")
    assert torch.equal(x, x0)


def test_train_autoencoder_bad_input():
    vae, X = tiny_vae(torch.float32), torch.rand(10, 6)
    state, X0 = copy.deepcopy(vae.state_dict()), X.clone()
    ae = Autoencoder(nn.Linear(6, 2), nn.Linear(2, 6))
    cases = [
        (dict(model=nn.Linear(6, 6)), TypeError, "Invalid model"),
        (dict(X=X.numpy()), TypeError, "Invalid X"),
        (dict(n_steps=0), ValueError, "Invalid n_steps: 0"),
        (dict(n_steps=1.0), TypeError, "Invalid n_steps: 1.0"),
        (dict(batch_size=0), ValueError, "Invalid batch_size: 0"),
        (dict(lr=0.0), ValueError, "Invalid lr: 0.0"),
        (dict(kl_weight=-1.0), ValueError, "Invalid kl_weight: -1.0"),
        (dict(model=ae, kl_weight=0.05), ValueError, "Invalid kl_weight: 0.05"),
        (dict(show_progress=1), TypeError, "Invalid show"),
        (dict(generator=0), TypeError, "Invalid generator: 0"),
    ]
    for kw, err, match in cases:
        args = dict(model=vae, X=X, n_steps=2) | kw
        with pytest.raises(err, match=match):
            train_autoencoder(**args)
    assert torch.equal(X, X0)  # exact: nothing mutated
    for k, v in vae.state_dict().items():
        assert torch.equal(v, state[k])


@pytest.mark.parametrize(
    "args,err,match",
    [
        ((torch.tensor([0.0, 1.0]),), TypeError, "Invalid labels"),
        ((torch.tensor([True, False]),), TypeError, "Invalid labels"),
        (([0, 1],), TypeError, "Invalid labels"),
        ((torch.tensor([], dtype=torch.long),), ValueError, "Invalid labels"),
        ((torch.zeros(2, 2, dtype=torch.long),), ValueError, "Invalid labels"),
        ((torch.tensor([-1, 0]),), ValueError, r"values must lie in \[0, 10\)"),
        ((torch.tensor([0, 3]), 3), ValueError, r"values must lie in \[0, 3\)"),
        ((torch.tensor([0]), 0), ValueError, "Invalid num_classes: 0"),
        ((torch.tensor([0]), 2.0), TypeError, "Invalid num_classes: 2.0"),
    ],
)
def test_class_entropy_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        class_entropy(*args)
