"""One model call's stream: read as Server-Sent Events, mapped by the provider, accumulated."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import attrs

from asm.model import TokenUsage
from asm.ports import Emit
from asm.providers.http._service import Service
from asm.sse import SSEDecoder, loads_event

__all__ = ["ToolCall", "Turn", "parse_tool_input"]


@attrs.define
class ToolCall:
    """A tool call the model asked for; ``error`` when its input was unreadable
    (the call is not run, the error goes back to the model)."""

    id: str
    name: str
    input: dict[str, Any]
    error: str | None = None


def parse_tool_input(name: str, raw: str, default: dict[str, Any] | None = None) -> tuple[dict[str, Any], str | None]:
    """The model's JSON input for tool ``name`` as ``(object, None)``, or
    ``({}, what is wrong)``; empty ``raw`` is ``default`` (or ``{}``).

    >>> parse_tool_input("add", '{"a": 1}'), parse_tool_input("add", "[1]")[1]
    (({'a': 1}, None), "the model sent a non-object input for 'add': '[1]'")
    """
    try:
        parsed = json.loads(raw) if raw.strip() else dict(default or {})
    except ValueError:
        return {}, f"the model sent invalid JSON as the input of {name!r}: {raw[:200]!r}"
    if not isinstance(parsed, dict):
        return {}, f"the model sent a non-object input for {name!r}: {raw[:200]!r}"
    return parsed, None


class Turn:
    """One model call's stream, accumulated: a provider subclasses it with its
    wire mapping (:meth:`event`, :meth:`replay`), and sets, by the end of the
    stream, ``text`` (the whole answer), ``tool_calls``, ``usage``, ``model``,
    ``response_id`` and ``stop_reason``.

    The kit reads the body (:meth:`consume`): a wire event that lacks a key or
    has the wrong shape (``KeyError``, ``TypeError``, ``AttributeError``,
    ``IndexError`` in :meth:`event`) fails the run as ``malformed_stream``; a
    body that ends before :meth:`event` returned ``True`` as
    ``stream_interrupted``.
    """

    #: The event that ends a complete stream, as the interrupted error names it.
    final_event: ClassVar[str] = ""
    #: The key of ``response_id`` in the result's metadata.
    id_key: ClassVar[str] = "response_id"
    #: Whether a later request can continue from ``response_id`` (the API keeps the
    #: conversation): it is then the result's ``resume_id`` (native continuation).
    resumable: ClassVar[bool] = False

    def __init__(self, service: Service) -> None:
        self.service = service
        self.tool_calls: list[ToolCall] = []
        self.text = ""
        self.model: str | None = None
        self.response_id: str | None = None
        self.stop_reason: str | None = None
        self.usage = TokenUsage()

    async def consume(self, chunks: AsyncIterator[bytes], emit: Emit) -> None:
        """Read Server-Sent Events up to the final one, emitting as they come."""
        decoder = SSEDecoder()
        async for chunk in chunks:
            for name, raw in decoder.feed(chunk):
                try:
                    if await self.event(name, raw, emit):
                        return
                except (KeyError, TypeError, AttributeError, IndexError) as exc:
                    what = f"event {name or raw[:80]!r} lacks {exc} or has the wrong shape"
                    raise self.service.malformed(what) from None
        raise self.service.interrupted(self.final_event)

    def load(self, name: str, raw: str) -> dict[str, Any]:
        """An event's data as a JSON object (``malformed_stream`` when it is not one)."""
        try:
            data = loads_event(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self.service.malformed(f"event {name or '(unnamed)'} has invalid data {raw[:200]!r}")
        return data

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        """Map one wire event (SSE ``event:`` name, ``data:`` text) to asm
        payloads through ``emit``; ``True`` at the stream's final event."""
        raise NotImplementedError

    def replay(self) -> list[Any]:
        """What to add to the conversation after this turn (before tool results)."""
        raise NotImplementedError

    @property
    def wants_tools(self) -> bool:
        """Whether the model stopped to have tools run (default: it asked for some)."""
        return bool(self.tool_calls)

    @property
    def paused(self) -> bool:
        """Whether the service paused a long turn that the next request continues."""
        return False
