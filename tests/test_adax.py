"""Tests for su_notes.optim.adax: the paper's AdaX/AdaXW update rules (switchablenorms/AdaX, re-implemented here from
their equations), bojone/adax's and the post's ε placements, torch.optim.Adam's first step, foreach == single-tensor,
state_dict round trips, bad input and gradients left untouched."""
import copy, math

import pytest
import torch
from hypothesis import given, strategies as st

from su_notes.core import assert_close
from su_notes.optim.adax import EPS_MODES, AdaX, AdaXW, adax, adax_beta2_hat, adax_bias_correction, adax_direction


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    "Tiny tensors: intra-op threads only add overhead (and stall badly on a shared CPU)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------------------------------
# Independent reference: the unnormalised update rule of the paper's code, written from its equations
#   AdaX : g <- g + λθ (in place on p.grad);  m <- β1 m + (1-β1) g;  v <- (1+β2) v + β2 g²;
#          θ <- θ - lr·sqrt((1+β2)^t - 1) · m / (sqrt(v) + ε)
#   AdaXW: same without the L2 term, and θ <- θ - lr·λ·θ just before the update.
# `eps_mode` 'keras' (bojone/adax AdaX_V2) and 'blog' (the post) use v/S_t with ε outside / inside the square root.
# ---------------------------------------------------------------------------------------------------------------------
class ReferenceAdaX:
    def __init__(self, params, lr, betas, eps, weight_decay, decoupled, eps_mode="official"):
        self.params, self.lr, (self.b1, self.b2), self.eps = list(params), lr, betas, eps
        self.wd, self.decoupled, self.eps_mode, self.t = weight_decay, decoupled, eps_mode, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        self.t += 1
        S = (1 + self.b2) ** self.t - 1
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            if self.wd and not self.decoupled: g.add_(p, alpha=self.wd)    # the official AdaX writes p.grad
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(1 + self.b2).addcmul_(g, g, value=self.b2)
            if self.decoupled and self.wd: p.sub_(p * (self.lr * self.wd))
            if self.eps_mode == "official": p.sub_(self.lr * math.sqrt(S) * m / (v.sqrt() + self.eps))
            elif self.eps_mode == "keras": p.sub_(self.lr * m / ((v / S).sqrt() + self.eps))
            else: p.sub_(self.lr * m / (v / S + self.eps).sqrt())


def mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(dtype)


def batches(n, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(32, 6, generator=g, dtype=dtype), torch.randint(0, 3, (32,), generator=g)) for _ in range(n)]


def loss_fn(model, x, y): return torch.nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("cls, kw, decoupled", [
    (AdaX, dict(lr=1.5e-3, weight_decay=5e-4), False),          # the paper's AdaX with its L2 default
    (AdaXW, dict(lr=5e-3, weight_decay=5e-2), True),            # the paper's recommended AdaXW
    (AdaX, dict(lr=1e-2, weight_decay=0.0), False),
])
@pytest.mark.parametrize("foreach", [False, True])
def test_matches_official_update_rule(cls, kw, decoupled, foreach):
    ours, ref = mlp(), mlp()
    opt = cls(ours.parameters(), foreach=foreach, **kw)
    ref_opt = ReferenceAdaX(ref.parameters(), betas=(0.9, 1e-4), eps=1e-12, decoupled=decoupled, **kw)
    for x, y in batches(100):
        for model, o in ((ours, opt), (ref, ref_opt)):
            for p in model.parameters(): p.grad = None
            loss_fn(model, x, y).backward(); o.step()
    gap = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), ref.parameters()))
    moved = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), mlp().parameters()))
    assert gap <= 1e-10, gap
    assert moved > 1e-2          # the comparison is not vacuous


@pytest.mark.parametrize("eps_mode, eps", [("keras", 1e-6), ("blog", 1e-8), ("official", 1e-3)])
def test_eps_modes_match_their_formulas(eps_mode, eps):
    "Large ε so that its placement matters; gradients scaled down so |g| is comparable to the floors."
    ours, ref = mlp(), mlp()
    opt = AdaX(ours.parameters(), lr=3e-3, eps=eps, eps_mode=eps_mode)
    ref_opt = ReferenceAdaX(ref.parameters(), 3e-3, (0.9, 1e-4), eps, 0.0, False, eps_mode)
    for x, y in batches(60):
        for model, o in ((ours, opt), (ref, ref_opt)):
            for p in model.parameters(): p.grad = None
            (1e-3 * loss_fn(model, x, y)).backward(); o.step()
    gap = max((a - b).abs().max().item() for a, b in zip(ours.parameters(), ref.parameters()))
    assert gap <= 1e-10, gap


def test_eps_modes_differ_for_tiny_gradients():
    out = {}
    for mode in EPS_MODES:
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = AdaX([p], lr=1.0, betas=(0.0, 1e-4), eps=1e-12, eps_mode=mode)
        p.grad = torch.tensor([1e-9], dtype=torch.float64); opt.step()
        out[mode] = -p.item()
    # floors at t=1: official 1e-12/sqrt(1e-4) = 1e-10, blog sqrt(1e-12) = 1e-6, keras 1e-12
    assert_close(out["official"], 1e-9 / (1e-9 + 1e-10), rtol=1e-12)
    assert_close(out["blog"], 1e-9 / math.sqrt(1e-18 + 1e-12), rtol=1e-12)
    assert_close(out["keras"], 1e-9 / (1e-9 + 1e-12), rtol=1e-12)


def test_official_adax_mutates_grad_ours_does_not():
    ours, ref = mlp(), mlp()
    opt = AdaX(ours.parameters(), weight_decay=0.1)
    ref_opt = ReferenceAdaX(ref.parameters(), 1.5e-3, (0.9, 1e-4), 1e-12, 0.1, False)
    x, y = batches(1)[0]
    for model in (ours, ref): loss_fn(model, x, y).backward()
    before = [p.grad.clone() for p in ours.parameters()]
    ref_before = [p.grad.clone() for p in ref.parameters()]
    opt.step(); ref_opt.step()
    assert all(torch.equal(b, p.grad) for b, p in zip(before, ours.parameters()))
    assert not all(torch.equal(b, p.grad) for b, p in zip(ref_before, ref.parameters()))


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("kw", [dict(weight_decay=0.3), dict(weight_decay=0.3, decoupled=True), dict(maximize=True),
                                dict(maximize=True, weight_decay=0.3), dict(eps_mode="blog")])
def test_grads_not_mutated(foreach, kw):
    model = mlp()
    opt = AdaX(model.parameters(), foreach=foreach, **kw)
    for x, y in batches(3):
        opt.zero_grad(); loss_fn(model, x, y).backward()
        before = [p.grad.clone() for p in model.parameters()]
        opt.step()
        assert all(torch.equal(b, p.grad) for b, p in zip(before, model.parameters()))


# --------------------------------------------------------------------------- Adam limit
def test_first_step_equals_adam_when_beta1_is_zero():
    g = torch.randn(500, generator=torch.Generator().manual_seed(0))
    g = g.sign() * (g.abs() + 0.1)
    def first(opt_fn, dtype=torch.float32):
        p = torch.zeros(500, dtype=dtype, requires_grad=True); o = opt_fn([p]); p.grad = g.to(dtype); o.step()
        return p.detach()
    lr = 1e-3
    ours = first(lambda ps: AdaX(ps, lr=lr, betas=(0.0, 1e-4), eps=0.0))
    adam = first(lambda ps: torch.optim.Adam(ps, lr=lr, betas=(0.0, 0.999)))
    assert_close(ours, adam, rtol=5e-7, atol=0)
    assert_close(ours, -lr * g.sign(), rtol=4e-7, atol=0)
    ours64 = first(lambda ps: AdaX(ps, lr=lr, betas=(0.0, 1e-4), eps=0.0), torch.float64)
    assert_close(ours64, -lr * g.sign().double(), rtol=1e-15, atol=0)
    ours9 = first(lambda ps: AdaX(ps, lr=lr, betas=(0.9, 1e-4), eps=0.0), torch.float64)
    adam9 = first(lambda ps: torch.optim.Adam(ps, lr=lr, betas=(0.9, 0.999), eps=0.0), torch.float64)
    assert_close(ours9, 0.1 * adam9, rtol=1e-14, atol=0)     # no bias correction on m


# --------------------------------------------------------------------------- foreach vs single tensor
SHAPES = [(5, 3), (7,), (2, 3, 4), (), (1, 1), (4, 6)]


def make_params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_() for s in SHAPES[:-1]]
    ps.append(torch.randn(6, 4, generator=g, dtype=torch.float64).to(dtype).t().requires_grad_())   # non-contiguous leaf
    return ps


def run(foreach, dtype, n_steps=15, groups=False, seed=0, **kw):
    ps = make_params(dtype, seed)
    spec = [{"params": ps[:3]}, {"params": ps[3:], "lr": 3e-3, "betas": (0.5, 1e-3), "eps_mode": "keras"}] if groups else ps
    opt = AdaX(spec, foreach=foreach, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    for k in range(n_steps):
        for i, p in enumerate(ps):
            skip = i == 1 or (i == 2 and k % 3 == 0)       # one param never has a grad, one only sometimes
            p.grad = None if skip else torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype)
        opt.step()
    return ps, opt


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kw", [dict(), dict(eps_mode="blog", eps=1e-8), dict(eps_mode="keras", eps=1e-6),
                                dict(weight_decay=0.1), dict(weight_decay=0.1, decoupled=True),
                                dict(maximize=True, weight_decay=0.1), dict(groups=True)])
def test_foreach_matches_single_tensor_on_cpu(dtype, kw):
    """float32/float64: bit for bit. bfloat16: within 2 ulp, because CPU `_foreach_mul_` rounds its scalar to bfloat16
    while `Tensor.mul_` multiplies in float32 (affects (1 − β₂/S_t)·v̂ and the decoupled decay factor)."""
    (a, oa), (b, ob) = run(False, dtype, **kw), run(True, dtype, **kw)
    same = torch.equal if dtype != torch.bfloat16 else (lambda x, y: assert_close(x, y, rtol=2e-2, atol=1e-2) is None)
    for pa, pb in zip(a, b):
        assert same(pa, pb)
        sa, sb = oa.state[pa], ob.state[pb]
        assert sa.keys() == sb.keys()
        for k in sa: assert same(sa[k], sb[k])
    assert len(oa.state[a[1]]) == 0 and len(ob.state[b[1]]) == 0      # grad None: skipped, no state
    assert oa.state[a[0]]["step"].item() == 15 and oa.state[a[2]]["step"].item() == 10
    assert a[1].detach().equal(make_params(dtype)[1])                  # and not moved


@given(st.lists(st.lists(st.integers(1, 4), max_size=3), min_size=1, max_size=5),
       st.floats(0.0, 0.99), st.floats(1e-6, 0.5), st.sampled_from(EPS_MODES), st.floats(0.0, 0.2), st.booleans())
def test_foreach_matches_single_property(shapes, beta1, beta2, eps_mode, wd, decoupled):
    def go(foreach):
        g = torch.Generator().manual_seed(0)
        ps = [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]
        opt = AdaX(ps, lr=1e-2, betas=(beta1, beta2), eps=1e-10, weight_decay=wd, decoupled=decoupled,
                   eps_mode=eps_mode, foreach=foreach)
        for _ in range(4):
            for p in ps: p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64)
            opt.step()
        return ps
    for a, b in zip(go(False), go(True)): assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
def test_cuda_matches_cpu(dtype, tol):
    def go(device, foreach):
        g = torch.Generator().manual_seed(0)
        ps = [torch.randn(s, generator=g, dtype=dtype).to(device).requires_grad_() for s in [(33, 7), (5,), ()]]
        opt = AdaX(ps, lr=1e-2, weight_decay=0.1, foreach=foreach)
        for _ in range(10):
            for p in ps: p.grad = torch.randn(p.shape, generator=g, dtype=dtype).to(device)
            opt.step()
        return [p.detach().cpu() for p in ps]
    ref = go("cpu", False)
    for foreach in (False, True):
        for a, b in zip(go("cuda", foreach), ref): assert_close(a, b, rtol=tol, atol=tol)


# --------------------------------------------------------------------------- state dict
def train(model, opt, data):
    for x, y in data:
        opt.zero_grad(); loss_fn(model, x, y).backward(); opt.step()


@pytest.mark.parametrize("cls, kw", [(AdaX, dict(weight_decay=1e-3)), (AdaX, dict(eps_mode="blog", eps=1e-10, foreach=True)),
                                     (AdaXW, dict()), (AdaX, dict(maximize=True))])
def test_state_dict_round_trip_bit_exact(cls, kw, tmp_path):
    data = batches(30)
    m1 = mlp(); o1 = cls(m1.parameters(), **kw); train(m1, o1, data)
    m2 = mlp(); o2 = cls(m2.parameters(), **kw); train(m2, o2, data[:15])
    torch.save({"model": m2.state_dict(), "opt": o2.state_dict()}, tmp_path / "ckpt.pt")
    ck = torch.load(tmp_path / "ckpt.pt")
    m3 = mlp(seed=123); o3 = cls(m3.parameters()); m3.load_state_dict(ck["model"]); o3.load_state_dict(ck["opt"])
    assert o3.param_groups[0]["eps_mode"] == o1.param_groups[0]["eps_mode"]
    train(m3, o3, data[15:])
    for a, b in zip(m1.parameters(), m3.parameters()): assert torch.equal(a, b)
    assert o3.state[next(iter(m3.parameters()))]["step"].item() == 30


def test_setstate_fills_missing_group_keys():
    opt = AdaX(mlp().parameters())
    sd = opt.state_dict()
    for g in sd["param_groups"]:
        for k in ("decoupled", "eps_mode", "foreach", "maximize"): del g[k]
    opt2 = AdaX(mlp().parameters()); opt2.__setstate__({"state": {}, "param_groups": sd["param_groups"]})
    assert opt2.param_groups[0]["eps_mode"] == "official" and opt2.param_groups[0]["decoupled"] is False


# --------------------------------------------------------------------------- bad input
BAD = [
    (dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    (dict(lr=float("nan")), "Invalid learning rate"),
    (dict(lr="0.1"), "Invalid learning rate"),
    (dict(betas=(1.0, 1e-4)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(-0.1, 1e-4)), "Invalid beta parameter at index 0: -0.1"),
    (dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (dict(betas=(0.9, 0.0)), "Invalid beta parameter at index 1: 0.0"),
    (dict(betas=(0.9,)), "Invalid betas"),
    (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (dict(eps_mode="adam"), "Invalid eps_mode: 'adam'"),
    (dict(decoupled=1), "Invalid decoupled: 1"),
    (dict(decoupled="yes"), "Invalid decoupled: 'yes'"),
    (dict(foreach="yes"), "Invalid foreach"),
    (dict(maximize=None), "Invalid maximize"),
]


@pytest.mark.parametrize("kw, msg", BAD)
def test_bad_hyperparameters_raise_value_error(kw, msg):
    model = mlp(); before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(".", r"\.")): AdaX(model.parameters(), **kw)
    for k, v in model.state_dict().items(): assert torch.equal(v, before[k])


@pytest.mark.parametrize("kw, msg", BAD[:4] + BAD[9:13])
def test_bad_param_group_rejected_and_nothing_added(kw, msg):
    a, b = mlp(), mlp()
    opt = AdaX(a.parameters())
    n_groups, defaults = len(opt.param_groups), dict(opt.defaults)
    with pytest.raises(ValueError, match="Invalid"): opt.add_param_group({"params": list(b.parameters()), **kw})
    assert len(opt.param_groups) == n_groups and opt.defaults == defaults


def test_functional_bad_input_mutates_nothing():
    p = torch.randn(3, dtype=torch.float64); g = torch.randn(3, dtype=torch.float64)
    m, v, s = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), torch.tensor(0.)
    snap = [t.clone() for t in (p, g, m, v, s)]
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"): adax([p], [g], [m], [v], [s], beta2=2.0)
    with pytest.raises(ValueError, match="Invalid eps_mode"): adax([p], [g], [m], [v], [s], eps_mode="x")
    with pytest.raises(ValueError, match=r"Invalid len\(exp_avgs\)"): adax([p], [g], [], [v], [s])
    for a, b in zip((p, g, m, v, s), snap): assert torch.equal(a, b)
    adax([p], [g], [m], [v], [s], foreach=False)                       # and the valid call does update
    assert s.item() == 1 and not torch.equal(p, snap[0])


def test_sparse_grads_rejected_before_any_change():
    emb = torch.nn.Embedding(10, 4, sparse=True).double(); lin = torch.nn.Linear(4, 1).double()
    opt = AdaX([{"params": lin.parameters()}, {"params": emb.parameters()}])
    lin(emb(torch.tensor([1, 2]))).sum().backward()
    before = [p.detach().clone() for p in [*lin.parameters(), *emb.parameters()]]
    with pytest.raises(RuntimeError, match="does not support sparse gradients"): opt.step()
    assert len(opt.state) == 0
    assert all(torch.equal(a, p) for a, p in zip(before, [*lin.parameters(), *emb.parameters()]))


def test_complex_params_rejected():
    p = torch.randn(3, dtype=torch.complex64, requires_grad=True); p.grad = torch.randn(3, dtype=torch.complex64)
    with pytest.raises(TypeError, match="complex"): AdaX([p]).step()


def test_helpers_validate():
    with pytest.raises(ValueError, match="Invalid step"): adax_bias_correction(0, 1e-4)
    with pytest.raises(ValueError, match="Invalid step"): adax_bias_correction(torch.tensor([1., 0.]), 1e-4)
    with pytest.raises(ValueError, match="Invalid beta2"): adax_beta2_hat(3, 0.0)
    with pytest.raises(ValueError, match="Invalid eps"): adax_direction(torch.ones(2), torch.ones(2), 1.0, eps=-1.0)


# --------------------------------------------------------------------------- behaviour
def test_ema_form_and_limits():
    t = torch.arange(1, 5001)
    b2 = 1e-4
    assert abs(adax_beta2_hat(1, b2)) < 1e-15
    S = adax_bias_correction(t, b2)
    assert_close(S[1:], (1 + b2) * S[:-1] + b2, rtol=1e-13, atol=0)
    assert_close(1 - adax_beta2_hat(t[:50], b2), 1 / t[:50].double(), rtol=3e-3, atol=0)


def test_long_runs_stay_finite_in_float32():
    "The paper's unnormalised v overflows float32 after ≈ 8.9e5 steps with β₂ = 1e-4; the stored v̂ does not."
    p = torch.ones(4, requires_grad=True); opt = AdaX([p])
    p.grad = torch.ones(4); opt.step()
    opt.state[p]["step"].fill_(3e6)
    for _ in range(3): opt.step()
    assert torch.isfinite(p).all() and torch.isfinite(opt.state[p]["exp_avg_sq"]).all()
    assert torch.isinf(torch.tensor((1 + 1e-4), dtype=torch.float32) ** torch.tensor(1e6))


def test_closure_and_lr_scheduler():
    model = mlp(); x, y = batches(1)[0]
    opt = AdaX(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    def closure():
        opt.zero_grad(); l = loss_fn(model, x, y); l.backward(); return l
    l0 = opt.step(closure).item(); sched.step()
    assert opt.param_groups[0]["lr"] == 5e-3
    for _ in range(20): l = opt.step(closure).item()
    assert l < l0
