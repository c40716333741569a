"""Tests for su_notes.attention.linear (kexue.fm/archives/7546) that the notebook does not cover.

Independent peers (torch's SDPA; fast-transformers' formulas re-implemented from their equations),
properties over many shapes (hypothesis), full-Jacobian gradchecks, low precision, memory that does
not grow with n, and bad input for every public function. Numerical tests take the `device` fixture
(`pytest --device cuda`).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from su_notes.attention.linear import (
    DEFAULT_CHUNK_SIZE,
    FEATURE_MAPS,
    LinearAttention,
    LinearAttentionState,
    attention_matrix,
    cos_feature_map,
    cos_similarity,
    efficient_attention,
    efficient_similarity,
    elu_feature_map,
    exp_similarity,
    linear_attention,
    linear_attention_step,
    quadratic_attention,
    relu_feature_map,
)
from su_notes.core import assert_close

f64 = dict(dtype=torch.float64)
KERNELS = list(FEATURE_MAPS)  # elu1, relu, 1+cos
CAUSAL_FORMS = [
    ("recurrent", None),
    ("cumsum", None),
    ("chunked", None),
    ("chunked", 1),
    ("chunked", 3),
    ("chunked", 100),
]


def rand(*shape, seed=0, dtype=torch.float64, device="cpu"):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def qkv(batch=(2, 3), n=9, m=9, d=4, e=5, seed=0, dtype=torch.float64, device="cpu"):
    return tuple(
        rand(*batch, r, c, seed=seed + i, dtype=dtype, device=device)
        for i, (r, c) in enumerate(((n, d), (m, d), (m, e)))
    )


def test_subpackage_reexports():
    import su_notes.attention as attention
    from su_notes.attention import LinearAttention as LA, linear_attention as la

    assert LA is LinearAttention and la is linear_attention
    names = {"linear_attention", "LinearAttention", "linear_attention_step", "LinearAttentionState"}
    assert names <= set(attention.__all__)


# --- baseline: torch's fused scaled_dot_product_attention -----------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_quadratic_reference_with_callable_similarity_is_sdpa_with_scale(causal, device):
    q, k, v = qkv(n=9, m=9 if causal else 13, device=device)
    sim = lambda a, b: torch.exp(0.3 * a @ b.transpose(-1, -2))
    assert_close(
        quadratic_attention(q, k, v, sim, causal=causal, eps=0.0),
        F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3),
        rtol=1e-12,
        atol=1e-13,
    )


@pytest.mark.parametrize("name", ["elu1", "1+cos"])
@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_is_sdpa_with_log_kernel_mask(name, causal, device):
    # softmax(0·qkᵀ + log W) = W / Σ_j W: SDPA with zero queries and the log-kernel as additive mask
    # computes the normalised kernel attention, independently of our code (eps = 0; kernels > 0)
    q, k, v = qkv(n=11, m=11 if causal else 6, seed=3, device=device)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)
    phi = {
        "elu1": lambda x: F.elu(x) + 1,
        "1+cos": lambda x: torch.cat([torch.ones_like(x[..., :1]), unit(x)], -1),
    }[name]
    logw = torch.log(phi(q) @ phi(k).transpose(-1, -2))
    if causal:
        logw = logw.masked_fill(torch.ones(11, 11, dtype=torch.bool, device=device).triu(1), -math.inf)
    ref = F.scaled_dot_product_attention(torch.zeros_like(q), torch.zeros_like(k), v, attn_mask=logw)
    for method, C in CAUSAL_FORMS if causal else [(None, None)]:
        out = linear_attention(q, k, v, name, causal=causal, eps=0.0, method=method, chunk_size=C)
        assert_close(out, ref, rtol=1e-11, atol=1e-13, msg=f"{name} {method} {C}")


# --- peer: fast-transformers' LinearAttention / CausalLinearAttention formulas (re-implemented from


def fast_transformers_linear(queries, keys, values, eps=1e-6):
    "(N, L, H, D); phi = elu + 1; V'_l = phi(Q_l)·Σ_s phi(K_s)V_sᵀ / (phi(Q_l)·Σ_s phi(K_s) + eps)."
    Q, K = F.elu(queries) + 1, F.elu(keys) + 1
    KV = torch.einsum("nshd,nshm->nhmd", K, values)
    Z = 1 / (torch.einsum("nlhd,nhd->nlh", Q, K.sum(dim=1)) + eps)
    return torch.einsum("nlhd,nhmd,nlh->nlhm", Q, KV, Z)


def fast_transformers_causal_linear(queries, keys, values, eps=1e-6):
    "Causal: Σ_{s≤l} (phi(Q_l)·phi(K_s)) V_s times 1/(phi(Q_l)·Σ_{s≤l} phi(K_s) + eps)."
    Q, K = F.elu(queries) + 1, F.elu(keys) + 1
    L = Q.shape[1]
    mask = torch.ones(L, L, dtype=Q.dtype, device=Q.device).tril()
    scores = torch.einsum("nlhd,nshd->nhls", Q, K) * mask
    num = torch.einsum("nhls,nshm->nlhm", scores, values)
    Z = 1 / (torch.einsum("nlhi,nlhi->nlh", Q, K.cumsum(1)) + eps)
    return num * Z[..., None]


def test_matches_fast_transformers_noncausal(device):
    N, L, S, H, D, M = 2, 10, 7, 3, 4, 6
    queries, keys, values = (
        rand(N, r, H, c, seed=s, device=device) for s, (r, c) in enumerate(((L, D), (S, D), (S, M)))
    )
    ours = linear_attention(*(t.transpose(1, 2) for t in (queries, keys, values)))  # (N, H, L, M)
    assert_close(
        ours.transpose(1, 2),
        fast_transformers_linear(queries, keys, values),
        rtol=1e-12,
        atol=1e-13,
    )


@pytest.mark.parametrize("method,chunk_size", CAUSAL_FORMS)
def test_matches_fast_transformers_causal_on_strided_inputs(method, chunk_size, device):
    # (N, L, H, ·) transposed to (N, H, L, ·) is not contiguous: the chunked form reshapes per chunk
    N, L, H, D, M = 2, 13, 3, 4, 6
    queries, keys, values = (rand(N, L, H, c, seed=4 + s, device=device) for s, c in enumerate((D, D, M)))
    ours = linear_attention(
        *(t.transpose(1, 2) for t in (queries, keys, values)),
        causal=True,
        method=method,
        chunk_size=chunk_size,
    )
    assert_close(
        ours.transpose(1, 2),
        fast_transformers_causal_linear(queries, keys, values),
        rtol=1e-12,
        atol=1e-13,
    )


def test_eps_in_denominator_like_fast_transformers(device):
    # a relu query with no positive entry has phi(q) = 0: output 0/(0 + eps) = 0 in every causal form
    q, k, v = qkv(n=6, m=6, device=device)
    q[0, 0, 2] = -q[0, 0, 2].abs()
    for method, C in CAUSAL_FORMS:
        out = linear_attention(q, k, v, "relu", causal=True, method=method, chunk_size=C)
        assert torch.isfinite(out).all() and out[0, 0, 2].eq(0).all()
    # a large eps visibly shrinks the output, as 1/(phi(q)ᵀz + eps) predicts
    q, k, v = qkv(n=6, m=6, seed=7, device=device)
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    den = fq @ fk.sum(-2).unsqueeze(-1)
    assert_close(
        linear_attention(q, k, v, eps=5.0),
        linear_attention(q, k, v, eps=0.0) * den / (den + 5.0),
        rtol=1e-12,
    )


# --- properties over many shapes (hypothesis) -----------------------------------------------------

shapes = st.tuples(
    st.lists(st.integers(1, 3), min_size=0, max_size=2),
    st.integers(1, 20),
    st.integers(1, 20),
    st.integers(1, 6),
    st.integers(1, 6),
)


@settings(max_examples=40)
@given(
    shape=shapes,
    name=st.sampled_from(KERNELS),
    chunk=st.integers(1, 25),
    seed=st.integers(0, 2**16),
)
def test_all_forms_agree_with_quadratic(shape, name, chunk, seed, device):
    batch, n, m, d, e = shape
    q, k, v = qkv(tuple(batch), n, m, d, e, seed=seed, device=device)
    assert_close(linear_attention(q, k, v, name), quadratic_attention(q, k, v, name), rtol=1e-10, atol=1e-12)
    q, k, v = qkv(tuple(batch), n, n, d, e, seed=seed + 7, device=device)
    ref = quadratic_attention(q, k, v, name, causal=True)
    for method, C in [("recurrent", None), ("cumsum", None), ("chunked", chunk)]:
        out, stt = linear_attention(q, k, v, name, causal=True, method=method, chunk_size=C, return_state=True)
        assert out.shape == (*batch, n, e)
        assert_close(out, ref, rtol=1e-10, atol=1e-12)
        phi_k = FEATURE_MAPS[name](k)
        assert_close(stt.S, phi_k.transpose(-1, -2) @ v, rtol=1e-10, atol=1e-12)
        assert_close(stt.z, phi_k.sum(-2), rtol=1e-10, atol=1e-12)


@settings(max_examples=30)
@given(
    n=st.integers(1, 15),
    m=st.integers(1, 15),
    sim=st.sampled_from(["exp", "elu1", "1+cos", "softmax"]),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_weights_are_probability_rows_and_outputs_convex(n, m, sim, causal, seed, device):
    if causal:
        m = n
    if sim == "softmax" and causal:
        return
    q, k, v = qkv((2,), n, m, 3, 4, seed=seed, device=device)
    A = attention_matrix(q, k, sim, causal=causal)
    assert (A >= 0).all() and (not causal or A.triu(1).eq(0).all())
    assert_close(A.sum(-1), torch.ones(2, n, **f64, device=device), rtol=0, atol=1e-12)
    out = (
        linear_attention(q, k, v, sim, causal=causal, **({} if sim == "softmax" else dict(eps=0.0)))
        if sim != "exp"
        else quadratic_attention(q, k, v, causal=causal, eps=0.0)
    )
    lo, hi = (
        v.amin(-2, keepdim=True),
        v.amax(-2, keepdim=True),
    )  # rows inside the values' bounding box
    assert ((out >= lo - 1e-10) & (out <= hi + 1e-10)).all()


@settings(max_examples=25)
@given(
    n=st.integers(2, 20),
    split=st.integers(1, 19),
    chunk=st.integers(1, 8),
    name=st.sampled_from(KERNELS),
)
def test_state_round_trip_prefill_then_continue(n, split, chunk, name, device):
    split = min(split, n - 1)
    q, k, v = qkv((2,), n, n, 3, 2, seed=n * 31 + split, device=device)
    full = linear_attention(q, k, v, name, causal=True, chunk_size=chunk)
    a, st1 = linear_attention(
        q[..., :split, :],
        k[..., :split, :],
        v[..., :split, :],
        name,
        causal=True,
        chunk_size=chunk,
        return_state=True,
    )
    S_before, z_before = st1.S.clone(), st1.z.clone()
    for method, C in (("cumsum", None), ("chunked", chunk)):
        b = linear_attention(
            q[..., split:, :],
            k[..., split:, :],
            v[..., split:, :],
            name,
            causal=True,
            method=method,
            chunk_size=C,
            state=st1,
        )
        assert_close(torch.cat([a, b], -2), full, rtol=1e-11, atol=1e-13)
        # exact: compared with a copy taken before the call (nothing may be mutated)
        assert torch.equal(st1.S, S_before) and torch.equal(st1.z, z_before)  # the state is not modified
    o, st2 = linear_attention_step(q[..., split, :], k[..., split, :], v[..., split, :], st1, name)
    assert_close(o, full[..., split, :], rtol=1e-11, atol=1e-13)
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(st1.S, S_before)


def test_empty_batch_and_unbatched_inputs(device):
    q, k, v = qkv((0, 3), 5, 5, device=device)
    assert linear_attention(q, k, v, causal=True).shape == (0, 3, 5, 5)
    q, k, v = qkv((), 7, 7, device=device)  # (n, d): no batch dims at all
    assert_close(
        linear_attention(q, k, v, causal=True, chunk_size=3),
        quadratic_attention(q, k, v, "elu1", causal=True),
        rtol=1e-12,
        atol=1e-13,
    )


# --- memory: the chunked form's working set does not grow with n ----------------------------------


def _peak_bytes(fn, device) -> int:
    "Peak bytes allocated during fn() above those allocated before it."
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cur = peak = 0
    for e in sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
        key=lambda e: e.start_ns(),
    ):
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak


def test_chunked_memory_beyond_output_is_independent_of_n(device):
    if torch.device(device).type not in ("cpu", "cuda"):
        pytest.skip("peak memory is measured on cpu and cuda only")
    B, D, C = 4, 16, DEFAULT_CHUNK_SIZE
    extra = {}
    with torch.no_grad():
        for n in (512, 4096):
            q, k, v = (torch.randn(1, B, n, D, device=device) for _ in range(3))
            out_bytes = B * n * D * 4
            extra[n] = _peak_bytes(lambda: linear_attention(q, k, v, causal=True), device)
            extra[n] -= out_bytes
    # one chunk's features, block and partial products plus the (B, D, e) state: a few chunk-sized tensors
    chunk_bytes = B * C * max(D, C) * 4
    assert 0 <= extra[512] <= 8 * chunk_bytes, extra
    assert extra[4096] <= extra[512] + chunk_bytes // 4, extra  # 8× longer sequence, same working set


# --- gradients: full Jacobians --------------------------------------------------------------------

GRAD_FORMS = {
    "noncausal-elu1": dict(),
    "noncausal-relu": dict(feature_map="relu"),
    "noncausal-cos": dict(feature_map="1+cos"),
    "efficient": dict(feature_map="softmax"),
    "recurrent": dict(causal=True, method="recurrent"),
    "cumsum": dict(causal=True, method="cumsum"),
    "chunked-2": dict(causal=True, chunk_size=2),
    "chunked-cos-4": dict(causal=True, feature_map="1+cos", chunk_size=4),
}


@pytest.mark.parametrize("form", list(GRAD_FORMS))
def test_gradcheck(form, device):
    q, k, v = (t.requires_grad_() for t in qkv((1, 2), 5, 5, 3, 2, seed=11, device=device))
    f = lambda q, k, v: linear_attention(q, k, v, **GRAD_FORMS[form])
    assert torch.autograd.gradcheck(f, (q, k, v))


def test_gradcheck_chunked_eps0_short_last_chunk_and_state(device):
    # n = 5 with C = 3: the last chunk is shorter; eps = 0 must give finite gradients (elu+1 > 0 everywhere)
    q, k, v = (t.requires_grad_() for t in qkv((1,), 5, 5, 3, 2, seed=12, device=device))
    S = rand(1, 3, 2, seed=20, device=device).abs().requires_grad_()
    z = rand(1, 3, seed=21, device=device).abs().requires_grad_()
    f = lambda q, k, v, S, z: linear_attention(
        q, k, v, causal=True, chunk_size=3, eps=0.0, state=LinearAttentionState(S, z)
    )
    f(q, k, v, S, z).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v, S, z))
    assert torch.autograd.gradcheck(f, (q, k, v, S, z))


def test_gradcheck_step_with_state(device):
    q, k, v = (t.requires_grad_() for t in qkv((2,), 1, 1, 3, 2, seed=13, device=device))
    S = rand(2, 3, 2, seed=14, device=device).abs().requires_grad_()
    z = rand(2, 3, seed=15, device=device).abs().requires_grad_()
    f = lambda q, k, v, S, z: linear_attention_step(
        q[..., 0, :], k[..., 0, :], v[..., 0, :], LinearAttentionState(S, z)
    )[0]
    assert torch.autograd.gradcheck(f, (q, k, v, S, z))


# --- low precision --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_forms_agree(dtype, device):
    q, k, v = qkv((1, 2), 64, 64, 8, 8, seed=16, dtype=dtype, device=device)
    ref = quadratic_attention(q.double(), k.double(), v.double(), "elu1", causal=True)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=5e-2, atol=5e-2)
    for method, C in CAUSAL_FORMS:
        out = linear_attention(q, k, v, causal=True, method=method, chunk_size=C)
        assert out.dtype == dtype
        assert_close(out.double(), ref, **tol)


# --- the layer ------------------------------------------------------------------------------------


def test_module_callable_feature_map_decoding_and_forward_with_state(device):
    torch.manual_seed(0)
    layer = LinearAttention(12, n_heads=3, feature_map=F.softplus, causal=True, chunk_size=4)
    layer = layer.double().to(device)
    x = rand(2, 11, 12, seed=17, device=device)
    full = layer(x)
    state, ys = None, []
    for t in range(11):
        y, state = layer.step(x[:, t], state)
        ys.append(y)
    assert_close(torch.stack(ys, 1), full, rtol=1e-11, atol=1e-13)
    y, st4 = layer(x[:, :4], return_state=True)
    assert st4.S.shape == (2, 3, 4, 4) and st4.z.shape == (2, 3, 4)
    rest, _ = layer(x[:, 4:], state=st4, return_state=True)
    assert_close(torch.cat([y, rest], 1), full, rtol=1e-11, atol=1e-13)


def test_module_noncausal_matches_functional_grads_and_state_dict(device):
    torch.manual_seed(1)
    layer = LinearAttention(8, n_heads=2, feature_map="softmax").to(device)
    x = torch.randn(3, 10, 8, device=device)
    q, k, v = layer.qkv(x).chunk(3, -1)
    heads = lambda t: t.reshape(3, 10, 2, 4).permute(0, 2, 1, 3)
    o = efficient_attention(heads(q), heads(k), heads(v)).permute(0, 2, 1, 3).reshape(3, 10, 8)
    assert_close(layer(x), layer.proj(o), rtol=1e-5, atol=1e-6)
    layer(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    layer2 = LinearAttention(8, n_heads=2, feature_map="softmax").to(device)
    layer2.load_state_dict(layer.state_dict())
    # exact: the same weights (loaded copies) and the same kernels on the same input
    assert_close(layer2(x), layer(x), rtol=0, atol=0)


# --- bad input: every public function, clear error naming the argument and its value, nothing mutat


def _bad_calls():
    q, k, v = qkv(n=6, m=6)
    stt = LinearAttentionState(torch.zeros(2, 3, 4, 5, **f64), torch.zeros(2, 3, 4, **f64))
    q1, k1, v1 = q[..., 0, :], k[..., 0, :], v[..., 0, :]
    shape_k3 = r"Invalid k: tensor\(shape=\(2, 3, 6, 3\)"
    step = lambda *args, **kw: lambda: linear_attention_step(*args, **kw)
    full = lambda a: a if len(a) >= 3 else (q, k, v) + a  # la("gelu") = la(q, k, v, "gelu")
    la = lambda *a, **kw: lambda: linear_attention(*full(a), **kw)  # a deferred call
    return (
        (q, k, v, stt),
        [
            # linear_attention: tensors
            (ValueError, shape_k3, la(q, k[..., :3], v)),  # d mismatch
            (ValueError, r"Invalid v: tensor\(shape=\(2, 3, 4, 5\)", la(q, k, v[..., :4, :])),
            (
                ValueError,
                r"Invalid k: tensor\(shape=\(1, 3, 6, 4\).*leading dims",
                la(q, k[:1], v[:1]),
            ),
            (ValueError, r"Invalid q: tensor\(shape=\(4,\)", la(q[0, 0, 0], k, v)),  # 1-D
            (
                ValueError,
                r"Invalid k: tensor\(shape=\(2, 3, 4, 4\).*needs n == m",
                la(q, k[..., :4, :], v[..., :4, :], causal=True),
            ),
            (TypeError, r"Invalid q: tensor\(.*int64.*floating", la(q.long(), k.long(), v.long())),
            (TypeError, r"Invalid v: tensor\(.*int32", la(q, k, v.int())),
            (
                TypeError,
                r"Invalid k: tensor\(.*float32.*dtype must equal q's torch.float64",
                la(q, k.float(), v),
            ),
            (TypeError, r"Invalid q: \[\[\[", la(q.tolist(), k, v)),
            # linear_attention: options
            (ValueError, "Invalid feature_map: 'gelu'", la("gelu")),
            (ValueError, "Invalid feature_map: 3", la(3)),
            (
                ValueError,
                r"Invalid feature_map: <function .*phi\(q\[\.\.\., 0:6, :\]\)",
                la(lambda x: x[..., 0], causal=True),
            ),
            (
                ValueError,
                r"Invalid feature_map: <function .*phi\(q\) must",
                la(lambda x: x.float().exp()),
            ),
            (
                ValueError,
                "Invalid feature_map: <function .*same feature dim",
                la(q, k[..., :5, :], v[..., :5, :], lambda x: x[..., : x.shape[-2] - 2].exp()),
            ),
            (ValueError, "Invalid chunk_size: 0", la(causal=True, chunk_size=0)),
            (ValueError, "Invalid chunk_size: -2", la(causal=True, chunk_size=-2)),
            (TypeError, "Invalid chunk_size: 2.5", la(causal=True, chunk_size=2.5)),
            (TypeError, "Invalid chunk_size: True", la(causal=True, chunk_size=True)),
            (TypeError, "Invalid chunk_size: nan", la(causal=True, chunk_size=math.nan)),
            (ValueError, "Invalid chunk_size: 4.*only applies", la(chunk_size=4)),
            (
                ValueError,
                "Invalid chunk_size: 4.*only applies",
                la(causal=True, method="cumsum", chunk_size=4),
            ),
            (
                ValueError,
                "Invalid feature_map: 'softmax'.*no causal form",
                la("softmax", causal=True),
            ),
            (ValueError, "Invalid method: 'scan'", la(causal=True, method="scan")),
            (ValueError, "Invalid method: 'cumsum'.*only applies", la(method="cumsum")),
            (ValueError, "Invalid eps: -1e-06", la(eps=-1e-6)),
            (ValueError, "Invalid eps: nan", la(eps=float("nan"))),
            (ValueError, "Invalid eps: inf", la(eps=math.inf)),
            (TypeError, "Invalid eps: True", la(eps=True)),
            (TypeError, "Invalid eps: '1e-6'", la(eps="1e-6")),
            (TypeError, "Invalid causal: 1", la(causal=1)),
            (TypeError, "Invalid return_state: 1", la(causal=True, return_state=1)),
            (ValueError, "Invalid return_state: True.*only applies", la(return_state=True)),
            # linear_attention: state
            (ValueError, r"Invalid state: LinearAttentionState.*only applies", la(state=stt)),
            (
                ValueError,
                r"Invalid state.S: tensor\(shape=\(2, 3, 3, 5\)",
                la(causal=True, state=(stt.S[..., :3, :], stt.z)),
            ),
            (
                ValueError,
                r"Invalid state.z: tensor\(shape=\(2, 3, 3\)",
                la(causal=True, method="cumsum", state=(stt.S, stt.z[..., :3])),
            ),
            (
                TypeError,
                r"Invalid state: tensor\(shape=\(2, 3, 4, 5\)",
                la(causal=True, state=stt.S),
            ),
            (
                TypeError,
                r"Invalid state.S: tensor\(.*float32",
                la(causal=True, state=(stt.S.float(), stt.z.float())),
            ),
            # linear_attention_step
            (ValueError, r"Invalid v: tensor\(shape=\(1, 3, 5\)", step(q1, k1, v[:1, ..., 0, :])),
            (ValueError, r"Invalid k: tensor\(shape=\(2, 3, 3\)", step(q1, k1[..., :3], v1)),
            (
                ValueError,
                r"Invalid state.S: tensor\(shape=\(2, 3, 4, 2\)",
                lambda: linear_attention_step(q1, k1, v1, (stt.S[..., :2], stt.z)),
            ),
            (
                ValueError,
                "Invalid feature_map: 'softmax'.*no causal form",
                lambda: linear_attention_step(q1, k1, v1, None, "softmax"),
            ),
            (TypeError, "Invalid eps: True", lambda: linear_attention_step(q1, k1, v1, eps=True)),
            (TypeError, "Invalid q: tensor\\(.*int64", step(q1.long(), k1, v1)),
            # efficient / quadratic / matrices / similarities / feature maps
            (TypeError, r"Invalid v: tensor\(.*int64", lambda: efficient_attention(q, k, v.long())),
            (ValueError, shape_k3, lambda: efficient_attention(q, k[..., :3], v)),
            (ValueError, "Invalid sim: 'cosine'", lambda: quadratic_attention(q, k, v, "cosine")),
            (
                ValueError,
                r"Invalid sim: <function .*must return a tensor of shape \(2, 3, 6, 6\)",
                lambda: quadratic_attention(q, k, v, lambda a, b: a),
            ),
            (
                ValueError,
                "Invalid sim: 'softmax'.*no causal form",
                lambda: quadratic_attention(q, k, v, "softmax", causal=True),
            ),
            (
                ValueError,
                r"Invalid k: tensor\(shape=\(2, 3, 4, 4\).*needs n == m",
                lambda: attention_matrix(q, k[..., :4, :], causal=True),
            ),
            (ValueError, "Invalid eps: -1", lambda: attention_matrix(q, k, eps=-1)),
            (TypeError, "Invalid eps: False", lambda: quadratic_attention(q, k, v, eps=False)),
            (ValueError, shape_k3, lambda: exp_similarity(q, k[..., :3])),
            (ValueError, shape_k3, lambda: cos_similarity(q, k[..., :3])),
            (ValueError, shape_k3, lambda: efficient_similarity(q, k[..., :3])),
            (TypeError, r"Invalid x: tensor\(.*int64", lambda: elu_feature_map(q.long())),
            (TypeError, r"Invalid x: \[", lambda: relu_feature_map([1.0, 2.0])),
            (ValueError, r"Invalid x: tensor\(shape=\(\)", lambda: cos_feature_map(q[0, 0, 0, 0])),
            (ValueError, "Invalid eps: 0.0", lambda: cos_feature_map(q, eps=0.0)),
            (ValueError, "Invalid eps: nan", lambda: cos_feature_map(q, eps=math.nan)),
        ],
    )


def test_bad_input_raises_and_mutates_nothing():
    tensors, calls = _bad_calls()
    before = [t.clone() for t in (*tensors[:3], *tensors[3])]
    for exc, msg, call in calls:
        with pytest.raises(exc, match=msg):
            call()
    after = (*tensors[:3], *tensors[3])
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_module_bad_arguments():
    for kw, exc, msg in [
        (dict(d_model=0), ValueError, "Invalid d_model: 0"),
        (dict(d_model=8.0), TypeError, "Invalid d_model: 8.0"),
        (dict(n_heads=True), TypeError, "Invalid n_heads: True"),
        (dict(n_heads=5), ValueError, "Invalid n_heads: 5.*divide d_model=8"),
        (dict(feature_map="tanh"), ValueError, "Invalid feature_map: 'tanh'"),
        (dict(feature_map="softmax", causal=True), ValueError, "no causal form"),
        (dict(chunk_size=0, causal=True), ValueError, "Invalid chunk_size: 0"),
        (dict(causal="yes"), TypeError, "Invalid causal: 'yes'"),
        (dict(bias=1), TypeError, "Invalid bias: 1"),
        (dict(method="cumsum"), ValueError, "Invalid method: 'cumsum'"),
        (dict(eps=-1.0), ValueError, "Invalid eps: -1.0"),
        (dict(eps=math.inf), ValueError, "Invalid eps: inf"),
    ]:
        args = dict(d_model=8, n_heads=2)
        args.update(kw)
        with pytest.raises(exc, match=msg):
            LinearAttention(**args)
    layer = LinearAttention(8, 2, causal=True)
    params = [p.detach().clone() for p in layer.parameters()]
    x = torch.randn(2, 5, 8)
    x0 = x.clone()
    with pytest.raises(ValueError, match=r"Invalid x: tensor\(shape=\(2, 5, 6\)"):
        layer(x[..., :6])
    with pytest.raises(ValueError, match=r"Invalid x: tensor\(shape=\(5, 8\)"):
        layer(x[0])
    with pytest.raises(ValueError, match=r"Invalid x: tensor\(shape=\(2, 5, 8\)"):
        layer.step(x)
    with pytest.raises(TypeError, match=r"Invalid x: tensor\(.*int64"):
        layer(x.long())
    with pytest.raises(ValueError, match=r"Invalid state.S"):
        layer(x, state=(torch.zeros(2, 2, 4, 3), torch.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match="Invalid causal: False.*step needs a causal layer"):
        LinearAttention(8, 2).step(x[:, 0])
    # exact: compared with a copy taken before the call (nothing may be mutated)
    assert torch.equal(x, x0) and all(torch.equal(p, p0) for p, p0 in zip(layer.parameters(), params))
