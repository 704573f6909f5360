"""One run, three outputs at once: the studio view for a person, a verbose log file for
debugging, and every event as a JSON line for a machine.

The two views (``view()``) sit behind bounded buffers: their callbacks never wait, so
watching never slows the run, and text deltas that pile up are joined into one line of
the view. The JSONL file goes through asm's plain :class:`~asm.rendering.RenderingPipeline`
and gets every event exactly as it was stored.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import trio
from asm_rich import StudioRenderer, VerboseRenderer

import asm
from asm.events import Event, ToolCallCompleted, ToolCallStarted
from asm.providers.scripted import ScriptedProvider, Step
from asm.rendering import CompactRenderer, JsonlSink, RenderingPipeline


async def main() -> None:
    script: list[Step] = [
        "Looking for TODOs. ",
        ToolCallStarted("call_1", "Grep", {"pattern": "TODO", "path": "src"}),
        ToolCallCompleted("call_1", "Grep", "src/a.py:3: TODO\nsrc/b.py:9: TODO"),
        "Found two.",
    ]
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=ScriptedProvider(script))
    screen, log = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as folder:
        jsonl = Path(folder) / "events.jsonl"
        async with (
            StudioRenderer().view(screen) as studio,
            VerboseRenderer(width=30).view(log) as verbose,
            RenderingPipeline(CompactRenderer(), [JsonlSink(jsonl)]) as machine,
        ):

            async def everywhere(event: Event) -> None:
                studio(event)  # returns at once
                verbose(event)  # returns at once
                await machine(event)

            run = await manager.run_once("find the TODOs", on_event=everywhere)
        records = [json.loads(line) for line in jsonl.read_text().splitlines()]

    print("--- the terminal\n" + screen.getvalue(), end="")
    print("--- the log\n" + log.getvalue(), end="")
    print(f"--- events.jsonl: {len(records)} events")

    stored = await manager.store.read_events(run.session_id)
    assert [r["seq"] for r in records] == [e.seq for e in stored.events]  # every event, as stored
    assert screen.getvalue().splitlines()[:3] == [
        "Looking for TODOs. ",
        "✓ Searched TODO in src (2 matches)",
        "Found two.",
    ]
    assert '[tool_call_started] name=Grep id=call_1 input={"pattern":"TODO","path":"src…' in log.getvalue()


if __name__ == "__main__":
    trio.run(main)
