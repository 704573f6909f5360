"""Continuation: how a run continues its session - replay of the transcript, the provider's
native resume, auto between them, truncation to a token budget - and what bad input gets."""

from __future__ import annotations

import sys
from typing import Any

import attrs
import pytest

import asm
from asm import Capabilities, InMemorySessionStore, RunInput, RunResult, RunStatus, SessionManager
from asm.continuity import PREAMBLE_HEADER, Entry, fit, render_preamble, replay_prompt
from asm.cost import ModelPrice, Pricing, PricingTable
from asm.errors import AsmError
from asm.events import (
    ErrorRecovered,
    EventData,
    MessageReceived,
    RunStarted,
    ToolCallCompleted,
    ToolCallStarted,
    TranscriptTruncated,
)
from asm.ports import Emit


class Recorder:
    """A provider that answers ``answer <n>`` and remembers what each run was sent;
    ``resumable`` providers return a resume id and know the ones they issued."""

    def __init__(self, name: str = "rec", *, resumable: bool = False, script: list[EventData] | None = None) -> None:
        self.name = name
        self.resumable = resumable
        self.script = script or []
        self.seen: list[RunInput] = []
        self.issued: set[str] = set()

    def capabilities(self) -> Capabilities:
        return Capabilities(native_resume=self.resumable, tools=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        self.seen.append(run)
        if run.resume_id is not None and run.resume_id not in self.issued:
            raise AsmError("resume_not_found", f"{self.name} does not know {run.resume_id}")
        for data in self.script:
            await emit(data)
        answer = f"answer {len(self.seen)}"
        await emit(MessageReceived(answer))
        resume_id = f"{self.name}-conv-{len(self.seen)}" if self.resumable else None
        if resume_id:
            self.issued.add(resume_id)
        return RunResult(output=answer, resume_id=resume_id)


async def session(manager: SessionManager) -> str:
    started = await manager.start_session(agent_id="a")
    await manager.activate_session(started.id)
    return started.id


async def turn(manager: SessionManager, session_id: str, prompt: str, provider: Any, **kwargs: Any) -> asm.Run:
    run = await manager.start_run(session_id, prompt)
    return await manager.execute_run(run.id, provider=provider, **kwargs)


async def started(manager: SessionManager, run: asm.Run) -> RunStarted:
    page = await manager.store.read_events(run.session_id, run_id=run.id, types=["run_started"])
    data = page.events[0].data
    assert isinstance(data, RunStarted)
    return data


def said(history: tuple[Entry, ...]) -> list[tuple[str, str]]:
    return [(e.role, e.content) for e in history if e.kind == "message"]


async def test_a_second_run_is_sent_the_conversation_so_far_by_default() -> None:
    manager, provider = SessionManager(InMemorySessionStore()), Recorder()
    sid = await session(manager)
    first = await turn(manager, sid, "my name is Ada", provider)
    second = await turn(manager, sid, "what is my name?", provider)
    assert second.status is RunStatus.COMPLETED
    assert provider.seen[0].history == ()
    assert said(provider.seen[1].history) == [("user", "my name is Ada"), ("assistant", "answer 1")]
    assert provider.seen[1].prompt == "what is my name?"
    assert (await started(manager, first)).continuation is None  # nothing earlier to continue
    assert (await started(manager, second)).continuation == "replay"
    # What the provider was sent is not stored with the run.
    assert (await manager.get_run(second.id)).input.history == ()


async def test_auto_resumes_natively_on_the_provider_that_served_the_last_run() -> None:
    manager, provider = SessionManager(InMemorySessionStore()), Recorder(resumable=True)
    sid = await session(manager)
    first = await turn(manager, sid, "one", provider)
    assert first.result is not None and first.result.resume_id == "rec-conv-1"
    second = await turn(manager, sid, "two", provider)
    assert provider.seen[1].resume_id == "rec-conv-1" and provider.seen[1].history == ()
    assert (await started(manager, second)).continuation == "native"


async def test_auto_replays_when_the_session_moves_to_another_provider() -> None:
    manager = SessionManager(InMemorySessionStore())
    a, b = Recorder("a", resumable=True), Recorder("b", resumable=True)
    sid = await session(manager)
    await turn(manager, sid, "one", a)
    run = await turn(manager, sid, "two", b)
    assert b.seen[0].resume_id is None
    assert said(b.seen[0].history) == [("user", "one"), ("assistant", "answer 1")]
    assert (await started(manager, run)).continuation == "replay"
    # ... and back: the last run was b's, so a replays too (its own id is stale).
    await turn(manager, sid, "three", a)
    assert a.seen[1].resume_id is None and len(said(a.seen[1].history)) == 4


async def test_replay_and_none_modes_override_native() -> None:
    manager, provider = SessionManager(InMemorySessionStore()), Recorder(resumable=True)
    sid = await session(manager)
    await turn(manager, sid, "one", provider)
    await turn(manager, sid, "two", provider, continuation="replay")
    assert provider.seen[1].resume_id is None and len(provider.seen[1].history) == 2
    run = await manager.start_run(sid, "three", continuation="none")
    await manager.execute_run(run.id, provider=provider)
    assert provider.seen[2].history == () and provider.seen[2].resume_id is None


async def test_the_manager_default_comes_from_its_continuation_setting() -> None:
    manager, provider = SessionManager(InMemorySessionStore(), continuation="none"), Recorder()
    sid = await session(manager)
    await turn(manager, sid, "one", provider)
    await turn(manager, sid, "two", provider)
    assert provider.seen[1].history == ()


async def test_a_resume_id_the_provider_no_longer_knows_falls_back_to_replay() -> None:
    manager, provider = SessionManager(InMemorySessionStore()), Recorder(resumable=True)
    sid = await session(manager)
    await turn(manager, sid, "one", provider)
    provider.issued.clear()  # the provider lost its conversations (a CLI's state was wiped)
    run = await turn(manager, sid, "two", provider)
    assert run.status is RunStatus.COMPLETED, run.error
    assert provider.seen[1].resume_id == "rec-conv-1"
    assert provider.seen[2].resume_id is None and said(provider.seen[2].history)[0] == ("user", "one")
    page = await manager.store.read_events(sid, run_id=run.id, types=["error_recovered"])
    recovered = page.events[0].data
    assert isinstance(recovered, ErrorRecovered) and recovered.error_code == "resume_not_found"


async def test_native_for_a_session_last_served_by_another_provider_fails_the_run_clearly() -> None:
    manager = SessionManager(InMemorySessionStore())
    a, b = Recorder("a", resumable=True), Recorder("b", resumable=True)
    sid = await session(manager)
    await turn(manager, sid, "one", a)
    before = (await manager.store.read_events(sid)).events
    run = await turn(manager, sid, "two", b, continuation="native")
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "validation_error"
    assert "served by 'a', not 'b'" in run.error.message and "continuation='auto' or 'replay'" in run.error.message
    assert b.seen == []  # refused before the provider was called
    after = (await manager.store.read_events(sid)).events
    assert after[: len(before)] == before  # the history is untouched


async def test_native_on_a_provider_that_cannot_resume_says_so() -> None:
    manager, provider = SessionManager(InMemorySessionStore()), Recorder()
    sid = await session(manager)
    await turn(manager, sid, "one", provider)
    run = await turn(manager, sid, "two", provider, continuation="native")
    assert run.error is not None and "cannot resume a conversation of its own" in run.error.message


@pytest.mark.parametrize("where", ["start_run", "execute_run", "run_once", "manager"])
async def test_a_misspelt_continuation_mode_is_a_validation_error_naming_the_modes(where: str) -> None:
    store = InMemorySessionStore()
    with pytest.raises(AsmError) as caught:
        if where == "manager":
            SessionManager(store, continuation="replya")
        manager = SessionManager(store)
        if where == "run_once":
            await manager.run_once("hi", provider=Recorder(), continuation="replya")
        sid = await session(manager)
        if where == "start_run":
            await manager.start_run(sid, "hi", continuation="replya")
        run = await manager.start_run(sid, "hi")
        await manager.execute_run(run.id, provider=Recorder(), continuation="replya")
    assert caught.value.code == "validation_error"
    assert "'replya' is not one of auto, replay, native, none" in caught.value.message
    if where == "execute_run":  # refused before the run was claimed
        runs = await store.list_runs(sid)
        assert [r.status for r in runs] == [RunStatus.PENDING]


def turns_of(n: int, words: int) -> list[Entry]:
    entries = []
    for i in range(n):
        entries += [
            Entry("message", "user", f"q{i} " + "w " * words, run_id=f"r{i}"),
            Entry("tool_call", tool_call_id=f"c{i}", tool_name="t", tool_input={"i": i}, run_id=f"r{i}"),
            Entry("tool_result", "tool", tool_call_id=f"c{i}", tool_name="t", tool_output="ok", run_id=f"r{i}"),
            Entry("message", "assistant", f"a{i} " + "w " * words, run_id=f"r{i}"),
        ]
    return entries


def test_fit_drops_the_oldest_whole_turns_and_keeps_system_messages() -> None:
    system = Entry("message", "system", "be terse")
    history = [system, *turns_of(5, 40)]
    run = RunInput.coerce("next")
    kept, truncated = fit(history, run, budget=130)
    assert truncated is not None
    assert kept[0] == system
    # Whole turns went: the first kept entry after the system message is a user message,
    # and every call kept has its result.
    assert kept[1].kind == "message" and kept[1].role == "user"
    calls = {e.tool_call_id for e in kept if e.kind == "tool_call"}
    assert calls == {e.tool_call_id for e in kept if e.kind == "tool_result"}
    assert truncated.dropped_turns == 5 - len(calls)
    assert truncated.dropped == 4 * truncated.dropped_turns and truncated.kept == len(kept)
    assert truncated.tokens <= truncated.budget == 130


def test_fit_at_the_boundary_keeps_everything_that_fits_exactly() -> None:
    history = turns_of(2, 4)
    run = RunInput.coerce("next")
    from asm.continuity import entry_text, estimate_tokens

    total = sum(estimate_tokens(entry_text(e)) for e in history) + estimate_tokens("next")
    assert fit(history, run, budget=total) == (tuple(history), None)
    kept, truncated = fit(history, run, budget=total - 1)
    assert truncated is not None and truncated.dropped_turns == 1 and kept == tuple(history[4:])


def test_fit_fails_with_the_numbers_when_the_input_alone_is_over_budget() -> None:
    with pytest.raises(AsmError) as caught:
        fit(turns_of(1, 1), RunInput.coerce("x" * 400), budget=50)
    assert caught.value.code == "context_window_exceeded"
    assert caught.value.details == {"tokens": 100, "budget": 50}


async def test_truncation_is_told_with_an_event_and_the_provider_gets_the_latest_turns() -> None:
    manager, provider = SessionManager(InMemorySessionStore(), continuation_max_tokens=60), Recorder()
    sid = await session(manager)
    for i in range(4):
        await turn(manager, sid, f"question {i} " + "padding " * 20, provider)
    run = await turn(manager, sid, "last", provider)
    history = provider.seen[-1].history
    assert said(history)[-1] == ("assistant", "answer 4") and said(history)[0][0] == "user"
    page = await manager.store.read_events(sid, run_id=run.id, types=["transcript_truncated"])
    truncated = page.events[0].data
    assert isinstance(truncated, TranscriptTruncated) and truncated.budget == 60 and truncated.dropped_turns >= 1


async def test_a_run_over_budget_fails_before_the_provider_is_called() -> None:
    manager, provider = SessionManager(InMemorySessionStore(), continuation_max_tokens=10), Recorder()
    sid = await session(manager)
    run = await turn(manager, sid, "a prompt far longer than ten tokens of budget allow", provider)
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "context_window_exceeded" and provider.seen == []


async def test_the_budget_defaults_to_a_share_of_the_models_context_window() -> None:
    table = PricingTable("t", "2026-12-01", {"tiny": ModelPrice(1, 1, context_window=80)})  # budget 60
    manager = SessionManager(InMemorySessionStore(), pricing=Pricing([table]))
    provider = Recorder()
    sid = await session(manager)
    for i in range(3):
        await turn(manager, sid, f"q{i} " + "pad " * 30, provider)
    run = await manager.start_run(sid, "next", options={"model": "tiny"})
    await manager.execute_run(run.id, provider=provider)
    page = await manager.store.read_events(sid, run_id=run.id, types=["transcript_truncated"])
    assert isinstance(page.events[0].data, TranscriptTruncated) and page.events[0].data.budget == 60


@asm.hookimpl
def asm_count_tokens(text: str, model: str | None, provider: str) -> int | None:
    return 300 if "question" in text else None


async def test_a_plugin_counts_tokens_through_asm_count_tokens() -> None:
    registry = asm.load_plugins(extra=[sys.modules[__name__]])
    manager = SessionManager(InMemorySessionStore(), plugins=registry, continuation_max_tokens=500)
    provider = Recorder()
    sid = await session(manager)
    await turn(manager, sid, "first question", provider)
    await turn(manager, sid, "second question", provider)
    await turn(manager, sid, "next", provider)
    # A question is 300 tokens by the plugin's tokenizer: two do not fit in 500.
    assert provider.seen[1].history == ()
    assert said(provider.seen[2].history) == [("user", "second question"), ("assistant", "answer 2")]


async def test_tool_calls_of_earlier_runs_are_replayed_with_their_results() -> None:
    calls = [ToolCallStarted("t1", "read", {"path": "a"}), ToolCallCompleted("t1", "read", "text")]
    manager, provider = SessionManager(InMemorySessionStore()), Recorder(script=calls)
    sid = await session(manager)
    await turn(manager, sid, "read a", provider)
    await turn(manager, sid, "again", provider)
    kinds = [e.kind for e in provider.seen[1].history]
    assert kinds == ["message", "tool_call", "tool_result", "message"]


def test_a_cli_prompt_carries_the_replayed_history_as_a_documented_preamble() -> None:
    history = (
        Entry("message", "user", "hi"),
        Entry("tool_call", tool_call_id="c1", tool_name="read", tool_input={"path": "a"}),
        Entry("tool_result", "tool", tool_call_id="c1", tool_name="read", tool_output="x", is_error=True),
        Entry("thinking", content="hidden"),
        Entry("message", "assistant", "hello"),
    )
    assert render_preamble(history) == (
        '[user] hi\n[tool call read id=c1] {"path": "a"}\n[tool result error read id=c1] x\n[assistant] hello'
    )
    run = attrs.evolve(RunInput.coerce("next"), history=history)
    assert replay_prompt(run).startswith(PREAMBLE_HEADER + "\n[user] hi")
    assert replay_prompt(run).endswith("\n\nThe new message:\nnext")
    assert replay_prompt(RunInput.coerce("next")) == "next"


async def test_the_config_sets_the_mode_and_budget_of_a_runtime(tmp_path: Any) -> None:
    config = tmp_path / "asm.toml"
    config.write_text('continuation = "none"\ncontinuation_max_tokens = 2000\nstore = "memory"\n')
    async with asm.open_runtime(config_file=config) as runtime:
        assert runtime.manager.continuation == "none"
        assert runtime.manager.continuation_max_tokens == 2000


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('continuation = "replya"', "continuation must be one of auto, replay, native, none, not 'replya'"),
        ("continuation_max_tokens = 0", "continuation_max_tokens must be at least 1 token"),
    ],
)
async def test_a_bad_continuation_setting_is_an_invalid_config_naming_the_file(
    tmp_path: Any, line: str, says: str
) -> None:
    config = tmp_path / "asm.toml"
    config.write_text(line + "\n")
    with pytest.raises(AsmError) as caught:
        asm.load_config(config_file=config, env={}, user_file="/nonexistent")
    assert caught.value.code == "invalid_config" and says in caught.value.message
    assert str(config) in caught.value.message
