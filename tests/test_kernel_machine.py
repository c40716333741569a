"""Tests for su_notes.dynamics.kernel_machine beyond the notebook's checks.

Peers that share no code with the module: the two methods of PyTorch's *Neural Tangent Kernels* tutorial
(`empirical_ntk_jacobian_contraction`, per-parameter einsums; `empirical_ntk_ntk_vps`, a vjp/jvp per *pair* of
examples), re-implemented here with `torch.func` from the tutorial's description; a brute-force autograd loop
(`torch.autograd.grad` per example and output unit); closed forms (linear layer, a model linear in θ);
`torch.optim.SGD` for the gradient-descent path. Property tests (hypothesis) over shapes and seeds; bad input for
every public function (clear errors, nothing mutated). Numerical tests run on `--device` (default cpu).
"""

import copy

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from su_notes.dynamics.kernel_machine import (
    RULES,
    GDPath,
    KernelMachine,
    empirical_ntk,
    empirical_ntk_vp,
    gd_path,
    half_squared_error,
    kernel_machine_form,
    path_kernel_reconstruction,
)

F64 = torch.float64


# ---------------------------------------------------------------- the peers (PyTorch NTK tutorial, torch.func)


def _fnet_single(model):
    "The tutorial's single-example function of a parameter dict."

    def fnet_single(params, x):
        return functional_call(model, params, (x.unsqueeze(0),)).squeeze(0)

    return fnet_single


def _trainable_params(model):
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def tutorial_jacobian_contraction(model, x1, x2):
    "Tutorial: per-example Jacobians by vmap(jacrev), one einsum 'Naf,Mbf->NMab' per parameter tensor, summed."
    f, params = _fnet_single(model), _trainable_params(model)
    jac1 = [j.flatten(2) for j in vmap(jacrev(f), (None, 0))(params, x1).values()]
    jac2 = [j.flatten(2) for j in vmap(jacrev(f), (None, 0))(params, x2).values()]
    return torch.stack([torch.einsum("Naf,Mbf->NMab", a, b) for a, b in zip(jac1, jac2)]).sum(0)


def tutorial_ntk_vps(model, x1, x2):
    "Tutorial: per pair (x1_a, x2_b) a vjp through f(x1_a), then a jvp through f(x2_b), vmapped over a basis."
    f, params = _fnet_single(model), _trainable_params(model)

    def get_ntk(a, b):
        out, vjp_fn = vjp(lambda p: f(p, a), params)

        def slice_(vec):  # row u: J(x2_b) J(x1_a)ᵀ e_u
            return jvp(lambda p: f(p, b), (params,), vjp_fn(vec))[1]

        basis = torch.eye(out.numel(), dtype=out.dtype, device=out.device).view(out.numel(), -1)
        return vmap(slice_)(basis)

    return vmap(vmap(get_ntk, (None, 0)), (0, None))(x1, x2)  # (n1, n2, k, k), entry [a, b, u, v]


def brute_force_ntk(model, x1, x2):
    "torch.autograd.grad per example and output unit: (n1, n2, k, k)."
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(x):
        rows = []
        for xi in x:
            out = model(xi.unsqueeze(0)).reshape(-1)
            per_unit = [torch.autograd.grad(o, params, retain_graph=True) for o in out]
            rows.append(torch.stack([torch.cat([g.reshape(-1) for g in gs]) for gs in per_unit]))
        return torch.stack(rows)  # (n, k, P)

    G1, G2 = grads(x1), grads(x2)
    return torch.einsum("auP,bvP->abuv", G1, G2)


def mlp(d_in, width, k, dtype=F64, device="cpu"):
    return nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, k)).to(
        dtype=dtype, device=device
    )


def full(K, k):
    "Our (n1, n2) for one unit as (n1, n2, 1, 1)."
    return K[..., None, None] if k == 1 else K


# ---------------------------------------------------------------- cross-checks against the tutorial


@pytest.mark.parametrize("k", [1, 3])
def test_matches_tutorial_jacobian_contraction_float64(k, device):
    torch.manual_seed(0)
    model = mlp(4, 16, k, device=device)
    x1, x2 = (
        torch.randn(7, 4, dtype=F64, device=device),
        torch.randn(5, 4, dtype=F64, device=device),
    )
    K = empirical_ntk(model, x1, x2)
    assert K.shape == ((7, 5) if k == 1 else (7, 5, k, k)) and K.device == x1.device
    torch.testing.assert_close(full(K, k), tutorial_jacobian_contraction(model, x1, x2), rtol=1e-10, atol=1e-10)


def test_matches_tutorial_on_a_float32_cnn(device):
    # the tutorial's setting: a small CNN, 10 outputs, float32; claim of the post's section: agreement to 1e-5
    torch.manual_seed(1)
    cnn = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 10),
    ).to(device)
    x1, x2 = torch.randn(6, 3, 10, 10, device=device), torch.randn(4, 3, 10, 10, device=device)
    K, ref = empirical_ntk(cnn, x1, x2), tutorial_jacobian_contraction(cnn, x1, x2)
    assert K.shape == (6, 4, 10, 10)
    torch.testing.assert_close(K, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    K_vp = empirical_ntk_vp(cnn, x1, x2)
    torch.testing.assert_close(K_vp, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


@pytest.mark.parametrize("k", [1, 2])
def test_ntk_vp_matches_tutorial_ntk_vps(k, device):
    torch.manual_seed(2)
    model = mlp(3, 8, k, device=device)
    x1, x2 = (
        torch.randn(4, 3, dtype=F64, device=device),
        torch.randn(3, 3, dtype=F64, device=device),
    )
    ref = tutorial_ntk_vps(model, x1, x2)
    if k > 1:
        assert (ref - ref.transpose(-1, -2)).abs().max() > 1e-6  # the unit order is tested, not symmetric
    torch.testing.assert_close(full(empirical_ntk_vp(model, x1, x2), k), ref, rtol=1e-10, atol=1e-10)


def test_frozen_parameters_are_left_out(device):
    # "over all parameters with requires_grad": the peer gets only the trainable ones as well
    torch.manual_seed(3)
    model = mlp(3, 8, 2, device=device)
    model[0].requires_grad_(False)
    x = torch.randn(5, 3, dtype=F64, device=device)
    ref = tutorial_jacobian_contraction(model, x, x)
    torch.testing.assert_close(empirical_ntk(model, x, x), ref, rtol=1e-10, atol=1e-10)
    assert not any(p.requires_grad for p in model[0].parameters())
    model.requires_grad_(True)
    assert (empirical_ntk(model, x, x) - ref).abs().max() > 1e-3  # the first layer contributes when trainable


def test_eval_mode_batchnorm_and_buffers(device):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 1)).to(F64).to(device)
    model(torch.randn(32, 3, dtype=F64, device=device))  # move the running statistics
    model.eval()
    stats = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 3, dtype=F64, device=device)
    torch.testing.assert_close(
        empirical_ntk(model, x, x)[..., None, None],
        brute_force_ntk(model, x, x),
        rtol=1e-10,
        atol=1e-12,
    )
    # exact: compared with a copy taken before the call (nothing may be mutated)
    for n, v in model.state_dict().items():
        assert torch.equal(v, stats[n]), n


# ---------------------------------------------------------------- properties (hypothesis)


@settings(max_examples=15)
@given(
    seed=st.integers(0, 10_000),
    n1=st.integers(1, 5),
    n2=st.integers(1, 5),
    k=st.integers(1, 3),
    width=st.integers(1, 6),
)
def test_both_methods_equal_brute_force(seed, n1, n2, k, width, device):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = mlp(2, width, k, device=device)
    x1 = torch.randn(n1, 2, dtype=F64, generator=gen).to(device)
    x2 = torch.randn(n2, 2, dtype=F64, generator=gen).to(device)
    ref = brute_force_ntk(model, x1, x2)
    for fn in (empirical_ntk, empirical_ntk_vp):
        K = fn(model, x1, x2)
        assert K.shape == ((n1, n2) if k == 1 else (n1, n2, k, k))
        torch.testing.assert_close(full(K, k), ref, rtol=1e-10, atol=1e-12)


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), k=st.integers(1, 3))
def test_gram_matrix_is_symmetric_psd(seed, n, k, device):
    torch.manual_seed(seed)
    model = mlp(3, 5, k, device=device)
    x = torch.randn(n, 3, dtype=F64, device=device)
    for fn in (empirical_ntk, empirical_ntk_vp):
        K = full(fn(model, x, x), k).permute(0, 2, 1, 3).reshape(n * k, n * k)
        # exact by construction: with x2 is x1 both return ½(K + Kᵀ), and floating-point addition commutes
        assert torch.equal(K, K.T)
        assert torch.linalg.eigvalsh(K).min() >= -1e-10 * K.diagonal().abs().max()


def test_gram_matrix_of_equal_but_distinct_batches_is_symmetric_to_rounding(device):
    # only `x2 is x1` is symmetrised; an equal copy gets the plain product, symmetric up to rounding
    torch.manual_seed(0)
    model = mlp(3, 5, 2, device=device)
    x = torch.randn(6, 3, dtype=F64, device=device)
    K = full(empirical_ntk(model, x, x.clone()), 2).permute(0, 2, 1, 3).reshape(12, 12)
    n_terms = sum(p.numel() for p in model.parameters())  # each entry sums P products
    tol = dict(
        rtol=n_terms * torch.finfo(F64).eps,
        atol=n_terms * torch.finfo(F64).eps * K.abs().max().item(),
    )
    torch.testing.assert_close(K, K.T, **tol)
    torch.testing.assert_close(K, full(empirical_ntk(model, x, x), 2).permute(0, 2, 1, 3).reshape(12, 12), **tol)


def test_linear_layer_closed_form(device):
    lin = nn.Linear(4, 3).to(F64).to(device)
    x1, x2 = (
        torch.randn(5, 4, dtype=F64, device=device),
        torch.randn(2, 4, dtype=F64, device=device),
    )
    eye = torch.eye(3, dtype=F64, device=device)
    torch.testing.assert_close(
        empirical_ntk(lin, x1, x2), (x1 @ x2.T + 1)[..., None, None] * eye, rtol=1e-12, atol=1e-12
    )


def test_one_dim_output_gives_a_matrix(device):
    # output (n,): one unit per example, kernel (n1, n2)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1), nn.Flatten(0)).to(F64).to(device)
    x1, x2 = (
        torch.randn(4, 3, dtype=F64, device=device),
        torch.randn(2, 3, dtype=F64, device=device),
    )
    assert model(x1).shape == (4,)
    for fn in (empirical_ntk, empirical_ntk_vp):
        K = fn(model, x1, x2)
        assert K.shape == (4, 2)
        torch.testing.assert_close(K, brute_force_ntk(model, x1, x2)[..., 0, 0], rtol=1e-10, atol=1e-12)


def test_multi_dim_output_is_flattened(device):
    # output (n, 2, 3): k = 6 units, in row-major order
    model = nn.Sequential(nn.Linear(3, 6), nn.Unflatten(1, (2, 3))).to(F64).to(device)
    x = torch.randn(4, 3, dtype=F64, device=device)
    assert empirical_ntk(model, x, x).shape == (4, 4, 6, 6)
    # exact: a linear layer's Jacobian entries are x_b or 1 (one nonzero term each), so both models have the
    # same J bit for bit, and the same product of the same inputs gives the same kernel
    torch.testing.assert_close(empirical_ntk(model, x, x), empirical_ntk(model[0], x, x), rtol=0, atol=0)


# ---------------------------------------------------------------- gradient-descent path and reconstruction


def test_gd_path_matches_torch_sgd_with_a_custom_loss(device):
    # logistic loss l = softplus(f) - y f: ℓ' = sigmoid(f) - y
    torch.manual_seed(5)
    model = mlp(2, 6, 1, device=device)
    x = torch.randn(10, 2, dtype=F64, device=device)
    y = (x[:, :1] > 0).to(F64)
    bce = lambda f, t: (nn.functional.softplus(f) - t * f).reshape(-1)
    before = copy.deepcopy(model.state_dict())
    path = gd_path(model, x, y, 0.1, 15, loss_fn=bce, show_progress=False)
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    for t in range(15):
        opt.zero_grad()
        out = ref(x)
        torch.testing.assert_close(path.dloss[t], (torch.sigmoid(out) - y).detach(), rtol=1e-12, atol=1e-13)
        bce(out, y).sum().backward()
        opt.step()
        for n, p in ref.named_parameters():
            torch.testing.assert_close(path.params[t + 1][n], p.detach(), rtol=1e-12, atol=1e-13)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    for n, v in model.state_dict().items():
        assert torch.equal(v, before[n]), n
    assert isinstance(path, GDPath) and path.lr == 0.1 and path.x is x
    assert len(path.params) == 16 and path.dloss.shape == (15, 10, 1)


def test_zero_steps(device):
    model = mlp(2, 4, 1, device=device)
    x, y = torch.randn(3, 2, dtype=F64, device=device), torch.randn(3, 1, dtype=F64, device=device)
    path = gd_path(model, x, y, 0.1, 0, show_progress=False)
    assert len(path.params) == 1 and path.dloss.shape == (0, 3, 1)
    for rule in RULES:
        # exact: no step, so the sum is the zeros it starts from
        assert torch.equal(
            path_kernel_reconstruction(model, path, x, rule, show_progress=False),
            torch.zeros(3, dtype=F64, device=device),
        )


def test_every_rule_is_exact_for_a_model_linear_in_theta(device):
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(1, 12), nn.Tanh(), nn.Linear(12, 2)).to(F64).to(device)
    model[0].requires_grad_(False)
    x, y = torch.randn(8, 1, dtype=F64, device=device), torch.randn(8, 2, dtype=F64, device=device)
    q = torch.linspace(-3, 3, 7, dtype=F64, device=device)[:, None]
    path = gd_path(model, x, y, 0.02, 25, show_progress=False)
    exact = (functional_call(model, path.params[-1], (q,)) - model(q)).detach()
    for rule in RULES:
        torch.testing.assert_close(
            path_kernel_reconstruction(model, path, q, rule, show_progress=False),
            exact,
            rtol=1e-11,
            atol=1e-12,
        )


def test_orders_of_the_rules(device):
    # halving η at a fixed horizon: left and kernel_trapezoid errors halve, trapezoid's quarter
    torch.manual_seed(7)
    model = mlp(1, 10, 1, device=device)
    x = torch.linspace(-2, 2, 8, dtype=F64, device=device)[:, None]
    y, q = torch.sin(2 * x), torch.linspace(-2.5, 2.5, 9, dtype=F64, device=device)[:, None]
    errs = {r: [] for r in RULES}
    for T in (40, 80, 160):
        path = gd_path(model, x, y, 0.6 / T, T, show_progress=False)
        exact = (functional_call(model, path.params[-1], (q,)) - model(q)).detach()[:, 0]
        for r in RULES:
            rec = path_kernel_reconstruction(model, path, q, r, show_progress=False)
            errs[r].append((rec - exact).abs().max())
    for r, order in (("left", 1), ("trapezoid", 2), ("kernel_trapezoid", 1)):
        ratio = (errs[r][1] / errs[r][2]).item()
        assert abs(ratio - 2**order) < 0.25 * 2**order, (r, ratio)


def test_kernel_machine_form_identity_and_brute_force(device):
    torch.manual_seed(8)
    model = mlp(1, 6, 1, device=device)
    x, y = torch.randn(5, 1, dtype=F64, device=device), torch.randn(5, 1, dtype=F64, device=device)
    q = torch.randn(4, 1, dtype=F64, device=device)
    path = gd_path(model, x, y, 0.05, 10, show_progress=False)
    km = kernel_machine_form(model, path, q, show_progress=False)
    assert isinstance(km, KernelMachine) and km.alpha.shape == (4, 5) and km.beta.shape == (4,)
    Kp = sum(0.05 * brute_force_ntk(_with(model, path.params[t]), q, x)[..., 0, 0] for t in range(10))
    torch.testing.assert_close(km.path_kernel, Kp, rtol=1e-10, atol=1e-12)
    left = path_kernel_reconstruction(model, path, q, "left", show_progress=False)
    torch.testing.assert_close(
        km.beta + (km.alpha * km.path_kernel).sum(1),
        model(q).detach()[:, 0] + left,
        rtol=1e-10,
        atol=1e-12,
    )


def _with(model, params):
    "A copy of `model` holding `params`."
    m = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n in params:
                p.copy_(params[n])
    return m


@pytest.mark.cuda
def test_cuda_matches_cpu():
    torch.manual_seed(9)
    model = mlp(3, 8, 2)
    x = torch.randn(5, 3, dtype=F64)
    ref = empirical_ntk(model, x, x)
    model_c, x_c = copy.deepcopy(model).cuda(), x.cuda()
    for fn in (empirical_ntk, empirical_ntk_vp):
        torch.testing.assert_close(fn(model_c, x_c, x_c).cpu(), ref, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- bad input: clear errors, nothing mutated


@pytest.fixture
def setup():
    torch.manual_seed(10)
    model = mlp(2, 4, 1)
    x, y = torch.randn(5, 2, dtype=F64), torch.randn(5, 1, dtype=F64)
    return model, x, y, copy.deepcopy(model.state_dict())


def _unchanged(model, state):
    # exact: compared with a copy taken before the call (nothing may be mutated)
    for n, v in model.state_dict().items():
        assert torch.equal(v, state[n]), n


@pytest.mark.parametrize("fn", [empirical_ntk, empirical_ntk_vp])
def test_ntk_bad_input(fn, setup):
    model, x, _, state = setup
    cases = [
        ((lambda z: z, x, x), TypeError, "Invalid model"),
        ((model, x.numpy(), x), TypeError, "Invalid x1"),
        ((model, x, x.float()), TypeError, "Invalid x2"),
        ((model, x.long(), x), TypeError, "Invalid x1"),
        ((model, x, x[:, :1]), ValueError, "Invalid x2"),
        ((model, x[:0], x), ValueError, "Invalid x1"),
        ((model, torch.tensor(1.0, dtype=F64), x), ValueError, "Invalid x1"),
        ((model, x, x.to("meta")), ValueError, "Invalid x2"),
        ((nn.Sequential(model, nn.Dropout(0.2)), x, x), ValueError, "Dropout"),
        (
            (nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).double(), x, x),
            ValueError,
            "BatchNorm1d",
        ),
        ((nn.Linear(2, 1).double().requires_grad_(False), x, x), ValueError, "requires_grad"),
        ((_Summed(), x, x), ValueError, "Invalid model"),
    ]
    for args, err, text in cases:
        with pytest.raises(err, match=text):
            fn(*args)
    _unchanged(model, state)
    assert all(p.requires_grad for p in model.parameters()) and model.training


class _Summed(nn.Module):
    "Returns one number for the whole batch: not per example."

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1).double()

    def forward(self, x):
        return self.lin(x).sum()


def test_gd_path_bad_input(setup):
    model, x, y, state = setup
    cases = [
        (dict(model="net"), TypeError, "Invalid model"),
        (dict(x=x.float()), TypeError, "Invalid x"),
        (dict(y=[1.0] * 5), TypeError, "Invalid y"),
        (dict(y=y[:4]), ValueError, "Invalid y"),
        (dict(lr=0.0), ValueError, r"Invalid lr: 0\.0"),
        (dict(lr=float("nan")), ValueError, "Invalid lr"),
        (dict(lr=True), TypeError, "Invalid lr: True"),
        (dict(n_steps=-1), ValueError, "Invalid n_steps: -1"),
        (dict(n_steps=2.0), TypeError, r"Invalid n_steps: 2\.0"),
        (dict(loss_fn="mse"), TypeError, "Invalid loss_fn"),
        (dict(loss_fn=lambda f, t: (f - t).pow(2).mean()), ValueError, "Invalid loss_fn"),
        (dict(show_progress=1), TypeError, "Invalid show_progress: 1"),
    ]
    base = dict(model=model, x=x, y=y, lr=0.1, n_steps=2)
    for over, err, text in cases:
        with pytest.raises(err, match=text):
            gd_path(**{**base, **over})
    _unchanged(model, state)


def test_half_squared_error_bad_input():
    with pytest.raises(ValueError, match="Invalid target"):
        half_squared_error(torch.zeros(3), torch.zeros(3, 1))
    with pytest.raises(TypeError, match="Invalid output"):
        half_squared_error([0.0], torch.zeros(1))
    torch.testing.assert_close(half_squared_error(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)), torch.tensor([2.5]))


def test_reconstruction_and_form_bad_input(setup):
    model, x, y, state = setup
    path = gd_path(model, x, y, 0.1, 2, show_progress=False)
    with pytest.raises(ValueError, match="Invalid rule: 'simpson'"):
        path_kernel_reconstruction(model, path, x, "simpson")
    with pytest.raises(TypeError, match="Invalid path"):
        path_kernel_reconstruction(model, path.params, x)
    with pytest.raises(ValueError, match="Invalid x"):
        path_kernel_reconstruction(model, path, x[:, :1])
    with pytest.raises(TypeError, match="Invalid show_progress"):
        path_kernel_reconstruction(model, path, x, "left", 0)
    with pytest.raises(TypeError, match="Invalid path"):
        kernel_machine_form(model, (1, 2), x)
    with pytest.raises(TypeError, match="Invalid x"):
        kernel_machine_form(model, path, x.float())
    two = mlp(2, 4, 2)
    p2 = gd_path(two, x, y.expand(5, 2), 0.1, 1, show_progress=False)
    with pytest.raises(ValueError, match="output units"):
        kernel_machine_form(two, p2, x)
    _unchanged(model, state)
