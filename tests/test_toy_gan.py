"""The shared toy-GAN bench (su_notes.gan.toy): losses against the BigGAN-PyTorch hinge formulas, reproducibility,
penalties, bad input."""

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from su_notes.core import make_gaussian_mixture_2d
from su_notes.gan.toy import GANHistory, hinge_loss_d, hinge_loss_g, sample_generator, train_gan


def biggan_loss_hinge_dis(dis_fake, dis_real):
    "BigGAN-PyTorch's losses.loss_hinge_dis, written from its formula: two terms, F.relu, means."
    return torch.mean(F.relu(1.0 - dis_real)), torch.mean(F.relu(1.0 + dis_fake))


def models(seed, device, hidden=16):
    torch.manual_seed(seed)
    g = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2)).to(device)
    d = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Flatten(0)).to(device)
    return g, d


@pytest.mark.parametrize("shape", [(7,), (3, 7)])
def test_hinge_losses_match_biggan(shape, device):
    g = torch.Generator().manual_seed(0)
    real, fake = (
        (torch.randn(*shape, generator=g) * 2).to(device),
        (torch.randn(*shape, generator=g) * 2).to(device),
    )
    a, b = biggan_loss_hinge_dis(fake, real)
    torch.testing.assert_close(hinge_loss_d(real, fake), a + b)
    torch.testing.assert_close(hinge_loss_g(fake), -torch.mean(fake))


def test_train_gan_reproducible_and_moves(device):
    ring = make_gaussian_mixture_2d("ring", dtype=torch.float32)
    (g1, d1), (g2, d2) = models(0, device), models(0, device)
    w0 = [p.clone() for p in g1.parameters()]
    h1 = train_gan(g1, d1, ring.sample, 2, n_steps=15, batch_size=32, seed=4, show_progress=False)
    h2 = train_gan(g2, d2, ring.sample, 2, n_steps=15, batch_size=32, seed=4, show_progress=False)
    # exact: the same kernels on the same inputs in one process (same weights, seeds, threads)
    assert isinstance(h1, GANHistory) and h1 == h2 and len(h1.g_loss) == 15
    assert all(isinstance(v, float) for v in h1.d_loss)
    assert any(not torch.equal(a, b) for a, b in zip(w0, g1.parameters()))
    h3 = train_gan(*models(0, device), ring.sample, 2, n_steps=15, batch_size=32, seed=5, show_progress=False)
    assert h3 != h1


def test_penalty_is_added_to_its_player(device):
    ring = make_gaussian_mixture_2d("ring", dtype=torch.float32)
    g, d = models(1, device)
    w = d[0].weight
    h = train_gan(
        g,
        d,
        ring.sample,
        2,
        n_steps=3,
        batch_size=16,
        seed=0,
        show_progress=False,
        d_penalty=lambda: 1e3 + 0 * w.sum(),
    )
    assert min(h.d_loss) > 1e3 and max(h.g_loss) < 1e3
    g, d = models(1, device)
    calls = []
    train_gan(
        g,
        d,
        ring.sample,
        2,
        n_steps=4,
        batch_size=16,
        show_progress=False,
        g_penalty=lambda: calls.append(1) or torch.zeros((), device=device),
    )
    assert len(calls) == 4


def test_sample_generator_seeded(device):
    g, _ = models(2, device)
    a, b = sample_generator(g, 50, 2, seed=3), sample_generator(g, 50, 2, seed=3)
    # exact: the same seed draws the same noise, and the same forward runs on it
    assert a.shape == (50, 2) and a.device.type == device.type and torch.equal(a, b) and not a.requires_grad
    assert not torch.equal(a, sample_generator(g, 50, 2, seed=4))


@pytest.mark.parametrize(
    "kw, exc, msg",
    [
        (dict(net_g="G"), TypeError, "Invalid net_g"),
        (dict(net_d=None), TypeError, "Invalid net_d"),
        (dict(net_g=nn.ReLU()), ValueError, "Invalid net_g"),
        (dict(sample_real=3), TypeError, "Invalid sample_real"),
        (dict(z_dim=0), ValueError, "Invalid z_dim: 0"),
        (dict(n_steps=2.0), TypeError, "Invalid n_steps"),
        (dict(batch_size=0), ValueError, "Invalid batch_size: 0"),
        (dict(lr=-1e-3), ValueError, "Invalid lr"),
        (dict(betas=(0.5,)), ValueError, "Invalid betas"),
        (dict(betas=(0.5, 1.0)), ValueError, r"Invalid betas\[1\]"),
        (dict(d_loss="hinge"), TypeError, "Invalid d_loss"),
        (dict(g_penalty=1.0), TypeError, "Invalid g_penalty"),
        (dict(seed=-1), ValueError, "Invalid seed: -1"),
    ],
)
def test_train_gan_bad_input_mutates_nothing(kw, exc, msg):
    ring = make_gaussian_mixture_2d("ring", dtype=torch.float32)
    g, d = models(0, "cpu")
    before = [p.clone() for p in [*g.parameters(), *d.parameters()]]
    args = dict(net_g=g, net_d=d, sample_real=ring.sample, z_dim=2, n_steps=2, show_progress=False)
    args.update(kw)
    with pytest.raises(exc, match=msg):
        train_gan(**args)
    # exact: a refused call must not touch the weights (compared with copies)
    assert all(torch.equal(a, b) for a, b in zip(before, [*g.parameters(), *d.parameters()]))


def test_losses_and_sampler_bad_input():
    with pytest.raises(TypeError, match="Invalid real_logits"):
        hinge_loss_d([1.0], torch.zeros(1))
    with pytest.raises(TypeError, match="Invalid fake_logits"):
        hinge_loss_g(torch.zeros(2, dtype=torch.long))
    g, _ = models(0, "cpu")
    with pytest.raises(ValueError, match="Invalid n: 0"):
        sample_generator(g, 0, 2)
    with pytest.raises(TypeError, match="Invalid net_g"):
        sample_generator(lambda z: z, 5, 2)
    with pytest.raises(ValueError, match="Invalid net_g"):
        sample_generator(nn.ReLU(), 5, 2)


def test_mode_quality_against_a_hand_count(device):
    "Points placed by hand: 3 on mode 0 (one outside 3σ), 2 on mode 4, one far away; anisotropic covariances."
    from su_notes.core import GaussianMixture
    from su_notes.gan.toy import mode_quality

    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    covs = torch.stack(
        [
            torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64)),
            torch.eye(2, dtype=torch.float64),
        ]
    )
    mix = GaussianMixture(torch.ones(2, dtype=torch.float64), means, covs)
    # (0, 5.9): Mahalanobis 2.95 under cov diag(1, 4) → inside; (2.9, 0) inside; (3.1, 0) outside
    x = torch.tensor([[0.0, 5.9], [2.9, 0.0], [3.1, 0.0], [10.0, 1.0], [11.0, 0.0], [5.0, 30.0]], device=device)
    q = mode_quality(x, mix)
    assert q.counts.tolist() == [2, 2] and q.modes == 2 and abs(q.high_quality - 4 / 6) < 1e-12
    assert mode_quality(x, mix, min_frac=0.5).modes == 0
    assert mode_quality(x, mix, n_std=100.0).high_quality == 1.0  # exact: the mean of six True values


def test_mode_quality_bad_input():
    from su_notes.gan.toy import mode_quality

    ring = make_gaussian_mixture_2d("ring")
    with pytest.raises(TypeError, match="Invalid mixture"):
        mode_quality(torch.zeros(3, 2), ring.means)
    with pytest.raises(ValueError, match="Invalid x"):
        mode_quality(torch.zeros(3, 3), ring)
    with pytest.raises(ValueError, match="Invalid n_std"):
        mode_quality(torch.zeros(3, 2), ring, n_std=0.0)
    with pytest.raises(ValueError, match="Invalid min_frac"):
        mode_quality(torch.zeros(3, 2), ring, min_frac=1.5)
