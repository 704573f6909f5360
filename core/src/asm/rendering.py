"""The renderer x sink pipeline, the compact renderer and the built-in sinks.

A :class:`Renderer` turns each event into text; every :class:`Sink` gets the
text and the event. A :class:`RenderingPipeline` is itself an ``on_event``
callback::

    async with RenderingPipeline(CompactRenderer(), [FileSink(sys.stdout)]) as render:
        await manager.run_once("hi", on_event=render)
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any

import trio

from asm.errors import AsmError
from asm.events import (
    CostUpdated,
    ErrorOccurred,
    Event,
    EventsCompacted,
    EventType,
    MessageReceived,
    MessageStreamed,
    RunCompleted,
    RunFailed,
    RunStarted,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
)
from asm.ports import Renderer, Sink
from asm.serde import event_to_json

__all__ = [
    "CallbackSink",
    "CompactRenderer",
    "FileSink",
    "JsonlSink",
    "RenderingPipeline",
]

#: Events the compact renderer leaves out: lifecycle noise, the input, the
#: whole message (already streamed), reasoning, and the session's end (the
#: run's own token already said how it ended).
_QUIET = frozenset(
    {
        EventType.SESSION_CREATED,
        EventType.SESSION_STARTED,
        EventType.SESSION_COMPLETED,
        EventType.SESSION_FAILED,
        EventType.SESSION_CANCELLED,
        EventType.RUN_QUEUED,
        EventType.MESSAGE_SENT,
        EventType.MESSAGE_RECEIVED,
        EventType.THINKING_STREAMED,
        EventType.TURN_COMPLETED,
    }
)


class CompactRenderer:
    """One token per event on one line: ``r+model >> text t+tool t-tool tk:in/out r-:end_turn``.

    Failures are ``t!tool`` (a tool call), ``! message`` (``run_failed``,
    ``error_occurred``), ``! cancelled`` and ``! timeout``; an attempt whose process
    stopped (``run_interrupted``) is ``~interrupted``; an event type it
    has no token for is ``?type``. Replaying a compacted log, the answer of a run
    whose deltas were compacted stands in for them (``>> text``).

    >>> from asm.events import Event, MessageStreamed
    >>> CompactRenderer().render(Event.new(MessageStreamed("hi"), session_id="s"))
    '>> hi'
    """

    def __init__(self, *, color: bool = False) -> None:
        self._color = color
        self._started = False
        self._streaming = False
        self._compacted: set[str | None] = set()  # runs whose deltas a store compacted

    def render(self, event: Event) -> str:
        """The token for ``event`` ('' for events it leaves out)."""
        data = event.data
        if isinstance(data, EventsCompacted):  # a replay of a compacted log: the answer shows the text
            self._compacted.add(data.run_id)
            return ""
        if isinstance(data, MessageReceived) and event.run_id in self._compacted:
            self._streaming = False
            return f"{self._separator()}>> {data.content}"
        if isinstance(data, MessageStreamed):
            if self._streaming:
                return data.delta
            self._streaming = True
            return f"{self._separator()}>> {data.delta}"
        token = self._token(event)
        if not token:
            return ""
        self._streaming = False
        return self._separator() + token

    def _separator(self) -> str:
        separator = " " if self._started else ""
        self._started = True
        return separator

    def _token(self, event: Event) -> str:
        data = event.data
        if isinstance(data, RunStarted):
            return f"r+{data.model or data.provider}"
        if isinstance(data, RunCompleted):
            return f"r-:{data.stop_reason}" if data.stop_reason else "r-"
        if isinstance(data, ToolCallStarted):
            return f"t+{data.tool_name}"
        if isinstance(data, ToolCallCompleted):
            return f"t-{data.tool_name}"
        if isinstance(data, ToolCallFailed):
            return self._paint(f"t!{data.tool_name}", "31")
        if isinstance(data, TokenUsageUpdated):
            return f"tk:{data.usage.input_tokens}/{data.usage.output_tokens}"
        if isinstance(data, CostUpdated):
            return f"${data.cost.total_usd}"
        if isinstance(data, RunFailed | ErrorOccurred):
            return self._paint(f"! {data.error_message}", "31")
        if event.type is EventType.RUN_CANCELLED:
            return self._paint("! cancelled", "31")
        if event.type is EventType.RUN_TIMEOUT:
            return self._paint("! timeout", "31")
        if event.type is EventType.RUN_INTERRUPTED:
            return self._paint("~interrupted", "33")
        if event.type in _QUIET:
            return ""
        return f"?{event.type.value}"

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self._color else text

    def finish(self) -> str:
        """A final newline."""
        return "\n"


class FileSink:
    """Writes rendered text to a path (appending) or an open text stream (``stdout``).

    A path is checked (and created, with its directory) when the sink is built,
    so a bad path is a config error, but it is held open only from the first
    write until ``aclose``. A stream given to the sink is flushed, never closed.
    """

    def __init__(self, target: str | Path | IO[str] = "-", *, flush: bool = True) -> None:
        self._path: Path | None = None
        self._stream: IO[str] | None = None
        if isinstance(target, str | Path):
            if str(target) == "-":
                self._stream = sys.stdout
            else:
                self._path = Path(target)
                _open_for_append(self._path).close()
        else:
            self._stream = target
        self._flush = flush
        self._closed = False

    async def write(self, text: str, event: Event | None) -> None:
        """Write ``text`` (ignores empty text)."""
        if not text:
            return
        if self._closed:
            raise AsmError("invalid_operation", "this sink is closed; it can no longer be written to")
        if self._stream is None:
            assert self._path is not None
            self._stream = _open_for_append(self._path)
        self._stream.write(text)
        if self._flush:
            self._stream.flush()

    async def aclose(self) -> None:
        """Flush, and close the file if this sink opened it (closing twice is harmless)."""
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.flush()
            if self._path is not None:
                self._stream.close()


class JsonlSink:
    """Writes each event as one JSON line (the same JSON as the stores)."""

    def __init__(self, target: str | Path | IO[str]) -> None:
        self._inner = FileSink(target)

    async def write(self, text: str, event: Event | None) -> None:
        """Write ``event`` as a JSON line (the closing text, with no event, is not written)."""
        if event is not None:
            await self._inner.write(event_to_json(event) + "\n", event)

    async def aclose(self) -> None:
        """Close the file."""
        await self._inner.aclose()


class CallbackSink:
    """Calls ``callback(event, text)`` (sync or async) for each event."""

    def __init__(self, callback: Callable[[Event | None, str], Awaitable[None] | None]) -> None:
        if not callable(callback):
            raise AsmError("invalid_config", "the callback sink needs a callable: CallbackSink(fn)")
        self._callback = callback

    async def write(self, text: str, event: Event | None) -> None:
        """Hand ``event`` and ``text`` to the callback (``event`` is None for the closing text)."""
        outcome = self._callback(event, text)
        if inspect.isawaitable(outcome):
            await outcome

    async def aclose(self) -> None:
        """Nothing to close."""


class RenderingPipeline:
    """Renders each event once and writes it to every sink; use as ``on_event``.

    ``aclose`` (or leaving ``async with``) writes the renderer's final text
    and closes every sink, even if one of them fails.
    """

    def __init__(self, renderer: Renderer, sinks: Sequence[Sink]) -> None:
        self.renderer = renderer
        self.sinks = list(sinks)
        self._closed = False

    async def __aenter__(self) -> RenderingPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __call__(self, event: Event) -> None:
        text = self.renderer.render(event)
        for sink in self.sinks:
            await sink.write(text, event)

    async def aclose(self) -> None:
        """Write the final text to every sink and close them all, even if one
        fails; then raise the first failure. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        errors: list[Exception] = []
        with trio.CancelScope(shield=True):
            try:
                text = self.renderer.finish()
            except Exception as exc:  # noqa: BLE001 - raised below, after every sink is closed
                errors.append(exc)
                text = ""
            if text:
                for sink in self.sinks:
                    try:
                        await sink.write(text, None)
                    except Exception as exc:  # noqa: BLE001 - raised below, after every sink is closed
                        errors.append(exc)
            for sink in self.sinks:
                try:
                    await sink.aclose()
                except Exception as exc:  # noqa: BLE001 - raised below, after every sink is closed
                    errors.append(exc)
        if errors:
            raise errors[0]


def _open_for_append(path: Path) -> IO[str]:
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            logging.getLogger("asm.rendering").info("created the directory %s for the sink file %s", path.parent, path)
        return path.open("a", encoding="utf-8")
    except OSError as exc:
        raise AsmError(
            "invalid_config", f"cannot open {path} for writing: {exc.strerror}; choose a writable path"
        ) from None


def sink_options(config: dict[str, Any], *, required: str) -> Any:
    """The one required option of a sink's config table, with a clear error."""
    unknown = set(config) - {required}
    if unknown:
        raise AsmError(
            "invalid_config", f"unknown sink option(s) {', '.join(sorted(unknown))}; the only option is {required!r}"
        )
    if required not in config:
        raise AsmError("invalid_config", f"this sink needs {required!r} in its config table")
    return config[required]
