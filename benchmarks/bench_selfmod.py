"""Generator training-step time of a self-modulated DCGAN generator against the same generator with batch norm.

`su_notes.gan.selfmod.DCGANGenerator(self_modulation=True)` replaces every `nn.BatchNorm2d(eps=1e-3,
momentum=0.001)` by a `SelfModBatchNorm2d` (hidden width 32, the authors' default); everything else is the same,
weights included (one seed builds both trunks). The peer is PyTorch's own `nn.BatchNorm2d`: what SELF-MOD costs
on top of it is the modulation MLP of every norm layer and the per-sample scale and shift instead of a per-channel
one.

Task, timed by `benchmarks/harness.py` in interleaved rounds: one generator step = sample z, forward, a fixed
linear "critic" on the images (a stand-in for D, identical for both), backward, `torch.optim.Adam` step. Sizes: the
notebook's small generator, a 32×32 CIFAR-like DCGAN and a 64×64 one (on CUDA only in the full run).

    python benchmarks/bench_selfmod.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/selfmod-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.gan.selfmod import DCGANGenerator  # noqa: E402

POST = "gan/10_self_modulation.ipynb"  # its post (under nbs/): run_all.py links the two

# (batch, z_dim, image size, base channels, out channels)
FULL_CPU = [(64, 32, 16, 64, 1), (64, 128, 32, 128, 3)]
FULL_CUDA = [(64, 32, 16, 64, 1), (64, 128, 32, 256, 3), (64, 128, 64, 512, 3)]
QUICK = [(16, 16, 8, 16, 1), (16, 32, 16, 32, 3)]


def build(case, device, self_modulation):
    b, z_dim, size, base, out_ch = case
    torch.manual_seed(0)
    g = DCGANGenerator(z_dim, out_ch, size, base, kernel_size=4, self_modulation=self_modulation).to(device)
    opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.9))
    critic = torch.randn(out_ch, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    gen = torch.Generator(device=device).manual_seed(2)

    def step():
        z = torch.randn(b, z_dim, generator=gen, device=device)
        loss = -(g(z) * critic).mean()  # a fixed linear critic: the same work for both generators
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return g, step


def main(argv=None) -> str:
    p = bench_parser(__doc__, "two tiny sizes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else (FULL_CUDA if device.type == "cuda" else FULL_CPU)
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)

    res, rows = None, []
    for case in cases:
        g_sm, step_sm = build(case, device, True)
        g_bn, step_bn = build(case, device, False)
        with torch.no_grad():  # same function before timing (zero-initialised heads)
            z = torch.randn(4, case[1], generator=torch.Generator().manual_seed(3)).to(device)
            torch.testing.assert_close(g_sm(z), g_bn(z), rtol=1e-4, atol=1e-5)
        n_sm, n_bn = (sum(q.numel() for q in g.parameters()) for g in (g_sm, g_bn))
        sl = "b={} z={} {}x{} C0={} out={}".format(case[0], case[1], case[2], case[2], case[3], case[4])
        res = interleaved(
            {"SELF-MOD step": step_sm, "BN step": step_bn},
            rounds=rounds,
            min_run_time=min_run_time,
            label="DCGAN generator step",
            sub_label=sl,
            rounds_out=res,
        )
        rows.append((case, sl, n_sm, n_bn))

    table = [
        "| batch, z_dim, image, base channels, out channels | params SELF-MOD / BN | SELF-MOD (ms) "
        "| BN (ms) | ratio SELF-MOD / BN |",
        "|---|---:|---:|---:|---:|",
    ]
    for (b, z_dim, size, base, out_ch), sl, n_sm, n_bn in rows:
        table.append(
            f"| {b}, {z_dim}, {size}×{size}, {base}, {out_ch} | {n_sm:,} / {n_bn:,} "
            f"| {1e3 * res.median_s('SELF-MOD step', sl):.2f} | {1e3 * res.median_s('BN step', sl):.2f} "
            f"| {ratio_cell(res.ratio('SELF-MOD step', 'BN step', sl))} |"
        )
    quick = " **quick run (tiny sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### SELF-MOD: generator step time vs the same DCGAN generator with `nn.BatchNorm2d`",
            "",
            machine_line(device),
            "",
            f"One generator step (forward, fixed linear critic, backward, Adam); {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            *table,
            "",
            "Ratio = SELF-MOD time / BN time: median (min–max) of the per-round ratios (> 1: SELF-MOD slower). Both "
            "generators have the same trunk weights and compute the same function at initialisation (checked before "
            "timing); the difference is the modulation MLP (hidden width 32) of each norm layer.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("selfmod", device, md)
    return md


if __name__ == "__main__":
    print(main())
