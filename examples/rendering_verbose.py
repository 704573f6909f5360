"""The verbose renderer: one labelled line per event, each value cut to a width.

For debugging a provider or a policy: every field of every event, one line each, in the
order they were stored. ``asm run --renderer verbose`` prints the same on the terminal.
"""

from __future__ import annotations

import io

import trio
from asm_rich import VerboseRenderer

import asm
from asm.events import ToolCallCompleted, ToolCallStarted
from asm.providers.scripted import ScriptedProvider, Step


async def main() -> None:
    script: list[Step] = [
        ToolCallStarted("call_1", "Read", {"file_path": "src/a_module_with_a_long_name.py"}),
        ToolCallCompleted("call_1", "Read", "import trio\n" * 10),
        "Done.",
    ]
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=ScriptedProvider(script))
    log = io.StringIO()
    # width=40: each value is cut to 40 characters; seq=True starts each line with the event's seq.
    async with VerboseRenderer(width=40, seq=True).view(log) as show:
        run = await manager.run_once("read it", on_event=show)
    print(log.getvalue(), end="")

    lines = log.getvalue().splitlines()
    stored = await manager.store.read_events(run.session_id)
    assert len(lines) == len(stored.events)  # one line per event
    assert lines[0] == "    1 [session_created] agent_id=scripted provider=scripted"
    started = next(line for line in lines if "[tool_call_started]" in line)
    assert started.endswith('[tool_call_started] name=Read id=call_1 input={"file_path":"src/a_module_with_a_long_…')
    completed = next(line for line in lines if "[tool_call_completed]" in line)
    assert completed.endswith('output="import trio\\nimport trio\\nimport trio\\…')  # 40 characters of JSON


if __name__ == "__main__":
    trio.run(main)
