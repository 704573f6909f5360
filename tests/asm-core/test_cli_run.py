"""``asm run``'s flags and its prompt sources, as the console script (asm-core alone:
the in-memory store; ``--session`` across processes is tested in tests/asm-sqlalchemy)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import asm
from asm.cli import run_cli

pytestmark = pytest.mark.usefixtures("isolated")

ASM = Path(sys.executable).parent / "asm"
IDS = re.compile(r"session (ses_[0-9a-f]+) \u00b7 run (run_[0-9a-f]+)\n")

#: A provider that answers with what it was given: the run's options and messages, as JSON.
SHOW_OPTIONS = """
    import json
    from asm import Capabilities, RunResult, hookimpl
    from asm.events import MessageStreamed

    class Show:
        name = "show"

        def capabilities(self):
            return Capabilities(streaming=True)

        async def execute(self, run, emit):
            text = json.dumps({"options": run.options, "messages": [[m.role, m.content] for m in run.messages]})
            await emit(MessageStreamed(text))
            return RunResult(output=text, stop_reason="end_turn")

    @hookimpl
    def asm_register_providers(register):
        register("show", lambda config: Show())
"""


def asm_run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(ASM), "run", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        check=False,
        timeout=60,
        env=os.environ.copy(),
    )


def in_process(*args: str, stdin: bytes = b"", monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess[bytes]:
    """``asm run ARGS`` through ``run_cli``, with ``stdin`` as the process's standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    out, err = io.StringIO(), io.StringIO()
    status = run_cli(["run", *args], stdout=out, stderr=err)
    return subprocess.CompletedProcess(["asm", "run", *args], status, out.getvalue().encode(), err.getvalue().encode())


def error_line(result: subprocess.CompletedProcess[bytes], code: str) -> str:
    """The one line of stderr, ``asm: error [code]: ...`` (no traceback), after status 2."""
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"asm: error [{code}]: "), stderr
    assert result.stdout == b""
    return lines[0]


@pytest.fixture
def show(install_plugin: Callable[..., Path]) -> None:
    install_plugin("asm-show", "show", SHOW_OPTIONS)


def shown(result: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


# -- ids -------------------------------------------------------------------------------------------


def test_run_prints_the_session_and_run_ids_on_stderr_before_the_answer() -> None:
    result = asm_run("--json", "hello")

    assert result.returncode == 0
    match = IDS.fullmatch(result.stderr.decode())
    assert match is not None, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {e["session_id"] for e in events} == {match[1]}
    assert {e["run_id"] for e in events} - {None} == {match[2]}


# -- the prompt ------------------------------------------------------------------------------------


def test_a_dash_or_no_prompt_reads_stdin_as_it_is() -> None:
    text = "first line\n  second \u00e9\u6f22\n"
    dash = asm_run("-", stdin=text.encode())
    nothing = asm_run(stdin=text.encode())

    assert dash.stdout == nothing.stdout == (text + "\n").encode()


def test_a_ten_megabyte_prompt_on_stdin_runs() -> None:
    prompt = ("\u00e9" * 1_000_000 + "\n").encode() * 5 + b"\x00 binary-safe"  # 10 MB, one word for echo

    result = asm_run(stdin=prompt)

    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout == prompt + b"\n"


def test_invalid_utf8_on_stdin_is_a_validation_error_naming_the_byte() -> None:
    line = error_line(asm_run("-", stdin=b"caf\xe9 au lait"), "validation_error")

    assert "the prompt on stdin is not UTF-8 text (byte 3 is b'\\xe9')" in line


def test_the_prompt_file_is_read(tmp_path: Path, show: None) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("Summarize:\n\n* one\n* two\n", encoding="utf-8")

    answer = shown(asm_run("-p", "show", "--prompt-file", str(prompt)))

    assert answer["messages"] == [["user", "Summarize:\n\n* one\n* two\n"]]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("",), b"", "the prompt is empty (or only whitespace)"),
        ((" \t ",), b"", "the prompt is empty (or only whitespace)"),
        ((), b"", "the prompt is empty (or only whitespace)"),
        (("-",), b"\n\n  \n", "the prompt is empty (or only whitespace)"),
        (("--prompt-file", "missing.txt"), b"", "cannot read --prompt-file missing.txt: No such file or directory"),
        (("--prompt-file", "."), b"", "--prompt-file . is a directory; pass a file"),
        (("--prompt-file", "p.txt", "and", "words"), b"", "give the prompt as arguments or with --prompt-file"),
    ],
)
def test_a_prompt_that_is_missing_or_empty_is_a_validation_error(
    args: tuple[str, ...], stdin: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert message in error_line(in_process(*args, stdin=stdin, monkeypatch=monkeypatch), "validation_error")


def test_no_prompt_at_a_terminal_says_how_to_give_one() -> None:
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [str(ASM), "run"], stdin=follower, capture_output=True, check=False, timeout=60, env=os.environ.copy()
        )
    finally:
        os.close(leader)
        os.close(follower)

    assert "asm run needs a prompt: asm run 'your prompt'" in error_line(result, "validation_error")


# -- run options -----------------------------------------------------------------------------------


def test_model_system_max_turns_and_options_reach_the_provider_typed(show: None) -> None:
    answer = shown(
        asm_run(
            "-p",
            "show",
            "--model",
            "m-1",
            "--system",
            "Be brief.",
            "--max-turns",
            "3",
            "--option",
            "temperature=0.2",
            "-o",
            "stream=false",
            "-o",
            'tools=["a", "b"]',
            "-o",
            "sdk_opts={timeout = 5}",
            "-o",
            "label=plain text, not TOML",
            "-o",
            "empty=",
            "hi",
        )
    )

    assert answer["options"] == {
        "model": "m-1",
        "system_prompt": "Be brief.",
        "max_turns": 3,
        "temperature": 0.2,
        "stream": False,
        "tools": ["a", "b"],
        "sdk_opts": {"timeout": 5},
        "label": "plain text, not TOML",
        "empty": "",
    }
    assert answer["messages"] == [["user", "hi"]]


def test_a_flag_wins_over_the_same_option(show: None) -> None:
    answer = shown(asm_run("-p", "show", "-o", "model=a", "--model", "b", "hi"))

    assert answer["options"] == {"model": "b"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--option", "temperature"), "argument --option/-o: 'temperature' is not KEY=VALUE"),
        (("--option", "=1"), "argument --option/-o: '=1' is not KEY=VALUE"),
        (("--option", "a b=1"), "option name 'a b' is not a name"),
        (("--option", "tools=[1,"), "the value of tools does not parse"),
        (("--option", 'name="unclosed'), "the value of name does not parse"),
        (("--option", "t={a = }"), "the value of t does not parse"),
        (("--max-turns", "0"), "argument --max-turns: 0 is less than 1; pass 1 or more"),
        (("--max-turns", "many"), "argument --max-turns: 'many' is not a whole number"),
        (("--model", " "), "argument --model: --model needs a value that is not empty"),
        (("--timeout", "-1"), "argument --timeout: -1 is not a positive number of seconds"),
        (("--timeout", "soon"), "argument --timeout: 'soon' is not a number of seconds"),
    ],
)
def test_a_flag_that_does_not_parse_is_a_usage_error(
    args: tuple[str, ...], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = error_line(in_process(*args, "hi", monkeypatch=monkeypatch), "validation_error")

    assert message in line
    assert line.endswith("(see 'asm run --help')")


def test_an_unknown_session_is_session_not_found() -> None:
    result = asm_run("--session", "ses_nope", "hi")

    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "asm: error [session_not_found]: session 'ses_nope' does not exist; check the id"
    ]


# -- --version -------------------------------------------------------------------------------------


def test_version_is_the_distributions() -> None:
    from importlib import metadata

    result = subprocess.run([str(ASM), "--version"], capture_output=True, text=True, check=False, timeout=60)

    assert (result.returncode, result.stdout, result.stderr) == (0, f"asm {metadata.version('asm-core')}\n", "")
    assert asm.__version__ == metadata.version("asm-core")


def test_resume_without_a_session_is_a_validation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    line = error_line(in_process("--resume", "hi", monkeypatch=monkeypatch), "validation_error")

    assert line == "asm: error [validation_error]: --resume continues a session: pass --session SESSION with it"
