"""The subprocess runner (see :mod:`asm.process`)."""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import trio

from asm._trio import single_errors
from asm.errors import AsmError
from asm.model import ProviderError, truncate_text
from asm.owners import group_running, process_group_started, signal_group

#: Variables a CLI child inherits from asm's environment by default: what
#: programs need to find things, speak the locale and reach the network.
#: Credentials are not here; each provider names the few it needs.
DEFAULT_ENV_ALLOWLIST: Final = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "TMPDIR",
    "TZ",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
)

#: Default maximum length of one stdout line (8 MiB): big tool outputs fit,
#: a runaway stream does not take the process's memory.
DEFAULT_MAX_LINE_BYTES: Final = 8 * 1024 * 1024

#: Seconds between SIGTERM and SIGKILL.
DEFAULT_TERMINATE_GRACE: Final = 5.0

_READ_SIZE: Final = 65536
_LOG: Final = logging.getLogger("asm.process")
_STDERR_KEEP_FACTOR: Final = 4  # keep a little more than reported, for the line cut


def build_env(
    *,
    allow: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
    extra_allow: Iterable[str] = (),
    set: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a child: the ``allow``-listed (plus ``extra_allow``)
    variables of ``base`` (default ``os.environ``) that are set, then ``set``
    added on top.

    >>> build_env(allow=("HOME",), set={"X": "1"}, base={"HOME": "/h", "SECRET": "s"})
    {'HOME': '/h', 'X': '1'}
    """
    source = os.environ if base is None else base
    env = {name: source[name] for name in (*allow, *extra_allow) if name in source}
    for name, value in (set or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise AsmError(
                "invalid_config",
                f"environment variable {name!r} must be set to a string, not {value!r}",
                details={"name": str(name)},
            )
        env[name] = value
    return env


def find_executable(
    program: str,
    *,
    provider: str,
    install_hint: str,
    env: Mapping[str, str] | None = None,
) -> str:
    """The absolute path of ``program`` (a name looked up on ``PATH`` - the
    child's, from ``env`` - or a path), or ``AsmError("provider_not_found")``
    saying which executable is missing, how to install it and that ``path``
    can point at it.

    >>> find_executable("sh", provider="shell", install_hint="-")  # doctest: +SKIP
    '/usr/bin/sh'
    """
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    if os.sep in program:
        candidate = Path(program).expanduser()
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.absolute())
        problem = "does not exist" if not candidate.exists() else "is not an executable file"
        message = (
            f"the {provider} executable {program} {problem}; fix 'path' in [providers.{provider}] "
            f"or install it ({install_hint})"
        )
    else:
        found = shutil.which(program, path=search)
        if found is not None:
            return found
        message = (
            f"the {provider} executable {program!r} was not found on PATH; install it ({install_hint}) "
            f"or set 'path' in [providers.{provider}] to where it is"
        )
    raise AsmError(
        "provider_not_found",
        message,
        details={
            "executable": program,
            "provider_error": ProviderError(provider, "executable_not_found", message),
        },
    )


def check_cwd(cwd: str | os.PathLike[str] | None, *, provider: str, code: str = "invalid_config") -> str | None:
    """``cwd`` as a string if it is an existing directory (``None`` stays
    ``None``: the child inherits asm's), else ``AsmError(code)`` naming it."""
    if cwd is None:
        return None
    path = Path(cwd).expanduser()
    if not path.is_dir():
        problem = "does not exist" if not path.exists() else "is not a directory"
        raise AsmError(
            code,
            f"the {provider} working directory {str(path)!r} {problem}; create it or fix 'cwd'",
            details={"cwd": str(path)},
        )
    return str(path)


def parse_json_line(line: bytes) -> Any:
    """The JSON value of one stdout line, or ``None`` if it is not JSON
    (garbage, binary noise, a CLI's stray progress message)."""
    try:
        return json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None


class IncrementalText:
    """Decode a byte stream to text chunk by chunk (UTF-8, invalid bytes
    replaced), never splitting a character across chunks."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        """The text completed by ``data``."""
        return self._decoder.decode(data)

    def flush(self) -> str:
        """Whatever is left at the end of the stream."""
        return self._decoder.decode(b"", final=True)


class _StderrBuffer:
    """The head of a stream, up to ``limit`` bytes; counts what it drops."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))


class CLIProcess:
    """A running CLI child, as :func:`open_cli_process` yields it."""

    def __init__(
        self,
        process: trio.Process,
        *,
        provider: str,
        argv: Sequence[str],
        max_line_bytes: int,
        error_text_max_bytes: int,
        error_text_max_lines: int,
        output_send: trio.MemorySendChannel[tuple[str, bytes]] | None = None,
        output_chunks: trio.MemoryReceiveChannel[tuple[str, bytes]] | None = None,
        terminate_grace: float = DEFAULT_TERMINATE_GRACE,
    ) -> None:
        self.process = process
        self.provider = provider
        self.argv = tuple(argv)
        self.pid = process.pid
        self.max_line_bytes = max_line_bytes
        self.error_text_max_bytes = error_text_max_bytes
        self.error_text_max_lines = error_text_max_lines
        self._stderr = _StderrBuffer(error_text_max_bytes * _STDERR_KEEP_FACTOR)
        self._output_send = output_send
        #: ``("stdout" | "stderr", chunk)`` pairs as they arrive, until both
        #: streams end (``merge_output=True`` only)
        self.output_chunks = output_chunks
        self._stderr_done = trio.Event()
        self._grace = terminate_grace
        self.stdout_bytes = 0
        self._pending = b""
        self._eof = False

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has been reaped (negative: killed by that signal)."""
        return self.process.returncode

    async def receive_chunk(self) -> bytes:
        """The next raw chunk of stdout as it arrives; ``b""`` at EOF."""
        stdout = self.process.stdout
        assert stdout is not None
        if self._eof:
            return b""
        chunk = bytes(await stdout.receive_some(_READ_SIZE))
        if not chunk:
            self._eof = True
        self.stdout_bytes += len(chunk)
        return chunk

    async def receive_lines(self) -> list[bytes]:
        """The next lines of stdout (without the newline; blank lines and a
        trailing ``\\r`` dropped): all the complete lines that arrived together,
        at least one; ``[]`` at EOF. A line longer than ``max_line_bytes``
        raises ``provider_error`` (kind ``line_too_long``) as soon as it is
        that long, never buffering more.

        ::

            while lines := await proc.receive_lines():
                for line in lines: ...
        """
        limit = self.max_line_bytes
        while True:
            chunk = await self.receive_chunk()
            if not chunk:
                rest, self._pending = self._pending, b""
                return [rest.rstrip(b"\r")] if rest.strip() else []
            data = self._pending + chunk if self._pending else chunk
            lines = data.split(b"\n")
            self._pending = lines.pop()
            if len(self._pending) > limit or (lines and max(map(len, lines)) > limit):
                raise self.error(
                    "line_too_long",
                    f"{self.provider} printed a line longer than {limit:,} bytes on stdout; "
                    "raise 'max_line_bytes' if its output is that large",
                )
            if b"\r" in data or b"\n\n" in data or data.startswith(b"\n") or b" \n" in data:
                batch = [line.rstrip(b"\r") for line in lines if line.strip()]
            else:
                batch = lines  # the common case: nothing to strip, no blank line
            if batch:
                return batch

    async def wait(self) -> int:
        """Wait for the child to exit and its stderr to be drained; its exit
        status (negative: killed by that signal). Processes the child left
        behind in its group are stopped first, so they cannot hold stderr open."""
        code = await self.process.wait()
        if group_running(self.pid):
            await _stop(self.process, self._grace)
        with trio.move_on_after(self._grace):
            await self._stderr_done.wait()
        return code

    def stderr_text(self) -> tuple[str, bool]:
        """stderr so far, cut to ``error_text_max_bytes`` / ``error_text_max_lines``,
        and whether anything was cut."""
        text = bytes(self._stderr.data).decode("utf-8", errors="replace")
        cut_text, cut = truncate_text(text, max_bytes=self.error_text_max_bytes, max_lines=self.error_text_max_lines)
        return cut_text, cut or self._stderr.dropped > 0

    def provider_error(self, kind: str, message: str) -> ProviderError:
        """A :class:`~asm.model.ProviderError` with the exit code and cut stderr."""
        stderr, truncated = self.stderr_text()
        return ProviderError(self.provider, kind, message, self.returncode, stderr or None, truncated)

    def error(
        self, kind: str, message: str, *, code: str = "provider_error", retryable: bool | None = None
    ) -> AsmError:
        """An ``AsmError`` (``code``, default ``provider_error``) whose details
        carry :meth:`provider_error` - what a provider raises to fail the run."""
        return AsmError(
            code,
            message,
            retryable=retryable,
            details={"provider_error": self.provider_error(kind, message)},
        )

    async def _pump_stdout(self, send: trio.MemorySendChannel[tuple[str, bytes]]) -> None:
        async with send:
            while chunk := await self.receive_chunk():
                await send.send(("stdout", chunk))

    async def _drain_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        try:
            while True:
                chunk = bytes(await stderr.receive_some(_READ_SIZE))
                if not chunk:
                    return
                self._stderr.add(chunk)
                if self._output_send is not None:
                    await self._output_send.send(("stderr", chunk))
        finally:
            self._stderr_done.set()
            if self._output_send is not None:
                self._output_send.close()


@asynccontextmanager
async def open_cli_process(
    argv: Sequence[str],
    *,
    provider: str,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
    terminate_grace: float = DEFAULT_TERMINATE_GRACE,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    error_text_max_bytes: int = 16_384,
    error_text_max_lines: int = 200,
    merge_output: bool = False,
) -> AsyncIterator[CLIProcess]:
    """Start ``argv`` in its own process group and yield it as a :class:`CLIProcess`.

    ``env`` is the child's whole environment (build it with :func:`build_env`;
    ``None`` means :func:`build_env` defaults). ``stdin`` bytes are written
    to the child, else its stdin is ``/dev/null``. With ``merge_output``,
    stdout and stderr arrive together on ``proc.output_chunks`` (a receive
    channel of ``(stream, chunk)``; stderr is still kept for the error report)
    instead of through :meth:`CLIProcess.receive_chunk`. ``timeout`` seconds (``None``: no
    limit) ends the block with ``AsmError("provider_timeout")``.

    Leaving the block stops the child as the module docstring says, even when
    the block is cancelled; the stop is shielded but bounded by
    ``terminate_grace``.
    """
    if not argv:
        raise AsmError("invalid_input", f"no command to run for {provider}")
    env = build_env() if env is None else dict(env)
    # Started first, so that no moment passes with the child running and nobody to stop it.
    watchdog = await _Watchdog.start(env, terminate_grace)
    try:
        process = await _start(argv, provider=provider, cwd=cwd, env=env, stdin=stdin)
    except BaseException:
        with trio.CancelScope(shield=True):
            await watchdog.aclose()
        raise
    watchdog.guard(process.pid)
    _LOG.debug("%s: started %s (pid %d)", provider, argv[0], process.pid)
    send: trio.MemorySendChannel[tuple[str, bytes]] | None = None
    receive: trio.MemoryReceiveChannel[tuple[str, bytes]] | None = None
    if merge_output:
        send, receive = trio.open_memory_channel[tuple[str, bytes]](16)
    proc = CLIProcess(
        process,
        provider=provider,
        argv=argv,
        max_line_bytes=max_line_bytes,
        error_text_max_bytes=error_text_max_bytes,
        error_text_max_lines=error_text_max_lines,
        output_send=send.clone() if send is not None else None,
        output_chunks=receive,
        terminate_grace=terminate_grace,
    )
    timed_out = False
    try:
        await process_group_started(process.pid)  # recorded in the run's owner, for recovery
        with single_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proc._drain_stderr, name=f"{provider} stderr")
                nursery.start_soon(_stop_leftovers, process, terminate_grace, name=f"{provider} leftovers")
                if send is not None:
                    nursery.start_soon(proc._pump_stdout, send, name=f"{provider} stdout")
                if stdin is not None:
                    nursery.start_soon(_feed_stdin, process, stdin, name=f"{provider} stdin")
                with trio.move_on_after(float("inf") if timeout is None else timeout) as deadline:
                    yield proc
                timed_out = deadline.cancelled_caught
                # The block is done: stop draining (what matters has been read).
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            try:
                await _stop(process, terminate_grace)
            finally:
                await watchdog.aclose()  # the group is gone: the watchdog stands down
            _LOG.debug("%s: pid %d ended with status %s", provider, process.pid, process.returncode)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    await stream.aclose()
        if receive is not None:
            receive.close()
    if timed_out:
        _LOG.info("%s: pid %d stopped after its timeout of %gs", provider, process.pid, timeout)
        raise proc.error(
            "timeout",
            f"{provider} did not finish within its timeout of {timeout:g}s; raise 'timeout' for longer tasks",
            code="provider_timeout",
        )


async def _start(
    argv: Sequence[str], *, provider: str, cwd: str | None, env: Mapping[str, str], stdin: bytes | None
) -> trio.Process:
    """Start ``argv`` as the leader of a new process group; a missing executable
    or working directory, or one that cannot be run, is an ``AsmError`` saying which."""
    try:
        return await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            process_group=0,
        )
    except FileNotFoundError as exc:
        missing = cwd if cwd is not None and not os.path.isdir(cwd) else argv[0]  # noqa: PTH112, ASYNC240
        what = "working directory" if missing == cwd else "executable"
        message = f"cannot start {provider}: the {what} {missing} does not exist"
        raise AsmError(
            "invalid_config" if what == "working directory" else "provider_not_found",
            message,
            details={"provider_error": ProviderError(provider, f"{what.replace(' ', '_')}_not_found", message)},
        ) from exc
    except PermissionError as exc:
        message = f"cannot start {provider}: permission denied running {argv[0]} ({exc.strerror})"
        raise AsmError(
            "provider_not_found",
            message,
            details={"provider_error": ProviderError(provider, "not_executable", message)},
        ) from exc


#: The watchdog's script: ``/bin/sh`` reading a pipe whose write end only asm
#: holds. The first line names the group to guard, ``done`` stands it down.
#: End of file before ``done`` means asm died without stopping the group (no
#: ``finally`` runs on SIGKILL): SIGTERM to the group, then SIGKILL once the
#: grace (``$1``, in tenths of a second) is over. It ignores the terminal's
#: signals, and lives in a process group of its own, so that Ctrl-C or a hangup
#: does not take it down before asm has done its part.
_WATCHDOG_SCRIPT: Final = """
trap '' HUP INT
read -r group || exit 0
read -r word
[ "$word" = done ] && exit 0
kill -s TERM -- "-$group" 2>/dev/null || exit 0
n=0
while [ "$n" -lt "$1" ] && kill -s 0 -- "-$group" 2>/dev/null; do sleep 0.1; n=$((n + 1)); done
kill -s KILL -- "-$group" 2>/dev/null
exit 0
"""


class _Watchdog:
    """Stops a CLI's process group if asm dies without doing it.

    A parent-death signal (Linux ``PR_SET_PDEATHSIG``) would reach only the
    direct child, not the agent's own children in its group, and it fires
    when the *thread* that forked exits (trio starts processes from worker
    threads that come and go); so a separate process watches instead: a
    ``/bin/sh`` (about a megabyte, a millisecond to start) per CLI child,
    which notices asm's death as the end of a pipe - the kernel closes asm's
    end however asm dies. Started before the child, so the child never runs
    unwatched. Where ``/bin/sh`` cannot be started, the child runs without.
    """

    def __init__(self, process: trio.Process | None, fd: int | None) -> None:
        self._process = process
        self._fd = fd

    @classmethod
    async def start(cls, env: Mapping[str, str], grace: float) -> _Watchdog:
        """A watchdog waiting for :meth:`guard` (``env`` is the child's: it
        finds ``sleep`` on its PATH, and leak checks that look for the child's
        environment find the watchdog too)."""
        read_end, write_end = os.pipe()  # not inherited by any other child (O_CLOEXEC)
        try:
            process = await trio.lowlevel.open_process(
                ["/bin/sh", "-c", _WATCHDOG_SCRIPT, "asm-watchdog", str(max(1, math.ceil(grace * 10)))],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**env, "PATH": env.get("PATH") or os.defpath},
                process_group=0,
            )
        except OSError:  # pragma: no cover - no /bin/sh (a minimal container): run unwatched
            os.close(write_end)
            return cls(None, None)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end)

    def guard(self, pgid: int) -> None:
        """Watch over the process group ``pgid`` from now on."""
        self._send(f"{pgid}\n")

    async def aclose(self) -> None:
        """Stand down (asm stopped the group itself, or never started it) and reap the watchdog."""
        if self._fd is None or self._process is None:
            return
        self._send("done\n")
        os.close(self._fd)
        self._fd = None
        await self._process.wait()

    def _send(self, line: str) -> None:
        if self._fd is None:
            return
        # A few bytes into an empty pipe never block; if the watchdog was killed, there is nobody to tell.
        with contextlib.suppress(OSError):
            os.write(self._fd, line.encode())


async def _stop_leftovers(process: trio.Process, grace: float) -> None:
    """Once the CLI exits, stop what it left in its group: a background child
    holding stdout open would otherwise keep the reader waiting for EOF."""
    await process.wait()
    if group_running(process.pid):
        await _stop(process, grace)


async def _feed_stdin(process: trio.Process, data: bytes) -> None:
    stdin = process.stdin
    assert stdin is not None
    try:
        async with stdin:
            await stdin.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the child exited (or closed stdin) without reading everything


async def _wait_group(pgid: int, until: float) -> bool:
    """Poll until the group is gone or the trio clock reaches ``until``; whether it is gone."""
    delay = 0.005
    while group_running(pgid):
        if trio.current_time() >= until:
            return False
        await trio.sleep(min(delay, max(0.0, until - trio.current_time())))
        delay = min(delay * 2, 0.1)
    return True


async def _stop(process: trio.Process, grace: float) -> None:
    """Stop the child's whole process group: SIGTERM, SIGKILL after ``grace``;
    reap the child. Called shielded (or when the child has exited)."""
    pgid = process.pid  # the child leads its own group (process_group=0)
    deadline = trio.current_time() + grace
    if process.returncode is None and process.poll() is None:
        signal_group(pgid, signal.SIGTERM)
        with trio.move_on_at(deadline):
            await process.wait()
        if process.returncode is None:
            signal_group(pgid, signal.SIGKILL)
            await process.wait()
    elif group_running(pgid):
        # The CLI exited but left processes of its group behind.
        signal_group(pgid, signal.SIGTERM)
    if not await _wait_group(pgid, deadline):
        signal_group(pgid, signal.SIGKILL)
        await _wait_group(pgid, trio.current_time() + grace)
