"""Who owns a running run, whether that owner is still alive, and stopping
what it left behind.

A run is claimed (``pending -> running``) with the :class:`~asm.model.RunOwner`
of the claiming process: host, boot id, PID and the process's start time. A
PID alone cannot say whether its process is alive: after a reboot or a
container restart another process may have it. Recovery
(:meth:`asm.ports.Maintenance.recover_interrupted_runs`) asks
:func:`owner_state`; for a dead owner it stops the process groups the run's
provider started (:func:`stop_orphans`) before marking the run failed.

What is known where:

- Linux: boot id (``/proc/sys/kernel/random/boot_id``) and start times
  (``/proc/<pid>/stat``): a dead owner and a reused PID are told apart.
- elsewhere: the PID only (a reused PID reads as alive; recover with care).

>>> owner = current_owner()
>>> owner_state(owner)
'alive'
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Literal

import attrs
import trio

from asm.model import ProcessIdentity, RunOwner

__all__ = [
    "OwnerState",
    "current_owner",
    "group_running",
    "owner_state",
    "process_group_started",
    "process_identity",
    "reporting_process_groups",
    "signal_group",
    "stop_orphans",
    "with_process_group",
]

OwnerState = Literal["alive", "dead", "unknown"]

_PROC = Path("/proc")


@functools.cache
def _boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _stat(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, the state,
    first), or ``None`` (no such process, or no ``/proc``)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name is in parentheses and may hold anything, ")" included.
    return stat[stat.rfind(b")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (Linux), else ``None``."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields is not None else None  # field 22 of stat(5)
    except (IndexError, ValueError):
        return None


def process_identity(pid: int) -> ProcessIdentity:
    """``pid`` with its start time, as it is now."""
    return ProcessIdentity(pid, _start_time(pid))


def current_owner() -> RunOwner:
    """This process, as the owner of the runs it claims."""
    return RunOwner(host=socket.gethostname(), process=process_identity(os.getpid()), boot_id=_boot_id())


def _there(send: Callable[[int, int], None], target: int) -> bool:
    """Is ``target`` (a PID for ``os.kill``, a group for ``os.killpg``) there? Signal 0 asks."""
    try:
        send(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, but not ours to signal
        return True
    return True


def _exists(pid: int) -> bool:
    return _there(os.kill, pid)


def _same_process(recorded: ProcessIdentity) -> bool | None:
    """Is ``recorded`` still running? ``None`` when only a PID is known and it exists."""
    if not _exists(recorded.pid):
        return False
    if recorded.started is None:
        return None
    now = _start_time(recorded.pid)
    return None if now is None else now == recorded.started


def owner_state(owner: RunOwner) -> OwnerState:
    """``alive``, ``dead``, or ``unknown`` (another host: nothing here can tell).

    A different boot on this host, a PID no process has, or a PID whose process
    started at another time (reused) is ``dead``.
    """
    if owner.host != socket.gethostname():
        return "unknown"
    if owner.boot_id is not None and _boot_id() is not None and owner.boot_id != _boot_id():
        return "dead"
    return "dead" if _same_process(owner.process) is False else "alive"


def _group_exists(pgid: int) -> bool:
    return _there(os.killpg, pgid)


def group_running(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running and ours to signal
    (zombies waiting for a parent to reap them do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not _PROC.is_dir():  # pragma: no cover - not Linux: trust the signal check
        return True
    with os.scandir(_PROC) as entries:
        for entry in entries:
            fields = _stat(entry.name) if entry.name.isdigit() else None
            if fields is not None and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


def _orphan_groups(owner: RunOwner) -> list[int]:
    """The owner's process groups that still run and are still the ones it started."""
    if owner.boot_id is not None and _boot_id() is not None and owner.boot_id != _boot_id():
        return []  # a reboot ended them all
    groups = []
    for leader in owner.process_groups:
        # While any process is in group N, the kernel does not hand out N as a new PID, so a
        # group that still exists is the one started unless its leader's PID was reused.
        if _same_process(leader) is False and _exists(leader.pid):
            continue  # the leader's PID belongs to another process now
        if _group_exists(leader.pid):
            groups.append(leader.pid)
    return groups


async def stop_orphans(owner: RunOwner, *, grace: float = 2.0) -> list[int]:
    """Stop the process groups a dead ``owner``'s provider left running: SIGTERM,
    then SIGKILL after ``grace`` seconds. Returns the groups that were running.
    Call it only for an owner :func:`owner_state` says is ``dead``."""
    groups = _orphan_groups(owner)
    for pgid in groups:
        signal_group(pgid, signal.SIGTERM)
    with trio.move_on_after(grace):
        # Another process's exit has no event to wait on here: poll it.
        while any(group_running(pgid) for pgid in groups):  # noqa: ASYNC110
            await trio.sleep(0.02)
    for pgid in groups:
        signal_group(pgid, signal.SIGKILL)
    return groups


def signal_group(pgid: int, signum: signal.Signals) -> bool:
    """Send ``signum`` to group ``pgid``; False if no process of it is there to get it
    (gone, or not ours: its id taken by someone else's process)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def with_process_group(owner: RunOwner, pgid: int) -> RunOwner:
    """``owner`` also owning the process group ``pgid`` (its leader as it is now)."""
    return attrs.evolve(owner, process_groups=(*owner.process_groups, process_identity(pgid)))


_group_listener: contextvars.ContextVar[Callable[[int], Awaitable[None]] | None] = contextvars.ContextVar(
    "asm_group_listener", default=None
)


@contextlib.contextmanager
def reporting_process_groups(listener: Callable[[int], Awaitable[None]]) -> Iterator[None]:
    """Within the block (and the tasks started in it), each process group started
    through :func:`process_group_started` is handed to ``listener`` (the manager
    records it in the run's owner)."""
    token = _group_listener.set(listener)
    try:
        yield
    finally:
        _group_listener.reset(token)


async def process_group_started(pgid: int) -> None:
    """Say that a child was started in process group ``pgid`` for the run executing
    here (:func:`asm.process.open_cli_process` does), so that recovery can stop it
    if this process dies. Outside a run, nothing happens."""
    listener = _group_listener.get()
    if listener is not None:
        await listener(pgid)
