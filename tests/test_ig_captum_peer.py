"""captum's integrated-gradients test ideas, ported to su_notes' `IntegratedGradients`, run against captum.

captum 0.9.0 does not ship its tests; these are written here from what its API promises
(`captum.attr.IntegratedGradients(forward_func, multiply_by_inputs).attribute(inputs, baselines, target,
additional_forward_args, n_steps, method, internal_batch_size, return_convergence_delta)`), in the spirit
of its basic IG tests: single and multiple inputs, additional forward arguments, every baseline and target
form, batched vs per-example, internal batching, local vs global attribution, convergence delta, zero
attribution at the baseline, and closed forms. Every comparison runs both libraries on the same model and
inputs: same return structure (tensor or tuple, delta of shape (b,)), equal values within float32 rounding
(float64: captum rounds its weights to float32). The one documented difference is `riemann_trapezoid`,
whose weights sum to (n−1)/n in captum and to 1 here: it is compared after that factor, and its own test
shows the factor is real. Runs on `--device`.
"""

import warnings

import pytest
import torch
import torch.nn as nn
from captum.attr import IntegratedGradients as CaptumIG

from su_notes.core import assert_close
from su_notes.interpret import METHODS, IntegratedGradients, completeness_gap, integrated_gradients

F64 = torch.float64
RTOL, ATOL = 1e-5, 1e-6  # float32: ~100 eps on attributions of order 1
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- models (this project's, captum-style)
class Saturating(nn.Module):
    "Σ_i 1 − relu(1 − x_i): the paper's saturating function, one score per example."

    def forward(self, x):
        return (1 - torch.relu(1 - x)).flatten(1).sum(1)


class TwoInputRelu(nn.Module):
    "relu(x1 − 1) − relu(x2), summed per example: two inputs, one score."

    def forward(self, x1, x2):
        return (torch.relu(x1 - 1) - torch.relu(x2)).sum(1)


class MultiArgs(nn.Module):
    "Two inputs and additional arguments: a per-example tensor, a 0-d tensor and a Python flag -> (b, 4)."

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b = nn.Linear(5, 4), nn.Linear(3, 4)

    def forward(self, x1, x2, shift, gain, negate=False):
        h = torch.tanh(self.a(x1) + self.b(x2) + shift) * gain
        return -h if negate else h


class ConvNet(nn.Module):
    "One conv layer and a linear head: (b, 1, 6, 6) -> (b, 3)."

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv, self.head = nn.Conv2d(1, 2, 3), nn.Linear(2 * 16, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


class ThreeAxis(nn.Module):
    "(b, 6) -> (b, 3, 2): targets are tuples (i, j)."

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        return torch.sigmoid(self.lin(x)).view(-1, 3, 2)


def multiargs_data(device, b=4, seed=1):
    g = gen(seed)
    x1, x2 = torch.randn(b, 5, generator=g), torch.randn(b, 3, generator=g)
    shift = torch.randn(b, 4, generator=g)
    return (x1.to(device), x2.to(device)), (
        shift.to(device),
        torch.tensor(0.7, device=device),
        True,
    )


# ---------------------------------------------------------------- the comparison
def run_both(model, inputs, *, ctor=None, n_steps=50, method="gausslegendre", rtol=RTOL, atol=ATOL, **kw):
    "Attribute with both libraries; assert captum's structure and values; return ours and our delta."
    ctor = ctor or {}
    ours, d = IntegratedGradients(model, **ctor).attribute(
        inputs, n_steps=n_steps, method=method, return_convergence_delta=True, **kw
    )
    theirs, cd = CaptumIG(model, **ctor).attribute(
        inputs, n_steps=n_steps, method=method, return_convergence_delta=True, **kw
    )
    assert type(ours) is type(theirs)
    o, t = (ours, theirs) if isinstance(ours, tuple) else ((ours,), (theirs,))
    assert len(o) == len(t)
    for a, c in zip(o, t):
        assert a.shape == c.shape and a.dtype == c.dtype and a.device == c.device
    assert isinstance(d, torch.Tensor) and d.shape == cd.shape == (o[0].shape[0],)
    if method == "riemann_trapezoid":  # captum's weights sum to (n−1)/n
        o = tuple(a * (n_steps - 1) / n_steps for a in o)
        d = IntegratedGradients(model, **ctor).compute_convergence_delta(
            o if isinstance(ours, tuple) else o[0],
            kw.get("baselines"),
            inputs,
            target=kw.get("target"),
            additional_forward_args=kw.get("additional_forward_args"),
        )
    for a, c in zip(o, t):
        assert_close(a, c, rtol=rtol, atol=atol)
    size = sum(a.abs().flatten(1).sum(1) for a in o).max().item()  # the delta sums every feature
    assert_close(d, cd, rtol=rtol, atol=atol * max(1.0, size))
    return ours, d


# ---------------------------------------------------------------- single input
@pytest.mark.parametrize("method", METHODS)
def test_single_input_saturating(device, method):
    # no path node lands on the kink α·x = 1, where the two libraries' float32 nodes may fall on either side
    x = torch.tensor([[2.3, 0.7, -1.3, 3.1]], device=device) * torch.tensor([[1.0], [0.5], [2.0]], device=device)
    run_both(Saturating(), x, method=method, n_steps=20)


@pytest.mark.parametrize("method", METHODS)
def test_conv_net_classes(device, method):
    net = ConvNet().to(device).eval()
    x = torch.rand(5, 1, 6, 6, generator=gen(2)).to(device)
    run_both(net, x, method=method, target=2)
    run_both(net, x, method=method, target=torch.tensor([0, 1, 2, 2, 1], device=device))


def test_float64(device):
    net = ConvNet(1).double().to(device).eval()
    x = torch.rand(3, 1, 6, 6, generator=gen(3), dtype=F64).to(device)
    # captum multiplies float64 gradients by float32-rounded weights: ~1e-8 relative
    run_both(net, x, target=1, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------- multiple inputs, additional args
@pytest.mark.parametrize("method", METHODS)
def test_two_inputs_return_a_tuple(device, method):
    g = gen(4)
    x1, x2 = (torch.randn(4, 3, generator=g).to(device) * 2 for _ in range(2))
    ours, _ = run_both(TwoInputRelu(), (x1, x2), method=method, n_steps=30)
    assert isinstance(ours, tuple) and len(ours) == 2


def test_one_tensor_in_a_tuple_gives_a_tuple(device):
    net = ConvNet().to(device).eval()
    x = torch.rand(2, 1, 6, 6, generator=gen(5)).to(device)
    ours, _ = run_both(net, (x,), target=0)
    assert isinstance(ours, tuple) and len(ours) == 1


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_right", "riemann_trapezoid"])
def test_additional_forward_args(device, method):
    net = MultiArgs().to(device)
    inputs, extra = multiargs_data(device)
    run_both(net, inputs, method=method, n_steps=16, target=1, additional_forward_args=extra)
    # a single non-tuple extra argument, and the flag changing the result
    ours, _ = run_both(lambda a, b, s: net(a, b, s, 1.0), inputs, target=3, additional_forward_args=extra[0])
    flipped, _ = run_both(
        lambda a, b, s, neg: net(a, b, s, 1.0, neg),
        inputs,
        target=3,
        additional_forward_args=(extra[0], True),
    )
    assert_close(flipped[0], -ours[0], **{"rtol": RTOL, "atol": ATOL})


def test_additional_tensor_is_repeated_per_step(device):
    "The per-example shift must follow its example along the path (captum repeats it n_steps times)."
    net = MultiArgs().to(device)
    inputs, extra = multiargs_data(device)
    ig = IntegratedGradients(net)
    full = ig.attribute(inputs, target=0, additional_forward_args=extra)
    for j in range(inputs[0].shape[0]):
        one = ig.attribute(
            tuple(x[j : j + 1] for x in inputs),
            target=0,
            additional_forward_args=(extra[0][j : j + 1],) + extra[1:],
        )
        for a, b in zip(one, full):
            assert_close(a[0], b[j], rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- baselines
@pytest.mark.parametrize("form", ["none", "scalar", "row", "full", "tuple-mixed"])
def test_baseline_forms(device, form):
    net = MultiArgs(2).to(device)
    inputs, extra = multiargs_data(device, seed=6)
    g = gen(7)
    base = {
        "none": None,
        "scalar": 0.25,
        "row": (
            torch.randn(1, 5, generator=g).to(device),
            torch.randn(1, 3, generator=g).to(device),
        ),
        "full": tuple(torch.randn(x.shape, generator=g).to(device) for x in inputs),
        "tuple-mixed": (0.5, torch.zeros(1, 3, device=device)),
    }[form]
    if form == "scalar":  # captum wants one baseline per input; a number for each is the same
        base_c = (0.25, 0.25)
    else:
        base_c = base
    checked, _ = run_both(net, inputs, baselines=base_c, target=2, additional_forward_args=extra)
    ours = IntegratedGradients(net).attribute(inputs, base, target=2, additional_forward_args=extra)
    for a, b in zip(ours, checked):
        assert_close(a, b, rtol=RTOL, atol=ATOL)


def test_input_equal_to_baseline_gives_zero(device):
    net = ConvNet().to(device).eval()
    x = torch.rand(2, 1, 6, 6, generator=gen(8)).to(device)
    ours, d = run_both(net, x, baselines=x, target=1)
    # exact by construction: the factor x − x̄ is exactly zero
    assert torch.equal(ours, torch.zeros_like(x)) and torch.equal(d, torch.zeros_like(d))


# ---------------------------------------------------------------- targets
@pytest.mark.parametrize("form", ["int", "0-d", "one-element", "tensor", "list", "cpu-0d"])
def test_target_forms_two_dim_output(device, form):
    net = ConvNet(3).to(device).eval()
    x = torch.rand(4, 1, 6, 6, generator=gen(9)).to(device)
    per = [2, 0, 1, 2]
    target = {
        "int": 1,
        "0-d": torch.tensor(1, device=device),
        "one-element": torch.tensor([1], device=device),
        "tensor": torch.tensor(per, device=device),
        "list": per,
        "cpu-0d": torch.tensor(1),
    }[form]
    ours, _ = run_both(net, x, target=target)
    ref = integrated_gradients(net, x, target=1 if form not in ("tensor", "list") else torch.tensor(per, device=device))
    assert_close(ours, ref, rtol=RTOL, atol=ATOL)


def test_int32_target_tensor(device):
    "captum gathers with the tensor as given (int64 only); an int32 class tensor works here."
    net = ConvNet(3).to(device).eval()
    x = torch.rand(4, 1, 6, 6, generator=gen(9)).to(device)
    t = torch.tensor([2, 0, 1, 2], device=device)
    ours = IntegratedGradients(net).attribute(x, target=t.int())
    assert_close(ours, CaptumIG(net).attribute(x, target=t), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("form", ["tuple", "list-of-tuples"])
def test_target_forms_three_axis_output(device, form):
    net = ThreeAxis().to(device)
    x = torch.randn(3, 6, generator=gen(10)).to(device)
    target = (2, 1) if form == "tuple" else [(0, 1), (2, 0), (1, 1)]
    run_both(net, x, target=target, n_steps=20)


def test_per_example_targets_equal_separate_runs(device):
    "Batched attributions equal the per-example ones (captum's batched-vs-single idea)."
    net = ConvNet(4).to(device).eval()
    x = torch.rand(5, 1, 6, 6, generator=gen(11)).to(device)
    t = [0, 2, 1, 1, 0]
    ig = IntegratedGradients(net)
    full, d = ig.attribute(x, target=t, return_convergence_delta=True)
    for j in range(5):
        one, dj = ig.attribute(x[j : j + 1], target=t[j], return_convergence_delta=True)
        assert_close(one[0], full[j], rtol=RTOL, atol=ATOL)
        assert_close(dj[0], d[j], rtol=RTOL, atol=10 * ATOL)


def test_missing_target_for_many_outputs_is_an_error(device):
    net = ConvNet().to(device).eval()
    x = torch.rand(2, 1, 6, 6, generator=gen(12)).to(device)
    with pytest.raises(AssertionError):  # captum: an assert
        CaptumIG(net).attribute(x)
    with pytest.raises(ValueError, match="choose one with target"):
        IntegratedGradients(net).attribute(x)


# ---------------------------------------------------------------- internal batching
@pytest.mark.parametrize("ibs", [1, 3, 4, 9, 40, 1000])
def test_internal_batch_size(device, ibs):
    net = MultiArgs(5).to(device)
    inputs, extra = multiargs_data(device, b=4, seed=13)
    kw = dict(target=[0, 1, 2, 3], additional_forward_args=extra, n_steps=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours, _ = run_both(net, inputs, internal_batch_size=ibs, **kw)
    if ibs < 4:  # both warn: the size is below b
        assert sum("below the number of examples" in str(w.message) for w in caught) == 1
    whole = IntegratedGradients(net).attribute(inputs, **kw)
    for a, b in zip(ours, whole):
        assert_close(a, b, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- local vs global, delta
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_multiply_by_inputs(device, method):
    net = MultiArgs(6).to(device)
    inputs, extra = multiargs_data(device, seed=14)
    base = (0.3, torch.zeros(1, 3, device=device))
    kw = dict(baselines=base, target=2, additional_forward_args=extra, method=method)
    local, _ = run_both(net, inputs, ctor=dict(multiply_by_inputs=False), **kw)
    glob = IntegratedGradients(net).attribute(inputs, **kw)
    for loc, gl, x, b in zip(local, glob, inputs, (0.3, 0.0)):
        assert_close(loc * (x - b), gl, rtol=RTOL, atol=ATOL)
    for ours, theirs in (
        (IntegratedGradients(net), CaptumIG(net)),
        (
            IntegratedGradients(net, multiply_by_inputs=False),
            CaptumIG(net, multiply_by_inputs=False),
        ),
    ):
        assert ours.multiplies_by_inputs == theirs.multiplies_by_inputs
        assert ours.has_convergence_delta() == theirs.has_convergence_delta() is True


def test_convergence_delta(device):
    net = MultiArgs(7).to(device)
    inputs, extra = multiargs_data(device, seed=15)
    base = (0.1, torch.full((1, 3), -0.2, device=device))
    ig, cap = IntegratedGradients(net), CaptumIG(net)
    attrs, d = ig.attribute(
        inputs,
        base,
        target=1,
        additional_forward_args=extra,
        n_steps=64,
        return_convergence_delta=True,
    )
    again = ig.compute_convergence_delta(attrs, base, inputs, target=1, additional_forward_args=extra)
    # exact by construction: the same two forward passes and the same sums
    assert torch.equal(again, d)
    theirs = cap.compute_convergence_delta(attrs, base, inputs, target=1, additional_forward_args=extra)
    assert_close(d, theirs, rtol=RTOL, atol=ATOL)
    assert d.abs().max() < 1e-4  # 64 Gauss–Legendre nodes, smooth net
    # a wrong attribution (twice the IG) shows up in the delta: it is not a quantity that is always small
    doubled = ig.compute_convergence_delta(
        tuple(2 * a for a in attrs), base, inputs, target=1, additional_forward_args=extra
    )
    assert_close(doubled - d, sum(a.flatten(1).sum(1) for a in attrs), rtol=RTOL, atol=10 * ATOL)


def test_completeness_gap_is_captums_delta(device):
    net = ConvNet(8).to(device).eval()
    x = torch.rand(3, 1, 6, 6, generator=gen(16)).to(device)
    attrs, d = CaptumIG(net).attribute(x, target=0, n_steps=7, return_convergence_delta=True)
    assert_close(completeness_gap(net, attrs, x, target=0), d, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- closed forms and the documented difference
@pytest.mark.parametrize("method", METHODS)
def test_linear_model_closed_form(device, method):
    "F(x) = w·x + c: IG = w ⊙ (x − x̄) for any rule with weights summing to 1."
    lin = nn.Linear(6, 1).double().to(device)
    f = lambda z: lin(z)[:, 0]
    g = gen(17)
    x, base = (torch.randn(4, 6, generator=g, dtype=F64).to(device) for _ in range(2))
    exact = lin.weight.detach()[0] * (x - base)
    ours = IntegratedGradients(f).attribute(x, base, n_steps=10, method=method)
    eps = torch.finfo(F64).eps
    assert_close(ours, exact, rtol=1e3 * eps, atol=1e3 * eps * exact.abs().max().item())
    theirs = CaptumIG(f).attribute(x, base, n_steps=10, method=method)
    factor = 0.9 if method == "riemann_trapezoid" else 1.0  # captum's weight sum (n−1)/n at n = 10
    assert_close(theirs, exact * factor, rtol=1e-6, atol=1e-12)  # captum's float32 weights


def test_trapezoid_difference_is_the_documented_factor(device):
    net = MultiArgs(9).to(device)
    inputs, extra = multiargs_data(device, seed=18)
    n, kw = 20, dict(target=1, additional_forward_args=extra, method="riemann_trapezoid")
    ours, d = IntegratedGradients(net).attribute(inputs, n_steps=n, return_convergence_delta=True, **kw)
    theirs, cd = CaptumIG(net).attribute(inputs, n_steps=n, return_convergence_delta=True, **kw)
    for a, c in zip(ours, theirs):
        assert_close(a * (n - 1) / n, c, rtol=RTOL, atol=ATOL)
    with pytest.raises(AssertionError):  # unscaled, the two differ: a real difference
        assert_close(ours[0], theirs[0], rtol=RTOL, atol=ATOL)
    # on this smooth net our trapezoid is O(1/n²) from complete; captum's misses by ~(F(x) − F(x̄))/n
    assert cd.abs().max() > 10 * d.abs().max()
