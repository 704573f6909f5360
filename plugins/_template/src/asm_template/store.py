"""The store part: ``template``, a session store (``store = "template"`` in ``asm.toml``).

A session store keeps sessions, runs and each session's event log
(:class:`asm.ports.SessionStore`). A real one implements every method of that
protocol against its database; this one keeps everything in memory, in asm's
:class:`asm.InMemorySessionStore` (dicts), and adds what a store plugin needs
around it:

- an options class for the ``[stores.template]`` table, built by
  :func:`asm.parse_options` (an unknown key is a clear ``invalid_config`` error);
- opening and closing: a store that needs opening (a connection pool) is also
  an async context manager, which the runtime enters and exits;
- a factory, ``create_store(config)``, which the ``@hookimpl`` in ``__init__.py``
  registers under the name users configure.

Its tests, ``tests/test_store.py``, run asm's ``SessionStoreContract`` suite:
seq assignment under 20 concurrent writers, idempotent appends, exact round
trips of every event type, cursor paging, long-poll wake-ups. Replace the
methods one by one with your database's and keep the suite passing.
"""

from __future__ import annotations

from typing import Any

import attrs
from asm import InMemorySessionStore, parse_options

__all__ = ["TemplateStore", "TemplateStoreOptions", "create_store"]


@attrs.frozen
class TemplateStoreOptions:
    """The ``[stores.template]`` config table: add your store's settings here
    (a URL, a path, a pool size), each with a default."""


class TemplateStore(InMemorySessionStore):
    """A session store, opened and closed by the runtime.

    ``opened`` says whether it is open: a real store connects in
    ``__aenter__`` and disconnects in ``aclose``.
    """

    def __init__(self, options: TemplateStoreOptions) -> None:
        super().__init__()
        self.options = options
        self.opened = False

    async def __aenter__(self) -> TemplateStore:
        self.opened = True  # a real store opens its connection pool here
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the store (closing twice is harmless)."""
        self.opened = False
        await super().aclose()


def create_store(config: dict[str, Any]) -> TemplateStore:
    """The factory: asm calls it with the ``[stores.template]`` table ({} if absent)."""
    return TemplateStore(parse_options(TemplateStoreOptions, config, "template store"))
