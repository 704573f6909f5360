"""``asm sessions``, ``asm events`` and ``asm db``: their parsers (private).

Only argparse and asm's plugin loader are imported here: ``asm --help`` builds every
command's parser. The handlers live in :mod:`asm_sqlalchemy._commands`, imported when
one runs. Each command opens the store the config names (the embedded SQLite default
when it names none), like ``asm run`` does. A handler is called with the
parsed arguments (and, by hosts that pass them, the plugin registry and the
output stream) and returns the exit status.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TextIO

from asm.plugins import lazy

if TYPE_CHECKING:
    from asm.plugins import PluginRegistry

__all__ = ["add_db", "add_events", "add_sessions"]

#: The largest integer the databases hold (a signed 64-bit column): the top of every count and seq.
INT64_MAX: Final = 2**63 - 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="config file (default: ./asm.toml)")


def _whole_number(what: str) -> Callable[[str], int]:
    """An argparse ``type`` for ``what`` (e.g. ``"a seq"``): a whole number from 0 to
    :data:`INT64_MAX`. Anything else is a usage error (``validation_error``) saying
    what to pass, never the driver's ``OverflowError``."""

    def parse(text: str) -> int:
        fix = f"pass {what} from 0 to {INT64_MAX}"
        shown = text if len(text) <= 24 else f"{text[:21]}..."
        try:
            value = int(text)
        except ValueError:
            if text.strip().lstrip("+-").isdigit():  # longer than int() reads: far out of range anyway
                raise argparse.ArgumentTypeError(f"{shown} is out of range; {fix}") from None
            raise argparse.ArgumentTypeError(f"{shown!r} is not a whole number; {fix}") from None
        if not 0 <= value <= INT64_MAX:
            raise argparse.ArgumentTypeError(f"{shown} is out of range; {fix}")
        return value

    return parse


def add_sessions(subparsers: Any) -> None:
    """``asm sessions list``, ``asm sessions show ID`` and ``asm sessions fork ID --at SEQ``."""
    sessions = subparsers.add_parser("sessions", help="list and show stored sessions")
    commands = sessions.add_subparsers(title="sessions commands", metavar="COMMAND")
    sessions.set_defaults(handler=_help(sessions))

    listing = commands.add_parser("list", help="sessions, newest first")
    listing.add_argument("--agent", help="only this agent's sessions")
    listing.add_argument("--status", help="only sessions in this status (active, completed, ...)")
    listing.add_argument("--provider", help="only sessions on this provider")
    listing.add_argument(
        "--limit", type=_whole_number("a number of sessions"), default=20, help="at most this many (default 20)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    _common(listing)
    listing.set_defaults(handler=lazy("asm_sqlalchemy._commands:_sessions_list"))

    show = commands.add_parser("show", help="one session, its runs and its event count")
    show.add_argument("session_id", metavar="ID", help="the session id (ses_...), as asm run prints it")
    show.add_argument("--json", action="store_true", help="as JSON")
    _common(show)
    show.set_defaults(handler=lazy("asm_sqlalchemy._commands:_sessions_show"))

    fork = commands.add_parser("fork", help="a new session whose history is another's first events")
    fork.add_argument("session_id", metavar="ID", help="the session to fork")
    fork.add_argument("--at", type=_whole_number("a seq"), required=True, help="copy events 1..AT (a seq of ID)")
    _common(fork)
    fork.set_defaults(handler=lazy("asm_sqlalchemy._commands:_sessions_fork"))


def add_events(subparsers: Any) -> None:
    """``asm events SESSION [--after N] [--type T] [--follow]``."""
    events = subparsers.add_parser("events", help="a session's events; --follow waits for new ones")
    events.add_argument("session_id", metavar="SESSION", help="the session id (ses_...), as asm run prints it")
    events.add_argument("--after", type=_whole_number("a seq"), default=0, help="only events after this seq")
    events.add_argument("--type", action="append", dest="types", metavar="TYPE", help="only this type (repeatable)")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events until the session ends")
    events.add_argument("--json", action="store_true", help="every event as a JSON line")
    events.add_argument(
        "--renderer",
        "-r",
        metavar="NAME",
        help="show the events with this renderer (studio, verbose, compact, ...); default: studio when "
        "stdout is a terminal and asm-rich is installed, else one line per event",
    )
    events.add_argument(
        "--thinking", action="store_true", help="show the model's thinking in full (a renderer that collapses it)"
    )
    _common(events)
    events.set_defaults(handler=lazy("asm_sqlalchemy._commands:_events"))


def add_db(subparsers: Any) -> None:
    """``asm db upgrade``, ``current``, ``check``, ``recover``, ``compact`` and ``retention``."""
    db = subparsers.add_parser("db", help="the session database: migrations, recovery, compaction")
    commands = db.add_subparsers(title="db commands", metavar="COMMAND")
    db.set_defaults(handler=_help(db))
    for name, handler, text in (
        (
            "upgrade",
            lazy("asm_sqlalchemy._commands:_db_upgrade"),
            "migrate the database schema to this asm-sqlalchemy's version",
        ),
        (
            "current",
            lazy("asm_sqlalchemy._commands:_db_current"),
            "the database's schema revision and the newest known",
        ),
        (
            "check",
            lazy("asm_sqlalchemy._commands:_db_check"),
            "check the database: integrity, schema, seq gaps and duplicates, runs stuck with a dead owner "
            "(exit 1 on any problem)",
        ),
        (
            "recover",
            lazy("asm_sqlalchemy._commands:_db_recover"),
            "mark runs left running by dead processes as failed (interrupted)",
        ),
    ):
        parser = commands.add_parser(name, help=text)
        parser.add_argument("--url", help="database URL (default: the configured store's)")
        _common(parser)
        if name == "recover":
            parser.add_argument("--all-hosts", action="store_true", help="also runs owned by other machines")
        parser.set_defaults(handler=handler)
    _add_compaction(commands)


# -- plumbing ------------------------------------------------------------------


def _help(parser: argparse.ArgumentParser) -> Any:
    def show(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
        del args, registry
        parser.print_help(out)
        return 2

    return show


def _days(text: str) -> float:
    """An argparse ``type``: a number of days >= 0 (a usage error, ``validation_error``, otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days; pass a number >= 0") from None
    if not 0 <= value < 1e6:  # also NaN
        raise argparse.ArgumentTypeError(f"{text} is not a number of days from 0 to 999999; pass one")
    return value


def _add_compaction(commands: Any) -> None:
    compact = commands.add_parser(
        "compact", help="replace the streamed deltas of answered runs by markers (seqs unchanged)"
    )
    compact.add_argument("session_id", metavar="SID", nargs="?", help="the session to compact")
    compact.add_argument("--all", action="store_true", help="every session that holds streamed deltas")
    compact.add_argument(
        "--older-than", type=_days, metavar="DAYS", help="only runs that ended more than DAYS days ago"
    )
    compact.add_argument("--url", help="database URL (default: the configured store's)")
    _common(compact)
    compact.set_defaults(handler=lazy("asm_sqlalchemy._commands:_db_compact"))
    retention = commands.add_parser("retention", help="show the [retention] policy; --apply compacts as it says")
    retention.add_argument("--apply", action="store_true", help="compact every session as after_days says")
    retention.add_argument("--url", help="database URL (default: the configured store's)")
    _common(retention)
    retention.set_defaults(handler=lazy("asm_sqlalchemy._commands:_db_retention"))
