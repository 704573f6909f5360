"""Observability overhead: what watching a run costs it, per event, on a 10,000-event run.

One section of docs/performance.md per measured thing (``MEASURES``); each compares
the same run with and without it, in the same process, runs interleaved:

- ``asm-otel``: spans and metrics through the SDK's in-memory span exporter
  (SimpleSpanProcessor: every span exported as it ends) and in-memory metric reader,
  against the same registry with no telemetry. The run has 100 model turns, each
  with a tool call, usage and a turn end, the rest streamed text: 100 chat spans,
  100 tool spans, the run and the session. Target: <= 2 us per event.

    python benchmarks/observability.py [--events N] [--repeats R] [--only NAME] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section

import asm
from asm.events import EventData, TokenUsageUpdated, ToolCallCompleted, ToolCallStarted, TurnCompleted
from asm.model import TokenUsage
from asm.plugins import PluginRegistry
from asm.providers.scripted import ScriptedProvider, Step

TARGET_US_PER_EVENT = 2.0
#: How long the studio benchmark's terminal reads nothing (longer than the run itself).
STOPPED_S = 0.5


def script(events: int, turns: int = 100) -> list[Step]:
    """``events`` provider events: ``turns`` turns of streamed text, a tool call, usage and the turn's end."""
    per_turn = events // turns
    steps: list[Step] = []
    for turn in range(1, turns + 1):
        call = f"call_{turn}"
        tail: list[EventData] = [
            ToolCallStarted(call, "read_file", {"path": f"src/{turn}.py"}),
            TokenUsageUpdated(TokenUsage(input_tokens=1000, output_tokens=50), "model-x"),
            TurnCompleted(turn),
            ToolCallCompleted(call, "read_file", "contents"),
        ]
        steps.extend(f"tok{n} " for n in range(per_turn - len(tail)))
        steps.extend(tail)
    return steps


def time_run(registry: PluginRegistry, steps: list[Step]) -> tuple[float, int]:
    """Seconds for one ``run_once`` of ``steps``, and how many events it stored."""

    async def main() -> tuple[float, int]:
        manager = asm.SessionManager(
            asm.InMemorySessionStore(), provider=ScriptedProvider(steps, model="model-x"), plugins=registry
        )
        # CPU time of this process: other processes' load on a shared machine does not
        # count, and the run never waits on anything but its own work.
        start = time.process_time()
        run = await manager.run_once("benchmark")
        seconds = time.process_time() - start
        assert run.status is asm.RunStatus.COMPLETED, run.error
        return seconds, await manager.store.latest_seq(run.session_id)

    gc.collect()
    return trio.run(main)


def compare(plain: PluginRegistry, traced: PluginRegistry, steps: list[Step], repeats: int) -> tuple[list[float], ...]:
    """Interleaved runs (a busy moment of the machine hits both sides): seconds without and with."""
    time_run(plain, steps)  # warm-up: imports, caches
    time_run(traced, steps)
    base: list[float] = []
    otel: list[float] = []
    for _ in range(repeats):
        base.append(time_run(plain, steps)[0])
        otel.append(time_run(traced, steps)[0])
    return base, otel


def measure_otel(events: int, repeats: int) -> str:
    import asm_otel
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    plain = asm.load_plugins()
    traced = asm.load_plugins()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    asm_otel.instrument(traced, tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader]))
    rows = []
    verdicts = []
    for turns in (1, 20, 100):
        steps = script(events, turns)
        stored = time_run(plain, steps)[1]
        exporter.clear()
        base, otel = compare(plain, traced, steps, repeats)
        spans = len(exporter.get_finished_spans()) // (repeats + 1)
        best = (min(otel) - min(base)) / stored * 1e6
        median = (statistics.median(otel) - statistics.median(base)) / stored * 1e6
        verdicts.append((turns, best))
        rows.append(
            f"| {turns} turn{'s' if turns > 1 else ''}, {spans} spans | {min(base) * 1e3:.1f} ms | "
            f"{min(otel) * 1e3:.1f} ms | **{best:.2f} µs** | {median:.2f} µs |"
        )
    assert reader.get_metrics_data() is not None
    table = "\n".join(rows)
    met = ", ".join(
        f"{t} turn{'s' if t > 1 else ''}: {'yes' if b <= TARGET_US_PER_EVENT else 'no'}" for t, b in verdicts
    )
    return f"""
`benchmarks/observability.py`: one `run_once` of {stored:,} stored events ({events:,} from the provider) on
the in-memory store, with asm-otel's spans exported by the SDK's `SimpleSpanProcessor` to its
`InMemorySpanExporter` and its metrics read by `InMemoryMetricReader`, against the same registry with
no telemetry. Each model turn is streamed text, a tool call, its usage and the turn's end (a `chat`
and an `execute_tool` span, four histogram records); 1, 20 and 100 turns in the same number of
events. {repeats} runs of each side interleaved, CPU time of the process, best and median; load
average {load()}.

| run | no telemetry | asm-otel | overhead per event, best | median |
|---|---|---|---|---|
{table}

Target ≤ {TARGET_US_PER_EVENT:g} µs per event (best): {met}. A streamed event costs a count and a dict
lookup (asm_event is called directly, not through pluggy: that alone was ~2 µs an event); the rest is
the OpenTelemetry SDK's own cost per span and per histogram record, so the overhead per event grows
with the turns and tool calls per event, not with the events.
"""


def time_studio(steps: list[Step], tty: Any | None) -> tuple[float, int, Any]:
    """CPU seconds of one ``run_once`` of ``steps`` shown by the studio view on ``tty``
    (``None``: no renderer), view closed included; stored events; the view's statistics."""
    from asm_rich import StudioRenderer

    async def main() -> tuple[float, int, Any]:
        manager = asm.SessionManager(asm.InMemorySessionStore(), provider=ScriptedProvider(steps, model="model-x"))
        start = time.process_time()
        if tty is None:
            run = await manager.run_once("benchmark")
            stats = None
        else:
            async with StudioRenderer().view(tty) as view:
                run = await manager.run_once("benchmark", on_event=view)
            stats = view.statistics()
        seconds = time.process_time() - start
        assert run.status is asm.RunStatus.COMPLETED, run.error
        return seconds, await manager.store.latest_seq(run.session_id), stats

    gc.collect()
    return trio.run(main)


def measure_studio(events: int, repeats: int) -> str:
    import signal
    import subprocess
    import threading

    steps = script(events, 100)
    master, slave = os.openpty()
    # The terminal's other side: `cat` reads it (its CPU is not this process's).
    reader = subprocess.Popen(["cat"], stdin=master, stdout=subprocess.DEVNULL)
    tty = os.fdopen(slave, "w", encoding="utf-8", closefd=False)
    os.environ.setdefault("COLUMNS", "120")
    os.environ.pop("NO_COLOR", None)
    try:
        assert tty.isatty()
        time_studio(steps, None)  # warm-up: imports, caches
        time_studio(steps, tty)
        base: list[float] = []
        studio: list[float] = []
        stored = 0
        stats = None
        for _ in range(repeats):
            seconds, stored, _ = time_studio(steps, None)
            base.append(seconds)
            seconds, _, stats = time_studio(steps, tty)
            studio.append(seconds)
        # A terminal that reads nothing while the run goes on: the view's writes wait.
        stopped: list[float] = []
        stopped_stats = None
        for _ in range(repeats):
            reader.send_signal(signal.SIGSTOP)
            # The view's last write waits for the reader: a timer thread resumes it after STOPPED_S.
            resume = threading.Timer(STOPPED_S, reader.send_signal, args=(signal.SIGCONT,))
            resume.start()
            try:
                seconds, _, stopped_stats = time_studio(steps, tty)
            finally:
                resume.cancel()
                reader.send_signal(signal.SIGCONT)
            stopped.append(seconds)
    finally:
        tty.close()
        reader.terminate()
        reader.wait()
        os.close(master)
        os.close(slave)
    best = (min(studio) - min(base)) / stored * 1e6
    median = (statistics.median(studio) - statistics.median(base)) / stored * 1e6
    stopped_best = (min(stopped) - min(base)) / stored * 1e6
    stopped_median = (statistics.median(stopped) - statistics.median(base)) / stored * 1e6
    assert stats is not None and stopped_stats is not None
    verdict = ", ".join(
        f"{what}: {'yes' if figure <= TARGET_US_PER_EVENT else 'no'}"
        for what, figure in (("read as it comes", best), ("stopped", stopped_best))
    )
    plain = f"{min(base) * 1e3:.1f} ms"
    rows = "\n".join(
        [
            f"| terminal read as fast as it comes | {plain} | {min(studio) * 1e3:.1f} ms | **{best:.2f} µs** "
            f"| {median:.2f} µs |",
            f"| terminal stopped for the first {STOPPED_S:g} s | {plain} | {min(stopped) * 1e3:.1f} ms "
            f"| **{stopped_best:.2f} µs** | {stopped_median:.2f} µs |",
        ]
    )
    return f"""
`benchmarks/observability.py`: one `run_once` of {stored:,} stored events ({events:,} from the provider:
100 model turns, each streamed text, a tool call, its usage and the turn's end) on the in-memory
store, shown by asm-rich's `studio` view (`StudioRenderer().view(tty)`: the renderer behind its
bounded, coalescing buffer, a frame at most every 50 ms, written by a worker thread) on a real
pseudo-terminal whose other side `cat` reads, against the same run with no renderer. CPU time
of the process (the writing thread's included, `cat`'s not), {repeats} runs of each side
interleaved (and {repeats} with the terminal stopped), best and median; load average {load()}.

| run | no renderer | studio on a pty | overhead per event, best | median |
|---|---|---|---|---|
{rows}

Target ≤ {TARGET_US_PER_EVENT:g} µs per event (best): {verdict}. Per event the run pays a call that puts the
event in the buffer (a text delta that follows another is joined to it); rendering happens once
a frame, for everything that piled up. In the last run read as it came the view drew
{stats.frames} frames for {stats.received:,} events ({stats.coalesced:,} deltas joined into others); with the
terminal stopped, {stopped_stats.frames} frames ({stopped_stats.coalesced:,} joined): a slower terminal means fewer,
larger frames, not a slower run.
"""


def load() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


#: Each measured thing: its section of docs/performance.md and the function measuring it.
MEASURES: dict[str, tuple[str, Callable[[int, int], str]]] = {
    "otel": ("observability: asm-otel", measure_otel),
    "studio": ("observability: studio renderer", measure_studio),
}


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", choices=sorted(MEASURES), action="append")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    for key in args.only or sorted(MEASURES):
        section, measure = MEASURES[key]
        body = measure(args.events, args.repeats)
        print(f"## {section}\n{body}")
        if not args.no_write:
            write_section(section, body)


if __name__ == "__main__":
    main()
