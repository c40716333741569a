"""Tests for su_notes.gan.selfmod beyond the notebook's checks.

Peers: `torch.nn.BatchNorm2d` (zero-initialised SELF-MOD heads must reproduce it, running statistics included),
`torch.nn.functional.instance_norm` (AdaIN, with the batch folded into the channels so that its per-channel affine
becomes a per-sample one), brute-force Python loops (overlap counts of transposed convolutions), and an independent
port of google/compare_gan's `self_modulated_batch_norm` + `standardize_batch` (architectures/arch_ops.py), written
here from their equations in TensorFlow's conventions (kernels (in, out), moving-average `decay`, `tf.nn.moments`'
biased variance, N(0, 0.02²) kernel init with γ bias 1). compare_gan itself needs TensorFlow 1 and cannot run here.
Bad input: clear errors, nothing mutated. Numerical tests take `--device`.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from torch import nn

from su_notes.gan.selfmod import (
    AdaIN,
    ClassConditionalLatent,
    DCGANGenerator,
    SelfModBatchNorm2d,
    SelfModMLPGenerator,
    deconv_overlap,
    resize_conv_overlap,
)

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
pytestmark = pytest.mark.usefixtures("one_thread")


def rand(gen, *shape, device="cpu", dtype=F64, scale=1.0, shift=0.0):
    return (scale * torch.randn(*shape, generator=gen, dtype=F64) + shift).to(device=device, dtype=dtype)


def randomise_heads(m, gen, std=0.3):
    "Give the zero-initialised heads random weights (a trained-looking modulation)."
    with torch.no_grad():
        for head in (m.gamma, m.beta):
            head.weight.copy_(std * torch.randn(head.weight.shape, generator=gen, dtype=F64))
            head.bias.add_(0.1 * torch.randn(head.bias.shape, generator=gen, dtype=F64))
    return m


# ---------------------------------------------------------------- compare_gan port, from its equations


class CompareGanSelfModBN:
    """compare_gan's self-modulated BN, re-derived: NHWC statistics (here on NCHW, axes 0, 2, 3), moving averages
    `v <- decay·v + (1-decay)·batch` of the mean and of the *biased* variance (tf.nn.moments), variance_epsilon
    under the square root, one shared hidden ReLU layer, kernels (in, out) with `x @ kernel + bias`."""

    def __init__(self, num_channels, z_dim, num_hidden=32, decay=0.999, epsilon=1e-3, gen=None):
        std = 0.02  # compare_gan's `linear` default stddev
        n = lambda *s: std * torch.randn(*s, generator=gen, dtype=F64)
        self.decay, self.epsilon = decay, epsilon
        self.hidden_kernel, self.hidden_bias = (
            n(z_dim, num_hidden),
            torch.zeros(num_hidden, dtype=F64),
        )
        self.gamma_kernel, self.gamma_bias = (
            n(num_hidden, num_channels),
            torch.ones(num_channels, dtype=F64),
        )
        self.beta_kernel, self.beta_bias = (
            n(num_hidden, num_channels),
            torch.zeros(num_channels, dtype=F64),
        )
        self.moving_mean = torch.zeros(num_channels, dtype=F64)
        self.moving_variance = torch.ones(num_channels, dtype=F64)

    def load_from(self, m: SelfModBatchNorm2d):
        "Copy a torch module's parameters (torch weight (out, in) = TF kernel transposed) and running stats."
        d = lambda t: t.detach().to(F64).cpu().clone()
        self.hidden_kernel, self.hidden_bias = d(m.hidden.weight).T, d(m.hidden.bias)
        self.gamma_kernel, self.gamma_bias = d(m.gamma.weight).T, d(m.gamma.bias)
        self.beta_kernel, self.beta_bias = d(m.beta.weight).T, d(m.beta.bias)
        self.moving_mean, self.moving_variance = d(m.running_mean), d(m.running_var)
        return self

    def __call__(self, x, z, is_training):
        x, z = x.detach().to(F64).cpu(), z.detach().to(F64).cpu()
        if is_training:
            mean = x.mean(dim=(0, 2, 3))
            variance = ((x - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))  # tf.nn.moments: biased
            self.moving_mean = self.decay * self.moving_mean + (1 - self.decay) * mean
            self.moving_variance = self.decay * self.moving_variance + (1 - self.decay) * variance
        else:
            mean, variance = self.moving_mean, self.moving_variance
        out = (x - mean[None, :, None, None]) / torch.sqrt(variance[None, :, None, None] + self.epsilon)
        h = torch.clamp(z @ self.hidden_kernel + self.hidden_bias, min=0)
        gamma, beta = h @ self.gamma_kernel + self.gamma_bias, h @ self.beta_kernel + self.beta_bias
        return out * gamma[:, :, None, None] + beta[:, :, None, None]


def test_matches_compare_gan_equations_train_and_eval(device):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    m = randomise_heads(SelfModBatchNorm2d(5, 7).double(), gen).to(device)
    port = CompareGanSelfModBN(5, 7).load_from(m)
    b, h, w = 6, 3, 4
    n = b * h * w
    for _ in range(4):
        x, z = (
            rand(gen, b, 5, h, w, device=device, scale=2.0, shift=1.0),
            rand(gen, b, 7, device=device),
        )
        var_biased = x.var(dim=(0, 2, 3), unbiased=False).cpu()
        rv_before = m.running_var.detach().cpu().clone()
        torch.testing.assert_close(m(x, z).cpu(), port(x, z, True), rtol=1e-12, atol=1e-12)
        # same moving mean; PyTorch's running variance averages the unbiased variance, compare_gan the biased one
        # relative: the batch means are ≈ 1 (shift 1.0), far from 0, and both sides sum the same b·h·w terms
        torch.testing.assert_close(m.running_mean.cpu(), port.moving_mean, rtol=1e-13, atol=0)
        expected = 0.999 * rv_before + 0.001 * var_biased * n / (n - 1)
        torch.testing.assert_close(m.running_var.cpu(), expected, rtol=1e-13, atol=0)
    gap = (m.running_var.cpu() - port.moving_variance).abs().max().item()
    assert gap > 1e-6  # the documented difference is real, and measured
    m.eval()
    port.moving_variance = m.running_var.detach().cpu().clone()  # same running stats: same eval output
    x, z = rand(gen, 3, 5, h, w, device=device), rand(gen, 3, 7, device=device)
    torch.testing.assert_close(m(x, z).cpu(), port(x, z, False), rtol=1e-12, atol=1e-12)


def test_compare_gan_init_is_not_exactly_batch_norm_ours_is():
    gen = torch.Generator().manual_seed(1)
    x, z = rand(gen, 8, 4, 3, 3, scale=3.0), rand(gen, 8, 6)
    bn = nn.BatchNorm2d(4, eps=1e-3, momentum=0.001).double()
    ref = bn(x).detach()
    port = CompareGanSelfModBN(4, 6, gen=gen)  # compare_gan's own init: N(0, 0.02²) kernels
    assert (port(x, z, True) - ref).abs().max() > 1e-4
    torch.manual_seed(1)
    ours = SelfModBatchNorm2d(4, 6).double()
    # BN's kernel may fold its affine (1, 0) into the scale: a few ulps of the output's size
    torch.testing.assert_close(ours(x, z), ref, rtol=0, atol=8 * EPS64 * ref.abs().max().item())


def test_linear_heads_num_hidden_zero():
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    m = randomise_heads(SelfModBatchNorm2d(3, 4, num_hidden=0).double(), gen)
    assert m.hidden is None and m.gamma.in_features == 4
    x, z = rand(gen, 5, 3, 2, 2), rand(gen, 5, 4)
    xh = F.batch_norm(x, None, None, training=True, eps=1e-3)
    gamma, beta = z @ m.gamma.weight.T + m.gamma.bias, z @ m.beta.weight.T + m.beta.bias
    ref = gamma[:, :, None, None] * xh + beta[:, :, None, None]
    torch.testing.assert_close(m(x, z), ref, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------- peer: nn.BatchNorm2d


@given(
    b=st.integers(2, 6),
    c=st.integers(1, 5),
    hw=st.integers(1, 4),
    zd=st.integers(1, 6),
    momentum=st.sampled_from([0.001, 0.1, 1.0, 0.0, None]),
    seed=st.integers(0, 2**16),
)
def test_zero_heads_equal_batchnorm2d_any_shape(device, b, c, hw, zd, momentum, seed):
    gen = torch.Generator().manual_seed(seed)
    sm = SelfModBatchNorm2d(c, zd, momentum=momentum).double().to(device)
    bn = nn.BatchNorm2d(c, eps=1e-3, momentum=momentum).double().to(device)
    for _ in range(3):
        x = rand(gen, b, c, hw, hw + 1, device=device, scale=2.0, shift=-1.0)
        torch.testing.assert_close(sm(x, rand(gen, b, zd, device=device)), bn(x), rtol=0, atol=1e-13)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        # exact: both update their statistics in the same F.batch_norm kernel from the same batches
        torch.testing.assert_close(getattr(sm, name), getattr(bn, name), rtol=0, atol=0)
    sm.eval()
    bn.eval()
    x = rand(gen, b, c, hw, hw, device=device)
    torch.testing.assert_close(sm(x, rand(gen, b, zd, device=device)), bn(x), rtol=0, atol=1e-13)


# the input gradient of batch norm sums over the N = 16·5·5 = 400 values of a channel: ~N·eps of slack
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_zero_heads_equal_batchnorm2d_gradients(device, dtype, tol):
    gen = torch.Generator().manual_seed(3)
    sm = SelfModBatchNorm2d(8, 4).to(device=device, dtype=dtype)
    bn = nn.BatchNorm2d(8, eps=1e-3, momentum=0.001).to(device=device, dtype=dtype)
    x = rand(gen, 16, 8, 5, 5, device=device, dtype=dtype, scale=4.0).requires_grad_(True)
    z = rand(gen, 16, 4, device=device, dtype=dtype)
    w = rand(gen, 16, 8, 5, 5, device=device, dtype=dtype)
    out = sm(x, z)
    assert out.dtype == dtype and out.device == x.device
    (gs,) = torch.autograd.grad((out * w).sum(), x)
    (gb,) = torch.autograd.grad((bn(x) * w).sum(), x)
    torch.testing.assert_close(gs, gb, rtol=tol, atol=tol)
    # BN's affine gradients = the head biases' gradients at zero weights
    (sm(x, z) * w).sum().backward()
    (bn(x) * w).sum().backward()
    torch.testing.assert_close(sm.gamma.bias.grad, bn.weight.grad, rtol=tol * 10, atol=tol * 10)
    torch.testing.assert_close(sm.beta.bias.grad, bn.bias.grad, rtol=tol * 10, atol=tol * 10)


def test_buffers_named_as_batchnorm2d_and_state_dict_round_trip(device):
    gen = torch.Generator().manual_seed(4)
    bn = nn.BatchNorm2d(3)
    sm = randomise_heads(SelfModBatchNorm2d(3, 5).double(), gen).to(device)
    assert {n for n, _ in sm.named_buffers()} == {n for n, _ in bn.named_buffers()}
    for _ in range(3):
        sm(rand(gen, 4, 3, 2, 2, device=device), rand(gen, 4, 5, device=device))
    clone = SelfModBatchNorm2d(3, 5).double().to(device)
    clone.load_state_dict(sm.state_dict())
    assert clone.num_batches_tracked.item() == 3
    x, z = rand(gen, 4, 3, 2, 2, device=device), rand(gen, 4, 5, device=device)
    for mode in (False, True):
        sm.train(mode)
        clone.train(mode)
        # exact: the clone holds copies of the same tensors and runs the same kernels on the same inputs
        torch.testing.assert_close(clone(x, z), sm(x, z), rtol=0, atol=0)


def test_gradcheck_modulated(device):
    gen = torch.Generator().manual_seed(5)
    m = randomise_heads(SelfModBatchNorm2d(3, 4, num_hidden=6).double(), gen).to(device)
    x = rand(gen, 4, 3, 2, 3, device=device).requires_grad_(True)
    z = rand(gen, 4, 4, device=device).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: m(a, b), (x, z))


def test_batch_statistics_shared_modulation_per_sample():
    # changing one sample's z changes only that sample's output; changing one sample's x changes every output
    gen = torch.Generator().manual_seed(6)
    m = randomise_heads(SelfModBatchNorm2d(3, 4).double(), gen)
    x, z = rand(gen, 5, 3, 2, 2), rand(gen, 5, 4)
    base = m(x, z)
    z2 = z.clone()
    z2[2] += 1.0
    d = (m(x, z2) - base).abs().amax(dim=(1, 2, 3))
    # exact: the other samples' rows of z, of the batch statistics and of every product are unchanged
    assert d[2] > 1e-3 and torch.all(d[[0, 1, 3, 4]] == 0)
    x2 = x.clone()
    x2[2] += 1.0
    assert torch.all((m(x2, z) - base).abs().amax(dim=(1, 2, 3))[[0, 1, 3, 4]] > 1e-6)


# ---------------------------------------------------------------- peer: F.instance_norm (AdaIN)


@given(
    b=st.integers(1, 5),
    c=st.integers(1, 5),
    h=st.integers(1, 4),
    w=st.integers(2, 4),
    sd=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_adain_equals_instance_norm_plus_affine(device, b, c, h, w, sd, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ada = AdaIN(c, sd).double().to(device)
    x, y = (
        rand(gen, b, c, h, w, device=device, scale=3.0, shift=2.0),
        rand(gen, b, sd, device=device),
    )
    gamma, beta = ada.style(y)
    ref = F.instance_norm(x.reshape(1, b * c, h, w), weight=gamma.reshape(-1), bias=beta.reshape(-1), eps=1e-5).reshape(
        b, c, h, w
    )
    torch.testing.assert_close(ada(x, y), ref, rtol=1e-12, atol=1e-12)
    # and: plain F.instance_norm, then the per-sample affine by hand
    ref2 = gamma[:, :, None, None] * F.instance_norm(x, eps=1e-5) + beta[:, :, None, None]
    torch.testing.assert_close(ada(x, y), ref2, rtol=1e-12, atol=1e-12)
    ada.eval()
    torch.testing.assert_close(ada(x, y), ref, rtol=1e-12, atol=1e-12)  # no mode dependence


def test_adain_init_biases_and_per_sample_independence(device):
    ada = AdaIN(4, 3).to(device)
    assert torch.all(ada.affine.bias[:4] == 1) and torch.all(ada.affine.bias[4:] == 0)
    assert ada.affine.weight.abs().max() > 0 and len(list(ada.buffers())) == 0
    gen = torch.Generator().manual_seed(7)
    x = rand(gen, 3, 4, 3, 3, device=device, dtype=torch.float32)
    y = rand(gen, 3, 3, device=device, dtype=torch.float32)
    x2 = x.clone()
    x2[1:] *= 5.0
    # sample 0's statistics come from its own 9 values; a few ulps in case a kernel reorders its sums
    eps32 = torch.finfo(torch.float32).eps
    tol = 4 * eps32 * ada(x, y).abs().max().item()
    torch.testing.assert_close(ada(x2, y)[0], ada(x, y)[0], rtol=0, atol=tol)


# ---------------------------------------------------------------- conditional latent


def test_class_conditional_latent_dense_form(device):
    gen = torch.Generator().manual_seed(8)
    cl = ClassConditionalLatent(6, 4).double().to(device)
    z, c = rand(gen, 9, 4, device=device), torch.randint(0, 6, (9,), generator=gen).to(device)
    # exact: zero tables add 0.0 and multiply by 0.0
    torch.testing.assert_close(cl(z, c), z, rtol=0, atol=0)
    with torch.no_grad():
        cl.shift.weight.copy_(rand(gen, 6, 4, device=device))
        cl.scale.weight.copy_(rand(gen, 6, 4, device=device))
    one = F.one_hot(c, 6).double()
    ref = z + one @ cl.shift.weight + (one @ cl.scale.weight) * z
    tol = 4 * EPS64 * ref.abs().max().item()  # one-hot products: exact up to a few ulps
    torch.testing.assert_close(cl(z, c), ref, rtol=0, atol=tol)
    torch.testing.assert_close(cl(z, c.int()), ref, rtol=0, atol=tol)


# ---------------------------------------------------------------- overlap counts vs brute force


def brute_force_counts(k, s, size):
    "Count, for every output pixel of a no-padding transposed convolution, the (input, tap) pairs landing on it."
    n_out = (size - 1) * s + k
    counts = [[0] * n_out for _ in range(n_out)]
    for i in range(size):
        for j in range(size):
            for a in range(k):
                for b in range(k):
                    counts[i * s + a][j * s + b] += 1
    return torch.tensor(counts, dtype=F64)


@given(k=st.integers(1, 7), s=st.integers(1, 4), extra=st.integers(0, 3))
def test_deconv_overlap_brute_force(k, s, extra):
    size = 2 - (2 - k) // s + extra  # the smallest size with an interior period, and up
    full = brute_force_counts(k, s, size)
    # exact: integer tap counts, exact in float64
    torch.testing.assert_close(deconv_overlap(k, s, size, interior=False), full, rtol=0, atol=0)
    inner = deconv_overlap(k, s, size)
    assert inner.shape[0] >= s
    assert int(inner.min()) == (k // s) ** 2 and int(inner.max()) == (-(-k // s)) ** 2
    # the interior is where the count is the steady periodic value: equal to the brute-force interior
    torch.testing.assert_close(inner, full[k - 1 : (size - 1) * s + 1, k - 1 : (size - 1) * s + 1], rtol=0, atol=0)


def test_post_kernels_min_max():
    got = {k: (int(deconv_overlap(k, 2).min()), int(deconv_overlap(k, 2).max())) for k in (3, 4, 5)}
    assert got == {3: (1, 4), 4: (4, 4), 5: (4, 9)}


@given(k=st.integers(1, 6), s=st.integers(1, 3), size=st.integers(3, 6))
def test_resize_conv_overlap_uniform(k, s, size):
    if s * (size - 1) - (k - 1) + 1 < s:
        return
    inner = resize_conv_overlap(k, s, size)
    assert bool((inner == k * k).all())
    full = resize_conv_overlap(k, s, size, interior=False)
    assert full.shape == (s * size + k - 1,) * 2 and full.max() == k * k


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("image_size", [8, 16])
def test_dcgan_shapes_and_same_function_at_init(device, k, image_size):
    z = torch.randn(4, 10, generator=torch.Generator().manual_seed(9)).to(device)
    torch.manual_seed(0)
    a = DCGANGenerator(10, 3, image_size, 16, kernel_size=k).to(device)
    torch.manual_seed(0)
    b = DCGANGenerator(10, 3, image_size, 16, kernel_size=k, self_modulation=False).to(device)
    xa = a(z)
    assert xa.shape == (4, 3, image_size, image_size) and xa.abs().max() <= 1
    torch.testing.assert_close(xa, b(z), rtol=0, atol=1e-6)
    assert sum(isinstance(m, SelfModBatchNorm2d) for m in a.modules()) == round(math.log2(image_size / 4))


def test_mlp_generator_same_function_at_init_then_diverges():
    torch.manual_seed(0)
    a = SelfModMLPGenerator(6, 3, hidden=16, n_layers=2)
    torch.manual_seed(0)
    b = SelfModMLPGenerator(6, 3, hidden=16, n_layers=2, self_modulation=False)
    z = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    # same trunk; BN's kernel may fold its affine (1, 0) into the scale: a few float32 ulps per layer
    tol = 16 * torch.finfo(torch.float32).eps * b(z).abs().max().item()
    torch.testing.assert_close(a(z), b(z), rtol=0, atol=tol)
    for m in (a, b):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            (m(z)[:, 0] * z[:, 0]).mean().backward()
            opt.step()
    assert (a(z) - b(z)).abs().max() > 1e-4


# ---------------------------------------------------------------- bad input: clear errors, nothing mutated


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_features=0, z_dim=3), "Invalid num_features: 0"),
        (dict(num_features=2.0, z_dim=3), "Invalid num_features: 2.0"),
        (dict(num_features=2, z_dim=True), "Invalid z_dim: True"),
        (dict(num_features=2, z_dim=3, num_hidden=-1), "Invalid num_hidden: -1"),
        (dict(num_features=2, z_dim=3, eps=0.0), "Invalid eps: 0.0"),
        (dict(num_features=2, z_dim=3, eps=float("nan")), "Invalid eps: nan"),
        (dict(num_features=2, z_dim=3, momentum=1.5), "Invalid momentum: 1.5"),
        (dict(num_features=2, z_dim=3, momentum=-0.1), "Invalid momentum: -0.1"),
        (dict(num_features=2, z_dim=3, momentum=True), "Invalid momentum: True"),
    ],
)
def test_selfmod_constructor_errors(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        SelfModBatchNorm2d(**kwargs)


def test_selfmod_forward_errors_mutate_nothing():
    m = SelfModBatchNorm2d(3, 4)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    x, z = torch.randn(5, 3, 2, 2), torch.randn(5, 4)
    bad = [
        ((x[0], z), ValueError, "Invalid x"),
        ((x[:, :2], z), ValueError, "Invalid x"),
        ((x, z[:4]), ValueError, "Invalid z"),
        ((x, z[:, :3]), ValueError, "Invalid z"),
        ((x, z[:, :, None]), ValueError, "Invalid z"),
        ((x.long(), z), TypeError, "Invalid x"),
        ((x, z.long()), TypeError, "Invalid z"),
        ((x.numpy(), z), TypeError, "Invalid x"),
    ]
    for args, err, match in bad:
        with pytest.raises(err, match=match):
            m(*args)
    for k, v in m.state_dict().items():
        assert torch.equal(v, state[k]), k  # exact: compared with copies
    with pytest.raises(ValueError, match="Invalid z"):
        m.modulation(torch.randn(2, 5))


def test_adain_and_latent_errors():
    for kwargs, match in [
        (dict(num_features=0, style_dim=2), "Invalid num_features: 0"),
        (dict(num_features=2, style_dim=0), "Invalid style_dim: 0"),
        (dict(num_features=2, style_dim=2, eps=-1.0), "Invalid eps: -1.0"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            AdaIN(**kwargs)
    ada = AdaIN(3, 2)
    x, y = torch.randn(4, 3, 2, 2), torch.randn(4, 2)
    for args, err, match in [
        ((x[:, :, :1, :1], y), ValueError, "Invalid x"),
        ((x[:, :1], y), ValueError, "Invalid x"),
        ((x, y[:3]), ValueError, "Invalid y"),
        ((x, y.long()), TypeError, "Invalid y"),
    ]:
        with pytest.raises(err, match=match):
            ada(*args)
    with pytest.raises(ValueError, match="Invalid num_classes: 0"):
        ClassConditionalLatent(0, 3)
    cl = ClassConditionalLatent(4, 3)
    z, c = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    for args, err, match in [
        ((z, c.float()), TypeError, "Invalid c"),
        ((z, c[:4]), ValueError, "Invalid c"),
        ((z, [0, 1, 2, 3, 0]), TypeError, "Invalid c"),
        ((z[:, :2], c), ValueError, "Invalid z"),
    ]:
        with pytest.raises(err, match=match):
            cl(*args)


def test_overlap_and_generator_errors():
    for fn, args, err, match in [
        (deconv_overlap, (0,), ValueError, "Invalid kernel_size: 0"),
        (deconv_overlap, (3, 0), ValueError, "Invalid stride: 0"),
        (deconv_overlap, (3, 2, 1), ValueError, "Invalid size: 1"),
        (deconv_overlap, (3, 2, 8, 1), TypeError, "Invalid interior: 1"),
        (resize_conv_overlap, (3, 1.5), TypeError, "Invalid scale: 1.5"),
        (resize_conv_overlap, (7, 2, 2), ValueError, "Invalid size: 2"),
        (DCGANGenerator, (16, 3, 12), ValueError, "Invalid image_size: 12"),
        (DCGANGenerator, (16, 3, 4), ValueError, "Invalid image_size: 4"),
        (DCGANGenerator, (0,), ValueError, "Invalid z_dim: 0"),
        (DCGANGenerator, (16, 3, 16, 8, 4, 1), TypeError, "Invalid self_modulation: 1"),
        (SelfModMLPGenerator, (4, 2, 0), ValueError, "Invalid hidden: 0"),
        (SelfModMLPGenerator, (4, 2, 8, 2, "yes"), TypeError, "Invalid self_modulation: 'yes'"),
    ]:
        with pytest.raises(err, match=match):
            fn(*args)
    g = SelfModMLPGenerator(4, hidden=8)
    with pytest.raises(ValueError, match="Invalid z"):
        g(torch.randn(3, 5))


# ---------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_cuda_forward_backward_without_host_sync():
    dev = torch.device("cuda")
    m = SelfModBatchNorm2d(16, 8).to(dev)
    g = DCGANGenerator(8, 3, 16, 32).to(dev)
    x, z = torch.randn(4, 16, 4, 4, device=dev), torch.randn(4, 8, device=dev)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        m(x, z).sum().backward()
        g(z).square().mean().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
