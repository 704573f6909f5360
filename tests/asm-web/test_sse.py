"""Server-Sent Event streams on a real loopback server: the wire format, resuming
with Last-Event-ID after connections cut at random points and a server restart
(no gap, no duplicate), many clients sharing one session's feed, slow and non-reading
clients, clients joining mid-run, the session-list stream."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from _asm_web_helpers import Gate, live_server, live_service, sse_chunks
from asm_web import Client, WebOptions

from asm.events import RUN_END_TYPES, Event, EventType
from asm.pubsub import subscriber_count
from asm.serde import event_from_dict
from asm.sse import SSEDecoder

pytestmark = pytest.mark.usefixtures("isolated")


async def read_stream(
    url: str,
    session_id: str,
    *,
    last_event_id: int | None = None,
    cut_after_bytes: int | None = None,
    until: Any = None,
    params: dict[str, str] | None = None,
    caught_up: bool = False,
) -> tuple[list[Event], str]:
    """Open the stream, read until ``until(events)`` is true or ``cut_after_bytes`` bytes
    came (then drop the connection mid-way); the complete events read, and the raw text."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    decoder = SSEDecoder()
    events: list[Event] = []
    raw = b""
    stream_url = f"{url}/v1/sessions/{session_id}/events/stream"
    async with sse_chunks(stream_url, headers=headers, params=params) as (response, chunks):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        with trio.fail_after(30):
            async for chunk in chunks:
                if cut_after_bytes is not None and len(raw) + len(chunk) >= cut_after_bytes:
                    chunk = chunk[: cut_after_bytes - len(raw)]
                raw += chunk
                events += [event_from_dict(json.loads(data)) for _, data in decoder.feed(chunk)]
                if cut_after_bytes is not None and len(raw) >= cut_after_bytes:
                    break
                if until is not None and until(events):
                    break
                if caught_up and raw.endswith(b": heartbeat\n\n"):
                    break  # idle: everything there is was read
    return events, raw.decode("utf-8", "replace")


def ended(run_id: str) -> Any:
    return lambda events: any(e.run_id == run_id and e.data.type in RUN_END_TYPES for e in events)


async def test_the_wire_format_backfill_then_live_and_heartbeats(gate: Gate) -> None:
    async with live_server(gate, WebOptions(port=0, heartbeat_seconds=0.05)) as url, Client(url) as client:
        session = await client.create_session()
        run = await client.submit(session.id, "hi")
        gate.release("one ")
        await gate.started.wait()

        def saw(text: str) -> Any:
            return lambda events: any(getattr(e.data, "delta", None) == text for e in events)

        events, raw = await read_stream(url, session.id, until=saw("one "))
        assert raw.startswith("retry: 1000\n\n")
        first = events[0]
        assert f"id: {first.seq}\nevent: session_created\ndata: " in raw
        assert [e.seq for e in events] == list(range(1, len(events) + 1))

        async def finish_later() -> None:
            gate.release("two")
            gate.finish()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(finish_later)
            rest, raw = await read_stream(url, session.id, last_event_id=events[-1].seq, until=ended(run.id))
        assert rest[0].seq == events[-1].seq + 1
        assert [getattr(e.data, "delta", None) for e in rest if e.data.type is EventType.MESSAGE_STREAMED] == ["two"]
        # idle: heartbeats are comments, which no SSE client takes for an event
        _, idle = await read_stream(url, session.id, last_event_id=rest[-1].seq, until=None, cut_after_bytes=60)
        assert ": heartbeat\n\n" in idle
        by_after, _ = await read_stream(
            url, session.id, params={"after": str(rest[-2].seq)}, until=lambda events: len(events) >= 1
        )
        assert by_after[0].seq == rest[-1].seq


async def test_a_filtered_stream_of_a_busy_session_still_gets_its_heartbeats(gate: Gate) -> None:
    """The session's feed wakes every stream for each batch; a stream whose filter matches
    none of it must still say it is alive once nothing was written for heartbeat_seconds."""
    async with live_server(gate, WebOptions(port=0, heartbeat_seconds=0.05)) as url, Client(url) as client:
        session = await client.create_session()
        run = await client.submit(session.id, "hi")
        await gate.started.wait()
        heard = trio.Event()

        async def keep_busy() -> None:
            # deltas the stream filters out, until it has heard a heartbeat (the pace only keeps the
            # feed waking the stream; without the fix the read below times out)
            while not heard.is_set():
                gate.release("x")
                await trio.sleep(0.01)
            gate.finish()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_busy)
            events, raw = await read_stream(url, session.id, params={"types": "run_completed"}, caught_up=True)
            heard.set()
        assert events == [] and raw.endswith(": heartbeat\n\n")
        done, _ = await read_stream(url, session.id, params={"types": "run_completed"}, until=ended(run.id))
        assert [e.type for e in done] == [EventType.RUN_COMPLETED]


async def test_resume_after_random_cuts_and_a_server_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261205)
    config: dict[str, Any] = {"store": "sqlite", "stores": {"sqlite": {"path": str(tmp_path / "asm.db")}}}
    seen: list[Event] = []
    followed: list[Event] = []

    async def read_with_cuts(url: str, session_id: str, rounds: int) -> None:
        for _ in range(rounds):
            cursor = seen[-1].seq if seen else 0
            events, _ = await read_stream(
                url, session_id, last_event_id=cursor, cut_after_bytes=rng.randint(1, 2500), caught_up=True
            )
            assert [e.seq for e in events] == list(range(cursor + 1, cursor + 1 + len(events)))
            seen.extend(events)

    async def follow(client: Client, session_id: str, run_ids: list[str], done: trio.Event) -> None:
        async with client.follow(session_id, reconnect_delay=0.05) as events:
            async for event in events:
                followed.append(event)
                if len(run_ids) == 2 and event.run_id == run_ids[1] and event.data.type in RUN_END_TYPES:
                    break
        done.set()

    first_gate = Gate()
    run_ids: list[str] = []
    async with trio.open_nursery() as outer:
        followed_all = trio.Event()
        async with live_server(first_gate, WebOptions(port=0, heartbeat_seconds=0.2), **config) as url:
            port = int(url.rsplit(":", 1)[1])
            client = Client(url)
            session = await client.create_session()
            outer.start_soon(follow, client, session.id, run_ids, followed_all)
            run_ids.append((await client.submit(session.id, "first")).id)
            for round_ in range(8):
                first_gate.release(*(f"r{round_}.{i} " for i in range(rng.randint(1, 12))))
                await read_with_cuts(url, session.id, rounds=2)
        # The server stopped mid-run (the run is recorded cancelled); a new one on the same port and store.
        second_gate = Gate()
        async with live_server(second_gate, WebOptions(port=port, heartbeat_seconds=0.2), **config) as url:
            run_ids.append((await client.submit(session.id, "second")).id)
            for round_ in range(6):
                second_gate.release(*(f"s{round_}.{i} " for i in range(rng.randint(1, 12))))
                await read_with_cuts(url, session.id, rounds=2)
            second_gate.finish()
            cursor = seen[-1].seq
            rest, _ = await read_stream(url, session.id, last_event_id=cursor, until=ended(run_ids[1]))
            seen.extend(rest)
            with trio.fail_after(60):
                await followed_all.wait()
            page = await client.read_events(session.id, limit=1000)
            await client.aclose()
    stored = [e.seq for e in page.events]
    assert stored == list(range(1, len(stored) + 1))
    assert [e.seq for e in seen] == stored  # the cut reader: every event once, in order
    assert [e.id for e in seen] == [e.id for e in page.events]
    assert [e.seq for e in followed] == stored  # the client's follow, across the restart
    types = [e.data.type for e in page.events]
    assert EventType.RUN_CANCELLED in types and types[-1] is EventType.RUN_COMPLETED


async def test_a_slow_reader_never_holds_a_run_back_and_catches_up(gate: Gate) -> None:
    async with live_server(gate) as url, Client(url) as client:
        session = await client.create_session()
        run = await client.submit(session.id, "lots")
        async with sse_chunks(f"{url}/v1/sessions/{session.id}/events/stream") as (_, chunks):
            # not reading: the run still ends, far more events than any live buffer later
            gate.release(*(f"{i:05d}" for i in range(5000)))
            gate.finish()
            finished = await client.wait_until_done(run.id)
            assert finished.status.value == "completed"
            decoder = SSEDecoder()
            seqs: list[int] = []
            ends = {t.value for t in RUN_END_TYPES}
            with trio.fail_after(60):
                async for chunk in chunks:
                    names = []
                    for name, data in decoder.feed(chunk):
                        seqs.append(json.loads(data)["seq"])
                        names.append(name)
                    if ends & set(names):
                        break
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 5000


async def test_the_session_list_stream_tells_of_each_change(gate: Gate) -> None:
    async with live_server(gate, WebOptions(port=0, heartbeat_seconds=0.05)) as url, Client(url) as client:
        async with sse_chunks(f"{url}/v1/sessions/stream") as (response, chunks):
            assert response.status_code == 200
            session = await client.create_session(agent_id="watched")
            run = await client.submit(session.id, "hi")
            gate.finish()
            await client.wait_until_done(run.id)
            decoder = SSEDecoder()
            changes: list[dict[str, Any]] = []
            with trio.fail_after(30):
                async for chunk in chunks:
                    changes += [json.loads(data) for name, data in decoder.feed(chunk) if name == "session"]
                    if any(c["event"] == "run_completed" for c in changes):
                        break
        assert changes[0]["event"] == "session_created" and changes[0]["session"]["id"] == session.id
        assert changes[0]["session"]["status"] == "pending"
        assert [c["session"]["status"] for c in changes if c["event"] == "run_started"] == ["active"]
        assert {c["run_id"] for c in changes if c["event"].startswith("run_")} == {run.id}


async def test_follow_store_streams_runs_of_another_process(tmp_path: Path) -> None:
    from asm.config import AsmConfig
    from asm.runtime import open_runtime

    config: dict[str, Any] = {"store": "sqlite", "stores": {"sqlite": {"path": str(tmp_path / "shared.db")}}}
    async with live_server(Gate(), WebOptions(port=0, follow="store"), **config) as url, Client(url) as client:
        # another runtime on the same database: its events reach the store, not this server's manager
        async with open_runtime(AsmConfig(provider="echo", **config)) as other:
            session = await other.manager.start_session(agent_id="elsewhere")
            async with client.follow(session.id) as events:
                await other.manager.activate_session(session.id)
                run = await other.manager.start_run(session.id, "seen from afar")

                async def execute() -> None:
                    await other.manager.execute_run(run.id)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(execute)
                    text = ""
                    with trio.fail_after(30):
                        async for event in events:
                            if event.data.type is EventType.MESSAGE_STREAMED:
                                text += event.data.delta  # type: ignore[attr-defined]
                            if event.data.type is EventType.RUN_COMPLETED:
                                break
        assert text == "seen from afar"
        assert events.cursor == (await client.read_events(session.id, limit=1000)).events[-1].seq


class Reader:
    """One SSE client reading a session's stream in a task of its own, until its run ends."""

    def __init__(self, url: str, session_id: str, *, last_event_id: int | None = None) -> None:
        self.url = f"{url}/v1/sessions/{session_id}/events/stream"
        self.headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.events: list[Event] = []
        self._changed = trio.Event()

    async def run(self, run_id: str) -> None:
        decoder = SSEDecoder()
        async with sse_chunks(self.url, headers=self.headers) as (response, chunks):
            assert response.status_code == 200
            async for chunk in chunks:
                self.events += [event_from_dict(json.loads(data)) for _, data in decoder.feed(chunk)]
                self._changed.set()
                self._changed = trio.Event()
                if ended(run_id)(self.events):
                    return

    async def wait_for_delta(self, text: str) -> None:
        """Return once this reader has the event streaming ``text``."""
        while not any(getattr(e.data, "delta", None) == text for e in self.events):
            await self._changed.wait()

    @property
    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]


async def test_many_clients_of_a_session_share_one_feed_and_each_gets_every_event_once(gate: Gate) -> None:
    async with live_service(gate) as (url, service, runtime), Client(url) as client:
        session = await client.create_session()
        run = await client.submit(session.id, "hi")
        readers = [Reader(url, session.id) for _ in range(25)]
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for reader in readers:
                    nursery.start_soon(reader.run, run.id)
                gate.release("first ")
                for reader in readers:
                    await reader.wait_for_delta("first ")
                # every client is following now: one feed, one subscription to the session's events
                assert service.feeds.statistics().sessions == {session.id: 25}
                assert service.feeds.statistics().feeds_started == 1
                assert subscriber_count(runtime.manager, session.id) == 1
                gate.release(*(f"{i} " for i in range(200)))
                gate.finish()
        stored = [e.seq for e in (await client.read_events(session.id, limit=1000)).events]
        assert stored[-1] > 200
        for reader in readers:
            assert reader.seqs == stored  # every event once, in order
        # the last client gone, the feed stops and unsubscribes
        await trio.testing.wait_all_tasks_blocked()
        assert service.feeds.statistics().sessions == {}
        assert subscriber_count(runtime.manager, session.id) == 0


async def test_a_client_that_reads_nothing_holds_back_neither_the_others_nor_the_run(gate: Gate) -> None:
    # A window of 20 events and ~12 MB of events: the non-reading client's socket fills up
    # (its write blocks) and it drops out of the window long before the run ends.
    async with live_service(gate, WebOptions(port=0, sse_window_events=20)) as (url, service, _), Client(url) as client:
        session = await client.create_session()
        run = await client.submit(session.id, "lots")
        stream_url = f"{url}/v1/sessions/{session.id}/events/stream"
        async with sse_chunks(stream_url) as (_, stalled):
            readers = [Reader(url, session.id) for _ in range(2)]
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    for reader in readers:
                        nursery.start_soon(reader.run, run.id)
                    gate.release(*(("think", f"{i:04d}" + "x" * 60_000) for i in range(200)))
                    gate.finish()
                finished = await client.wait_until_done(run.id)
            assert finished.status.value == "completed"
            stored = [e.seq for e in (await client.read_events(session.id, limit=1000)).events]
            for reader in readers:  # everything, while the stalled client has read nothing
                assert reader.seqs == stored
            reads_before = service.feeds.statistics().store_reads
            decoder = SSEDecoder()
            seqs: list[int] = []
            with trio.fail_after(120):
                async for chunk in stalled:
                    seqs += [json.loads(data)["seq"] for _, data in decoder.feed(chunk)]
                    if seqs and seqs[-1] == stored[-1]:
                        break
            assert seqs == stored  # it caught up from the store: nothing lost, nothing twice
            assert service.feeds.statistics().store_reads > reads_before


async def test_a_client_joining_mid_run_gets_the_backlog_then_live_events_with_no_gap(gate: Gate) -> None:
    # A window of 4 events: the late clients' backlog comes from the store, then from the feed.
    async with live_service(gate, WebOptions(port=0, sse_window_events=4)) as (url, service, _), Client(url) as client:
        session = await client.create_session()
        run = await client.submit(session.id, "hi")
        early = Reader(url, session.id)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(early.run, run.id)
                gate.release(*(f"a{i} " for i in range(20)))
                await early.wait_for_delta("a19 ")
                reads_before = service.feeds.statistics().store_reads
                late = Reader(url, session.id)
                resuming = Reader(url, session.id, last_event_id=5)
                for reader in (late, resuming):
                    nursery.start_soon(reader.run, run.id)
                    await reader.wait_for_delta("a19 ")
                assert service.feeds.statistics().store_reads > reads_before
                gate.release(*(f"b{i} " for i in range(20)))
                gate.finish()
        stored = [e.seq for e in (await client.read_events(session.id, limit=1000)).events]
        assert early.seqs == late.seqs == stored
        assert resuming.seqs == [seq for seq in stored if seq > 5]
        deltas = [getattr(e.data, "delta", None) for e in late.events if e.data.type is EventType.MESSAGE_STREAMED]
        assert deltas == [f"a{i} " for i in range(20)] + [f"b{i} " for i in range(20)]
