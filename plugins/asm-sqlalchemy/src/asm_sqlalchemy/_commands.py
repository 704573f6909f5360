"""The handlers of ``asm sessions``, ``asm events`` and ``asm db`` (their parsers: :mod:`asm_sqlalchemy._cli`).

Imported when one of these commands runs, not when ``asm`` builds its command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TextIO

import trio

from asm import AsmError, Event, Session, load_config, load_plugins
from asm._cli_view import draws_tables, is_terminal, open_event_view, output_lost, pick_renderer, print_table
from asm.model import utcnow
from asm.plugins import PluginRegistry
from asm.ports import SessionStore
from asm.retention import RetentionPolicy
from asm.runtime import check_plugin_tables, configured, default_store
from asm.serde import event_to_json, unstructure
from asm.stores import Compaction, parse_event_types

if TYPE_CHECKING:  # imported by the handlers that use them: `asm --help` imports no SQLAlchemy
    from asm_sqlalchemy._store import SqlAlchemyStore


__all__: list[str] = []

# -- plumbing ------------------------------------------------------------------


def _build_store(args: argparse.Namespace, registry: PluginRegistry | None) -> Any:
    loaded = load_config(config_file=args.config)
    registry = registry or load_plugins()
    check_plugin_tables(loaded, registry)  # a misspelt [stores.sqlitee] is not quietly ignored
    name = loaded.config.store or default_store(registry)
    return registry.create("stores", name, loaded.config.plugin_config("stores", name)), name


def _sql_store(args: argparse.Namespace, registry: PluginRegistry | None) -> SqlAlchemyStore:
    from asm_sqlalchemy._store import SqlAlchemyStore

    if getattr(args, "url", None):
        return SqlAlchemyStore(args.url)
    store, name = _build_store(args, registry)
    if not isinstance(store, SqlAlchemyStore):
        raise AsmError(
            "invalid_config",
            f"the configured store {name!r} is not an asm-sqlalchemy store; pass --url or configure "
            "store = 'sqlite' or 'sqlalchemy'",
        )
    return store


def _when(value: datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _summary(event: Event) -> str:
    data = unstructure(event.data)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")) if data else ""
    return text if len(text) <= 160 else text[:157] + "..."


#: The columns of ``asm sessions list`` (plain text).
SESSION_COLUMNS: Final = ("SESSION", "STATUS", "AGENT", "PROVIDER", "CREATED")


def _session_rows(sessions: list[Session]) -> list[str]:
    """A header row and one row per session, each column as wide as its widest cell."""
    rows = [SESSION_COLUMNS] + [
        (s.id, s.status.value, s.agent_id, s.provider or "-", _when(s.created_at)) for s in sessions
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SESSION_COLUMNS))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


# -- handlers ------------------------------------------------------------------


def _sessions_list(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store, _ = _build_store(args, registry)
    from asm_sqlalchemy._store import SqlAlchemyStore

    async def go() -> list[Session]:
        async with _opened(store):
            if isinstance(store, SqlAlchemyStore):
                return await store.search_sessions(
                    agent_id=args.agent, status=args.status, provider=args.provider, limit=args.limit
                )
            found = await store.list_sessions(agent_id=args.agent, status=args.status, limit=args.limit)
            return [s for s in found if args.provider is None or s.provider == args.provider]

    found = trio.run(go)
    if not args.json and _sessions_table(args, registry, found, out):
        return 0
    if not args.json:
        out.writelines(row + "\n" for row in _session_rows(found))
        return 0
    for session in found:
        out.write(json.dumps(unstructure(session), ensure_ascii=False) + "\n")
    return 0


def _sessions_show(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store, _ = _build_store(args, registry)

    async def go() -> tuple[Session, list[Any], int]:
        async with _opened(store):
            session = await store.get_session(args.session_id)
            return session, await store.list_runs(session.id), await store.latest_seq(session.id)

    session, runs, count = trio.run(go)
    if not args.json and _session_table(registry, session, runs, count, out):
        return 0
    if args.json:
        payload = {"session": unstructure(session), "runs": [unstructure(r) for r in runs], "events": count}
        out.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return 0
    out.write(f"session   {session.id}\n")
    out.write(f"status    {session.status.value}\n")
    out.write(f"agent     {session.agent_id}\n")
    out.write(f"provider  {session.provider or '-'}\n")
    out.write(f"created   {_when(session.created_at)}\n")
    out.write(f"updated   {_when(session.updated_at)}\n")
    out.write(f"events    {count}\n")
    if session.forked_from is not None:
        out.write(f"forked    from {session.forked_from.session_id} at seq {session.forked_from.seq}\n")
    if session.error is not None:
        out.write(f"error     [{session.error.code}] {session.error.message}\n")
    out.write(f"runs      {len(runs)}\n")
    for run in runs:
        usage = f"{run.usage.input_tokens} in / {run.usage.output_tokens} out"
        out.write(f"  {run.id}  {run.status.value:<9}  {run.provider or '-'}  {usage}\n")
        if run.error is not None:
            out.write(f"    error [{run.error.code}] {run.error.message}\n")
    return 0


def _sessions_fork(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store, _ = _build_store(args, registry)

    async def go() -> Session:
        async with _opened(store):
            fork: Session = await store.fork_session(args.session_id, at_seq=args.at)
            return fork

    fork = trio.run(go)
    out.write(f"{fork.id}  forked from {args.session_id} at seq {args.at}\n")
    return 0


def _events(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    types = parse_event_types(args.types) if args.types else None
    registry = registry or load_plugins()
    store, _ = _build_store(args, registry)
    view_name = pick_renderer(registry, args.renderer, json=args.json, out=out)
    view: Callable[[Event], Any] | None = None

    def show(event: Event) -> None:
        if view is not None:
            view(event)
            return
        if args.json:
            out.write(event_to_json(event) + "\n")
        else:
            out.write(f"{event.seq:>6}  {_when(event.at)}  {event.type.value:<24}  {_summary(event)}\n")

    async def go() -> None:
        nonlocal view
        viewing = configured(registry, load_config(config_file=args.config).config)
        async with _opened(store), open_event_view(viewing, view_name, out, thinking=args.thinking) as view:
            session = await store.get_session(args.session_id)
            cursor = args.after
            while True:
                page = await store.read_events(session.id, after=cursor, types=types, limit=1000)
                for event in page.events:
                    show(event)
                out.flush()
                cursor = page.cursor
                if page.has_more:
                    continue
                if not args.follow:
                    return
                session = await store.get_session(session.id)
                if session.status.is_terminal:
                    final = await store.read_events(session.id, after=cursor, types=types)
                    for event in final.events:
                        show(event)
                    out.flush()
                    return
                await store.wait_for_events(session.id, after=await store.latest_seq(session.id), timeout=5.0)

    trio.run(go)
    if output_lost(view):
        raise BrokenPipeError(32, "the reader of asm's output left")
    return 0


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _cost(runs: list[Any]) -> str:
    costs = [run.cost.total_usd for run in runs if run.cost is not None]
    return f"${sum(costs):.4f}" if costs else "-"


def _sessions_table(
    args: argparse.Namespace, registry: PluginRegistry | None, sessions: list[Session], out: TextIO
) -> bool:
    """``asm sessions list`` as a table, when the terminal renderer draws tables (asm-rich)."""
    if not sessions or not is_terminal(out):
        return False
    registry = registry or load_plugins()
    if not draws_tables(registry, out):
        return False
    store, _ = _build_store(args, registry)  # (the listing's store is closed)

    async def runs_of() -> list[list[Any]]:
        async with _opened(store):
            return [await store.list_runs(session.id) for session in sessions]

    rows = []
    for session, runs in zip(sessions, trio.run(runs_of), strict=True):
        tokens = sum(run.usage.input_tokens + run.usage.output_tokens for run in runs)
        rows.append(
            [
                session.id,
                session.status.value,
                session.agent_id,
                session.provider or "-",
                str(len(runs)),
                f"{tokens:,}",
                _cost(runs),
                _duration(session.created_at, session.updated_at),
                _when(session.created_at),
            ]
        )
    columns = ["id", "status", "agent", "provider", "runs", "tokens", "cost", "duration", "created"]
    return print_table(registry, out, title=None, columns=columns, rows=rows)


def _session_table(registry: PluginRegistry | None, session: Session, runs: list[Any], count: int, out: TextIO) -> bool:
    """``asm sessions show`` as two tables (the session, its runs), when the terminal renderer draws tables."""
    if not is_terminal(out):
        return False
    registry = registry or load_plugins()
    if not draws_tables(registry, out):
        return False
    facts = [
        ["status", session.status.value],
        ["agent", session.agent_id],
        ["provider", session.provider or "-"],
        ["created", _when(session.created_at)],
        ["updated", _when(session.updated_at)],
        ["events", str(count)],
        ["cost", _cost(runs)],
    ]
    if session.forked_from is not None:
        facts.append(["forked", f"from {session.forked_from.session_id} at seq {session.forked_from.seq}"])
    if session.error is not None:
        facts.append(["error", f"[{session.error.code}] {session.error.message}"])
    print_table(registry, out, title=f"session {session.id}", columns=["", ""], rows=facts)
    rows = [
        [
            run.id,
            run.status.value,
            run.provider or "-",
            run.model or "-",
            f"{run.usage.input_tokens:,}",
            f"{run.usage.output_tokens:,}",
            _cost([run]),
            _duration(run.started_at, run.ended_at),
            f"[{run.error.code}] {run.error.message}" if run.error is not None else "",
        ]
        for run in runs
    ]
    columns = ["run", "status", "provider", "model", "in", "out", "cost", "duration", "error"]
    return print_table(
        registry, out, title=f"{len(runs)} run{'s' if len(runs) != 1 else ''}", columns=columns, rows=rows
    )


def _db_upgrade(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from asm_sqlalchemy import _admin
    from asm_sqlalchemy._engine import mask_url

    url = _sql_store(args, registry).url
    before, after = trio.run(_admin.upgrade, url)
    if before == after:
        out.write(f"{mask_url(url)}: already at revision {after}\n")
    else:
        out.write(f"{mask_url(url)}: upgraded from {before or 'an empty database'} to {after}\n")
    return 0


def _db_current(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from asm_sqlalchemy import _admin
    from asm_sqlalchemy._engine import mask_url

    url = _sql_store(args, registry).url
    revision, head = trio.run(_admin.current, url)
    state = "up to date" if revision == head else ("no asm schema" if revision is None else "run `asm db upgrade`")
    out.write(f"{mask_url(url)}: revision {revision or '(none)'}, head {head} ({state})\n")
    return 0 if revision == head else 1


def _db_check(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    from asm_sqlalchemy import _check

    out = out or sys.stdout
    url = _sql_store(args, registry).url
    problems = trio.run(_check.check_database, url)
    out.writelines(line + "\n" for line in _check.describe(problems, url))
    return 1 if problems else 0


def _db_recover(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    store = _sql_store(args, registry)

    async def go() -> list[str]:
        async with store:
            return await store.recover_interrupted_runs(all_hosts=args.all_hosts)

    recovered = trio.run(go)
    for run_id in recovered:
        out.write(f"{run_id}: marked failed (interrupted)\n")
    out.write(f"recovered {len(recovered)} interrupted run{'s' if len(recovered) != 1 else ''}\n")
    return 0


# -- compaction and retention (docs/continuity.md) ---------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _compacted_line(done: Compaction) -> str:
    return (
        f"{done.session_id}: {_plural(done.deltas, 'delta')} of {_plural(done.runs, 'run')} "
        f"compacted into {_plural(done.markers, 'marker')} ({done.removed:,} fewer events)"
    )


async def _compact_all(store: SqlAlchemyStore, older_than: datetime | None, out: TextIO) -> Compaction:
    total = Compaction("all")
    for session_id in await store.sessions_to_compact(older_than=older_than):
        try:
            done = await store.compact_events(session_id, older_than=older_than)
        except AsmError as exc:
            if exc.code != "session_not_found":  # events of a session record that is gone: nothing to go by
                raise
            continue
        if done.deltas:
            out.write(_compacted_line(done) + "\n")
        total = Compaction("all", total.deltas + done.deltas, total.markers + done.markers, total.runs + done.runs)
    return total


def _db_compact(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if (args.session_id is None) == (not args.all):
        raise AsmError(
            "validation_error",
            "asm db compact takes a session id or --all (not both, not neither); e.g. asm db compact ses_1",
        )
    store = _sql_store(args, registry)
    older_than = None if args.older_than is None else utcnow() - timedelta(days=args.older_than)

    async def go() -> None:
        async with store:
            if args.session_id is not None:
                out.write(_compacted_line(await store.compact_events(args.session_id, older_than=older_than)) + "\n")
                return
            total = await _compact_all(store, older_than, out)
            out.write(
                f"compacted {_plural(total.deltas, 'delta')} into {_plural(total.markers, 'marker')} "
                f"({total.removed:,} fewer events)\n"
            )

    trio.run(go)
    return 0


def _db_retention(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    policy = RetentionPolicy.from_config(load_config(config_file=args.config).config.retention)
    store = _sql_store(args, registry)
    out.write("[retention]\n" + "".join(f"  {line}\n" for line in policy.describe()))

    async def go() -> None:
        async with store:
            cutoff = policy.cutoff()
            if args.apply and cutoff is not None:
                total = await _compact_all(store, cutoff, out)
                out.write(
                    f"applied: {_plural(total.deltas, 'delta')} compacted into {_plural(total.markers, 'marker')} "
                    f"({total.removed:,} fewer events)\n"
                )
            elif args.apply:
                out.write("applied: nothing to do (after_days is unset)\n")
            else:
                waiting = await store.sessions_to_compact(older_than=cutoff) if cutoff is not None else []
                if waiting:
                    out.write(
                        f"{_plural(len(waiting), 'session')} {'holds' if len(waiting) == 1 else 'hold'} "
                        "streamed deltas from before the cutoff; "
                        "`asm db retention --apply` compacts those of answered runs\n"
                    )
            cap = policy.max_session_events
            if cap is not None:
                over = await store.sessions_over(cap)
                for session_id, held in over:
                    out.write(f"{session_id}: {held:,} events, at the cap of {cap:,}: it takes no new run\n")

    trio.run(go)
    return 0


class _opened:
    """``async with`` a store that may or may not be an async context manager."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    async def __aenter__(self) -> SessionStore:
        enter = getattr(self._store, "__aenter__", None)
        if enter is not None:
            await enter()
        return self._store

    async def __aexit__(self, *exc_info: object) -> None:
        await self._store.aclose()
