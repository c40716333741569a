"""Speed of `su_notes.generative.vae`: `gaussian_kl` and a VAE training step against `torch.distributions`.

Tasks, timed by `benchmarks/harness.py` in interleaved rounds:
- KL: forward + backward of KL(N(μ, diag σ²) ‖ N(0, I)) summed over the last axis, ours (`gaussian_kl` on
  (μ, log σ²)) against `kl_divergence(Independent(Normal(μ, σ), 1), Independent(Normal(0, 1), 1))` with
  σ = exp(½ log σ²), the way a VAE written with `torch.distributions` computes it. Both values are checked equal
  before timing.
- VAE step: one Adam step of the notebook's digits VAE (64 → 128 → 2·d encoder, d → 128 → 64 sigmoid decoder),
  ours (`VAE.loss` with `kl_weight`) against the same weights trained with the loss written through
  `torch.distributions` (`Normal.rsample` + `kl_divergence` + `F.mse_loss(reduction="sum")`), same batch and ε.

    python benchmarks/bench_vae.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/vae-<device>.md (unless --no-write).
"""

import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import (  # noqa: E402
    bench_parser,
    interleaved,
    machine_line,
    parse_bench_args,
    ratio_cell,
    write_result,
)
from su_notes.generative.vae import VAE, gaussian_kl  # noqa: E402

POST = "generative/10_vae_geometry.ipynb"  # its post (under nbs/): run_all.py links the two

KL_FULL, KL_QUICK = [(128, 2), (4096, 32), (65536, 64)], [(128, 2), (2048, 16)]
STEP_FULL, STEP_QUICK = [(128, 2), (512, 16)], [(128, 2)]  # (batch, latent_dim)
BETA = 0.05


def peer_kl(mu, logvar):
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return kl_divergence(q, p)


def kl_tasks(b, d, device):
    gen = torch.Generator(device=device).manual_seed(0)
    mu = torch.randn(b, d, generator=gen, device=device).requires_grad_(True)
    lv = torch.randn(b, d, generator=gen, device=device).requires_grad_(True)
    torch.testing.assert_close(gaussian_kl(mu, lv), peer_kl(mu, lv), rtol=1e-5, atol=1e-5)

    def ours():
        gaussian_kl(mu, lv).sum().backward()

    def theirs():
        peer_kl(mu, lv).sum().backward()

    return ours, theirs


def step_tasks(b, d, device):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 2 * d))
    dec = nn.Sequential(nn.Linear(d, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())
    ours = VAE(enc, dec, d).to(device)
    enc2, dec2 = copy.deepcopy(enc).to(device), copy.deepcopy(dec).to(device)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.rand(b, 64, generator=gen, device=device)
    eps = torch.randn(b, d, generator=gen, device=device)

    def their_loss():
        mu, lv = enc2(x).chunk(2, dim=-1)
        q = Normal(mu, (0.5 * lv).exp())
        z = mu + eps * q.scale  # = q.rsample() with this ε
        kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)
        return F.mse_loss(dec2(z), x, reduction="sum") / b + BETA * kl.mean()

    with torch.no_grad():
        torch.testing.assert_close(ours.loss(x, BETA, noise=eps), their_loss(), rtol=1e-5, atol=1e-5)
    opt_o = torch.optim.Adam(ours.parameters(), lr=1e-4)
    opt_t = torch.optim.Adam([*enc2.parameters(), *dec2.parameters()], lr=1e-4)

    def step_ours():
        opt_o.zero_grad(set_to_none=True)
        ours.loss(x, BETA, noise=eps).backward()
        opt_o.step()

    def step_theirs():
        opt_t.zero_grad(set_to_none=True)
        their_loss().backward()
        opt_t.step()

    return step_ours, step_theirs


def main(argv=None) -> str:
    p = bench_parser(__doc__, "small sizes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    kl_cases, step_cases = (KL_QUICK, STEP_QUICK) if a.quick else (KL_FULL, STEP_FULL)
    res = None
    for b, d in kl_cases:
        ours, theirs = kl_tasks(b, d, device)
        res = interleaved(
            {"gaussian_kl": ours, "torch.distributions KL": theirs},
            rounds=rounds,
            min_run_time=min_run_time,
            label="KL fwd+bwd",
            sub_label=f"kl b={b} d={d}",
            rounds_out=res,
        )
    for b, d in step_cases:
        ours, theirs = step_tasks(b, d, device)
        res = interleaved(
            {"VAE.loss step": ours, "torch.distributions step": theirs},
            rounds=rounds,
            min_run_time=min_run_time,
            label="VAE Adam step",
            sub_label=f"step b={b} d={d}",
            rounds_out=res,
        )
    rows = [
        "| task | batch, d | ours (µs) | torch.distributions (µs) | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for b, d in kl_cases:
        sl = f"kl b={b} d={d}"
        rows.append(
            f"| KL fwd+bwd | {b}, {d} | {1e6 * res.median_s('gaussian_kl', sl):,.1f} "
            f"| {1e6 * res.median_s('torch.distributions KL', sl):,.1f} "
            f"| {ratio_cell(res.ratio('gaussian_kl', 'torch.distributions KL', sl))} |"
        )
    for b, d in step_cases:
        sl = f"step b={b} d={d}"
        rows.append(
            f"| VAE Adam step | {b}, {d} | {1e6 * res.median_s('VAE.loss step', sl):,.1f} "
            f"| {1e6 * res.median_s('torch.distributions step', sl):,.1f} "
            f"| {ratio_cell(res.ratio('VAE.loss step', 'torch.distributions step', sl))} |"
        )
    quick = " **quick run (small sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### VAE: `gaussian_kl` and a training step vs `torch.distributions`",
            "",
            machine_line(device),
            "",
            f"{rounds} interleaved rounds of `blocked_autorange(min_run_time={min_run_time})`; values checked equal "
            f"before timing.{quick}",
            "",
            *rows,
            "",
            "Ratio = our time / the `torch.distributions` time: median (min–max) of the per-round ratios (< 1: ours "
            "faster). The KL rows isolate the closed form on (μ, log σ²) against `Independent(Normal)` objects "
            "(argument validation, σ = exp(½ log σ²) then log σ² again); the step rows include both MLPs and Adam, "
            "so a ratio near 1 is expected there.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("vae", device, md)
    return md


if __name__ == "__main__":
    print(main())
