"""Tests for su_notes.interpret.integrated_gradients beyond the notebook's checks.

Peer: captum 0.9.0's `IntegratedGradients(f).attribute(inputs, baselines, target, n_steps, method)`, which shares
no code with the module (its rules are read from `captum/attr/_utils/approximation_methods.py`): agreement for
every method, MLPs and a conv net, int and per-example targets, per-example and broadcast baselines, float32 and
float64, on `--device`. captum's `riemann_trapezoid` weights sum to (n−1)/n (its step is 1/n for nodes spaced
1/(n−1)), shown from captum's own rule and from the completeness of a linear F. Closed forms (hypothesis):
F = Σ cᵢxᵢᵏ gives IGᵢ = cᵢxᵢᵏ exactly for Gauss–Legendre with 2n − 1 ≥ k − 1; the left/right sums' (n ∓ 1)/n on
a quadratic; the bert4keras demo's (2n − 1)/(3(n − 1)). Then chunking, the training-mode warning, no mutation
(inputs, parameters' .grad, module state), bad input for every public name, and a CUDA sync check.
"""

import math
import re
import warnings

import pytest
import torch
import torch.nn as nn
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr._utils.approximation_methods import approximation_parameters
from hypothesis import given, strategies as st

from su_notes.core import assert_close
from su_notes.interpret.integrated_gradients import (
    METHODS,
    IntegratedGradients,
    bert4keras_attributions,
    completeness_gap,
    integrated_gradients,
    quadrature,
)

F64 = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def eps_tol(ref, k=1e3):
    "Rounding tolerance of a computation of ~k operations in ref's dtype: rtol k·eps, atol k·eps·max|ref|."
    eps = torch.finfo(ref.dtype).eps
    return dict(rtol=k * eps, atol=k * eps * ref.abs().max().item())


def mlp(d_in=64, width=32, C=10, seed=0, act=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, width), act(), nn.Linear(width, C)).eval()


def convnet(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 64, 5)).eval()


# ---------------------------------------------------------------- peer: captum
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", ["mlp-int", "mlp-tensor", "relu-baseline", "conv-broadcast"])
def test_matches_captum_float32(device, method, case):
    g = gen(1)
    if case.startswith("conv"):
        net, x = convnet().to(device), torch.rand(6, 1, 8, 8, generator=g).to(device)
    else:
        net = mlp(act=nn.ReLU if case.startswith("relu") else nn.Tanh).to(device)
        x = torch.rand(9, 64, generator=g).to(device)
    target = 3 if case == "mlp-int" else torch.randint(0, 5, (x.shape[0],), generator=g).to(device)
    base = None
    if case == "relu-baseline":
        base = torch.rand(x.shape, generator=g).to(device) * 0.3
    if case == "conv-broadcast":
        base = torch.full((1, 1, 8, 8), 0.2, device=device)
    n = 50
    ours = integrated_gradients(net, x, base, target, n_steps=n, method=method)
    theirs = CaptumIG(net).attribute(x, baselines=base, target=target, n_steps=n, method=method)
    assert ours.shape == x.shape and ours.dtype == x.dtype and ours.device == x.device
    if method == "riemann_trapezoid":
        ours = ours * (n - 1) / n  # captum's weight sum
    if method == "gausslegendre" and device.type == "cpu":
        # bit-exact by construction: captum forms the same float32 path points, runs the same kernels,
        # multiplies by the same float32 weights and sums over the same axis
        assert torch.equal(ours, theirs)
    else:
        assert_close(ours, theirs, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("method", METHODS)
def test_matches_captum_float64(device, method):
    net = mlp(seed=2).double().to(device)
    x = torch.rand(5, 64, generator=gen(2), dtype=F64).to(device)
    t = torch.tensor([0, 1, 2, 3, 4], device=device)
    n = 20
    ours = integrated_gradients(net, x, target=t, n_steps=n, method=method)
    theirs = CaptumIG(net).attribute(x, target=t, n_steps=n, method=method)
    if method == "riemann_trapezoid":
        ours = ours * (n - 1) / n
    # captum multiplies float64 gradients by float32-rounded weights (and float32 Riemann nodes)
    assert_close(ours, theirs, rtol=1e-6, atol=1e-8)


def test_captum_float32_weights_break_float64_completeness(device):
    "On a linear F our gap is rounding; captum's float32 weights leave a ~1e-8 relative gap even in float64."
    lin = nn.Linear(16, 1).double().to(device)
    f = lambda z: lin(z)[:, 0]
    x = torch.randn(4, 16, generator=gen(3), dtype=F64).to(device)
    with torch.no_grad():
        change = (f(x) - f(torch.zeros_like(x))).abs().max().item()
    ig = integrated_gradients(f, x, n_steps=50)
    ours = completeness_gap(f, ig, x).abs().max().item()
    theirs = completeness_gap(f, CaptumIG(f).attribute(x, n_steps=50), x).abs().max().item()
    size = ig.abs().sum(1).max().item() + change  # the terms of the gap
    assert ours < 1e3 * torch.finfo(F64).eps * size and theirs > 1e-10 * change


@pytest.mark.parametrize("n", [2, 3, 10, 50, 128])
def test_captum_trapezoid_weights_sum_to_n_minus_1_over_n(n):
    steps_fn, alphas_fn = approximation_parameters("riemann_trapezoid")
    steps, alphas = steps_fn(n), alphas_fn(n)
    assert math.isclose(sum(steps), (n - 1) / n, rel_tol=1e-12)  # the peer's rule
    assert math.isclose(alphas[1] - alphas[0], 1 / (n - 1), rel_tol=1e-6)  # its nodes are spaced 1/(n-1)
    a, w = quadrature("riemann_trapezoid", n)
    assert math.isclose(w.sum().item(), 1.0, rel_tol=4 * n * torch.finfo(F64).eps)  # an n-term sum
    # captum's nodes come from a float32 linspace: nodes in [0, 1] agree to a few float32 ulps
    assert_close(torch.tensor(alphas, dtype=F64), a, rtol=0, atol=4 * torch.finfo(torch.float32).eps)
    # every weight is >= 1/(2n) > 0, so a relative tolerance alone bounds the difference
    assert_close(torch.tensor(steps, dtype=F64), w * (n - 1) / n, rtol=1e-12, atol=0)
    if n == 50:
        assert round(sum(steps) / w.sum().item(), 4) == 0.98


def test_captum_trapezoid_misses_completeness_by_change_over_n(device):
    lin = nn.Linear(10, 3).double().to(device)
    x = torch.randn(6, 10, generator=gen(4), dtype=F64).to(device)
    with torch.no_grad():
        change = lin(x)[:, 1] - lin(torch.zeros_like(x))[:, 1]
    for n in (5, 50):
        cap = CaptumIG(lin).attribute(x, target=1, n_steps=n, method="riemann_trapezoid")
        assert_close(completeness_gap(lin, cap, x, target=1), -change / n, rtol=1e-5, atol=1e-9)  # float32 weights
        ours = integrated_gradients(lin, x, target=1, n_steps=n, method="riemann_trapezoid")
        size = ours.abs().sum(1).max().item() + change.abs().max().item()
        assert completeness_gap(lin, ours, x, target=1).abs().max() < 1e3 * torch.finfo(F64).eps * size


# ---------------------------------------------------------------- quadrature and closed forms
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 7, 64])
def test_quadrature_weights_sum_to_one_and_dtype_device(device, method, n):
    for dt in (torch.float32, F64):
        a, w = quadrature(method, n, dtype=dt, device=device)
        assert a.dtype == w.dtype == dt and a.device.type == device.type and a.shape == w.shape == (n,)
        assert abs(w.sum().item() - 1) < 4 * n * torch.finfo(dt).eps  # rounding of an n-term sum
        assert (a >= 0).all() and (a <= 1).all() and (a[1:] > a[:-1]).all()
    a1, _ = quadrature(method, n)
    a1.zero_()  # fresh tensors: the cache is safe
    assert quadrature(method, n)[0].max() > 0


@given(k=st.integers(1, 12), seed=st.integers(0, 2**16), extra=st.integers(0, 3))
def test_gauss_legendre_is_exact_for_monomials(k, seed, extra):
    "F = Σ cᵢxᵢᵏ: ∂ᵢF(αx) = k cᵢ αᵏ⁻¹ xᵢᵏ⁻¹, ∫ = cᵢxᵢᵏ⁻¹; GL with 2n − 1 ≥ k − 1 is exact."
    g = gen(seed)
    c, x = torch.randn(5, generator=g, dtype=F64), torch.rand(3, 5, generator=g, dtype=F64) * 2 - 1
    f = lambda z: (c * z**k).sum(-1)
    n = max(1, math.ceil(k / 2)) + extra
    assert_close(integrated_gradients(f, x, n_steps=n), c * x**k, **eps_tol(c * x**k))


@given(seed=st.integers(0, 2**16), n=st.integers(1, 60), b=st.integers(1, 4))
def test_quadratic_closed_forms_for_every_rule(seed, n, b):
    g = gen(seed)
    a, x = torch.randn(6, generator=g, dtype=F64), torch.randn(b, 6, generator=g, dtype=F64)
    f = lambda z: (a * z**2).sum(-1)
    exact = a * x**2
    factor = {
        "gausslegendre": 1.0,
        "riemann_middle": 1.0,
        "riemann_trapezoid": 1.0,
        "riemann_left": (n - 1) / n,
        "riemann_right": (n + 1) / n,
    }
    for m, fac in factor.items():
        if m == "riemann_trapezoid" and n == 1:
            continue
        assert_close(integrated_gradients(f, x, n_steps=n, method=m), exact * fac, **eps_tol(exact))
    if n >= 2:
        assert_close(
            bert4keras_attributions(f, x, n_steps=n),
            exact * (2 * n - 1) / (3 * (n - 1)),
            **eps_tol(exact),
        )


def test_nonzero_baseline_closed_form(device):
    "F = Σ aᵢxᵢ², baseline x̄: IGᵢ = aᵢ(xᵢ² − x̄ᵢ²) (∂ᵢF is linear along the path)."
    g = gen(5)
    a = torch.randn(4, generator=g, dtype=F64).to(device)
    x, xb = (torch.randn(3, 4, generator=g, dtype=F64).to(device) for _ in range(2))
    f = lambda z: (a * z**2).sum(-1)
    # x² − x̄² cancels: the rounding scale is |a|(x² + x̄²), not the difference
    tol = dict(
        rtol=1e3 * torch.finfo(F64).eps,
        atol=1e3 * torch.finfo(F64).eps * (a.abs() * (x**2 + xb**2 + 0.25)).max().item(),
    )
    assert_close(integrated_gradients(f, x, xb, n_steps=3), a * (x**2 - xb**2), **tol)
    assert_close(integrated_gradients(f, x, 0.5, n_steps=3), a * (x**2 - 0.25), **tol)


def test_saturation_example():
    f = lambda z: 1 - torch.relu(1 - z[:, 0])
    ig = integrated_gradients(f, torch.tensor([[2.0]], dtype=F64), n_steps=2, method="riemann_middle")
    # exact by construction: nodes 1/4, 3/4 give ∂F = 1, 0 and weights 1/2 (dyadic, no rounding)
    assert ig.item() == 1.0


# ---------------------------------------------------------------- batching, chunking, state
@given(chunk=st.integers(1, 80), b=st.integers(1, 5), n=st.integers(1, 9))
def test_chunked_equals_one_batch(chunk, b, n):
    net = mlp(8, 12, 3, seed=3).double()
    x = torch.randn(b, 8, generator=gen(b), dtype=F64)
    t = torch.arange(b) % 3
    full = integrated_gradients(net, x, target=t, n_steps=n)
    # chunks add the same terms in another order: equal to float64 rounding
    assert_close(integrated_gradients(net, x, target=t, n_steps=n, chunk_size=chunk), full, **eps_tol(full))


def test_batched_equals_per_example_and_wrapper(device):
    net = convnet(1).double().to(device)
    x = torch.rand(4, 1, 8, 8, generator=gen(6), dtype=F64).to(device)
    t = torch.tensor([4, 0, 2, 2], device=device)
    full = integrated_gradients(net, x, target=t, n_steps=12)
    each = torch.cat([integrated_gradients(net, x[j : j + 1], target=int(t[j]), n_steps=12) for j in range(4)])
    assert_close(each, full, **eps_tol(full))
    # exact by construction: the wrapper runs the same code on the same inputs
    assert torch.equal(IntegratedGradients(net).attribute(x, target=t, n_steps=12), full)


def test_single_output_and_unused_input():
    x = torch.randn(3, 4, dtype=F64)
    f1 = lambda z: z[:, :1] * 2.0  # (m, 1): target may be None
    assert_close(integrated_gradients(f1, x)[:, 0], 2 * x[:, 0], **eps_tol(2 * x[:, 0]))
    const = lambda z: torch.ones(z.shape[0], dtype=z.dtype)  # no dependence on the input
    # exact by construction: F ignores its input, so the gradients are zeros, not computed values
    assert torch.equal(integrated_gradients(const, x), torch.zeros_like(x))


def test_nothing_mutated_and_no_grad_context():
    net = mlp(8, 6, 3).double()
    x = torch.randn(2, 8, dtype=F64, requires_grad=True)
    before, xb = x.detach().clone(), torch.zeros(2, 8, dtype=F64)
    with torch.no_grad():
        ig = integrated_gradients(net, x, xb, target=1)
    # exact comparisons with copies taken before the call: nothing may have written to them
    assert not ig.requires_grad and torch.equal(x.detach(), before) and x.grad is None
    assert torch.equal(xb, torch.zeros(2, 8, dtype=F64))
    assert all(p.grad is None for p in net.parameters())
    A = bert4keras_attributions(net, x, target=1)
    assert not A.requires_grad and torch.equal(x.detach(), before)


def test_training_mode_warning_and_eval_is_quiet():
    net = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.Linear(6, 2)).double()
    x = torch.randn(3, 8, dtype=F64)
    with pytest.warns(UserWarning, match=r"eval\(\)"):
        integrated_gradients(net, x, target=0)
    with pytest.warns(UserWarning, match=r"eval\(\)"):
        bert4keras_attributions(net, x, target=0)
    net.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        integrated_gradients(net, x, target=0)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())  # running stats untouched


@pytest.mark.cuda
def test_no_host_sync_cuda():
    net = mlp().cuda()
    x, t = torch.rand(8, 64, device="cuda"), torch.randint(0, 10, (8,), device="cuda")
    for m in METHODS:
        integrated_gradients(net, x, target=t, method=m)  # warm-up: caches the rules on CUDA
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for m in METHODS:
            integrated_gradients(net, x, target=t, method=m)
            integrated_gradients(net, x, target=3, method=m, chunk_size=100)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# ---------------------------------------------------------------- bad input
NET = mlp(4, 5, 3).double()
X = torch.randn(2, 4, dtype=F64)


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(f=3), TypeError, "Invalid f: 3"),
        (dict(inputs=[1.0, 2.0]), TypeError, "Invalid inputs"),
        (dict(inputs=torch.ones(2, 4, dtype=torch.int64)), TypeError, "Invalid inputs"),
        (dict(inputs=torch.tensor(1.0, dtype=F64)), ValueError, "Invalid inputs"),
        (dict(baselines=torch.zeros(3, dtype=F64)), ValueError, "Invalid baselines"),
        (dict(baselines=torch.zeros(2, 4)), ValueError, "Invalid baselines"),
        (dict(baselines=float("nan")), ValueError, "Invalid baselines: nan"),
        (dict(baselines="0"), TypeError, "Invalid baselines: '0'"),
        (dict(target=None), ValueError, "Invalid target: None"),
        (dict(target=3), ValueError, "Invalid target: 3"),
        (dict(target=True), TypeError, "Invalid target: True"),
        (dict(target=1.0), TypeError, "Invalid target: 1.0"),
        (dict(target=torch.tensor([0.0, 1.0])), TypeError, "Invalid target"),
        (dict(target=torch.tensor([0, 1, 2])), ValueError, "Invalid target"),
        (dict(n_steps=0), ValueError, "Invalid n_steps: 0"),
        (dict(n_steps=5.0), TypeError, "Invalid n_steps: 5.0"),
        (dict(n_steps=True), TypeError, "Invalid n_steps: True"),
        (dict(n_steps=1, method="riemann_trapezoid"), ValueError, "Invalid n_steps: 1"),
        (dict(method="riemann"), ValueError, "Invalid method: 'riemann'"),
        (dict(method=None), ValueError, "Invalid method: None"),
        (dict(chunk_size=0), ValueError, "Invalid chunk_size: 0"),
        (dict(chunk_size=2.5), TypeError, "Invalid chunk_size: 2.5"),
        (dict(f=lambda z: NET(z).sum()), ValueError, "Invalid f"),
        (dict(f=lambda z: NET(z)[:1]), ValueError, "Invalid f"),
        (dict(f=lambda z: NET(z)[:, 0], target=1), ValueError, "Invalid target: 1"),
    ],
)
def test_integrated_gradients_bad_input(kwargs, err, msg):
    args = dict(f=NET, inputs=X, target=0)
    args.update(kwargs)
    before, pattern = X.clone(), re.escape(msg)
    with pytest.raises(err, match=pattern):
        integrated_gradients(**args)
    if "f" not in kwargs:  # the wrapper raises the same (its chunk_size is captum's name)
        wrapped = {("internal_batch_size" if k == "chunk_size" else k): v for k, v in args.items() if k != "f"}
        with pytest.raises(err, match=pattern.replace("chunk_size", "internal_batch_size")):
            IntegratedGradients(NET).attribute(**wrapped)
    assert torch.equal(X, before)


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(method="left"), ValueError, "Invalid method"),
        (dict(n_steps=0), ValueError, "Invalid n_steps: 0"),
        (dict(n_steps=1, method="riemann_trapezoid"), ValueError, "Invalid n_steps: 1"),
        (dict(n_steps=2.0), TypeError, "Invalid n_steps"),
        (dict(dtype=torch.int64), TypeError, "Invalid dtype"),
        (dict(dtype="float64"), TypeError, "Invalid dtype"),
    ],
)
def test_quadrature_bad_input(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        quadrature(**kwargs)


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(f=None), TypeError, "Invalid f"),
        (dict(attributions=torch.zeros(2, 3, dtype=F64)), ValueError, "Invalid attributions"),
        (
            dict(attributions=torch.zeros(2, 4, dtype=torch.int64)),
            TypeError,
            "Invalid attributions",
        ),
        (dict(inputs="x"), TypeError, "Invalid inputs"),
        (dict(target=5), ValueError, "Invalid target: 5"),
        (dict(baselines=torch.zeros(5, dtype=F64)), ValueError, "Invalid baselines"),
    ],
)
def test_completeness_gap_bad_input(kwargs, err, msg):
    args = dict(f=NET, attributions=torch.zeros(2, 4, dtype=F64), inputs=X, target=0)
    args.update(kwargs)
    with pytest.raises(err, match=msg):
        completeness_gap(**args)


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(f="net"), TypeError, "Invalid f"),
        (dict(inputs=torch.ones(2, 4, dtype=torch.int32)), TypeError, "Invalid inputs"),
        (dict(n_steps=1), ValueError, "Invalid n_steps: 1"),
        (dict(target=torch.tensor([0, 1, 2])), ValueError, "Invalid target"),
    ],
)
def test_bert4keras_bad_input(kwargs, err, msg):
    args = dict(f=NET, inputs=X, target=0)
    args.update(kwargs)
    with pytest.raises(err, match=msg):
        bert4keras_attributions(**args)


def test_wrapper_bad_input():
    with pytest.raises(TypeError, match="Invalid forward_func: 3"):
        IntegratedGradients(3)
    with pytest.raises(TypeError, match="Invalid multiply_by_inputs: 1"):
        IntegratedGradients(NET, multiply_by_inputs=1)


TWO = lambda a, b: NET(a + b[:, :1])  # two inputs -> (m, 3)
XS = (torch.randn(2, 4, dtype=F64), torch.randn(2, 3, dtype=F64))


@pytest.mark.parametrize(
    "kwargs, err, msg",
    [
        (dict(inputs=[XS[0], XS[1]]), TypeError, "Invalid inputs"),
        (dict(inputs=()), ValueError, "Invalid inputs: ()"),
        (dict(inputs=(XS[0], XS[1][:1])), ValueError, "share the first (batch) dimension"),
        (dict(inputs=(XS[0], XS[1].long())), TypeError, "Invalid inputs[1]"),
        (dict(baselines=(0.0,)), ValueError, "one baseline per input (2)"),
        (dict(baselines=torch.zeros(2, 4, dtype=F64)), ValueError, "needs a tuple of baselines"),
        (dict(baselines=(0.0, torch.zeros(2, 4, dtype=F64))), ValueError, "Invalid baselines[1]"),
        (dict(baselines=(0.0, "0")), TypeError, "Invalid baselines[1]: '0'"),
        (dict(target=[0]), ValueError, "one entry per input (2)"),
        (dict(target=[0, (1,)]), TypeError, "ints or tuples of ints"),
        (dict(target=[(0,), (1, 0)]), ValueError, "share a length"),
        (dict(target=(1.0,)), TypeError, "ints or slices"),
        (dict(target=(0, 1)), ValueError, "too many indices"),
        (dict(target=[0, 3]), ValueError, "out of range for f's 3 scores"),
        (dict(target=[-1, 0]), ValueError, "out of range"),
        (dict(target=torch.tensor([[0, 1]])), ValueError, "one element or shape (2,)"),
        (dict(target=torch.tensor(0.0)), TypeError, "integer tensor"),
        (dict(target=torch.tensor(5)), ValueError, "out of range for f's 3 scores"),
        (dict(additional_forward_args=(1.0,)), TypeError, "positional argument"),  # f's own error
        (dict(internal_batch_size=0), ValueError, "Invalid internal_batch_size: 0"),
        (dict(internal_batch_size=2.0), TypeError, "Invalid internal_batch_size: 2.0"),
        (dict(return_convergence_delta=1), TypeError, "Invalid return_convergence_delta: 1"),
        (dict(method="trapezoid"), ValueError, "Invalid method"),
    ],
)
def test_wrapper_captum_signature_bad_input(kwargs, err, msg):
    args = dict(inputs=XS, target=0)
    args.update(kwargs)
    before = [x.clone() for x in XS]
    with pytest.raises(err, match=re.escape(msg)):
        IntegratedGradients(TWO).attribute(**args)
    # exact comparisons with copies: a failed call writes nothing
    assert all(torch.equal(x, b) for x, b in zip(XS, before))


def test_compute_convergence_delta_bad_input():
    ig = IntegratedGradients(TWO)
    attrs = ig.attribute(XS, target=0)
    with pytest.raises(ValueError, match="must match end_point"):
        ig.compute_convergence_delta(attrs[:1], None, XS, target=0)
    with pytest.raises(ValueError, match="must match end_point"):
        ig.compute_convergence_delta((attrs[0], attrs[1][:, :2]), None, XS, target=0)
    with pytest.raises(ValueError, match="Invalid start_point"):
        ig.compute_convergence_delta(attrs, (0.0,), XS, target=0)
    with pytest.raises(TypeError, match="Invalid end_point"):
        ig.compute_convergence_delta(attrs, None, "x", target=0)


def test_wrapper_warns_like_captum_for_a_small_internal_batch():
    x = torch.randn(4, 4, dtype=F64)
    with pytest.warns(UserWarning, match="below the number of examples 4"):
        small = IntegratedGradients(NET).attribute(x, target=1, n_steps=6, internal_batch_size=2)
    assert_close(small, integrated_gradients(NET, x, target=1, n_steps=6), **eps_tol(small))
