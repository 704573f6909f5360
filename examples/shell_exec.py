"""Commands as runs with the ``shell`` provider: streamed stdout and stderr,
exit codes, an allow-list, and a timeout that stops the whole process group.

Runs anywhere with a POSIX shell; nothing is faked.
"""

from __future__ import annotations

import sys

import trio
from asm_shell import ShellOptions, ShellProvider

import asm
from asm.events import MessageStreamed


def show(event: asm.Event) -> None:
    if isinstance(event.data, MessageStreamed):
        print(f"  [{event.data.stream}] {event.data.delta.rstrip()}")


async def main() -> None:
    # From configuration, as `asm run --provider shell -- uname -a` does.
    async with asm.open_runtime(provider="shell") as rt:
        run = await rt.run_once("uname -s", on_event=show)
        run.raise_for_status()
        assert run.output.strip()

    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=ShellProvider())

    # An argv list: no shell, so nothing is expanded or chained.
    command = [sys.executable, "-c", "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"]
    run = await manager.run_once("python snippet", options={"argv": command}, on_event=show)
    assert run.output == "to stdout\n"

    # A non-zero exit fails the run, with the exit code and stderr.
    run = await manager.run_once("ls /definitely/not/here")
    assert run.error is not None and run.error.provider_error is not None
    print(f"failed: {run.error.message}; stderr: {run.error.provider_error.stderr!r}")

    # An allow-list refuses other programs before anything starts.
    guarded = ShellProvider(ShellOptions(allowed_commands=["echo", "ls"]))
    run = await manager.run_once("rm -rf /tmp/example", provider=guarded)
    assert run.error is not None
    print(f"refused: [{run.error.code}] {run.error.message}")
    assert run.error.code == "tool_permission_denied"

    # A string through a shell only when asked; a run timeout stops the whole group.
    piped = ShellProvider(ShellOptions(shell=True, terminate_grace=1.0))
    run = await manager.run_once("echo one two three | wc -w", provider=piped)
    assert run.output.strip() == "3"
    run = await manager.run_once("sleep 60 & sleep 60; wait", provider=piped, timeout=0.5)
    print(f"slow command: {run.status.value}")
    assert run.status is asm.RunStatus.TIMEOUT


if __name__ == "__main__":
    trio.run(main)
