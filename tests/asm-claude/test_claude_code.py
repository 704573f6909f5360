"""The claude-code provider against fake ``claude`` executables replaying real
``claude -p --output-format stream-json --verbose`` streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from asm_claude.code import ClaudeCodeOptions, ClaudeCodeProvider, create_code_provider
from fake_cli_contract import AsmStoppedContract, CliMisbehaviourContract
from fake_cli_fixtures import Install

import asm
import asm.cost
import asm.serde
from asm import AsmError, Cost, InMemorySessionStore, RunStatus, SessionManager, TokenUsage
from asm.events import (
    CostUpdated,
    ErrorOccurred,
    ErrorRecovered,
    EventType,
    MessageReceived,
    MessageStreamed,
    RunStarted,
    ToolCallCompleted,
    ToolCallStarted,
)
from asm.ports import Provider
from asm.testing import ProviderContract


class TestClaudeCodeContract(ProviderContract):
    prompt = "run echo hi"

    @pytest.fixture
    def provider(self, install_fake: Install) -> Provider:
        install_fake("claude", stream="claude_cli_stream_partial.jsonl")
        return ClaudeCodeProvider()

    @pytest.fixture
    def slow_provider(self, install_fake: Install) -> Provider:
        exe = install_fake("claude-stalls", stream="claude_cli_stream_partial.jsonl", mode="stall")
        return ClaudeCodeProvider(ClaudeCodeOptions(path=str(exe), terminate_grace=1.0))


class TestClaudeCodeMisbehaves(CliMisbehaviourContract):
    cli = "claude"
    stream = "claude_cli_stream_partial.jsonl"
    output = "Hello from the fake server."

    def provider(self, **options: Any) -> Provider:
        return ClaudeCodeProvider(ClaudeCodeOptions(**options))


class TestClaudeCodeWhenAsmIsStopped(AsmStoppedContract):
    provider_name = "claude-code"
    cli = "claude"
    stream = "claude_cli_stream_partial.jsonl"


async def run(
    provider: ClaudeCodeProvider, prompt: str = "run echo hi", **options: object
) -> tuple[asm.Run, list[asm.Event]]:
    manager = SessionManager(InMemorySessionStore(), provider=provider)
    done = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(done.session_id, run_id=done.id)).events
    return done, list(events)


def content(events: list[asm.Event]) -> list[object]:
    return [e.data for e in events if e.type not in (EventType.RUN_STARTED, EventType.MESSAGE_SENT)]


async def test_recorded_partial_stream_is_normalized(install_fake: Install) -> None:
    install_fake("claude", stream="claude_cli_stream_partial.jsonl")
    done, events = await run(ClaudeCodeProvider())
    assert done.status is RunStatus.COMPLETED
    assert done.output == "Hello from the fake server."
    assert done.usage == TokenUsage(input_tokens=20, output_tokens=24)
    assert done.result is not None
    assert done.result.cost == Cost(total_usd=0.00042)
    assert done.result.stop_reason == "end_turn"
    assert done.result.model == "claude-sonnet-4-5"
    assert done.result.metadata["session_id"] == "c1ec53f3-37b7-4fae-b36d-38998bdcb6f3"
    assert done.result.metadata["num_turns"] == 2
    payloads = content(events)
    assert payloads[:3] == [
        ToolCallStarted("toolu_fake01", "Bash", {"command": "echo hi from bash", "description": "say hi"}),
        ToolCallCompleted("toolu_fake01", "Bash", "hi from bash"),
        asm.events.TurnCompleted(1),
    ]
    # token deltas streamed (coalesced when they arrive together), the full text once more as a message
    streamed = "".join(p.delta for p in payloads if isinstance(p, MessageStreamed))
    assert streamed == "Hello from the fake server."
    assert [p for p in payloads if isinstance(p, MessageReceived)] == [MessageReceived("Hello from the fake server.")]
    assert CostUpdated(Cost(total_usd=0.00042), "claude-sonnet-4-5") in payloads


async def test_recorded_stream_without_partial_messages(install_fake: Install) -> None:
    install_fake("claude", stream="claude_cli_stream.jsonl")
    done, events = await run(ClaudeCodeProvider(ClaudeCodeOptions(partial_messages=False)))
    assert done.status is RunStatus.COMPLETED
    assert done.output == "Hello from the fake server."
    assert MessageStreamed("Hello from the fake server.") in content(events)
    assert done.result is not None and done.result.metadata["session_id"] == "24df73ed-9323-4d26-b320-1a5028a814d3"


async def test_flags_prompt_and_environment(
    install_fake: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    install_fake("claude", stream="claude_cli_stream.jsonl", record=record)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("UNRELATED_SECRET", "nope")
    provider = create_code_provider(
        {
            "model": "claude-sonnet-4-5",
            "permission_mode": "acceptEdits",
            "max_turns": 3,
            "system_prompt": "You are terse.",
            "append_system_prompt": "Use British spelling.",
            "allowed_tools": ["Bash(git:*)", "Edit"],
            "disallowed_tools": ["WebFetch"],
            "sdk_opts": {"args": ["--mcp-config", "mcp.json"], "env": {"CLAUDE_CODE_MAX_RETRIES": "0"}},
        }
    )
    done, _ = await run(provider, "fix the bug", resume="24df73ed-9323-4d26-b320-1a5028a814d3")
    assert done.status is RunStatus.COMPLETED, done.error
    seen = json.loads(record.read_text())
    assert seen["argv"][1:] == [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--model",
        "claude-sonnet-4-5",
        "--permission-mode",
        "acceptEdits",
        "--max-turns",
        "3",
        "--system-prompt",
        "You are terse.",
        "--append-system-prompt",
        "Use British spelling.",
        "--allowedTools",
        "Bash(git:*),Edit",
        "--disallowedTools",
        "WebFetch",
        "--resume",
        "24df73ed-9323-4d26-b320-1a5028a814d3",
        "--mcp-config",
        "mcp.json",
    ]
    assert seen["stdin"] == "fix the bug"
    assert seen["env"]["ANTHROPIC_API_KEY"] == "sk-ant-test"
    assert seen["env"]["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert "UNRELATED_SECRET" not in seen["env"]


async def test_api_error_result_fails_the_run_retryably(install_fake: Install) -> None:
    install_fake("claude", stream="claude_cli_stream_error.jsonl", mode="exit=1")
    done, events = await run(ClaudeCodeProvider())
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.code == "provider_unavailable" and done.error.retryable
    error = done.error.provider_error
    assert error is not None
    assert (error.provider, error.kind, error.exit_code) == ("claude-code", "result_error", 1)
    assert "529 Overloaded" in error.message
    assert events[-1].type is EventType.RUN_FAILED


async def test_max_turns_result(install_fake: Install, tmp_path: Path) -> None:
    stream = tmp_path / "max_turns.jsonl"
    line = {"type": "result", "subtype": "error_max_turns", "is_error": True, "num_turns": 3, "session_id": "s"}
    stream.write_text(json.dumps(line) + "\n")
    install_fake("claude", stream=stream, mode="exit=1")
    done, _ = await run(ClaudeCodeProvider(ClaudeCodeOptions(max_turns=3)))
    assert done.error is not None and done.error.provider_error is not None
    assert done.error.provider_error.kind == "max_turns"


async def test_executable_not_found_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    done, _ = await run(ClaudeCodeProvider())
    assert done.error is not None and done.error.code == "provider_not_found"
    assert "npm install -g @anthropic-ai/claude-code" in done.error.message and "'path'" in done.error.message


@pytest.mark.parametrize(
    ("config", "named"),
    [({"max_turn": 3}, "'max_turn'"), ({"permission_mode": "yolo"}, "yolo"), ({"sdk_opts": {"argv": []}}, "'argv'")],
)
def test_bad_config(config: dict[str, object], named: str) -> None:
    with pytest.raises(AsmError) as caught:
        create_code_provider(config)
    assert caught.value.code == "invalid_config"
    assert named in str(caught.value)


def test_registered_through_its_entry_point() -> None:
    registry = asm.load_plugins(env={"ASM_LOAD_PLUGINS": "asm-claude"})
    assert isinstance(registry.create("providers", "claude-code", {}), ClaudeCodeProvider)


async def test_policy_tool_rules_become_claude_codes_own_flags(install_fake: Install, tmp_path: Path) -> None:
    from asm.policy import Policy, ToolRule

    record = tmp_path / "record.json"
    install_fake("claude", stream="claude_cli_stream.jsonl", record=record)
    provider = create_code_provider({"disallowed_tools": ["WebFetch"]})
    policy = Policy(
        "repo-only",
        tool_rules=(
            ToolRule("Read", "allow"),
            ToolRule("Bash", "allow"),
            ToolRule("Write", "deny"),
            ToolRule("rm*", "deny"),
        ),
    )
    manager = SessionManager(InMemorySessionStore(), provider=provider, policies=[policy])
    done = await manager.run_once("look around")
    assert done.status is RunStatus.COMPLETED, done.error
    argv = json.loads(record.read_text())["argv"]
    # Plain names go to the CLI; the glob `rm*` cannot, and is judged as tool calls start.
    assert argv[argv.index("--allowedTools") + 1] == "Bash,Read"
    assert argv[argv.index("--disallowedTools") + 1] == "WebFetch,Write"


# -- the model, cost, API errors and the CLI's own retries ---------------------------------

FIXTURES = Path(__file__).resolve().parents[2] / "examples" / "fakes" / "streams"


def recorded(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def api_retry(attempt: int, *, status: int | None = 529, error: str = "server_error") -> dict[str, Any]:
    """A ``system``/``api_retry`` line as Claude Code prints it before each retry of a failed API call."""
    return {
        "type": "system",
        "subtype": "api_retry",
        "attempt": attempt,
        "max_retries": 3,
        "retry_delay_ms": 500 * 2 ** (attempt - 1),
        "error_status": status,
        "error": error,
        "session_id": "c1ec53f3-37b7-4fae-b36d-38998bdcb6f3",
        "uuid": f"retry-{attempt}",
    }


def write_stream(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def pricing(*models: str) -> asm.cost.Pricing:
    from asm.cost import ModelPrice, Pricing, PricingTable

    return Pricing([PricingTable("t", "", {m: ModelPrice(input=3, output=15) for m in models})])


async def priced_run(provider: ClaudeCodeProvider, table: asm.cost.Pricing) -> tuple[asm.Run, list[object]]:
    manager = SessionManager(InMemorySessionStore(), provider=provider, pricing=table)
    done = await manager.run_once("run echo hi")
    return done, [e.data for e in (await manager.store.read_events(done.session_id)).events]


async def test_the_init_lines_model_is_the_runs_and_claude_codes_own_cost_is_the_only_one(
    install_fake: Install,
) -> None:
    install_fake("claude", stream="claude_cli_stream_partial.jsonl")
    # a priced model: the cost Claude Code reports is the run's, no second figure computed beside it
    done, events = await priced_run(ClaudeCodeProvider(), pricing("claude-sonnet-4-5"))
    assert [e for e in events if isinstance(e, CostUpdated)] == [CostUpdated(Cost("0.00042"), "claude-sonnet-4-5")]
    assert [e.model for e in events if isinstance(e, asm.events.TokenUsageUpdated)] == ["claude-sonnet-4-5"]
    assert done.model == "claude-sonnet-4-5" and done.cost == Cost("0.00042")
    # a model no table prices: still no cost_unknown, Claude Code said what it cost
    done, events = await priced_run(ClaudeCodeProvider(), pricing("another-model"))
    assert [e for e in events if isinstance(e, ErrorOccurred)] == []
    assert done.cost == Cost("0.00042")


async def test_the_configured_model_is_named_before_the_run(install_fake: Install) -> None:
    install_fake("claude", stream="claude_cli_stream_partial.jsonl")
    provider = create_code_provider({"model": "claude-sonnet-4-5"})
    assert provider.model_for(asm.RunInput.coerce("hi")) == "claude-sonnet-4-5"
    assert provider.model_for(asm.RunInput.coerce("hi", options={"model": "opus"})) == "opus"
    assert ClaudeCodeProvider().model_for(asm.RunInput.coerce("hi")) is None  # the init line will say
    _, events = await priced_run(provider, pricing())
    assert [e for e in events if isinstance(e, RunStarted)] == [RunStarted("claude-code", "claude-sonnet-4-5")]


async def test_an_api_errors_text_is_not_the_answer(install_fake: Install) -> None:
    # Claude Code turns an API error into a synthetic assistant message ("API Error: 529 ...", model
    # "<synthetic>"): that is why the run failed, not something the model said.
    install_fake("claude", stream="claude_cli_stream_error.jsonl", mode="exit=1")
    done, events = await run(ClaudeCodeProvider())
    assert done.status is RunStatus.FAILED and done.output == ""
    payloads = content(events)
    assert not [p for p in payloads if isinstance(p, MessageStreamed | MessageReceived)]
    assert "<synthetic>" not in json.dumps([asm.serde.converter.unstructure(e) for e in events])
    assert [p for p in payloads if isinstance(p, CostUpdated)] == [CostUpdated(Cost(0), "fake-529")]
    assert done.model == "fake-529"
    assert done.error is not None and "API Error: 529 Overloaded" in done.error.message


async def test_each_retry_of_the_cli_is_an_event_and_success_after_it_a_recovery(
    install_fake: Install, tmp_path: Path
) -> None:
    lines = recorded("claude_cli_stream_partial.jsonl")
    stream = write_stream(tmp_path / "retried.jsonl", [lines[0], api_retry(1), api_retry(2), *lines[1:]])
    install_fake("claude", stream=stream)
    done, events = await run(ClaudeCodeProvider())
    assert done.status is RunStatus.COMPLETED and done.output == "Hello from the fake server."
    payloads = content(events)
    retries = [p for p in payloads if isinstance(p, ErrorOccurred)]
    assert [(p.error_code, p.provider_error and p.provider_error.kind) for p in retries] == [
        ("provider_unavailable", "api_retry"),
        ("provider_unavailable", "api_retry"),
    ]
    assert "retry 1/3 in 0.5s" in retries[0].error_message and "529" in retries[0].error_message
    recovered = [p for p in payloads if isinstance(p, ErrorRecovered)]
    assert len(recovered) == 1 and recovered[0].error_code == "provider_unavailable"
    # the retries come first, the recovery before the first content of the answer
    first_content = next(i for i, p in enumerate(payloads) if isinstance(p, ToolCallStarted | MessageStreamed))
    assert payloads.index(recovered[0]) < first_content
    assert max(payloads.index(r) for r in retries) < payloads.index(recovered[0])


async def test_retries_that_run_out_fail_the_run_without_a_recovery(install_fake: Install, tmp_path: Path) -> None:
    init, synthetic, result = recorded("claude_cli_stream_error.jsonl")
    retries = [api_retry(1, status=429, error="rate_limit"), api_retry(2, status=429, error="rate_limit")]
    stream = write_stream(tmp_path / "exhausted.jsonl", [init, *retries, synthetic, result])
    install_fake("claude", stream=stream, mode="exit=1")
    done, events = await run(ClaudeCodeProvider())
    payloads = content(events)
    assert [p.error_code for p in payloads if isinstance(p, ErrorOccurred)] == ["provider_rate_limited"] * 2
    assert not [p for p in payloads if isinstance(p, ErrorRecovered | MessageStreamed)]
    assert done.status is RunStatus.FAILED and done.error is not None and done.error.retryable


async def test_the_clis_retries_are_bounded_by_default_and_configurable(
    install_fake: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    install_fake("claude", stream="claude_cli_stream.jsonl", record=record)

    async def retries(provider: ClaudeCodeProvider, **options: object) -> str | None:
        done, _ = await run(provider, **options)
        assert done.status is RunStatus.COMPLETED, done.error
        value: str | None = json.loads(record.read_text())["env"].get("CLAUDE_CODE_MAX_RETRIES")
        return value

    monkeypatch.delenv("CLAUDE_CODE_MAX_RETRIES", raising=False)
    assert await retries(ClaudeCodeProvider()) == "3"  # not Claude Code's own 10 (minutes of silent waiting)
    assert await retries(create_code_provider({"max_retries": 0})) == "0"
    assert await retries(ClaudeCodeProvider(), max_retries=5) == "5"  # per run
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "7")  # set where asm runs: respected
    assert await retries(ClaudeCodeProvider()) == "7"
    assert await retries(create_code_provider({"max_retries": 1})) == "1"


def test_a_negative_retry_count_is_refused() -> None:
    with pytest.raises(AsmError) as caught:
        create_code_provider({"max_retries": -1})
    assert caught.value.code == "invalid_config" and "max_retries must be >= 0" in caught.value.message
