"""``asm`` under a real pseudo-terminal, its screen read back by a terminal emulator.

The provider of these runs is the fixture plugin written by :func:`gate_plugin`: a
scripted run that stops in the middle of a tool call until the test creates a file (the
"gate"), so the screen can be captured while the tool runs - no sleeping, no race.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pyte
import pytest

ASM = Path(sys.executable).with_name("asm")

GATE_PLUGIN = '''
"""A provider that plays a script with a tool call, and waits for a file in the middle of it."""
import os
from pathlib import Path

import trio

from asm import hookimpl
from asm.events import (
    CostUpdated, MessageReceived, MessageStreamed, ThinkingStreamed, TokenUsageUpdated,
    ToolCallCompleted, ToolCallFailed, ToolCallStarted,
)
from asm.model import Capabilities, Cost, RunResult, TokenUsage

APP = "\\n".join(f"line {n}" for n in range(1, 73))


class Gated:
    name = "gated"

    def capabilities(self):
        return Capabilities(streaming=True, tools=True)

    async def execute(self, run, emit):
        gate = Path(os.environ["RICH_TEST_GATE"])
        await emit(ThinkingStreamed("The user wants the tests fixed. I should read the app first."))
        for word in "I'll read the app, then run the tests.".split(" "):
            await emit(MessageStreamed(word + " "))
        await emit(MessageStreamed("\\n"))
        await emit(ToolCallStarted("call_1", "Read", {"file_path": "src/app.py"}))
        (gate.parent / "tool-running").touch()
        while not gate.exists():  # the test captures the screen, then opens the gate
            await trio.sleep(0.01)
        await emit(ToolCallCompleted("call_1", "Read", APP))
        await emit(TokenUsageUpdated(TokenUsage(input_tokens=1200, output_tokens=85), model="claude-sonnet-4-5"))
        await emit(CostUpdated(Cost(total_usd="0.0049"), model="claude-sonnet-4-5"))
        await emit(ToolCallStarted("call_2", "Bash", {"command": "pytest -q"}))
        await emit(ToolCallFailed("call_2", "Bash", "exit 2"))
        await emit(TokenUsageUpdated(TokenUsage(input_tokens=1500, output_tokens=120), model="claude-sonnet-4-5"))
        await emit(CostUpdated(Cost(total_usd="0.0108"), model="claude-sonnet-4-5"))
        if os.environ.get("RICH_TEST_APPROVAL"):
            if await emit.request_approval("call_3", "Bash", {"command": "rm -rf build"}):
                await emit(ToolCallStarted("call_3", "Bash", {"command": "rm -rf build"}))
                await emit(ToolCallCompleted("call_3", "Bash", {"exit_code": 0, "stdout": ""}))
        text = "The tests fail to import app.main; see above."
        await emit(MessageStreamed(text))
        await emit(MessageReceived(text))
        return RunResult(output=text, usage=TokenUsage(2700, 205), stop_reason="end_turn", model="claude-sonnet-4-5")


@hookimpl
def asm_register_providers(register):
    register("gated", lambda config: Gated())
'''


@pytest.fixture
def gate_plugin(tmp_path: Path) -> Path:
    """A directory for PYTHONPATH holding the ``gated`` provider as an installed plugin
    (a module and its dist-info with an ``asm`` entry point)."""
    site = tmp_path / "site"
    info = site / "asm_gate_fixture-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "asm_gate_fixture.py").write_text(GATE_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: asm-gate-fixture\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[asm]\ngated = asm_gate_fixture\n")
    return site


@pytest.fixture
def asm_env(tmp_path: Path, gate_plugin: Path) -> dict[str, str]:
    """The environment of ``asm`` under test: its own home, the gate plugin, no ASM_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASM_", "NO_COLOR", "FORCE_COLOR"))}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        XDG_DATA_HOME=str(tmp_path / "home" / ".local" / "share"),
        PYTHONPATH=str(gate_plugin),
        RICH_TEST_GATE=str(tmp_path / "gate"),
        TERM="xterm-256color",
        COLUMNS="80",
        LINES="24",
    )
    env.pop("COLORTERM", None)
    return env


class Terminal:
    """``asm ARGS`` on a pseudo-terminal of ``columns`` x ``lines``, shown on a pyte screen."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, columns: int = 80, lines: int = 24) -> None:
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.Stream(self.screen)
        self.raw: list[str] = []
        self.child = pexpect.spawn(
            str(ASM), args, env=env, cwd=str(cwd), dimensions=(lines, columns), encoding="utf-8", timeout=60
        )

    def lines(self) -> list[str]:
        rows = [row.rstrip() for row in self.screen.display]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_for(self, found: Callable[[Terminal], bool], what: str, timeout: float = 60) -> None:
        """Read the terminal until ``found`` holds (or the process ends, or ``timeout`` s: a failure)."""
        deadline = time.monotonic() + timeout
        while not found(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}; the screen:\n{self.text()}")
            try:
                data = self.child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                if not found(self):
                    raise AssertionError(f"asm ended before {what}; the screen:\n{self.text()}") from None
                return
            self.raw.append(data)
            self.stream.feed(data)

    def wait_text(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        self.wait_for(lambda t: re.search(pattern, t.text(), re.M) is not None, repr(pattern), timeout)
        match = re.search(pattern, self.text(), re.M)
        assert match is not None
        return match

    def finish(self) -> int:
        """Read to the end; the exit status."""
        self.wait_for(lambda t: not t.child.isalive() and _drained(t), "the end")
        self.child.expect(pexpect.EOF)
        self.child.close()
        status = self.child.exitstatus
        assert status is not None, self.child.signalstatus
        return int(status)


def _drained(terminal: Terminal) -> bool:
    try:
        data = terminal.child.read_nonblocking(65536, timeout=0.2)
    except (pexpect.TIMEOUT, pexpect.EOF):
        return True
    terminal.raw.append(data)
    terminal.stream.feed(data)
    return False


@pytest.fixture
def terminal(asm_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(*args: str, env: dict[str, Any] | None = None, columns: int = 80, lines: int = 24) -> Terminal:
        term = Terminal(list(args), {**asm_env, **(env or {})}, tmp_path, columns, lines)
        started.append(term)
        return term

    yield start
    for term in started:
        if term.child.isalive():
            term.child.terminate(force=True)
        term.child.close()
