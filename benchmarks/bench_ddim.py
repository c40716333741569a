"""DDIM sampling (su_notes.generative.ddim.ddim_sample) against a loop over diffusers' `DDIMScheduler.step`.

Both sides run the same chain: "leading" spacing (where diffusers' previous timestep is right), η = 0, Su's
betas (0.02·t/T, T = 1000) as `trained_betas`, `clip_sample=False`, the same x_T and the same model; the
outputs are checked bit-identical before timing. One task = one whole sampling run of S steps. Workloads:
- `fixed ε`: the model returns a precomputed tensor, so only the per-step arithmetic and bookkeeping is timed;
- `2-D MLP`: a random-init 3-layer MLP ε-network on n 2-D points (the notebook's setting);
- `UNet2DModel`: a small random-init diffusers UNet on a batch of images, where the network dominates and
  parity is expected.

    python benchmarks/bench_ddim.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/ddim-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.generative.ddim import ddim_sample  # noqa: E402

POST = "generative/30_ddim.ipynb"  # its post (under nbs/): run_all.py links the two

T = 1000


def mlp_model(width, device):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, width),
        torch.nn.SiLU(),
        torch.nn.Linear(width, width),
        torch.nn.SiLU(),
        torch.nn.Linear(width, 2),
    ).to(device)
    return lambda x, t: net(torch.cat([x, (t.to(x.dtype) / T)[:, None]], -1))


def unet_model(size, device):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = (
        UNet2DModel(
            sample_size=size,
            in_channels=3,
            out_channels=3,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=8,
        )
        .to(device)
        .eval()
    )
    return lambda x, t: unet(x, t).sample


def main(argv=None) -> str:
    p = bench_parser(__doc__, "small sizes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    from diffusers import DDIMScheduler

    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.4)
    betas = 0.02 * np.arange(1, T + 1) / T
    sched = DDIMScheduler(
        num_train_timesteps=T,
        trained_betas=betas,
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="leading",
    )
    table = sched.alphas_cumprod  # diffusers' own float32 table, on the CPU as it keeps it
    n_pts, S_mlp = (1_000, 20) if a.quick else (10_000, 50)
    img_b, img_size, S_img = (2, 16, 5) if a.quick else (8, 32, 20)
    gen = torch.Generator().manual_seed(0)
    work = []
    fixed = torch.randn(n_pts, 2, generator=gen).to(device)
    work.append((f"fixed ε, n = {n_pts:,} 2-D points, S = {S_mlp}", lambda x, t: fixed, (n_pts, 2), S_mlp))
    work.append(
        (
            f"2-D MLP (width 128), n = {n_pts:,}, S = {S_mlp}",
            mlp_model(128, device),
            (n_pts, 2),
            S_mlp,
        )
    )
    work.append(
        (
            f"UNet2DModel {img_size}×{img_size}×3, batch {img_b}, S = {S_img}",
            unet_model(img_size, device),
            (img_b, 3, img_size, img_size),
            S_img,
        )
    )

    res, rows = None, []
    for label, model, shape, S in work:
        xT = torch.randn(shape, generator=gen).to(device)

        def ours(model=model, shape=shape, S=S, xT=xT):
            with torch.no_grad():
                return ddim_sample(model, shape, table, S, spacing="leading", x_T=xT, show_progress=False)

        def peer(model=model, S=S, xT=xT):
            with torch.no_grad():
                sched.set_timesteps(S)
                x = xT
                for t in sched.timesteps:
                    x = sched.step(model(x, torch.full((x.shape[0],), int(t), device=x.device)), t, x).prev_sample
                return x

        if not torch.equal(ours(), peer()):
            raise AssertionError(f"{label}: outputs are not bit-identical")
        res = interleaved(
            {"su_notes ddim_sample": ours, "diffusers DDIMScheduler.step loop": peer},
            rounds=rounds,
            min_run_time=min_run_time,
            label="DDIM sampling run",
            sub_label=label,
            rounds_out=res,
        )
        r = res.ratio("su_notes ddim_sample", "diffusers DDIMScheduler.step loop", label)
        rows.append(
            f"| {label} | {1e3 * res.median_s('su_notes ddim_sample', label):.1f} "
            f"| {1e3 * res.median_s('diffusers DDIMScheduler.step loop', label):.1f} | {ratio_cell(r)} |"
        )
    quick = " **quick run (small sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### DDIM: `ddim_sample` vs a diffusers `DDIMScheduler.step` loop",
            "",
            machine_line(device),
            "",
            f"float32, η = 0, leading spacing, Su's betas; outputs bit-identical (checked); {rounds} "
            "interleaved rounds "
            f"of `blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            "| workload | su_notes (ms / run) | diffusers (ms / run) | time ratio su_notes / diffusers |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "Ratio = median (min–max) over rounds of the per-round ratio of median times; below 1 means `ddim_sample` "
            "is faster. The `fixed ε` row isolates the per-step overhead (diffusers' `step` builds an output "
            "dataclass, looks its table up and recomputes the variance each call); with a UNet the network dominates "
            "and the ratio should be close to 1.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("ddim", device, md)
    return md


if __name__ == "__main__":
    print(main())
