"""Per-step overhead of the Self-Orthogonality penalty R (`su_notes.gan.orthogonality`) against BigGAN's orthogonal
regulariser, on the training step of an MLP discriminator.

BigGAN-PyTorch is not an installable package; its `utils.ortho(model, strength, blacklist)` is ported in
`biggan_ortho` below (after `backward()`, every ≥2-D parameter viewed as (k, -1) gets strength·2((WWᵀ)⊙(1−I))W
added to its `.grad`; `tests/test_orthogonality.py` checks the port against autograd).

Tasks, timed by `benchmarks/harness.py` in interleaved rounds, one Adam step each on the same model and batch:
- `plain`: forward, hinge-style loss relu(1 − D(x)).mean(), backward, step;
- `SOM`: the same plus `SOMRegularizer` on every hidden Linear layer (forward hooks; R from the batch's
  pre-activations, differentiated by autograd);
- `BigGAN ortho (hand grad)`: the same plus the ported `ortho` after backward, on the same hidden layers;
- `BigGAN ortho (autograd)`: the same plus `ortho_penalty(W)` on those layers added to the loss.
Reported: each step time over the plain step (the overhead factor), and SOM over BigGAN's hand-written gradient.
Sizes: batch × width × hidden layers, from the toy GAN's discriminator (256 × 64 × 2) up to 256 × 1024 × 3.

    python benchmarks/bench_orthogonality.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/orthogonality-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.gan.orthogonality import SOMRegularizer, ortho_penalty  # noqa: E402

POST = "gan/30_self_orthogonality.ipynb"  # its post (under nbs/): run_all.py links the two

# (batch, width, hidden layers)
FULL = [(256, 64, 2), (256, 256, 2), (256, 1024, 3)]
QUICK = [(64, 32, 2), (64, 128, 2)]


def biggan_ortho(params, strength=1e-4):
    "Port of BigGAN-PyTorch utils.ortho on a list of parameters: .grad += strength·2((WWᵀ)⊙(1−I))W."
    with torch.no_grad():
        for p in params:
            w = p.reshape(p.shape[0], -1)
            off = 1.0 - torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
            p.grad += strength * (2 * ((w @ w.t()) * off) @ w).reshape(p.shape)


def build(case, device):
    "Four copies of one discriminator (same weights), one per task, so that only the SOM copy carries hooks."
    b, width, depth = case

    def model_and_opt():
        torch.manual_seed(0)
        layers = [nn.Linear(2, width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(width, 1), nn.Flatten(0)).to(device)
        hidden = [m for m in model if isinstance(m, nn.Linear) and (m.in_features, m.out_features) == (width, width)]
        return model, hidden, torch.optim.Adam(model.parameters(), lr=1e-4)

    x = torch.randn(b, 2, generator=torch.Generator().manual_seed(1)).to(device)
    tasks = {}

    def plain():
        m, _, opt = plain.state
        opt.zero_grad(set_to_none=True)
        torch.relu(1 - m(x)).mean().backward()
        opt.step()

    def som():
        m, _, opt = som.state
        opt.zero_grad(set_to_none=True)
        (torch.relu(1 - m(x)).mean() + som.reg()).backward()
        opt.step()

    def biggan_hand():
        m, hidden, opt = biggan_hand.state
        opt.zero_grad(set_to_none=True)
        torch.relu(1 - m(x)).mean().backward()
        biggan_ortho([h.weight for h in hidden])
        opt.step()

    def biggan_auto():
        m, hidden, opt = biggan_auto.state
        opt.zero_grad(set_to_none=True)
        (torch.relu(1 - m(x)).mean() + 5e-5 * sum(ortho_penalty(h.weight) for h in hidden)).backward()
        opt.step()

    for fn in (plain, som, biggan_hand, biggan_auto):
        fn.state = model_and_opt()
    # the post's λ1 = 100, λ2 = 1 scaled by 1e-8 so that the weights stay sane over thousands of timed steps;
    # the cost of R does not depend on the λ's
    som.reg = SOMRegularizer(som.state[1], lam1=1e-6, lam2=1e-8)
    tasks = {
        "plain": plain,
        "SOM": som,
        "BigGAN ortho (hand grad)": biggan_hand,
        "BigGAN ortho (autograd)": biggan_auto,
    }
    return tasks, len(plain.state[1])


def main(argv=None) -> str:
    p = bench_parser(__doc__, "two small sizes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    res, labels = None, []
    for case in cases:
        tasks, n_hidden = build(case, device)
        sl = f"b={case[0]} width={case[1]} hidden={n_hidden}"
        labels.append((case, sl, n_hidden))
        res = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            label="discriminator step + penalty",
            sub_label=sl,
            rounds_out=res,
        )
    rows = [
        "| batch, width, regularised layers | plain step (ms) | SOM / plain | BigGAN hand / plain "
        "| BigGAN autograd / plain | SOM / BigGAN hand |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (b, width, _), sl, n_hidden in labels:
        rows.append(
            f"| {b}, {width}, {n_hidden} | {1e3 * res.median_s('plain', sl):.3f} "
            f"| {ratio_cell(res.ratio('SOM', 'plain', sl))} "
            f"| {ratio_cell(res.ratio('BigGAN ortho (hand grad)', 'plain', sl))} "
            f"| {ratio_cell(res.ratio('BigGAN ortho (autograd)', 'plain', sl))} "
            f"| {ratio_cell(res.ratio('SOM', 'BigGAN ortho (hand grad)', sl))} |"
        )
    quick = " **quick run (small sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Self-Orthogonality Module: per-step overhead vs BigGAN's orthogonal regulariser",
            "",
            machine_line(device),
            "",
            f"One Adam step of an MLP discriminator (2 → width → … → 1) on a batch, with each penalty on every "
            f"width × width layer; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            *rows,
            "",
            "Ratios: median (min–max) of the per-round ratios of median step times. SOM costs a tanh, a column "
            "normalisation and a (k × b)(b × k) product per layer and is differentiated by autograd; BigGAN's hand "
            "gradient costs two (k × k)(k × d) products per layer outside autograd. BigGAN-PyTorch's `utils.ortho` is "
            "ported in the script (not an installable package).",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("orthogonality", device, md)
    return md


if __name__ == "__main__":
    print(main())
