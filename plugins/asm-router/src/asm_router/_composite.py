"""The ``composite`` store: a session store and an artifact store, by name, as one object.

::

    store = "composite"

    [stores.composite]
    sessions = "sqlite"        # a session store's name (a plugin or a named instance)
    artifacts = "fsspec"       # an artifact store's name

The object has both ports' methods (``save_session`` ... ``latest_seq`` from the
session store, ``put`` ... ``list`` from the artifact store); whatever else the
session store offers (``QueryAPI``, ``Maintenance``) is reached through it too.
Opening it opens both; closing it closes both, even if the first close fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import attrs

from asm import AsmError, load_plugins, parse_options
from asm.events import Event, EventType
from asm.model import Artifact, Page, Run, Session
from asm.plugins import PluginRegistry
from asm.ports import ArtifactStore, SessionStore
from asm.states import RunStatus, SessionStatus

__all__ = ["CompositeOptions", "CompositeStore", "create_composite"]


@attrs.frozen
class CompositeOptions:
    """The ``[stores.<name>]`` table of a composite store."""

    sessions: str = "memory"
    artifacts: str = "memory"


class CompositeStore:
    """``sessions`` and ``artifacts`` presented as one store (see the module docstring).

    >>> from asm.stores.memory import InMemoryArtifactStore, InMemorySessionStore
    >>> store = CompositeStore(InMemorySessionStore(), InMemoryArtifactStore())
    """

    def __init__(self, sessions: SessionStore, artifacts: ArtifactStore) -> None:
        self.sessions = sessions
        self.artifacts = artifacts
        self._stack: contextlib.AsyncExitStack | None = None

    async def __aenter__(self) -> CompositeStore:
        async with contextlib.AsyncExitStack() as stack:
            for part in (self.sessions, self.artifacts):
                if hasattr(part, "__aenter__"):
                    await stack.enter_async_context(part)  # type: ignore[arg-type]
                else:
                    stack.push_async_callback(part.aclose)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close both stores (the artifact store first); the first failure is raised after."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
            return
        errors: list[Exception] = []
        for part in (self.artifacts, self.sessions):
            try:
                await part.aclose()
            except Exception as exc:  # noqa: BLE001 - raised below, once both are closed
                errors.append(exc)
        if errors:
            raise errors[0]

    def __getattr__(self, name: str) -> Any:
        # QueryAPI, Maintenance and anything else the session store offers.
        if name.startswith("__") or name in ("sessions", "artifacts", "_stack"):
            raise AttributeError(name)
        return getattr(self.sessions, name)

    # -- SessionStore ---------------------------------------------------------

    async def save_session(self, session: Session) -> None:
        await self.sessions.save_session(session)

    async def get_session(self, session_id: str) -> Session:
        return await self.sessions.get_session(session_id)

    async def list_sessions(
        self,
        *,
        status: SessionStatus | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Session]:
        return await self.sessions.list_sessions(status=status, agent_id=agent_id, limit=limit, offset=offset)

    async def delete_session(self, session_id: str) -> None:
        await self.sessions.delete_session(session_id)

    async def save_run(self, run: Run) -> None:
        await self.sessions.save_run(run)

    async def claim_run(self, run: Run) -> None:
        await self.sessions.claim_run(run)

    async def get_run(self, run_id: str) -> Run:
        return await self.sessions.get_run(run_id)

    async def list_runs(self, session_id: str, *, status: RunStatus | None = None) -> list[Run]:
        return await self.sessions.list_runs(session_id, status=status)

    async def append_events(self, events: Sequence[Event]) -> list[Event]:
        return await self.sessions.append_events(events)

    async def read_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int | None = None,
        types: Iterable[EventType | str] | None = None,
        run_id: str | None = None,
    ) -> Page:
        return await self.sessions.read_events(
            session_id, after=after, before=before, limit=limit, types=types, run_id=run_id
        )

    async def wait_for_events(
        self, session_id: str, *, after: int, timeout: float | None = None, limit: int | None = None
    ) -> Page:
        return await self.sessions.wait_for_events(session_id, after=after, timeout=timeout, limit=limit)

    async def latest_seq(self, session_id: str) -> int:
        return await self.sessions.latest_seq(session_id)

    # -- ArtifactStore --------------------------------------------------------

    async def put(self, key: str, data: bytes | AsyncIterator[bytes], *, content_type: str | None = None) -> Artifact:
        return await self.artifacts.put(key, data, content_type=content_type)

    async def get(self, key: str) -> bytes:
        return await self.artifacts.get(key)

    def open_read(self, key: str, *, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        return self.artifacts.open_read(key, chunk_size=chunk_size)

    async def stat(self, key: str) -> Artifact:
        return await self.artifacts.stat(key)

    async def delete(self, key: str) -> None:
        await self.artifacts.delete(key)

    async def list(self, prefix: str = "") -> list[Artifact]:
        return await self.artifacts.list(prefix)


def create_composite(
    config: dict[str, Any], *, registry: PluginRegistry | None = None, name: str = "composite"
) -> CompositeStore:
    """The ``composite`` store's factory: builds its two stores by name from ``registry``."""
    options = parse_options(CompositeOptions, config, "composite store")
    registry = registry if registry is not None else load_plugins()
    parts = (("stores", options.sessions, "sessions"), ("artifact_stores", options.artifacts, "artifacts"))
    if options.sessions == name:
        raise AsmError(
            "invalid_config",
            f"composite store {name!r} names itself as its session store; name another store (e.g. sqlite)",
        )
    for kind, member, what in parts:
        if member not in registry.names(kind):
            installed = ", ".join(registry.names(kind))
            raise AsmError(
                "invalid_config",
                f"composite store {name!r}: {what} = {member!r} is not a registered "
                f"{kind.replace('_', ' ')[:-1]} (installed: {installed})",
            )
    sessions = registry.create("stores", options.sessions)
    return CompositeStore(sessions, registry.create("artifact_stores", options.artifacts))
