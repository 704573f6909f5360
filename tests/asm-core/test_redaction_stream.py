"""A secret split across streamed deltas is still redacted: the redactor holds
back only a tail that could be the start of one, and releases it as soon as a
later delta, or the end of the message or run, decides it."""

from __future__ import annotations

import inspect

import pytest

import asm
from asm import AsmError, Event, InMemorySessionStore, SessionManager
from asm.events import EventType as T
from asm.events import MessageReceived, MessageStreamed, ThinkingStreamed, ToolCallCompleted, ToolCallStarted
from asm.providers.scripted import Fail, ScriptedProvider, Step
from asm.redaction import OFF_LOOP_CHARS, EventRedactor
from asm.serde import event_to_json
from asm.testing.secrets import SECRET_PHRASE_OF, SECRET_TEXT, SECRETS


def chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def stored_run(script: list[Step], redactor: EventRedactor | None = None) -> list[Event]:
    registry = asm.load_plugins(entry_points=False, extra=[redactor or EventRedactor()])
    store = InMemorySessionStore()
    run = await SessionManager(store, provider=ScriptedProvider(script), plugins=registry).run_once("go")
    return (await store.read_events(run.session_id)).events


def streamed(events: list[Event], kind: T = T.MESSAGE_STREAMED) -> list[str]:
    return [e.data.delta for e in events if e.type is kind]  # type: ignore[union-attr]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
async def test_no_secret_survives_being_split_across_deltas(size: int) -> None:
    # Every planted secret, cut at every position by some chunk size; no message_received
    # to fall back on: the stream alone must be clean.
    events = await stored_run(chunks(SECRET_TEXT, size))
    everything = "\n".join(event_to_json(e) for e in events)
    assert [kind for kind, secret in SECRETS.items() if secret in everything] == []
    # And the text that streamed is the text redacted whole.
    assert "".join(streamed(events)) == EventRedactor().redact_text(SECRET_TEXT)


@pytest.mark.parametrize("kind", sorted(SECRETS))
async def test_each_kind_split_in_two_at_every_position(kind: str) -> None:
    phrase, secret = SECRET_PHRASE_OF[kind], SECRETS[kind]
    redactor = EventRedactor()
    expected = redactor.redact_text(phrase)
    for cut in range(1, len(phrase)):
        deltas = [phrase[:cut], phrase[cut:]]
        out = [e for d in deltas for e in transform(redactor, MessageStreamed(d))]
        out += transform(redactor, MessageReceived(phrase))
        text = "".join(streamed(out))
        assert secret not in text and text == expected, (cut, text)


def transform(redactor: EventRedactor, data: asm.events.EventData, run_id: str = "run_1") -> list[Event]:
    """What the manager stores for ``data``: the hook's answer as a list."""
    event = Event.new(data, session_id="ses_1", run_id=run_id)
    answer = redactor.asm_transform_event(event)
    assert not hasattr(answer, "__await__")
    return [event] if answer is None else answer if isinstance(answer, list) else [answer]  # type: ignore[list-item]


async def test_text_streams_on_and_only_a_possible_secret_waits() -> None:
    key = SECRETS["anthropic_key"]
    events = await stored_run(["Hello ", "world. ", "The key is ", key[:5], key[5:], " and more", " text."])
    assert streamed(events) == [
        "Hello ",
        "world. ",
        "The key is ",
        # key[:5] ("sk-an") waited for the next delta, which showed a key; the key
        # then waited for one that showed where it ends
        "[REDACTED:anthropic_key] and more",
        " text.",
    ]


async def test_a_held_tail_is_released_before_the_message_ends() -> None:
    events = await stored_run(["the password: hun", "ter2-fake", MessageReceived("the password: hunter2-fake")])
    kinds = [e.type for e in events if e.type in (T.MESSAGE_STREAMED, T.MESSAGE_RECEIVED)]
    assert kinds == [T.MESSAGE_STREAMED, T.MESSAGE_STREAMED, T.MESSAGE_RECEIVED]
    assert streamed(events) == ["the ", "password: [REDACTED:key_value_secret]"]


async def test_a_held_tail_is_released_when_the_run_ends_without_a_message() -> None:
    key = SECRETS["github_token"]
    # The key is whole after the second delta, but might go on: it waits for the run's end.
    events = await stored_run(["token ", key[:10], key[10:], Fail(AsmError("provider_error", "the stream broke"))])
    assert [e.type for e in events][-4:] == [T.MESSAGE_STREAMED, T.MESSAGE_STREAMED, T.RUN_FAILED, T.SESSION_FAILED]
    assert streamed(events) == ["token ", "[REDACTED:github_token]"]


async def test_a_tool_call_ends_the_text_before_it() -> None:
    events = await stored_run(["call sk-", "proj-", ToolCallStarted("t1", "read", {"path": "x"}), "after"])
    order = [
        (e.type, getattr(e.data, "delta", None)) for e in events if e.type in (T.MESSAGE_STREAMED, T.TOOL_CALL_STARTED)
    ]
    assert order == [
        (T.MESSAGE_STREAMED, "call "),
        (T.MESSAGE_STREAMED, "sk-proj-"),
        (T.TOOL_CALL_STARTED, None),
        (T.MESSAGE_STREAMED, "after"),
    ]


async def test_streams_are_kept_apart() -> None:
    key = SECRETS["openai_key"]
    events = await stored_run(
        [
            ThinkingStreamed(f"think {key[:9]}"),
            ThinkingStreamed(key[9:] + " ok"),
            MessageStreamed(f"out {key[:6]}", "stdout"),
            MessageStreamed(key[6:] + "\n", "stdout"),
        ]
    )
    assert "".join(streamed(events, T.THINKING_STREAMED)) == "think [REDACTED:openai_key] ok"
    assert "".join(streamed(events)) == "out [REDACTED:openai_key]\n"
    assert all(key not in event_to_json(e) for e in events)


def test_a_finished_run_leaves_no_state_behind() -> None:
    redactor = EventRedactor()
    transform(redactor, MessageStreamed("key sk-ant-"))
    assert redactor._runs
    out = transform(redactor, asm.events.RunCancelled("stop"))
    assert [e.type for e in out] == [T.MESSAGE_STREAMED, T.RUN_CANCELLED]
    assert redactor._runs == {}


async def test_a_large_payload_is_redacted_off_the_event_loop() -> None:
    body = "x" * OFF_LOOP_CHARS + SECRET_TEXT
    big = ToolCallCompleted("t1", "read", {"body": body})
    answer = EventRedactor().asm_transform_event(Event.new(big, session_id="ses_1", run_id="run_1"))
    assert inspect.isawaitable(answer)  # a worker thread does the work; the manager awaits it
    (cleaned,) = await answer
    assert SECRETS["anthropic_key"] not in repr(cleaned) and "[REDACTED:anthropic_key]" in repr(cleaned)
    events = await stored_run([big, "done"])
    everything = "\n".join(event_to_json(e) for e in events)
    assert [kind for kind, secret in SECRETS.items() if secret in everything] == []
    assert events[-2].type is T.RUN_COMPLETED


class Dropper:
    """A transform that tries to drop the run's start, which no plugin may."""

    @asm.hookimpl
    def asm_transform_event(self, event: Event) -> list[Event] | None:
        return [] if event.type is T.RUN_STARTED else None


async def test_a_transform_may_not_drop_a_lifecycle_event() -> None:
    registry = asm.load_plugins(entry_points=False, extra=[Dropper()])
    store = InMemorySessionStore()
    run = await SessionManager(store, provider=ScriptedProvider(["x"]), plugins=registry).run_once("go")
    assert run.error is not None and run.error.code == "internal_error"
    assert "lifecycle events kept" in run.error.message


async def test_a_large_delta_is_redacted_off_the_event_loop() -> None:
    key = SECRETS["anthropic_key"]
    answer = EventRedactor().asm_transform_event(
        Event.new(MessageStreamed("x" * OFF_LOOP_CHARS + f" {key} done"), session_id="ses_1", run_id="run_1")
    )
    assert inspect.isawaitable(answer)
    (cleaned,) = await answer
    assert cleaned.data.delta.endswith(" [REDACTED:anthropic_key] done")
