"""The Codex CLI as an asm provider: one run of ``codex exec --json``, its stream
normalized into asm events, then a native resume of the same codex thread.

Runs offline: a fake ``codex`` (examples/fakes) replays a stream recorded from
the real CLI. With the real one installed (``npm install -g @openai/codex``),
drop the ``path`` option and nothing else changes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

import asm
from asm.events import ErrorOccurred, MessageReceived, TokenUsageUpdated, ToolCallCompleted, ToolCallStarted

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))

import fake_cli


def show(event: asm.Event) -> None:
    data = event.data
    if isinstance(data, ToolCallStarted):
        print(f"  tool call  {data.tool_name}: {data.tool_input}")
    elif isinstance(data, ToolCallCompleted):
        print(f"  tool done  {data.tool_output}")
    elif isinstance(data, MessageReceived):
        print(f"  message    {data.content!r}")
    elif isinstance(data, TokenUsageUpdated):
        print(f"  usage      {data.usage}")
    elif isinstance(data, ErrorOccurred):
        print(f"  warning    {data.error_message[:70]}...")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "argv.json"
        codex = fake_cli.install(Path(tmp) / "bin", "codex", stream="codex_exec.jsonl", record=record)
        # The same table as [providers.codex] in asm.toml.
        codex_config = {"path": str(codex), "skip_git_repo_check": True, "permission_mode": "workspace-write"}
        async with asm.open_runtime(provider="codex", providers={"codex": codex_config}) as rt:
            print("run 1:")
            run = await rt.run_once("run echo hi", on_event=show)
            run.raise_for_status()
            thread = run.result.metadata["thread_id"] if run.result else None
            print(f"output: {run.output!r}; codex thread {thread}")
            assert run.output == "Hello from the fake server."
            assert run.usage.input_tokens == 200 and run.usage.cache_read_tokens == 40

            # Continue the same codex thread: `codex exec resume <thread_id>`.
            print("run 2 (resume):")
            again = await rt.run_once("and again", options={"resume": thread})
            again.raise_for_status()
            print(f"codex was started as: {' '.join(fake_cli.recorded_argv(record)[1:])}")
            assert fake_cli.recorded_argv(record)[-3:] == ["resume", thread, "-"]


if __name__ == "__main__":
    trio.run(main)
