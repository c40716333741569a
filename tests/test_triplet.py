"""Tests for su_notes.bert.triplet beyond the notebook's checks.

- peer `nn.LayerNorm`: a fresh ConditionalLayerNorm equals it (random shapes, float32/float64, per-token
  conditions), its gradients w.r.t. x equal LayerNorm's, and a trained W changes the output;
- peer `torch.optim.swa_utils`: make_ema(warmup="none") = AveragedModel(get_ema_multi_avg_fn) bit for bit,
  bias correction = the closed-form weighted mean;
- hypothesis: encode -> decode recovers random gold triples under padding with junk in it; decode_spans
  agrees with a per-start Python loop (bert4keras' rule);
- powered_sigmoid_bce against the naive formula, finite at extreme logits; triplet_loss reductions;
- SubjectObjectHead shapes and gradient flow, extract_triples = decode_triples per sequence;
- bad input of every public function (error naming the argument, nothing mutated).
"""

import random

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from su_notes.core import assert_close
from su_notes.bert.triplet import (
    EMA_WARMUPS,
    ConditionalLayerNorm,
    SubjectObjectHead,
    decode_spans,
    decode_triples,
    ema_decay,
    encode_triples,
    extract_triples,
    make_ema,
    powered_sigmoid_bce,
    sample_subject,
    triple_f1,
    triplet_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ CLN vs nn.LayerNorm
@given(
    b=st.integers(1, 3),
    n=st.integers(1, 6),
    d=st.integers(1, 40),
    c=st.integers(1, 9),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 1000),
)
def test_cln_init_equals_layernorm(device, b, n, d, c, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(b, n, d, generator=g, dtype=dtype) * 5 - 2).to(device).requires_grad_()
    cond = torch.randn(b, c, generator=g, dtype=dtype).to(device)
    cln = ConditionalLayerNorm(d, c).to(device, dtype)
    ln = nn.LayerNorm(d).to(device, dtype)
    y, ref = cln(x, cond), ln(x)
    eps = torch.finfo(dtype).eps
    scale = ref.abs().max().item() + 1
    assert_close(y, ref, rtol=16 * eps, atol=16 * eps * scale)
    r = torch.randn(y.shape, generator=g, dtype=dtype).to(device)
    (gx,) = torch.autograd.grad((y * r).sum(), x)
    (gx_ref,) = torch.autograd.grad((ref * r).sum(), x)
    assert_close(gx, gx_ref, rtol=1e3 * eps, atol=1e3 * eps * gx_ref.abs().max().item())


def test_cln_per_token_condition_and_learned_effect():
    torch.manual_seed(0)
    x, cond = torch.randn(2, 5, 8, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    cln = ConditionalLayerNorm(8, 3, eps=1e-12).double()
    assert_close(cln(x, cond), F.layer_norm(x, (8,), eps=1e-12), rtol=1e-14, atol=1e-14)
    with torch.no_grad():
        cln.weight_cond.weight.normal_()
        cln.bias_cond.weight.normal_()
    y = cln(x, cond)
    ref = F.layer_norm(x, (8,), eps=1e-12) * (1 + cond @ cln.weight_cond.weight.T) + cond @ cln.bias_cond.weight.T
    assert_close(y, ref, rtol=1e-12, atol=1e-12)
    assert (y - F.layer_norm(x, (8,), eps=1e-12)).abs().max() > 0.1


def test_cln_state_dict_roundtrip():
    a, b = ConditionalLayerNorm(6, 4), ConditionalLayerNorm(6, 4)
    with torch.no_grad():
        a.weight_cond.weight.normal_()
    b.load_state_dict(a.state_dict())
    x, c = torch.randn(2, 3, 6), torch.randn(2, 4)
    # exact: same parameters, same kernels, same inputs
    assert torch.equal(a(x, c), b(x, c))


# ------------------------------------------------------------------ EMA vs torch.optim.swa_utils
def test_ema_none_equals_swa_utils_and_bias_correction_closed_form(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).to(device, torch.float64)
    ours = {w: make_ema(net, 0.99, w) for w in EMA_WARMUPS}
    peer = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True)
    its = []
    for _ in range(25):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        its.append([p.detach().clone() for p in net.parameters()])
        for e in (*ours.values(), peer):
            e.update_parameters(net)
    for a, b in zip(ours["none"].module.parameters(), peer.module.parameters()):
        # exact: the same foreach lerp with the same weight on the same tensors
        assert torch.equal(a, b)
    t = torch.arange(1, 26, dtype=torch.float64, device=device)
    w = 0.01 * 0.99 ** (25 - t) / (1 - 0.99**25)
    for i, p in enumerate(ours["bias_correction"].module.parameters()):
        closed = sum(wk * it[i] for wk, it in zip(w, its))
        assert_close(p, closed, rtol=1e-12, atol=1e-12)


def test_ema_decay_values():
    assert ema_decay(1, 0.999, "bias_correction") == 0.0
    assert ema_decay(1, 0.999, "none") == 0.999
    assert_close(ema_decay(5, 0.999, "tf"), 6 / 15, rtol=1e-15, atol=0)
    assert ema_decay(10**6, 0.999, "tf") == 0.999
    assert_close(
        ema_decay(torch.tensor(7), 0.9, "bias_correction"),
        1 - 0.1 / (1 - 0.9**7),
        rtol=1e-14,
        atol=0,
    )


# ------------------------------------------------------------------ encode -> decode
@st.composite
def sentences(draw, P=3):
    L = draw(st.integers(8, 24))
    n = L + draw(st.integers(0, 6))
    rng = random.Random(draw(st.integers(0, 10**6)))
    cuts = sorted(rng.sample(range(1, L - 1), 2 * rng.randint(1, 3)))
    subjects = [(cuts[i], rng.randint(cuts[i], cuts[i + 1] - 1)) for i in range(0, len(cuts), 2)]
    triples = set()
    for s0, s1 in subjects:
        for p in rng.sample(range(P), rng.randint(1, P)):
            oc = sorted(rng.sample(range(1, L - 1), 2 * rng.randint(1, 3)))
            triples |= {(s0, s1, p, oc[i], rng.randint(oc[i], oc[i + 1] - 1)) for i in range(0, len(oc), 2)}
    return sorted(triples), L, n


@given(sentences())
def test_encode_decode_roundtrip_with_padding(ex):
    triples, L, n = ex
    tg = encode_triples(triples, n, 3)
    assert tg.subject_labels[L:].sum() == 0 and tg.object_labels[:, L:].sum() == 0
    sp, op = tg.subject_labels.clone(), tg.object_labels.clone()
    sp[L:], op[:, L:] = 1.0, 1.0  # junk in the padding
    table = {tuple(s): o for s, o in zip(tg.subjects.tolist(), op)}
    fn = lambda subj: torch.stack([table.get(tuple(s), torch.zeros_like(op[0])) for s in subj.tolist()])
    mask = torch.arange(n) < L
    assert decode_triples(sp, fn, mask) == triples
    if n > L:
        assert decode_triples(sp, fn, None) != triples


def loop_decode(start, end, ts, te):
    "bert4keras' rule as a loop: for each start, the first end at or after it."
    out = []
    ends = [j for j in range(len(end)) if end[j] > te]
    for i in range(len(start)):
        if start[i] > ts:
            later = [j for j in ends if j >= i]
            if later:
                out.append((i, later[0]))
    return out


@given(st.integers(1, 30), st.integers(0, 10**6))
def test_decode_spans_matches_loop(n, seed):
    g = torch.Generator().manual_seed(seed)
    s, e = torch.rand(n, 3, generator=g), torch.rand(n, 3, generator=g)
    got = decode_spans(s, e, 0.6, 0.5)
    want = sorted(
        ((i, j, c) for c in range(3) for i, j in loop_decode(s[:, c].tolist(), e[:, c].tolist(), 0.6, 0.5)),
        key=lambda t: (t[0], t[2]),
    )  # sorted by start, then channel
    assert got == want
    assert decode_spans(s[:, 0], e[:, 0]) == loop_decode(s[:, 0].tolist(), e[:, 0].tolist(), 0.6, 0.5)


def test_sample_subject_rule():
    tg = encode_triples([(1, 2, 0, 8, 8), (4, 6, 1, 9, 9)], 12, 2)
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        ids, ol = sample_subject(tg, g)
        seen.add(tuple(ids.tolist()))
        if tuple(ids.tolist()) == (1, 6):  # mixed pair: a negative example
            assert ol.sum() == 0
        if tuple(ids.tolist()) == (4, 6):
            assert ol[9, 1, 0] == 1 and ol.sum() == 2
    assert seen == {(1, 2), (1, 6), (4, 6)}


def test_triple_f1():
    assert triple_f1([[(1, 2, 0, 3, 4)], []], [[(1, 2, 0, 3, 4)], [(5, 5, 1, 6, 6)]]) == (
        2 / 3,
        1.0,
        0.5,
    )
    assert triple_f1([[]], [[(1, 1, 0, 2, 2)]]) == (0.0, 1.0, 0.0)


# ------------------------------------------------------------------ loss and head
def test_powered_bce_matches_naive_and_is_finite(device):
    z = torch.linspace(-15, 15, 61, dtype=torch.float64, device=device)
    y = (torch.arange(61, device=device) % 2).double()
    for k in (1, 2, 4):
        q = torch.sigmoid(z) ** k
        naive = -(y * q.log() + (1 - y) * (1 - q).log())
        ok = 1 - q > 1e-4
        assert_close(powered_sigmoid_bce(z, y, k)[ok], naive[ok], rtol=1e-10, atol=1e-12)
    assert_close(
        powered_sigmoid_bce(z, y, 1),
        F.binary_cross_entropy_with_logits(z, y, reduction="none"),
        rtol=1e-12,
        atol=1e-12,
    )
    zb = torch.tensor([-500.0, 500.0], device=device, requires_grad=True)
    loss = powered_sigmoid_bce(zb, torch.tensor([1.0, 0.0], device=device), 4).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zb.grad).all()


def test_triplet_loss_reductions():
    g = torch.Generator().manual_seed(0)
    sl, ol = torch.randn(2, 5, 2, generator=g), torch.randn(2, 5, 3, 2, generator=g)
    st_, ot = (
        (torch.rand(2, 5, 2, generator=g) > 0.8).float(),
        (torch.rand(2, 5, 3, 2, generator=g) > 0.9).float(),
    )
    m = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    per = powered_sigmoid_bce(sl, st_, 2).mean(-1) + powered_sigmoid_bce(ol, ot, 4).mean(-1).sum(-1)
    assert_close(triplet_loss(sl, ol, st_, ot, m), (per * m).sum() / m.sum(), rtol=1e-6, atol=1e-7)
    assert_close(triplet_loss(sl, ol, st_, ot, m, reduction="sum"), (per * m).sum(), rtol=1e-6, atol=1e-7)
    assert_close(triplet_loss(sl, ol, st_, ot, m, reduction="none"), per * m, rtol=1e-6, atol=1e-7)
    assert_close(triplet_loss(sl, ol, st_, ot), per.mean(), rtol=1e-6, atol=1e-7)


def test_head_shapes_gradients_and_extract(device):
    torch.manual_seed(0)
    head = SubjectObjectHead(16, 3).to(device)
    h = torch.randn(4, 9, 16, device=device, requires_grad=True)
    sid = torch.tensor([[1, 2], [3, 3], [0, 5], [2, 4]], device=device)
    sp, op = head(h, sid)
    assert sp.shape == (4, 9, 2) and op.shape == (4, 9, 3, 2)
    assert ((sp > 0) & (sp < 1)).all() and ((op > 0) & (op < 1)).all()
    op.sum().backward()
    assert head.norm.weight_cond.weight.grad.abs().sum() > 0
    with torch.no_grad():  # make the head predict something
        head.subject.bias.fill_(3.0)
        head.object.bias.fill_(4.0)
    mask = torch.ones(4, 9, dtype=torch.bool, device=device)
    mask[:, 7:] = False
    got = extract_triples(head, h.detach(), mask)
    for k in range(4):
        spk = torch.sigmoid(head.subject_logits(h[k : k + 1].detach()))[0] ** 2
        fn = lambda s, k=k: torch.sigmoid(head.object_logits(h[k : k + 1].detach().expand(len(s), -1, -1), s)) ** 4
        assert got[k] == decode_triples(spk, fn, mask[k])
    assert any(got)


# ------------------------------------------------------------------ bad input
def test_bad_input_messages_and_nothing_mutated():
    cln = ConditionalLayerNorm(4, 3)
    x, c = torch.randn(2, 5, 4), torch.randn(2, 3)
    x0, c0 = x.clone(), c.clone()
    for bad, msg in [
        (lambda: cln(x, torch.randn(2, 2)), "Invalid cond"),
        (lambda: cln(x, torch.randn(3, 3)), "does not broadcast"),
        (lambda: cln(x.long(), c), "Invalid x"),
        (lambda: cln(x, torch.randn(1, 2, 5, 3)), "more axes"),
    ]:
        with pytest.raises((ValueError, TypeError), match=msg):
            bad()
    assert torch.equal(x, x0) and torch.equal(c, c0)
    with pytest.raises(TypeError, match="Invalid dim"):
        ConditionalLayerNorm(4.0, 3)
    with pytest.raises(ValueError, match="Invalid n_predicates"):
        SubjectObjectHead(8, 0)
    head = SubjectObjectHead(4, 2)
    with pytest.raises(ValueError, match="Invalid subject_ids"):
        head.object_logits(torch.randn(2, 5, 4), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="Invalid subject_ids"):
        head.object_logits(torch.randn(2, 5, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="Invalid h"):
        head.subject_logits(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="Invalid power"):
        powered_sigmoid_bce(torch.zeros(2), torch.zeros(2), 0)
    with pytest.raises(ValueError, match="Invalid target"):
        powered_sigmoid_bce(torch.zeros(2), torch.zeros(3), 2)
    with pytest.raises(ValueError, match="Invalid reduction"):
        triplet_loss(
            torch.zeros(1, 2, 2),
            torch.zeros(1, 2, 1, 2),
            torch.zeros(1, 2, 2),
            torch.zeros(1, 2, 1, 2),
            reduction="avg",
        )
    with pytest.raises(ValueError, match="Invalid attention_mask"):
        triplet_loss(
            torch.zeros(1, 2, 2),
            torch.zeros(1, 2, 1, 2),
            torch.zeros(1, 2, 2),
            torch.zeros(1, 2, 1, 2),
            torch.ones(1, 3),
        )
    triples = [(1, 2, 0, 3, 3)]
    with pytest.raises(TypeError, match="Invalid triples"):
        encode_triples([(1, 2, 0, 3.0, 3)], 5, 1)
    with pytest.raises(ValueError, match="Invalid triples"):
        encode_triples([(2, 1, 0, 3, 3)], 5, 1)
    with pytest.raises(ValueError, match="Invalid seq_len"):
        encode_triples(triples, 0, 1)
    assert triples == [(1, 2, 0, 3, 3)]
    empty = encode_triples([], 5, 1)
    with pytest.raises(ValueError, match="Invalid targets"):
        sample_subject(empty)
    with pytest.raises(ValueError, match="Invalid mask"):
        decode_spans(torch.rand(5), torch.rand(5), mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="Invalid object_probs"):
        decode_triples(torch.ones(5, 2), torch.ones(2, 5, 1, 2))
    with pytest.raises(TypeError, match="Invalid thresholds"):
        decode_triples(torch.ones(5, 2), torch.ones(1, 5, 1, 2), thresholds=0.5)
    with pytest.raises(ValueError, match="Invalid mask"):
        extract_triples(head, torch.randn(2, 5, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="Invalid gold"):
        triple_f1([[]], [])
    with pytest.raises(ValueError, match="Invalid decay"):
        make_ema(nn.Linear(2, 2), decay=float("nan"))
    with pytest.raises(ValueError, match="Invalid warmup"):
        ema_decay(3, 0.9, "linear")
    with pytest.raises(TypeError, match="Invalid model"):
        make_ema(lambda x: x)
