"""The ways an agent CLI misbehaves, and what a run of its provider must show
for each: a test class for the tests of a CLI provider (amp, codex,
claude-code), run against the fakes of :mod:`fake_cli`. It needs the fixtures
of :mod:`fake_cli_fixtures`::

    class TestCodexMisbehaves(CliMisbehaviourContract):
        cli = "codex"
        stream = "codex_exec.jsonl"
        output = "Hello from the fake server."

        def provider(self, **options: Any) -> Provider:
            return CodexProvider(CodexOptions(**options))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_cli_fixtures import Install

import asm
from asm import InMemorySessionStore, RunStatus, SessionManager
from asm.events import ErrorOccurred, EventType
from asm.ports import Provider

__all__ = ["CliMisbehaviourContract", "running"]


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
