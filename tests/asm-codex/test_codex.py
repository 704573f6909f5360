"""The codex provider against fake ``codex`` executables replaying real ``codex exec --json`` streams."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from asm_codex import CodexOptions, CodexProvider, create_provider
from fake_cli_contract import AsmStoppedContract, CliMisbehaviourContract
from fake_cli_fixtures import Install

import asm
from asm import AsmError, InMemorySessionStore, RunStatus, SessionManager, TokenUsage
from asm.events import (
    ErrorOccurred,
    EventType,
    MessageReceived,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    WorkspaceDiffComputed,
    WorkspaceRolledBack,
)
from asm.ports import Provider
from asm.testing import ProviderContract


class TestCodexContract(ProviderContract):
    prompt = "run echo hi"

    @pytest.fixture
    def provider(self, install_fake: Install) -> Provider:
        install_fake("codex", stream="codex_exec.jsonl")
        return CodexProvider()

    @pytest.fixture
    def slow_provider(self, install_fake: Install, tmp_path: Path) -> Provider:
        exe = install_fake("codex-stalls", stream="codex_exec.jsonl", mode="stall")
        return CodexProvider(CodexOptions(path=str(exe), terminate_grace=1.0))


class TestCodexMisbehaves(CliMisbehaviourContract):
    cli = "codex"
    stream = "codex_exec.jsonl"
    output = "Hello from the fake server."

    def provider(self, **options: Any) -> Provider:
        return CodexProvider(CodexOptions(**options))


class TestCodexWhenAsmIsStopped(AsmStoppedContract):
    provider_name = "codex"
    cli = "codex"
    stream = "codex_exec.jsonl"


async def run(
    provider: CodexProvider, prompt: str = "run echo hi", **options: object
) -> tuple[asm.Run, list[asm.Event]]:
    manager = SessionManager(InMemorySessionStore(), provider=provider)
    done = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(done.session_id, run_id=done.id)).events
    return done, list(events)


async def test_recorded_stream_is_normalized(install_fake: Install) -> None:
    install_fake("codex", stream="codex_exec.jsonl")
    done, events = await run(CodexProvider())
    assert done.status is RunStatus.COMPLETED
    assert done.output == "Hello from the fake server."
    assert done.usage == TokenUsage(input_tokens=200, output_tokens=14, cache_read_tokens=40)
    assert done.result is not None
    assert done.result.metadata["thread_id"] == "01a213c6-1374-73b2-b3b2-0f078e1671ae"
    payloads = [e.data for e in events]
    started = [p for p in payloads if isinstance(p, ToolCallStarted)]
    assert started == [
        ToolCallStarted("item_1", "command_execution", {"command": "/bin/bash -lc 'echo hi from shell'"})
    ]
    completed = [p for p in payloads if isinstance(p, ToolCallCompleted)]
    assert completed == [
        ToolCallCompleted("item_1", "command_execution", {"exit_code": 0, "output": "hi from shell\n"})
    ]
    assert MessageReceived("Hello from the fake server.") in payloads
    warnings = [p for p in payloads if isinstance(p, ErrorOccurred)]
    assert len(warnings) == 1 and "Model metadata" in warnings[0].error_message
    types = [e.type for e in events]
    assert types.index(EventType.TOOL_CALL_STARTED) < types.index(EventType.TOOL_CALL_COMPLETED)
    assert EventType.TURN_COMPLETED in types


async def test_flags_prompt_and_environment(
    install_fake: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    install_fake("codex", stream="codex_exec.jsonl", record=record)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("UNRELATED_SECRET", "nope")
    workdir = tmp_path / "work"
    workdir.mkdir()
    provider = create_provider(
        {
            "model": "gpt-test",
            "permission_mode": "workspace-write",
            "system_prompt": "Be brief.",
            "cwd": str(workdir),
            "skip_git_repo_check": True,
            "config": {"model_reasoning_effort": "low"},
            "sdk_opts": {"args": ["--color", "never"], "env": {"CODEX_EXTRA": "1"}},
            "env": {"CODEX_HOME": str(tmp_path)},
        }
    )
    done, _ = await run(provider, "do the thing", resume="01a213c6-1374-73b2-b3b2-0f078e1671ae")
    assert done.status is RunStatus.COMPLETED, done.error
    seen = json.loads(record.read_text())
    assert seen["argv"][1:] == [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--model",
        "gpt-test",
        "--sandbox",
        "workspace-write",
        "-c",
        'model_reasoning_effort="low"',
        "--color",
        "never",
        "resume",
        "01a213c6-1374-73b2-b3b2-0f078e1671ae",
        "-",
    ]
    assert seen["stdin"] == "Be brief.\n\ndo the thing"
    assert seen["cwd"] == str(workdir)
    assert seen["env"]["OPENAI_API_KEY"] == "sk-test"
    assert seen["env"]["CODEX_EXTRA"] == "1"
    assert seen["env"]["CODEX_HOME"] == str(tmp_path)
    assert "UNRELATED_SECRET" not in seen["env"]


async def test_error_stream_fails_the_run_retryably(install_fake: Install) -> None:
    install_fake("codex", stream="codex_exec_error.jsonl", mode="exit=1")
    done, events = await run(CodexProvider())
    assert done.status is RunStatus.FAILED
    assert done.error is not None
    assert done.error.code == "provider_unavailable" and done.error.retryable
    error = done.error.provider_error
    assert error is not None
    assert (error.provider, error.kind, error.exit_code) == ("codex", "turn_failed", 1)
    assert "529" in error.message
    assert events[-1].type is EventType.RUN_FAILED


async def test_failed_command_is_a_failed_tool_call(install_fake: Install, tmp_path: Path) -> None:
    stream = tmp_path / "failed.jsonl"
    lines = [
        {"type": "thread.started", "thread_id": "t"},
        {
            "type": "item.started",
            "item": {"id": "i1", "type": "command_execution", "command": "false", "status": "in_progress"},
        },
        {
            "type": "item.completed",
            "item": {
                "id": "i1",
                "type": "command_execution",
                "command": "false",
                "aggregated_output": "",
                "exit_code": 1,
                "status": "failed",
            },
        },
        {
            "type": "item.completed",
            "item": {
                "id": "i2",
                "type": "file_change",
                "changes": [{"path": "a.py", "kind": "update"}],
                "status": "completed",
            },
        },
        {"type": "item.completed", "item": {"id": "i3", "type": "reasoning", "text": "thinking..."}},
        {"type": "item.completed", "item": {"id": "i4", "type": "agent_message", "text": "done"}},
        {"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 2}},
    ]
    stream.write_text("".join(json.dumps(line) + "\n" for line in lines))
    install_fake("codex", stream=stream)
    done, events = await run(CodexProvider())
    payloads = [e.data for e in events]
    assert ToolCallFailed("i1", "command_execution", "command exit code 1") in payloads
    assert ToolCallStarted("i2", "file_change", {"changes": [{"path": "a.py", "kind": "update"}]}) in payloads
    assert ToolCallCompleted("i2", "file_change", {"changes": [{"path": "a.py", "kind": "update"}]}) in payloads
    assert EventType.THINKING_STREAMED in [e.type for e in events]
    assert done.output == "done"


async def test_stall_with_a_provider_timeout_fails_retryably(install_fake: Install) -> None:
    install_fake("codex", stream="codex_exec.jsonl", mode="stall")
    done, _ = await run(CodexProvider(CodexOptions(timeout=0.5, terminate_grace=1.0)))
    assert done.error is not None and done.error.code == "provider_timeout" and done.error.retryable


async def test_executable_not_found_says_how_to_install(fake_bin: Path) -> None:
    done, _ = await run(CodexProvider(CodexOptions(path=str(fake_bin / "codex"))))
    assert done.error is not None and done.error.code == "provider_not_found"
    assert "npm install -g @openai/codex" in done.error.message


async def test_executable_not_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    done, _ = await run(CodexProvider())
    assert done.error is not None and done.error.code == "provider_not_found"
    assert "'codex' was not found on PATH" in done.error.message and "'path'" in done.error.message


def test_unknown_config_option_is_named() -> None:
    with pytest.raises(AsmError) as caught:
        create_provider({"modle": "x"})
    assert caught.value.code == "invalid_config"
    assert "'modle'" in str(caught.value)


@pytest.mark.parametrize(
    "config",
    [{"permission_mode": "yolo"}, {"max_turns": 0}, {"sdk_opts": {"flags": []}}, {"config": {"k": {"nested": 1}}}],
)
def test_bad_option_values(config: dict[str, object]) -> None:
    with pytest.raises(AsmError) as caught:
        create_provider(config)
    assert caught.value.code == "invalid_config"


async def test_bad_run_options(install_fake: Install) -> None:
    install_fake("codex", stream="codex_exec.jsonl")
    done, _ = await run(CodexProvider(), temperature=0.2)
    assert done.error is not None and done.error.code == "invalid_input" and "'temperature'" in done.error.message
    done, _ = await run(CodexProvider(), permission_mode="yolo")
    assert done.error is not None and done.error.code == "invalid_input"


async def test_run_options_override_config(install_fake: Install, tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    install_fake("codex", stream="codex_exec.jsonl", record=record)
    done, _ = await run(CodexProvider(CodexOptions(model="a")), model="b")
    assert done.status is RunStatus.COMPLETED
    argv = json.loads(record.read_text())["argv"]
    assert argv[argv.index("--model") + 1] == "b"


def test_registered_through_its_entry_point() -> None:
    registry = asm.load_plugins(env={"ASM_LOAD_PLUGINS": "asm-codex"})
    assert isinstance(registry.create("providers", "codex", {}), CodexProvider)


async def test_the_configured_model_is_the_runs_model_and_prices_it(install_fake: Install) -> None:
    # `model` in [providers.codex]: codex prints no model and no cost, so asm prices its tokens
    from asm.cost import ModelPrice, Pricing, PricingTable
    from asm.events import CostUpdated, RunStarted, TokenUsageUpdated

    install_fake("codex", stream="codex_exec.jsonl")
    pricing = Pricing([PricingTable("t", "", {"gpt-5-codex": ModelPrice(input=1, output=10)})])
    manager = SessionManager(
        InMemorySessionStore(), provider=create_provider({"model": "gpt-5-codex"}), pricing=pricing
    )
    done = await manager.run_once("run echo hi")
    events = [e.data for e in (await manager.store.read_events(done.session_id)).events]
    assert [e for e in events if isinstance(e, RunStarted)] == [RunStarted("codex", "gpt-5-codex")]
    assert [e.model for e in events if isinstance(e, TokenUsageUpdated)] == ["gpt-5-codex"]
    assert not [e for e in events if isinstance(e, ErrorOccurred) and e.error_code == "cost_unknown"]
    assert [e.model for e in events if isinstance(e, CostUpdated)] == ["gpt-5-codex"]
    assert done.model == "gpt-5-codex" and done.cost is not None
    # a run option overrides it
    done = await manager.run_once("run echo hi", options={"model": "o4-mini"})
    assert done.model == "o4-mini"


def test_model_for_says_which_model_before_the_run() -> None:
    provider = create_provider({"model": "gpt-5-codex"})
    assert provider.model_for(asm.RunInput.coerce("hi")) == "gpt-5-codex"
    assert provider.model_for(asm.RunInput.coerce("hi", options={"model": "o4-mini"})) == "o4-mini"
    assert CodexProvider().model_for(asm.RunInput.coerce("hi")) is None  # codex's own config decides


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree with a text file and a file the agent deletes."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    (repo / "notes.txt").write_text("first line\n")
    (repo / "obsolete.cfg").write_text("old\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env={**os.environ, **env})
    return repo


@pytest.mark.parametrize(
    ("stream", "mode", "rolled_back"),
    [("codex_exec_error.jsonl", "edit,exit=1", True), ("codex_exec.jsonl", "edit", False)],
)
async def test_codex_editing_a_workspace_leaves_a_patch_and_is_rolled_back_on_failure(
    install_fake: Install, repo: Path, stream: str, mode: str, rolled_back: bool
) -> None:
    install_fake("codex", stream=stream, mode=mode)
    store, artifacts = InMemorySessionStore(), asm.InMemoryArtifactStore()
    manager = SessionManager(store, provider=CodexProvider(), artifact_store=artifacts)
    done = await manager.run_once("tidy up", options={"workspace": {"path": str(repo)}})
    assert done.status is (RunStatus.FAILED if rolled_back else RunStatus.COMPLETED)
    events = (await store.read_events(done.session_id)).events
    (diffed,) = [e.data for e in events if isinstance(e.data, WorkspaceDiffComputed)]
    assert diffed.files_changed == 3 and diffed.patch_ref is not None
    patch = (await artifacts.get(diffed.patch_ref)).decode()
    assert "+edited by the agent" in patch and "+the agent was here" in patch and "-old" in patch
    assert any(isinstance(e.data, WorkspaceRolledBack) for e in events) is rolled_back
    if rolled_back:
        assert (repo / "notes.txt").read_text() == "first line\n"
        assert (repo / "obsolete.cfg").exists() and not (repo / "agent_notes.md").exists()
    else:
        assert (repo / "agent_notes.md").exists() and not (repo / "obsolete.cfg").exists()
