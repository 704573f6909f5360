"""``asm run`` as a person sees it: a real pseudo-terminal (pexpect), the screen read back by
a terminal emulator (pyte), captured while a tool call runs and after the run.

``ASM_RICH_CAPTURES=FILE`` appends each capture to FILE (docs/rendering.md shows them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ASM = Path(sys.executable).with_name("asm")
Terminal = Any  # conftest.Terminal: the fixture `terminal` starts one

FOOTER = r"claude-sonnet-4-5 · 2,700 in / 205 out · \$0\.0108 · \d+\.\ds$"


def capture(name: str, terminal: Terminal) -> None:
    target = os.environ.get("ASM_RICH_CAPTURES")
    if target:
        with Path(target).open("a", encoding="utf-8") as f:
            f.write(f"--- {name}\n{terminal.text()}\n")


def body(term: Terminal) -> list[str]:
    """The rows of the view: from the first of the run (``asm run`` may print the session
    and run ids on stderr first, on the same terminal)."""
    lines: list[str] = term.lines()
    first = next(i for i, line in enumerate(lines) if line.startswith(("✻", "The user", "I'll")))
    return lines[first:]


def tool_running(tmp_path: Path) -> Callable[[Terminal], bool]:
    """The provider waits at its gate, and the screen shows the tool's line with the footer
    under it (a frame can reach the screen in pieces)."""
    return lambda t: (
        (tmp_path / "tool-running").exists()
        and re.search(r"Reading src/app\.py\n.* · 0 in / 0 out · \d+\.\ds$", t.text(), re.M) is not None
    )


def test_asm_run_on_a_terminal_is_the_studio_view(terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    term = terminal("run", "--provider", "gated", "fix the tests")
    # While the tool runs: its line with a spinner, the footer below it.
    term.wait_for(tool_running(tmp_path), "the tool running")
    capture("while the tool runs", term)
    while_running = body(term)
    assert while_running[:2] == [
        "✻ thought for 12 words (--thinking shows them)",
        "I'll read the app, then run the tests.",
    ]
    assert re.fullmatch(r"[◐◓◑◒] Reading src/app\.py", while_running[2]), while_running
    assert re.fullmatch(r"gated · 0 in / 0 out · \d+\.\ds", while_running[3]), while_running
    assert len(while_running) == 4

    (tmp_path / "gate").touch()
    assert term.finish() == 0
    capture("after the run", term)
    after = body(term)
    assert after[:5] == [
        "✻ thought for 12 words (--thinking shows them)",
        "I'll read the app, then run the tests.",
        "✓ Read src/app.py (72 lines)",
        "✗ Bash: exit 2",
        "The tests fail to import app.main; see above.",
    ]
    assert re.fullmatch(FOOTER, after[5]), after
    assert len(after) == 6
    assert not any(mark in after[-1] for mark in "◐◓◑◒")


def test_an_approval_is_asked_in_the_view(terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    (tmp_path / "gate").touch()
    term = terminal("run", "--provider", "gated", "fix the tests", env={"RICH_TEST_APPROVAL": "1"})
    term.wait_text(r"allow tool Bash \{\"command\": \"rm -rf build\"\}\? \[y/N\]$")
    asking = body(term)
    capture("an approval", term)
    # The live lines (spinner, footer) were cleared for the question; what had happened is above it.
    assert asking[-3:] == [
        "✗ Bash: exit 2",
        "? Bash needs approval: Running rm -rf build",
        'allow tool Bash {"command": "rm -rf build"}? [y/N]',
    ], asking
    term.child.send("y\r")
    assert term.finish() == 0
    after = body(term)
    assert after[-5:-1] == [
        'allow tool Bash {"command": "rm -rf build"}? [y/N] y',
        "✓ Bash approved",
        "✓ Ran rm -rf build (exit 0)",
        "The tests fail to import app.main; see above.",
    ], after
    assert re.fullmatch(FOOTER, after[-1]), after


def test_thinking_shown_and_colours(terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    (tmp_path / "asm.toml").write_text('[renderers.studio]\ntool_output = "preview"\n')
    (tmp_path / "gate").touch()
    term = terminal("run", "--provider", "gated", "--thinking", "fix the tests")
    assert term.finish() == 0
    capture("--thinking, tool_output = preview", term)
    lines = body(term)
    assert lines[:7] == [
        "The user wants the tests fixed. I should read the app first.",
        "I'll read the app, then run the tests.",
        "✓ Read src/app.py (72 lines)",
        "  │ line 1",
        "  │ line 2",
        "  │ line 3",
        "  │ … 69 more lines",
    ]
    # Thinking is dim, the failed tool red: as pyte saw the characters.
    thinking_row = term.screen.buffer[term.lines().index(lines[0])]
    assert thinking_row[0].data == "T" and thinking_row[0].italics
    failed_row = next(row for row in range(24) if term.screen.display[row].startswith("✗ Bash"))
    assert term.screen.buffer[failed_row][0].fg == "red"


def test_no_color_keeps_the_view_and_drops_the_colours(terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    term = terminal("run", "--provider", "gated", "fix the tests", env={"NO_COLOR": "1"})
    term.wait_for(tool_running(tmp_path), "the tool running")
    (tmp_path / "gate").touch()
    assert term.finish() == 0
    assert "✗ Bash: exit 2" in term.lines()
    raw = "".join(term.raw)
    assert "\x1b[31m" not in raw and "\x1b[1;31m" not in raw and "\x1b[38;" not in raw
    assert "\x1b[J" in raw  # still redrawn live


def test_verbose_on_a_terminal(terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    (tmp_path / "gate").touch()
    term = terminal("run", "--provider", "gated", "--renderer", "verbose", "fix the tests")
    assert term.finish() == 0
    lines = term.lines()
    assert '[tool_call_started] name=Read id=call_1 input={"file_path":"src/app.py"}' in lines
    assert "[tool_call_failed] name=Bash id=call_2 error_message=exit 2" in [
        line.replace('"exit 2"', "exit 2") for line in lines
    ]


def test_not_a_terminal_keeps_the_plain_text(asm_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "gate").touch()
    done = subprocess.run(
        [str(ASM), "run", "--provider", "gated", "fix"],
        env=asm_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (
        0,
        "I'll read the app, then run the tests. \nThe tests fail to import app.main; see above.\n",
    )


def test_a_closed_stdout_mid_run_exits_141_without_a_traceback(asm_env: dict[str, str], tmp_path: Path) -> None:
    """The reader is gone before the first frame: the run goes on to its end, and the exit status
    says the output was lost (141, 128 + SIGPIPE), with no traceback."""
    (tmp_path / "gate").touch()
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(ASM), "run", "--provider", "gated", "--renderer", "studio", "fix"],
            env=asm_env,
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr and "error" not in done.stderr, done.stderr


def test_an_unknown_renderer_lists_the_installed_ones(asm_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ASM), "run", "--renderer", "fancy", "hi"], env=asm_env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "asm: error [plugin_not_found]: no renderer named 'fancy'; installed: compact, studio, verbose. "
        "Install the plugin that provides it\n"
    )
