"""asm-web: Server-Sent Event fan-out, and the sessions list on a large database.

1. Fan-out: one run of ``--events`` streamed events (the scripted provider, as fast
   as the runtime stores them: a burst; then ``--paced-events`` events ``--delay``
   apart) followed live by 1, 100 and 1,000 clients at once on loopback. The server
   runs in a child process (``asm_web.open_server``, memory store); the clients are
   raw sockets in this process, read by one epoll loop in a thread. Each client reads
   every message's id, seq and ``at``: a gap, a duplicate or a seq that is not its id
   fails the run. Events/s is every event delivered to every client (lifecycle events
   included) over the time from submitting the run to the last client seeing its
   end; delivery latency is, for every event at every client, its arrival (the read
   that completed it) minus the time the provider emitted it (its ``at``), so it
   includes the run's own store, the server and the client.
2. Sessions list: ``GET /v1/sessions?limit=50`` on a database of ``--sessions``
   sessions (SQLite file, PostgreSQL schema), over HTTP on loopback: the first page,
   a filtered page (status and agent) and a page 5,000 sessions deep.

Writes its figures into the ``web`` section of docs/performance.md.

    python benchmarks/web.py [--clients 1,100,1000] [--events 10000] [--paced-events 10000]
        [--sessions 100000] [--skip-lists] [--no-write]
"""

from __future__ import annotations

import argparse
import functools
import math
import operator
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


# -- 1. fan-out --------------------------------------------------------------


async def serve(events: int, delay: float) -> None:
    """The child process: serve a runtime whose scripted provider streams ``events`` deltas,
    ``delay`` seconds apart (0: as fast as the run stores them)."""
    from asm_web import WebOptions, open_server

    from asm import open_runtime

    chunks = [f"token {i:05d} " for i in range(events)]
    async with (
        open_runtime(
            provider="scripted", store="memory", providers={"scripted": {"chunks": chunks, "delay": delay}}
        ) as runtime,
        open_server(runtime, WebOptions(port=0, access_log=False, max_wait_seconds=600)) as url,
    ):
        print(url, flush=True)
        await trio.sleep_forever()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: One SSE message of the stream: its ``id:``, and the ``seq`` and ``at`` at the start of its JSON.
_MESSAGE = re.compile(
    rb'id: (\d+)\nevent: [a-z_]+\ndata: \{"id":"[^"]*","type":"[a-z_]+","session_id":"[^"]*",'
    rb'"run_id":(?:null|"[^"]*"),"seq":(\d+),"at":"([^"]+)"'
)


class _Stamps(dict[bytes, float]):
    """An event's ``at`` (as the stream wrote it) -> seconds since the epoch: each distinct
    stamp is converted once for all the clients, which all read the same events."""

    def __missing__(self, at: bytes) -> float:
        stamp = self[at] = datetime.fromisoformat(at.decode()).timestamp()
        return stamp


class Fanout:
    """The clients of one fan-out: raw sockets read by one epoll loop in a thread (a trio
    task per client would cost this process more than the server spends writing to it).
    Every client reads every message's id, seq and ``at``, checks each id is the one after
    its last (no gap, no duplicate), and records every event's latency (its arrival minus
    its ``at``) in a histogram of 0.1 ms bins shared by all."""

    def __init__(self, host: str, port: int, path: str, clients: int) -> None:
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        self.address = (host, port)
        self.clients = clients
        self.stamps = _Stamps()
        self.since = math.inf
        self.latency: Counter[int] = Counter()
        self.delivered = 0
        self.done: list[float] = []
        self.problems: list[str] = []
        self.cpu = 0.0
        self._sockets: dict[int, socket.socket] = {}
        self._pending: dict[int, bytes] = {}
        self._last: dict[int, int] = {}

    def connect(self) -> None:
        """Open every client's stream; returns once each has its first bytes (it is following)."""
        waiting = set()
        for _ in range(self.clients):
            sock = socket.create_connection(self.address)
            sock.sendall(self.request)
            self._sockets[sock.fileno()] = sock
            waiting.add(sock.fileno())
        with select.epoll() as poll:
            for fd in waiting:
                poll.register(fd, select.EPOLLIN)
            while waiting:
                for fd, _ in poll.poll():
                    head = self._pending.get(fd, b"") + self._sockets[fd].recv(65536)
                    assert head, "a stream closed before its headers"
                    self._pending[fd] = head
                    if b"\r\n\r\n" in head:  # the headers are in: the stream is open
                        assert head.startswith(b"HTTP/1.1 200"), head[:200]
                        self._pending[fd] = head[head.index(b"\r\n\r\n") + 4 :]
                        self._last[fd] = 0
                        waiting.discard(fd)
                        poll.unregister(fd)

    def follow(self) -> None:
        """Read every stream until its run_completed."""
        cpu = time.thread_time()
        first, seq_of, stamp_at = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)
        following = set(self._sockets)
        with select.epoll() as poll:
            for fd in following:
                poll.register(fd, select.EPOLLIN)
            while following:
                for fd, _ in poll.poll():
                    data = self._sockets[fd].recv(262144)
                    now = time.time()
                    if not data:
                        self.problems.append(f"a stream ended after id {self._last[fd]}, before run_completed")
                        following.discard(fd)
                        poll.unregister(fd)
                        continue
                    # Whole messages only (the rest waits for the next read); HTTP's chunk-size
                    # lines fall between messages, since the server writes whole messages.
                    data = self._pending[fd] + data
                    end = data.rfind(b"\n\n")
                    if end < 0:
                        self._pending[fd] = data
                        continue
                    whole, self._pending[fd] = data[: end + 2], data[end + 2 :]
                    found = _MESSAGE.findall(whole)
                    if not found:
                        continue
                    last = self._last[fd]
                    ids = list(map(int, map(first, found)))
                    if ids != list(range(last + 1, last + 1 + len(ids))) or ids != list(map(int, map(seq_of, found))):
                        self.problems.append(f"after id {last}: ids {ids[:3]}...{ids[-3:]} (a gap or duplicate)")
                    self._last[fd] = ids[-1]
                    self.delivered += len(ids)
                    self._record(now, list(map(self.stamps.__getitem__, map(stamp_at, found))))
                    if b"event: run_completed" in whole:
                        self.done.append(time.perf_counter())
                        following.discard(fd)
                        poll.unregister(fd)
        for sock in self._sockets.values():
            sock.close()
        self.cpu = time.thread_time() - cpu

    def _record(self, now: float, stamps: list[float]) -> None:
        since = self.since
        if stamps[0] < since:  # the session's own events before the run: not the fan-out's
            stamps = [s for s in stamps if s >= since]
        self.latency.update(map(int, map((10_000.0).__mul__, map(functools.partial(operator.sub, now), stamps))))

    def percentile(self, q: float) -> float:
        """The ``q`` quantile of the latencies recorded, in milliseconds."""
        total = sum(self.latency.values())
        seen = 0
        for bin_, count in sorted(self.latency.items()):
            seen += count
            if seen > q * total:
                return bin_ / 10
        return math.nan


async def fanout(url: str, clients: int) -> dict[str, float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    async with httpx2.AsyncClient(base_url=url, timeout=600) as http:
        session = (await http.post("/v1/sessions", json={})).json()
        fan = Fanout(host, int(port), f"/v1/sessions/{session['id']}/events/stream", clients)
        await trio.to_thread.run_sync(fan.connect)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio.to_thread.run_sync, fan.follow, abandon_on_cancel=False))
            started = time.perf_counter()
            fan.since = time.time()
            run = (await http.post(f"/v1/sessions/{session['id']}/runs", json={"input": "go"})).json()
        seconds = max(fan.done) - started
        finished = (await http.get(f"/v1/runs/{run['id']}")).json()
        assert finished["status"] == "completed", finished["status"]
        assert not fan.problems, fan.problems[:5]
    return {
        "clients": clients,
        "delivered": fan.delivered,
        "per_client": fan.delivered / clients,
        "rate": fan.delivered / seconds,
        "seconds": seconds,
        "p50": fan.percentile(0.50),
        "p99": fan.percentile(0.99),
        "client_cpu": fan.cpu / seconds,
    }


def run_fanout(args: argparse.Namespace, delay: float, events: int) -> list[dict[str, float]]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(events), "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        results = []
        for clients in args.clients:
            result = trio.run(fanout, url, clients)
            result["load"] = os.getloadavg()[0]
            print(
                f"fan-out (delay {delay:g}s) {clients:>5} clients: {result['rate']:>12,.0f} events/s delivered "
                f"({result['per_client']:,.0f} events each in {result['seconds']:.2f}s), "
                f"latency p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms (load {result['load']:.1f}; "
                f"the clients' process used {result['client_cpu']:.0%} of a core)",
                flush=True,
            )
            results.append(result)
        return results
    finally:
        child.terminate()
        child.wait()


# -- 2. the sessions list ----------------------------------------------------


def populate(url: str, count: int) -> None:
    """``count`` sessions, a second apart, across 10 agents and the six statuses."""
    from asm_sqlalchemy._rows import session_row
    from asm_sqlalchemy._store import _SESSIONS
    from sqlalchemy import create_engine, insert

    from asm.model import Session
    from asm.states import SessionStatus

    statuses = list(SessionStatus)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    engine = create_engine(url)
    with engine.begin() as conn:
        for start in range(0, count, 5000):
            rows = []
            for i in range(start, min(count, start + 5000)):
                when = base + timedelta(seconds=i)
                session = Session(
                    id=f"ses_{i:012d}{uuid.uuid4().hex[:8]}",
                    agent_id=f"agent-{i % 10}",
                    status=statuses[i % len(statuses)],
                    provider="echo",
                    created_at=when,
                    updated_at=when,
                )
                rows.append(session_row(session))
            conn.execute(insert(_SESSIONS), rows)
    engine.dispose()


async def list_latency(url: str, requests: int, sessions: int) -> dict[str, tuple[float, float]]:
    from asm_web import WebOptions, open_server

    from asm import open_runtime

    stores = {"sqlalchemy": {"url": url}}
    async with (
        open_runtime(store="sqlalchemy", stores=stores) as runtime,
        open_server(runtime, WebOptions(port=0, access_log=False)) as base,
        httpx2.AsyncClient(base_url=base, timeout=60) as http,
    ):
        # 5,000 sessions in, as a client gets there: a hundred pages of 50, each from the last's cursor
        deep: str | None = None
        for _ in range(min(5000, sessions - 50) // 50):
            page = (await http.get("/v1/sessions", params={"limit": 50, **({"cursor": deep} if deep else {})})).json()
            deep = page["next_cursor"]
        queries = {
            "first page": {"limit": 50},
            "status + agent": {"limit": 50, "status": "completed", "agent_id": "agent-3"},
            "5,000 deep": {"limit": 50, "cursor": deep},
        }
        results = {}
        for name, params in queries.items():
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = await http.get("/v1/sessions", params=params)
                times.append(time.perf_counter() - started)
                assert response.status_code == 200 and len(response.json()["sessions"]) == 50, response.text
            results[name] = (statistics.median(times) * 1000, percentile(times, 0.99) * 1000)
            print(f"  {name}: p50 {results[name][0]:.1f} ms, p99 {results[name][1]:.1f} ms", flush=True)
        results["load"] = (os.getloadavg()[0], 0.0)
        return results


def run_lists(args: argparse.Namespace) -> dict[str, dict[str, tuple[float, float]]]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{tmp}/sessions.db"
        trio.run(_touch, sqlite_url)
        populate(sqlite_url, args.sessions)
        print(f"sqlite, {args.sessions:,} sessions:", flush=True)
        results["SQLite"] = trio.run(list_latency, sqlite_url, args.requests, args.sessions)
    if not args.skip_postgres:
        import psycopg

        schema = f"asm_web_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            pg_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
            trio.run(_touch, pg_url)
            populate(pg_url, args.sessions)
            print(f"postgresql, {args.sessions:,} sessions:", flush=True)
            results["PostgreSQL"] = trio.run(list_latency, pg_url, args.requests, args.sessions)
        finally:
            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return results


async def _touch(url: str) -> None:
    """Open the store once: its tables are made."""
    from asm_sqlalchemy import SqlAlchemyStore

    async with SqlAlchemyStore(url) as store:
        await store.latest_seq("ses_none")


# -- the report --------------------------------------------------------------


def _fan_table(results: list[dict[str, float]]) -> list[str]:
    lines = [
        "| clients | events/s delivered (total) | seconds | delivery latency p50 | p99 | clients' CPU | load (1 min) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['clients']:,.0f} | {r['rate']:,.0f} | {r['seconds']:.2f} | {r['p50']:,.0f} ms | {r['p99']:,.0f} ms "
            f"| {r['client_cpu']:.0%} | {r['load']:.1f} |"
        )
    return lines


def _verdict(value: float, target: float, *, at_least: bool) -> str:
    return "met" if (value >= target if at_least else value <= target) else "NOT met"


def _targets(burst: list[dict[str, float]], paced: list[dict[str, float]]) -> list[str]:
    """The target's verdicts at 1,000 clients, from the figures of this run."""
    lines = []
    for name, rows in (("burst", burst), ("paced", paced)):
        for r in rows:
            if r["clients"] == 1000:
                rate = _verdict(r["rate"], 200_000, at_least=True)
                p99 = _verdict(r["p99"], 250, at_least=False)
                lines.append(
                    f"- {name}, 1,000 clients: {r['rate']:,.0f} events/s delivered (>= 200,000: {rate}), "
                    f"p99 {r['p99']:,.0f} ms (<= 250 ms: {p99}), load {r['load']:.1f}"
                )
    return lines


def report(
    args: argparse.Namespace,
    burst: list[dict[str, float]],
    paced: list[dict[str, float]],
    lists: dict[str, Any],
    load: str,
) -> None:
    lines = [
        f"Load average at the end: {load} (each row has the 1-minute load when it was measured). The "
        "server (one process, trio) and the clients (another process) share the machine's cores, and "
        "other work ran beside them.",
        "",
        "SSE fan-out of one run of streamed events (plus its lifecycle events) to N clients following the "
        "session's stream on loopback (`benchmarks/web.py`; target at 1,000 clients: >= 200,000 events/s "
        "delivered in total, p99 <= 250 ms). The clients are raw sockets read by one epoll loop in the "
        "benchmark's process; each reads every event's id, seq and `at`, and a gap or a duplicate fails the "
        "run. Latency is every event's at every client: from its `at` (stamped when the provider emitted it, "
        "before the run's write queue stores it) to the read that completed it. The clients' CPU column is "
        "the share of a core their process used: near 100%, the clients, not the server, set the pace.",
        "",
        f"A burst of {args.events:,} events: the provider emits as fast as the run stores, so the figures "
        "are the delivery capacity; every client gets every event, and the last ones wait behind the first "
        "ones in each connection (the burst's latency is that backlog):",
        "",
        *_fan_table(burst),
        "",
        f"Paced: a run of {args.paced_events:,} events, the provider waiting {args.delay * 1000:g} ms between "
        f"events (a fast model's stream; about 230 events/s, {args.paced_events * args.delay:.0f} s at the "
        "least). The session's streams share one feed; a batch gathers for `sse_batch_seconds` (20 ms) from "
        "its first event, or goes out as soon as the last one is written when that took longer; the streams "
        "are woken 10 at a time, each group given the scheduler rounds a write takes before the next, so the "
        "run keeps its pace; the seconds beyond the run's own are the loop it had to share:",
        "",
        *_fan_table(paced),
        "",
        "The target at 1,000 clients, in this run:",
        "",
        *_targets(burst, paced),
    ]
    lines += [
        "",
        f"`GET /v1/sessions?limit=50` on a database of {args.sessions:,} sessions, over HTTP on loopback "
        f"({args.requests} requests each, one at a time; target p99 <= 20 ms); the deep page is reached by "
        "following `next_cursor` (a keyset cursor: created_at and id):",
        "",
        "| database | first page p50 / p99 | status + agent filter p50 / p99 | 5,000 deep p50 / p99 | load (1 min) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for db, found in lists.items():
        cells = " | ".join(f"{found[q][0]:.1f} / {found[q][1]:.1f} ms" for q in found if q != "load")
        lines.append(f"| {db} | {cells} | {found['load'][0]:.1f} |")
    write_section("web", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,100,1000", help="comma-separated client counts")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--delay", type=float, default=0.004, help="seconds between events of the paced run")
    parser.add_argument("--paced-events", type=int, default=10_000, help="events of the paced run")
    parser.add_argument("--skip-lists", action="store_true", help="the fan-out only")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        trio.run(serve, args.serve, args.delay)
        return
    args.clients = [int(c) for c in args.clients.split(",")]
    burst = run_fanout(args, 0.0, args.events)
    paced = run_fanout(args, args.delay, args.paced_events)
    for line in _targets(burst, paced):
        print(line, flush=True)
    lists = {} if args.skip_lists else run_lists(args)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if not args.no_write:
        report(args, burst, paced, lists, load)


if __name__ == "__main__":
    main()
