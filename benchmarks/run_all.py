"""Run every `benchmarks/bench_*.py` (each in its own process) and write the Benchmarks page `nbs/benchmarks.md`.

Each benchmark module exposes `main(argv) -> str` returning a Markdown section: ratios against the peer measured in
the same process. Results per device are kept in `benchmarks/results/<name>-<device>.md`, so figures measured on a
GPU machine (`--device cuda`) sit beside the CPU ones and the page shows both.

    python benchmarks/run_all.py [--device cpu|cuda] [--quick] [--only adax,linear_attention] [--page-only]
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from harness import machine_line

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PAGE = ROOT / "nbs" / "benchmarks.md"

RUNNER = textwrap.dedent("""
    import importlib, sys
    sys.path.insert(0, {here!r})
    md = importlib.import_module({mod!r}).main({argv!r})
    open({out!r}, "w", encoding="utf-8").write(md.rstrip() + "\\n")
""")


def run_one(name: str, device: str, quick: bool) -> Path:
    out = RESULTS / f"{name}-{device}.md"
    argv = ["--device", device] + (["--quick"] if quick else [])
    code = RUNNER.format(here=str(HERE), mod=f"bench_{name}", argv=argv, out=str(out))
    print(f"== bench_{name} ({device})", flush=True)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return out


def post_of(name: str) -> str | None:
    "The post notebook (under nbs/) a benchmark belongs to: its script's `POST` constant (read, not imported)."
    m = re.search(r'^POST = "([^"]+)"', (HERE / f"bench_{name}.py").read_text(encoding="utf-8"), re.M)
    return m[1] if m else None


def post_title(nb: str) -> str:
    "The notebook's title: the `# ` line of its first cell."
    cells = json.loads((ROOT / "nbs" / nb).read_text(encoding="utf-8"))["cells"]
    return re.search(r"^# (.+)$", "".join(cells[0]["source"]), re.M)[1].strip()


def section(path: Path) -> str:
    """A results file as a page section: a stable label before its heading (`bench-<name>`, `-cuda` for a GPU run)
    and, under the heading, a link back to the post."""
    name, device = path.stem.rsplit("-", 1)
    label = f"bench-{name.replace('_', '-')}" + ("" if device == "cpu" else f"-{device}")
    head, _, rest = path.read_text(encoding="utf-8").strip().partition("\n")
    nb = post_of(name)
    back = f"\n\nPost: [{post_title(nb)}]({nb})" if nb else ""
    # torch.utils.benchmark's Compare printout is wider than the page: a collapsed detail under the ratios
    rest = re.sub(
        r"^```\n(.*?)^```$",
        lambda m: (
            f"<details><summary>torch.utils.benchmark.Compare table</summary>\n\n```text\n{m[1]}```\n\n</details>"
            if re.search(r"^\[-+ ", m[1], re.M)
            else m[0]
        ),
        rest,
        flags=re.M | re.S,
    )
    return f"({label})=\n{head}{back}\n{rest}\n"


def write_page() -> Path:
    sections = sorted([*RESULTS.glob("*-cpu.md"), *RESULTS.glob("*-cuda.md")])
    body = [
        "---",
        "title: Benchmarks",
        "description: Speed of su_notes' implementations as ratios against the peer library, measured in the"
        " same process.",
        "---",
        "",
        "Each table is produced by `make bench` (`benchmarks/run_all.py`), one process per benchmark, with one",
        "harness (`benchmarks/harness.py`, on `torch.utils.benchmark`): in each round every method is timed once by",
        "`Timer.blocked_autorange`, in a shuffled order, so load drifts hit all methods alike. A ratio is the median",
        "over rounds of the per-round ratio against the named peer on the same inputs, with its min–max in brackets;",
        "ratios transfer between machines better than absolute times. Under each heading are a link to the post and",
        "a line naming the device and the load average at the end of the run; a run at a load above the core count",
        "is marked noisy. Speed targets live here, never in timed tests.",
        "",
    ]
    if not sections:
        body.append("*No results yet: run `make bench`.*")
    for s in sections:
        body += [section(s)]
    PAGE.write_text("\n".join(body) + "\n", encoding="utf-8")
    return PAGE


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    p.add_argument("--only", default="", help="comma-separated benchmark names (bench_<name>.py)")
    p.add_argument(
        "--page-only",
        action="store_true",
        help="only rebuild nbs/benchmarks.md from benchmarks/results/",
    )
    a = p.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    if not a.page_only:
        names = sorted(f.stem[len("bench_") :] for f in HERE.glob("bench_*.py"))
        if a.only:
            want = a.only.split(",")
            unknown = sorted(set(want) - set(names))
            if unknown:
                p.error(f"unknown benchmark(s) {unknown}; available: {names}")
            names = [n for n in names if n in want]
        print(machine_line(a.device), datetime.date.today().isoformat(), flush=True)
        for n in names:
            run_one(n, a.device, a.quick)
    print("wrote", write_page())


if __name__ == "__main__":
    main()
