"""Retention as policy: the ``[retention]`` table, applied as runs end and start.

::

    [retention]
    after_days = 0               # compact a run's streamed deltas once it ends (N: N days after)
    max_session_events = 50000   # a session holding this many events takes no new run

Once a run's ``message_received`` is stored, its ``message_streamed`` deltas are
redundant: the transcript never reads them. ``after_days`` compacts them
(``SessionStore.compact_events``: each range becomes one ``events_compacted``
marker, seqs unchanged) - with ``0`` as soon as the run ends, with ``N`` when
a run of the session ends N days after the one it compacts (``asm db retention
--apply`` does every session). ``max_session_events`` caps what a session
holds: a run about to start in a session at the cap first compacts the
session (whatever ``after_days`` says), and if the session is still at the
cap the run fails with ``invalid_operation`` before its provider is called.
Nothing accepted is ever dropped: a run already going may pass the cap, and
only redundant deltas are compacted.

A runtime assembled from config installs :class:`RetentionEnforcer` (a plugin
of ``asm_run_finished`` / ``asm_run_starting``) when the table is there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from asm.errors import AsmError
from asm.hookspecs import hookimpl
from asm.model import Run, Session, utcnow
from asm.ports import SessionStore
from asm.stores import Compaction

__all__ = ["RetentionEnforcer", "RetentionPolicy", "count_events"]

log = logging.getLogger("asm.retention")

#: Events read per page when a store cannot count them itself.
_PAGE = 10_000


@attrs.frozen
class RetentionPolicy:
    """The ``[retention]`` table: ``after_days`` (``None``: deltas are kept; ``0``: compacted
    when their run ends) and ``max_session_events`` (``None``: no cap)."""

    after_days: float | None = None
    max_session_events: int | None = None

    def __attrs_post_init__(self) -> None:
        days = self.after_days
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days) or days < 0
        ):
            raise AsmError(
                "invalid_config",
                f"[retention] after_days must be a number of days >= 0 (0: when the run ends), not {days!r}",
                details={"key": "retention.after_days"},
            )
        cap = self.max_session_events
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise AsmError(
                "invalid_config",
                f"[retention] max_session_events must be a whole number >= 1 (leave it unset for no cap), not {cap!r}",
                details={"key": "retention.max_session_events"},
            )

    @classmethod
    def from_config(cls, table: Mapping[str, Any] | None) -> RetentionPolicy:
        """The ``[retention]`` table (``None``: nothing configured); ``invalid_config`` for an
        unknown key or a bad value."""
        table = dict(table or {})
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise AsmError(
                "invalid_config",
                f"[retention] has unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}",
                details={"key": "retention"},
            )
        return cls(**table)

    @property
    def configured(self) -> bool:
        """Whether the policy asks for anything."""
        return self.after_days is not None or self.max_session_events is not None

    def cutoff(self, now: datetime | None = None) -> datetime | None:
        """Runs that ended before this have their deltas compacted (``None``: keep them)."""
        if self.after_days is None:
            return None
        return (now or utcnow()) - timedelta(days=self.after_days)

    def describe(self) -> list[str]:
        """The policy in words, a line per key."""
        if self.after_days is None:
            after = "after_days: unset - streamed deltas are kept (compact them with `asm db compact`)"
        elif self.after_days == 0:
            after = "after_days = 0 - a run's streamed deltas are compacted as soon as it ends"
        else:
            after = (
                f"after_days = {self.after_days:g} - streamed deltas of runs that ended more than "
                f"{self.after_days:g} days ago are compacted"
            )
        if self.max_session_events is None:
            cap = "max_session_events: unset - no cap on a session's events"
        else:
            cap = (
                f"max_session_events = {self.max_session_events} - a session holding this many events is "
                "compacted, then refuses new runs if it still does"
            )
        return [after, cap]

    async def apply(self, store: SessionStore, session_id: str, *, now: datetime | None = None) -> Compaction:
        """Compact ``session_id`` as ``after_days`` says (nothing when it is unset)."""
        cutoff = self.cutoff(now)
        if cutoff is None:
            return Compaction(session_id)
        return await store.compact_events(session_id, older_than=cutoff)

    async def check_cap(self, store: SessionStore, session_id: str) -> None:
        """Raise ``invalid_operation`` if ``session_id`` holds ``max_session_events`` events
        even after every redundant delta is compacted (compacting it first when it is at the cap)."""
        cap = self.max_session_events
        if cap is None:
            return
        held = await count_events(store, session_id)
        if held < cap:
            return
        await store.compact_events(session_id)
        held = await count_events(store, session_id)
        if held >= cap:
            raise AsmError(
                "invalid_operation",
                f"session {session_id} holds {held} events, at its cap of [retention] max_session_events = {cap} "
                "even after compaction; continue in a new session (or a fork), or raise the cap",
                details={"session_id": session_id, "events": held, "max_session_events": cap},
            )


async def count_events(store: SessionStore, session_id: str) -> int:
    """How many events ``session_id``'s log holds now (compacted ranges count once): the
    store's own ``count_events`` when it has one (asm's stores do), else a read of the log."""
    count = getattr(store, "count_events", None)
    if count is not None:
        return int(await count(session_id))
    held = after = 0
    while True:
        page = await store.read_events(session_id, after=after, limit=_PAGE)
        held += len(page.events)
        if not page.has_more:
            return held
        after = page.cursor


class RetentionEnforcer:
    """The plugin that applies a :class:`RetentionPolicy` to ``store``'s runs: compaction
    when a run ends (a storage failure then is logged, not raised: the run's outcome stands),
    the cap when a run starts."""

    def __init__(self, policy: RetentionPolicy, store: SessionStore) -> None:
        self.policy = policy
        self.store = store

    @hookimpl
    async def asm_run_starting(self, session: Session, run: Run) -> None:
        """Refuse the run (``invalid_operation``) if its session is at its event cap."""
        await self.policy.check_cap(self.store, run.session_id)

    @hookimpl
    async def asm_run_finished(self, session: Session, run: Run) -> None:
        """Compact the session's runs that ended ``after_days`` ago or more."""
        try:
            await self.policy.apply(self.store, run.session_id)
        except AsmError as exc:
            log.warning("retention: compacting session %s failed: %s", run.session_id, exc)
