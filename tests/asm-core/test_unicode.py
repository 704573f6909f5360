"""Text that is not valid Unicode (lone surrogates): recorded with U+FFFD, never refused, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import asm
from asm import SessionManager
from asm._unicode import scrub
from asm.events import MessageReceived, MessageStreamed, ToolCallStarted
from asm.model import RunInput, RunResult
from asm.ports import Emit
from asm.stores.memory import InMemorySessionStore

BAD = "bad \udcff\udcfe"  # how Python carries the bytes b"bad \xff\xfe" (surrogateescape)
FIXED = "bad \ufffd\ufffd"


class Garbler:
    """Answers with lone surrogates in its text and a tool input, as a broken CLI might."""

    name = "garbler"

    def __init__(self) -> None:
        self.received: list[str] = []

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        self.received.append(run.prompt)
        await emit(MessageStreamed("out \ud800"))
        await emit(ToolCallStarted("t1", "Bash", {"command": "echo \udcff", "\udc80key": ["\udfff"]}))
        await emit(MessageReceived("out \ud800"))
        return RunResult(output="out \ud800")


async def test_prompts_options_tool_inputs_and_output_are_recorded_with_replacement_characters() -> None:
    store = InMemorySessionStore()
    provider = Garbler()
    run = await SessionManager(store, provider=provider).run_once(BAD, options={"note": BAD}, metadata={"m": BAD})
    assert run.status is asm.RunStatus.COMPLETED
    assert provider.received == [BAD], "the provider gets the input as given"
    stored = await store.get_run(run.id)
    assert stored.input.prompt == FIXED and stored.input.options["note"] == FIXED
    assert stored.result is not None and stored.result.output == "out \ufffd"
    session = await store.get_session(run.session_id)
    assert session.metadata == {"m": FIXED}
    data = [e.data for e in (await store.read_events(run.session_id)).events]
    assert any(isinstance(d, asm.events.MessageSent) and d.content == FIXED for d in data)
    assert MessageStreamed("out \ufffd") in data
    (tool,) = [d for d in data if isinstance(d, ToolCallStarted)]
    assert tool.tool_input == {"command": "echo \ufffd", "\ufffdkey": ["\ufffd"]}


def test_scrub_returns_the_same_object_when_the_text_is_valid() -> None:
    value: dict[str, Any] = {"a": ["é", ("x", 1, None)], "b": MessageStreamed("ok ✓")}
    assert scrub(value) is value


@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20))
def test_scrubbed_text_always_encodes_as_utf8_and_valid_text_is_unchanged(value: Any) -> None:
    scrubbed = scrub(value)
    json.dumps(scrubbed, ensure_ascii=False).encode("utf-8")  # raises on any lone surrogate left
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        assert scrubbed != value
    else:
        assert scrubbed is value
