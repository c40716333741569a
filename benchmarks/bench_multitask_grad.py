"""`su_notes.optim.multitask_grad` against LibMTL 1.1.5: MGDA's min-norm solver and PCGrad.

MGDA: `min_norm_weights(g @ g.T)` (Gram matrix, then the away-step Frank-Wolfe solver on T×T tensors, no host
sync in its loop on accelerators) against LibMTL's `MGDA._find_min_norm_element(g)` (the same Gram matrix, then
the reference solver, which reads tensors back to the host several times per step). Both start from the
(T, P) float32 gradient matrix and return α. Also timed: the Gram matrix alone and our solver alone on a given
G, to show where the time goes. PCGrad: `pcgrad(g)` (projections on G, one combination) against LibMTL's
`PCGrad.backward` fed the same gradients (T² dot products and updates on P-vectors), summed update out.
Sizes T ∈ {2, 4, 8, 16}, P ∈ {1e4, 1e6} (+ 25M at T = 8 on the CPU; all T on CUDA). Every problem is checked
first: both solvers agree in value and LibMTL's loop ends by itself (its iteration cap does not work).

    python benchmarks/bench_multitask_grad.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/multitask_grad-<device>.md (unless --no-write).
"""

import random
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE.parent / "tests"))  # peers.load_submodule
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from peers import load_submodule  # noqa: E402
from su_notes.optim.multitask_grad import min_norm_weights, pcgrad  # noqa: E402

POST = "optim/80_multitask_gradients.ipynb"  # its post (under nbs/): run_all.py links the two

FULL_CPU = [(T, P) for P in (10_000, 1_000_000) for T in (2, 4, 8, 16)] + [(8, 25_000_000)]
FULL_CUDA = [(T, P) for P in (10_000, 1_000_000, 25_000_000) for T in (2, 4, 8, 16)]
QUICK = [(2, 10_000), (8, 10_000)]


class _Cap(TorchFunctionMode):
    "Raise after `cap` calls of torch.matmul (one per step of LibMTL's MGDA loop): a loop that does not end."

    def __init__(self, cap):
        super().__init__()
        self.cap, self.n = cap, 0

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "matmul":
            self.n += 1
            if self.n > self.cap:
                raise RuntimeError("LibMTL's MGDA loop did not end")
        return func(*args, **(kwargs or {}))


def make_grads(T, P, device, seed=0):
    "Float32 task gradients with a shared component and unequal scales (made on the device)."
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(T, P, generator=g, device=device) + 0.5 * torch.randn(1, P, generator=g, device=device)
    return x * (0.1 + 2.9 * torch.rand(T, 1, generator=g, device=device))


def libmtl_pcgrad_fn(grads):
    "A zero-argument call of LibMTL's PCGrad.backward on fixed gradients; returns the summed update."
    pc = load_submodule("LibMTL.weighting.PCGrad").PCGrad()
    out = {}
    pc.task_num, pc.rep_grad = grads.shape[0], False
    pc._compute_grad_dim = lambda: None
    pc._compute_grad = lambda losses, mode: grads  # their code clones it before projecting
    pc._reset_grad = lambda new: out.__setitem__("g", new)

    def run():
        pc.backward([None] * grads.shape[0])
        return out["g"]

    return run


def main(argv=None) -> str:
    p = bench_parser(__doc__, "small sizes, 3 short rounds (smoke test)", threads=True, rounds=False)
    a, device = parse_bench_args(p, argv)
    cases = QUICK if a.quick else (FULL_CUDA if device.type == "cuda" else FULL_CPU)
    mgda = load_submodule("LibMTL.weighting.MGDA").MGDA()
    random.seed(0)  # LibMTL's PCGrad shuffles with Python's random

    res, rows = None, []
    for T, P in cases:
        rounds, min_run_time = (3, 0.05) if a.quick else ((5, 0.3) if P > 10**7 else (7, 0.2))
        g = make_grads(T, P, device)
        G = g @ g.T
        cap = _Cap(20_000)
        with cap:
            peer_alpha = mgda._find_min_norm_element(g)  # ends by itself? (else raises)
        ours_alpha = min_norm_weights(G)
        Gd = G.double()
        f_peer = (peer_alpha.double() @ Gd @ peer_alpha.double()).item()
        f_ours = (ours_alpha.double() @ Gd @ ours_alpha.double()).item()
        assert f_ours <= f_peer * (1 + 1e-5) and f_peer <= f_ours * (1 + 1e-3), (
            T,
            P,
            f_ours,
            f_peer,
        )
        gen = torch.Generator(device=device)
        lib_pc = libmtl_pcgrad_fn(g)
        if T == 2:
            torch.testing.assert_close(pcgrad(g), lib_pc(), rtol=1e-4, atol=1e-5 * g.abs().max().item())
        else:
            torch.testing.assert_close(pcgrad(g).norm(), lib_pc().norm(), rtol=1.0, atol=0)  # orders differ
        sl = f"T={T} P={P:.0e}"
        tasks = {
            "ours MGDA": lambda: min_norm_weights(g @ g.T),
            "LibMTL MGDA": lambda: mgda._find_min_norm_element(g),
            "Gram only": lambda: g @ g.T,
            "ours solver on G": lambda: min_norm_weights(G),
            "ours PCGrad": lambda: pcgrad(g, gen.manual_seed(0)),
            "LibMTL PCGrad": lib_pc,
        }
        res = interleaved(
            tasks,
            rounds=rounds,
            min_run_time=min_run_time,
            label="multi-task gradients",
            sub_label=sl,
            rounds_out=res,
        )
        rows.append(
            f"| {T} | {P:,} | {cap.n} | {res.median_s('ours MGDA', sl) * 1e3:.3f} "
            f"| {res.median_s('LibMTL MGDA', sl) * 1e3:.3f} | {res.median_s('Gram only', sl) * 1e3:.3f} "
            f"| {res.median_s('ours solver on G', sl) * 1e3:.3f} "
            f"| {ratio_cell(res.ratio('LibMTL MGDA', 'ours MGDA', sl))} "
            f"| {ratio_cell(res.ratio('LibMTL PCGrad', 'ours PCGrad', sl))} |"
        )
        g = G = None  # free the gradients before the next case (the lambdas above are done with them)
    quick = " **quick run (small sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Multi-task gradients: MGDA and PCGrad on the Gram matrix vs LibMTL 1.1.5",
            "",
            machine_line(device),
            "",
            f"float32 gradients (T, P); interleaved rounds of `blocked_autorange`.{quick}",
            "",
            "| T | P | LibMTL MGDA steps | ours MGDA (ms) | LibMTL MGDA (ms) | Gram `g @ g.T` (ms) "
            "| ours solver on G (ms) | speed-up MGDA | speed-up PCGrad |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Speed-up = LibMTL time / our time on the same gradients: median (min–max) of the per-round ratios "
            "(> 1: ours faster). Both MGDA rows include the Gram matrix; where it dominates (large P on the CPU) "
            "the ratio tends to 1. LibMTL MGDA steps: calls of its loop body on that problem (its `MAX_ITER = 250` "
            "is never enforced).",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("multitask_grad", device, md)
    return md


if __name__ == "__main__":
    print(main())
