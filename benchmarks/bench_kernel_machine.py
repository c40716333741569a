"""Empirical NTK: Jacobian contraction vs NTK-vector products (su_notes.dynamics.kernel_machine).

Peer: the two methods of PyTorch's *Neural Tangent Kernels* tutorial, re-implemented with `torch.func` (the
tutorial is not a package): `tutorial_jacobian_contraction` (per-example `vmap(jacrev)`, one einsum per parameter
tensor) is the baseline every ratio divides by; `tutorial_ntk_vps` (a vjp + jvp per *pair* of examples). Ours:
`empirical_ntk` (the same Jacobians, concatenated, one matrix product) and `empirical_ntk_vp` (one vjp through the
batch x2 and one jvp through the whole batch x1 per column). Models, float32, timed by `benchmarks/harness.py` in
interleaved rounds:
- `mlp-1d`: 1-64-64-1 tanh MLP (the notebook's 1-D regression, k = 1);
- `mlp-digits`: 64-128-128-10 MLP on sklearn digits (k = 10);
- `cnn-digits`: the tutorial's conv-conv-linear shape on 8×8 digits (k = 10).

    python benchmarks/bench_kernel_machine.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/kernel_machine-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.core import load_digits_tensors  # noqa: E402
from su_notes.dynamics.kernel_machine import empirical_ntk, empirical_ntk_vp  # noqa: E402

POST = "dynamics/20_kernel_machine.ipynb"  # its post (under nbs/): run_all.py links the two


def _single(model):
    return lambda p, x: functional_call(model, p, (x.unsqueeze(0),)).squeeze(0)


def tutorial_jacobian_contraction(model, params, x1, x2):
    "PyTorch NTK tutorial: vmap(jacrev) per example, einsum 'Naf,Mbf->NMab' per parameter tensor, summed."
    f = _single(model)
    j1 = [j.flatten(2) for j in vmap(jacrev(f), (None, 0))(params, x1).values()]
    j2 = [j.flatten(2) for j in vmap(jacrev(f), (None, 0))(params, x2).values()]
    return torch.stack([torch.einsum("Naf,Mbf->NMab", a, b) for a, b in zip(j1, j2)]).sum(0)


def tutorial_ntk_vps(model, params, x1, x2):
    "PyTorch NTK tutorial: for each pair (a, b) a vjp through f(a) and a jvp through f(b), over a basis."
    f = _single(model)

    def get_ntk(a, b):
        out, vjp_fn = vjp(lambda p: f(p, a), params)
        basis = torch.eye(out.numel(), dtype=out.dtype, device=out.device)
        return vmap(lambda v: jvp(lambda p: f(p, b), (params,), vjp_fn(v))[1])(basis)

    return vmap(vmap(get_ntk, (None, 0)), (0, None))(x1, x2)


def models(device):
    torch.manual_seed(0)
    mlp1 = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
    mlpd = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    cnn = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )
    X, _ = load_digits_tensors(device=device)
    x1d = torch.linspace(-3, 3, 256, device=device)[:, None]
    return {
        "mlp-1d": (mlp1.to(device), x1d),
        "mlp-digits": (mlpd.to(device), X),
        "cnn-digits": (cnn.to(device), X),
    }


def main(argv=None) -> str:
    p = bench_parser(__doc__, "one small batch size, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    sizes = [(8, 4)] if a.quick else [(8, 4), (32, 16)]  # (n1, n2)
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)

    res, rows, n_params = None, [], {}
    for name, (model, X) in models(device).items():
        model.eval()
        params = {n: q.detach() for n, q in model.named_parameters()}
        n_params[name] = sum(q.numel() for q in params.values())
        for n1, n2 in sizes:
            x1, x2 = X[:n1], X[-n2:]
            ref = tutorial_jacobian_contraction(model, params, x1, x2)
            # sanity: the four timed functions compute the same kernel
            for K in (
                empirical_ntk(model, x1, x2),
                empirical_ntk_vp(model, x1, x2),
                tutorial_ntk_vps(model, params, x1, x2),
            ):
                K = K[..., None, None] if K.ndim == 2 else K
                torch.testing.assert_close(K, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
            sl = f"{name}, n={n1}×{n2}"
            tasks = {
                "tutorial jacobian contraction": lambda m=model, q=params, a=x1, b=x2: tutorial_jacobian_contraction(
                    m, q, a, b
                ),
                "tutorial ntk_vps": lambda m=model, q=params, a=x1, b=x2: tutorial_ntk_vps(m, q, a, b),
                "empirical_ntk": lambda m=model, a=x1, b=x2: empirical_ntk(m, a, b),
                "empirical_ntk_vp": lambda m=model, a=x1, b=x2: empirical_ntk_vp(m, a, b),
            }
            res = interleaved(
                tasks,
                rounds=rounds,
                min_run_time=min_run_time,
                label="empirical NTK",
                sub_label=sl,
                rounds_out=res,
            )
            base = "tutorial jacobian contraction"
            rows.append(
                f"| {name} | {n_params[name]:,} | {ref.shape[-1]} | {n1}×{n2} "
                f"| {1e3 * res.median_s(base, sl):.2f} "
                f"| {ratio_cell(res.ratio('empirical_ntk', base, sl))} "
                f"| {ratio_cell(res.ratio('empirical_ntk_vp', base, sl))} "
                f"| {ratio_cell(res.ratio('tutorial ntk_vps', base, sl))} |"
            )
    quick = " **quick run (one small size, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Kernel machine: empirical NTK, Jacobian contraction vs NTK-vector products",
            "",
            machine_line(device),
            "",
            f"float32, models in eval mode; {rounds} interleaved rounds of "
            f"`blocked_autorange(min_run_time={min_run_time})`.{quick}",
            "",
            "| model | parameters P | outputs k | n1×n2 | tutorial Jacobian contraction (ms) | `empirical_ntk` "
            "| `empirical_ntk_vp` | tutorial NTK-vps |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Ratios = time / time of the tutorial's Jacobian contraction on the same inputs: median (min–max) of the "
            "per-round ratios (below 1 is faster). `empirical_ntk` uses the same per-example Jacobians and differs in "
            "the contraction (one matmul of concatenated Jacobians instead of one einsum per parameter tensor); the "
            "NTK-vp methods never store a Jacobian, trading memory for n2·k vjp/jvp passes (ours over the whole batch "
            "x1 at once, the tutorial's per pair of examples).",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("kernel_machine", device, md)
    return md


if __name__ == "__main__":
    print(main())
