"""AM-Softmax at 10^5–10^6 classes: `am_softmax_loss(..., chunk_size=k)` (running logsumexp over chunks of k
classes, custom backward that recomputes each chunk) against pytorch-metric-learning 2.9.0's
`losses.CosFaceLoss(C, d, margin=0.35, scale=30)`, which builds the full (b, C) cosine matrix and several
(b, C) temporaries (mask, logits, log-softmax) and keeps them for the backward pass.

One unit of work = forward + backward with respect to the embeddings and the class weights, float32. Values
and gradients are checked equal (rtol 1e-4) before timing. Times come from `benchmarks/harness.py`
(interleaved rounds of `blocked_autorange`). Peak memory is measured, not estimated: each method runs one
forward + backward in a fresh child process, after the inputs are built; the figure is the peak resident set
during the call (VmHWM, reset just before it through /proc/self/clear_refs) minus the resident set just before
it. The analytic size of one (b, C) float32 matrix is given beside it.

    python benchmarks/bench_am_softmax.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/am_softmax-<device>.md (unless --no-write).
"""

import json
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from pytorch_metric_learning import losses  # noqa: E402
from su_notes.text.am_softmax import am_softmax_loss  # noqa: E402

POST = "text/20_am_softmax.ipynb"  # its post (under nbs/): run_all.py links the two

B, D, CHUNK = 64, 64, 8192
FULL = [100_000, 1_000_000]
QUICK = [20_000]


def inputs(C, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(B, D, generator=g).to(device).requires_grad_()
    W = torch.randn(C, D, generator=g).to(device).requires_grad_()
    t = torch.randint(0, C, (B,), generator=g).to(device)
    return emb, W, t


def make_tasks(C, device):
    emb, W, t = inputs(C, device)
    peer = losses.CosFaceLoss(C, D, margin=0.35, scale=30).to(device)
    peer.W = torch.nn.Parameter(W.detach().T.clone())  # same class vectors, PML's (d, C) layout

    def ours():
        emb.grad = W.grad = None
        am_softmax_loss(emb, W, t, chunk_size=CHUNK).backward()

    def pml():
        emb.grad = peer.W.grad = None
        peer(emb, t).backward()

    return ours, pml, (emb, W, t, peer)


def check_equal(C, device):
    emb, W, t = inputs(C, device)
    peer = losses.CosFaceLoss(C, D, margin=0.35, scale=30).to(device)
    peer.W = torch.nn.Parameter(W.detach().T.clone())
    e2 = emb.detach().clone().requires_grad_()
    a = am_softmax_loss(emb, W, t, chunk_size=CHUNK)
    a.backward()
    r = peer(e2, t)
    r.backward()
    for x, y in [(a, r), (emb.grad, e2.grad), (W.grad, peer.W.grad.T)]:
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4 * y.abs().max().item())


CHILD = r"""
import json, resource, sys
sys.path[:0] = {paths!r}
import torch
torch.set_num_threads({threads})
import bench_am_softmax as bm
ours, pml, _ = bm.make_tasks({C}, torch.device("{device}"))
def status_kib(key):
    line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
    return int(line.split()[1])
# building the inputs (and PML's own random W) peaks above what one step needs: reset the peak (Linux
# clear_refs "5" resets VmHWM) so that the figure is the step's own, then read it back
open("/proc/self/clear_refs", "w").write("5")
base = status_kib("VmRSS")
on_cuda = torch.cuda.is_available() and "{device}" == "cuda"
if on_cuda:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
base_cuda = torch.cuda.memory_allocated() if on_cuda else 0
if "{which}" == "ours": ours()
elif "{which}" == "pml": pml()
peak = status_kib("VmHWM")
cuda = torch.cuda.max_memory_allocated() - base_cuda if on_cuda else 0
print(json.dumps({{"extra_kib": peak - base, "cuda_bytes": cuda}}))
"""


def peak_memory(C, device, which):
    "MiB above the inputs' footprint for one forward + backward of `which`, in a fresh process."
    code = CHILD.format(
        paths=[str(HERE.parent), str(HERE)],
        threads=torch.get_num_threads(),
        C=C,
        device=device,
        which=which,
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return (r["cuda_bytes"] / 2**20 if device.type == "cuda" else r["extra_kib"] / 1024), None


def main(argv=None) -> str:
    p = bench_parser(__doc__, "C = 20,000 only, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    sizes = QUICK if a.quick else FULL
    rounds, min_run_time = (3, 0.05) if a.quick else (5, 0.5)
    res, rows = None, []
    for C in sizes:
        check_equal(C, device)
        ours, pml, _ = make_tasks(C, device)
        sl = f"C={C:,}"
        res = interleaved(
            {"chunked (ours)": ours, "CosFaceLoss (PML)": pml},
            rounds=rounds,
            min_run_time=min_run_time,
            label="AM-Softmax forward+backward",
            sub_label=sl,
            rounds_out=res,
            warmup=1,
        )
        mem = {w: peak_memory(C, device, w) for w in ("ours", "pml")}
        r = res.ratio("CosFaceLoss (PML)", "chunked (ours)", sl)
        cell = lambda m: f"{m[0]:,.0f}" if m[0] is not None else f"failed: {m[1]}"
        rows.append(
            f"| {C:,} | {res.median_s('chunked (ours)', sl) * 1e3:,.1f} "
            f"| {res.median_s('CosFaceLoss (PML)', sl) * 1e3:,.1f} | {ratio_cell(r)} "
            f"| {cell(mem['ours'])} | {cell(mem['pml'])} | {B * C * 4 / 2**20:,.0f} "
            f"| {C * D * 4 / 2**20:,.0f} |"
        )
        del ours, pml
    quick = " **quick run (C = 20,000, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    mem_how = (
        "peak `torch.cuda.max_memory_allocated` during the call minus the allocation before it"
        if device.type == "cuda"
        else "peak resident set during the call (VmHWM, reset before it) minus the resident set before it"
    )
    md = "\n".join(
        [
            "### AM-Softmax: chunked logsumexp (`am_softmax_loss(chunk_size=8192)`) vs pytorch-metric-learning's "
            "`CosFaceLoss`",
            "",
            machine_line(device),
            "",
            f"b = {B}, d = {D}, float32, forward + backward with respect to embeddings and class weights; "
            f"{rounds} interleaved rounds of `blocked_autorange(min_run_time={min_run_time})`; values and "
            f"gradients checked equal (rtol 1e-4) before timing.{quick}",
            "",
            "| classes C | ours (ms) | PML (ms) | speed-up (PML time / ours) | ours extra MiB | PML extra MiB "
            "| one (b, C) fp32 matrix, MiB | weight (C, d) fp32, MiB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Speed-up: median (min–max) of per-round ratios (> 1: ours faster). Extra memory: {mem_how}, one "
            "forward + backward each; it includes the weight's gradient (C, d), which both need.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("am_softmax", device, md)
    return md


if __name__ == "__main__":
    print(main())
