"""Capability negotiation: a run names what its provider must (and should) be able to do."""

from __future__ import annotations

import io
from typing import Any

import pytest

import asm
from asm import AsmError, InMemorySessionStore, SessionManager
from asm.cli import run_cli
from asm.events import RunStarted
from asm.model import CAPABILITY_NAMES, Message, RunInput
from asm.providers.scripted import ScriptedProvider

TOOL_USER = ScriptedProvider(["ok"], capabilities=asm.Capabilities(tools=True))


async def test_a_provider_without_a_required_capability_is_refused_before_anything_is_stored() -> None:
    store = InMemorySessionStore()
    manager = SessionManager(store, provider=TOOL_USER)
    with pytest.raises(AsmError) as caught:
        await manager.run_once("go", required_capabilities=["tools", "thinking", "vision"])
    assert caught.value.code == "missing_required_capability"
    assert "lacks thinking, vision" in caught.value.message
    assert caught.value.details["missing"] == ["thinking", "vision"]
    assert await store.list_sessions() == []


async def test_execute_run_refuses_before_the_run_starts_and_leaves_it_pending() -> None:
    store = InMemorySessionStore()
    manager = SessionManager(store, provider=asm.EchoProvider())
    session = await manager.start_session()
    await manager.activate_session(session.id)
    run = await manager.start_run(session.id, "go", required_capabilities=["tools"])
    assert run.input.required_capabilities == ("tools",)
    with pytest.raises(AsmError) as caught:
        await manager.execute_run(run.id)
    assert caught.value.code == "missing_required_capability"
    assert (await store.get_run(run.id)).status is asm.RunStatus.PENDING
    assert [e.type.value for e in (await store.read_events(session.id)).events] == [
        "session_created",
        "session_started",
    ]
    done = await manager.execute_run(run.id, provider=TOOL_USER)  # one that has it may run it
    assert done.status is asm.RunStatus.COMPLETED


async def test_optional_capabilities_the_provider_lacks_are_named_in_run_started() -> None:
    store = InMemorySessionStore()
    run = await SessionManager(store, provider=TOOL_USER).run_once(
        "go", required_capabilities=["tools"], optional_capabilities=["tools", "thinking"]
    )
    (started,) = [e.data for e in (await store.read_events(run.session_id)).events if isinstance(e.data, RunStarted)]
    assert started.missing_capabilities == ("thinking",)


@pytest.mark.parametrize(("names", "fragment"), [(["tool"], "did you mean 'tools'?"), (["x-ray"], "capabilities are")])
def test_an_unknown_capability_is_a_validation_error(names: list[str], fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        RunInput((Message("user", "go"),), required_capabilities=names)
    assert caught.value.code == "validation_error" and fragment in caught.value.message


def test_every_capability_can_be_required() -> None:
    assert set(CAPABILITY_NAMES) >= {"streaming", "tools", "thinking", "vision", "code_execution", "file_access"}
    assert RunInput((Message("user", "go"),), required_capabilities="tools").required_capabilities == ("tools",)
    assert asm.Capabilities().missing(CAPABILITY_NAMES) == tuple(n for n in CAPABILITY_NAMES if n != "streaming")


def test_asm_run_require_refuses_a_provider_without_it(isolated: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run_cli(["run", "--provider", "echo", "--require", "tools", "hi"], stdout=out, stderr=err)
    assert status == 2, err.getvalue()
    assert err.getvalue().startswith("asm: error [missing_required_capability]: provider 'echo' lacks tools")
