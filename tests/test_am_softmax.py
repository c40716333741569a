"""Tests for su_notes.text.am_softmax beyond the notebook's checks.

- peer: pytorch-metric-learning 2.9.0's `losses.CosFaceLoss(C, d, margin, scale)` given our `weight.T` as its W
  (its layout is (d, C) and its default scale 64): loss and both gradients, dense and chunked, float64 and
  float32, several margins and scales, on `--device`;
- independent reference: the loss written as log(1 + Σ_{j≠t} e^{s(cos_j − cos_t + m)}) with NumPy/SciPy;
- chunked = dense (hypothesis over b, C, chunk size, margin), gradcheck in float64, no saved tensor of b·C
  elements in the chunked graph, small-loss accuracy in float32;
- `AMSoftmaxLoss`: `reduction=` semantics, state_dict round trip, dtype/device;
- `GRUSentenceEncoder`: trailing padding ignored, unit rows; `make_paraphrase_groups`, `topk_retrieval_accuracy`
  against a brute-force loop;
- bad input of every public name: clear error naming the argument, nothing mutated.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from scipy.special import logsumexp as np_logsumexp

from su_notes.core import assert_close
from su_notes.text.am_softmax import (
    AMSoftmaxLoss,
    GRUSentenceEncoder,
    am_softmax_logits,
    am_softmax_loss,
    make_paraphrase_groups,
    topk_retrieval_accuracy,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
F64, F32 = torch.float64, torch.float32


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def make(b=32, d=8, C=50, seed=0, dtype=F64, device="cpu"):
    g = gen(seed)
    emb = torch.randn(b, d, generator=g, dtype=F64).to(device, dtype)
    W = torch.randn(C, d, generator=g, dtype=F64).to(device, dtype)
    t = torch.randint(0, C, (b,), generator=g).to(device)
    return emb, W, t


def tol(dtype):
    return 1e3 * torch.finfo(dtype).eps


# ---------------------------------------------------------------- peer: pytorch-metric-learning
@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("chunk", [None, 1, 13, 1000])
@pytest.mark.parametrize("margin,scale", [(0.35, 30.0), (0.0, 30.0), (0.2, 64.0), (-0.1, 5.0)])
def test_cosface_peer(dtype, chunk, margin, scale, device):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    emb, W, t = make(dtype=dtype, device=device)
    peer = losses.CosFaceLoss(W.shape[0], W.shape[1], margin=margin, scale=scale).to(device)
    peer.W.data = W.T.clone()  # same input in the peer's (d, C) layout
    e1, e2, w1 = (x.clone().requires_grad_() for x in (emb, emb, W))
    ours = am_softmax_loss(e1, w1, t, scale=scale, margin=margin, chunk_size=chunk)
    theirs = peer(e2, t)
    ours.backward()
    theirs.backward()
    for a, r in [(ours, theirs), (e1.grad, e2.grad), (w1.grad, peer.W.grad.T)]:
        assert_close(a, r, rtol=tol(dtype), atol=tol(dtype) * r.abs().max().item())


def test_module_matches_peer_and_default_scale_differs(device):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    emb, W, t = make(device=device)
    ours = AMSoftmaxLoss(50, 8, dtype=F64, device=device)
    ours.weight.data.copy_(W)
    peer = losses.CosFaceLoss(50, 8, margin=0.35, scale=30).to(device)
    peer.W.data = W.T.clone()
    assert_close(ours(emb, t), peer(emb, t), rtol=tol(F64), atol=0)
    peer64 = losses.CosFaceLoss(50, 8).to(device)  # the peer's defaults: scale 64
    peer64.W.data = W.T.clone()
    assert (peer64(emb, t) - ours(emb, t)).abs().item() > 1


# ---------------------------------------------------------------- independent reference
def numpy_reference(emb, W, t, s, m):
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = W / np.linalg.norm(W, axis=1, keepdims=True)
    cos = e @ w.T
    out = []
    for i, ti in enumerate(t):
        others = np.delete(cos[i], ti)
        out.append(np.logaddexp(0.0, np_logsumexp(s * (others - cos[i, ti] + m))))
    return np.array(out)


@pytest.mark.parametrize("chunk", [None, 7])
def test_numpy_reference(chunk, device):
    emb, W, t = make(b=16, C=40, seed=3, device=device)
    ref = numpy_reference(emb.cpu().numpy(), W.cpu().numpy(), t.cpu().numpy(), 30.0, 0.35)
    ours = am_softmax_loss(emb, W, t, chunk_size=chunk, reduction="none")
    assert_close(ours.cpu(), torch.from_numpy(ref), rtol=tol(F64), atol=0)


# ---------------------------------------------------------------- chunked form
@given(
    b=st.integers(1, 9),
    C=st.integers(1, 40),
    k=st.integers(1, 50),
    margin=st.floats(-0.5, 1.0),
    seed=st.integers(0, 10_000),
)
def test_chunked_equals_dense(b, C, k, margin, seed):
    emb, W, t = make(b=b, d=5, C=C, seed=seed)
    out = []
    for chunk in (None, k):
        e, w = emb.clone().requires_grad_(), W.clone().requires_grad_()
        loss = am_softmax_loss(e, w, t, margin=margin, chunk_size=chunk, reduction="sum")
        out.append((loss, *torch.autograd.grad(loss, (e, w))))
    for a, r in zip(*out):
        assert_close(a, r, rtol=tol(F64), atol=tol(F64) * (1 + r.abs().max().item()))


def test_gradcheck_chunked():
    emb, W, t = make(b=5, d=4, C=11, seed=4)
    f = lambda e, w: am_softmax_loss(e, w, t, chunk_size=3, reduction="none")
    assert torch.autograd.gradcheck(f, (emb.requires_grad_(), W.requires_grad_()))


def test_chunked_weight_without_grad():
    emb, W, t = make(seed=5)
    e1, e2 = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    (g1,) = torch.autograd.grad(am_softmax_loss(e1, W, t, chunk_size=9), e1)
    (g2,) = torch.autograd.grad(am_softmax_loss(e2, W, t), e2)
    assert_close(g1, g2, rtol=tol(F64), atol=tol(F64))


def test_chunked_graph_never_holds_b_by_C():
    b, C = 16, 4096
    emb, W, t = make(b=b, C=C, dtype=F32)
    sizes = []

    def pack(x):
        sizes.append(x.numel())
        return x

    e, w = emb.requires_grad_(), W.requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        am_softmax_loss(e, w, t, chunk_size=256).backward()
    # the largest saved tensor is the weight itself, (C, d) with d = 8 < b: never a (b, C) block
    assert max(sizes) == C * 8 < b * C, max(sizes)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        sizes.clear()
        am_softmax_loss(emb.detach().requires_grad_(), W.detach().requires_grad_(), t)
    assert max(sizes) >= b * C  # the dense form saves (b, C) tensors


def test_float32_small_loss_accuracy():
    g = gen(6)
    W = F.normalize(torch.randn(500, 16, generator=g, dtype=F64), dim=1)
    t = torch.randint(0, 500, (64,), generator=g)
    e = W[t]  # perfectly trained: loss ≈ e^{-s(1-m)}·Σ…
    ref = am_softmax_loss(e, W, t, reduction="none")
    ours = am_softmax_loss(e.float(), W.float(), t, chunk_size=64, reduction="none")
    # relative accuracy kept for small losses: within float32 rounding of the cosines times s
    assert ((ours.double() - ref).abs() / ref).max() < 1e-3
    assert_close(ours.double(), ref, rtol=1e-3, atol=0)


def test_logits():
    emb, W, t = make(seed=7)
    z = am_softmax_logits(emb, W, t, scale=10.0, margin=0.5)
    cos = F.normalize(emb, dim=1) @ F.normalize(W, dim=1).T
    expect = 10 * cos
    expect[torch.arange(len(t)), t] -= 5.0
    assert_close(z, expect, rtol=tol(F64), atol=tol(F64))


# ---------------------------------------------------------------- module
def test_module_reductions_and_state_dict(device):
    emb, W, t = make(device=device)
    per = am_softmax_loss(emb, W, t, reduction="none")
    assert per.shape == (32,)
    mods = {r: AMSoftmaxLoss(50, 8, reduction=r, dtype=F64, device=device) for r in ("none", "mean", "sum")}
    for m in mods.values():
        m.weight.data.copy_(W)
    assert_close(mods["none"](emb, t), per, rtol=tol(F64), atol=0)
    assert_close(mods["mean"](emb, t), per.mean(), rtol=tol(F64), atol=0)
    assert_close(mods["sum"](emb, t), per.sum(), rtol=tol(F64), atol=0)
    chunked = AMSoftmaxLoss(50, 8, chunk_size=6, dtype=F64, device=device)
    chunked.load_state_dict(mods["mean"].state_dict())
    # exact: load_state_dict copies the tensor
    assert torch.equal(chunked.weight, mods["mean"].weight)
    assert_close(chunked(emb, t), per.mean(), rtol=tol(F64), atol=0)
    assert list(dict(chunked.named_parameters())) == ["weight"]
    assert "chunk_size=6" in repr(chunked)


def test_module_weight_gets_gradient():
    m = AMSoftmaxLoss(10, 4)
    emb = torch.randn(3, 4, generator=gen())
    m(emb, torch.tensor([0, 3, 9])).backward()
    assert m.weight.grad is not None and m.weight.grad.shape == (10, 4)


# ---------------------------------------------------------------- encoder and data
def test_encoder_ignores_trailing_padding(device):
    torch.manual_seed(0)
    enc = GRUSentenceEncoder(30, dim=8).to(device)
    x = torch.tensor([[3, 4, 5, 0], [7, 0, 0, 0], [1, 2, 3, 4]], device=device)
    v1, v2 = enc(x), enc(F.pad(x, (0, 6)))
    assert_close(v1, v2, rtol=1e-5, atol=1e-6)
    assert_close(v1.norm(dim=1), torch.ones(3, device=device), rtol=1e-5, atol=1e-6)
    raw = GRUSentenceEncoder(30, dim=8, normalize=False)
    assert raw(x.cpu()).shape == (3, 8)


def test_make_paraphrase_groups():
    X, y, V = make_paraphrase_groups(9, per_group=4, seed=1)
    X2, y2, V2 = make_paraphrase_groups(9, per_group=4, seed=1)
    # exact: same seed, same integer data
    assert torch.equal(X, X2) and torch.equal(y, y2) and V == V2
    assert X.shape[0] == 36 and X.dtype == torch.int64 and int(X.max()) < V and int(X.min()) >= 0
    assert torch.equal(torch.bincount(y), torch.full((9,), 4))
    assert bool(((X != 0).sum(1) >= 2).all())
    pad_after_text = (X[:, 1:] != 0) & (X[:, :-1] == 0)
    assert not pad_after_text.any()  # right-padded
    assert not torch.equal(X, make_paraphrase_groups(9, per_group=4, seed=2)[0])


def test_topk_retrieval_brute_force():
    g = gen(8)
    v = F.normalize(torch.randn(30, 4, generator=g), dim=1)
    grp = torch.arange(30) // 3
    acc = topk_retrieval_accuracy(v, grp, ks=(1, 3, 29))
    sim = (v @ v.T).numpy()
    for k in (1, 3, 29):
        hits = 0
        for i in range(30):
            order = [j for j in np.argsort(-sim[i], kind="stable") if j != i][:k]
            hits += any(grp[j] == grp[i] for j in order)
        assert abs(acc[k] - hits / 30) < 1e-6
    assert acc[29] == 1.0 and acc[1] <= acc[3]
    perfect = F.one_hot(grp).float()  # same-group vectors coincide
    assert topk_retrieval_accuracy(perfect, grp, ks=(1,))[1] == 1.0


# ---------------------------------------------------------------- bad input
def test_bad_input_loss():
    emb, W, t = make(dtype=F32)
    copies = [x.clone() for x in (emb, W, t)]
    cases = [
        (lambda: am_softmax_loss(emb.numpy(), W, t), TypeError, "Invalid emb"),
        (lambda: am_softmax_loss(emb[0], W, t), ValueError, "Invalid emb"),
        (lambda: am_softmax_loss(emb, W.T, t), ValueError, "Invalid weight"),
        (lambda: am_softmax_loss(emb, W.double(), t), ValueError, "Invalid weight"),
        (lambda: am_softmax_loss(emb, W.long(), t), TypeError, "Invalid weight"),
        (lambda: am_softmax_loss(emb, W, t.int()), TypeError, "Invalid target"),
        (lambda: am_softmax_loss(emb, W, t[:-1]), ValueError, "Invalid target"),
        (lambda: am_softmax_loss(emb, W, t.tolist()), TypeError, "Invalid target"),
        (lambda: am_softmax_loss(emb, W, t, scale=-1.0), ValueError, "Invalid scale"),
        (lambda: am_softmax_loss(emb, W, t, scale=True), TypeError, "Invalid scale"),
        (lambda: am_softmax_loss(emb, W, t, margin=float("nan")), ValueError, "Invalid margin"),
        (lambda: am_softmax_loss(emb, W, t, chunk_size=0), ValueError, "Invalid chunk_size"),
        (lambda: am_softmax_loss(emb, W, t, chunk_size=2.0), TypeError, "Invalid chunk_size"),
        (lambda: am_softmax_loss(emb, W, t, reduction="avg"), ValueError, "Invalid reduction"),
        (lambda: am_softmax_logits(emb, W, t, scale=0), ValueError, "Invalid scale"),
    ]
    for fn, err, msg in cases:
        with pytest.raises(err, match=msg):
            fn()
    for x, c in zip((emb, W, t), copies):
        # exact: the inputs must be untouched copies
        assert torch.equal(x, c)


def test_bad_input_modules_and_data():
    with pytest.raises(ValueError, match="Invalid num_classes"):
        AMSoftmaxLoss(0, 4)
    with pytest.raises(TypeError, match="Invalid embedding_dim"):
        AMSoftmaxLoss(3, 4.0)
    with pytest.raises(ValueError, match="Invalid reduction"):
        AMSoftmaxLoss(3, 4, reduction="avg")
    with pytest.raises(ValueError, match="Invalid chunk_size"):
        AMSoftmaxLoss(3, 4, chunk_size=-2)
    with pytest.raises(ValueError, match="Invalid scale"):
        AMSoftmaxLoss(3, 4, scale=0)
    m = AMSoftmaxLoss(3, 4)
    w0 = m.weight.detach().clone()
    with pytest.raises(ValueError, match="Invalid target"):
        m(torch.randn(2, 4), torch.tensor([0, 1, 2]))
    # exact: a failed call must not touch the parameter
    assert torch.equal(m.weight, w0)
    with pytest.raises(ValueError, match="Invalid vocab_size"):
        GRUSentenceEncoder(1)
    with pytest.raises(ValueError, match="Invalid padding_idx"):
        GRUSentenceEncoder(5, padding_idx=5)
    with pytest.raises(TypeError, match="Invalid normalize"):
        GRUSentenceEncoder(5, normalize=1)
    enc = GRUSentenceEncoder(5, dim=4)
    with pytest.raises(TypeError, match="Invalid tokens"):
        enc(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Invalid tokens"):
        enc(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="Invalid n_groups"):
        make_paraphrase_groups(0)
    with pytest.raises(ValueError, match="Invalid per_group"):
        make_paraphrase_groups(3, per_group=1)
    with pytest.raises(ValueError, match="Invalid p_swap"):
        make_paraphrase_groups(3, p_swap=1.5)
    with pytest.raises(TypeError, match="Invalid length"):
        make_paraphrase_groups(3, length=[4, 8])
    with pytest.raises(ValueError, match=r"Invalid length\[1\]"):
        make_paraphrase_groups(3, length=(5, 4))
    v = torch.randn(4, 2)
    with pytest.raises(ValueError, match="Invalid ks"):
        topk_retrieval_accuracy(v, torch.arange(4), ks=(4,))
    with pytest.raises(ValueError, match="Invalid groups"):
        topk_retrieval_accuracy(v, torch.arange(3))
    with pytest.raises(ValueError, match="Invalid vectors"):
        topk_retrieval_accuracy(v[:1], torch.arange(1))
