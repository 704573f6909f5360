"""Secrets never reach the store, the sinks or the callbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

import asm
from asm import AsmError, Event
from asm.events import (
    MessageReceived,
    MessageStreamed,
    ToolCallStarted,
)
from asm.redaction import DEFAULT_PATTERNS, EventRedactor
from asm.serde import event_to_json
from asm.testing.secrets import SECRET_TEXT as TEXT
from asm.testing.secrets import SECRETS, leaky_provider


def hits(text: str) -> list[str]:
    return [kind for kind, secret in SECRETS.items() if secret in text]


def test_the_default_patterns_cover_every_planted_kind() -> None:
    assert set(SECRETS) == set(DEFAULT_PATTERNS)
    cleaned = EventRedactor().redact_text(TEXT)
    assert hits(cleaned) == []
    for kind in SECRETS:
        assert f"[REDACTED:{kind}]" in cleaned, kind
    assert "postgres://app:[REDACTED:url_password]@db:5432/x" in cleaned


async def test_no_secret_reaches_the_store_the_jsonl_sink_or_callbacks(isolated: object, tmp_path: Path) -> None:
    jsonl = tmp_path / "events.jsonl"
    delivered: list[Event] = []
    config = asm.load_config({"sinks.jsonl.path": str(jsonl)})
    async with asm.open_runtime(config, on_event=delivered.append) as runtime:
        run = await runtime.run_once(f"my key is {SECRETS['anthropic_key']}", provider=leaky_provider())
        stored = (await runtime.store.read_events(run.session_id)).events
        saved_run = await runtime.store.get_run(run.id)

    assert run.status is asm.RunStatus.FAILED
    assert hits(jsonl.read_text()) == []
    assert hits("\n".join(event_to_json(e) for e in stored)) == []
    assert hits("\n".join(event_to_json(e) for e in delivered)) == []
    assert "[REDACTED:anthropic_key]" in jsonl.read_text()
    # What asm stores about the run itself (its input and error) is scrubbed as well.
    assert saved_run.error is not None and hits(repr(saved_run)) == []
    assert saved_run.input.prompt == "my key is [REDACTED:anthropic_key]"


async def test_turning_redaction_off_keeps_the_text_as_sent(isolated: object) -> None:
    async with asm.open_runtime(redact=False) as runtime:
        run = await runtime.run_once(TEXT, provider=asm.EchoProvider())
        stored = (await runtime.store.read_events(run.session_id)).events
    assert set(hits("\n".join(event_to_json(e) for e in stored))) == set(SECRETS)


async def test_patterns_from_config_are_added(isolated: object) -> None:
    prompt = "see TICKET-123456 and sk-ant-api03-fakefakefakefakefakefake"
    async with asm.open_runtime(redact_patterns={"ticket": r"TICKET-[0-9]{6}"}) as runtime:
        run = await runtime.run_once(prompt)
        (received,) = (await runtime.store.read_events(run.session_id, types=["message_received"])).events
    assert received.data == MessageReceived("see [REDACTED:ticket] and [REDACTED:anthropic_key]")
    # The provider itself got what the user wrote; only what is stored and shown is scrubbed.
    assert run.output == prompt


def test_an_invalid_pattern_names_its_key(isolated: object) -> None:
    with pytest.raises(AsmError) as caught:
        asm.assemble(asm.load_config({"redact_patterns.ticket": "TICKET-[0-9"}))
    assert caught.value.code == "invalid_config"
    assert "redact_patterns.ticket" in caught.value.message


def test_events_without_secrets_pass_untouched() -> None:
    redactor = EventRedactor()
    for data in (MessageStreamed("plain words"), ToolCallStarted("t", "read", {"path": "a.py", "n": [1, 2]})):
        assert redactor.asm_transform_event(Event.new(data, session_id="s")) is None
