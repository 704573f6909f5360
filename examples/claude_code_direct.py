"""Claude Code as an asm provider: stream a run of
``claude -p --output-format stream-json --verbose`` token by token, with its
tool calls, usage and cost, through ``asm.stream_session``.

Runs offline: a fake ``claude`` (examples/fakes) replays a stream recorded
from the real CLI (``--include-partial-messages``). With the real one
installed (``npm install -g @anthropic-ai/claude-code``), drop ``path``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio
from asm_claude.code import ClaudeCodeOptions, ClaudeCodeProvider

import asm
from asm.events import CostUpdated, MessageStreamed, ToolCallCompleted, ToolCallStarted

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))

import fake_cli


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # slow=0.02: the fake prints a line every 20 ms, as the real CLI does while the model writes
        claude = fake_cli.install(
            Path(tmp) / "bin", "claude", stream="claude_cli_stream_partial.jsonl", mode="slow=0.02"
        )
        provider = ClaudeCodeProvider(ClaudeCodeOptions(path=str(claude), permission_mode="acceptEdits", max_turns=5))
        text = []
        async with asm.stream_session(provider=provider, input="run echo hi") as events:
            async for event in events:
                data = event.data
                if isinstance(data, MessageStreamed):
                    text.append(data.delta)
                    print(f"  text  {data.delta!r}")
                elif isinstance(data, ToolCallStarted):
                    print(f"  tool  {data.tool_name} {data.tool_input}")
                elif isinstance(data, ToolCallCompleted):
                    print(f"  done  {data.tool_output!r}")
                elif isinstance(data, CostUpdated):
                    print(f"  cost  ${data.cost.total_usd}")
                elif event.type.value.startswith("run_"):
                    print(f"  {event.type.value}")
        assert "".join(text) == "Hello from the fake server."


if __name__ == "__main__":
    trio.run(main)
