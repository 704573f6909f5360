"""The sink part: ``template``, which appends the rendered text of every event to a file.

A sink is where rendered text and events go (:class:`asm.ports.Sink`): a
runtime calls ``async write(text, event)`` for every stored event, in seq
order, with the renderer's text for it (possibly ``""``), then once with the
renderer's closing text and ``event=None``, then ``async aclose()``. A sink is
switched on by the presence of its table in ``asm.toml`` (this one needs ``path``)::

    [sinks.template]
    path = "asm-output.txt"

A real sink sends the text somewhere else (a chat channel, a log service);
keep ``write`` fast, since a slow sink slows the run whose events it writes.
Its tests, ``tests/test_sink.py``, run asm's ``SinkContract`` suite.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import IO, Any

import attrs
import trio
from asm import AsmError, Event, parse_options

__all__ = ["TemplateSink", "TemplateSinkOptions", "create_sink"]


@attrs.frozen
class TemplateSinkOptions:
    """The ``[sinks.template]`` config table."""

    path: str


class TemplateSink:
    """Appends text to ``path`` (UTF-8, line endings unchanged), opening the
    file at the first write and closing it in ``aclose``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._closed = False

    async def write(self, text: str, event: Event | None) -> None:
        """Append ``text``; ``event`` is the event it was rendered from (``None``
        for the renderer's closing text). Empty text writes nothing."""
        if self._closed:
            raise AsmError("invalid_operation", "this template sink is closed; write before closing it")
        if not text:
            return
        if self._file is None:
            try:
                opening = functools.partial(self.path.open, "a", encoding="utf-8", newline="")
                self._file = await trio.to_thread.run_sync(opening)
            except OSError as exc:
                raise AsmError(
                    "invalid_config", f"cannot open {self.path} for the template sink: {exc.strerror}; fix its path"
                ) from None
        # File I/O in a worker thread, so a slow disk never blocks the event loop.
        await trio.to_thread.run_sync(self._file.write, text)

    async def aclose(self) -> None:
        """Flush and close the file (closing twice is harmless)."""
        self._closed = True
        if self._file is not None:
            file, self._file = self._file, None
            await trio.to_thread.run_sync(file.close)


def create_sink(config: dict[str, Any]) -> TemplateSink:
    """The factory: asm calls it with the ``[sinks.template]`` table."""
    return TemplateSink(parse_options(TemplateSinkOptions, config, "template sink").path)
