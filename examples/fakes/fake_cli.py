"""Fake agent CLIs (``codex``, ``amp``, ``claude``) for offline examples and tests.

A fake is a small executable that replays a stream recorded from the real CLI
(``streams/*.jsonl``: ``codex exec --json``, ``claude -p --output-format
stream-json --verbose``; the amp stream is built from amp's published types)
and, on request, misbehaves the ways real CLIs do::

    from fake_cli import install
    exe = install(tmp_dir, "codex", stream="codex_exec.jsonl")            # a replaying `codex`
    exe = install(tmp_dir, "codex", stream="codex_exec.jsonl", mode="stall")

``mode`` is a comma-separated list (the environment variable
``FAKE_CLI_MODE`` adds to it at run time):

``stall``           print the first two lines, then hang (until killed)
``garbage``         print a line that is not JSON after the first line
``binary``          print a line of binary noise after the first line
``long_line``       print a JSON line of ``FAKE_CLI_LONG_LINE`` bytes (default 1 MiB) first
``crash_stderr``    print the first line, write 10 MB to stderr, exit 3
``exit=N``          replay everything, then exit with status N
``ignore_sigterm``  ignore SIGTERM and fork a child that ignores it too; then hang
``slow=S``          sleep S seconds between lines
``edit``            edit its working directory first, as an agent would: append a line to
                    each ``*.txt``, write ``agent_notes.md``, delete ``obsolete*``
``forget``          know no conversation to resume, not even its own

Like the real CLIs, a fake resumes only a conversation it issued - the session or thread id
of its stream (``claude --resume ID``, ``codex exec ... resume ID``, ``amp threads continue
ID``); any other id gets the real CLI's error on stderr and exit status 1.

``record`` (a path) receives the fake's argv, cwd, environment and stdin as
JSON; ``pidfile`` gets the pid of every process the fake starts, one a line.
Only the standard library is used; the launcher runs under the Python that
called :func:`install`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["STREAMS", "install", "main", "recorded_argv", "stray_processes", "unreaped_children"]

#: The recorded streams.
STREAMS = Path(__file__).resolve().parent / "streams"

_HANG_SECONDS = 3600


def install(
    directory: str | os.PathLike[str],
    name: str,
    *,
    stream: str | os.PathLike[str],
    mode: str = "",
    record: str | os.PathLike[str] | None = None,
    pidfile: str | os.PathLike[str] | None = None,
) -> Path:
    """Write an executable ``directory/name`` replaying ``stream`` (a path, or
    a file name in :data:`STREAMS`) with ``mode``; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stream_path = Path(stream) if os.sep in str(stream) else STREAMS / str(stream)
    config = {
        "stream": str(stream_path),
        "mode": mode,
        "record": str(record) if record is not None else None,
        "pidfile": str(pidfile) if pidfile is not None else None,
    }
    exe = directory / name
    exe.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import fake_cli\n"
        f"fake_cli.main({config!r})\n"
    )
    exe.chmod(0o755)
    return exe


def _note_pid(config: dict[str, Any], pid: int | None = None) -> None:
    if config.get("pidfile"):
        with open(config["pidfile"], "a") as handle:
            handle.write(f"{pid or os.getpid()}\n")


def _hang() -> None:
    sys.stdout.flush()
    time.sleep(_HANG_SECONDS)


def _edit(directory: Path) -> None:
    for path in sorted(directory.glob("*.txt")):
        path.write_text(path.read_text() + "edited by the agent\n")
    (directory / "agent_notes.md").write_text("# notes\nthe agent was here\n")
    for path in directory.glob("obsolete*"):
        path.unlink()


def main(config: dict[str, Any]) -> None:
    """Behave as the fake described by ``config`` (see :func:`install`)."""
    modes = {m.strip() for m in f"{config.get('mode', '')},{os.environ.get('FAKE_CLI_MODE', '')}".split(",")}
    modes.discard("")
    options = dict(m.split("=", 1) for m in modes if "=" in m)
    _note_pid(config)
    if config.get("record"):
        stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
        Path(config["record"]).write_text(
            json.dumps({"argv": sys.argv, "cwd": str(Path.cwd()), "env": dict(os.environ), "stdin": stdin})
        )
    if "ignore_sigterm" in modes:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = os.fork()
        if child == 0:  # the child: also deaf to SIGTERM, outlives its parent unless killed
            time.sleep(_HANG_SECONDS)
            os._exit(0)
        _note_pid(config, child)  # noted before any output: once output is seen, both pids are known
    if "edit" in modes:
        _edit(Path.cwd())
    out = sys.stdout.buffer
    lines = Path(config["stream"]).read_bytes().splitlines(keepends=True)
    resumed = _resumed(Path(sys.argv[0]).name, sys.argv[1:])
    if resumed is not None and ("forget" in modes or resumed != _issued(lines)):
        sys.stderr.write(_UNKNOWN_RESUME.get(Path(sys.argv[0]).name, "unknown session {id}").format(id=resumed) + "\n")
        sys.exit(1)
    if "long_line" in modes:
        size = int(os.environ.get("FAKE_CLI_LONG_LINE", 1024 * 1024))
        out.write(b'{"type":"noise","data":"' + b"x" * size + b'"}\n')
    slow = float(options.get("slow", 0))
    for index, line in enumerate(lines):
        if "stall" in modes and index == 2:
            _hang()
        if "crash_stderr" in modes and index == 1:
            out.flush()
            chunk = b"Traceback: something broke deep inside the fake CLI\n" * 1024
            for _ in range(10 * 1024 * 1024 // len(chunk) + 1):
                sys.stderr.buffer.write(chunk)
            sys.stderr.flush()
            sys.exit(3)
        out.write(line)
        if index == 0 and "garbage" in modes:
            out.write(b"this line is not JSON {oops\n")
        if index == 0 and "binary" in modes:
            out.write(bytes(range(256)) * 4 + b"\n")
        if slow:
            out.flush()
            time.sleep(slow)
    if "stall" in modes or "ignore_sigterm" in modes:
        _hang()
    out.flush()
    sys.exit(int(options.get("exit", 0)))


#: What each real CLI says when asked to resume a conversation it does not have.
_UNKNOWN_RESUME = {
    "claude": "No conversation found with session ID: {id}",
    "codex": "Error: thread/resume: thread/resume failed: no rollout found for thread id {id} (code -32600)",
    "amp": "Error: Thread {id} not found",
}


def _resumed(program: str, args: list[str]) -> str | None:
    """The conversation id ``args`` ask ``program`` to resume, if any."""
    for index, arg in enumerate(args[:-1]):
        if (
            (program == "claude" and arg == "--resume")
            or (program == "codex" and arg == "resume")
            or (program == "amp" and arg == "continue" and index > 0 and args[index - 1] == "threads")
        ):
            return args[index + 1]
    return None


def _issued(lines: list[bytes]) -> str | None:
    """The session or thread id the recorded stream announces (the one the fake can resume)."""
    for line in lines[:5]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and (record.get("session_id") or record.get("thread_id")):
            return str(record.get("session_id") or record.get("thread_id"))
    return None


def stray_processes(marker: str) -> list[tuple[int, str]]:
    """Live processes (pid, command line) whose ``PATH`` contains ``marker``:
    put a unique directory on ``PATH`` before starting children, and any
    process left afterwards - child, grandchild - is found here (Linux)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state in (b"Z", b"X"):
            continue
        for variable in environ.split(b"\0"):
            if variable.startswith(b"PATH=") and needle in variable:
                found.append((int(entry.name), cmdline))
    return found


def unreaped_children() -> list[int]:
    """Children of this process, alive or zombie (none should remain after a test session)."""
    me = str(os.getpid()).encode()
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            children.append(int(entry.name))
    return children


def recorded_argv(record: str | os.PathLike[str]) -> list[str]:
    """The argv a fake installed with ``record=`` was last started with."""
    argv: list[str] = json.loads(Path(record).read_text())["argv"]
    return argv
