"""Errors, values and the public surface."""

from __future__ import annotations

import inspect
import pickle
import re
import time

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import asm
from asm import AsmError, Message, RunInput, TokenUsage
from asm.errors import (
    CATEGORIES,
    CODES,
    ConcurrencyError,
    ProviderFailure,
    ResourceError,
    StorageError,
    ValidationError,
    is_retryable,
)
from asm.events import Event, MessageStreamed
from asm.model import ErrorInfo, ProviderError, new_id, truncate_text


def test_an_error_is_an_instance_of_its_category_class() -> None:
    assert isinstance(AsmError("validation_error", "x"), ValidationError)
    assert isinstance(AsmError("run_not_found", "x"), ResourceError)
    assert isinstance(AsmError("provider_rate_limited", "x"), ProviderFailure)
    assert isinstance(AsmError("storage_connection_failed", "x"), StorageError)
    assert isinstance(AsmError("queue_full", "x"), ConcurrencyError)
    assert {category for category, _ in CODES.values()} == set(CATEGORIES)


def test_retryable_follows_the_code_and_can_be_overridden() -> None:
    retryable = {code for code in CODES if is_retryable(code)}
    assert {
        "provider_timeout",
        "provider_rate_limited",
        "provider_unavailable",
        "storage_connection_failed",
    } <= retryable
    assert "timeout" in retryable and "validation_error" not in retryable
    assert AsmError("provider_error", "x", retryable=True).retryable


def test_errors_survive_pickling_and_describe_themselves() -> None:
    error = AsmError("queue_full", "queue is full; retry later", details={"size": 3})
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ConcurrencyError and again.to_dict() == error.to_dict()
    assert error.to_dict() == {
        "code": "queue_full",
        "category": "concurrency",
        "message": "queue is full; retry later",
        "retryable": True,
        "details": {"size": 3},
    }
    assert str(error) == "queue is full; retry later"


def test_error_info_round_trips_an_error_with_its_provider_error() -> None:
    provider_error = ProviderError("codex", "transport_exit", "exit 2", exit_code=2, stderr="boom")
    error = AsmError("provider_error", "codex exited 2", details={"provider_error": provider_error, "n": 1})
    info = ErrorInfo.from_error(error)
    assert info.provider_error == provider_error and info.details == {"n": 1}
    assert info.to_error().to_dict() == error.to_dict()


def test_ids_are_unique_and_sort_by_creation_time() -> None:
    # Databases index event ids: ids made later must sort later (append-mostly indexes).
    before_ms = time.time_ns() // 1_000_000
    earlier = new_id("evt")
    time.sleep(0.002)
    later = new_id("evt")
    assert re.fullmatch(r"evt_[0-9a-f]{32}", earlier) and earlier < later
    assert before_ms <= int(earlier[4:16], 16) <= time.time_ns() // 1_000_000
    assert len({new_id("evt") for _ in range(10_000)}) == 10_000


def test_an_events_time_is_the_millisecond_of_its_id_and_never_runs_backwards() -> None:
    events = [Event.new(MessageStreamed(f"{n}"), session_id="ses_1") for n in range(5_000)]
    for event in events:
        assert event.at.tzinfo is not None and event.at.microsecond % 1000 == 0
        assert round(event.at.timestamp() * 1000) == int(event.id[4:16], 16)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert [e.id for e in events] == sorted(e.id for e in events)


def test_run_input_accepts_prompts_and_messages() -> None:
    assert RunInput.coerce("hi").messages == (Message("user", "hi"),)
    messages = [Message("system", "brief"), {"role": "user", "content": "hi"}]
    run_input = RunInput.coerce(messages, options={"model": "m"})
    assert run_input.prompt == "hi" and run_input.options == {"model": "m"}
    assert RunInput.coerce(run_input) is run_input


@pytest.mark.parametrize("bad", ["", " \n", [], [{"role": "user"}], [{"role": 1, "content": "x"}], 3, b"bytes", None])
def test_run_input_rejects_empty_or_malformed_input(bad: object) -> None:
    with pytest.raises(AsmError) as caught:
        RunInput.coerce(bad)
    assert caught.value.code == "validation_error"


def test_token_usage_adds_up() -> None:
    total = TokenUsage(1, 2, 3, 4) + TokenUsage(10, 20, 30, 40)
    assert total == TokenUsage(11, 22, 33, 44) and total.total_tokens == 33


@given(st.text(), st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=20))
def test_truncated_text_respects_both_limits_and_is_a_prefix(text: str, max_bytes: int, max_lines: int) -> None:
    cut, truncated = truncate_text(text, max_bytes=max_bytes, max_lines=max(max_lines, 1))
    assert len(cut.encode()) <= max_bytes
    assert cut.count("\n") < max(max_lines, 1)
    assert text.startswith(cut)
    assert truncated == (cut != text)


def test_provider_error_truncation_marks_it() -> None:
    error = ProviderError("amp", "process_error", "died", stderr="line\n" * 1000)
    cut = error.truncated_to(max_bytes=16_384, max_lines=200)
    assert cut.truncated and cut.stderr is not None and cut.stderr.count("\n") == 199
    assert error.truncated_to(max_bytes=10_000, max_lines=2_000) is error


EXPORTED = {
    "Artifact", "AsmConfig", "AsmError", "Capabilities", "Cost", "EchoProvider", "Emit", "ErrorInfo", "Event",
    "EventData", "EventType", "InMemoryArtifactStore", "InMemorySessionStore", "Message", "Page",
    "ProcessIdentity", "Provider", "ProviderError", "Run", "RunInput", "RunOwner", "RunResult", "Register",
    "RunStatus", "Runtime",
    "ScriptedProvider", "Session",
    "SessionManager", "SessionStatus", "TokenUsage", "Tool", "assemble", "hookimpl", "load_config", "load_plugins",
    "open_runtime", "parse_options", "stream_session",
    # asm.server, asm.concurrency, asm.pubsub
    "ConcurrencyLimiter", "LimiterStatus", "InProcessBroker", "PubSubSink", "Subscription", "broker_for",
    "open_subscription", "session_topic", "ServerStatus", "SessionServer", "open_session_server",
    # the distribution's version
    "__version__",
}  # fmt: skip


def test_the_public_surface_is_exactly_what_is_documented() -> None:
    assert set(asm.__all__) == EXPORTED
    for name in EXPORTED:
        assert getattr(asm, name) is not None


def test_every_public_name_has_a_docstring_and_values_are_frozen() -> None:
    for name in asm.__all__:
        obj = getattr(asm, name)
        if name in ("hookimpl", "Register"):  # a marker and a type alias
            continue
        assert inspect.getdoc(obj), f"asm.{name} has no docstring"
        if attrs.has(obj) and name not in {"Runtime"}:
            assert obj.__attrs_attrs__ is not None
            assert obj.__setattr__ is not object.__setattr__, f"asm.{name} is not frozen"
