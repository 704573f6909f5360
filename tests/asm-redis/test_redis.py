"""asm-redis against the real Redis server on 127.0.0.1:6379."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from asm_redis import DEFAULT_URL, RedisPubSub, RedisSink

import asm
from asm import AsmError, EventType, InMemorySessionStore
from asm.ports import PubSub, Sink
from asm.providers.scripted import ScriptedProvider
from asm.rendering import CompactRenderer, RenderingPipeline
from asm.serde import event_from_json

DOWN_URL = "redis://127.0.0.1:6390/0"  # nothing listens there


def unique_topic() -> str:
    return asm.session_topic(f"ses_test_{uuid.uuid4().hex}")


async def test_publish_and_subscribe_in_one_process() -> None:
    async with RedisPubSub() as pubsub:
        assert isinstance(pubsub, PubSub)
        topic = unique_topic()
        sent = [asm.Event.new(asm.events.MessageReceived(f"m{i}"), session_id="ses_x") for i in range(5)]
        async with pubsub.subscribe(topic) as events:
            for event in sent:
                await pubsub.publish(topic, event)
            got = [await events.__anext__() for _ in sent]
    assert got == sent


async def test_a_pattern_follows_every_session() -> None:
    async with RedisPubSub() as pubsub:
        prefix = f"asm.session.ses_p{uuid.uuid4().hex[:8]}"
        async with pubsub.subscribe(prefix + "*") as events:
            for n in range(3):
                event = asm.Event.new(asm.events.MessageReceived("x"), session_id=f"s{n}")
                await pubsub.publish(f"{prefix}{n}", event)
            got = [await events.__anext__() for _ in range(3)]
    assert [e.session_id for e in got] == ["s0", "s1", "s2"]


async def test_the_sink_publishes_every_durable_event_of_a_run() -> None:
    sink = RedisSink()
    assert isinstance(sink, Sink)
    pipeline = RenderingPipeline(CompactRenderer(), [sink])
    store = InMemorySessionStore()
    manager = asm.SessionManager(store, provider=ScriptedProvider(["a", "b"]), on_event=pipeline)
    session = await manager.start_session()
    async with RedisPubSub() as pubsub, pubsub.subscribe(asm.session_topic(session.id)) as events:
        await manager.activate_session(session.id)
        run = await manager.start_run(session.id, "go")
        await manager.execute_run(run.id)
        stored = list((await store.read_events(session.id, after=1)).events)
        got = [await events.__anext__() for _ in stored]
    await pipeline.aclose()
    assert got == stored
    assert got[-1].type is EventType.RUN_COMPLETED


async def read_line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = await stream.receive_some()
        if not chunk:
            raise EOFError(bytes(buffer))
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


async def test_a_subscriber_in_another_process_sees_every_event() -> None:
    store = InMemorySessionStore()
    sink = RedisSink()
    manager = asm.SessionManager(
        store, provider=ScriptedProvider(["x", "y", "z"]), on_event=lambda event: sink.write("", event)
    )
    session = await manager.start_session()
    await manager.activate_session(session.id)
    command = [sys.executable, "-m", "asm_redis", "watch", session.id]
    received: list[asm.Event] = []
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(trio.run_process, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        )
        errors, output = bytearray(), bytearray()
        assert (await read_line(process.stderr, errors)).startswith(b"subscribed to asm.session.")
        run = await manager.start_run(session.id, "go")
        await manager.execute_run(run.id)
        while not received or received[-1].type is not EventType.RUN_COMPLETED:
            received.append(event_from_json(await read_line(process.stdout, output)))
        nursery.cancel_scope.cancel()  # the watcher runs until stopped
    await sink.aclose()
    stored = list((await store.read_events(session.id, after=2)).events)
    assert received == stored
    assert process.returncode is not None  # the watcher process is gone


async def test_the_watch_command_exits_after_count_events() -> None:
    async with RedisPubSub() as pubsub:
        session_id = f"ses_count_{uuid.uuid4().hex}"
        command = [sys.executable, "-m", "asm_redis", "watch", session_id, "--count", "2"]
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                partial(trio.run_process, command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
            )
            await read_line(process.stderr, bytearray())
            for i in range(3):
                event = asm.Event.new(asm.events.MessageReceived(f"m{i}"), session_id=session_id)
                await pubsub.publish(asm.session_topic(session_id), event)
            output = bytearray()
            lines = [await read_line(process.stdout, output) for _ in range(2)]
        assert process.returncode == 0
    assert [event_from_json(line).data.content for line in lines] == ["m0", "m1"]  # type: ignore[attr-defined]


async def test_unreachable_redis_names_the_url() -> None:
    pubsub = RedisPubSub(DOWN_URL, connect_timeout=0.5)
    event = asm.Event.new(asm.events.MessageReceived("x"), session_id="ses_x")
    for attempt in (pubsub.ping(), pubsub.publish("asm.session.ses_x", event)):
        with pytest.raises(AsmError) as info:
            await attempt
        assert info.value.code == "storage_connection_failed"
        assert info.value.category == "storage"
        assert DOWN_URL in info.value.message
    with pytest.raises(AsmError) as info:
        async with pubsub.subscribe("asm.session.ses_x"):
            pass
    assert info.value.code == "storage_connection_failed"
    await pubsub.aclose()


async def test_with_redis_down_the_run_completes_and_its_events_are_stored(caplog: pytest.LogCaptureFixture) -> None:
    sink = RedisSink(DOWN_URL, connect_timeout=0.5)
    pipeline = RenderingPipeline(CompactRenderer(), [sink])
    store = InMemorySessionStore()
    manager = asm.SessionManager(store, provider=ScriptedProvider(["a", "b"]), on_event=pipeline)
    with caplog.at_level(logging.ERROR, logger="asm_redis"):
        run = await manager.run_once("go")
    assert run.status is asm.RunStatus.COMPLETED
    stored = (await store.read_events(run.session_id)).events
    assert stored[-1].type is EventType.SESSION_COMPLETED
    assert len([r for r in caplog.records if DOWN_URL in r.getMessage()]) == 1  # logged once, then quiet
    with pytest.raises(AsmError) as info:
        await pipeline.aclose()
    assert info.value.code == "storage_connection_failed"
    assert DOWN_URL in info.value.message


async def test_the_sink_is_registered_as_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "redis")
    registry = asm.load_plugins()
    sink = registry.create("sinks", "redis", {"url": DEFAULT_URL})
    assert isinstance(sink, RedisSink)
    await sink.aclose()
    with pytest.raises(AsmError) as info:
        registry.create("sinks", "redis", {"host": "x"})
    assert info.value.code == "invalid_config"


async def test_a_bad_url_is_invalid_config() -> None:
    with pytest.raises(AsmError) as info:
        RedisPubSub("http://nowhere")
    assert info.value.code == "invalid_config"


def test_the_watch_command_reports_an_unreachable_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asm_redis", "watch", "ses_x", "--url", DOWN_URL],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert DOWN_URL in done.stderr


async def test_a_runtime_with_a_sinks_redis_table_publishes_its_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("ASM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "redis")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "asm.toml").write_text(f'provider = "echo"\n\n[sinks.redis]\nurl = "{DEFAULT_URL}"\n')
    received: list[asm.Event] = []
    async with RedisPubSub() as pubsub, pubsub.subscribe("asm.session.*") as events:
        async with asm.open_runtime() as runtime:
            run = await runtime.run_once("published")
        async for event in events:
            if event.session_id == run.session_id:
                received.append(event)
                if event.type is EventType.SESSION_COMPLETED:
                    break
        stored = (await runtime.store.read_events(run.session_id)).events
    assert received == list(stored)


SECRET_DOWN_URL = "redis://:s3cret-pw@127.0.0.1:6390/0"  # a password, an empty user, and nothing listening


async def test_a_redis_password_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    sink = RedisSink(SECRET_DOWN_URL, connect_timeout=0.5)
    pipeline = RenderingPipeline(CompactRenderer(), [sink])
    manager = asm.SessionManager(InMemorySessionStore(), provider=ScriptedProvider(["a"]), on_event=pipeline)
    with caplog.at_level(logging.ERROR, logger="asm_redis"):
        await manager.run_once("go")
    with pytest.raises(AsmError) as info:
        await pipeline.aclose()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for shown in (info.value.message, repr(info.value.details), logged):
        assert "s3cret-pw" not in shown and "redis://:***@127.0.0.1:6390/0" in shown

    with pytest.raises(AsmError) as info:
        RedisPubSub("http://alice:s3cret-pw@nowhere")
    assert info.value.code == "invalid_config"
    assert "s3cret-pw" not in info.value.message + repr(info.value.details)


def test_the_watch_command_masks_the_password() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asm_redis", "watch", "ses_x", "--url", SECRET_DOWN_URL],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "s3cret-pw" not in done.stderr and ":***@" in done.stderr
