"""Tests for su_notes.bert.init beyond the notebook's checks.

- peers: scipy's `truncnorm` (std of the truncated standard normal, and a Kolmogorov–Smirnov test of the samples
  against its CDF); `torch.nn.init.trunc_normal_` with explicit bounds ±2σ (same law: two-sample KS) and with its
  default bounds (the pitfall: no truncation); Hugging Face transformers' random-init `BertModel` (plain normal,
  transformers#38);
- the shared model's `BertLayer`: `PostLNBlock` with its state_dict gives the same output;
- properties (hypothesis): the sample std ≈ std·c(n_sigma) and |w| ≤ n_sigma·std for any std, n_sigma;
- dtype/device following (float16/bfloat16/float64, `--device cuda`), generator reproducibility;
- bad input of every public name: clear error naming the argument, nothing mutated.
"""

import math

import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn

from su_notes.core import assert_close
from su_notes.bert.init import (
    PostLNBlock,
    PreLNBlock,
    bert_trunc_normal_,
    init_bert_weights_,
    truncated_normal_std,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


# ---------------------------------------------------------------- peer: scipy.stats.truncnorm
@pytest.mark.parametrize("a", [0.01, 0.3, 0.5, 1.0, 2.0, 2.5, 4.0, 8.0])
def test_factor_vs_scipy(a):
    stats = pytest.importorskip("scipy.stats")
    # scipy's moments cancel for small a (its relative error grows like eps/a²: 1e-4 at a = 1e-4, while
    # ours matches a/√3 there), so the tolerance is 1e-12 relative, widened to 1e-14/a² below a = 0.1
    rtol = max(1e-12, 1e-14 / a**2)
    assert_close(truncated_normal_std(a), float(stats.truncnorm.std(-a, a)), rtol=rtol, atol=0)


def test_factor_post_numbers():
    c = truncated_normal_std(2.0)
    assert round(c, 7) == 0.8796257 and round(1 / c, 7) == 1.1368472
    assert round(0.02 * c, 7) == 0.0175925
    assert truncated_normal_std(math.inf) == 1.0
    assert truncated_normal_std() == c


def test_factor_small_a_limit_and_monotone():
    # the uniform limit a/√3; the closed form would lose ~eps/a² here, the series does not
    for a in (1e-8, 1e-5, 1e-3):
        assert_close(truncated_normal_std(a), a / math.sqrt(3), rtol=1e-6, atol=0)
    grid = [0.05 * k for k in range(1, 120)]  # up to 5.95; c(a) rounds to 1.0 beyond ~8
    vals = [truncated_normal_std(a) for a in grid]
    assert all(x < y for x, y in zip(vals, vals[1:])) and vals[-1] < 1.0
    # continuity across the series / closed-form switch at a = 0.5
    assert_close(truncated_normal_std(0.5 - 1e-12), truncated_normal_std(0.5), rtol=1e-10, atol=0)


def test_samples_ks_vs_scipy(device):
    stats = pytest.importorskip("scipy.stats")
    w = bert_trunc_normal_(torch.empty(200_000, device=device), std=0.02, generator=gen(1, device))
    p = stats.kstest(w.double().cpu().numpy(), stats.truncnorm(-2, 2, scale=0.02).cdf).pvalue
    assert p > 1e-4, p
    # the pitfall variant fails the same test
    bad = nn.init.trunc_normal_(torch.empty(200_000, device=device), std=0.02, generator=gen(2, device))
    assert stats.kstest(bad.double().cpu().numpy(), stats.truncnorm(-2, 2, scale=0.02).cdf).pvalue < 1e-10


# ---------------------------------------------------------------- peer: torch.nn.init.trunc_normal_
def test_same_law_as_torch_trunc_normal_with_explicit_bounds():
    stats = pytest.importorskip("scipy.stats")
    ours = bert_trunc_normal_(torch.empty(100_000), std=0.05, n_sigma=1.5, generator=gen(3))
    theirs = nn.init.trunc_normal_(torch.empty(100_000), 0.0, 0.05, -0.075, 0.075, generator=gen(4))
    assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue > 1e-4
    assert ours.abs().max() <= 0.075


def test_torch_default_bounds_do_not_truncate():
    w = nn.init.trunc_normal_(torch.empty(10**6), std=0.02, generator=gen(5))  # a=-2, b=2 absolute
    assert abs(w.std().item() - 0.02) < 2e-4 and w.abs().max() > 4 * 0.02
    ours = bert_trunc_normal_(torch.empty(10**6), generator=gen(5))
    assert abs(ours.std().item() - 0.02 * truncated_normal_std(2)) < 2e-4 and ours.abs().max() <= 0.04


# ---------------------------------------------------------------- peer: transformers' BertModel init
def test_hf_bert_does_not_truncate():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=2000,
        hidden_size=256,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=1024,
    )
    m = transformers.BertModel(cfg)
    w = m.encoder.layer[0].intermediate.dense.weight.detach()
    # 262k plain-normal draws: std 0.02 (not 0.0176) and values well beyond 2σ
    assert abs(w.std().item() - 0.02) < 3e-4 and w.abs().max() > 3.5 * 0.02
    # ours, applied to the same model, truncates
    init_bert_weights_(m)
    w = m.encoder.layer[0].intermediate.dense.weight.detach()
    assert abs(w.std().item() - 0.02 * truncated_normal_std(2)) < 3e-4 and w.abs().max() <= 0.04
    assert torch.all(m.encoder.layer[0].output.LayerNorm.weight == 1)


# ---------------------------------------------------------------- properties
@given(std=st.floats(1e-3, 10.0), n_sigma=st.floats(0.2, 6.0))
def test_property_std_and_bounds(std, n_sigma):
    w = bert_trunc_normal_(torch.empty(20_000, dtype=torch.float64), std, n_sigma, generator=gen(6))
    assert w.abs().max().item() <= n_sigma * std * (1 + 1e-12)
    expect = std * truncated_normal_std(n_sigma)
    # sample std of 2·10⁴ draws: relative standard error < 1/√(2·10⁴)·~0.8; 6 of them is generous
    assert abs(w.std().item() - expect) < 6 * 0.8 * expect / math.sqrt(20_000)
    assert abs(w.mean().item()) < 6 * expect / math.sqrt(20_000)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_and_device(dtype, device):
    w = torch.empty(50_000, dtype=dtype, device=device)
    out = bert_trunc_normal_(w, generator=gen(7, device))
    assert out is w and w.dtype == dtype and w.device.type == device.type
    # rounding to the dtype can move the bound by half an ulp of 0.04
    assert w.float().abs().max().item() <= 0.04 * (1 + torch.finfo(dtype).eps)
    assert abs(w.float().std().item() - 0.0175925) < 5e-4


def test_generator_reproducible_and_requires_grad_parameter():
    p = nn.Parameter(torch.empty(64, 64))
    a = bert_trunc_normal_(p, generator=gen(8)).detach().clone()
    b = bert_trunc_normal_(p, generator=gen(8)).detach().clone()
    # exact: the same generator state drives the same kernel on the same shape
    assert torch.equal(a, b) and p.requires_grad and p.grad is None


def test_init_bert_weights_plain_and_truncated():
    m = nn.Sequential(nn.Embedding(500, 64), nn.Linear(64, 256), nn.LayerNorm(256))
    with torch.no_grad():
        m[2].weight.fill_(3.0)
    torch.manual_seed(0)
    init_bert_weights_(m, std=0.05)
    assert m[1].weight.abs().max() <= 0.1 and torch.all(m[1].bias == 0)
    assert torch.all(m[2].weight == 1) and torch.all(m[2].bias == 0)
    init_bert_weights_(m, std=0.05, n_sigma=None)
    assert m[0].weight.abs().max() > 0.1  # plain normal: 32k draws reach beyond 2σ


# ---------------------------------------------------------------- blocks
def test_post_ln_block_equals_bert_layer(device):
    from su_notes.bert.model import BertLayer

    torch.manual_seed(0)
    ref = BertLayer(32, 4, 64, 1e-12, 0.0).to(device, torch.float64).eval()
    blk = PostLNBlock(32, 4, 64).to(device, torch.float64).eval()
    blk.load_state_dict(ref.state_dict())
    x = torch.randn(3, 5, 32, dtype=torch.float64, device=device)
    bias = torch.zeros(3, 1, 1, 5, dtype=torch.float64, device=device)
    bias[0, ..., 3:] = float("-inf")  # padding of the first sequence
    assert_close(blk(x, bias), ref(x, bias), rtol=1e-12, atol=1e-12)


def test_pre_ln_block_formula(device):
    torch.manual_seed(1)
    blk = PreLNBlock(16, 2, 32).to(device, torch.float64)
    x = torch.randn(2, 4, 16, dtype=torch.float64, device=device)
    h = x + blk.attention(nn.functional.layer_norm(x, (16,), eps=1e-12), None)
    y = h + blk.output(nn.functional.gelu(blk.intermediate(nn.functional.layer_norm(h, (16,), eps=1e-12))))
    assert_close(blk(x), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [PostLNBlock, PreLNBlock])
def test_causal_blocks_and_gradcheck(cls):
    torch.manual_seed(2)
    blk = cls(8, 2, 16, causal=True).double()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    y = x.clone()
    y[:, 3:] += 1.0
    assert_close(blk(x)[:, :3], blk(y)[:, :3], rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(blk, (x.requires_grad_(),))


def test_blocks_initialised_like_bert():
    torch.manual_seed(3)
    blk = PostLNBlock(256, 4, 1024)
    w = blk.intermediate.weight
    assert w.abs().max() <= 0.04 and abs(w.std().item() - 0.0175925) < 5e-4
    assert torch.all(blk.output.bias == 0) and torch.all(blk.output_norm.weight == 1)


# ---------------------------------------------------------------- bad input, nothing mutated
@pytest.mark.parametrize(
    "kwargs, err, name",
    [
        (dict(std=0.0), ValueError, "std"),
        (dict(std=-1.0), ValueError, "std"),
        (dict(std=float("nan")), ValueError, "std"),
        (dict(std=float("inf")), ValueError, "std"),
        (dict(std=True), TypeError, "std"),
        (dict(std="0.02"), TypeError, "std"),
        (dict(n_sigma=0.0), ValueError, "n_sigma"),
        (dict(n_sigma=-2.0), ValueError, "n_sigma"),
        (dict(n_sigma=float("inf")), ValueError, "n_sigma"),
        (dict(n_sigma=None), TypeError, "n_sigma"),
    ],
)
def test_bad_args_bert_trunc_normal(kwargs, err, name):
    w = torch.full((4, 4), 7.0)
    with pytest.raises(err, match=f"Invalid {name}"):
        bert_trunc_normal_(w, **kwargs)
    # exact: a failed call must not write
    assert torch.equal(w, torch.full((4, 4), 7.0))


@pytest.mark.parametrize(
    "w, err",
    [
        ([1.0, 2.0], TypeError),
        (torch.ones(3, dtype=torch.long), TypeError),
        (torch.ones(3, dtype=torch.complex64), TypeError),
        (None, TypeError),
    ],
)
def test_bad_tensor_bert_trunc_normal(w, err):
    with pytest.raises(err, match="Invalid w"):
        bert_trunc_normal_(w)


@pytest.mark.parametrize(
    "a, err",
    [
        (0.0, ValueError),
        (-1.0, ValueError),
        (float("nan"), ValueError),
        (True, TypeError),
        ("2", TypeError),
    ],
)
def test_bad_truncated_normal_std(a, err):
    with pytest.raises(err, match="Invalid n_sigma"):
        truncated_normal_std(a)


def test_bad_init_bert_weights_nothing_mutated():
    m = nn.Linear(4, 4)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    for kwargs, err, name in [
        (dict(std=0.0), ValueError, "std"),
        (dict(n_sigma=-1.0), ValueError, "n_sigma"),
        (dict(std="x"), TypeError, "std"),
    ]:
        with pytest.raises(err, match=f"Invalid {name}"):
            init_bert_weights_(m, **kwargs)
    # exact: copies of untouched parameters
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(TypeError, match="Invalid module"):
        init_bert_weights_(torch.ones(3))


@pytest.mark.parametrize("cls", [PostLNBlock, PreLNBlock])
@pytest.mark.parametrize(
    "args, kwargs, err, name",
    [
        ((30, 4, 64), {}, ValueError, "hidden_size"),
        ((32, 0, 64), {}, ValueError, "num_heads"),
        ((32, 4, 64.0), {}, TypeError, "intermediate_size"),
        ((32, 4, 64), dict(dropout=1.0), ValueError, "dropout"),
        ((32, 4, 64), dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps"),
        ((32, 4, 64), dict(causal=1), TypeError, "causal"),
    ],
)
def test_bad_block_args(cls, args, kwargs, err, name):
    with pytest.raises(err, match=f"Invalid {name}"):
        cls(*args, **kwargs)


def test_block_bad_input():
    blk = PostLNBlock(8, 2, 16)
    with pytest.raises(TypeError, match="Invalid x"):
        blk(torch.ones(2, 3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="Invalid x"):
        blk(torch.ones(3, 8))
