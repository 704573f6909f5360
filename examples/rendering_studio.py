"""The studio view of a run: streamed text, tool calls as spinner lines that become
summaries, thinking collapsed, errors in red, a footer with model, tokens, cost and time.

Runs offline on a scripted provider. On a terminal, ``view()`` redraws the bottom of the
screen live (the spinner turns while a tool runs); here the view writes to a text buffer,
which is no terminal, so it writes finished lines only - what a log file would get.
``asm run`` does the same with stdout: live on a terminal, finished lines into a pipe.
"""

from __future__ import annotations

import io

import trio
from asm_rich import StudioRenderer

import asm
from asm.events import (
    CostUpdated,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.model import Cost, TokenUsage
from asm.providers.scripted import ScriptedProvider, Step

APP = "\n".join(f"line {n}" for n in range(1, 73))

SCRIPT: list[Step] = [
    ThinkingStreamed("The tests fail; the app module is the place to start."),
    "I'll read the app, ",
    "then run the tests.\n",
    ToolCallStarted("call_1", "Read", {"file_path": "src/app.py"}),
    ToolCallCompleted("call_1", "Read", APP),
    ToolCallStarted("call_2", "Bash", {"command": "pytest -q"}),
    ToolCallFailed("call_2", "Bash", "exit 2"),
    TokenUsageUpdated(TokenUsage(input_tokens=2700, output_tokens=205), model="claude-sonnet-4-5"),
    CostUpdated(Cost(total_usd="0.0108"), model="claude-sonnet-4-5"),
    "The tests fail to import app.main.",
]


async def main() -> None:
    manager = asm.SessionManager(
        asm.InMemorySessionStore(), provider=ScriptedProvider(SCRIPT, model="claude-sonnet-4-5")
    )
    screen = io.StringIO()
    # tool_output="preview" adds the first lines of each tool's output under its summary.
    async with StudioRenderer(tool_output="preview").view(screen) as show:
        run = await manager.run_once("fix the failing tests", on_event=show)
    print(screen.getvalue(), end="")

    assert run.status is asm.RunStatus.COMPLETED
    lines = screen.getvalue().splitlines()
    assert lines[:9] == [
        "✻ thought for 11 words (--thinking shows them)",
        "I'll read the app, then run the tests.",
        "✓ Read src/app.py (72 lines)",
        "  │ line 1",
        "  │ line 2",
        "  │ line 3",
        "  │ … 69 more lines",
        "✗ Bash: exit 2",
        "The tests fail to import app.main.",
    ]
    assert lines[9].startswith("claude-sonnet-4-5 · 2,700 in / 205 out · $0.0108 · ")
    assert "\x1b" not in screen.getvalue()  # not a terminal: no colours, no cursor movement
    # The view is only what is shown: every event is stored as the provider sent it.
    stored = await manager.store.read_events(run.session_id)
    assert sum(e.type is asm.EventType.MESSAGE_STREAMED for e in stored.events) == 3


if __name__ == "__main__":
    trio.run(main)
