"""Scale-out with asm-celery: runs/s and events/s over 1, 2 and 4 ``asm worker``
processes, submit-to-start latency with a free worker, and the time from SIGKILL
of a worker to its run restarting on another.

Against the local RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432); each
phase uses a database and a queue of its own, removed afterwards. The provider is
asm's ``scripted`` one: ``--events`` streamed chunks per run with ``--latency``
seconds before each (simulated provider latency: the runs are I/O-bound).
``--runs`` runs go over ``--sessions`` sessions (per-session FIFO,
``max_concurrent_runs=1``), submitted from one client process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import psycopg
import trio
from _report import write_section

import asm
from asm.events import EventType

NOTE = """\
What bounds it: one worker of 16 slots could do at most 16 runs/s (a run is at least 50 x 20 ms);
more workers add slots until the two cores run out. Everything shares them - RabbitMQ, PostgreSQL,
the client, the workers: the table gives each one's CPU per run (RabbitMQ's is under 1 ms). The
sessions take turns: after a run, its session's token goes to the back of the queue, so every
slot stays busy to the end (when a worker went on with a session's runs in the same slot, the
sessions past the first 64 started only once those had run all theirs, and four workers idled
through the second half: 37-41 runs/s). A run's deltas come 20 ms apart and each is durable
before it is delivered; the workers' store waits 5 ms before each commit (`batch_delay`) so that
a commit carries the events of several runs. The client's `wait` sleeps until the ledger's NOTIFY
says a run of its session is done, and pooled connections are pinged only after a second idle
(pings were 25 of a run's 43 transactions). The ratio is of runs/s on one machine; with workers
on cores (or machines) of their own it is bounded by the database's write rate instead
(docs/scaling.md). Submit to start: the client's append, ledger insert and publish, the broker
hop, the worker's claim (one transaction: lock, open rows, update), then execute_run's reads
(run, session), the store's claim, and the continuation plan."""

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def prefork_worker(config: str, name: str, concurrency: int) -> None:
    """(A child process of the benchmark.) A Celery worker on the prefork pool executing asm
    runs: each pool process opens a runtime of its own (a trio loop, a store pool, a ledger) and
    runs one run at a time. Only to measure the pool against asm worker's threads pool: it has
    no graceful-drain handling (asm worker ships the threads pool)."""
    from asm_celery import WorkerHost, celery_options, make_app
    from asm_celery._cli import register_task
    from celery import signals

    from asm import load_config

    loaded = load_config(config_file=config)
    options = celery_options(loaded.config)
    app = make_app(options)
    hosts: list[WorkerHost] = []

    class ChildHost:
        """The pool process's host, opened after the fork (threads do not survive one)."""

        options = celery_options(loaded.config)
        worker_id = name

        def handle(self, run_id: str) -> Any:
            return hosts[0].handle(run_id)

    def child_init(**_: Any) -> None:
        host = WorkerHost(loaded, options, worker_id=f"{name}-{os.getpid()}")
        host.start()
        hosts.append(host)

    def child_exit(**_: Any) -> None:
        for host in hosts:
            host.stop()

    signals.worker_process_init.connect(child_init, weak=False)
    signals.worker_process_shutdown.connect(child_exit, weak=False)
    signals.worker_ready.connect(
        lambda **_: print(f"ready (pid {os.getpid()})", file=sys.stderr, flush=True), weak=False
    )
    register_task(app, ChildHost())  # type: ignore[arg-type]
    worker = app.Worker(
        hostname=name,
        pool="prefork",
        concurrency=concurrency,
        queues=[options.queue],
        loglevel="WARNING",
        without_gossip=True,
        without_mingle=True,
        quiet=True,
    )
    worker.start()


BROKER = "amqp://guest:guest@127.0.0.1:5672//"


@contextlib.contextmanager
def environment(args: argparse.Namespace, **celery: Any) -> Iterator[Path]:
    """A database, a queue and an asm.toml for one phase; removed afterwards."""
    database = f"asm_bench_{uuid.uuid4().hex[:10]}"
    queue = f"asm.bench.{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    settings = {"queue": queue, "concurrency": args.concurrency, "poll_interval": 5.0, **celery}
    chunks = [f"token {i} " for i in range(args.events)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "asm.toml"
            path.write_text(
                "\n".join(
                    [
                        'provider = "scripted"',
                        'store = "sqlalchemy"',
                        "max_parallel_runs = 10000",
                        "[stores.sqlalchemy]",
                        f'url = "postgresql+psycopg://postgres@127.0.0.1:5432/{database}"',
                        f"batch_delay = {args.batch_delay}",
                        "[providers.scripted]",
                        f"chunks = {chunks!r}",
                        f"delay = {args.latency}",
                        "[server]",
                        'backend = "celery"',
                        "[celery]",
                        f'broker_url = "{BROKER}"',
                        *(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in settings.items()),
                    ]
                )
                + "\n"
            )
            yield path
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        with kombu.Connection(BROKER) as conn:
            channel = conn.channel()
            channel.queue_delete(queue)
            channel.close()


@contextlib.contextmanager
def workers(
    config: Path, count: int, pool: str = "threads", slots: int = 16
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` ``asm worker`` processes (or prefork workers of ``slots`` processes), ready;
    stopped with SIGTERM afterwards."""
    started = []
    logs = []
    for index in range(count):
        log = config.parent / f"w{index}.log"
        logs.append(log)
        if pool == "prefork":
            command = [sys.executable, __file__, "--prefork-worker", str(config), f"bench-{index}", str(slots)]
        else:
            command = [sys.executable, "-c", "from asm.cli import main; main()", "worker", "--name", f"bench-{index}"]
        with log.open("wb") as out:
            started.append(
                subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "ASM_CONFIG": str(config)},
                )
            )
    try:
        for process, log in zip(started, logs, strict=True):
            while "ready (pid" not in log.read_text(errors="replace"):
                if process.poll() is not None:
                    raise SystemExit(log.read_text(errors="replace"))
                time.sleep(0.05)
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()


async def throughput(config: Path, args: argparse.Namespace) -> dict[str, float]:
    """Submit ``runs`` runs over ``sessions`` sessions and wait for all of them."""
    async with asm.open_runtime(config_file=config) as rt, contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(asm.open_session_server(rt, max_queued_runs=args.runs))
            for _ in range(args.sessions)
        ]
        per_session = args.runs // args.sessions
        started = time.perf_counter()

        async def submit(server: Any) -> None:
            for i in range(per_session):
                await server.submit(f"run {i}")

        async with trio.open_nursery() as nursery:
            for server in servers:
                nursery.start_soon(submit, server)
        submitted = time.perf_counter() - started
        for server in servers:
            await server.drain()
        elapsed = time.perf_counter() - started
        with psycopg.connect(ADMIN) as admin:  # every process's connections to the database, the client's too
            (connections,) = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (rt.store.url.database,)
            ).fetchone() or (0,)
        events = 0
        for server in servers:
            log = (await rt.store.read_events(server.session_id)).events
            events += len(log)
            starts = [e.run_id for e in log if e.type is EventType.RUN_STARTED]
            assert len(starts) == len(set(starts)) == per_session, "a run started twice or never"
        return {
            "runs_per_s": per_session * len(servers) / elapsed,
            "events_per_s": events / elapsed,
            "seconds": elapsed,
            "submit_s": submitted,
            "connections": connections,
        }


async def start_latency(config: Path, samples: int) -> list[float]:
    """Seconds from ``run_queued`` to ``run_started`` of runs submitted one at a time to a free
    worker, after one warm-up run (the client's first publish opens its broker connection)."""
    latencies = []
    async with asm.open_runtime(config_file=config) as rt, asm.open_session_server(rt) as server:
        # Not measured: the client's first submit also connects to the broker (~0.1 s here).
        await server.wait(await server.submit("warm-up"))
        for i in range(samples):
            run_id = await server.submit(f"sample {i}")
            await server.wait(run_id)
            log = (await rt.store.read_events(server.session_id, run_id=run_id)).events
            queued = next(e.at for e in log if e.type is EventType.RUN_QUEUED)
            begun = next(e.at for e in log if e.type is EventType.RUN_STARTED)
            latencies.append((begun - queued).total_seconds())
    return latencies


async def takeover(config: Path, processes: list[subprocess.Popen[bytes]], repeats: int) -> list[float]:
    """Seconds from SIGKILL of the worker executing a run to that run starting again on another."""
    times = []
    async with asm.open_runtime(config_file=config) as rt, asm.open_session_server(rt) as server:
        alive = {p.pid: p for p in processes}
        for i in range(repeats):
            run_id = await server.submit(f"victim {i}")
            after = 0
            while True:  # until it streams
                page = await rt.store.wait_for_events(server.session_id, after=after, timeout=1.0)
                after = page.cursor
                if any(e.run_id == run_id and e.type is EventType.MESSAGE_STREAMED for e in page.events):
                    break
            owner = (await rt.store.get_run(run_id)).owner
            assert owner is not None
            killed = time.time()
            alive.pop(owner.process.pid).send_signal(signal.SIGKILL)
            while True:
                page = await rt.store.wait_for_events(server.session_id, after=after, timeout=1.0)
                after = page.cursor
                restart = [e for e in page.events if e.run_id == run_id and e.type is EventType.RUN_STARTED]
                if restart:
                    times.append(restart[0].at.timestamp() - killed)
                    break
            run = await server.cancel(run_id)  # done measuring; the next round needs a free worker
            assert run.status.is_terminal
            if not alive:
                break
    return times


def tree_rss(pids: list[int]) -> int:
    """Resident bytes of processes ``pids`` and their children."""
    total = 0
    todo = list(pids)
    while todo:
        pid = todo.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0]) * 1024
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, IndexError):
            continue
    return total


def postgres_cpu() -> float:
    """CPU seconds used so far by the PostgreSQL server: its live processes, and the
    backends that have exited (counted in the postmaster's children's time)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if name == "postgres" or name.startswith("postgres:"):
            # fields[11:15]: utime, stime, cutime, cstime (proc(5), counted from the state field)
            total += sum(int(value) for value in fields[11:15])
    return total / tick


def phase(args: argparse.Namespace, count: int, pool: str = "threads") -> dict[str, float]:
    """One throughput phase: its figures, the CPU per run of the workers (from the benchmark's
    children's rusage: their start-up included), of the client (this process) and of PostgreSQL,
    and the workers' resident memory at the end."""
    with environment(args) as config:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with workers(config, count, pool, args.concurrency) as processes:
            client, database = resource.getrusage(resource.RUSAGE_SELF), postgres_cpu()
            result = trio.run(throughput, config, args)
            client_after, database_after = resource.getrusage(resource.RUSAGE_SELF), postgres_cpu()
            result["rss_mb"] = tree_rss([process.pid for process in processes]) / 1e6
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = {
        "worker_cpu_ms": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "client_cpu_ms": (client_after.ru_utime + client_after.ru_stime) - (client.ru_utime + client.ru_stime),
        "postgres_cpu_ms": database_after - database,
    }
    result.update({key: seconds * 1000 / args.runs for key, seconds in used.items()})
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    if sys.argv[1:2] == ["--prefork-worker"]:
        prefork_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=16, help="runs per worker process")
    parser.add_argument(
        "--batch-delay", type=float, default=0.005, help="the store's batch_delay (group commit wait), seconds"
    )
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--prefork", default="1", help="worker counts to measure on the prefork pool too ('' for none)")
    parser.add_argument("--samples", type=int, default=100, help="submit-to-start samples")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    load_start = os.getloadavg()
    results: dict[int, dict[str, float]] = {}
    prefork: dict[int, dict[str, float]] = {}
    for count in (int(n) for n in args.workers.split(",")):
        results[count] = phase(args, count)
        print(count, results[count], os.getloadavg(), flush=True)
    for count in (int(n) for n in args.prefork.split(",") if n):
        prefork[count] = phase(args, count, "prefork")
        print("prefork", count, prefork[count], os.getloadavg(), flush=True)
    with environment(args) as config, workers(config, 1):
        latencies = trio.run(start_latency, config, args.samples)
    print("latency p50/p99", pct(latencies, 0.5), pct(latencies, 0.99), flush=True)
    with environment(args, lease_s=30.0, on_worker_lost="restart") as config, workers(config, 4) as processes:
        kills = trio.run(takeover, config, processes, 3)
    print("takeover", kills, flush=True)
    load_end = os.getloadavg()
    base = results[min(results)]["runs_per_s"]
    rows = [
        f"| {count} | {r['runs_per_s']:.1f} | {r['events_per_s']:,.0f} | {r['runs_per_s'] / base:.2f}x | "
        f"{r['seconds']:.1f} s | {r['submit_s']:.1f} s | {r['worker_cpu_ms']:.0f} / {r['client_cpu_ms']:.0f} / "
        f"{r['postgres_cpu_ms']:.0f} ms | {r['rss_mb']:.0f} MB | {r['connections']:.0f} |"
        for count, r in sorted(results.items())
    ]
    pools = [
        f"| {pool} | {count} x {args.concurrency} | {r['runs_per_s']:.1f} | {r['worker_cpu_ms']:.0f} ms | "
        f"{r['rss_mb']:.0f} MB | {r['connections']:.0f} |"
        for count in sorted(prefork)
        for pool, r in (("threads", results[count]), ("prefork", prefork[count]))
        if count in results
    ]
    best = results[max(results)]["runs_per_s"] / base
    p50, p90, p99 = (pct(latencies, q) * 1000 for q in (0.5, 0.9, 0.99))
    half = len(latencies) // 2
    early, late = pct(latencies[:half], 0.5) * 1000, pct(latencies[half:], 0.5) * 1000
    body = "\n".join(
        [
            f"Load average (1, 5 min) at the start: {load_start[0]:.1f}, {load_start[1]:.1f}; at the end: "
            f"{load_end[0]:.1f}, {load_end[1]:.1f} (2 cores, shared with other work). RabbitMQ, PostgreSQL, "
            "the client and the workers all on this one machine.",
            "",
            f"{args.runs:,} runs over {args.sessions} sessions (per-session FIFO, `max_concurrent_runs=1`), submitted "
            f"from one client; the `scripted` provider streams {args.events} chunks per run with "
            f"{args.latency * 1000:.0f} ms before each (I/O-bound runs); each `asm worker` runs "
            f"{args.concurrency} runs at once (threads pool, one trio loop per process), its store with "
            f"`batch_delay = {args.batch_delay}` (docs/scaling.md: a commit waits that long for the other runs' "
            "events, as PostgreSQL's `commit_delay` does). Wall time from the first "
            "submit to the last run ended; CPU per run is user + system time of the workers (start-up included), "
            "of the client and of PostgreSQL (all its processes); memory the workers' resident set at the end; "
            "connections those to the database at the end (every worker's and the client's).",
            "",
            "| workers | runs/s | events/s | vs 1 worker | wall time | submitting took "
            "| CPU per run: workers / client / PostgreSQL | worker memory | connections |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Target: {max(results)} workers >= 3x one worker's runs/s: "
            f"{'met' if best >= 3 else 'missed'} ({best:.3f}x).",
            "",
            *(
                [
                    "Celery's pools, the same runs and slots (prefork: one process per slot, each with its own "
                    "runtime, one run at a time; measured with the benchmark's own prefork worker):",
                    "",
                    "| pool | workers x slots | runs/s | worker CPU per run | worker memory | connections |",
                    "|---|---|---|---|---|---|",
                    *pools,
                    "",
                ]
                if pools
                else []
            ),
            f"Submit to `run_started` (the stored `run_queued` and `run_started` times) with a free worker, "
            f"{len(latencies)} runs one at a time in one session after one warm-up run (the client's first "
            f"publish connects to the broker): p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms (median of the "
            f"first half {early:.1f} ms, of the second {late:.1f} ms); target p99 <= 50 ms: "
            f"{'met' if p99 <= 50 else 'missed'}.",
            "",
            "SIGKILL of the worker executing a run to the run's `run_started` on another worker "
            f'(`on_worker_lost = "restart"`, same host: the dead owner is seen at once, no lease wait), '
            f"{len(kills)} kills: " + ", ".join(f"{k * 1000:.0f} ms" for k in kills) + ".",
            "",
            NOTE,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("Scale-out (asm-celery)", body)


if __name__ == "__main__":
    main()
