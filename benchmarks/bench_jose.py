"""Steps per second of `su_notes.text.jose.SphereSGD` against geoopt 0.5.1's Riemannian SGD on embedding tables,
and (optionally) the official JoSE C program's training speed on a synthetic corpus.

1. Dense gradients: `SphereSGD(lr)` vs `geoopt.optim.RiemannianSGD` on a `ManifoldParameter(..., Sphere())`, one
   (n, 100) float32 table with a full dense gradient (n = 1e4, 1e5). Both project, step and renormalise every row; the
   two give the same rows (asserted before timing: bit-identical on CPU).
2. Row-sparse gradients (`nn.Embedding(sparse=True)`, 4096 looked-up ids, duplicates included): `SphereSGD` vs
   `geoopt.optim.SparseRiemannianSGD` on a (1e5, 100) table; only the looked-up rows move (asserted equal).
   `SphereSGD(modified=True)` is timed as well (it adds one row norm).
3. `--c` (full runs only): compiles yumeng5/Spherical-Text-Embedding `src/jose.c` (gcc -O3 -march=native, from the
   local git mirror; skipped with a note if the mirror or gcc is missing) and reports its words/s on a planted-topic
   corpus, next to a batched PyTorch trainer (`jose_loss` + `SphereSGD` on sparse embeddings) on the same corpus, one
   thread each. The work per word differs (the C code updates after every hinge term, the batched trainer once per
   512 tuples), so this is a throughput figure, not a like-for-like ratio.

    python benchmarks/bench_jose.py [--device cpu|cuda] [--quick] [--threads N] [--no-write] [--c]
prints the Markdown section and writes benchmarks/results/jose-<device>.md (unless --no-write).
"""

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
import geoopt  # noqa: E402
from su_notes.text.jose import SphereSGD, jose_loss  # noqa: E402

POST = "text/40_jose.ipynb"  # its post (under nbs/): run_all.py links the two

MIRROR = Path("/work/.mirror/yumeng5+Spherical-Text-Embedding/repo")


def unit_table(n, dim, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1).to(device)


def dense_case(n, dim, device):
    "Two optimizers on equal tables with the same dense gradient; returns (ours, peer) step closures."
    X = unit_table(n, dim, device)
    G = torch.randn(n, dim, generator=torch.Generator().manual_seed(1)).to(device)
    p1 = torch.nn.Parameter(X.clone())
    p2 = geoopt.ManifoldParameter(X.clone(), manifold=geoopt.Sphere())
    p1.grad, p2.grad = G.clone(), G.clone()
    o1, o2 = SphereSGD([p1], lr=0.05), geoopt.optim.RiemannianSGD([p2], lr=0.05)
    o1.step()
    o2.step()
    if device.type == "cpu":
        assert torch.equal(p1, p2)
    else:
        torch.testing.assert_close(p1, p2, rtol=0, atol=1e-6)
    p3 = torch.nn.Parameter(X.clone())
    p3.grad = G.clone()
    o3 = SphereSGD([p3], lr=0.05, modified=True)
    return o1.step, o2.step, o3.step


def sparse_case(n, dim, n_ids, device):
    "Sparse gradient of an embedding lookup of `n_ids` ids; returns (ours, peer, ours modified) closures."
    X = unit_table(n, dim, device)
    ids = torch.randint(0, n, (n_ids,), generator=torch.Generator().manual_seed(2)).to(device)
    W = torch.randn(n_ids, dim, generator=torch.Generator().manual_seed(3)).to(device)
    emb = torch.nn.Embedding.from_pretrained(X.clone(), freeze=False, sparse=True)
    (emb(ids) * W).sum().backward()
    G = emb.weight.grad
    p1 = torch.nn.Parameter(X.clone())
    p2 = geoopt.ManifoldParameter(X.clone(), manifold=geoopt.Sphere())
    p3 = torch.nn.Parameter(X.clone())
    p1.grad, p2.grad, p3.grad = G.clone(), G.clone(), G.clone()
    o1, o2 = SphereSGD([p1], lr=0.05), geoopt.optim.SparseRiemannianSGD([p2], lr=0.05)
    o3 = SphereSGD([p3], lr=0.05, modified=True)
    o1.step()
    o2.step()
    torch.testing.assert_close(p1, p2, rtol=0, atol=8 * torch.finfo(torch.float32).eps)
    return o1.step, o2.step, o3.step


def planted_text(path, n_docs, doc_len=30, n_topics=8, per_topic=25, n_bg=100, p_topic=0.25, seed=0):
    "Write a planted-topic corpus, one document per line; returns the documents as an (n_docs, L) tensor."
    g = torch.Generator().manual_seed(seed)
    topic = torch.randint(0, n_topics, (n_docs,), generator=g)
    own = topic[:, None] * per_topic + torch.randint(0, per_topic, (n_docs, doc_len), generator=g)
    bg = n_topics * per_topic + torch.randint(0, n_bg, (n_docs, doc_len), generator=g)
    docs = torch.where(torch.rand(n_docs, doc_len, generator=g) < p_topic, own, bg)
    with open(path, "w") as f:
        for row in docs.tolist():
            f.write(" ".join(f"w{t}" for t in row) + "\n")
    return docs


def torch_words_per_s(docs, n_words, dim=100, window=5, k=2, batch=512):
    "One epoch of batched JoSE training (jose_loss + SphereSGD, sparse embeddings); corpus words per second."
    n_docs, L = docs.shape
    pos = torch.arange(L)
    w, c, d = [], [], []
    for o in [o for o in range(-window, window + 1) if o]:
        p = pos[(pos + o >= 0) & (pos + o < L)]
        w.append(docs[:, p].reshape(-1))
        c.append(docs[:, p + o].reshape(-1))
        d.append(torch.arange(n_docs).repeat_interleave(len(p)))
    w, c, d = torch.cat(w), torch.cat(c), torch.cat(d)
    embs = [
        torch.nn.Embedding.from_pretrained(unit_table(n, dim, "cpu", s), freeze=False, sparse=True)
        for s, n in enumerate((n_words, n_words, n_docs))
    ]
    opt = SphereSGD([e.weight for e in embs], lr=0.04, modified=True)
    noise = torch.bincount(docs.reshape(-1), minlength=n_words).double() ** 0.75
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    perm = torch.randperm(len(w), generator=g)
    for i in range(0, len(w), batch):
        j = perm[i : i + batch]
        neg = torch.multinomial(noise, len(j) * k, replacement=True, generator=g).view(-1, k)
        opt.zero_grad()
        jose_loss(embs[0](w[j]), embs[1](c[j]), embs[2](d[j]), embs[0](neg), reduction="sum").backward()
        opt.step()
    return docs.numel() / (time.perf_counter() - t0)


def c_section(n_docs):
    "Markdown lines for the C program's words/s against the batched trainer, or a note why not."
    gcc = shutil.which("gcc")
    if gcc is None or not MIRROR.exists():
        return ["Official C code: not run (gcc or the local mirror of yumeng5/Spherical-Text-Embedding is missing)."]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "jose.c"
        src.write_bytes(
            subprocess.run(
                ["git", "-C", str(MIRROR), "show", "HEAD:src/jose.c"],
                check=True,
                capture_output=True,
            ).stdout
        )
        exe = Path(tmp) / "jose"
        subprocess.run(
            [
                gcc,
                str(src),
                "-o",
                str(exe),
                "-lm",
                "-pthread",
                "-O3",
                "-march=native",
                "-funroll-loops",
                "-Wno-unused-result",
            ],
            check=True,
            capture_output=True,
        )
        text = Path(tmp) / "text.txt"
        docs = planted_text(text, n_docs)
        out = subprocess.run(
            [
                str(exe),
                "-train",
                str(text),
                "-word-output",
                str(Path(tmp) / "w.txt"),
                "-size",
                "100",
                "-window",
                "5",
                "-negative",
                "2",
                "-sample",
                "0",
                "-min-count",
                "1",
                "-iter",
                "1",
                "-threads",
                "1",
                "-debug",
                "2",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        # the program's own progress line: words per thread per CPU-second since training began
        rates = re.findall(r"Words/thread/sec: ([0-9.]+)k", out)
        if not rates:
            return ["Official C code: ran, but printed no Words/thread/sec line."]
        c_wps = 1e3 * float(rates[-1])
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t_wps = torch_words_per_s(docs[: n_docs // 10], 300)
    finally:
        torch.set_num_threads(n_threads)
    return [
        f"Official C code vs batched PyTorch trainer, planted-topic corpus of {n_docs:,} documents × 30 words "
        "(300-word vocabulary), dim 100, window 5, 2 negatives, no subsampling, one epoch, one thread:",
        "",
        "| trainer | words/s |",
        "|---|---:|",
        f"| `jose.c` (gcc -O3 -march=native; its own Words/thread/sec, CPU time of training) | {c_wps:,.0f} |",
        f"| `jose_loss` + `SphereSGD(modified=True)`, batches of 512 tuples (first {n_docs // 10:,} "
        f"documents, wall time) | {t_wps:,.0f} |",
        "",
        "Not like for like: the C code steps after every hinge term, the batched trainer once per batch "
        "with per-row summed gradients (see the notebook), and the C code's window shrinks at random.",
    ]


def main(argv=None) -> str:
    p = bench_parser(__doc__, "small tables, 3 short rounds, no C run (smoke test)", threads=True)
    p.add_argument("--c", action="store_true", help="also compile and time the official C code (full runs)")
    a, device = parse_bench_args(p, argv)
    rounds, min_run_time = (3, 0.05) if a.quick else (7, 0.3)
    dense_sizes = (10_000,) if a.quick else (10_000, 100_000)
    sparse_n = 10_000 if a.quick else 100_000
    res, rows = None, []
    for n in dense_sizes:
        ours, peer, mod = dense_case(n, 100, device)
        sl = f"dense, {n:,}×100"
        res = interleaved(
            {"SphereSGD": ours, "geoopt": peer, "SphereSGD modified": mod},
            rounds=rounds,
            min_run_time=min_run_time,
            label="sphere SGD step",
            sub_label=sl,
            rounds_out=res,
        )
        rows.append(("dense gradient", f"{n:,}×100", "RiemannianSGD", sl))
    ours, peer, mod = sparse_case(sparse_n, 100, 4096, device)
    sl = f"sparse, {sparse_n:,}×100, 4096 ids"
    res = interleaved(
        {"SphereSGD": ours, "geoopt": peer, "SphereSGD modified": mod},
        rounds=rounds,
        min_run_time=min_run_time,
        label="sphere SGD step",
        sub_label=sl,
        rounds_out=res,
    )
    rows.append(("row-sparse gradient, 4096 ids", f"{sparse_n:,}×100", "SparseRiemannianSGD", sl))
    table = [
        "| gradient | table | geoopt optimizer | SphereSGD (ms) | geoopt (ms) | speed-up (geoopt / ours) "
        "| modified=True (ms) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for kind, size, peer_name, sl in rows:
        r = res.ratio("geoopt", "SphereSGD", sl)
        table.append(
            f"| {kind} | {size} | `{peer_name}` | {1e3 * res.median_s('SphereSGD', sl):.2f} | "
            f"{1e3 * res.median_s('geoopt', sl):.2f} | {ratio_cell(r)} | "
            f"{1e3 * res.median_s('SphereSGD modified', sl):.2f} |"
        )
    quick = " **quick run (small tables, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    c_lines = c_section(20_000) if (a.c and not a.quick and device.type == "cpu") else []
    md = "\n".join(
        [
            "### JoSE: `SphereSGD` vs geoopt's Riemannian SGD on embedding tables",
            "",
            machine_line(device),
            "",
            f"float32, lr 0.05; {rounds} interleaved rounds of `blocked_autorange(min_run_time={min_run_time})`; "
            f"the plain steps of both were checked equal before timing.{quick}",
            "",
            *table,
            "",
            "Speed-up = geoopt's time / ours for one `step()`: median (min–max) of the per-round ratios (> 1: ours "
            "faster). Both do the same arithmetic (projection, step, normalisation); geoopt also adds "
            "weight_decay·x to the gradient in place and dispatches through its manifold object.",
            "",
            *c_lines,
            *([""] if c_lines else []),
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("jose", device, md)
    return md


if __name__ == "__main__":
    print(main())
