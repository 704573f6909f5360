"""The shell provider, running real commands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from asm_shell import ShellOptions, ShellProvider, create_provider
from fake_cli_contract import AsmStoppedContract

import asm
from asm import AsmError, InMemorySessionStore, RunStatus, SessionManager
from asm.events import EventType, MessageStreamed
from asm.ports import Provider
from asm.testing import ProviderContract


class TestShellContract(ProviderContract):
    prompt = "echo hello from the shell"

    @pytest.fixture
    def provider(self) -> Provider:
        return ShellProvider(ShellOptions(terminate_grace=1.0))

    def slow_input(self) -> object:
        return "sleep 3600"


class TestShellWhenAsmIsStopped(AsmStoppedContract):
    provider_name = "shell"
    cli = "fake-agent"
    stream = "codex_exec.jsonl"

    def words(self, fake: Path) -> list[str]:
        return [str(fake)]


async def run(provider: ShellProvider, prompt: str, **options: object) -> tuple[asm.Run, list[asm.Event]]:
    manager = SessionManager(InMemorySessionStore(), provider=provider)
    done = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(done.session_id, run_id=done.id)).events
    return done, list(events)


def streamed(events: list[asm.Event], stream: str) -> str:
    return "".join(e.data.delta for e in events if isinstance(e.data, MessageStreamed) and e.data.stream == stream)


async def test_stdout_and_stderr_stream_tagged() -> None:
    command = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    done, events = await run(ShellProvider(), "ignored", argv=command)
    assert done.status is RunStatus.COMPLETED
    assert streamed(events, "stdout") == "out\n"
    assert streamed(events, "stderr") == "err\n"
    assert done.output == "out\n"
    assert done.result is not None and done.result.metadata["exit_code"] == 0


async def test_argv_by_default_no_shell() -> None:
    done, _ = await run(ShellProvider(), "echo $HOME 'two words' ; ls")
    assert done.output == "$HOME two words ; ls\n"  # no shell: no expansion, no chaining


async def test_string_through_a_shell_only_when_asked() -> None:
    done, _ = await run(ShellProvider(ShellOptions(shell=True)), "echo one; echo two | tr a-z A-Z")
    assert done.output == "one\nTWO\n"


async def test_non_zero_exit_fails_with_exit_code_and_stderr() -> None:
    provider = ShellProvider()
    command = [sys.executable, "-c", "import sys; sys.stderr.write('no such file\\n'); sys.exit(4)"]
    done, events = await run(provider, "x", argv=command)
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.code == "provider_error"
    error = done.error.provider_error
    assert error is not None
    assert (error.provider, error.kind, error.exit_code) == ("shell", "exit", 4)
    assert error.stderr == "no such file\n"
    assert "exited with status 4" in error.message
    assert events[-1].type is EventType.RUN_FAILED


async def test_killed_by_a_signal() -> None:
    done, _ = await run(ShellProvider(), "x", argv=[sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"])
    assert done.error is not None and done.error.provider_error is not None
    assert done.error.provider_error.kind == "signal"
    assert "SIGKILL" in done.error.message


async def test_allowed_commands() -> None:
    provider = ShellProvider(ShellOptions(allowed_commands=["echo"]))
    done, _ = await run(provider, "echo fine")
    assert done.status is RunStatus.COMPLETED
    done, _ = await run(provider, "rm -rf /tmp/nothing-here")
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.code == "tool_permission_denied"
    assert "'rm' is not in allowed_commands" in done.error.message


def test_allowed_commands_cannot_apply_to_shell_strings() -> None:
    with pytest.raises(AsmError) as caught:
        create_provider({"shell": True, "allowed_commands": ["ls"]})
    assert caught.value.code == "invalid_config"


def test_unknown_config_option_is_named() -> None:
    with pytest.raises(AsmError) as caught:
        create_provider({"shel": True})
    assert caught.value.code == "invalid_config"
    assert "'shel'" in str(caught.value)


async def test_unknown_run_option_is_named() -> None:
    done, _ = await run(ShellProvider(), "echo hi", colour="red")
    assert done.error is not None and done.error.code == "invalid_input"
    assert "'colour'" in done.error.message


async def test_command_not_found() -> None:
    done, _ = await run(ShellProvider(), "no-such-command-xyz --flag")
    assert done.error is not None and done.error.code == "provider_not_found"
    assert "'no-such-command-xyz'" in done.error.message


async def test_cwd(tmp_path: Path) -> None:
    done, _ = await run(ShellProvider(ShellOptions(cwd=str(tmp_path))), "pwd")
    assert done.output == f"{tmp_path}\n"
    done, _ = await run(ShellProvider(ShellOptions(cwd=str(tmp_path / "missing"))), "pwd")
    assert done.error is not None and done.error.code == "invalid_config"
    assert "missing" in done.error.message
    done, _ = await run(ShellProvider(), "pwd", cwd=str(tmp_path / "missing"))
    assert done.error is not None and done.error.code == "invalid_input"


async def test_timeout_option_stops_the_command() -> None:
    done, _ = await run(ShellProvider(ShellOptions(timeout=0.3, terminate_grace=0.5)), "sleep 3600")
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.code == "provider_timeout"
    assert done.error.retryable


async def test_env_allow_list_and_additions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_SHELL_SECRET", "s3cret")
    monkeypatch.setenv("ASM_SHELL_SHARED", "shared")
    provider = ShellProvider(ShellOptions(env={"GREETING": "hi"}, inherit_env=["ASM_SHELL_SHARED"]))
    done, _ = await run(provider, "env")
    assert "GREETING=hi\n" in done.output
    assert "ASM_SHELL_SHARED=shared\n" in done.output
    assert "s3cret" not in done.output


async def test_stdin_and_utf8_split_across_chunks() -> None:
    command = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read()[::-1])"]
    done, _ = await run(ShellProvider(), "x", argv=command, stdin="€ olleh")
    assert done.output == "hello €"


async def test_output_keeps_the_end_of_a_large_stdout() -> None:
    provider = ShellProvider(ShellOptions(max_output_bytes=1000))
    command = [sys.executable, "-c", "print('x' * 100000 + 'END')"]
    done, events = await run(provider, "x", argv=command)
    assert done.output.endswith("END\n") and len(done.output) == 1000
    assert done.result is not None and done.result.metadata["output_truncated"] is True
    assert len(streamed(events, "stdout")) == 100004


async def test_registered_through_its_entry_point() -> None:
    registry = asm.load_plugins()
    assert "shell" in registry.names("providers")
    provider = registry.create("providers", "shell", {"timeout": 5})
    assert isinstance(provider, ShellProvider)


@pytest.mark.parametrize("max_lines", [5, 300])
async def test_stderr_in_the_error_follows_the_configured_limits(max_lines: int) -> None:
    """Raising error_text_max_lines above the default keeps more of the failing command's stderr."""
    script = "import sys; [print(f'line {i}', file=sys.stderr) for i in range(400)]; sys.exit(3)"
    manager = SessionManager(
        InMemorySessionStore(), provider=ShellProvider(), error_text_max_lines=max_lines, error_text_max_bytes=100_000
    )
    done = await manager.run_once(shlex.join([sys.executable, "-c", script]))
    assert done.status is RunStatus.FAILED and done.error is not None
    provider_error = done.error.provider_error
    assert provider_error is not None and provider_error.truncated and provider_error.exit_code == 3
    assert provider_error.stderr is not None and provider_error.stderr.count("\n") == max_lines - 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("ls -la", "a list of strings, not a string"),
        (["ls", 3], "argument 1 is int"),
        ([], "is empty"),
        (["printf", "a\0b"], "NUL character"),
    ],
)
async def test_a_bad_argv_option_is_a_validation_error_that_says_what_to_pass(argv: object, message: str) -> None:
    done, _ = await run(ShellProvider(), "ignored", argv=argv)
    assert done.status is RunStatus.FAILED and done.error is not None
    assert isinstance(done.error.to_error(), asm.errors.ValidationError)
    assert message in done.error.message
    assert "argv" in done.error.message


async def test_the_argv_option_keeps_every_word_as_one_argument() -> None:
    done, _ = await run(ShellProvider(), "ignored", argv=("printf", "%s|", "a b", "", "c"))
    assert done.output == "a b||c|"


def test_the_shell_provider_takes_argv() -> None:
    assert ShellProvider().capabilities().takes_argv


# -- through the `asm` command -------------------------------------------------

ASM = Path(sys.executable).parent / "asm"


def asm_run(tmp_path: Path, *words: str, config: str = "") -> subprocess.CompletedProcess[str]:
    """`asm run --provider shell WORDS` in a project of its own, on the in-memory store."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "asm.toml").write_text(f'store = "memory"\n{config}', encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("ASM_")}
    env |= {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config")}
    return subprocess.run(
        [str(ASM), "run", "--provider", "shell", *words],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("words", "output"),
    [
        (["--", "printf", "%s|", "a b", "c"], "a b|c|"),
        (["--", sys.executable, "-c", 'print("x y")'], "x y\n"),
        (["--", "printf", "[%s]", "it's", "", "$HOME", "*"], "[it's][][$HOME][*]"),
        (["printf", "%s|", "a  b", "c"], "a  b|c|"),  # several words without `--` are argv too
    ],
)
def test_asm_run_passes_the_words_as_the_argv_untouched(tmp_path: Path, words: list[str], output: str) -> None:
    result = asm_run(tmp_path, *words)
    assert result.returncode == 0  # and stderr holds only the ids line
    assert re.fullmatch(r"session ses_[0-9a-f]+ \u00b7 run run_[0-9a-f]+\n", result.stderr), result.stderr
    assert result.stdout == output + "\n"


def test_asm_run_splits_a_single_word_as_a_command_line(tmp_path: Path) -> None:
    result = asm_run(tmp_path, "printf '%s|' 'a b' c")
    assert (result.returncode, result.stdout) == (0, "a b|c|\n")


def test_asm_run_gives_a_single_word_to_the_shell_when_configured(tmp_path: Path) -> None:
    config = "[providers.shell]\nshell = true\n"
    result = asm_run(tmp_path, "--", "printf '%s|' 'a b' c | tr a-z A-Z", config=config)
    assert (result.returncode, result.stdout) == (0, "A B|C|\n")
    words = asm_run(tmp_path, "--", "printf", "%s|", "a b", "|", "tr", config=config)
    assert (words.returncode, words.stdout) == (0, "a b|||tr|\n")  # words are argv, not shell text


def test_asm_run_checks_allowed_commands_on_the_argv(tmp_path: Path) -> None:
    result = asm_run(tmp_path, "--", "rm", "-rf", "x y", config='[providers.shell]\nallowed_commands = ["echo"]\n')
    assert result.returncode == 1
    ids, error = result.stderr.splitlines()
    assert ids.startswith("session ses_") and " \u00b7 run run_" in ids
    assert error.startswith("asm: error [tool_permission_denied]: command 'rm' is not in allowed_commands")


async def test_a_nul_character_in_the_command_is_a_validation_error() -> None:
    done, _ = await run(ShellProvider(), "printf 'a\0b'")
    assert done.error is not None and done.error.code == "invalid_input"
    assert "NUL character" in done.error.message
