"Cross-checks and bad-input tests for su_notes.attention.linear (kexue.fm/archives/7546)."
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from su_notes.attention.linear import (FEATURE_MAPS, LinearAttention, LinearAttentionState, attention_matrix,
                                       cos_feature_map, cos_similarity, efficient_attention, efficient_similarity,
                                       elu_feature_map, linear_attention, linear_attention_step, quadratic_attention)
from su_notes.core import assert_close

f64 = dict(dtype=torch.float64)
KERNELS = list(FEATURE_MAPS)  # elu1, relu, 1+cos
CAUSAL_FORMS = [("recurrent", None), ("cumsum", None), ("chunked", None), ("chunked", 1), ("chunked", 3), ("chunked", 100)]


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def qkv(batch=(2, 3), n=9, m=9, d=4, e=5, seed=0, dtype=torch.float64):
    return rand(*batch, n, d, seed=seed, dtype=dtype), rand(*batch, m, d, seed=seed + 1, dtype=dtype), \
        rand(*batch, m, e, seed=seed + 2, dtype=dtype)


# --- baseline: torch's fused scaled_dot_product_attention -------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
def test_quadratic_reference_with_exp_is_sdpa(causal):
    q, k, v = qkv(n=9, m=9 if causal else 13)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert_close(quadratic_attention(q, k, v, "exp", causal=causal, eps=0.), ref, rtol=1e-12, atol=1e-14)
    # a callable similarity with another scale against SDPA's `scale=`
    sim = lambda a, b: torch.exp(0.3 * a @ b.transpose(-1, -2))
    assert_close(quadratic_attention(q, k, v, sim, causal=causal, eps=0.),
                 F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["elu1", "1+cos"])
@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_is_sdpa_with_log_kernel_mask(name, causal):
    # softmax(0·qkᵀ + log W) = W / Σ_j W: SDPA with zero queries and the log-kernel as additive mask computes the
    # normalised kernel attention, independently of our code (eps = 0; both kernels are > 0 off the mask)
    q, k, v = qkv(n=11, m=11 if causal else 6, seed=3)
    phi = FEATURE_MAPS[name]
    logw = torch.log(phi(q) @ phi(k).transpose(-1, -2))
    if causal: logw = logw.masked_fill(torch.ones(11, 11, dtype=torch.bool).triu(1), -math.inf)
    ref = F.scaled_dot_product_attention(torch.zeros_like(q), torch.zeros_like(k), v, attn_mask=logw)
    methods = CAUSAL_FORMS if causal else [(None, None)]
    for method, C in methods:
        out = linear_attention(q, k, v, name, causal=causal, eps=0., method=method, chunk_size=C)
        assert_close(out, ref, rtol=1e-11, atol=1e-13, msg=f"{name} {method} {C}")


# --- peer: fast-transformers' LinearAttention / CausalLinearAttention formulas (re-implemented from equations) ---

def fast_transformers_linear(queries, keys, values, eps=1e-6):
    "Layout (N, L, H, D); phi = elu + 1; V'_l = phi(Q_l)·Σ_s phi(K_s)V_sᵀ · 1/(phi(Q_l)·Σ_s phi(K_s) + eps)."
    Q, K = F.elu(queries) + 1, F.elu(keys) + 1
    KV = torch.einsum("nshd,nshm->nhmd", K, values)
    Z = 1 / (torch.einsum("nlhd,nhd->nlh", Q, K.sum(dim=1)) + eps)
    return torch.einsum("nlhd,nhmd,nlh->nlhm", Q, KV, Z)


def fast_transformers_causal_linear(queries, keys, values, eps=1e-6):
    "Causal: numerator Σ_{s≤l} (phi(Q_l)·phi(K_s)) V_s, normaliser 1/(phi(Q_l)·Σ_{s≤l} phi(K_s) + eps)."
    Q, K = F.elu(queries) + 1, F.elu(keys) + 1
    L = Q.shape[1]
    scores = torch.einsum("nlhd,nshd->nhls", Q, K) * torch.ones(L, L, **f64).tril()
    num = torch.einsum("nhls,nshm->nlhm", scores, values)
    Z = 1 / (torch.einsum("nlhi,nlhi->nlh", Q, K.cumsum(1)) + eps)
    return num * Z[..., None]


def test_matches_fast_transformers_noncausal():
    N, L, S, H, D, M = 2, 10, 7, 3, 4, 6
    queries, keys, values = rand(N, L, H, D, seed=1), rand(N, S, H, D, seed=2), rand(N, S, H, M, seed=3)
    ours = linear_attention(queries.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2))  # (N, H, L, M)
    assert_close(ours.transpose(1, 2), fast_transformers_linear(queries, keys, values), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method,chunk_size", CAUSAL_FORMS)
def test_matches_fast_transformers_causal(method, chunk_size):
    N, L, H, D, M = 2, 13, 3, 4, 6
    queries, keys, values = rand(N, L, H, D, seed=4), rand(N, L, H, D, seed=5), rand(N, L, H, M, seed=6)
    ours = linear_attention(queries.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2), causal=True,
                            method=method, chunk_size=chunk_size)
    assert_close(ours.transpose(1, 2), fast_transformers_causal_linear(queries, keys, values), rtol=1e-12, atol=1e-14)


def test_eps_in_denominator_like_fast_transformers():
    # a relu query with no positive entry has phi(q) = 0: output 0/(0 + eps) = 0 in every form, nan with eps = 0
    q, k, v = qkv(n=6, m=6)
    q[0, 0, 2] = -q[0, 0, 2].abs()
    for method, C in CAUSAL_FORMS:
        out = linear_attention(q, k, v, "relu", causal=True, method=method, chunk_size=C)
        assert torch.isfinite(out).all() and out[0, 0, 2].eq(0).all()
    assert linear_attention(q, k, v, "relu", eps=0.)[0, 0, 2].isnan().all()
    # a large eps visibly shrinks the output, as 1/(phi(q)ᵀz + eps) predicts
    q, k, v = qkv(n=6, m=6, seed=7)
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    den = fq @ fk.sum(-2).unsqueeze(-1)
    assert_close(linear_attention(q, k, v, eps=5.), linear_attention(q, k, v, eps=0.) * den / (den + 5.), rtol=1e-12)


# --- all forms agree (hypothesis) ------------------------------------------------------------------------------

shapes = st.tuples(st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(1, 20), st.integers(1, 20),
                   st.integers(1, 6), st.integers(1, 6))


@settings(max_examples=40)
@given(shape=shapes, name=st.sampled_from(KERNELS), chunk=st.integers(1, 25), seed=st.integers(0, 2**16))
def test_all_forms_agree_with_quadratic(shape, name, chunk, seed):
    batch, n, m, d, e = shape
    q, k, v = qkv(tuple(batch), n, m, d, e, seed=seed)
    assert_close(linear_attention(q, k, v, name), quadratic_attention(q, k, v, name), rtol=1e-10, atol=1e-12)
    q, k, v = qkv(tuple(batch), n, n, d, e, seed=seed + 7)
    ref = quadratic_attention(q, k, v, name, causal=True)
    for method, C in [("recurrent", None), ("cumsum", None), ("chunked", chunk)]:
        out, stt = linear_attention(q, k, v, name, causal=True, method=method, chunk_size=C, return_state=True)
        assert out.shape == (*batch, n, e)
        assert_close(out, ref, rtol=1e-10, atol=1e-12)
        phi_k = FEATURE_MAPS[name](k)
        assert_close(stt.S, phi_k.transpose(-1, -2) @ v, rtol=1e-10, atol=1e-12)
        assert_close(stt.z, phi_k.sum(-2), rtol=1e-10, atol=1e-12)


@settings(max_examples=25)
@given(n=st.integers(2, 20), split=st.integers(1, 19), chunk=st.integers(1, 8), name=st.sampled_from(KERNELS))
def test_state_round_trip_prefill_then_continue(n, split, chunk, name):
    split = min(split, n - 1)
    q, k, v = qkv((2,), n, n, 3, 2, seed=n * 31 + split)
    full = linear_attention(q, k, v, name, causal=True, chunk_size=chunk)
    a, st1 = linear_attention(q[..., :split, :], k[..., :split, :], v[..., :split, :], name, causal=True,
                              chunk_size=chunk, return_state=True)
    S_before, z_before = st1.S.clone(), st1.z.clone()
    b = linear_attention(q[..., split:, :], k[..., split:, :], v[..., split:, :], name, causal=True, method="cumsum",
                         state=st1)
    assert_close(torch.cat([a, b], -2), full, rtol=1e-11, atol=1e-13)
    assert torch.equal(st1.S, S_before) and torch.equal(st1.z, z_before)  # the state is not modified
    o, st2 = linear_attention_step(q[..., split, :], k[..., split, :], v[..., split, :], st1, name)
    assert_close(o, full[..., split, :], rtol=1e-11, atol=1e-13)
    assert torch.equal(st1.S, S_before)


def test_cos_kernel_closed_form_equals_psi_features():
    q, k, v = qkv(n=8, m=12, d=5)
    assert_close(cos_similarity(q, k), cos_feature_map(q) @ cos_feature_map(k).transpose(-1, -2), rtol=1e-13, atol=1e-14)
    assert_close(linear_attention(q, k, v, "1+cos"), quadratic_attention(q, k, v, "1+cos"), rtol=1e-12, atol=1e-14)
    s = cos_similarity(q, k)
    assert s.min() >= 0 and s.max() <= 2


def test_efficient_attention_rows_are_convex_and_noncausal():
    q, k, v = qkv(n=7, m=10)
    W = efficient_similarity(q, k)
    assert (W >= 0).all()
    assert_close(W.sum(-1), torch.ones(2, 3, 7, **f64), rtol=0, atol=1e-14)
    out = efficient_attention(q, k, v)
    assert_close(out, W @ v, rtol=1e-12, atol=1e-14)
    assert_close(linear_attention(q, k, v, "softmax"), out, rtol=0, atol=0)
    assert ((out >= v.amin(-2, keepdim=True) - 1e-12) & (out <= v.amax(-2, keepdim=True) + 1e-12)).all()
    k2 = k.clone(); k2[..., -1, :] += 2
    assert (efficient_attention(q, k2, v) - out)[..., 0, :].abs().max() > 1e-3  # output 0 reads key m-1


def test_attention_matrix_rows_sum_to_one():
    q, k, _ = qkv(n=9, m=9)
    for sim in ["exp", "elu1", "1+cos"]:
        for causal in (False, True):
            A = attention_matrix(q, k, sim, causal=causal)
            assert (A >= 0).all() and (not causal or A.triu(1).eq(0).all())
            assert_close(A.sum(-1), torch.ones(2, 3, 9, **f64), rtol=0, atol=1e-13)
    # relu: some rows are all 0 (here 0/0 = nan without eps); with eps they are 0 and the others sum to 1
    assert attention_matrix(q, k, "relu").isnan().any()
    A = attention_matrix(q, k, "relu", eps=1e-12)
    rows = A.sum(-1)
    assert (A >= 0).all() and rows.eq(0).any() and ((rows - 1).abs() < 1e-9).logical_or(rows == 0).all()


# --- gradients ----------------------------------------------------------------------------------------------------

GRAD_FORMS = {
    "noncausal-elu1": dict(), "noncausal-relu": dict(feature_map="relu"), "noncausal-cos": dict(feature_map="1+cos"),
    "efficient": dict(feature_map="softmax"), "recurrent": dict(causal=True, method="recurrent"),
    "cumsum": dict(causal=True, method="cumsum"), "chunked-2": dict(causal=True, chunk_size=2),
    "chunked-cos-4": dict(causal=True, feature_map="1+cos", chunk_size=4),
}


@pytest.mark.parametrize("form", list(GRAD_FORMS))
def test_gradcheck(form):
    q, k, v = (t.requires_grad_() for t in qkv((1, 2), 5, 5, 3, 2, seed=11))
    assert torch.autograd.gradcheck(lambda q, k, v: linear_attention(q, k, v, **GRAD_FORMS[form]), (q, k, v))


def test_gradcheck_chunked_eps0_padding_has_no_nan():
    # n = 5 with C = 3 pads one query row; with eps = 0 a 0/0 there would poison the key gradients
    q, k, v = (t.requires_grad_() for t in qkv((1,), 5, 5, 3, 2, seed=12))
    out = linear_attention(q, k, v, causal=True, chunk_size=3, eps=0.)
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert torch.autograd.gradcheck(lambda q, k, v: linear_attention(q, k, v, causal=True, chunk_size=3, eps=0.),
                                    (q, k, v))


def test_gradcheck_step_with_state():
    q, k, v = (t.requires_grad_() for t in qkv((2,), 1, 1, 3, 2, seed=13))
    S = rand(2, 3, 2, seed=14).abs().requires_grad_(); z = rand(2, 3, seed=15).abs().requires_grad_()
    f = lambda q, k, v, S, z: linear_attention_step(q[..., 0, :], k[..., 0, :], v[..., 0, :],
                                                    LinearAttentionState(S, z))[0]
    assert torch.autograd.gradcheck(f, (q, k, v, S, z))


# --- low precision and devices ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_forms_agree(dtype):
    q, k, v = qkv((1, 2), 64, 64, 8, 8, seed=16, dtype=dtype)
    ref = quadratic_attention(q.double(), k.double(), v.double(), "elu1", causal=True)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=5e-2, atol=5e-2)
    for method, C in CAUSAL_FORMS:
        out = linear_attention(q, k, v, causal=True, method=method, chunk_size=C)
        assert out.dtype == dtype
        assert_close(out.double(), ref, **tol)


# --- the layer ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fm", ["elu1", "1+cos", "relu", lambda x: F.softplus(x)])
def test_module_decoding_matches_full_forward(fm):
    torch.manual_seed(0)
    layer = LinearAttention(12, n_heads=3, feature_map=fm, causal=True, chunk_size=4).double()
    x = rand(2, 11, 12, seed=17)
    full = layer(x)
    state, ys = None, []
    for t in range(11):
        y, state = layer.step(x[:, t], state); ys.append(y)
    assert_close(torch.stack(ys, 1), full, rtol=1e-11, atol=1e-13)
    y, st4 = layer(x[:, :4], return_state=True)
    assert st4.S.shape == (2, 3, 4 + (fm == "1+cos"), 4) and st4.z.shape == (2, 3, 4 + (fm == "1+cos"))
    rest, _ = layer(x[:, 4:], state=st4, return_state=True)
    assert_close(torch.cat([y, rest], 1), full, rtol=1e-11, atol=1e-13)


def test_module_noncausal_matches_functional_and_grads():
    torch.manual_seed(1)
    layer = LinearAttention(8, n_heads=2, feature_map="softmax")
    x = torch.randn(3, 10, 8)
    q, k, v = layer.qkv(x).chunk(3, -1)
    heads = lambda t: t.reshape(3, 10, 2, 4).permute(0, 2, 1, 3)
    o = efficient_attention(heads(q), heads(k), heads(v)).permute(0, 2, 1, 3).reshape(3, 10, 8)
    assert_close(layer(x), layer.proj(o), rtol=1e-5, atol=1e-6)
    layer(x).square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    sd = layer.state_dict(); layer2 = LinearAttention(8, n_heads=2, feature_map="softmax"); layer2.load_state_dict(sd)
    assert_close(layer2(x), layer(x), rtol=0, atol=0)


# --- bad input: clear error, nothing mutated ----------------------------------------------------------------------

def _bad_calls():
    q, k, v = qkv(n=6, m=6)
    stt = LinearAttentionState(torch.zeros(2, 3, 4, 5, **f64), torch.zeros(2, 3, 4, **f64))
    return (q, k, v, stt), [
        (ValueError, "Invalid k", lambda: linear_attention(q, k[..., :3], v)),                 # d mismatch
        (ValueError, "Invalid v", lambda: linear_attention(q, k, v[..., :4, :])),              # m mismatch
        (ValueError, "Invalid k", lambda: linear_attention(q, k[:1], v[:1])),                  # batch mismatch
        (ValueError, "Invalid q", lambda: linear_attention(q[0, 0, 0], k, v)),                 # 1-D
        (ValueError, "needs n == m", lambda: linear_attention(q, k[..., :4, :], v[..., :4, :], causal=True)),
        (ValueError, "Invalid feature_map", lambda: linear_attention(q, k, v, "gelu")),
        (ValueError, "Invalid feature_map", lambda: linear_attention(q, k, v, 3)),
        (ValueError, "Invalid feature_map", lambda: linear_attention(q, k, v, lambda x: x[..., 0])),
        (ValueError, "Invalid chunk_size", lambda: linear_attention(q, k, v, causal=True, chunk_size=0)),
        (ValueError, "Invalid chunk_size", lambda: linear_attention(q, k, v, causal=True, chunk_size=-2)),
        (ValueError, "Invalid chunk_size", lambda: linear_attention(q, k, v, causal=True, chunk_size=2.5)),
        (ValueError, "Invalid chunk_size", lambda: linear_attention(q, k, v, causal=True, chunk_size=True)),
        (ValueError, "Invalid chunk_size", lambda: linear_attention(q, k, v, chunk_size=4)),   # non-causal
        (ValueError, "Invalid chunk_size", lambda: linear_attention(q, k, v, causal=True, method="cumsum", chunk_size=4)),
        (ValueError, "no causal form", lambda: linear_attention(q, k, v, "softmax", causal=True)),
        (ValueError, "no causal form", lambda: quadratic_attention(q, k, v, "softmax", causal=True)),
        (ValueError, "no causal form", lambda: linear_attention_step(q[..., 0, :], k[..., 0, :], v[..., 0, :], None, "softmax")),
        (ValueError, "Invalid method", lambda: linear_attention(q, k, v, causal=True, method="scan")),
        (ValueError, "Invalid method", lambda: linear_attention(q, k, v, method="cumsum")),
        (ValueError, "Invalid eps", lambda: linear_attention(q, k, v, eps=-1e-6)),
        (ValueError, "Invalid eps", lambda: linear_attention(q, k, v, eps=float("nan"))),
        (ValueError, "Invalid causal", lambda: linear_attention(q, k, v, causal=1)),
        (ValueError, "Invalid state", lambda: linear_attention(q, k, v, state=stt)),            # non-causal
        (ValueError, "Invalid state.S", lambda: linear_attention(q, k, v, causal=True, state=(stt.S[..., :3, :], stt.z))),
        (ValueError, "Invalid state.z", lambda: linear_attention(q, k, v, causal=True, state=(stt.S, stt.z[..., :3]))),
        (TypeError, "Invalid state", lambda: linear_attention(q, k, v, causal=True, state=stt.S)),
        (TypeError, "Invalid state", lambda: linear_attention(q, k, v, causal=True, state=(stt.S.float(), stt.z.float()))),
        (TypeError, "floating", lambda: linear_attention(q.long(), k.long(), v.long())),
        (TypeError, "floating", lambda: linear_attention(q, k, v.int())),
        (TypeError, "dtypes must match", lambda: linear_attention(q, k.float(), v)),
        (TypeError, "expected a torch.Tensor", lambda: linear_attention(q.tolist(), k, v)),
        (TypeError, "floating", lambda: efficient_attention(q, k, v.long())),
        (ValueError, "Invalid sim", lambda: quadratic_attention(q, k, v, "cosine")),
        (ValueError, "Invalid sim", lambda: quadratic_attention(q, k, v, lambda a, b: a)),
        (ValueError, "Invalid v", lambda: linear_attention_step(q[..., 0, :], k[..., 0, :], v[:1, ..., 0, :])),
        (ValueError, "Invalid state.S", lambda: linear_attention_step(q[..., 0, :], k[..., 0, :], v[..., 0, :],
                                                                        (stt.S[..., :2], stt.z))),
    ]


def test_bad_input_raises_and_mutates_nothing():
    tensors, calls = _bad_calls()
    before = [t.clone() for t in (*tensors[:3], *tensors[3])]
    for exc, msg, call in calls:
        with pytest.raises(exc, match=msg): call()
    after = (*tensors[:3], *tensors[3])
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_module_bad_arguments():
    for kw, exc, msg in [(dict(d_model=0), ValueError, "Invalid d_model"), (dict(n_heads=5), ValueError, "Invalid n_heads"),
                         (dict(feature_map="tanh"), ValueError, "Invalid feature_map"),
                         (dict(feature_map="softmax", causal=True), ValueError, "no causal form"),
                         (dict(chunk_size=0, causal=True), ValueError, "Invalid chunk_size"),
                         (dict(method="cumsum"), ValueError, "Invalid method"), (dict(eps=-1.), ValueError, "Invalid eps")]:
        args = dict(d_model=8, n_heads=2); args.update(kw)
        with pytest.raises(exc, match=msg): LinearAttention(**args)
    layer = LinearAttention(8, 2, causal=True)
    params = [p.detach().clone() for p in layer.parameters()]
    x = torch.randn(2, 5, 8); x0 = x.clone()
    with pytest.raises(ValueError, match="Invalid x"): layer(x[..., :6])
    with pytest.raises(ValueError, match="Invalid x"): layer(x[0])
    with pytest.raises(ValueError, match="Invalid x"): layer.step(x)
    with pytest.raises(TypeError, match="floating"): layer(x.long())
    with pytest.raises(ValueError, match="step needs a causal layer"): LinearAttention(8, 2).step(x[:, 0])
    assert torch.equal(x, x0) and all(torch.equal(p, p0) for p, p0 in zip(layer.parameters(), params))
