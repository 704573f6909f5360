"""The amp provider against fake ``amp`` executables replaying its stream-json format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from asm_amp import AmpOptions, AmpProvider, create_provider
from fake_cli_contract import AsmStoppedContract, CliMisbehaviourContract
from fake_cli_fixtures import Install

import asm
from asm import AsmError, InMemorySessionStore, RunStatus, SessionManager, TokenUsage
from asm.events import (
    EventType,
    MessageReceived,
    MessageStreamed,
    ToolCallCompleted,
    ToolCallStarted,
    TurnCompleted,
)
from asm.ports import Provider
from asm.testing import ProviderContract


class TestAmpContract(ProviderContract):
    prompt = "run echo hi"

    @pytest.fixture
    def provider(self, install_fake: Install) -> Provider:
        install_fake("amp", stream="amp_stream.jsonl")
        return AmpProvider()

    @pytest.fixture
    def slow_provider(self, install_fake: Install) -> Provider:
        exe = install_fake("amp-stalls", stream="amp_stream.jsonl", mode="stall")
        return AmpProvider(AmpOptions(path=str(exe), terminate_grace=1.0))


class TestAmpMisbehaves(CliMisbehaviourContract):
    cli = "amp"
    stream = "amp_stream.jsonl"
    output = "It printed hi."

    def provider(self, **options: Any) -> Provider:
        return AmpProvider(AmpOptions(**options))


class TestAmpWhenAsmIsStopped(AsmStoppedContract):
    provider_name = "amp"
    cli = "amp"
    stream = "amp_stream.jsonl"


async def run(provider: AmpProvider, prompt: str = "run echo hi", **options: object) -> tuple[asm.Run, list[asm.Event]]:
    manager = SessionManager(InMemorySessionStore(), provider=provider)
    done = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(done.session_id, run_id=done.id)).events
    return done, list(events)


async def test_recorded_stream_is_normalized(install_fake: Install) -> None:
    install_fake("amp", stream="amp_stream.jsonl")
    done, events = await run(AmpProvider())
    assert done.status is RunStatus.COMPLETED
    assert done.output == "It printed hi."
    # cache reads come from the messages (amp's result omits them) and count as input
    assert done.usage == TokenUsage(input_tokens=3300, output_tokens=48, cache_read_tokens=800)
    assert done.result is not None
    assert done.result.metadata["session_id"] == "T-019b9d03-62e3-772f-9780-3e637f90eaec"
    assert done.result.stop_reason == "end_turn"
    assert done.result.model == "claude-sonnet-4-5"
    payloads = [e.data for e in events if e.type not in (EventType.RUN_STARTED, EventType.MESSAGE_SENT)]
    assert payloads[:7] == [
        MessageStreamed("Running it."),
        MessageReceived("Running it."),
        ToolCallStarted("toolu_01B", "Bash", {"cmd": "echo hi"}),
        ToolCallCompleted("toolu_01B", "Bash", "hi\n"),
        TurnCompleted(1),
        MessageStreamed("It printed hi."),
        MessageReceived("It printed hi."),
    ]
    assert TurnCompleted(2) in payloads
    assert EventType.COST_UPDATED not in [e.type for e in events]  # amp reports no cost


async def test_flags_and_environment(install_fake: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "record.json"
    install_fake("amp", stream="amp_stream.jsonl", record=record)
    monkeypatch.setenv("AMP_API_KEY", "amp-key")
    monkeypatch.setenv("UNRELATED_SECRET", "nope")
    provider = create_provider(
        {
            "mode": "rush",
            "permission_mode": "allow-all",
            "thinking": True,
            "settings_file": "/etc/amp.json",
            "system_prompt": "Be brief.",
            "sdk_opts": {"args": ["--no-notifications"]},
        }
    )
    done, _ = await run(provider, "-v is not a flag", resume="T-019b9d03-62e3-772f-9780-3e637f90eaec")
    assert done.status is RunStatus.COMPLETED, done.error
    seen = json.loads(record.read_text())
    assert seen["argv"][1:] == [
        "threads",
        "continue",
        "T-019b9d03-62e3-772f-9780-3e637f90eaec",
        "--execute",
        "Be brief.\n\n-v is not a flag",
        "--stream-json-thinking",
        "--mode",
        "rush",
        "--dangerously-allow-all",
        "--settings-file",
        "/etc/amp.json",
        "--no-notifications",
    ]
    assert seen["env"]["AMP_API_KEY"] == "amp-key"
    assert "UNRELATED_SECRET" not in seen["env"]


async def test_a_prompt_starting_with_a_dash_is_not_a_flag(install_fake: Install, tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    install_fake("amp", stream="amp_stream.jsonl", record=record)
    await run(AmpProvider(), "--help me")
    argv = json.loads(record.read_text())["argv"]
    assert argv[argv.index("--execute") + 1] == " --help me"


async def test_error_result_fails_the_run(install_fake: Install) -> None:
    install_fake("amp", stream="amp_stream_error.jsonl", mode="exit=1")
    done, _ = await run(AmpProvider())
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.code == "provider_quota_exceeded"
    error = done.error.provider_error
    assert error is not None
    assert (error.provider, error.kind, error.exit_code) == ("amp", "result_error", 1)
    assert "Out of credits" in error.message


async def test_max_turns_is_enforced_by_stopping_amp(install_fake: Install) -> None:
    install_fake("amp", stream="amp_stream.jsonl", mode="slow=0.05")
    done, events = await run(AmpProvider(AmpOptions(max_turns=1, terminate_grace=1.0)))
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.provider_error is not None
    assert done.error.provider_error.kind == "max_turns"
    assert "max_turns=1" in done.error.message
    assert MessageReceived("It printed hi.") in [e.data for e in events]  # the second turn had begun


async def test_stream_cut_short_fails(install_fake: Install, tmp_path: Path) -> None:
    stream = tmp_path / "cut.jsonl"
    stream.write_text(
        "\n".join((Path(__file__).parents[2] / "examples/fakes/streams/amp_stream.jsonl").read_text().splitlines()[:2])
    )
    install_fake("amp", stream=stream)
    done, _ = await run(AmpProvider())
    assert done.error is not None and done.error.provider_error is not None
    assert done.error.provider_error.kind == "incomplete"


async def test_executable_not_found_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    done, _ = await run(AmpProvider())
    assert done.error is not None and done.error.code == "provider_not_found"
    assert "npm install -g @ampcode/cli" in done.error.message and "'path'" in done.error.message


@pytest.mark.parametrize(
    ("config", "named"),
    [({"modle": "x"}, "'modle'"), ({"model": "gpt"}, "mode"), ({"permission_mode": "yolo"}, "yolo")],
)
def test_bad_config(config: dict[str, object], named: str) -> None:
    with pytest.raises(AsmError) as caught:
        create_provider(config)
    assert caught.value.code == "invalid_config"
    assert named in str(caught.value)


def test_registered_through_its_entry_point() -> None:
    registry = asm.load_plugins(env={"ASM_LOAD_PLUGINS": "asm-amp"})
    assert isinstance(registry.create("providers", "amp", {}), AmpProvider)
