"""Peer cross-checks for su_notes.text.decoding.

- transformers 5.x: `TopKLogitsWarper` / `TopPLogitsWarper` give the same candidate sets as `top_k_logits` /
  `top_p_logits` (the consistent versions add eos back); `ConsistentEOSProcessor` inside `model.generate` of a
  random-init tiny GPT-2 (no download): the scores generate samples from are `consistent_top_k` of its raw logits,
  and generate's own top-k runs after user processors (eos dropped again), the order this module documents;
- uralik/consistency-lm `st_softmax` (the paper's code): its decoding-time recursion, re-implemented here
  independently (1 − p_t = β_t (1 − p_{t−1}), full-vocabulary logits split around eos_id, clamp at 1e-20 and
  renormalise), agrees with `self_terminating_probs`; where the git mirror of the repository exists, its
  `st_softmax` source itself is run on the same logits.
"""

import ast
import os
import shutil
import subprocess

import pytest
import torch
from hypothesis import given, settings, strategies as st

from su_notes.core import assert_close
from su_notes.text.decoding import (
    ConsistentEOSProcessor,
    consistent_top_k,
    consistent_top_p,
    self_terminating_probs,
    top_k_logits,
    top_p_logits,
)

pytestmark = pytest.mark.usefixtures("one_thread")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
F64 = torch.finfo(torch.float64).eps


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- transformers warpers
@settings(max_examples=40)
@given(seed=st.integers(0, 10**6), V=st.integers(2, 60), k=st.integers(1, 70), eos=st.integers(0, 59))
def test_topk_warper_same_set(seed, V, k, eos):
    lp = pytest.importorskip("transformers.generation.logits_process")
    eos = eos % V
    x = torch.randn(4, V, generator=gen(seed))
    theirs = lp.TopKLogitsWarper(top_k=k)(None, x.clone())
    assert torch.equal(top_k_logits(x, k), theirs)  # exact: same threshold rule, copies
    want = theirs.clone()
    want[:, eos] = x[:, eos]
    assert torch.equal(consistent_top_k(x, k, eos), want)


@settings(max_examples=40)
@given(
    seed=st.integers(0, 10**6),
    V=st.integers(2, 60),
    p=st.floats(0.05, 0.99),
    eos=st.integers(0, 59),
)
def test_topp_warper_same_set(seed, V, p, eos):
    lp = pytest.importorskip("transformers.generation.logits_process")
    eos = eos % V
    x = 2 * torch.randn(4, V, generator=gen(seed), dtype=torch.float64)
    theirs = lp.TopPLogitsWarper(top_p=p)(None, x.clone())
    ours, cons = top_p_logits(x, p), consistent_top_p(x, p, eos)
    probs, _ = x.softmax(-1).sort(-1, descending=True)
    ahead = probs.cumsum(-1) - probs
    for r in range(4):
        # theirs keeps a token when the ascending cumulative mass exceeds 1 − p, i.e. mass ahead < p;
        # the two round differently only when the mass ahead is within a few ulps of p
        if (ahead[r] - p).abs().min() < 1e-12:
            continue
        assert torch.equal(torch.isfinite(ours[r]), torch.isfinite(theirs[r]))
        want = torch.isfinite(theirs[r]).clone()
        want[eos] = True
        assert torch.equal(torch.isfinite(cons[r]), want)


# ---------------------------------------------------------------- transformers generate
@pytest.fixture(scope="module")
def tiny_gpt2():
    tr = pytest.importorskip("transformers")
    tr.utils.logging.set_verbosity_error()
    cfg = tr.GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=50,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=7,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    return tr, tr.GPT2LMHeadModel(cfg).eval()


def generate(tr, model, procs, seed=0, **kw):
    ids = torch.zeros(16, 1, dtype=torch.long)
    torch.manual_seed(seed)
    return model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=True,
        max_new_tokens=5,
        pad_token_id=1,
        logits_processor=tr.LogitsProcessorList(procs),
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
        **kw,
    )


@pytest.mark.parametrize("k, p", [(4, None), (None, 0.5), (6, 0.7)])
def test_processor_inside_generate(tiny_gpt2, k, p):
    tr, model = tiny_gpt2
    out = generate(tr, model, [ConsistentEOSProcessor(7, top_k=k, top_p=p)], top_k=0, top_p=1.0)
    assert len(out.scores) >= 1
    for raw, used in zip(out.logits, out.scores):
        ref = raw
        if k is not None:
            ref = top_k_logits(ref, k)
        if p is not None:
            ref = top_p_logits(ref, p)
        ref = ref.clone()
        ref[:, 7] = raw[:, 7]
        assert torch.equal(used, ref)  # exact: same kernels on the same logits


def test_builtin_topk_runs_after_user_processors(tiny_gpt2):
    tr, model = tiny_gpt2
    out = generate(tr, model, [ConsistentEOSProcessor(7, top_k=3)], top_k=3)
    for raw, used in zip(out.logits, out.scores):
        in_top = raw[:, 7] >= raw.topk(3, -1).values[:, -1]
        # generate's TopKLogitsWarper, applied after ours, masks eos again wherever it is not in the top 3
        assert torch.equal(torch.isinf(used[:, 7]), ~in_top)
    order = model._get_logits_processor(
        generation_config=tr.GenerationConfig(do_sample=True, top_k=3, top_p=0.9),
        input_ids_seq_length=1,
        logits_processor=tr.LogitsProcessorList([ConsistentEOSProcessor(7)]),
    )
    names = [type(x).__name__ for x in order]
    assert names.index("ConsistentEOSProcessor") < names.index("TopKLogitsWarper") < names.index("TopPLogitsWarper")


def test_default_do_sample_applies_top50(tiny_gpt2):
    tr, model = tiny_gpt2
    cfg = model._prepare_generation_config(None, do_sample=True)[0]
    assert cfg.top_k == 50  # why the recipe passes top_k=0


# ---------------------------------------------------------------- uralik/consistency-lm st_softmax
def st_softmax_recursive(logits, eos_id, eps):
    """The decoding-time form of consistency-lm's self-terminating softmax, written step by step:
    full logits (b, T, V+1) with eos at eos_id; β_t = (1 − ε)σ(logit_eos); 1 − p_t = β_t (1 − p_{t−1});
    ordinary tokens (eos removed, order kept) get (1 − p_t) softmax; eos last; clamp 1e-20, renormalise."""
    b, T, _ = logits.shape
    other = [i for i in range(logits.shape[-1]) if i != eos_id]
    rows, alive = [], torch.ones(b, 1, dtype=logits.dtype)
    for t in range(T):
        beta = (1 - eps) * torch.sigmoid(logits[:, t, eos_id : eos_id + 1]).clamp_min(1e-20)
        alive = (beta * alive).clamp_min(1e-20)
        row = torch.cat([alive * logits[:, t, other].softmax(-1), 1 - alive], -1).clamp_min(1e-20)
        rows.append(row / row.sum(-1, keepdim=True))
    return torch.stack(rows, 1)


@pytest.mark.parametrize("eos_id", [0, 5, 11])
def test_consistency_lm_recursion(device, eos_id):
    g = gen(eos_id)
    full = 3 * torch.randn(3, 40, 12, generator=g, dtype=torch.float64)
    full[..., eos_id] += 2.0
    eps = 0.02
    ref = st_softmax_recursive(full, eos_id, eps)
    other = [i for i in range(12) if i != eos_id]
    ours = self_terminating_probs(full[..., other].to(device), full[..., eos_id].to(device), eps)
    # the recursion multiplies T factors, ours sums T logs: rounding grows ~T
    assert_close(ours.cpu(), ref, rtol=64 * 40 * F64, atol=1e-18)
    # the pitfall of eos-last: output index j ≥ eos_id is token j + 1, not token j
    if eos_id < 11:
        assert not torch.allclose(ours[..., eos_id].cpu(), ref[..., -1])


MIRROR = "/work/.mirror/uralik+consistency-lm/repo"


def load_st_softmax():
    "consistency-lm's own `st_softmax`, compiled from its source in the git mirror (the module imports a"
    " transformers function removed in 5.x, so it is not imported whole)."
    if not (os.path.isdir(MIRROR) and shutil.which("git")):
        pytest.skip("consistency-lm mirror not present")
    src = subprocess.run(
        ["git", "-C", MIRROR, "show", "HEAD:self_terminating/gpt2/st_utils.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fn = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == "st_softmax")
    ns = {"torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "st_utils.py", "exec"), ns)
    return ns["st_softmax"]


def test_consistency_lm_st_softmax_itself():
    st_softmax = load_st_softmax()
    eps, V1 = 1e-3, 21
    full = 4 * torch.randn(2, 30, V1, generator=gen(9), dtype=torch.float64)
    self_ = type("Wrapper", (), {"epsilon_upper_bound": eps})()
    for eos_id in (V1 - 1, 4):  # GPT-2's eos is its last token
        log_ps = st_softmax(self_, full, eos_id)
        # it forms (1 − p_eos) as 1 − (1 − ∏β): absolute, not relative, float64 accuracy on small entries
        other = [i for i in range(V1) if i != eos_id]
        ours = self_terminating_probs(full[..., other], full[..., eos_id], eps)
        assert_close(log_ps.exp(), ours, rtol=64 * 30 * F64, atol=16 * F64)
        # its decoding path (p_eos_prev given) gives the same last step
        _, p_prev = st_softmax(self_, full[:, :-1], eos_id, return_p_eos=True)
        last, _ = st_softmax(self_, full[:, -1:], eos_id, p_eos_prev=p_prev[:, -1:], return_p_eos=True)
        assert_close(last[:, 0].exp(), ours[:, -1], rtol=64 * 30 * F64, atol=16 * F64)
