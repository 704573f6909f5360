"""Core overhead: 100,000 ``message_streamed`` chunks through ``run_once``.

asm: ScriptedProvider -> SessionManager.run_once -> in-memory store -> an
``on_event`` callback. Measured in the same run, each repeat interleaved with
asm's so that a busy machine weighs on both alike:

- the floor: a naive batched pipeline in plain Python, what a hand-written
  loop does for the same guarantees minus asm's (per event a frozen attrs
  record with a uuid4 id, a seq, ``time.time()`` and the payload; 1,000
  buffered, then each handed to the callback). Target: asm at most 0.9x its
  time per event;
- a bare trio loop handing the same chunks to the same callback (no envelope).

A cProfile of one run (``--profile-chunks``, 0 for none) says where asm's
time per event goes. ``--compare-src DIR`` also times the asm whose sources are
in DIR (another checkout's ``core/src``), in a child process, interleaved too:
an A/B of two versions in one sitting; without it, ``--compare-rev REV`` (by
default main on the day the hot-path issue was filed) does the same with
``core/src`` of that git revision.

    python benchmarks/core_overhead.py [--chunks N] [--repeats R] [--profile-chunks N]
                                       [--compare-src DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section

from asm import InMemorySessionStore, SessionManager
from asm.events import MessageStreamed
from asm.providers.scripted import ScriptedProvider

TARGET_EVENTS_PER_S = 150_000
#: asm's time per event over the naive pipeline's, at most.
TARGET_FLOOR_RATIO = 0.9
#: main on the day the hot-path issue was filed, and asm's events per CPU second over its, at least.
ISSUE_DAY_MAIN = "2fe7c0a"
TARGET_SPEEDUP = 2.0
#: The floor's batch: records buffered before they are handed on.
FLOOR_BATCH = 1_000


def stopwatch() -> Callable[[], tuple[float, float]]:
    """Start both clocks; calling the result gives (wall-clock seconds, this process's CPU seconds) since.

    On a shared, loaded machine the wall clock counts the time other processes
    hold the cores; the CPU time of this single-threaded pipeline does not."""
    wall, cpu = time.perf_counter(), time.process_time()
    return lambda: (time.perf_counter() - wall, time.process_time() - cpu)


class Counter:
    """The callback both sides hand their chunks to."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, item: object) -> None:
        self.count += 1


def time_asm(chunks: list[str]) -> tuple[float, float]:
    provider = ScriptedProvider(chunks)
    counter = Counter()

    async def main() -> tuple[float, float]:
        manager = SessionManager(InMemorySessionStore(), provider=provider)
        elapsed = stopwatch()
        run = await manager.run_once("benchmark", on_event=counter)
        seconds = elapsed()
        assert run.output == "".join(chunks), run.status
        return seconds

    gc.collect()
    seconds = trio.run(main)
    # Every chunk plus the lifecycle events reached the callback.
    assert counter.count >= len(chunks), counter.count
    return seconds


@attrs.frozen
class Record:
    """The naive pipeline's envelope."""

    id: str
    seq: int
    at: float
    data: object


def time_floor(chunks: list[str]) -> tuple[float, float]:
    """The naive batched pipeline: an envelope per payload, 1,000 buffered, then each handed on."""
    payloads = [MessageStreamed(chunk) for chunk in chunks]
    counter = Counter()

    async def main() -> tuple[float, float]:
        elapsed = stopwatch()
        buffer: list[Record] = []
        for seq, payload in enumerate(payloads, 1):
            buffer.append(Record(str(uuid.uuid4()), seq, time.time(), payload))
            if len(buffer) == FLOOR_BATCH:
                for record in buffer:
                    counter(record)
                buffer = []
                await trio.lowlevel.checkpoint()
        for record in buffer:
            counter(record)
        await trio.lowlevel.checkpoint()
        return elapsed()

    gc.collect()
    seconds = trio.run(main)
    assert counter.count == len(chunks)
    return seconds


def profile_asm(chunks: list[str], top: int = 10) -> str:
    """A cProfile of one asm run: the functions taking the most time of their own, as a table."""
    profiler = cProfile.Profile()
    provider = ScriptedProvider(chunks)

    async def main() -> None:
        manager = SessionManager(InMemorySessionStore(), provider=provider)
        profiler.enable()
        await manager.run_once("benchmark", on_event=Counter())
        profiler.disable()

    gc.collect()
    trio.run(main)
    stats: Any = pstats.Stats(profiler)
    rows = []
    entries = stats.stats
    total = sum(entry[2] for entry in entries.values())
    for (filename, line, name), (_, calls, own, _cum, _) in sorted(
        entries.items(), key=lambda item: item[1][2], reverse=True
    )[:top]:
        where = Path(filename).name if filename != "~" else "builtin"
        rows.append(f"| `{name}` ({where}:{line}) | {calls:,} | {own / len(chunks) * 1e6:.2f} us | {own / total:.0%} |")
    return "\n".join(
        [
            f"Profile of one run of {len(chunks):,} chunks (cProfile, which slows every call by a similar amount; "
            "the shares are what matter): the functions with the most time of their own, per event.",
            "",
            "| function | calls | own time per event | share |",
            "|---|---|---|---|",
            *rows,
        ]
    )


def time_other(source: str, chunks: int) -> tuple[float, float]:
    """``time_asm`` in a child process importing asm from ``source``: (wall, CPU) seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, __file__, "--child-run", str(chunks)], env=env, check=True, capture_output=True, text=True
    ).stdout
    wall, cpu = out.split()[-2:]
    return float(wall), float(cpu)


def time_bare(chunks: list[str]) -> tuple[float, float]:
    payloads = [MessageStreamed(chunk) for chunk in chunks]
    counter = Counter()

    async def main() -> tuple[float, float]:
        elapsed = stopwatch()
        for payload in payloads:
            counter(payload)
        await trio.lowlevel.checkpoint()
        return elapsed()

    gc.collect()
    seconds = trio.run(main)
    assert counter.count == len(chunks)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile-chunks", type=int, default=20_000, help="chunks of the profiled run (0: none)")
    parser.add_argument("--compare-src", help="also time the asm whose sources are in this directory")
    parser.add_argument(
        "--compare-rev",
        default=ISSUE_DAY_MAIN,
        help="without --compare-src, also time core/src of this git revision ('' for none); by default main "
        "on the day the hot-path issue was filed",
    )
    parser.add_argument("--child-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    if args.child_run:
        import asm

        print(asm.__file__, *time_asm([f"tok{i % 97} " for i in range(args.child_run)]))
        return
    chunks = [f"tok{i % 97} " for i in range(args.chunks)]
    with contextlib.ExitStack() as stack:
        args.from_rev = not args.compare_src and args.compare_rev
        if args.from_rev:
            args.compare_src = checkout(args.compare_rev, stack.enter_context(tempfile.TemporaryDirectory()))
        measure(args, chunks)


def checkout(rev: str, into: str) -> str | None:
    """``core/src`` of git revision ``rev`` extracted under ``into`` (None, said why, if it cannot be)."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "core/src"], capture_output=True, check=False)
    if archive.returncode != 0:
        print(f"not comparing with {rev}: {archive.stderr.decode(errors='replace').strip()}", file=sys.stderr)
        return None
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return str(Path(into) / "core" / "src")


def measure(args: argparse.Namespace, chunks: list[str]) -> None:
    """Time asm, the floor, the bare loop (and the compared sources), then report."""
    load_start = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float]]] = {"asm": [], "floor": [], "bare": []}
    if args.compare_src:
        times["other"] = []
    for _ in range(args.repeats):  # interleaved: load that comes and goes weighs on all of them alike
        times["asm"].append(time_asm(chunks))
        if args.compare_src:
            times["other"].append(time_other(args.compare_src, args.chunks))
        times["floor"].append(time_floor(chunks))
        times["bare"].append(time_bare(chunks))
    load_end = os.getloadavg()[0]
    best = {name: min(wall for wall, _ in values) for name, values in times.items()}
    median = {name: statistics.median(wall for wall, _ in values) for name, values in times.items()}
    cpu = {name: statistics.median(used for _, used in values) for name, values in times.items()}
    per_event = {name: value / args.chunks * 1e6 for name, value in cpu.items()}
    rate_best = args.chunks / best["asm"]
    rate_median = args.chunks / median["asm"]
    verdict = "meets" if rate_median >= TARGET_EVENTS_PER_S else "MISSES"
    floor_ratio = cpu["asm"] / cpu["floor"]
    floor_verdict = "met" if floor_ratio <= TARGET_FLOOR_RATIO else "NOT met"
    bare_ratio = cpu["asm"] / cpu["bare"]
    labels = {"asm": "asm `run_once`", "floor": "floor: naive batched pipeline", "bare": "bare trio loop"}
    compared = ""
    if args.compare_src:
        labels = {"asm": labels["asm"], "other": "asm `run_once`, compared sources", **labels}
        which = (
            f"commit {args.compare_rev}"
            + (", main on the day the hot-path issue was filed" if args.compare_rev == ISSUE_DAY_MAIN else "")
            if args.from_rev
            else args.compare_src
        )
        speedup = cpu["other"] / cpu["asm"]
        compared = (
            f"The compared sources ({which}; timed in a child process the same way, interleaved): asm here takes "
            f"**{cpu['asm'] / cpu['other']:.2f}x** their CPU time per event, i.e. does **{speedup:.2f}x** their "
            f"events per CPU second (wall clock, medians: {median['other'] / median['asm']:.2f}x their events/s)"
            + (
                f"; target at least {TARGET_SPEEDUP}x: {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}"
                if which.startswith("commit")
                else ""
            )
            + ".\n\n"
        )
    rows = "\n".join(
        f"| {labels[name]} | {best[name] * 1000:.1f} ms | {median[name] * 1000:.1f} ms "
        f"| {args.chunks / median[name]:,.0f} | {per_event[name]:.2f} us | {cpu[name] / cpu['floor']:.2f}x |"
        for name in labels
    )
    profile = profile_asm(chunks[: args.profile_chunks]) if args.profile_chunks else ""
    body = f"""
{args.chunks:,} `message_streamed` chunks from `ScriptedProvider` through `SessionManager.run_once` with
the in-memory store and a counting `on_event` callback. Measured beside it, each of its {args.repeats} repeats
interleaved with asm's: the **floor**, a naive batched pipeline in plain Python (per event a frozen attrs record
with a `uuid4` id, a seq, `time.time()` and the payload; {FLOOR_BATCH:,} buffered, then each handed to the same
callback) and a bare trio loop handing the payloads to the callback with no envelope at all. Load average
(1 min) at the start and end: {load_start:.1f} / {load_end:.1f} on {os.cpu_count()} cores — the machine is
shared, so wall-clock figures swing with it; the ratios are of this process's CPU time per event (median),
which counts only the pipeline's own work.

| | wall, best | wall, median | events/s (wall, median) | CPU per event (median) | ÷ floor (CPU) |
|---|---|---|---|---|---|
{rows}

asm's CPU time per event against the floor's: **{floor_ratio:.2f}x** (target at most {TARGET_FLOOR_RATIO}x:
{floor_verdict}). asm does more than the floor for it: the write queue with backpressure, durable-before-delivery
through the store's acknowledgement, the redaction and transform hooks' place, Unicode scrubbing, policy and
pricing on usage events. Throughput through asm: **{rate_median:,.0f} events/s** (best {rate_best:,.0f});
target {TARGET_EVENTS_PER_S:,} events/s: {verdict} it. Ratio asm / bare loop (CPU time): **{bare_ratio:.1f}x**.

{compared}{profile}
"""
    print(body)
    if not args.no_write:
        write_section("core_overhead", body)


if __name__ == "__main__":
    main()
