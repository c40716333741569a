"Cross-checks and bad-input tests for su_notes.core."

import math
import re
import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from hypothesis import given, strategies as st

from su_notes.core import (
    GaussianMixture,
    assert_close,
    check_arg,
    check_bool,
    check_callable,
    check_choice,
    check_dim,
    check_int,
    check_positive,
    check_real,
    check_tensor,
    default_device,
    describe,
    load_digits_tensors,
    make_gaussian_mixture_2d,
    progress,
    frechet_distance,
    seed_everything,
    set_plot_style,
    CLAIM_MIME,
    CLAIM_KINDS,
    REDUCTIONS,
    VERDICTS,
    record_claim,
    reduce_loss,
    sign_test,
    paired_verdict,
)


def test_mixture_log_prob_matches_scipy(device):
    gm = make_gaussian_mixture_2d("two")
    x = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    ref = sum(
        w * multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
        for w, m, c in zip(gm.weights.numpy(), gm.means, gm.covs)
    )
    lp = gm.log_prob(x.to(device))
    assert lp.device.type == device.type
    np.testing.assert_allclose(lp.cpu().numpy(), np.log(ref), rtol=1e-10)


def test_mixture_score_matches_autograd_3d(device):
    g = torch.Generator().manual_seed(1)
    A = torch.randn(3, 3, 3, dtype=torch.float64, generator=g)
    covs = A @ A.transpose(-1, -2) + 0.5 * torch.eye(3, dtype=torch.float64)
    gm = GaussianMixture(
        torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
        torch.randn(3, 3, dtype=torch.float64, generator=g),
        covs,
    )
    x = torch.randn(4, 5, 3, dtype=torch.float64, generator=g).to(device).requires_grad_()
    (auto,) = torch.autograd.grad(gm.log_prob(x).sum(), x)
    assert_close(gm.score(x.detach()), auto, rtol=1e-10, atol=1e-12)
    assert gm.log_prob(x).shape == (4, 5)


def test_noised_mixture_matches_scipy_per_point(device):
    "The law of a·X₀ + s·ε, one (a, s) per point, against scipy with the covariances built by hand."
    gm = make_gaussian_mixture_2d("two")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(30, 2, dtype=torch.float64, generator=g) * 2
    a = torch.rand(30, dtype=torch.float64, generator=g) + 0.1
    s = torch.rand(30, dtype=torch.float64, generator=g)
    ref = [
        np.log(
            sum(
                w * multivariate_normal(ai * m.numpy(), ai**2 * c.numpy() + si**2 * np.eye(2)).pdf(xi)
                for w, m, c in zip(gm.weights.numpy(), gm.means, gm.covs)
            )
        )
        for xi, ai, si in zip(x.numpy(), a.numpy(), s.numpy())
    ]
    lp = gm.noised_log_prob(x.to(device), a.to(device), s.to(device))
    np.testing.assert_allclose(lp.cpu().numpy(), ref, rtol=1e-10)
    xg = x.to(device).requires_grad_()
    (auto,) = torch.autograd.grad(gm.noised_log_prob(xg, a.to(device), s.to(device)).sum(), xg)
    assert_close(gm.noised_score(x.to(device), a.to(device), s.to(device)), auto, rtol=1e-10, atol=1e-12)
    one = gm.noised(0.5, 0.3)
    assert_close(one.log_prob(x), gm.noised_log_prob(x, 0.5, 0.3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kw, exc, msg",
    [
        (dict(scale=0.0, std=0.1), ValueError, "scale"),
        (dict(scale=1.0, std=-0.1), ValueError, "std"),
        (dict(scale=torch.ones(3), std=0.1), ValueError, "broadcast"),
    ],
)
def test_noised_mixture_bad_input(kw, exc, msg):
    gm = make_gaussian_mixture_2d("two")
    x = torch.zeros(5, 2, dtype=torch.float64)
    before = gm.means.clone()
    with pytest.raises(exc, match=msg):
        gm.noised_score(x, **kw)
    with pytest.raises(exc, match=msg):
        gm.noised_log_prob(x, **kw)
    if not isinstance(kw["scale"], torch.Tensor):
        with pytest.raises(exc, match=msg):
            gm.noised(**kw)
    with pytest.raises(ValueError, match="mixture dim"):
        gm.noised_score(torch.zeros(5, 3, dtype=torch.float64), 1.0, 0.1)
    assert torch.equal(gm.means, before)


def test_frechet_distance_matches_scipy_sqrtm(device):
    "FID's formula with scipy.linalg.sqrtm (the pytorch-fid route) as the independent peer."
    from scipy import linalg

    g = torch.Generator().manual_seed(6)
    x = torch.randn(800, 4, dtype=torch.float64, generator=g) @ torch.randn(4, 4, dtype=torch.float64, generator=g)
    y = torch.randn(600, 4, dtype=torch.float64, generator=g) * 2 + 0.5
    mx, my, cx, cy = x.mean(0).numpy(), y.mean(0).numpy(), np.cov(x.numpy().T), np.cov(y.numpy().T)
    covmean = linalg.sqrtm(cx @ cy).real
    ref = ((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * np.trace(covmean)
    got = frechet_distance(x.to(device), y.float().to(device))
    assert got.dtype == torch.float64 and got.ndim == 0 and got.device.type == device.type
    np.testing.assert_allclose(got.item(), ref, rtol=1e-6)


@pytest.mark.parametrize(
    "x, y, exc, msg",
    [
        ([[0.0, 1.0], [1.0, 0.0]], torch.zeros(3, 2), TypeError, "Invalid x"),
        (torch.zeros(1, 2), torch.zeros(3, 2), ValueError, "at least 2 samples"),
        (torch.zeros(4), torch.zeros(3, 2), ValueError, "Invalid x"),
        (torch.zeros(4, 2), torch.zeros(3, 3), ValueError, "same feature dim"),
        (torch.zeros(4, 2), torch.zeros(3, 2, dtype=torch.long), TypeError, "Invalid y"),
    ],
)
def test_frechet_distance_bad_input(x, y, exc, msg):
    with pytest.raises(exc, match=msg):
        frechet_distance(x, y)


def test_mixture_float32_and_sample_dtype():
    gm = make_gaussian_mixture_2d("ring", dtype=torch.float32)
    s = gm.sample(10, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.float32 and s.shape == (10, 2)
    assert gm.score(s).dtype == torch.float32


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(weights=torch.tensor([1.0, -1.0])), "Invalid weights"),
        (dict(means=torch.zeros(3, 2)), "Invalid means"),
        (dict(covs=torch.eye(2).expand(2, 2, 2).clone() * -1), "positive-definite"),
        (dict(covs=torch.eye(3).expand(2, 3, 3).clone()), "Invalid covs"),
    ],
)
def test_mixture_bad_input(kw, msg):
    args = dict(weights=torch.ones(2), means=torch.zeros(2, 2), covs=torch.eye(2).expand(2, 2, 2).clone())
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(**args)
    with pytest.raises(TypeError, match="torch.Tensor"):
        GaussianMixture([1.0, 1.0], args["means"], args["covs"])


def test_mixture_methods_bad_input_and_no_mutation():
    gm = make_gaussian_mixture_2d()
    x = torch.zeros(4, 3, dtype=torch.float64)
    before = x.clone()
    with pytest.raises(ValueError, match="mixture dim"):
        gm.score(x)
    with pytest.raises(TypeError, match="floating"):
        gm.log_prob(torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="Invalid n"):
        gm.sample(0)
    assert torch.equal(x, before)
    for kw, m in [
        (dict(kind="x"), "Invalid kind"),
        (dict(n_modes=0), "Invalid n_modes"),
        (dict(std=0.0), "Invalid std"),
    ]:
        with pytest.raises(ValueError, match=m):
            make_gaussian_mixture_2d(**kw)


def test_assert_close_relative_and_absolute():
    assert_close(1e6, 1e6 + 5, rtol=1e-5, atol=0)
    with pytest.raises(AssertionError):
        assert_close(1e6, 1e6 + 50, rtol=1e-5, atol=0)
    assert_close(0.0, 1e-9, rtol=0, atol=1e-8)
    with pytest.raises(AssertionError):
        assert_close(0.0, 1e-7, rtol=0, atol=1e-8)
    # Python floats are compared in float64, not rounded through float32
    with pytest.raises(AssertionError):
        assert_close(1.0, 1.0 + 1e-7, rtol=1e-9, atol=0)
    with pytest.raises(AssertionError, match="my prefix"):
        assert_close(1.0, 2.0, msg="my prefix")
    with pytest.raises(ValueError, match="Invalid atol"):
        assert_close(1.0, 1.0, atol=-1)


def test_check_helpers():
    with pytest.raises(ValueError, match=r"Invalid eps: -1 \(must be >= 0\)"):
        check_arg(False, "eps", -1, "must be >= 0")
    x = torch.ones(2, 3)
    assert check_tensor(x, "x", min_ndim=2) is x
    with pytest.raises(TypeError, match="got list"):
        check_tensor([1.0], "x")
    assert check_tensor(torch.arange(3), "idx", floating=False).dtype == torch.int64


def test_seed_everything_reproducible_and_validates():
    seed_everything(123)
    a = (np.random.rand(), torch.rand(2))
    seed_everything(123)
    b = (np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and torch.equal(a[1], b[1])
    for bad, exc in [(-1, ValueError), ("1", TypeError), (True, TypeError), (1.0, TypeError)]:
        with pytest.raises(exc, match="Invalid seed"):
            seed_everything(bad)


def test_default_device_order(monkeypatch):
    "CUDA first, then MPS, then CPU; an unavailable preference is an error, not a silent fallback."
    assert default_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
    with pytest.raises(RuntimeError, match="cuda"):
        default_device("cuda")
    with pytest.raises(RuntimeError, match="MPS"):
        default_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert default_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == torch.device("cuda")
    with pytest.raises(ValueError, match="Invalid prefer: 'gpu'"):
        default_device("gpu")


def test_digits_tensors():
    X, y = load_digits_tensors(torch.float64, normalize=False)
    assert X.dtype == torch.float64 and X.max() == 16 and y.dtype == torch.int64
    assert torch.bincount(y).min() > 170  # ~180 images per class
    with pytest.raises(TypeError, match="Invalid dtype"):
        load_digits_tensors("float32")


def test_progress_env_and_plot_style(monkeypatch, capsys):
    monkeypatch.setenv("SU_NOTES_PROGRESS", "0")
    assert progress(range(3)).disable is True
    monkeypatch.setenv("SU_NOTES_PROGRESS", "1")
    assert progress(range(3)).disable is False
    assert progress(range(3), show=False).disable is True
    assert list(progress(range(3))) == [0, 1, 2]
    with pytest.raises(TypeError, match="Invalid show: 1"):
        progress(range(3), show=1)
    import matplotlib as mpl

    set_plot_style(**{"lines.linewidth": 3.0})
    assert mpl.rcParams["lines.linewidth"] == 3.0 and mpl.rcParams["axes.grid"]
    with pytest.raises(ValueError, match="Invalid rcParams"):
        set_plot_style(bogus=1)


@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-10, 10),
    st.floats(-10, 10),
    st.booleans(),
    st.booleans(),
)
def test_check_real_property(x, lo, hi, lo_open, hi_open):
    """check_real accepts exactly the finite reals inside the bounds, returns them as float, and names the value
    otherwise."""
    lo, hi = min(lo, hi), max(lo, hi)
    inside = math.isfinite(x) and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if inside:
        assert check_real(x, "a", lo, hi, lo_open, hi_open) == x
    else:
        with pytest.raises(ValueError, match=rf"^Invalid a: {re.escape(repr(x))} \("):
            check_real(x, "a", lo, hi, lo_open, hi_open)


@pytest.mark.parametrize(
    "fn, bad, exc",
    [
        (check_real, True, TypeError),
        (check_real, None, TypeError),
        (check_real, "0.1", TypeError),
        (check_real, torch.tensor(0.1), TypeError),
        (check_positive, np.bool_(True), TypeError),
        (check_positive, -0.0, ValueError),
        (check_positive, float("inf"), ValueError),
        (check_int, 2.0, TypeError),
        (check_int, True, TypeError),
        (check_int, "2", TypeError),
        (check_bool, 0, TypeError),
        (check_bool, None, TypeError),
        (check_bool, "True", TypeError),
        (check_callable, None, TypeError),
        (check_callable, torch.zeros(3), TypeError),
    ],
)
def test_check_family_rejects_with_value(fn, bad, exc):
    with pytest.raises(exc, match=rf"^Invalid arg: {re.escape(describe(bad))} \("):
        fn(bad, "arg")


def test_check_helpers_returns_and_messages():
    assert check_int(np.int32(3), "n", low=1, high=3) == 3 and type(check_int(np.int32(3), "n")) is int
    with pytest.raises(ValueError, match=r"Invalid n: 4 \(must be <= 3\)"):
        check_int(4, "n", high=3)
    assert check_positive(0.0, "eps", allow_zero=True) == 0.0
    assert check_positive(float("inf"), "T", finite=False) == math.inf
    assert check_choice("cos", "kernel", ("elu1", "cos")) == "cos"
    with pytest.raises(ValueError, match=r"Invalid kernel: 'relu' \(expected one of \('elu1', 'cos'\)\)"):
        check_choice("relu", "kernel", ("elu1", "cos"))
    with pytest.raises(ValueError, match="Invalid kernel: \\['cos'\\]"):
        check_choice(["cos"], "kernel", ("cos",))
    assert check_dim(torch.ones(2, 3, 4), -2) == 1 and check_dim(torch.tensor(1.0), 0) == 0
    with pytest.raises(ValueError, match="Invalid axis: -4"):
        check_dim(torch.ones(2, 3, 4), -4, "axis")
    with pytest.raises(TypeError, match="Invalid dim: 1.0"):
        check_dim(torch.ones(2), 1.0)


def test_describe_never_prints_a_whole_tensor():
    big = torch.arange(10_000.0)
    assert len(describe(big)) < 100 and "10000" in describe(big)
    assert describe(torch.tensor([1.0, 2.0])).endswith("values=[1.0, 2.0])")
    assert len(describe("x" * 500)) == 80
    with pytest.raises(ValueError) as e:
        check_arg(False, "state_steps", [big], "must be 0-dim tensors")
    assert len(str(e.value)) < 150


def test_record_claim_outside_a_notebook_only_returns_the_record():
    "A plain process: no IPython import, nothing printed; the record is normalised and carries its JSON."
    import subprocess
    import sys

    code = (
        "import sys; from su_notes.core import record_claim; "
        "r = record_claim('A  claim\\nover lines.', 'x = 1.5e-3', 'caveat', kind='post'); "
        "print(r.claim, '|', r.measured, '|', r.verdict, '|', r.kind, '|', 'IPython' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "A claim over lines. | x = 1.5e-3 | caveat | post | False" and not out.stderr
    rec = record_claim("c", "2 of 3", "does not hold", kind="post", seeds=range(3), values={"wins": 2})
    assert rec[:4] == ("c", "2 of 3", "does not hold", "post") and rec.seeds == (0, 1, 2)
    assert set(VERDICTS) == {"holds", "caveat", "does not hold", "untested"} and CLAIM_KINDS == (
        "post",
        "check",
    )
    bundle = rec._repr_mimebundle_()
    js = bundle[CLAIM_MIME]
    assert {k: js[k] for k in ("claim", "measured", "verdict", "kind", "tolerance", "seeds", "values")} == {
        "claim": "c",
        "measured": "2 of 3",
        "verdict": "does not hold",
        "kind": "post",
        "tolerance": "",
        "seeds": [0, 1, 2],
        "values": {"wins": 2.0},
    }
    import json
    import platform

    assert json.loads(json.dumps(js)) == js  # plain JSON, as the docs build stores it
    assert js["provenance"]["torch"] == torch.__version__ and js["provenance"]["python"] == platform.python_version()
    assert js["provenance"]["device"] == "cpu" and re.fullmatch(r"\d{4}-\d\d-\d\d", js["provenance"]["date"])
    assert "does not hold" in bundle["text/markdown"] and bundle["text/plain"].startswith("Claim (does not hold)")


def test_record_claim_check_and_untested():
    chk = record_claim(
        "ours equals torch's",
        "max |Δ| = 2e-7",
        kind="check",
        tolerance="rtol 1e-6",
        values={"max_abs": torch.tensor(2e-7, dtype=torch.float64)},
        device=torch.device("cpu"),
    )
    assert chk.kind == "check" and chk.tolerance == "rtol 1e-6" and dict(chk.values) == {"max_abs": 2e-7}
    assert chk._repr_mimebundle_()["text/plain"].startswith("Check (holds)")
    assert record_claim("c", "1", kind="check", tolerance=1e-6).tolerance == "1e-06"
    unt = record_claim("better FID on faces", "no face data in a 2-D toy", "untested", kind="post")
    assert unt.verdict == "untested" and "?" in unt._repr_mimebundle_()["text/markdown"]


@pytest.mark.parametrize(
    "args, kw, exc, msg",
    [
        ((None, "1"), {}, TypeError, "Invalid claim: None (must be a string)"),
        (("", "1"), {}, ValueError, "Invalid claim: '' (must not be empty)"),
        (("c", 1.5), {}, TypeError, "Invalid measured: 1.5 (must be a string)"),
        (("c", " \t"), {}, ValueError, "Invalid measured: ' \\t' (must not be empty)"),
        (
            ("c", "about right"),
            {},
            ValueError,
            "Invalid measured: 'about right' (must state the measured number)",
        ),
        (
            ("c", "1", "fails"),
            {},
            ValueError,
            "Invalid verdict: 'fails' (expected one of ('holds', 'caveat', 'does not hold', 'untested'))",
        ),
        (("c", "1", None), {}, ValueError, "Invalid verdict: None"),
        (
            ("c", "1"),
            dict(kind="peer"),
            ValueError,
            "Invalid kind: 'peer' (expected one of ('post', 'check'))",
        ),
        (
            ("c", "1"),
            dict(kind="check"),
            ValueError,
            "Invalid tolerance: None (a check must state its tolerance)",
        ),
        (("c", "1"), dict(kind="check", tolerance=[1e-6]), TypeError, "Invalid tolerance: [1e-06]"),
        (("c", "1"), dict(seeds=[0, 1.0]), TypeError, "Invalid seeds: 1.0 (must be an int)"),
        (("c", "1"), dict(values=[1.0]), TypeError, "Invalid values: [1.0]"),
        (("c", "1"), dict(values={"x": float("inf")}), ValueError, "Invalid values: {'x': inf}"),
        (("c", "1"), dict(values={"x": "3"}), ValueError, "Invalid values: {'x': '3'}"),
    ],
)
def test_record_claim_bad_input(args, kw, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        record_claim(*args, **{"kind": "post", **kw})


def test_record_claim_kind_is_required():
    with pytest.raises(TypeError, match="kind"):
        record_claim("c", "1")


def test_reduce_loss_matches_torch_nn():
    g = torch.Generator().manual_seed(0)
    logits, y = (
        torch.randn(6, 4, dtype=torch.float64, generator=g),
        torch.tensor([0, 1, 3, 3, 2, 0]),
    )
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    for r in REDUCTIONS:
        assert_close(
            reduce_loss(per, r),
            torch.nn.functional.cross_entropy(logits, y, reduction=r),
            rtol=1e-13,
            atol=0,
        )
    w = torch.tensor([0.5, 1.0, 2.0, 1.0], dtype=torch.float64)
    for r in REDUCTIONS:  # class weights: "mean" is Σ w_i L_i / Σ w_i
        ref = torch.nn.functional.cross_entropy(logits, y, weight=w, reduction=r)
        assert_close(reduce_loss(per, r, w[y]), ref, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "args, exc, msg",
    [
        (([1.0], "sum"), TypeError, "Invalid loss"),
        ((torch.ones(2), "avg"), ValueError, "Invalid reduction: 'avg'"),
        ((torch.ones(2), None), ValueError, "Invalid reduction: None"),
        ((torch.ones(2), "mean", [1.0, 2.0]), TypeError, "Invalid weight"),
    ],
)
def test_reduce_loss_bad_input(args, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        reduce_loss(*args)


def test_noised_mixture_validate_args_flag():
    "Tensor scale/std values are checked (a host read) only behind validate_args; numbers are always checked."
    gm = make_gaussian_mixture_2d("two")
    x = torch.zeros(3, 2, dtype=torch.float64)
    bad = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="Invalid scale"):
        gm.noised_score(x, bad, 0.1)
    out = gm.noised_score(x, bad, 0.1, validate_args=False)  # unchecked: garbage in, no error, no sync
    assert out.shape == (3, 2)
    quiet = GaussianMixture(gm.weights, gm.means, gm.covs, validate_args=False)
    quiet.noised_log_prob(x, bad, 0.1)
    assert quiet.noised(0.5, 0.1).validate_args is False
    with pytest.raises(ValueError, match="Invalid scale"):
        quiet.noised_score(x, -1.0, 0.1)  # a number: no sync
    with pytest.raises(TypeError, match="validate_args"):
        GaussianMixture(gm.weights, gm.means, gm.covs, validate_args=1)


@pytest.mark.parametrize("n", [1, 5, 10, 23])
def test_sign_test_matches_scipy_binomtest(n):
    from scipy.stats import binomtest

    for k in range(n + 1):
        assert_close(sign_test(k, n), binomtest(k, n, 0.5, alternative="greater").pvalue, rtol=1e-12, atol=0)


def test_paired_verdict_rule_returns_every_verdict():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(10, generator=g, dtype=torch.float64)
    assert paired_verdict(base - 0.1, base)[-1] == "holds"  # 10/10 lower: p = 2^-10
    assert paired_verdict(base + 0.1, base)[-1] == "does not hold"
    mixed = base + torch.tensor([-0.1, 0.1] * 5, dtype=torch.float64)
    assert paired_verdict(mixed, base)[2:] == (sign_test(5, 10), sign_test(5, 10), "caveat")
    assert paired_verdict(base, base)[:2] == (0, 0)  # all ties: no evidence either way


@pytest.mark.parametrize(
    "args, kw, exc, msg",
    [
        (([], []), {}, ValueError, "Invalid ours"),
        (([1.0], [1.0, 2.0]), {}, ValueError, "Invalid theirs"),
        (([1.0], [float("inf")]), {}, ValueError, "must be finite"),
        (([1.0], [2.0]), dict(alpha=0), ValueError, "Invalid alpha: 0"),
        (([1.0], [2.0]), dict(higher_is_better=1), TypeError, "Invalid higher_is_better: 1"),
    ],
)
def test_paired_verdict_bad_input(args, kw, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        paired_verdict(*args, **kw)


@pytest.mark.parametrize("args, exc", [((1.0, 3), TypeError), ((-1, 3), ValueError), ((2, -1), ValueError)])
def test_sign_test_bad_input(args, exc):
    with pytest.raises(exc):
        sign_test(*args)
