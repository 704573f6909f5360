"""Shared helpers for benchmarks: timing, machine description, and writing results
into their own section of docs/performance.md (other sections are left alone)."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parent.parent / "docs" / "performance.md"

HEADER = """# Performance

Figures written by the benchmarks in `benchmarks/` (`nox -s bench`). Each benchmark owns one
section below and rewrites it on every run, with the machine and the date. Baselines are measured
in the same run as asm, so the ratios hold even when the machine is busy.
"""


def machine() -> str:
    """A one-line description of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()} on {platform.system()}"


def best_and_median(run: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Call ``run`` (which returns seconds) ``repeats`` times: (best, median)."""
    times = [run() for _ in range(repeats)]
    return min(times), statistics.median(times)


def stopwatch() -> Callable[[], float]:
    """Start a timer; calling the result gives the seconds since."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/performance.md with ``body``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    section = (
        f"<!-- {name}:start -->\n## {name}\n\nMeasured {stamp} on {machine()}.\n\n{body.strip()}\n<!-- {name}:end -->"
    )
    text = PERFORMANCE_MD.read_text() if PERFORMANCE_MD.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    PERFORMANCE_MD.parent.mkdir(parents=True, exist_ok=True)
    PERFORMANCE_MD.write_text(text)
