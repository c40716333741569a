"""Tests for su_notes.bert.reuse beyond the notebook's checks.

- peer: `torch.fx` itself. `submodel_from` / `submodel_upto` are compared with `torch.fx.passes.split_module`
  (fx's own graph partitioner, cutting the same traced graph into two submodules) and with forward hooks on the
  eager model; the traced graph with `torch.fx.symbolic_trace` where the model traces without options;
- the chain rule for shared weights (hypothesis: any number of calls, sizes, float32/float64) and for a tie;
- the life of a tie: `.to(dtype)`, `.to(device)`, deepcopy, state_dict round trips; what breaks it;
- `clone_fresh`: structure, ties, BERT's initialisation, `init=`, the NaN marker's error;
- bad input of every public name: clear error naming the argument, nothing mutated;
- `--device cuda` through the `device` fixture (tests/conftest.py).
"""

import copy
import io

import pytest
import torch
import torch.fx as fx
import torch.nn as nn
from hypothesis import given, strategies as st
from torch.fx.passes.split_module import split_module

import su_notes.bert.model as bert_model
from su_notes.bert.model import BertEncoder, BertLayer
from su_notes.bert.reuse import (
    clone_fresh,
    shared_parameters,
    submodel_from,
    submodel_upto,
    tie_weights_,
)
from su_notes.core import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SMALL = dict(
    vocab_size=60,
    hidden_size=16,
    num_layers=4,
    num_heads=2,
    intermediate_size=32,
    max_position_embeddings=16,
)
MODEL_CHECKS = tuple(
    f for name, f in vars(bert_model).items() if callable(f) and name.startswith(("check_", "_check_"))
)
FX_BERT = dict(
    concrete_args={"attention_mask": None, "token_type_ids": None},
    leaf_modules=(BertLayer,),
    autowrap_functions=MODEL_CHECKS,
)


class Net(nn.Module):
    "A traceable net with a skip connection from the input past the middle: (b, 6) -> (b, 3)."

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b, self.c, self.head = (
            nn.Linear(6, 8),
            nn.Linear(8, 8),
            nn.Linear(8, 6),
            nn.Linear(6, 3),
        )

    def forward(self, x):
        h = torch.tanh(self.a(x))
        h = torch.relu(self.b(h))
        return self.head(self.c(h) + x)


class TinyLM(nn.Module):
    def __init__(self, V=20, d=8):
        super().__init__()
        self.emb, self.head = nn.Embedding(V, d), nn.Linear(d, V)
        tie_weights_(self.head, self.emb)

    def forward(self, ids):
        return self.head(torch.tanh(self.emb(ids)))


def small_bert(device, seed=0):
    torch.manual_seed(seed)
    return BertEncoder(**SMALL).to(device).eval()


# ---------------------------------------------------------------- peer: fx's split_module and hooks
@pytest.mark.parametrize("cut", ["a", "b", "c"])
def test_submodel_from_matches_fx_split_module(cut, device):
    net = Net().to(device)
    x = torch.randn(5, 6, device=device)
    gm = fx.symbolic_trace(net)
    names = [n.name for n in gm.graph.nodes]
    part = lambda node: 0 if names.index(node.name) <= names.index(cut) else 1
    split = split_module(gm, net, part)
    z = submodel_upto(net, cut)(x)
    # exact: fx's partition 0 and our bottom run the same modules on the same inputs
    assert torch.equal(split.submod_0(x), z)
    top = submodel_from(net, cut)
    inputs = [n.name for n in top.graph.nodes if n.op == "placeholder"]
    assert inputs == [cut, "x"]  # x is still needed, for the skip
    theirs = [n.name for n in split.submod_1.graph.nodes if n.op == "placeholder"]
    assert sorted(theirs) == sorted(inputs)
    # exact: split_module's second partition, our sub-model and the eager model agree bit for bit
    assert torch.equal(top(z, x), split.submod_1(**{cut: z, "x": x}))
    assert torch.equal(top(z, x), net(x))


def test_submodel_upto_matches_hooks_on_bert(device):
    enc = small_bert(device)
    ids = torch.randint(0, SMALL["vocab_size"], (3, 9), device=device)
    seen = {}
    handles = [enc.layers[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out)) for i in range(4)]
    out = enc(ids)
    for h in handles:
        h.remove()
    acts = submodel_upto(enc, ["layers.0", "layers_2", "layers.3"], **FX_BERT)(ids)
    # exact: the same modules on the same inputs in the same order
    for a, i in zip(acts, (0, 2, 3)):
        assert torch.equal(a, seen[i])
    assert torch.equal(acts[-1], out)
    assert torch.equal(submodel_upto(enc, "layers.1", **FX_BERT)(ids), seen[1])


@pytest.mark.parametrize("cut", ["embeddings.dropout", "layers.0", "layers.2"])
def test_bert_cut_equals_full_model(cut, device):
    enc = small_bert(device)
    ids = torch.randint(0, SMALL["vocab_size"], (4, 11), device=device)
    top, bottom = submodel_from(enc, cut, **FX_BERT), submodel_upto(enc, cut, **FX_BERT)
    # exact: T and B run the same kernels on the same inputs as the model
    assert torch.equal(top(bottom(ids)), enc(ids))
    # a cache computed in other batches: equal to float32 rounding
    z = torch.cat([bottom(c) for c in ids.split(1)])
    ref = enc(ids)
    assert_close(top(z), ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_bert_top_gradients_equal_full_model_with_frozen_bottom(device):
    enc = small_bert(device)
    enc.train()
    for m in (enc.embeddings, enc.layers[0], enc.layers[1]):
        m.eval()
        m.requires_grad_(False)
    ids = torch.randint(0, SMALL["vocab_size"], (4, 7), device=device)
    top = submodel_from(enc, "layers.1", **FX_BERT)
    with torch.no_grad():
        z = submodel_upto(enc, "layers.1", **FX_BERT)(ids)
    params = [p for p in enc.parameters() if p.requires_grad]
    torch.manual_seed(5)
    g_full = torch.autograd.grad(enc(ids).square().mean(), params)
    torch.manual_seed(5)  # the same dropout masks
    g_top = torch.autograd.grad(top(z).square().mean(), params)
    for a, b in zip(g_full, g_top):
        assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_our_tracer_equals_symbolic_trace(device):
    # the fx peer on its own: symbolic_trace of a model with no control flow, against our tracer
    net = Net().to(device)
    x = torch.randn(3, 6, device=device)
    ours = submodel_upto(net, "head")
    theirs = fx.symbolic_trace(net)
    assert [n.name for n in ours.graph.nodes if n.op == "call_module"] == [
        n.name for n in theirs.graph.nodes if n.op == "call_module"
    ]
    assert torch.equal(ours(x), theirs(x))


def test_submodel_shares_parameters_and_training_moves_the_model():
    net = Net()
    top = submodel_from(net, "b")
    assert all(any(p is q for q in net.parameters()) for p in top.parameters())
    before = net.head.weight.detach().clone()
    opt = torch.optim.SGD(top.parameters(), lr=0.1)
    top(torch.randn(4, 8), torch.randn(4, 6)).sum().backward()
    opt.step()
    assert not torch.equal(net.head.weight, before)
    assert net.a.weight.grad is None  # not in the top


def test_submodel_accepts_a_graphmodule_and_keywords():
    net = Net()
    gm = fx.symbolic_trace(net)
    x = torch.randn(2, 6)
    top = submodel_from(gm, "b")
    z = submodel_upto(gm, "b")(x)
    assert torch.equal(top(b=z, x=x), net(x))


def test_leaf_module_keeps_a_value_branch_live():
    class Gate(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.gate, self.out = nn.Linear(2, 2), Gate(), nn.Linear(2, 1)

        def forward(self, x):
            return self.out(self.gate(self.lin(x)))

    g = G()
    with pytest.raises(fx.proxy.TraceError, match="Fixes: concrete_args"):
        submodel_from(g, "lin")
    top = submodel_from(g, "lin", leaf_modules=(Gate,))
    for s in (1.0, -1.0):
        z = torch.full((1, 2), s)
        assert torch.equal(top(z), g.out(g.gate(z)))


def _positive(x):
    "A private argument check with a data-dependent branch."
    if (x < 0).any():
        raise ValueError("negative")
    return x


class Checked(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x):
        return self.lin(_positive(x))


def test_private_function_is_wrapped():
    m = Checked()
    with pytest.raises(fx.proxy.TraceError):
        submodel_upto(m, "lin")
    with pytest.raises(fx.proxy.TraceError):  # fx's own autowrap skips private names
        fx.Tracer(autowrap_functions=(_positive,)).trace(m)
    sub = submodel_upto(m, "lin", autowrap_functions=(_positive,))
    assert torch.equal(sub(torch.ones(1, 2)), m(torch.ones(1, 2)))
    with pytest.raises(ValueError, match="negative"):  # the check runs at call time
        sub(-torch.ones(1, 2))
    assert globals()["_positive"] is _positive  # restored after tracing


class RawParams(nn.Module):
    "Uses a bare Parameter and a buffer in forward (fx get_attr nodes)."

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))
        self.register_buffer("shift", torch.randn(4))
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        h = torch.tanh(x @ self.w)
        return self.lin(h) + self.shift + h @ self.w


def test_cut_with_parameters_used_directly():
    m = RawParams()
    x = torch.randn(3, 4)
    top = submodel_from(m, "tanh")
    assert dict(top.named_parameters())["w"] is m.w  # shared, not copied
    # exact: the same operations on the same inputs
    assert torch.equal(top(submodel_upto(m, "tanh")(x)), m(x))


@given(
    depth=st.integers(1, 6),
    cut=st.integers(0, 5),
    width=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_any_cut_of_a_chain_reproduces_it(depth, cut, width, seed):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    model = nn.Sequential(*layers)
    node = str(min(cut, 2 * depth - 2))  # a module path inside the chain
    x = torch.randn(2, width)
    top, bottom = submodel_from(model, node), submodel_upto(model, node)
    # exact: the chain's own modules on the same inputs
    assert torch.equal(top(bottom(x)), model(x))


# ---------------------------------------------------------------- shared layers: the chain rule
@given(
    K=st.integers(1, 4),
    d=st.integers(1, 6),
    b=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_shared_layer_gradient_is_sum_over_calls(K, d, b, seed, dtype):
    torch.manual_seed(seed)
    layer = nn.Linear(d, d).to(dtype)
    x = torch.randn(b, d, dtype=dtype)

    def run(layers):
        h = x
        for f in layers:
            h = torch.tanh(f(h))
        return h.square().sum()

    (g,) = torch.autograd.grad(run([layer] * K), layer.weight)
    copies = [copy.deepcopy(layer) for _ in range(K)]
    gs = torch.autograd.grad(run(copies), [c.weight for c in copies])
    total = sum(gs)
    eps = torch.finfo(dtype).eps
    # two summation orders of K terms differ by at most (K − 1)·ε·Σ|g_k| (first order)
    bound = max(K - 1, 0) * eps * sum(gk.abs() for gk in gs) + torch.finfo(dtype).tiny
    assert ((g - total).abs() <= bound).all()


def test_tied_gradient_is_sum_of_both_uses(device):
    torch.manual_seed(0)
    lm = TinyLM().double().to(device)
    ids = torch.randint(0, 20, (3, 5), device=device)
    (g,) = torch.autograd.grad(lm(ids).logsumexp(-1).sum(), lm.emb.weight)
    untied = copy.deepcopy(lm)
    untied.head.weight = nn.Parameter(lm.emb.weight.detach().clone())
    ge, gh = torch.autograd.grad(untied(ids).logsumexp(-1).sum(), [untied.emb.weight, untied.head.weight])
    eps = torch.finfo(torch.float64).eps
    assert ((g - (ge + gh)).abs() <= eps * (ge.abs() + gh.abs())).all()
    assert not torch.allclose(g, gh)


# ---------------------------------------------------------------- ties: what keeps and breaks them
def tied(m):
    return m.head.weight is m.emb.weight and m.head.weight.data_ptr() == m.emb.weight.data_ptr()


def test_tie_survives_conversion_copy_and_round_trips(device):
    lm = TinyLM()
    assert tied(lm) and shared_parameters(lm) == [["emb.weight", "head.weight"]]
    assert tied(lm.to(device)) and tied(lm.to(torch.float64)) and tied(copy.deepcopy(lm))
    buf = io.BytesIO()
    torch.save(lm.state_dict(), buf)
    buf.seek(0)
    new = TinyLM().to(device, torch.float64)
    new.load_state_dict(torch.load(buf, map_location=device))
    assert tied(new) and torch.equal(new.emb.weight, lm.emb.weight)
    optimizer = torch.optim.Adam(new.parameters())
    assert len(optimizer.param_groups[0]["params"]) == 2  # emb/head weight once, head bias


def test_tie_broken_by_assign_and_reassignment():
    lm = TinyLM()
    new = TinyLM()
    new.load_state_dict(lm.state_dict(), assign=True)
    assert not tied(new)
    lm.head.weight = nn.Parameter(lm.head.weight.detach().clone())
    assert not tied(lm) and shared_parameters(lm) == []


def test_tie_weights_keeps_bias_and_returns_head():
    emb, head = nn.Embedding(7, 3), nn.Linear(3, 7)
    bias = head.bias
    out = tie_weights_(head, emb)
    assert out is head and head.bias is bias and head.weight is emb.weight
    x = torch.randn(2, 3)
    assert_close(head(x), x @ emb.weight.T + bias, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "make,contains,err",
    [
        (
            lambda: (nn.Linear(3, 8), nn.Embedding(7, 3)),
            "weight shape (8, 3) != embedding shape (7, 3)",
            ValueError,
        ),
        (lambda: (nn.Linear(3, 7), nn.Embedding(7, 3).double()), "torch.float64", ValueError),
        (lambda: (nn.Conv1d(3, 7, 1), nn.Embedding(7, 3)), "Invalid head", TypeError),
        (lambda: (nn.Linear(3, 7), nn.Linear(3, 7)), "Invalid emb", TypeError),
    ],
)
def test_tie_weights_bad_input_changes_nothing(make, contains, err):
    head, emb = make()
    w, e = head.weight, emb.weight
    before = w.detach().clone()
    with pytest.raises(err, match=None) as info:
        tie_weights_(head, emb)
    assert contains in str(info.value)
    assert head.weight is w and emb.weight is e and torch.equal(head.weight, before)


def test_shared_parameters_bad_input():
    with pytest.raises(TypeError, match="Invalid module"):
        shared_parameters(torch.ones(2))


# ---------------------------------------------------------------- clone_fresh
def test_clone_fresh_bert_init_structure_and_original_untouched():
    enc = small_bert("cpu")
    sd = {k: v.clone() for k, v in enc.state_dict().items()}
    new = clone_fresh(enc)
    assert list(new.state_dict()) == list(sd)
    assert all(torch.equal(enc.state_dict()[k], sd[k]) for k in sd)  # the original is untouched
    w = new.layers[0].intermediate.weight
    assert not torch.equal(w, enc.layers[0].intermediate.weight)
    big = torch.cat([p.flatten() for n, p in new.named_parameters() if p.ndim == 2])
    assert abs(big.std().item() / 0.02 - 1) < 0.05  # BERT's N(0, 0.02²)


def test_clone_fresh_keeps_ties_and_flags_and_uses_init():
    lm = TinyLM()
    lm.emb.weight.requires_grad_(False)
    new = clone_fresh(
        lm,
        init=lambda m: (
            nn.init.zeros_(m.bias)
            if isinstance(m, nn.Linear)
            else nn.init.ones_(m.weight)
            if isinstance(m, nn.Embedding)
            else None
        ),
    )
    assert tied(new) and not new.emb.weight.requires_grad
    assert torch.equal(new.emb.weight, torch.ones_like(new.emb.weight))
    assert torch.equal(new.head.bias, torch.zeros_like(new.head.bias))


def test_clone_fresh_errors():
    class Gain(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = nn.Parameter(torch.ones(2))

    m = nn.Sequential(nn.Linear(2, 2), Gain())
    with pytest.raises(ValueError, match=r"\['1.g'\] were not re-initialised"):
        clone_fresh(m)
    assert torch.equal(m[1].g, torch.ones(2))
    with pytest.raises(TypeError, match="Invalid model"):
        clone_fresh(torch.ones(2))
    with pytest.raises(TypeError, match="Invalid init"):
        clone_fresh(nn.Linear(2, 2), init="normal")
    with pytest.raises(ValueError, match="were not re-initialised"):  # init that skips a layer
        clone_fresh(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), init=lambda mod: None)


# ---------------------------------------------------------------- sub-model bad input
def test_submodel_errors():
    net = Net()
    with pytest.raises(ValueError, match="no such node or module"):
        submodel_from(net, "zz")
    with pytest.raises(TypeError, match="Invalid node"):
        submodel_from(net, 3)
    with pytest.raises(TypeError, match="Invalid nodes"):
        submodel_upto(net, [])
    with pytest.raises(TypeError, match="Invalid model"):
        submodel_from(lambda x: x, "a")
    with pytest.raises(TypeError, match="Invalid concrete_args"):
        submodel_from(net, "a", concrete_args=[1])
    with pytest.raises(TypeError, match="Invalid leaf_modules"):
        submodel_from(net, "a", leaf_modules=(nn.Linear(2, 2),))
    with pytest.raises(TypeError, match="Invalid autowrap_functions"):
        submodel_from(net, "a", autowrap_functions=(3,))
    with pytest.raises(ValueError, match="already a GraphModule"):
        submodel_from(fx.symbolic_trace(net), "a", leaf_modules=(nn.Linear,))
    enc = small_bert("cpu")
    with pytest.raises(fx.proxy.TraceError, match="cannot trace BertEncoder"):
        submodel_from(enc, "layers.1")
    with pytest.raises(ValueError, match="traced through"):
        submodel_from(enc, "layers.1", concrete_args=FX_BERT["concrete_args"], autowrap_functions=MODEL_CHECKS)


def test_submodel_from_errors_on_shared_module_and_unused_node():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.l, self.unused = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            self.unused(x)  # traced, but feeds nothing
            return self.l(self.l(x))

    t = Twice()
    with pytest.raises(ValueError, match=r"called 2 times \(nodes \['l', 'l_1'\]\)"):
        submodel_from(t, "l")
    with pytest.raises(ValueError, match="does not depend on it"):
        submodel_from(t, "unused")
    x = torch.randn(3, 2)
    assert torch.equal(submodel_from(t, "l_1")(t.l(t.l(x))), t(x))
