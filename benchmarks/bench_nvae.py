"""Spectral-regulariser σ_max estimates: `su_notes.generative.nvae.batched_power_iteration` (one `bmm` pipeline per
weight shape) vs per-layer `torch.nn.utils.parametrizations.spectral_norm`.

The work timed is what a training step of NVAE's spectral regulariser needs: one warm-started power-iteration
round for every layer and the estimate σ̂ of every layer. Tasks (one timed call = all layers once):
  - `spectral_norm per layer`: the peer — every layer wrapped in `parametrizations.spectral_norm(n_power_iterations=1)`
    in training mode, `module.weight` read for each (one round on its stored vectors, then W / σ̂);
  - `batched (ours)`: `batched_power_iteration(weights, 1, state=state)` on the same weights, persistent `state`;
  - `ours, one call per layer`: the same function called once per weight (isolates the batching from the rest).
Before timing, ours is run for 1000 rounds and checked against `torch.linalg.svdvals` (relative 1e-5), the peer
for 200 rounds (below σ_max by at most 0.5%: random conv weights have σ2/σ1 ≈ 0.997). Cases, float32, no gradients:
  (a) NVAE-like convolutional cells: 24 × (64, 64, 3, 3), 16 × (128, 128, 3, 3), 8 × (64, 64, 1, 1)
      (48 layers, 3 shapes);
  (b) many small MLP layers: 96 × (64, 64) and 32 × (64, 128) (128 layers, 2 shapes).
Ratios = time / spectral_norm's time, median (min–max) of the per-round ratios of `harness.interleaved` (< 1: faster).

    python benchmarks/bench_nvae.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/nvae-<device>.md (unless --no-write).
--quick: a quarter of the layers in each case, 3 short rounds — a smoke test, labelled as such.
"""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.generative.nvae import batched_power_iteration  # noqa: E402

POST = "generative/20_nvae.ipynb"  # its post (under nbs/): run_all.py links the two

CASES = {
    "NVAE-like convs": [((64, 64, 3, 3), 24), ((128, 128, 3, 3), 16), ((64, 64, 1, 1), 8)],
    "small MLP layers": [((64, 64), 96), ((64, 128), 32)],
}


def make_layer(shape):
    if len(shape) == 4:
        return nn.Conv2d(shape[1], shape[0], shape[2], bias=False)
    return nn.Linear(shape[1], shape[0], bias=False)


def build(spec, device, scale):
    torch.manual_seed(0)
    shapes = [s for s, k in spec for _ in range(max(1, k // scale))]
    mods = [spectral_norm(make_layer(s).to(device), n_power_iterations=1).train() for s in shapes]
    weights = [m.parametrizations.weight.original.detach() for m in mods]
    state = {}
    with torch.no_grad():
        for _ in range(200):
            for m in mods:
                m.weight
        ours = batched_power_iteration(weights, 1000, state=state)
        peer = torch.stack(
            [
                torch.vdot(
                    m.parametrizations.weight[0]._u,
                    w.reshape(w.shape[0], -1) @ m.parametrizations.weight[0]._v,
                )
                for m, w in zip(mods, weights)
            ]
        )
        exact = torch.stack([torch.linalg.svdvals(w.reshape(w.shape[0], -1))[0] for w in weights])
    # same numbers before timing: ours after 1000 rounds at svdvals' σ_max; the peer after 200 rounds close below it
    rel, rel_peer = ours / exact - 1, peer / exact - 1
    assert bool((rel.abs() <= 1e-5).all()), (rel.min().item(), rel.max().item())
    assert bool((rel_peer <= 1e-5).all()) and bool((rel_peer >= -5e-3).all()), (
        rel_peer.min().item(),
        rel_peer.max().item(),
    )
    per_state = [dict() for _ in weights]
    with torch.no_grad():
        for w, s in zip(weights, per_state):
            batched_power_iteration([w], 5, state=s)

    def peer_step():
        with torch.no_grad():
            for m in mods:
                m.weight

    def ours_step():
        with torch.no_grad():
            batched_power_iteration(weights, 1, state=state)

    def ours_loop():
        with torch.no_grad():
            for w, s in zip(weights, per_state):
                batched_power_iteration([w], 1, state=s)

    return (
        {
            "spectral_norm per layer": peer_step,
            "batched (ours)": ours_step,
            "ours, one call per layer": ours_loop,
        },
        len(shapes),
        len({s for s, _ in spec}),
    )


def main(argv=None) -> str:
    p = bench_parser(__doc__, "a quarter of the layers, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    rounds, min_run_time, scale = (3, 0.05, 4) if a.quick else (7, 0.3, 1)
    res, rows = None, []
    for name, spec in CASES.items():
        tasks, n_layers, n_shapes = build(spec, device, scale)
        res = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            label="σ_max of every layer, 1 round",
            sub_label=name,
            rounds_out=res,
        )
        peer_ms = 1e3 * res.median_s("spectral_norm per layer", name)
        rows.append(
            f"| {name} ({n_layers} layers, {n_shapes} shapes) | {peer_ms:.3f} "
            f"| {ratio_cell(res.ratio('batched (ours)', 'spectral_norm per layer', name))} "
            f"| {ratio_cell(res.ratio('ours, one call per layer', 'spectral_norm per layer', name))} |"
        )
    quick = (
        " **quick run (a quarter of the layers, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    )
    md = "\n".join(
        [
            "### NVAE: batched power iteration vs per-layer `spectral_norm`",
            "",
            machine_line(device),
            "",
            f"One warm-started power-iteration round and σ̂ for every layer, float32, no gradients; {rounds} "
            "interleaved "
            f"rounds of `blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            "| case | spectral_norm (ms) | batched (ours) / spectral_norm | ours per layer / spectral_norm |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "Ratio = time / the per-layer `spectral_norm` time: median (min–max) of the per-round ratios (< 1: "
            "faster). "
            "`spectral_norm` also forms W / σ̂ for each layer (it normalises the weight; NVAE's regulariser needs only "
            "σ̂); the last column is our function called once per layer, which separates the gain of batching by shape "
            "from that difference.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("nvae", device, md)
    return md


if __name__ == "__main__":
    print(main())
