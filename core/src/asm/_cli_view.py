"""How the CLI shows events and tables: the renderer for a command, its view, ``-v`` logging.

``asm run``, ``asm events`` and ``asm events --follow`` show events through a renderer:
``--renderer NAME``, else ``studio`` when stdout is a terminal and a plugin (asm-rich)
registers it; with neither, the command keeps its plain output. A renderer object with a
``view(out)`` method (asm-rich's) brings its own view: an async context manager yielding the
``on_event`` callback, which never waits for the terminal. Any other renderer is written
to ``out`` event by event.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from asm.errors import AsmError
from asm.plugins import PluginRegistry

if TYPE_CHECKING:  # the asm command imports this module for -v before it knows it shows events
    from asm.events import Event

__all__ = [
    "DEFAULT_TERMINAL_RENDERER",
    "EventView",
    "configure_logging",
    "draws_tables",
    "is_terminal",
    "open_event_view",
    "output_lost",
    "pick_renderer",
    "print_table",
    "verbosity",
]

#: The renderer a command uses on a terminal when it is installed (asm-rich's).
DEFAULT_TERMINAL_RENDERER = "studio"

#: An event view's callback: shows one event; ``output_lost`` says whether its reader left.
EventView = Callable[["Event"], Any]


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or fake stream is not)."""
    try:
        return bool(stream.isatty())
    except (ValueError, AttributeError, OSError):
        return False


def pick_renderer(registry: PluginRegistry, name: str | None, *, json: bool, out: TextIO) -> str | None:
    """The renderer a command shows its events with: ``name`` (checked: an unknown one is
    ``plugin_not_found`` listing the installed renderers), else :data:`DEFAULT_TERMINAL_RENDERER`
    when ``out`` is a terminal and it is installed, else ``None`` (the command's plain
    output). ``--json`` and ``--renderer`` together are a usage error."""
    if name is not None:
        if json:
            raise AsmError("validation_error", "--json and --renderer cannot be used together; pick one")
        registry.get("renderers", name)
        return name
    if json or not is_terminal(out):
        return None
    return DEFAULT_TERMINAL_RENDERER if DEFAULT_TERMINAL_RENDERER in registry.names("renderers") else None


@contextlib.asynccontextmanager
async def open_event_view(
    registry: PluginRegistry, name: str | None, out: TextIO, *, thinking: bool = False
) -> AsyncIterator[EventView | None]:
    """Show events with the renderer ``name`` (built from the ``[renderers.<name>]`` table
    ``registry`` was configured with) on ``out``; yields the ``on_event`` callback (``None``
    for no renderer: the command's plain output). ``thinking`` (``--thinking``) turns on a
    renderer's ``thinking`` setting (the studio's: the model's reasoning in full). After the
    block, the callback's ``output_lost`` is true if ``out``'s reader left (the run went on
    regardless)."""
    if name is None:
        yield None
        return
    renderer = registry.create("renderers", name)
    if thinking and hasattr(renderer, "thinking"):
        renderer.thinking = True
    view = getattr(renderer, "view", None)
    if callable(view):
        async with view(out) as on_event:
            yield on_event
        return
    plain = _PlainView(renderer, out)
    try:
        yield plain
    finally:
        plain.finish()


def output_lost(view: EventView | None) -> bool:
    """Whether ``view``'s reader left during the command."""
    return bool(getattr(view, "output_lost", False))


class _PlainView:
    """A renderer without a view of its own, written to ``out`` event by event."""

    def __init__(self, renderer: Any, out: TextIO) -> None:
        self._renderer = renderer
        self._out = out
        self.output_lost = False

    def __call__(self, event: Event) -> None:
        self._write(self._renderer.render(event))

    def finish(self) -> None:
        self._write(self._renderer.finish())

    def _write(self, text: str) -> None:
        if not text or self.output_lost:
            return
        try:
            self._out.write(text)
            self._out.flush()
        except (BrokenPipeError, OSError):  # the reader left: the run goes on
            self.output_lost = True


def draws_tables(registry: PluginRegistry, out: TextIO) -> bool:
    """Whether :func:`print_table` draws on ``out``: it is a terminal and the terminal
    renderer (asm-rich's ``studio``) is installed."""
    return is_terminal(out) and DEFAULT_TERMINAL_RENDERER in registry.names("renderers")


def print_table(
    registry: PluginRegistry,
    out: TextIO,
    *,
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
) -> bool:
    """Draw a table with the terminal renderer's ``table`` method (asm-rich's rich tables)
    when ``out`` is a terminal and that renderer is installed; return whether it did (if
    not, the command prints its plain lines). A column named ``status`` is coloured by status."""
    if not draws_tables(registry, out):
        return False
    renderer = registry.create("renderers", DEFAULT_TERMINAL_RENDERER, {})
    table = getattr(renderer, "table", None)
    if not callable(table):
        return False
    table(out, title=title, columns=list(columns), rows=[list(row) for row in rows])
    return True


#: ``asm -v``: INFO, ``-vv``: DEBUG, of the ``asm`` logger hierarchy, on stderr.
_LEVELS = {1: logging.INFO, 2: logging.DEBUG}


def verbosity(argv: Sequence[str]) -> int:
    """How many ``-v`` (``-v``, ``-vv``, ``--verbose``) come before the command in ``argv``.

    >>> verbosity(["-vv", "run", "-v"])
    2
    """
    count = 0
    for arg in argv:
        if arg == "--verbose":
            count += 1
        elif len(arg) > 1 and arg.startswith("-") and set(arg[1:]) == {"v"}:
            count += len(arg) - 1
        elif not arg.startswith("-") or arg == "--":
            break
    return count


def configure_logging(level: int, err: TextIO | None = None) -> Callable[[], None]:
    """Send the ``asm`` loggers' records to ``err`` (default: stderr) at INFO (``level``
    1) or DEBUG (2 or more); 0 leaves logging alone (and asm prints nothing of its own).
    Returns the function that undoes it (the CLI calls it when the command ends)."""
    if level <= 0:
        return _nothing
    handler = logging.StreamHandler(err or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("asm")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(_LEVELS.get(min(level, 2), logging.DEBUG))

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    return undo


def _nothing() -> None:
    pass
