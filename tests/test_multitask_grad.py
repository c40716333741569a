"""Tests for su_notes.optim.multitask_grad that the notebook does not run: LibMTL 1.1.5's MGDA solver and PCGrad
as peers (loaded with `peers.load_submodule`; LibMTL's own code runs, nothing of ours is handed to it), LibMTL's
MGDA loop running past its MAX_ITER = 250 because `iter_count` is never incremented (the bug of
isl-org/MultiObjectiveOptimization#39 that LibMTL copied), an exact brute-force QP, hypothesis properties (KKT
conditions, simplex, permutation), the sync-free accelerator path against the CPU path, and bad input for every
public name (clear error naming the argument, nothing mutated)."""

import inspect
import itertools
import math
import types

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch.overrides import TorchFunctionMode

from peers import load_submodule
import su_notes.optim.multitask_grad as mtg
from su_notes.optim.multitask_grad import (
    _solve_min_norm,
    _two_task_weights,
    mgda_direction,
    min_norm_weights,
    pcgrad,
    pcgrad_weights,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def grads_like(T, P, seed=0, shared=0.5, device="cpu", dtype=torch.float64):
    "Task gradients with a shared component and scales in (0.1, 3), made on the CPU then moved."
    g = gen(seed)
    x = torch.randn(T, P, generator=g, dtype=torch.float64) + shared * torch.randn(
        1, P, generator=g, dtype=torch.float64
    )
    x = x * (0.1 + 2.9 * torch.rand(T, 1, generator=g, dtype=torch.float64))
    return x.to(device=device, dtype=dtype)


def brute_force(G):
    "Exact minimum of aᵀGa on the simplex: every support, its KKT system by numpy, the best feasible point."
    G = np.asarray(G, dtype=np.float64)
    T, best, best_f = len(G), None, math.inf
    for r in range(1, T + 1):
        for S in itertools.combinations(range(T), r):
            S = list(S)
            K = np.zeros((r + 1, r + 1))
            K[:r, :r] = G[np.ix_(S, S)]
            K[:r, r] = K[r, :r] = 1.0
            try:
                x = np.linalg.solve(K, np.eye(r + 1)[r])
            except np.linalg.LinAlgError:
                continue
            a = np.zeros(T)
            a[S] = x[:r]
            if a.min() >= -1e-12 and a @ G @ a < best_f:
                best, best_f = a, a @ G @ a
    return best, best_f


class CountCalls(TorchFunctionMode):
    "Count calls of one torch function (name match) and raise after `cap` (to stop a loop that does not end)."

    def __init__(self, name, cap=10**9):
        super().__init__()
        self.name, self.cap, self.n = name, cap, 0

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        if getattr(func, "__name__", "") == self.name:
            self.n += 1
            if self.n > self.cap:
                raise RuntimeError(f"{self.name} called more than {self.cap} times")
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def libmtl_mgda():
    return load_submodule("LibMTL.weighting.MGDA").MGDA()


# ---------------------------------------------------------------- exact QP
@pytest.mark.parametrize("T", [2, 3, 4, 5, 6, 7, 8])
def test_min_norm_weights_matches_brute_force_qp(device, T):
    for seed in range(6):
        g = grads_like(T, 3 * T, seed=100 * T + seed, device=device)
        G = g @ g.T
        alpha = min_norm_weights(G)
        ref, f_ref = brute_force(G.cpu().numpy())
        assert alpha.device == G.device and alpha.dtype == G.dtype
        assert np.abs(alpha.cpu().numpy() - ref).max() < 1e-5
        inner = (g @ (alpha @ g)).cpu()  # ⟨g_i, d⟩ ≥ ‖d‖² = f*, equality on the support
        assert bool((inner >= f_ref * (1 - 1e-9)).all())
        assert np.allclose(inner.numpy()[ref > 1e-9], f_ref, rtol=1e-9)


def test_rank_deficient_gram_reaches_the_optimal_value(device):
    "P < T: G is singular, α need not be unique, the value must still be optimal."
    for seed in range(10):
        g = grads_like(7, 3, seed=seed, shared=1.5, device=device)
        G = g @ g.T
        alpha = min_norm_weights(G)
        _, f_ref = brute_force(G.cpu().numpy())
        f = (alpha @ G @ alpha).item()
        assert alpha.min() >= 0 and abs(alpha.sum().item() - 1) < 1e-12
        assert f <= f_ref + 1e-9 * G.diagonal().max().item()


def test_sync_free_path_matches_the_cpu_path():
    "The fixed-count masked loop used on accelerators (no early exit) gives the CPU path's answer."
    for T, seed in itertools.product([3, 5, 8, 12, 16], range(4)):
        g = grads_like(T, 2 * T, seed=seed)
        G = g @ g.T
        ours = min_norm_weights(G)
        fixed = _solve_min_norm(G.double(), 250, 1e-5, early_exit=False)
        fixed = fixed / fixed.sum()
        assert ((ours - fixed).abs().max() < 1e-7) or (fixed @ G @ fixed <= ours @ G @ ours * (1 + 1e-9))


def test_tensor_paths_match_brute_force():
    "The accelerator paths (T = 2 closed form, sync-free loop), run here on CPU tensors."
    for seed in range(20):
        g = grads_like(2, 3, seed=seed, shared=2.0 * (seed % 3 - 1))
        G = g @ g.T
        ref, _ = brute_force(G.numpy())
        assert np.abs(_two_task_weights(G).numpy() - ref).max() < 1e-10
    # exact: g₁ = g₂ gives ‖g₁ − g₂‖² = 0, and the rule returns the constant 0.5
    assert torch.equal(
        _two_task_weights(torch.ones(2, 2, dtype=torch.float64)),
        torch.tensor([0.5, 0.5], dtype=torch.float64),
    )
    for T, seed in itertools.product([3, 6, 8], range(4)):
        g = grads_like(T, 3 * T, seed=seed)
        G = g @ g.T
        a = _solve_min_norm(G, 250, 1e-5)
        assert np.abs((a / a.sum()).numpy() - brute_force(G.numpy())[0]).max() < 1e-5


# ---------------------------------------------------------------- LibMTL's MGDA
@pytest.mark.parametrize("T, P", [(3, 10), (4, 20), (6, 30), (8, 40), (8, 1000)])
def test_min_norm_weights_matches_libmtl_mgda(device, libmtl_mgda, T, P):
    for seed in range(4):
        g = grads_like(T, P, seed=seed, dtype=torch.float32, device=device)
        with CountCalls("matmul", cap=5000):  # their loop has no working cap, see below
            peer = libmtl_mgda._find_min_norm_element(g)  # LibMTL's solver on the float32 gradients
        ours = min_norm_weights(g @ g.T)
        G = (g @ g.T).double()
        f_peer, f_ours = (
            (peer.double() @ G @ peer.double()).item(),
            (ours.double() @ G @ ours.double()).item(),
        )
        assert f_ours <= f_peer * (1 + 1e-5)  # never worse than the peer (float32 rounding)
        # the peer stops at ΔL1 < 1e-5 and its two-point step clamps γ to [0.001, 0.999], so an optimum on a
        # vertex or edge is missed by up to ~1e-3 in α (seen: α = (0, 4e-4, 0.9996) for the optimum (0, 0, 1))
        assert f_peer <= f_ours * (1 + 1e-3)
        assert (peer - ours).abs().max().item() < 2e-3


def test_libmtl_mgda_loop_runs_past_max_iter(libmtl_mgda):
    "LibMTL's copy of the reference loop: `while iter_count < MAX_ITER` and `iter_count` never changes."
    src = inspect.getsource(type(libmtl_mgda)._find_min_norm_element)
    assert "MAX_ITER = 250" in src and "while iter_count < MAX_ITER" in src
    assert "iter_count +=" not in src and "iter_count = iter_count" not in src
    # one torch.matmul per step of their loop; count them while their own code runs
    steps = {}
    for seed in range(40):
        g = grads_like(16, 8, seed=seed, dtype=torch.float32)
        counter = CountCalls("matmul", cap=20_000)
        try:
            with counter:
                libmtl_mgda._find_min_norm_element(g)
        except RuntimeError:
            pass  # did not stop by itself within 20 000 steps
        steps[seed] = counter.n
        if counter.n > 1000:
            break
    over = {s: n for s, n in steps.items() if n > 250}
    assert max(steps.values()) > 1000, steps  # far past the intended cap of 250

    # ours on the same problems honours max_iter: count the away-vertex searches of both paths
    # (np.where once per step of the CPU/numpy loop, masked_fill once per step of the tensor loop)
    class CountingNumpy(types.ModuleType):
        def __init__(self):
            super().__init__("np")
            self.n = 0

        def __getattr__(self, name):
            return getattr(np, name)

        def where(self, *args):
            self.n += 1
            return np.where(*args)

    for seed in over:
        g = grads_like(16, 8, seed=seed, dtype=torch.float32)
        counting = CountingNumpy()
        saved, mtg.np = mtg.np, counting
        try:
            alpha = min_norm_weights(g @ g.T, max_iter=250)
        finally:
            mtg.np = saved
        assert 0 < counting.n <= 250 and alpha.min() >= 0 and abs(alpha.sum().item() - 1) < 1e-5
        counter = CountCalls("masked_fill")
        with counter:
            alpha = _solve_min_norm((g @ g.T).double(), 250, 1e-5)
        assert counter.n == 250 and alpha.min() >= 0


# ---------------------------------------------------------------- LibMTL's PCGrad
def _our_orders(T, seed):
    "The visiting orders pcgrad_weights documents: argsort of rows of torch.rand(T, T), the diagonal skipped."
    keys = torch.rand(T, T, generator=gen(seed), dtype=torch.float64)
    keys.fill_diagonal_(2.0)
    return keys.argsort(dim=1)[:, : T - 1].tolist()


def _libmtl_pcgrad(grads, orders):
    "Run LibMTL's PCGrad.backward on fixed gradients; its random.shuffle replaced to give `orders`."
    mod = load_submodule("LibMTL.weighting.PCGrad")
    pc = mod.PCGrad()
    T = grads.shape[0]
    calls = iter(range(T))

    def shuffle(lst):  # task i: itself first (a no-op), then ours
        i = next(calls)
        lst[:] = [i] + orders[i]

    out = {}
    pc.task_num, pc.rep_grad = T, False
    pc._compute_grad_dim = lambda: None
    pc._compute_grad = lambda losses, mode: grads.clone()
    pc._reset_grad = lambda new: out.setdefault("g", new)
    saved = mod.random
    mod.random = types.SimpleNamespace(shuffle=shuffle)
    try:
        pc.backward([None] * T)
    finally:
        mod.random = saved
    return out["g"]


@pytest.mark.parametrize("T", [2, 3, 4, 6, 9])
def test_pcgrad_matches_libmtl(device, T):
    for seed in range(5):
        g = grads_like(T, 30, seed=seed, shared=-0.3)
        peer = _libmtl_pcgrad(g, _our_orders(T, seed))
        ours = pcgrad(g.to(device), gen(seed))
        assert ours.device == g.to(device).device
        torch.testing.assert_close(ours.cpu(), peer, rtol=1e-10, atol=1e-10)


def test_pcgrad_float32_and_default_generator(device):
    g = grads_like(4, 50, seed=3, shared=-0.3, device=device, dtype=torch.float32)
    out = pcgrad(g)
    assert out.dtype == torch.float32 and out.shape == (50,) and torch.isfinite(out).all()
    torch.testing.assert_close(pcgrad(g, gen(1)).double(), pcgrad(g.double(), gen(1)), rtol=1e-4, atol=1e-4)


def test_pcgrad_zero_gradient_is_never_projected_on():
    g = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.5, 1.0]], dtype=torch.float64)
    out = pcgrad(g, gen(0))
    assert torch.isfinite(out).all()
    ref = pcgrad(g[[0, 2]], gen(0))  # a zero row changes nothing else
    g2 = g[[0, 2]]
    pc0 = g2[0] - (g2[0] @ g2[1]) / (g2[1] @ g2[1]) * g2[1]
    pc1 = g2[1] - (g2[0] @ g2[1]) / (g2[0] @ g2[0]) * g2[0]
    torch.testing.assert_close(out, pc0 + pc1)
    torch.testing.assert_close(ref, pc0 + pc1)


# ---------------------------------------------------------------- properties
@given(
    T=st.integers(2, 10),
    extra=st.integers(0, 8),
    seed=st.integers(0, 10**6),
    shared=st.floats(-1.0, 2.0),
)
def test_min_norm_weights_kkt_and_simplex(T, extra, seed, shared):
    "P ≥ T (G positive definite): the KKT conditions hold to tol."
    g = grads_like(T, T + extra, seed=seed, shared=shared)
    G = g @ g.T
    alpha = min_norm_weights(G)
    assert alpha.shape == (T,) and alpha.min() >= 0 and abs(alpha.sum().item() - 1) < 1e-12
    f = (alpha @ G @ alpha).item()
    scale = G.diagonal().max().item()
    assert f <= G.diagonal().min().item() + 1e-12 * scale  # no worse than the best single task
    assert f <= (G.mean()).item() + 1e-12 * scale  # no worse than uniform weights
    inner = G @ alpha  # ⟨g_i, d⟩ ≥ ‖d‖² (up to tol and rounding)
    assert bool((inner >= f - 1e-5 * f - 1e-9 * scale).all())


@given(
    T=st.integers(3, 8),
    P=st.integers(1, 7),
    seed=st.integers(0, 10**6),
    shared=st.floats(-1.0, 2.0),
)
def test_min_norm_weights_rank_deficient_is_close(T, P, seed, shared):
    "P < T (G singular): a known limit — away-step FW can be slow here; the value is within 1e-3 of max‖g_i‖²."
    if P >= T:
        return
    g = grads_like(T, P, seed=seed, shared=shared)
    G = g @ g.T
    alpha = min_norm_weights(G)
    f, scale = (alpha @ G @ alpha).item(), G.diagonal().max().item()
    assert alpha.min() >= 0 and abs(alpha.sum().item() - 1) < 1e-12
    assert f <= G.diagonal().min().item() + 1e-12 * scale
    assert f - brute_force(G.numpy())[1] <= 1e-3 * scale


@given(T=st.integers(3, 7), seed=st.integers(0, 10**6))
def test_min_norm_weights_permutation_equivariant(T, seed):
    g = grads_like(T, 2 * T, seed=seed)
    perm = torch.randperm(T, generator=gen(seed + 1))
    a, b = min_norm_weights(g @ g.T), min_norm_weights(g[perm] @ g[perm].T)
    assert (b - a[perm]).abs().max() < 1e-8


@given(P=st.integers(2, 40), seed=st.integers(0, 10**6), scale=st.floats(1e-3, 1e3))
def test_pcgrad_two_conflicting_tasks_orthogonal(P, seed, scale):
    g = torch.randn(2, P, generator=gen(seed), dtype=torch.float64) * torch.tensor(
        [[1.0], [scale]], dtype=torch.float64
    )
    w = pcgrad_weights(g @ g.T, gen(seed))
    if g[0] @ g[1] < 0:
        pc1 = g[0] - (g[0] @ g[1]) / (g[1] @ g[1]) * g[1]
        assert abs((pc1 @ g[1]).item()) <= 1e-10 * (g[0].norm() * g[1].norm()).item()
        torch.testing.assert_close(w @ g, pc1 + g[1] - (g[0] @ g[1]) / (g[0] @ g[0]) * g[0])
    else:
        torch.testing.assert_close(w, torch.ones(2, dtype=torch.float64))


def test_mgda_direction_is_the_weighted_combination(device):
    g = grads_like(5, 100, seed=9, device=device)
    torch.testing.assert_close(mgda_direction(g), min_norm_weights(g @ g.T) @ g)
    assert mgda_direction(g[:1]).shape == (100,)  # T = 1: the gradient itself
    torch.testing.assert_close(mgda_direction(g[:1]), g[0])


# ---------------------------------------------------------------- bad input
BAD_G = [
    ([[1.0]], TypeError, "expected a torch.Tensor"),
    (torch.eye(3, dtype=torch.int64), TypeError, "floating"),
    (torch.ones(3), ValueError, "at least 2 dims"),
    (torch.ones(3, 2), ValueError, "square"),
    (torch.ones(2, 2, 2), ValueError, "square"),
    (torch.eye(2, dtype=torch.complex64), TypeError, "floating"),
]


@pytest.mark.parametrize("G, err, msg", BAD_G)
@pytest.mark.parametrize("fn", [min_norm_weights, pcgrad_weights])
def test_bad_gram(fn, G, err, msg):
    with pytest.raises(err, match="Invalid G") as e:
        fn(G)
    assert msg in str(e.value)


@pytest.mark.parametrize(
    "kw, err",
    [
        ({"max_iter": 0}, ValueError),
        ({"max_iter": 2.5}, TypeError),
        ({"max_iter": True}, TypeError),
        ({"tol": -1.0}, ValueError),
        ({"tol": math.nan}, ValueError),
        ({"tol": "1e-5"}, TypeError),
    ],
)
def test_bad_solver_options(kw, err):
    G = torch.eye(3, dtype=torch.float64)
    before = G.clone()
    name = next(iter(kw))
    with pytest.raises(err, match=f"Invalid {name}"):
        min_norm_weights(G, **kw)
    with pytest.raises(err, match=f"Invalid {name}"):
        mgda_direction(torch.eye(3), **kw)
    assert torch.equal(G, before)  # exact: compared with a copy


@pytest.mark.parametrize(
    "grads, err",
    [
        (torch.ones(4), ValueError),
        (torch.ones(2, 3, 4), ValueError),
        (torch.ones(2, 3, dtype=torch.int32), TypeError),
        ([[1.0, 2.0]], TypeError),
        (torch.ones(0, 3), ValueError),
    ],
)
@pytest.mark.parametrize("fn", [mgda_direction, pcgrad])
def test_bad_grads(fn, grads, err):
    with pytest.raises(err, match="Invalid grads"):
        fn(grads)


@pytest.mark.parametrize("bad", [0, "seed", np.random.default_rng(0)])
def test_bad_generator(bad):
    g = grads_like(3, 4)
    with pytest.raises(TypeError, match="Invalid generator"):
        pcgrad(g, bad)


def test_inputs_not_mutated_and_no_grad_graph():
    g = grads_like(5, 20, seed=4, shared=-0.5).requires_grad_()
    before = g.detach().clone()
    d, p = mgda_direction(g), pcgrad(g, gen(0))
    assert torch.equal(g.detach(), before)  # exact: compared with a copy
    G = (g @ g.T).detach()
    Gb = G.clone()
    min_norm_weights(G)
    pcgrad_weights(G, gen(0))
    assert torch.equal(G, Gb)  # exact: compared with a copy
    assert d.requires_grad and p.requires_grad  # the combination keeps autograd through grads


def test_non_finite_gram_gives_non_finite_weights():
    G = torch.eye(3, dtype=torch.float64)
    G[0, 1] = G[1, 0] = math.nan
    assert not torch.isfinite(min_norm_weights(G)).all()


# ---------------------------------------------------------------- CUDA
@pytest.mark.cuda
def test_no_host_sync_on_cuda():
    g = grads_like(8, 10_000, seed=1, device="cuda", dtype=torch.float32)
    G = g @ g.T
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        alpha = min_norm_weights(G)
        d = mgda_direction(g)
        p = pcgrad(g, torch.Generator("cuda").manual_seed(0))
        pcgrad(g)
        alpha2 = min_norm_weights(G[:2, :2])
    finally:
        torch.cuda.set_sync_debug_mode(0)
    cpu = min_norm_weights(G.cpu())
    assert (alpha.cpu() - cpu).abs().max() < 1e-5 and d.shape == p.shape == (10_000,)
    assert (alpha2.cpu() - min_norm_weights(G[:2, :2].cpu())).abs().max() < 1e-6
