"""Ideas of diffusers' own DDIM scheduler tests, applied to su_notes.generative.ddim.

diffusers tests `DDIMScheduler` with a deterministic dummy sample and a dummy model over linear betas
(1e-4 to 0.02): step output shapes, the sub-sequence of each spacing for several numbers of training and
inference steps, `set_alpha_to_one`, the DDIM variance, η = 0 determinism, whole sampling loops summarised
by the sum and mean of the result, and half precision. The same ideas are written here from scratch and
every expected value is computed by the installed diffusers 0.42.1 on the same inputs (never copied
numbers). Not ported, because su_notes does not implement them: `prediction_type` "sample" and
"v_prediction" (ε-prediction only), `clip_sample`/thresholding, `steps_offset`, `rescale_betas_zero_snr`
(ᾱ_T = 0 is refused: an ε-model cannot recover x_0 there) and `add_noise`.
"""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from su_notes.generative.ddim import (
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timestep_pairs,
    ddim_timesteps,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def scheduler(T=1000, spacing="leading", set_alpha_to_one=True, S=None):
    "diffusers' DDIM scheduler with its default linear betas (1e-4 to 0.02) and no clipping."
    s = DDIMScheduler(
        num_train_timesteps=T,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=set_alpha_to_one,
        timestep_spacing=spacing,
    )
    if S is not None:
        s.set_timesteps(S)
    return s


def dummy_sample(shape=(4, 3, 8, 8), dtype=torch.float32):
    "A deterministic, not-random sample in [−1, 1): an affine ramp over all entries, as an image batch."
    n = int(np.prod(shape))
    return (torch.arange(n, dtype=torch.float64) / n * 2 - 1).reshape(shape).to(dtype)


def dummy_model(x, t):
    "ε_θ(x, t) = x · t/(t + 1): deterministic, depends on both arguments; t is (b,) or a 0-d tensor."
    t = torch.as_tensor(t).to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
    return x * t / (t + 1)


def diffusers_loop(s, x, eta=0.0, noises=None):
    for i, t in enumerate(s.timesteps):
        z = None if noises is None else noises[i]
        x = s.step(dummy_model(x, t), t, x, eta=eta, variance_noise=z).prev_sample
    return x


# ------------------------------------------------------------------ step shapes


@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (2, 5), (1, 1, 16)])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_step_shape_and_value(shape, eta):
    s = scheduler(S=10)
    x = dummy_sample(shape)
    z = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for t in (s.timesteps[0], s.timesteps[5], s.timesteps[-1]):
        tp = int(t) - 1000 // 10
        a_p = s.alphas_cumprod[tp] if tp >= 0 else s.final_alpha_cumprod
        ref = s.step(dummy_model(x, t), t, x, eta=eta, variance_noise=z).prev_sample
        ours = ddim_step(x, dummy_model(x, t), s.alphas_cumprod[t], a_p, eta, z)
        assert ours.shape == ref.shape == x.shape and ours.dtype == x.dtype
        assert torch.equal(ours, ref)  # exact: the same float32 operations in the same order


def test_per_sample_timesteps_broadcast():
    # one step of a batch whose samples sit at different levels: ᾱ as a (b, 1, 1, 1) tensor
    s = scheduler(S=50)
    x = dummy_sample((4, 3, 8, 8))
    ts = [s.timesteps[i] for i in (0, 10, 30, 49)]
    eps = torch.cat([dummy_model(x[i : i + 1], t) for i, t in enumerate(ts)])
    a_t = torch.stack([s.alphas_cumprod[t] for t in ts]).reshape(4, 1, 1, 1)
    a_p = torch.stack([s.alphas_cumprod[t - 20] if t >= 20 else s.final_alpha_cumprod for t in ts]).reshape(4, 1, 1, 1)
    ours = ddim_step(x, eps, a_t, a_p)
    ref = torch.cat([s.step(eps[i : i + 1], t, x[i : i + 1]).prev_sample for i, t in enumerate(ts)])
    # the per-sample coefficients are the same float32 numbers, but a (4, 1, 1, 1) tensor and a 0-d
    # tensor go through different broadcasting kernels: a few float32 ulps of |x|
    torch.testing.assert_close(ours, ref, rtol=4 * torch.finfo(torch.float32).eps, atol=1e-6)


# ------------------------------------------------------------------ timesteps of each spacing


@pytest.mark.parametrize("T", [100, 500, 1000])
@pytest.mark.parametrize("S", [1, 5, 10, 50, 100])
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_for_each_spacing(T, S, spacing):
    ref = scheduler(T, spacing, S=S).timesteps
    ours = ddim_timesteps(T, S, spacing)
    if len(ref) == S + 1:
        ref = ref[:S]  # diffusers' trailing overshoot (a stray −1)
    assert ours.dtype == torch.int64
    assert torch.equal(ours, ref)  # integer timesteps: exact


def test_timesteps_of_a_leading_schedule_by_hand():
    # written out: T = 1000, S = 5, stride 200 (diffusers' test uses the same schedule with an offset)
    assert ddim_timesteps(1000, 5, "leading").tolist() == [800, 600, 400, 200, 0]
    assert ddim_timesteps(1000, 5, "trailing").tolist() == [999, 799, 599, 399, 199]
    assert ddim_timesteps(1000, 5, "linspace").tolist() == [999, 749, 500, 250, 0]


# ------------------------------------------------------------------ variance


@pytest.mark.parametrize("t, tp", [(0, 0), (420, 400), (980, 960), (487, 486), (999, 998), (10, -1)])
def test_variance_is_diffusers_get_variance(t, tp):
    s = scheduler()
    a_t = s.alphas_cumprod[t].double()
    a_p = s.alphas_cumprod[tp].double() if tp >= 0 else torch.tensor(1.0, dtype=torch.float64)
    ours = ddim_sigma(a_t.sqrt(), a_p.sqrt(), 1.0) ** 2  # σ² at η = 1, Su's form, float64
    ref = s._get_variance(t, tp).double()  # diffusers' form, float32
    # different formulas and precisions: diffusers rounds 1 − ā_t/ā_{t'} in float32 (cancellation
    # for adjacent levels, about 1e-7/β relative), hence 1e-4
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-9)


# ------------------------------------------------------------------ η = 0 determinism


def test_eta0_is_deterministic_and_ignores_noise():
    s = scheduler(S=10)
    x = dummy_sample((2, 3, 4, 4))
    a_t, a_p = s.alphas_cumprod[s.timesteps[2]], s.alphas_cumprod[s.timesteps[3]]
    eps = dummy_model(x, s.timesteps[2])
    z1, z2 = (torch.randn(x.shape, generator=torch.Generator().manual_seed(i)) for i in (1, 2))
    # exact: η = 0 adds no noise term, so the same operations run on the same inputs
    assert torch.equal(ddim_step(x, eps, a_t, a_p, 0.0, z1), ddim_step(x, eps, a_t, a_p, 0.0, z2))
    assert torch.equal(ddim_step(x, eps, a_t, a_p, 0.0, z1), ddim_step(x, eps, a_t, a_p))
    # whole chains: two generators, the same x_T
    xT = dummy_sample((2, 3, 4, 4))
    a = ddim_sample(
        dummy_model,
        xT.shape,
        s.alphas_cumprod,
        10,
        x_T=xT,
        show_progress=False,
        generator=torch.Generator().manual_seed(3),
    )
    b = ddim_sample(
        dummy_model,
        xT.shape,
        s.alphas_cumprod,
        10,
        x_T=xT,
        show_progress=False,
        generator=torch.Generator().manual_seed(4),
    )
    assert torch.equal(a, b)
    # and η > 0 does use the noise
    assert not torch.equal(ddim_step(x, eps, a_t, a_p, 1.0, z1), ddim_step(x, eps, a_t, a_p, 1.0, z2))


# ------------------------------------------------------------------ full loops (sum / mean)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("set_alpha_to_one", [True, False])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_full_loop_sum_and_mean(spacing, set_alpha_to_one, eta):
    # S = 10 divides T = 1000, where DDIMScheduler's previous timestep t − T//S is the scheduled one
    S = 10
    s = scheduler(spacing=spacing, set_alpha_to_one=set_alpha_to_one, S=S)
    x = dummy_sample()
    g = torch.Generator().manual_seed(5)
    noises = [torch.randn(x.shape, generator=g) for _ in range(S)] if eta > 0 else None
    ref = diffusers_loop(s, x.clone(), eta, noises)
    gen = torch.Generator().manual_seed(5)
    ours = ddim_sample(
        dummy_model,
        x.shape,
        s.alphas_cumprod,
        S,
        eta=eta,
        spacing=spacing,
        x_T=x,
        generator=gen,
        set_alpha_to_one=set_alpha_to_one,
        show_progress=False,
    )
    assert torch.equal(ours, ref)  # exact: the same float32 steps on the same inputs
    # diffusers' tests summarise a loop by its sum and mean; they agree as a consequence
    assert ours.abs().sum().item() == ref.abs().sum().item()
    assert ours.abs().mean().item() == ref.abs().mean().item()


def test_set_alpha_to_one_changes_only_the_last_step():
    x = dummy_sample()
    s1, s0 = scheduler(S=10), scheduler(set_alpha_to_one=False, S=10)
    ac = s1.alphas_cumprod
    one = ddim_sample(dummy_model, x.shape, ac, 10, spacing="leading", x_T=x, show_progress=False)
    zero = ddim_sample(
        dummy_model,
        x.shape,
        ac,
        10,
        spacing="leading",
        x_T=x,
        show_progress=False,
        set_alpha_to_one=False,
    )
    # both against diffusers (exact: same float32 steps), and they differ from each other
    assert torch.equal(one, diffusers_loop(s1, x.clone()))
    assert torch.equal(zero, diffusers_loop(s0, x.clone()))
    assert (one - zero).abs().max() > 1e-6  # ā_0 = 1 − 1e-4: a small change, far above rounding
    # the last step's target: ᾱ = 1, or the table's first entry
    t, tp = ddim_timestep_pairs(1000, 10, "leading")
    assert int(tp[-1]) == -1 and float(s0.final_alpha_cumprod) == float(ac[0])


# ------------------------------------------------------------------ half precision


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_half_precision_step_and_loop(dtype, spacing):
    s = scheduler(spacing=spacing, S=10)
    x = dummy_sample(dtype=dtype)
    # the example: the step from ā_0 ≈ 1 to the final ā = 1
    last = ddim_step(x, x, s.alphas_cumprod[0], 1.0)
    assert last.dtype == dtype and bool(torch.isfinite(last).all())
    ref_last = s.step(x, 0, x).prev_sample if spacing == "leading" else None
    if ref_last is not None:
        assert torch.equal(ddim_step(x, x, s.alphas_cumprod[0], s.final_alpha_cumprod), ref_last)
    ours = ddim_sample(dummy_model, x.shape, s.alphas_cumprod, 10, spacing=spacing, x_T=x, show_progress=False)
    ref = diffusers_loop(s, x.clone())
    assert ours.dtype == dtype and bool(torch.isfinite(ours).all())
    # exact: diffusers also keeps its float32 table and multiplies the half-precision samples
    assert torch.equal(ours, ref)
    ref32 = diffusers_loop(scheduler(spacing=spacing, S=10), dummy_sample())
    rel = ((ours.float() - ref32).norm() / ref32.norm()).item()
    assert rel < (0.05 if dtype == torch.bfloat16 else 0.01)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_every_spacing_is_finite(dtype):
    ac = scheduler().alphas_cumprod
    xT = dummy_sample((2, 3, 4, 4), dtype)
    for spacing in ("leading", "trailing", "linspace"):
        for S in (1, 7, 50):
            out = ddim_sample(dummy_model, xT.shape, ac, S, spacing=spacing, x_T=xT, show_progress=False)
            assert out.dtype == dtype and bool(torch.isfinite(out).all()), (spacing, S)
