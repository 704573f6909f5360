"""stream_session: a run as an async iterator, and nothing left running after the block."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

import asm
from asm import AsmError, EventType, RunStatus, SessionStatus
from asm.events import MessageStreamed
from asm.providers.scripted import Delay, EchoProvider, Fail, ScriptedProvider, Stall
from asm.stores.memory import InMemorySessionStore

T = EventType


async def test_streams_every_event_in_order_and_ends_after_the_session() -> None:
    store = InMemorySessionStore()
    async with asm.stream_session(provider=EchoProvider(), input="hello there", store=store) as events:
        received = [event async for event in events]
    assert received[0].type is T.SESSION_CREATED and received[-1].type is T.SESSION_COMPLETED
    assert [e.seq for e in received] == list(range(1, len(received) + 1))
    assert "".join(e.data.delta for e in received if isinstance(e.data, MessageStreamed)) == "hello there"
    assert events.run is not None and events.run.output == "hello there"
    assert received == list((await store.read_events(received[0].session_id)).events)


async def test_leaving_early_cancels_the_run_and_leaves_nothing_running() -> None:
    store = InMemorySessionStore()
    provider = ScriptedProvider(["first", Delay(0.01), "second", Stall()])
    async with asm.stream_session(provider=provider, input="go", store=store) as events:
        async for event in events:
            if event.type is T.MESSAGE_STREAMED:
                break
    session_id = event.session_id
    # The block has exited: its nursery is closed, so no task of the run survives it.
    (run,) = await store.list_runs(session_id)
    assert run.status is RunStatus.CANCELLED
    assert (await store.get_session(session_id)).status is SessionStatus.CANCELLED
    stored = [e.type for e in (await store.read_events(session_id)).events]
    assert stored[-2:] == [T.RUN_CANCELLED, T.SESSION_CANCELLED]


async def test_a_failed_run_ends_the_stream_with_its_failure_instead_of_raising() -> None:
    provider = ScriptedProvider(["x", Fail(AsmError("provider_authentication_failed", "set ANTHROPIC_API_KEY"))])
    async with asm.stream_session(provider=provider, input="go") as events:
        kinds = [event.type async for event in events]
    assert kinds[-2:] == [T.RUN_FAILED, T.SESSION_FAILED]
    assert events.run is not None and events.run.status is RunStatus.FAILED
    assert events.run.error is not None and events.run.error.code == "provider_authentication_failed"


async def test_bad_input_raises_before_anything_starts() -> None:
    store = InMemorySessionStore()
    with pytest.raises(AsmError) as caught:
        async with asm.stream_session(provider=EchoProvider(), input="", store=store):
            pytest.fail("the block must not run")
    assert caught.value.code == "validation_error"
    assert await store.list_sessions() == []


async def test_an_error_in_the_block_is_raised_as_itself() -> None:
    with pytest.raises(KeyError, match="mine"):
        async with asm.stream_session(provider=ScriptedProvider([Stall()]), input="go") as events:
            async for _ in events:
                raise KeyError("mine")


async def test_a_slow_consumer_gets_every_event() -> None:
    chunks = [f"{i}," for i in range(500)]
    async with asm.stream_session(provider=ScriptedProvider(chunks), input="go", buffer=2) as events:
        got = []
        async for event in events:
            if isinstance(event.data, MessageStreamed):
                got.append(event.data.delta)
                await trio.lowlevel.checkpoint()
    assert got == chunks


async def test_timeout_is_reported_in_the_stream() -> None:
    async with asm.stream_session(provider=ScriptedProvider([Stall()]), input="go", timeout=0.01) as events:
        kinds = [event.type async for event in events]
    assert T.RUN_TIMEOUT in kinds and events.run is not None and events.run.status is RunStatus.TIMEOUT


async def test_outer_cancellation_stops_the_stream_cleanly() -> None:
    store = InMemorySessionStore()
    with trio.CancelScope() as scope:
        async with asm.stream_session(provider=ScriptedProvider(["a", Stall()]), input="go", store=store) as events:
            async for event in events:
                if event.type is EventType.MESSAGE_STREAMED:
                    scope.cancel()  # the run is under way and stalls: whoever holds the stream gives up
    assert scope.cancelled_caught
    (session,) = await store.list_sessions()
    assert session.status is SessionStatus.CANCELLED
