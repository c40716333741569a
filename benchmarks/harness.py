"""The one timing harness every `benchmarks/bench_*.py` uses, on `torch.utils.benchmark`.

- `interleaved(tasks, ...)`: each round times every task once (shuffled order) with
  `torch.utils.benchmark.Timer(...).blocked_autorange` (which synchronises CUDA and pins the thread count), so
  load drifts hit every task alike. Returns a `Rounds` object holding the `Measurement`s.
- `Rounds.ratio(name, baseline)`: the per-round ratios of medians, summarised as median and min–max.
- `Rounds.compare()`: `torch.utils.benchmark.Compare`'s table of all measurements, as text.
- `machine_line(device)`: device, torch, Python, threads, and the load average, marked noisy above the core count.
- `ratio_cell(r)`: a ratio as `0.93× (0.90–0.97)`.
- `write_result(name, device, md)`: writes `results/<name>-<device>.md`, the file `run_all.py` collects.
- `gpt2_shapes(width, layers)`, `small_shapes(n)`: the parameter lists the optimizer/clipping benchmarks time.
- `bench_parser(doc, quick_help, threads, rounds)` + `parse_bench_args(p, argv)`: the common command line
  (`--device`, `--quick`, `--no-write`, `--threads` or `--rounds`), its checks, and `--threads` applied.

Benchmarks import it as `from harness import ...` (run from `benchmarks/` or via `run_all.py`).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
from dataclasses import dataclass, field

import torch
from torch.utils import benchmark as tb

__all__ = [
    "Ratio",
    "Rounds",
    "interleaved",
    "load_average",
    "is_noisy",
    "machine_line",
    "ratio_cell",
    "write_result",
]


@dataclass
class Ratio:
    "Per-round ratios `name / baseline` of median times; `median`, `lo`, `hi` summarise them."

    name: str
    baseline: str
    values: list

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)


@dataclass
class Rounds:
    "Measurements of interleaved rounds: `measurements[(name, sub_label)]` is one `Measurement` per round."

    measurements: dict = field(default_factory=dict)

    def median_s(self, name: str, sub_label: str = "") -> float:
        "Median over rounds of each round's median time per call, seconds."
        return statistics.median(m.median for m in self.measurements[(name, sub_label)])

    def ratio(self, name: str, baseline: str, sub_label: str = "") -> Ratio:
        "Per-round `name / baseline` of the tasks timed under `sub_label`."
        ms, bs = self.measurements[(name, sub_label)], self.measurements[(baseline, sub_label)]
        return Ratio(name, baseline, [m.median / b.median for m, b in zip(ms, bs)])

    def compare(self, title: str | None = None) -> str:
        "torch.utils.benchmark.Compare over every measurement of every round (times in the unit Compare picks)."
        c = tb.Compare([m for ms in self.measurements.values() for m in ms])
        c.trim_significant_figures()
        text = str(c).strip("\n")
        return f"{title}\n{text}" if title else text


def interleaved(
    tasks: dict,  # name -> zero-argument callable doing one unit of work
    *,
    rounds: int = 7,  # interleaved rounds (each times every task once)
    min_run_time: float = 0.2,  # seconds per `blocked_autorange` call
    label: str = "",  # Compare's table title
    sub_label: str = "",  # Compare's row (e.g. the size)
    num_threads: int | None = None,  # torch threads inside the timer; default: torch.get_num_threads()
    warmup: int = 2,  # untimed calls of each task first (compilation, caches, allocator)
    seed: int = 0,  # shuffling of the order within rounds
    rounds_out: Rounds | None = None,  # append to an existing `Rounds` (several sizes in one table)
) -> Rounds:
    "Time `tasks` in interleaved rounds with `Timer.blocked_autorange`; see the module docstring."
    if rounds < 1:
        raise ValueError(f"Invalid rounds: {rounds!r} (must be >= 1)")
    threads = num_threads or torch.get_num_threads()
    for fn in tasks.values():
        for _ in range(warmup):
            fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    out = rounds_out if rounds_out is not None else Rounds()
    order, rng = list(tasks), random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            t = tb.Timer(
                stmt="fn()",
                globals={"fn": tasks[name]},
                label=label,
                sub_label=sub_label,
                description=name,
                num_threads=threads,
            )
            out.measurements.setdefault((name, sub_label), []).append(t.blocked_autorange(min_run_time=min_run_time))
    return out


def load_average() -> float:
    "1-minute load average (NaN where the OS has none)."
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def is_noisy(load: float | None = None) -> bool:
    "True when the load average exceeds the number of cores: the timings shared the machine."
    load = load_average() if load is None else load
    return load > (os.cpu_count() or 1)


def machine_line(device, load: float | None = None) -> str:
    "One line naming the device, software, threads and load, e.g. for the heading of a results table."
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu}, {os.cpu_count()} cores"
    load = load_average() if load is None else load
    note = " — **noisy** (load above the core count)" if is_noisy(load) else ""
    return (
        f"{device.type}: {dev}; {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
        f"Python {platform.python_version()}; load average {load:.2f} on {os.cpu_count()} cores{note}"
    )


def ratio_cell(r: Ratio, digits: int = 2) -> str:
    "`median× (min–max)` of a `Ratio`."
    f = f"{{:.{digits}f}}"
    return f"{f.format(r.median)}× ({f.format(r.lo)}–{f.format(r.hi)})"


def write_result(name: str, device, md: str):
    "Write a benchmark's Markdown section to `benchmarks/results/<name>-<device type>.md`; returns the path."
    from pathlib import Path

    out = Path(__file__).resolve().parent / "results" / f"{name}-{torch.device(device).type}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(md.rstrip() + "\n", encoding="utf-8")
    return out


def bench_parser(doc: str, quick_help: str, threads: bool = True, rounds: bool = False) -> argparse.ArgumentParser:
    """The options every benchmark script takes: `--device`, `--quick`, `--no-write`, and `--threads` (CPU) or
    `--rounds`; a script adds its own before calling `parse_bench_args`."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quick", action="store_true", help=quick_help)
    if threads:
        p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    if rounds:
        p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default: the script's)")
    p.add_argument("--no-write", action="store_true", help="only print (the script otherwise writes results/)")
    return p


def parse_bench_args(p: argparse.ArgumentParser, argv=None):
    "Parse `argv`; refuse `--device cuda` without CUDA and `--threads`/`--rounds` < 1; apply `--threads`."
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    for opt in ("threads", "rounds"):
        v = getattr(a, opt, None)
        if v is not None and v < 1:
            p.error(f"--{opt} must be >= 1, got {v}")
    if getattr(a, "threads", None) is not None:
        torch.set_num_threads(a.threads)
    return a, device


# Parameter-list shapes shared by the optimizer and clipping benchmarks


def gpt2_shapes(width: float = 1.0, layers: int = 12) -> list:
    "Parameter shapes of GPT-2 small (d=768, vocab 50257, context 1024), widths × `width`, `layers` blocks."
    d = max(8, int(round(768 * width / 8)) * 8)
    vocab = max(16, int(50257 * width))
    ctx = max(16, int(1024 * width))
    shapes = [(vocab, d), (ctx, d)]
    for _ in range(layers):
        shapes += [
            (d,),
            (d,),
            (d, 3 * d),
            (3 * d,),
            (d, d),
            (d,),  # ln_1, attn.c_attn, attn.c_proj
            (d,),
            (d,),
            (d, 4 * d),
            (4 * d,),
            (4 * d, d),
            (d,),
        ]  # ln_2, mlp.c_fc, mlp.c_proj
    return shapes + [(d,), (d,)]  # ln_f


def small_shapes(n: int = 1536) -> list:
    "`n` small tensors cycling through (256,), (64, 16), (1024,), (32, 128): 256–4096 elements each."
    cycle = [(256,), (64, 16), (1024,), (32, 128)]
    return [cycle[i % len(cycle)] for i in range(n)]
