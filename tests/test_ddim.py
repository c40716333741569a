"""Tests for su_notes.generative.ddim beyond the notebook's checks.

Peer: diffusers 0.42.1 `DDIMScheduler` (Su's betas via `trained_betas`, `clip_sample=False`,
`set_alpha_to_one=True`) and `DDPMScheduler`, which looks previous timesteps up in its `timesteps`.
The peers only ever receive their own tables and the same x_t / ε / noise as our code, never our outputs.
Also: the diffusers previous-timestep bug (huggingface/diffusers#9261, #12633) counted on the peer itself,
the exact-score ODE limit against torchdiffeq, hypothesis properties of the algebra, and bad input.
Cross-checks run on `--device` (default cpu).
"""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from hypothesis import given, settings, strategies as st
from torchdiffeq import odeint

from su_notes.core import make_gaussian_mixture_2d
from su_notes.generative.ddim import (
    SPACINGS,
    alphas_cumprod_from_betas,
    ddim_coefficients,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_step_su,
    ddim_timestep_pairs,
    ddim_timesteps,
    su_betas,
)

pytestmark = pytest.mark.usefixtures("one_thread")
T = 1000
F64 = torch.float64
BETAS = 0.02 * np.arange(1, T + 1) / T  # Su's α_t = √(1 − 0.02t/T), written out independently


def peer(spacing="leading", S=50, T_=T, betas=BETAS):
    s = DDIMScheduler(
        num_train_timesteps=T_,
        trained_betas=betas,
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing=spacing,
    )
    s.set_timesteps(S)
    return s


def small_mlp(seed=0, device="cpu"):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2)).to(device)
    return lambda x, t: net(torch.cat([x, (t.to(x.dtype) / T)[:, None]], -1))


# ------------------------------------------------------------------ schedule and sub-sequences


def test_su_betas_and_table_are_diffusers():
    # 0.02·(t/T) against (0.02·t)/T: two roundings each side, so a few ulps apart at most
    np.testing.assert_allclose(su_betas(T).numpy(), BETAS, rtol=4 * np.finfo(np.float64).eps, atol=0)
    ac32 = alphas_cumprod_from_betas(su_betas(T).float())
    # exact: the same float32 betas (one rounding of the same float64 values) through the same
    # torch.cumprod kernel that DDIMScheduler calls
    assert torch.equal(ac32, DDIMScheduler(trained_betas=BETAS).alphas_cumprod)


@pytest.mark.parametrize("T_", [1000, 37])
def test_timesteps_equal_diffusers_for_every_S(T_):
    extra = 0
    for spacing in SPACINGS:
        for S in range(1, T_ + 1):
            ref = peer(spacing, S, T_, betas=None).timesteps
            ours = ddim_timesteps(T_, S, spacing)
            assert ours.dtype == torch.int64 and len(ours) == S and bool((ours.diff() < 0).all())
            if len(ref) == S + 1:  # diffusers' float arange overshoots: a stray −1
                assert spacing == "trailing" and int(ref[-1]) == -1
                extra += 1
                ref = ref[:S]
            assert torch.equal(ours, ref), (spacing, S)
    if T_ == 1000:
        assert extra == 62  # the peer quirk, counted (61, 103, 121, ...)


@given(T_=st.integers(1, 400), frac=st.floats(0, 1), spacing=st.sampled_from(SPACINGS))
def test_pairs_go_to_the_next_scheduled_timestep(T_, frac, spacing):
    S = max(1, round(frac * T_))
    t, tp = ddim_timestep_pairs(T_, S, spacing)
    assert torch.equal(tp[:-1], t[1:]) and int(tp[-1]) == -1
    assert int(t.min()) >= 0 and int(t.max()) <= T_ - 1


def prev_used_by_diffusers(spacing, S):
    "The prev_timestep DDIMScheduler.step really uses (recorded from its _get_variance call)."
    s = peer(spacing, S)
    seen = []
    orig = s._get_variance
    s._get_variance = lambda t, tp: (seen.append(int(tp)), orig(t, tp))[1]
    for t in s.timesteps:
        s.step(torch.zeros(1, 2), t, torch.zeros(1, 2))
    return torch.tensor(seen)


def test_diffusers_previous_timestep_bug_trailing_13():
    # huggingface/diffusers#9261: trailing, T = 1000, S = 13 (13 ∤ 1000)
    t, tp = ddim_timestep_pairs(T, 13, "trailing")
    used = prev_used_by_diffusers("trailing", 13)
    assert t.tolist() == [999, 922, 845, 768, 691, 614, 537, 461, 384, 307, 230, 153, 76]
    wrong = int((used[:-1] != tp[:-1]).sum())
    assert wrong == 11  # 11 of the 12 steps target a level off the schedule
    assert int(used[-1]) == 0 and int(tp[-1]) == -1  # last step: level 0 instead of ᾱ = 1
    # leading is right; linspace wrong at every inner step (huggingface/diffusers#12633)
    assert torch.equal(prev_used_by_diffusers("leading", 13)[:-1], ddim_timestep_pairs(T, 13, "leading")[1][:-1])
    lin = prev_used_by_diffusers("linspace", 10)
    assert int((lin[:-1] != ddim_timestep_pairs(T, 10, "linspace")[1][:-1]).sum()) == 9


# ------------------------------------------------------------------ the step against the peer


@settings(max_examples=25)
@given(S=st.integers(1, 100), eta=st.sampled_from([0.0, 0.2, 1.0]), seed=st.integers(0, 2**31 - 1))
def test_step_bit_identical_to_diffusers(device, S, eta, seed):
    s = peer("leading", S)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 2, generator=g).to(device)
    for t in s.timesteps[:5]:
        eps, z = (torch.randn(32, 2, generator=g).to(device) for _ in range(2))
        ref = s.step(eps, t, x, eta=eta, variance_noise=z).prev_sample
        tp = int(t) - T // S
        a_p = s.alphas_cumprod[tp] if tp >= 0 else s.final_alpha_cumprod
        # exact: the same float32 operations on the same inputs in diffusers' order
        assert torch.equal(ddim_step(x, eps, s.alphas_cumprod[t], a_p, eta=eta, noise=z), ref)
        x = ref


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_sample_bit_identical_to_diffusers_loop_leading(device, eta):
    model, s = small_mlp(device=device), peer("leading", 25)
    with torch.no_grad():
        ours = ddim_sample(
            model,
            (40, 2),
            s.alphas_cumprod,
            25,
            eta=eta,
            spacing="leading",
            generator=torch.Generator().manual_seed(3),
            device=device,
            show_progress=False,
        )
        g = torch.Generator().manual_seed(3)
        x = torch.randn(40, 2, generator=g).to(device)
        for t in s.timesteps:
            z = torch.randn(40, 2, generator=g).to(device) if eta > 0 else None
            x = s.step(model(x, torch.full((40,), int(t), device=device)), t, x, eta=eta, variance_noise=z).prev_sample
    assert ours.device.type == torch.device(device).type
    assert torch.equal(ours, x)  # exact: the same steps (see above) on the same inputs


def test_trailing_eta1_chain_matches_ddpm_scheduler(device):
    # DDPMScheduler looks the previous timestep up in its own `timesteps`; η = 1 is its sampler. It draws
    # one noise per step (all trailing timesteps are > 0) from `generator`, as ddim_sample does after x_T.
    model = small_mlp(1, device)
    dd = DDPMScheduler(num_train_timesteps=T, trained_betas=BETAS, clip_sample=False, timestep_spacing="trailing")
    dd.set_timesteps(13)
    with torch.no_grad():
        ours = ddim_sample(
            model,
            (64, 2),
            dd.alphas_cumprod,
            13,
            eta=1.0,
            spacing="trailing",
            generator=torch.Generator().manual_seed(4),
            device=device,
            show_progress=False,
        )
        g = torch.Generator().manual_seed(4)
        x = torch.randn(64, 2, generator=g).to(device)
        for t in dd.timesteps:
            x = dd.step(model(x, torch.full((64,), int(t), device=device)), t, x, generator=g).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-5)


def test_eta1_step_is_ddpm_step():
    dd = DDPMScheduler(num_train_timesteps=T, trained_betas=BETAS, clip_sample=False)
    dd.set_timesteps(T)
    g = torch.Generator().manual_seed(5)
    for t in (999, 500, 37, 1):
        x, eps = (
            torch.randn(128, 2, dtype=F64, generator=g),
            torch.randn(128, 2, dtype=F64, generator=g),
        )
        ref = dd.step(eps, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        z = torch.randn(128, 2, generator=torch.Generator().manual_seed(t), dtype=F64)
        ours = ddim_step(x, eps, dd.alphas_cumprod[t].double(), dd.alphas_cumprod[t - 1].double(), 1.0, z)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ algebra (hypothesis)

levels = st.tuples(st.floats(1e-4, 0.999), st.floats(0.0, 1.0)).map(lambda p: (p[0], p[0] + (1 - p[0]) * p[1]))


@given(ab=levels, eta=st.floats(0, 1), seed=st.integers(0, 1000))
def test_su_form_equals_diffusers_order(device, ab, eta, seed):
    a_t, a_p = (torch.tensor(v, dtype=F64) ** 2 for v in ab)  # alphas_cumprod from Su's ᾱ
    if a_p <= a_t or a_p > 1:
        return
    g = torch.Generator().manual_seed(seed)
    x, e, z = (torch.randn(16, 3, dtype=F64, generator=g).to(device) for _ in range(3))
    ours = ddim_step(x, e, a_t, a_p, eta, z)
    su = ddim_step_su(x, e, a_t.sqrt(), a_p.sqrt(), ddim_sigma(a_t.sqrt(), a_p.sqrt(), eta), z)
    torch.testing.assert_close(su, ours, rtol=1e-8, atol=1e-9)


@given(ab=levels, frac=st.floats(0, 1))
def test_coefficients_keep_the_marginals(ab, frac):
    a_t, a_p = ab
    if a_p <= a_t or a_p >= 1:
        return
    sigma = frac * math.sqrt(1 - a_p**2)
    k, l = ddim_coefficients(a_t, a_p, sigma)
    assert abs(k * a_t + l - a_p) < 1e-12
    assert abs(k**2 * (1 - a_t**2) + sigma**2 - (1 - a_p**2)) < 1e-12


def test_eta_one_sigma_is_ddpm_posterior_sd():
    ac = alphas_cumprod_from_betas(su_betas(T))
    s = ddim_sigma(ac[1:].sqrt(), ac[:-1].sqrt(), 1.0)
    posterior_var = (1 - ac[:-1]) / (1 - ac[1:]) * torch.from_numpy(BETAS[1:])  # DDPM's β̃_t
    # all entries positive (2e-5 to 0.02): a relative tolerance alone; Su's β_t = √(1 − (ᾱ_t/ᾱ_{t−1})²)
    # loses about five digits to cancellation at small t, hence 1e-9 rather than float64's eps
    torch.testing.assert_close(s**2, posterior_var, rtol=1e-9, atol=0)


def test_exact_score_ddim_converges_to_the_ode_at_first_order():
    ring = make_gaussian_mixture_2d("ring")
    ac = alphas_cumprod_from_betas(su_betas(T))

    def eps(x, a):
        s = (1 - a) ** 0.5
        return -s * ring.noised(a.sqrt().item(), s.item()).score(x)

    xT = torch.randn(40, 2, dtype=F64, generator=torch.Generator().manual_seed(6))
    rho_T = ((1 - ac[-1]) / ac[-1]).sqrt()
    ode = odeint(
        lambda r, y: eps(y / (1 + r**2).sqrt(), 1 / (1 + r**2)),
        xT / ac[-1].sqrt(),
        torch.stack([rho_T, rho_T.new_zeros(())]),
        rtol=1e-8,
        atol=1e-8,
    )[-1]
    err = {
        S: (ddim_sample(lambda x, t: eps(x, ac[t[0]]), (40, 2), ac, S, x_T=xT, show_progress=False) - ode)
        .norm(dim=-1)
        .mean()
        .item()
        for S in (40, 160)
    }
    order = math.log(err[40] / err[160]) / math.log(4)
    assert 0.85 < order < 1.15, err


def test_one_default_spacing_trailing():
    # one default for the sub-sequence, the pairs and the sampler: "trailing" (starts at level T − 1)
    for S in (1, 3, 13, 50):
        t = ddim_timesteps(T, S)
        assert torch.equal(t, ddim_timesteps(T, S, "trailing")) and int(t[0]) == T - 1
        assert torch.equal(ddim_timestep_pairs(T, S)[1], ddim_timestep_pairs(T, S, "trailing")[1])
    ac = alphas_cumprod_from_betas(su_betas(T))
    xT = torch.randn(8, 2, dtype=F64, generator=torch.Generator().manual_seed(9))
    model = lambda x, t: 0.1 * x * (t[:, None] + 1) / T
    a = ddim_sample(model, (8, 2), ac, 7, x_T=xT, show_progress=False)
    b = ddim_sample(model, (8, 2), ac, 7, spacing="trailing", x_T=xT, show_progress=False)
    c = ddim_sample(model, (8, 2), ac, 7, spacing="leading", x_T=xT, show_progress=False)
    assert torch.equal(a, b)  # exact: the same calls on the same inputs
    assert (a - c).abs().max() > 1e-3  # and the spacing does matter


# ------------------------------------------------------------------ bad input (clear errors, nothing mutated)


def test_bad_input_schedule():
    with pytest.raises(TypeError, match="Invalid num_train_timesteps: 10.0"):
        su_betas(10.0)
    with pytest.raises(ValueError, match="Invalid beta_max: 1.5"):
        su_betas(10, 1.5)
    with pytest.raises(ValueError, match="Invalid betas"):
        alphas_cumprod_from_betas(torch.tensor([0.1, 1.2]))
    with pytest.raises(TypeError, match="Invalid betas"):
        alphas_cumprod_from_betas(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="Invalid num_inference_steps: 11"):
        ddim_timesteps(10, 11)
    with pytest.raises(ValueError, match="Invalid num_inference_steps: 0"):
        ddim_timestep_pairs(10, 0)
    with pytest.raises(ValueError, match="Invalid spacing: 'uniform'"):
        ddim_timesteps(10, 5, "uniform")
    with pytest.raises(TypeError, match="Invalid num_train_timesteps: True"):
        ddim_timesteps(True, 1)


def test_bad_input_step():
    x, e = torch.randn(4, 2), torch.randn(4, 2)
    x0, e0 = x.clone(), e.clone()
    with pytest.raises(ValueError, match="Invalid eps"):
        ddim_step(x, e[:2], 0.5, 0.6)
    with pytest.raises(ValueError, match="Invalid alphas_cumprod_t: 1.5"):
        ddim_step(x, e, 1.5, 0.6)
    with pytest.raises(ValueError, match="Invalid alphas_cumprod_prev: 0.0"):
        ddim_step(x, e, 0.5, 0.0)
    with pytest.raises(ValueError, match="Invalid eta: 1.5"):
        ddim_step(x, e, 0.5, 0.6, eta=1.5)
    with pytest.raises(TypeError, match="Invalid eta: True"):
        ddim_step(x, e, 0.5, 0.6, eta=True)
    with pytest.raises(ValueError, match="Invalid noise"):
        ddim_step(x, e, 0.5, 0.6, 1.0, torch.randn(3, 2))
    with pytest.raises(TypeError, match="Invalid x_t"):
        ddim_step(x.numpy(), e, 0.5, 0.6)
    with pytest.raises(TypeError, match="Invalid alphas_cumprod_t"):
        ddim_step(x, e, torch.tensor(1), 0.6)
    with pytest.raises(ValueError, match="Invalid sigma: -0.1"):
        ddim_step_su(x, e, 0.5, 0.6, -0.1)
    with pytest.raises(ValueError, match="Invalid sqrt_alphas_cumprod_prev: 1.2"):
        ddim_step_su(x, e, 0.5, 1.2)
    with pytest.raises(ValueError, match="Invalid eta: -1"):
        ddim_sigma(0.5, 0.6, -1)
    with pytest.raises(ValueError, match="Invalid sqrt_alphas_cumprod_t: 0"):
        ddim_sigma(0, 0.6)
    with pytest.raises(ValueError, match="Invalid sigma"):
        ddim_coefficients(0.5, 0.6, -1.0)
    assert torch.equal(x, x0) and torch.equal(e, e0)  # exact: the inputs must be untouched


def test_bad_input_sample():
    ac = alphas_cumprod_from_betas(su_betas(20))
    ac0 = ac.clone()
    model = lambda x, t: torch.zeros_like(x)
    with pytest.raises(TypeError, match="Invalid model"):
        ddim_sample("unet", (2, 2), ac, 5)
    with pytest.raises(ValueError, match="Invalid shape: \\(\\)"):
        ddim_sample(model, (), ac, 5)
    with pytest.raises(ValueError, match="Invalid shape"):
        ddim_sample(model, (2, 0), ac, 5)
    with pytest.raises(ValueError, match="Invalid alphas_cumprod"):
        ddim_sample(model, (2, 2), ac.flip(0), 5)
    with pytest.raises(ValueError, match="Invalid alphas_cumprod"):
        ddim_sample(model, (2, 2), ac[None], 5)
    with pytest.raises(ValueError, match="Invalid num_inference_steps: 21"):
        ddim_sample(model, (2, 2), ac, 21)
    with pytest.raises(ValueError, match="Invalid spacing"):
        ddim_sample(model, (2, 2), ac, 5, spacing="x")
    with pytest.raises(ValueError, match="Invalid eta: 2"):
        ddim_sample(model, (2, 2), ac, 5, eta=2)
    with pytest.raises(TypeError, match="Invalid set_alpha_to_one: 1"):
        ddim_sample(model, (2, 2), ac, 5, set_alpha_to_one=1)
    xT = torch.randn(3, 2)
    xT0 = xT.clone()
    with pytest.raises(ValueError, match="Invalid x_T"):
        ddim_sample(model, (2, 2), ac, 5, x_T=xT)
    out = ddim_sample(model, (3, 2), ac, 5, x_T=xT, show_progress=False)
    assert torch.equal(xT, xT0) and torch.equal(ac, ac0)  # exact: the inputs must be untouched
    # ε = 0: x_0 = x_T / ᾱ at the first step's level (every later step keeps x/ᾱ fixed)
    torch.testing.assert_close(out, xT / ac[19].sqrt())


# ------------------------------------------------------------------ CUDA only


@pytest.mark.cuda
def test_cuda_sampler_has_no_host_syncs_and_matches_cpu():
    ac = torch.from_numpy(np.cumprod(1 - BETAS)).float()
    model_cpu, model_gpu = small_mlp(2), small_mlp(2, "cuda")
    xT = torch.randn(16, 2, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = ddim_sample(model_cpu, (16, 2), ac, 20, x_T=xT, show_progress=False)
        ac_gpu, xT_gpu = ac.cuda(), xT.cuda()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = ddim_sample(
                model_gpu,
                (16, 2),
                ac_gpu,
                20,
                eta=0.5,
                x_T=xT_gpu,
                show_progress=False,
                generator=torch.Generator("cuda").manual_seed(0),
            )
            out0 = ddim_sample(model_gpu, (16, 2), ac_gpu, 20, x_T=xT_gpu, show_progress=False)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert out.is_cuda and torch.isfinite(out).all()
    torch.testing.assert_close(out0.cpu(), ref, rtol=1e-4, atol=1e-5)
