"""Durable event storage with asm-sqlalchemy, on SQLite and PostgreSQL.

For each database: one run streaming N ``message_streamed`` events through
``SessionManager.run_once`` (every event durable before ``on_event`` sees it);
100 concurrent runs sharing N events; cursor replay of the N-event log in
pages of 10,000; ``wait_for_events`` wake-up latency, in-process and from
another process. Baseline, in the same run and on the same database:
openai-agents' ``SQLAlchemySession.add_items`` storing items one call per
item (how a stream is persisted as it arrives; set against asm's one run) and
1,000 items per call (set against asm's ``append_events`` in calls of 1,000).
Targets: >= 50,000 events/s on SQLite, >= 20,000 on PostgreSQL, replay
>= 200,000 events/s, >= 10x openai-agents.

    python benchmarks/store_append.py [--events N] [--runs R] [--pg-dsn DSN] [--no-write]

PostgreSQL is the server at 127.0.0.1:5432 (database ``test``); the benchmark
works in a schema of its own and drops it afterwards. openai-agents comes from
the root project's ``bench`` dependency group (``uv sync --all-packages --group bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import stopwatch, write_section
from asm_sqlalchemy import SqlAlchemyStore

from asm import Event, SessionManager
from asm.events import MessageStreamed
from asm.providers.scripted import ScriptedProvider

TARGETS = {"sqlite": 50_000, "postgresql": 20_000}
TARGET_REPLAY = 200_000
TARGET_RATIO = 10
#: Each figure is a median: one sample on a shared 2-core machine swings by 20%.
ONE_RUN_REPEATS = 3
REPLAY_REPEATS = 5

CHILD = """
import sys, time, trio
from asm import Event
from asm.events import MessageStreamed
from asm_sqlalchemy import SqlAlchemyStore

async def main(url, session_id):
    async with SqlAlchemyStore(url) as store:
        print("ready", flush=True)
        for line in sys.stdin:
            await store.append_events([Event.new(MessageStreamed(line.strip()), session_id=session_id)])
            print(time.monotonic(), flush=True)

trio.run(main, sys.argv[1], sys.argv[2])
"""


async def one_run(url: str, chunks: list[str]) -> tuple[float, str]:
    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=ScriptedProvider(chunks))
        elapsed = stopwatch()
        run = await manager.run_once("benchmark")
        seconds = elapsed()
        stored = await store.latest_seq(run.session_id)
        assert run.output == "".join(chunks) and stored >= len(chunks), (run.status, stored)
        return stored / seconds, run.session_id


async def concurrent_runs(url: str, runs: int, per_run: int) -> tuple[float, float]:
    async with SqlAlchemyStore(url) as store:
        manager = SessionManager(store, provider=ScriptedProvider([f"c{i} " for i in range(per_run)]))
        results: list[Any] = []

        async def one() -> None:
            results.append(await manager.run_once("benchmark"))

        elapsed = stopwatch()
        async with trio.open_nursery() as nursery:
            for _ in range(runs):
                nursery.start_soon(one)
        seconds = elapsed()
        total = 0
        for run in results:
            assert run.status == "completed", run.status
            total += await store.latest_seq(run.session_id)
        return total / seconds, store.statistics().appends_per_commit


async def replay(url: str, session_id: str) -> float:
    async with SqlAlchemyStore(url) as store:
        elapsed = stopwatch()
        count, cursor = 0, 0
        while True:
            page = await store.read_events(session_id, after=cursor, limit=10_000)
            count += len(page.events)
            cursor = page.cursor
            if not page.has_more:
                break
        return count / elapsed()


async def batched(url: str, items: int, per_call: int) -> float:
    """events/s of ``append_events`` with ``per_call`` pre-made events a call: the
    same work as openai-agents' batched ``add_items``."""
    async with SqlAlchemyStore(url) as store:
        session_id = f"ses_batch_{uuid.uuid4().hex}"
        events = [Event.new(MessageStreamed(f"chunk {i} "), session_id=session_id) for i in range(items)]
        elapsed = stopwatch()
        for start in range(0, items, per_call):
            await store.append_events(events[start : start + per_call])
        seconds = elapsed()
        assert await store.latest_seq(session_id) == items
        return items / seconds


async def wake_in_process(url: str, rounds: int) -> list[float]:
    latencies: list[float] = []
    async with SqlAlchemyStore(url) as store:
        session_id = f"ses_wake_{uuid.uuid4().hex}"
        clock = {"committed": 0.0}

        async def waiter(after: int) -> None:
            await store.wait_for_events(session_id, after=after, timeout=30)
            latencies.append(time.perf_counter() - clock["committed"])

        for seq in range(rounds):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter, seq)
                await trio.sleep(0.002)
                await store.append_events([Event.new(MessageStreamed("x"), session_id=session_id)])
                clock["committed"] = time.perf_counter()
    return latencies


async def wake_across_processes(url: str, rounds: int) -> list[float]:
    latencies: list[float] = []
    session_id = f"ses_xwake_{uuid.uuid4().hex}"
    child = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child fed line by line
        [sys.executable, "-c", CHILD, url, session_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert (await trio.to_thread.run_sync(child.stdout.readline)).strip() == "ready"
        async with SqlAlchemyStore(url, poll_interval=0.01) as store:
            woke: list[float] = []

            async def waiter(after: int) -> None:
                await store.wait_for_events(session_id, after=after, timeout=30)
                woke.append(time.monotonic())

            for seq in range(rounds):
                woke.clear()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(waiter, seq)
                    await trio.sleep(0.02)
                    child.stdin.write("x\n")
                    child.stdin.flush()
                    committed = float(await trio.to_thread.run_sync(child.stdout.readline))
                latencies.append(woke[0] - committed)
    finally:
        child.stdin.close()
        child.wait()
    return latencies


def openai_agents(async_url: str, items: int, per_call: int, engine_kwargs: dict[str, Any]) -> float | str:
    """items/s of SQLAlchemySession.add_items, or why it could not run."""
    try:
        from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
    except ImportError as exc:
        return f"not installed ({exc.name}); run `uv sync --all-packages --group bench`"

    async def main() -> float:
        session = SQLAlchemySession.from_url(
            f"bench_{uuid.uuid4().hex}", url=async_url, create_tables=True, engine_kwargs=engine_kwargs
        )
        payload: list[Any] = [{"role": "assistant", "content": f"chunk {i} "} for i in range(items)]
        await session.add_items(payload[:1])  # create the tables outside the timing
        elapsed = stopwatch()
        for start in range(0, items, per_call):
            await session.add_items(payload[start : start + per_call])
        seconds = elapsed()
        stored = await session.get_items()
        assert len(stored) == items + 1, len(stored)
        await session.engine.dispose()
        return items / seconds

    return asyncio.run(main())


def pg_schema(dsn: str) -> tuple[str, str, str]:
    """A fresh schema: (name, sync URL, async URL)."""
    import psycopg

    schema = f"asm_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    base = f"{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}"
    sync_url = f"postgresql+psycopg://{base}?options=-csearch_path%3D{schema}"
    async_url = f"postgresql+asyncpg://{base}"
    return schema, sync_url, async_url


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def measure(
    name: str, url: str, async_url: str, args: argparse.Namespace, engine_kwargs: dict[str, Any]
) -> dict[str, Any]:
    chunks = [f"chunk {i} " for i in range(args.events)]
    ones: list[float] = []
    for _ in range(ONE_RUN_REPEATS):  # each run a new session of the same database
        gc.collect()
        rate, session_id = trio.run(one_run, url, chunks)
        ones.append(rate)
    rate = statistics.median(ones)
    print(f"{name}: one run {rate:,.0f} events/s (median of {ONE_RUN_REPEATS}: {ones})", flush=True)
    concurrent, per_commit = trio.run(concurrent_runs, url, args.runs, args.events // args.runs)
    print(f"{name}: {args.runs} runs {concurrent:,.0f} events/s ({per_commit:.1f} appends/commit)", flush=True)
    replays = [trio.run(replay, url, session_id) for _ in range(REPLAY_REPEATS)]
    replayed = statistics.median(replays)
    print(f"{name}: replay {replayed:,.0f} events/s (median of {REPLAY_REPEATS})", flush=True)
    local = trio.run(wake_in_process, url, 200)
    remote = trio.run(wake_across_processes, url, 50)
    print(
        f"{name}: wake {statistics.median(local) * 1e3:.2f} ms / {statistics.median(remote) * 1e3:.2f} ms", flush=True
    )
    own_batched = statistics.median([trio.run(batched, url, args.events, 1000) for _ in range(ONE_RUN_REPEATS)])
    single = openai_agents(async_url, args.baseline_items, 1, engine_kwargs)
    their_batched = openai_agents(async_url, args.events, 1000, engine_kwargs)
    print(
        f"{name}: asm append_events {own_batched:,.0f} events/s (1,000/call); openai-agents {single} items/s "
        f"(1/call), {their_batched} items/s (1,000/call)",
        flush=True,
    )
    return {
        "one": rate,
        "concurrent": concurrent,
        "per_commit": per_commit,
        "replay": replayed,
        "local": local,
        "remote": remote,
        "own_batched": own_batched,
        "single": single,
        "batched": their_batched,
    }


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(values) * 1e3:.2f} ms median, {p99 * 1e3:.2f} ms p99"


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, load: tuple[float, float]) -> str:
    lines = [
        f"Load average (1 min) at the start and end of the run: {load[0]:.1f} / {load[1]:.1f} "
        "(figures are wall-clock; other work on a shared machine lowers them).",
        "",
        f"One run streaming {args.events:,} `message_streamed` events through `SessionManager.run_once` "
        f"(each event committed before `on_event` sees it; median of {ONE_RUN_REPEATS} runs); "
        f"{args.runs} concurrent runs sharing {args.events:,} events; replay of a {args.events:,}-event log "
        f"in pages of 10,000 (median of {REPLAY_REPEATS}); `wait_for_events` wake-up from commit to the "
        "waiter holding the event "
        "(200 rounds in-process, 50 from another process; SQLite waiters in other processes poll "
        "`PRAGMA data_version` every 10 ms here, PostgreSQL ones use LISTEN/NOTIFY).",
        "",
        "| database | one run | 100 runs | replay | wake, same process | wake, other process |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['one']:,.0f} events/s | {r['concurrent']:,.0f} events/s "
            f"({r['per_commit']:.1f} appends per commit) | {r['replay']:,.0f} events/s | {_ms(r['local'])} | "
            f"{_ms(r['remote'])} |"
        )
    lines += [
        "",
        "Baseline on the same database in the same run: openai-agents' `SQLAlchemySession.add_items` "
        f"(aiosqlite / asyncpg), {args.baseline_items:,} items one per call (a stream persisted as it "
        f"arrives), set against asm's one run; and {args.events:,} items 1,000 per call, set against asm's "
        f"`append_events` with the same {args.events:,} pre-made events 1,000 per call (median of "
        f"{ONE_RUN_REPEATS}).",
        "",
        "| database | add_items, 1 per call | asm one run ÷ that | add_items, 1,000 per call | asm `append_events`, "
        "1,000 per call | ÷ that |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = []
        for key, ours in (("single", r["one"]), ("batched", r["own_batched"])):
            value = r[key]
            if isinstance(value, float):
                cells += [f"{value:,.0f} items/s"]
                cells += [f"{ours:,.0f} events/s"] if key == "batched" else []
                cells += [f"{ours / value:.1f}x"]
            else:
                cells += [value, "-"] if key == "single" else [value, f"{ours:,.0f} events/s", "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Targets:"]
    for name, r in results.items():
        target = TARGETS[name]
        lines.append(
            f"- {name}: one run {r['one']:,.0f} events/s vs target {target:,} — "
            f"{'met' if r['one'] >= target else 'NOT met'}; replay {r['replay']:,.0f} vs {TARGET_REPLAY:,} — "
            f"{'met' if r['replay'] >= TARGET_REPLAY else 'NOT met'}"
            + (
                f"; {r['one'] / r['single']:.0f}x openai-agents (1 per call) vs {TARGET_RATIO}x — "
                f"{'met' if r['one'] / r['single'] >= TARGET_RATIO else 'NOT met'}"
                if isinstance(r["single"], float)
                else ""
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--baseline-items", type=int, default=2_000, help="items for the one-per-call baseline")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()

    results: dict[str, dict[str, Any]] = {}
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        results["sqlite"] = measure("sqlite", f"sqlite:///{path}", f"sqlite+aiosqlite:///{path}", args, {})
    schema, sync_url, async_url = pg_schema(args.pg_dsn)
    try:
        # openai-agents' tables go to the same schema of the same database.
        settings = {"connect_args": {"server_settings": {"search_path": schema}}}
        results["postgresql"] = measure("postgresql", sync_url, async_url, args, settings)
    finally:
        drop_schema(args.pg_dsn, schema)
    body = report(results, args, (load_start, os.getloadavg()[0]))
    print(body)
    if not args.no_write:
        write_section("Durable event storage (asm-sqlalchemy)", body)


if __name__ == "__main__":
    main()
