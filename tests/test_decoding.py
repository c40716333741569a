"""Tests for su_notes.text.decoding beyond the notebook's checks (no peer library needed).

- candidate sets of `top_k_logits` / `top_p_logits` / `consistent_*` against an independent NumPy sort, with
  hypothesis; several end tokens; values copied, gradients pass through kept entries;
- `self_terminating_probs` / `self_terminating_log_probs`: rows sum to 1, p(eos) non-decreasing and above
  1 − (1 − ε)^(t+1), extreme heads in float32 without NaN, log form = log of the probabilities;
- `markov_survival` / `termination_probability` against matrix powers and a fixed-point iteration of h = r + Qh;
- `ConsistentEOSProcessor` as a plain callable; bad input of every public name (error naming the argument,
  inputs unchanged); `--device cuda` through the `device` fixture.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from su_notes.core import assert_close
from su_notes.text.decoding import (
    ConsistentEOSProcessor,
    consistent_top_k,
    consistent_top_p,
    markov_survival,
    self_terminating_log_probs,
    self_terminating_probs,
    termination_probability,
    top_k_logits,
    top_p_logits,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
F64 = torch.finfo(torch.float64).eps


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def np_kept_top_k(row, k):
    "Indices with a value ≥ the k-th largest (ties kept), by sorting."
    kth = np.sort(row)[::-1][min(k, row.size) - 1]
    return set(np.flatnonzero(row >= kth).tolist())


def np_kept_top_p(row, p):
    "Smallest most-probable prefix reaching mass p (a token is kept if the mass strictly ahead is < p)."
    pr = np.exp(row - row.max())
    pr /= pr.sum()
    order = np.argsort(-pr, kind="stable")
    ahead = np.cumsum(pr[order]) - pr[order]
    return set(order[ahead < p].tolist()), float(np.abs(ahead - p).min())


@given(seed=st.integers(0, 10**6), V=st.integers(2, 40), k=st.integers(1, 45), eos=st.integers(0, 39))
def test_top_k_sets(seed, V, k, eos):
    eos = eos % V
    x = torch.randn(3, V, generator=gen(seed), dtype=torch.float64)
    plain, cons = top_k_logits(x, k), consistent_top_k(x, k, eos)
    for r in range(3):
        want = np_kept_top_k(x[r].numpy(), k)
        assert set(torch.isfinite(plain[r]).nonzero().flatten().tolist()) == want
        assert set(torch.isfinite(cons[r]).nonzero().flatten().tolist()) == want | {eos}
    # exact: kept entries are copies of the input
    assert torch.equal(torch.where(torch.isfinite(cons), cons, x), x)


def test_top_k_ties_kept():
    x = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]])
    assert torch.isfinite(top_k_logits(x, 2)).sum() == 3  # all ties at the k-th value, as transformers


@given(
    seed=st.integers(0, 10**6),
    V=st.integers(2, 40),
    p=st.floats(0.01, 0.999),
    eos=st.integers(0, 39),
)
def test_top_p_sets(seed, V, p, eos):
    eos = eos % V
    x = 2 * torch.randn(2, V, generator=gen(seed), dtype=torch.float64)
    plain, cons = top_p_logits(x, p), consistent_top_p(x, p, eos)
    for r in range(2):
        want, margin = np_kept_top_p(x[r].numpy(), p)
        if margin < 1e-12:
            continue  # on the boundary: either side is right
        assert set(torch.isfinite(plain[r]).nonzero().flatten().tolist()) == want
        assert set(torch.isfinite(cons[r]).nonzero().flatten().tolist()) == want | {eos}


def test_top_p_one_keeps_all_and_most_likely_always_kept():
    x = torch.randn(4, 9, generator=gen(1))
    assert torch.equal(top_p_logits(x, 1.0), x)
    tiny = top_p_logits(x, 1e-9)
    assert (torch.isfinite(tiny).sum(-1) == 1).all() and torch.equal(tiny.argmax(-1), x.argmax(-1))


def test_several_eos_and_leading_dims(device):
    x = torch.randn(2, 3, 20, generator=gen(2)).to(device)
    x[..., [4, 11]] = -30.0
    out = consistent_top_k(x, 2, [4, 11])
    assert out.shape == x.shape and out.device == x.device
    assert torch.equal(out[..., [4, 11]], x[..., [4, 11]])  # exact: copied
    assert (torch.isfinite(out).sum(-1) == 4).all()
    outp = consistent_top_p(x, 0.5, (4, 11))
    assert torch.equal(outp[..., [4, 11]], x[..., [4, 11]])


def test_gradient_through_kept_entries():
    x = torch.randn(3, 10, generator=gen(3), dtype=torch.float64, requires_grad=True)
    out = consistent_top_k(x, 3, 0)
    loss = torch.where(torch.isfinite(out), out, 0).sum()
    loss.backward()
    kept = torch.isfinite(out).double()
    assert_close(x.grad, kept, rtol=0, atol=0)  # exact: d(copy)/dx = 1, masked = 0


@given(
    seed=st.integers(0, 10**6),
    T=st.integers(1, 80),
    V=st.integers(1, 30),
    eps=st.floats(1e-6, 0.9),
    shift=st.floats(-20, 20),
)
def test_self_terminating_properties(seed, T, V, eps, shift):
    g = gen(seed)
    v = 5 * torch.randn(2, T, V, generator=g, dtype=torch.float64)
    e = 4 * torch.randn(2, T, generator=g, dtype=torch.float64) + shift
    p = self_terminating_probs(v, e, eps)
    assert p.shape == (2, T, V + 1) and (p >= 0).all()
    assert_close(p.sum(-1), torch.ones(2, T, dtype=torch.float64), rtol=0, atol=8 * (V + 1) * F64)
    assert (p[..., -1].diff(dim=-1) >= -4 * F64).all()
    bound = -torch.expm1(torch.arange(1, T + 1, dtype=torch.float64) * math.log1p(-eps))
    assert (p[..., -1] >= bound - 4 * F64 * T).all()
    lp = self_terminating_log_probs(v, e, eps)
    assert_close(lp.exp(), p, rtol=64 * F64 * T, atol=1e-300)


def test_self_terminating_extreme_heads_float32(device):
    v = torch.randn(3, 50, 7, generator=gen(4)).to(device) * 30
    e = torch.tensor([-200.0, 0.0, 200.0], device=device)[:, None].expand(3, 50).contiguous()
    p = self_terminating_probs(v, e, 1e-3)
    lp = self_terminating_log_probs(v, e, 1e-3)
    assert torch.isfinite(p).all() and torch.isfinite(lp[..., -1]).all()
    assert_close(p.sum(-1), torch.ones(3, 50, device=device), rtol=0, atol=1e-5)
    # σ(−200) = 0: eos is certain at once; σ(200) = 1: p(eos) = 1 − (1 − ε)^(t+1) exactly (the bound)
    assert_close(p[0, :, -1], torch.ones(50, device=device), rtol=0, atol=1e-6)
    tb = 1 - (1 - 1e-3) ** torch.arange(1, 51, dtype=torch.float64)
    assert_close(p[2, :, -1].double().cpu(), tb, rtol=1e-4, atol=1e-6)
    # log p(eos) at t = 0 with σ → 1 is log ε, resolved in float32 by the log-space form
    assert_close(
        lp[2, 0, -1].double().cpu(),
        torch.tensor(math.log(1e-3), dtype=torch.float64),
        rtol=1e-5,
        atol=0,
    )


def test_self_terminating_gradcheck():
    v = torch.randn(1, 5, 4, generator=gen(5), dtype=torch.float64, requires_grad=True)
    e = torch.randn(1, 5, generator=gen(6), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: self_terminating_probs(a, b, 0.1), (v, e))
    assert torch.autograd.gradcheck(lambda a, b: self_terminating_log_probs(a, b, 0.1), (v, e))


def random_chain(seed, V=6, eos=2, sparsity=0.5):
    g = gen(seed)
    P = torch.rand(V, V, generator=g, dtype=torch.float64)
    P = P * (torch.rand(V, V, generator=g, dtype=torch.float64) > sparsity)
    P[:, (eos + 1) % V] += 0.01  # no zero rows
    return P / P.sum(1, keepdim=True)


@settings(max_examples=30)
@given(seed=st.integers(0, 10**6), start=st.integers(0, 4))
def test_markov_survival_matrix_powers(seed, start):
    V, eos = 6, 2
    start = start if start < eos else start + 1
    P = random_chain(seed, V, eos)
    keep = [i for i in range(V) if i != eos]
    Q = P[keep][:, keep]
    s0 = keep.index(start)
    S = markov_survival(P, start, eos, 12)
    ref = torch.stack([torch.linalg.matrix_power(Q, t)[s0].sum() for t in range(13)])
    assert_close(S, ref, rtol=1e-12, atol=1e-14)
    # the minimal solution h = Σ_n Qⁿ r, summed by doubling: h_2n = h_n + Qⁿ h_n (2⁴⁰ terms)
    h, Qn = P[keep, eos].clone(), Q.clone()
    for _ in range(40):
        h = h + Qn @ h
        Qn = Qn @ Qn
    assert_close(termination_probability(P, start, eos), h[s0], rtol=0, atol=1e-8)


def test_termination_probability_closed_forms():
    # one token that repeats with prob 1 − r and ends with prob r: L is geometric, ends a.s.
    r = 0.2
    P = torch.tensor([[1 - r, r], [0.5, 0.5]], dtype=torch.float64)
    assert_close(
        markov_survival(P, 0, 1, 5),
        (1 - r) ** torch.arange(6, dtype=torch.float64),
        rtol=1e-14,
        atol=0,
    )
    assert_close(termination_probability(P, 0, 1), torch.tensor(1.0, dtype=torch.float64), rtol=1e-14, atol=0)
    # a trap: from 0, end w.p. a, go to the closed state 2 w.p. b, stay w.p. 1 − a − b → a / (a + b)
    a, b = 0.3, 0.1
    P = torch.tensor([[1 - a - b, a, b], [1 / 3] * 3, [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert_close(
        termination_probability(P, 0, 1),
        torch.tensor(a / (a + b), dtype=torch.float64),
        rtol=1e-14,
        atol=0,
    )
    assert termination_probability(P, 2, 1).item() == 0.0  # exact: unreachable states get 0


def test_processor_plain_callable(device):
    x = torch.randn(4, 30, generator=gen(7)).to(device)
    ids = torch.zeros(4, 3, dtype=torch.long, device=device)
    assert ConsistentEOSProcessor(5)(ids, x) is x  # no truncation asked: unchanged
    out = ConsistentEOSProcessor(5, top_k=3, top_p=0.9)(ids, x)
    ref = consistent_top_p(top_k_logits(x, 3), 0.9, 5)
    ref[:, 5] = x[:, 5]
    assert torch.equal(out, ref)  # exact: same kernels, same inputs
    assert "top_k=3" in repr(ConsistentEOSProcessor(5, top_k=3))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: top_k_logits(x, 0), "Invalid k"),
        (lambda x: top_k_logits(x, 2.0), "Invalid k"),
        (lambda x: top_k_logits(x.long(), 2), "Invalid logits"),
        (lambda x: top_k_logits([1.0, 2.0], 1), "Invalid logits"),
        (lambda x: top_p_logits(x, 0.0), "Invalid p"),
        (lambda x: top_p_logits(x, float("nan")), "Invalid p"),
        (lambda x: top_p_logits(x, True), "Invalid p"),
        (lambda x: consistent_top_k(x, 2, 9), "Invalid eos_id"),
        (lambda x: consistent_top_k(x, 2, -1), "Invalid eos_id"),
        (lambda x: consistent_top_k(x, 2, []), "Invalid eos_id"),
        (lambda x: consistent_top_p(x, 0.5, 2.0), "Invalid eos_id"),
        (lambda x: self_terminating_probs(x[0], x[0, 0], 1e-3), "Invalid v_logits"),
        (lambda x: self_terminating_probs(x[None], x[None, :, :2], 1e-3), "Invalid eos_logits"),
        (
            lambda x: self_terminating_probs(x[None], x[None, :, 0].float(), 1e-3),
            "Invalid eos_logits",
        ),
        (lambda x: self_terminating_probs(x[None], x[None, :, 0], 1.0), "Invalid eps"),
        (lambda x: self_terminating_log_probs(x[None], x[None, :, 0], 0), "Invalid eps"),
        (lambda x: ConsistentEOSProcessor(1, top_k=0), "Invalid top_k"),
        (lambda x: ConsistentEOSProcessor(1, top_p=2), "Invalid top_p"),
        (lambda x: ConsistentEOSProcessor("1"), "Invalid eos_id"),
        (lambda x: ConsistentEOSProcessor(20, top_k=2)(None, x), "Invalid eos_id"),
    ],
)
def test_bad_input(call, match):
    x = torch.randn(3, 9, generator=gen(8), dtype=torch.float64)
    before = x.clone()
    with pytest.raises((TypeError, ValueError), match=match):
        call(x)
    assert torch.equal(x, before)  # nothing mutated


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda P: markov_survival(P[:2], 0, 1, 3), "Invalid probs"),
        (lambda P: markov_survival(P, 1, 1, 3), "Invalid start"),
        (lambda P: markov_survival(P, 0, 5, 3), "Invalid eos_id"),
        (lambda P: markov_survival(P, 0, [1, 2], 3), "Invalid eos_id"),
        (lambda P: markov_survival(P, 0, 1, -1), "Invalid max_len"),
        (lambda P: termination_probability(P, 3, 1), "Invalid start"),
        (lambda P: termination_probability(P.long(), 0, 1), "Invalid probs"),
    ],
)
def test_bad_chain_input(call, match):
    P = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    before = P.clone()
    with pytest.raises((TypeError, ValueError), match=match):
        call(P)
    assert torch.equal(P, before)
