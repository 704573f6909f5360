"""The plugin contract: every hook a plugin may implement.

A plugin is a module (or object) with functions decorated ``@asm.hookimpl``
whose names match the specs below; a distribution makes it discoverable with
an entry point in the group ``asm``::

    [project.entry-points.asm]
    myplugin = "asm_myplugin"

**Registration hooks** run once, when the registry loads. Each receives a
``register(name, factory)`` callable; ``factory(config)`` gets the plugin's
config table (a dict, ``{}`` when there is none, e.g. ``[providers.myname]``
in ``asm.toml``) and returns the object; a factory with a keyword argument
``registry`` also gets the :class:`asm.plugins.PluginRegistry` it is built
from, to build what its config names (tools, member providers) from the same
plugins, and one with a keyword argument ``name`` gets the name it is built
under (a named instance's own). A name registered twice (by two plugins) is an
error naming both.

**Runtime hooks** observe or shape the flow of a run. They are plain
functions; those that may need to wait may return an awaitable, which asm
awaits. A runtime hook that raises fails the run it belongs to, never the
process. See docs/writing-plugins.md for a runnable example of each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # every plugin imports this module at load: it stays light
    from asm.events import ApprovalRequested, Event
    from asm.model import Run, Session

__all__ = ["Register", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("asm")
hookimpl = pluggy.HookimplMarker("asm")

#: The ``register(name, factory)`` callable every registration hook receives.
Register = Callable[[str, Callable[[dict[str, Any]], Any]], None]


# -- registration ------------------------------------------------------------


@hookspec
def asm_register_providers(register: Register) -> None:
    """Register providers: ``register("name", factory)``, where
    ``factory(config) -> Provider`` (see :class:`asm.ports.Provider`).

    The name is what users write in ``--provider`` and ``provider = "..."``.
    """


@hookspec
def asm_register_stores(register: Register) -> None:
    """Register session stores: ``factory(config) -> SessionStore``.

    If the store needs opening (a connection pool), return an object that is
    also an async context manager; the runtime enters and exits it.
    """


@hookspec
def asm_register_artifact_stores(register: Register) -> None:
    """Register artifact stores: ``factory(config) -> ArtifactStore``."""


@hookspec
def asm_register_renderers(register: Register) -> None:
    """Register renderers: ``factory(config) -> Renderer``."""


@hookspec
def asm_register_sinks(register: Register) -> None:
    """Register sinks: ``factory(config) -> Sink``."""


@hookspec
def asm_register_policies(register: Register) -> None:
    """Register named policies: ``factory(config) -> policy object``."""


@hookspec
def asm_register_pricing(register: Register) -> None:
    """Register pricing tables: ``factory(config) -> pricing table``."""


@hookspec
def asm_register_tools(register: Register) -> None:
    """Register tools providers may offer the model: ``factory(config) -> asm.Tool``
    (a name, a description, a JSON schema and a sync or async callable)."""


@hookspec
def asm_register_commands(register: Register) -> None:
    """Register ``asm`` subcommands: ``factory(subparsers) -> None`` adds an
    argparse sub-parser whose ``handler`` default is ``handler(args) -> int``."""


# -- runtime -----------------------------------------------------------------


@hookspec
def asm_transform_event(event: Event) -> Event | list[Event] | Awaitable[Event | list[Event] | None] | None:
    """Called for every event before it is stored, in plugin order; return a
    replacement with the same id, session and run (e.g. with secrets redacted:
    ``attrs.evolve``) or ``None`` to keep it as is. Each implementation sees
    the previous one's result (each event of it, for a list).

    A list replaces the event by several of the same session and run: events
    the plugin held back and releases now (made with ``Event.new``) before the
    event itself, or ``[]`` to hold the event back (a streamed delta; a
    lifecycle event cannot be dropped). Return an awaitable (e.g. of
    ``trio.to_thread.run_sync``) to do slow work off the event loop. Anything
    else, or an exception, fails the run with ``internal_error`` naming the plugin."""


@hookspec
def asm_transform_record(record: Session | Run) -> Session | Run | None:
    """Called for every session and run before it is saved, in plugin order;
    return a replacement with the same id (e.g. with secrets redacted from the
    run's input or error) or ``None`` to keep it. The caller's own objects are
    not changed: only what is stored."""


@hookspec
def asm_event(event: Event) -> Awaitable[None] | None:
    """Called for every event after the store acknowledged it (telemetry,
    pub/sub, audit). What this hook has seen survives a crash. Keep it
    fast: a slow hook slows the run that produced the event."""


@hookspec
def asm_session_started(session: Session) -> Awaitable[None] | None:
    """A session became active."""


@hookspec
def asm_session_ended(session: Session) -> Awaitable[None] | None:
    """A session reached a terminal status (completed, failed, cancelled)."""


@hookspec
def asm_run_starting(session: Session, run: Run) -> Awaitable[None] | None:
    """A run is about to execute (its status is already ``running``)."""


@hookspec
def asm_run_finished(session: Session, run: Run) -> Awaitable[None] | None:
    """A run ended; ``run.status`` is terminal and all its events are stored."""


@hookspec(firstresult=True)
def asm_approve_tool(request: ApprovalRequested, run: Run) -> bool | Awaitable[bool] | None:
    """Answer a tool call that needs approval: ``True`` to allow, ``False`` to
    deny, ``None`` to leave it to the next plugin. The first non-``None``
    answer wins; with no answer, the call is denied."""


@hookspec(firstresult=True)
def asm_count_tokens(text: str, model: str | None, provider: str) -> int | None:
    """How many tokens ``text`` is for ``model`` on ``provider`` (the transcript's budget,
    :mod:`asm.continuity`): an offline tokenizer's count, or ``None`` to leave it to the next
    plugin. The first answer wins; with none, asm estimates ``ceil(len(text) / 4)``. Called
    once per transcript entry: keep it fast and without I/O."""
