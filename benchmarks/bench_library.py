"""Cost of fitting the post's layout model (`fit_library_embedding`, full-batch Adam on `library_loss`) against the
closed-form baseline it is compared with, one truncated SVD of the PPMI matrix (`pmi_svd_embedding`).

Data: `planted_cooccurrence` with K = 5 equal groups of n/5 items, 20·n sessions of 5 draws, noise 0.2; embedding
dimension 8. Three tasks per size n, timed by `benchmarks/harness.py` in interleaved rounds on the same counts:
`pmi_svd` (PPMI + full SVD of an n×n matrix), `fit_step` (one Adam step: loss, backward, update, O(n²d)) and `fit`
(the whole fit, `n_steps` steps from a fresh start, as the notebook runs it). The table gives the time ratios against
one PMI-SVD and, computed once outside the timing, the adjusted Rand index of k-means on each embedding (layout:
Euclidean; PMI-SVD: row-normalised, i.e. cosine), so the cost is read next to what it buys.

    python benchmarks/bench_library.py [--device cpu|cuda] [--quick] [--threads N] [--no-write]
prints the Markdown section and writes benchmarks/results/library-<device>.md (unless --no-write).
"""

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's su_notes, also when run from elsewhere
sys.path.insert(0, str(HERE))
from harness import interleaved, machine_line, ratio_cell, write_result  # noqa: E402
from harness import bench_parser, parse_bench_args  # noqa: E402
from su_notes.text.library import (  # noqa: E402
    fit_library_embedding,
    library_loss,
    planted_cooccurrence,
    pmi_svd_embedding,
)

POST = "text/50_min_entropy_library.ipynb"  # its post (under nbs/): run_all.py links the two

K, DIM = 5, 8
FULL = dict(sizes=(200, 500, 1000), n_steps=300, rounds=5, min_run_time=0.3)
QUICK = dict(sizes=(100, 200), n_steps=100, rounds=3, min_run_time=0.05)


def ari(emb, labels, cosine):
    "Adjusted Rand index of k-means (K clusters, 10 restarts) on `emb` against the planted labels."
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    x = torch.nn.functional.normalize(emb.double(), dim=1) if cosine else emb.double()
    pred = KMeans(K, n_init=10, random_state=0).fit_predict(x.cpu().numpy())
    return adjusted_rand_score(labels.numpy(), pred)


def main(argv=None) -> str:
    p = bench_parser(__doc__, "n = 100 and 200, 100 fit steps, 3 short rounds (smoke test)", threads=True)
    a, device = parse_bench_args(p, argv)
    cfg = QUICK if a.quick else FULL
    res, rows = None, []
    for n in cfg["sizes"]:
        C, lab = planted_cooccurrence((n // K,) * K, n_sessions=20 * n, noise=0.2, seed=0)
        C = C.to(device)
        V = 0.1 * torch.randn(n, DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        V = V.to(device).requires_grad_()
        opt = torch.optim.Adam([V], lr=0.05)

        def fit_step():
            opt.zero_grad()
            library_loss(V, C).backward()
            opt.step()

        tasks = {
            "pmi_svd": lambda: pmi_svd_embedding(C, DIM),
            "fit_step": fit_step,
            "fit": lambda: fit_library_embedding(C, DIM, n_steps=cfg["n_steps"], show_progress=False),
        }
        sl = f"n={n}"
        res = interleaved(
            tasks,
            rounds=cfg["rounds"],
            min_run_time=cfg["min_run_time"],
            label="library layout fit vs PMI-SVD",
            sub_label=sl,
            rounds_out=res,
        )
        emb = fit_library_embedding(C, DIM, n_steps=cfg["n_steps"], show_progress=False).embedding
        ari_fit, ari_svd = (
            ari(emb, lab, cosine=False),
            ari(pmi_svd_embedding(C, DIM), lab, cosine=True),
        )
        rows.append(
            f"| {n} | {1e3 * res.median_s('pmi_svd', sl):.2f} | {1e3 * res.median_s('fit_step', sl):.2f} "
            f"| {res.median_s('fit', sl):.2f} | {ratio_cell(res.ratio('fit_step', 'pmi_svd', sl))} "
            f"| {ratio_cell(res.ratio('fit', 'pmi_svd', sl), 0)} | {ari_fit:.3f} | {ari_svd:.3f} |"
        )
    quick = " **quick run (small sizes, 3 short rounds): a smoke test, not a measurement.**" if a.quick else ""
    md = "\n".join(
        [
            "### Minimum-entropy library: fitting the layout (`fit_library_embedding`) vs one PMI-SVD",
            "",
            machine_line(device),
            "",
            f"float64, K = {K} planted groups, dimension {DIM}, {cfg['n_steps']} Adam steps per fit; "
            f"{cfg['rounds']} interleaved rounds of `blocked_autorange(min_run_time={cfg['min_run_time']})`.{quick}",
            "",
            "| n | PMI-SVD (ms) | one fit step (ms) | whole fit (s) | step / SVD | fit / SVD | ARI layout | "
            "ARI PMI-SVD |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "Ratios: median (min–max) of the per-round time ratios against one PMI-SVD of the same counts (> 1: slower "
            "than the SVD). One step costs O(n²d) against the SVD's O(n³), so the per-step ratio falls with n, "
            "but a fit "
            "takes hundreds of steps. ARI: adjusted Rand index of k-means against the planted groups, one run each.",
            "",
            "```",
            res.compare(),
            "```",
        ]
    )
    if not a.no_write:
        write_result("library", device, md)
    return md


if __name__ == "__main__":
    print(main())
