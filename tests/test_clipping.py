"""Tests for su_notes.optim.clipping beyond the notebook's checks.

- peer: `torch.nn.utils.clip_grad_norm_` (hard mode) over shapes, scales, p-norms, dtypes, mixed dtypes, code
  paths and the `--device`; the smooth mode against one flattened float64 vector computed here;
- properties (hypothesis): ½·hard ≤ smooth ≤ hard, clipped norm ≤ γ, direction kept;
- no host reads: the dispatched operators contain no `aten._local_scalar_dense`; `meta` tensors work; on CUDA
  `torch.cuda.set_sync_debug_mode("error")`;
- bad input for every public function: a clear error naming the argument, nothing modified.
"""

import math

import pytest
import torch
from hypothesis import given, strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from su_notes.core import assert_close
from su_notes.optim.clipping import CLIP_MODES, clip_coefficient, clip_grads_, l0l1_step_size

SHAPES = [(7,), (3, 5), (2, 3, 4), (1,), (16, 16)]
TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def make_params(device, dtype=torch.float64, scale=1.0, seed=0, shapes=SHAPES, with_grad=None):
    "Parameters with seeded gradients (made on the CPU, then moved); `with_grad[i]` False leaves `.grad` None."
    gen = torch.Generator().manual_seed(seed)
    ps = []
    for i, s in enumerate(shapes):
        p = torch.randn(s, generator=gen, dtype=torch.float64).to(device, dtype).requires_grad_()
        if with_grad is None or with_grad[i]:
            p.grad = (torch.randn(s, generator=gen, dtype=torch.float64) * scale).to(device, dtype)
        ps.append(p)
    return ps


def twin(ps):
    "Independent copies with cloned gradients."
    out = []
    for p in ps:
        q = p.detach().clone().requires_grad_()
        if p.grad is not None:
            q.grad = p.grad.clone()
        out.append(q)
    return out


# ----------------------------------------------------------------- peer: torch.nn.utils.clip_grad_norm_
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf])
@pytest.mark.parametrize("foreach", [None, True, False])
@pytest.mark.parametrize("scale, max_norm", [(1.0, 0.1), (1.0, 1e3), (1e-4, 1.0), (50.0, 2.0)])
def test_hard_matches_clip_grad_norm(device, dtype, norm_type, foreach, scale, max_norm):
    ours = make_params(device, dtype, scale, seed=1)
    peer = twin(ours)
    n_ours = clip_grads_(ours, max_norm, norm_type=norm_type, foreach=foreach)
    n_peer = torch.nn.utils.clip_grad_norm_(peer, max_norm, norm_type=norm_type, foreach=foreach)
    assert n_ours.dtype == n_peer.dtype and n_ours.device == n_peer.device
    assert_close(n_ours, n_peer, rtol=1e-6, atol=0)
    for a, b in zip(ours, peer):
        assert_close(a.grad, b.grad, rtol=1e-6, atol=0)


def test_hard_matches_peer_with_mixed_dtypes_missing_grads_and_generator(device):
    ours = make_params(device, torch.float32, 3.0, seed=2, with_grad=[True, False, True, True, False])
    g = ours[2].grad.double()
    ours[2] = ours[2].detach().double().requires_grad_()
    ours[2].grad = g
    peer = twin(ours)
    n_ours = clip_grads_((p for p in ours), 0.5)
    n_peer = torch.nn.utils.clip_grad_norm_(peer, 0.5)
    assert_close(n_ours, n_peer, rtol=1e-6, atol=0)
    for a, b in zip(ours, peer):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            assert a.grad.dtype == b.grad.dtype
            assert_close(a.grad, b.grad, rtol=1e-6, atol=0)


def test_single_tensor_and_no_grads_like_peer(device):
    p = make_params(device, shapes=[(4, 4)])[0]
    q = twin([p])[0]
    assert_close(clip_grads_(p, 0.1), torch.nn.utils.clip_grad_norm_(q, 0.1), rtol=1e-12, atol=0)
    assert_close(p.grad, q.grad, rtol=1e-12, atol=0)
    empty = make_params(device, with_grad=[False] * len(SHAPES))
    for out in (clip_grads_(empty, 1.0), clip_grads_([], 1.0, mode="smooth")):
        assert torch.equal(out, torch.nn.utils.clip_grad_norm_([], 1.0))
    assert all(p.grad is None for p in empty)


# ----------------------------------------------------------------- smooth mode: independent computation
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("ratio", [1e-3, 1.0, 1e3])  # γ / ‖g‖
def test_smooth_matches_flat_float64(device, dtype, norm_type, foreach, ratio):
    ps = make_params(device, dtype, 2.0, seed=3)
    flat = torch.cat([p.grad.detach().double().cpu().flatten() for p in ps])
    if norm_type == math.inf:
        n = flat.abs().max().item()
    else:
        n = flat.abs().pow(norm_type).sum().item() ** (1 / norm_type)
    gamma = ratio * n
    out = clip_grads_(ps, gamma, mode="smooth", norm_type=norm_type, foreach=foreach)
    tol = TOL[dtype]
    assert abs(out.item() / n - 1) <= tol * 10
    got = torch.cat([p.grad.double().cpu().flatten() for p in ps])
    assert_close(got, flat * (gamma / (n + gamma)), rtol=tol * 10, atol=0)


# ----------------------------------------------------------------- properties
@given(st.floats(1e-30, 1e30), st.floats(1e-20, 1e20))
def test_coefficient_sandwich(norm, gamma):
    t = torch.tensor(norm, dtype=torch.float64)
    hard_exact = min(1.0, gamma / norm)
    smooth = clip_coefficient(t, gamma, "smooth").item()
    assert 0.5 * hard_exact * (1 - 1e-12) <= smooth <= hard_exact * (1 + 1e-12)
    assert clip_coefficient(t, gamma, "hard").item() <= hard_exact * (1 + 1e-12)


@given(st.integers(0, 10**6), st.floats(1e-3, 1e3), st.sampled_from(CLIP_MODES), st.floats(1e-3, 1e3))
def test_clipped_norm_at_most_gamma_and_direction_kept(device, seed, scale, mode, gamma):
    ps = make_params(device, torch.float64, scale, seed=seed % 1000)
    before = torch.cat([p.grad.flatten() for p in ps])
    n = clip_grads_(ps, gamma, mode=mode)
    after = torch.cat([p.grad.flatten() for p in ps])
    assert_close(n, before.norm(), rtol=1e-12, atol=0)
    assert after.norm() <= gamma * (1 + 1e-12) or (mode == "hard" and after.norm() <= before.norm())
    c = (after.norm() / before.norm()).item()
    assert_close(after, before * c, rtol=1e-10, atol=0)  # same direction
    # exact: there the coefficient min(1, γ/(‖g‖+1e-6)) is the float 1.0, and g·1.0 is g bit for bit
    if mode == "hard" and n + 1e-6 <= gamma:
        assert torch.equal(after, before)  # short gradients untouched


def test_nonfinite_gradients_give_nonfinite_norm_like_peer(device):
    ours = make_params(device, torch.float32)
    ours[0].grad[0] = math.inf
    peer = twin(ours)
    n1, n2 = clip_grads_(ours, 1.0), torch.nn.utils.clip_grad_norm_(peer, 1.0)
    assert torch.isinf(n1) and torch.isinf(n2)
    for a, b in zip(ours, peer):
        assert torch.equal(a.grad.isnan(), b.grad.isnan())


# ----------------------------------------------------------------- no host synchronisation
class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("mode", CLIP_MODES)
@pytest.mark.parametrize("foreach", [None, True, False])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_no_host_read_of_any_value(mode, foreach, norm_type):
    ps = make_params("cpu", torch.float32, 10.0)
    with _Ops() as rec:
        clip_grads_(ps, 0.1, mode=mode, foreach=foreach, norm_type=norm_type)
    assert rec.ops and "aten._local_scalar_dense.default" not in rec.ops
    with _Ops() as rec2:
        bool(ps[0].grad.norm() > 1)  # the recorder sees a host read
    assert "aten._local_scalar_dense.default" in rec2.ops


@pytest.mark.parametrize("mode", CLIP_MODES)
def test_runs_on_meta_tensors(mode):
    ps = [torch.empty(s, device="meta", requires_grad=True) for s in SHAPES]
    for p in ps:
        p.grad = torch.empty_like(p)
    out = clip_grads_(ps, 1.0, mode=mode)
    assert out.device.type == "meta" and out.shape == ()


@pytest.mark.cuda
@pytest.mark.parametrize("mode", CLIP_MODES)
@pytest.mark.parametrize("foreach", [None, True, False])
def test_no_sync_on_cuda(mode, foreach):
    ps = make_params("cuda", torch.float32, 10.0)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        clip_grads_(ps, 0.1, mode=mode, foreach=foreach)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


# ----------------------------------------------------------------- bad input
BAD_CLIP = [
    (dict(max_norm=0.0), ValueError, "Invalid max_norm"),
    (dict(max_norm=-1.0), ValueError, "Invalid max_norm"),
    (dict(max_norm=math.nan), ValueError, "Invalid max_norm"),
    (dict(max_norm=math.inf), ValueError, "Invalid max_norm"),
    (dict(max_norm=True), TypeError, "Invalid max_norm"),
    (dict(max_norm="1"), TypeError, "Invalid max_norm"),
    (dict(max_norm=torch.tensor(1.0)), TypeError, "Invalid max_norm"),
    (dict(max_norm=1.0, mode="soft"), ValueError, "Invalid mode"),
    (dict(max_norm=1.0, mode=None), ValueError, "Invalid mode"),
    (dict(max_norm=1.0, norm_type=0.0), ValueError, "Invalid norm_type"),
    (dict(max_norm=1.0, norm_type=-2.0), ValueError, "Invalid norm_type"),
    (dict(max_norm=1.0, norm_type=math.nan), ValueError, "Invalid norm_type"),
    (dict(max_norm=1.0, norm_type=True), TypeError, "Invalid norm_type"),
    (dict(max_norm=1.0, norm_type="two"), TypeError, "Invalid norm_type"),
    (dict(max_norm=1.0, foreach=1), TypeError, "Invalid foreach"),
    (dict(max_norm=1.0, foreach="yes"), TypeError, "Invalid foreach"),
]


@pytest.mark.parametrize("kwargs, err, msg", BAD_CLIP)
def test_clip_grads_bad_arguments_change_nothing(kwargs, err, msg):
    ps = make_params("cpu", torch.float32, 5.0)
    before = [p.grad.clone() for p in ps]
    with pytest.raises(err, match=msg):
        clip_grads_(ps, **kwargs)
    assert all(torch.equal(p.grad, b) for p, b in zip(ps, before))


def test_clip_grads_bad_parameters_change_nothing():
    ps = make_params("cpu", torch.float32, 5.0)
    before = [p.grad.clone() for p in ps]
    with pytest.raises(TypeError, match=r"Invalid parameters\[5\]"):
        clip_grads_(ps + [3.0], 0.1)
    with pytest.raises(TypeError, match="Invalid parameters"):
        clip_grads_(3.0, 0.1)
    with pytest.raises(TypeError, match="Invalid parameters"):
        clip_grads_(None, 0.1)
    sparse = torch.zeros(3, 3, requires_grad=True)
    sparse.grad = torch.eye(3).to_sparse()
    with pytest.raises(TypeError, match="not dense"):
        clip_grads_(ps + [sparse], 0.1)
    assert all(torch.equal(p.grad, b) for p, b in zip(ps, before))
    assert torch.equal(sparse.grad.to_dense(), torch.eye(3))


def test_norm_type_inf_string_like_torch():
    ps = make_params("cpu")
    qs = twin(ps)
    # exact: the same kernels (per-tensor max-abs norms, stack, max) on the same inputs as torch
    assert_close(
        clip_grads_(ps, 0.1, norm_type="inf"),
        torch.nn.utils.clip_grad_norm_(qs, 0.1, norm_type="inf"),
        rtol=0,
        atol=0,
    )  # exact: see the comment above


@pytest.mark.parametrize(
    "args, err, msg",
    [
        ((1.0, 1.0), TypeError, "Invalid total_norm"),
        ((torch.tensor(1), 1.0), TypeError, "Invalid total_norm"),
        ((torch.tensor(1.0), 0.0), ValueError, "Invalid max_norm"),
        ((torch.tensor(1.0), math.inf), ValueError, "Invalid max_norm"),
        ((torch.tensor(1.0), 1.0, "Hard"), ValueError, "Invalid mode"),
    ],
)
def test_clip_coefficient_bad_input(args, err, msg):
    with pytest.raises(err, match=msg):
        clip_coefficient(*args)


@pytest.mark.parametrize(
    "args, err, msg",
    [
        ((1.0, 0.0, 1.0), ValueError, "Invalid l0"),
        ((1.0, 1.0, -1.0), ValueError, "Invalid l1"),
        ((1.0, True, 1.0), TypeError, "Invalid l0"),
        ((-1.0, 1.0, 1.0), ValueError, "Invalid grad_norm"),
        ((math.nan, 1.0, 1.0), ValueError, "Invalid grad_norm"),
        ((torch.tensor([1, 2]), 1.0, 1.0), TypeError, "Invalid grad_norm"),
    ],
)
def test_l0l1_step_size_bad_input(args, err, msg):
    with pytest.raises(err, match=msg):
        l0l1_step_size(*args)


def test_l0l1_step_size_is_smooth_clipping(device):
    g = torch.logspace(-6, 6, 101, dtype=torch.float64, device=device)
    # two algebraic forms with a few roundings each: 16 ulp
    assert_close(
        l0l1_step_size(g, 12.0, 3.0),
        clip_coefficient(g, 4.0, "smooth") / 12.0,
        rtol=16 * torch.finfo(torch.float64).eps,
        atol=0,
    )
    # exact: 1/(12 + 0·0) is the same single division as 1/12
    assert l0l1_step_size(0.0, 12.0, 0.0) == 1 / 12


def test_smooth_16bit_large_threshold_does_not_overflow(device):
    "γ above float16's range: γ/(‖g‖+γ) computed in the dtype would be 0 (inf denominator); ours stays ≈ 1."
    for dtype in (torch.float16, torch.bfloat16):
        ps = make_params(device, dtype, 1.0)
        before = [p.grad.clone() for p in ps]
        n = clip_grads_(ps, 1e6, mode="smooth")
        c = 1e6 / (n.double().item() + 1e6)
        for p, b in zip(ps, before):
            assert_close(p.grad.double(), b.double() * c, rtol=TOL[dtype], atol=0)
