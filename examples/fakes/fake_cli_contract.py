"""The ways an agent CLI misbehaves, and what a run of its provider must show
for each: test classes for the tests of a CLI provider (amp, codex,
claude-code, shell), run against the fakes of :mod:`fake_cli`:
:class:`CliMisbehaviourContract` (the CLI misbehaves) and
:class:`AsmStoppedContract` (``asm run`` itself is stopped by a signal). They
need the fixtures of :mod:`fake_cli_fixtures`::

    class TestCodexMisbehaves(CliMisbehaviourContract):
        cli = "codex"
        stream = "codex_exec.jsonl"
        output = "Hello from the fake server."

        def provider(self, **options: Any) -> Provider:
            return CodexProvider(CodexOptions(**options))
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from fake_cli import stray_processes
from fake_cli_fixtures import Install

import asm
from asm import InMemorySessionStore, RunStatus, SessionManager
from asm.events import ErrorOccurred, EventType
from asm.ports import Provider

__all__ = ["AsmStoppedContract", "CliMisbehaviourContract", "running"]


def running(pid: int) -> bool:
    """The process exists and is not a zombie (one waiting for init to reap it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")


class CliMisbehaviourContract:
    """Subclass with ``cli`` (the executable the provider runs), ``stream`` (a
    recorded stream in examples/fakes/streams), ``output`` (that stream's
    answer) and :meth:`provider`."""

    cli: str
    stream: str
    output: str

    def provider(self, **options: Any) -> Provider:
        """The provider under test, with these options (``terminate_grace``, ``max_line_bytes``, ``cwd``)."""
        raise NotImplementedError

    async def _run(self, provider: Provider, **manager_options: Any) -> tuple[asm.Run, list[asm.Event]]:
        manager = SessionManager(InMemorySessionStore(), provider=provider, **manager_options)
        done = await manager.run_once("hi")
        return done, list((await manager.store.read_events(done.session_id, run_id=done.id)).events)

    async def test_a_stall_ends_with_the_run_timeout(self, install_fake: Install) -> None:
        install_fake(self.cli, stream=self.stream, mode="stall")
        manager = SessionManager(InMemorySessionStore(), provider=self.provider(terminate_grace=1.0))
        done = await manager.run_once("hi", timeout=0.5)
        assert done.status is RunStatus.TIMEOUT

    @pytest.mark.parametrize("mode", ["garbage", "binary"])
    async def test_garbage_and_binary_lines_are_reported_and_skipped(self, install_fake: Install, mode: str) -> None:
        install_fake(self.cli, stream=self.stream, mode=mode)
        done, events = await self._run(self.provider())
        assert done.status is RunStatus.COMPLETED and done.output == self.output
        reports = [
            e.data for e in events if isinstance(e.data, ErrorOccurred) and e.data.error_code == "provider_output"
        ]
        assert reports, "the bad line is reported"
        assert all("not a JSON object" in r.error_message for r in reports)
        assert len(reports) <= 5  # binary noise may hold newlines: a few bad lines, reported at most 5 times

    async def test_a_line_over_the_limit_fails_the_run(self, install_fake: Install) -> None:
        install_fake(self.cli, stream=self.stream, mode="long_line")
        done, _ = await self._run(self.provider(max_line_bytes=65536))
        assert done.error is not None and done.error.code == "provider_error"
        assert done.error.provider_error is not None and done.error.provider_error.kind == "line_too_long"
        assert "max_line_bytes" in done.error.message

    async def test_a_crash_with_10_mb_of_stderr_is_cut_to_the_limits(self, install_fake: Install) -> None:
        install_fake(self.cli, stream=self.stream, mode="crash_stderr")
        done, events = await self._run(self.provider(), error_text_max_bytes=4096, error_text_max_lines=20)
        assert done.status is RunStatus.FAILED and done.error is not None
        error = done.error.provider_error
        assert error is not None and error.exit_code == 3 and error.kind == "exit" and error.truncated
        assert error.stderr is not None and len(error.stderr.encode()) <= 4096 and error.stderr.count("\n") < 20
        assert error.stderr.startswith("Traceback: something broke")
        failed = [e for e in events if e.type is EventType.RUN_FAILED]
        assert failed[0].data.provider_error == error  # type: ignore[attr-defined]

    async def test_a_non_zero_exit_after_a_clean_stream_fails_the_run(self, install_fake: Install) -> None:
        install_fake(self.cli, stream=self.stream, mode="exit=2")
        done, _ = await self._run(self.provider())
        assert done.error is not None and done.error.code == "provider_error"
        assert done.error.provider_error is not None and done.error.provider_error.exit_code == 2
        assert "exited with status 2" in done.error.message

    async def test_ignoring_sigterm_gets_the_group_killed(self, install_fake: Install, tmp_path: Path) -> None:
        pidfile = tmp_path / "pids"
        install_fake(self.cli, stream=self.stream, mode="ignore_sigterm", pidfile=pidfile)
        manager = SessionManager(InMemorySessionStore(), provider=self.provider(terminate_grace=0.5))

        async def cancel_once_it_speaks(event: asm.Event) -> None:
            if event.type not in (EventType.RUN_STARTED, EventType.MESSAGE_SENT) and event.run_id:
                await manager.cancel_run(event.run_id)  # its pids are noted before its first output

        done = await manager.run_once("hi", on_event=cancel_once_it_speaks)
        assert done.status is RunStatus.CANCELLED
        pids = [int(p) for p in pidfile.read_text().split()]
        assert len(pids) == 2  # the fake and the child it forked
        assert [pid for pid in pids if running(pid)] == []

    async def test_a_nonexistent_cwd_is_invalid_config(self, install_fake: Install, tmp_path: Path) -> None:
        install_fake(self.cli, stream=self.stream)
        done, _ = await self._run(self.provider(cwd=str(tmp_path / "nowhere")))
        assert done.error is not None and done.error.code == "invalid_config"
        assert "nowhere" in done.error.message


class AsmStoppedContract:
    """What ``asm run --provider <provider>`` leaves behind when asm itself is
    stopped by a signal while the provider's CLI runs: SIGTERM and SIGHUP
    cancel the run like Ctrl-C (the CLI's process group is stopped, the run and
    its session are stored ``cancelled``, asm exits 128 + the signal); after a
    SIGKILL of asm, no process of the CLI's group survives either.

    Subclass with ``provider_name`` (as on the command line), ``cli`` (the fake
    executable) and ``stream``. The fake runs in mode ``ignore_sigterm``: it and
    the child it forks ignore SIGTERM, so only a group-wide SIGKILL ends them.
    ``store_config`` picks the store: anything but the in-memory store is read
    back after asm exits (e.g. a SQLite file, in the integration tests). Needs
    the fixtures of :mod:`fake_cli_fixtures`; runs the ``asm`` console script
    installed beside the test's Python.
    """

    provider_name: str
    cli: str
    stream: str
    #: the provider's config table, besides the grace before SIGKILL
    provider_config: str = ""

    def words(self, fake: Path) -> list[str]:
        """The prompt words after ``asm run --provider NAME --json --``."""
        del fake
        return ["hi"]

    def store_config(self, tmp_path: Path) -> str:
        """The config lines choosing the store (default: the in-memory store)."""
        del tmp_path
        return 'store = "memory"\n'

    @pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
    def test_a_signal_to_asm_cancels_the_run_and_stops_the_cli(
        self, install_fake: Install, tmp_path: Path, stop: signal.Signals
    ) -> None:
        with _AsmRun(self, install_fake, tmp_path) as asm_run:
            pids = asm_run.wait_until_the_cli_speaks()
            asm_run.process.send_signal(stop)
            status, events, stderr = asm_run.finish()
            # asm stopped the whole group before exiting
            assert [pid for pid in pids if running(pid)] == [], f"running after asm exited: {pids}"
            left = stray_processes(str(asm_run.fake.parent))
            assert left == [], f"running after asm exited: {left}"
        run_started = next(event for event in events if event["type"] == "run_started")
        ids = f"session {run_started['session_id']} \u00b7 run {run_started['run_id']}\n"  # asm run's first line
        expected = (128 + stop, f"{ids}asm: stopped by {stop.name}; the run was cancelled\n")
        assert (status, stderr) == expected, f"{(status, stderr)} != {expected}"
        types = [event["type"] for event in events]
        assert types[-2:] == ["run_cancelled", "session_cancelled"], types
        if "memory" not in self.store_config(tmp_path):
            run, session = asm_run.stored(events[-1]["run_id"] or events[-2]["run_id"], events[-1]["session_id"])
            assert (run.status, session.status) == (RunStatus.CANCELLED, asm.SessionStatus.CANCELLED)

    def test_a_sigkill_of_asm_leaves_no_process_of_the_cli(self, install_fake: Install, tmp_path: Path) -> None:
        with _AsmRun(self, install_fake, tmp_path) as asm_run:
            pids = asm_run.wait_until_the_cli_speaks()
            asm_run.process.kill()
            asm_run.process.wait(timeout=_WAIT)
            # Nobody is left to stop the group but what asm set up before it died.
            left = str(asm_run.fake.parent)
            gone = _wait_for(lambda: stray_processes(left) == [], timeout=_WAIT)
            assert gone, f"still running {_WAIT:g}s after asm was killed: {stray_processes(left)}"
            assert [pid for pid in pids if running(pid)] == []


#: Seconds any one wait of :class:`AsmStoppedContract` may take: generous, for a loaded machine.
_WAIT = 60.0

#: The `asm` console script of the Python running the tests.
_ASM = Path(sys.executable).parent / "asm"


def _wait_for(condition: Callable[[], bool], *, timeout: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class _AsmRun:
    """``asm run --json`` on a fake CLI in ``ignore_sigterm`` mode, in a subprocess
    with a config and environment of its own; its stdout read by a thread."""

    def __init__(self, contract: AsmStoppedContract, install_fake: Install, tmp_path: Path) -> None:
        self.pidfile = tmp_path / "pids"
        self.fake = install_fake(contract.cli, stream=contract.stream, mode="ignore_sigterm", pidfile=self.pidfile)
        self.config = tmp_path / "asm.toml"
        self.config.write_text(
            f"{contract.store_config(tmp_path)}"
            f"[providers.{contract.provider_name}]\nterminate_grace = 1.0\n{contract.provider_config}",
            encoding="utf-8",
        )
        env = {name: value for name, value in os.environ.items() if not name.startswith("ASM_")}
        env |= {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config")}
        argv = [str(_ASM), "run", "--provider", contract.provider_name, "--config", str(self.config), "--json", "--"]
        self.process = subprocess.Popen(
            [*argv, *contract.words(self.fake)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> _AsmRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:  # the test failed half-way: leave nothing behind
            self.process.kill()
            self.process.wait(timeout=_WAIT)
        if self.pidfile.exists():
            for pid in map(int, self.pidfile.read_text().split()):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=_WAIT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def _next_event(self, deadline: float) -> dict[str, Any] | None:
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"asm printed nothing for {_WAIT:g}s; events so far: {self.events}") from None
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    def wait_until_the_cli_speaks(self) -> list[int]:
        """Wait for the first event the provider made of the CLI's output (the
        fake notes its pids before its first output); the pids of the group."""
        deadline = time.monotonic() + _WAIT
        while True:
            event = self._next_event(deadline)
            if event is None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise AssertionError(f"asm ended before the CLI spoke: {self.events}\n{stderr}")
            if event["run_id"] and event["type"] not in ("run_started", "message_sent"):
                break
        pids = [int(pid) for pid in self.pidfile.read_text().split()]
        assert len(pids) == 2, pids  # the fake and the child it forked
        return pids

    def finish(self) -> tuple[int, list[dict[str, Any]], str]:
        """Wait for asm to exit: its status, every event it printed, its stderr."""
        deadline = time.monotonic() + _WAIT
        while self._next_event(deadline) is not None:
            pass
        assert self.process.stderr is not None
        stderr = self.process.stderr.read().decode()
        return self.process.wait(timeout=_WAIT), self.events, stderr

    def stored(self, run_id: str, session_id: str) -> tuple[asm.Run, asm.Session]:
        """The run and session as asm's store holds them now (read through a runtime of our own)."""

        async def read() -> tuple[asm.Run, asm.Session]:
            async with asm.open_runtime(asm.load_config(config_file=self.config)) as runtime:
                return await runtime.store.get_run(run_id), await runtime.store.get_session(session_id)

        return trio.run(read)
