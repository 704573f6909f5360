"""The Amp CLI as an asm provider, used directly (no config file): a run of
``amp --execute --stream-json``, a turn limit asm enforces, and a failure.

Runs offline: a fake ``amp`` (examples/fakes) replays a stream in amp's
stream-json format. With the real CLI (``npm install -g @ampcode/cli``), drop
``path``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio
from asm_amp import AmpOptions, AmpProvider

import asm

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))

import fake_cli


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp) / "bin"
        amp = fake_cli.install(bin_dir, "amp", stream="amp_stream.jsonl")
        manager = asm.SessionManager(asm.InMemorySessionStore(), provider=AmpProvider(AmpOptions(path=str(amp))))

        def show(event: asm.Event) -> None:
            if event.type in (asm.EventType.TOOL_CALL_STARTED, asm.EventType.TOOL_CALL_COMPLETED):
                print(f"  {event.type.value}: {event.data}")

        run = await manager.run_once("run echo hi", on_event=show)
        run.raise_for_status()
        print(f"output: {run.output!r}, usage: {run.usage}")
        assert run.output == "It printed hi."
        assert run.result is not None and run.result.metadata["session_id"].startswith("T-")

        # amp has no turn-limit flag: asm counts model turns and stops amp past max_turns.
        limited = AmpProvider(AmpOptions(path=str(amp), max_turns=1))
        run = await manager.run_once("run echo hi", provider=limited)
        print(f"with max_turns=1: {run.status.value}: {run.error.message if run.error else ''}")
        assert run.status is asm.RunStatus.FAILED

        # A failure reported by amp: the run fails with a provider_error the caller can inspect.
        broke = fake_cli.install(bin_dir, "amp-broke", stream="amp_stream_error.jsonl", mode="exit=1")
        run = await manager.run_once("hi", provider=AmpProvider(AmpOptions(path=str(broke))))
        assert run.error is not None and run.error.provider_error is not None
        print(f"failed: [{run.error.code}] {run.error.message} (exit code {run.error.provider_error.exit_code})")
        assert run.error.code == "provider_quota_exceeded"


if __name__ == "__main__":
    trio.run(main)
