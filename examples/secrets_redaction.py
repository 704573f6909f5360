"""Secrets redaction: keys and passwords never reach the store, the sinks or the logs.

Run: python examples/secrets_redaction.py (offline). A runtime redacts by default.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

import asm
from asm.serde import event_to_json

SECRET = "sk-ant-api03-" + "x" * 40


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "events.jsonl"
        config = asm.load_config(
            {"store": "memory", "sinks.jsonl.path": str(jsonl), "redact_patterns.ticket": r"TICKET-\d{6}"}
        )
        async with asm.open_runtime(config) as runtime:
            run = await runtime.run_once(f"my key is {SECRET}, see TICKET-123456 and postgres://app:hunter2@db/x")
            stored = (await runtime.store.read_events(run.session_id)).events
            saved = await runtime.store.get_run(run.id)
        print("stored prompt:", saved.input.prompt)
        print("answer:", run.output)
        everything = jsonl.read_text() + "".join(event_to_json(e) for e in stored) + repr(saved)
        assert SECRET not in everything and "hunter2" not in everything and "TICKET-123456" not in everything
        print("no secret in the store or the JSONL file")


if __name__ == "__main__":
    trio.run(main)
