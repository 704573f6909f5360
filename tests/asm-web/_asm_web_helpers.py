"""Helpers of the asm-web tests: a runtime with a provider the test releases chunk by chunk, the app on
top of it (through ASGI, or on a loopback port), and an isolated environment."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx2
import trio
from asm_web import WebOptions, WebService, create_app, open_server, open_web_service

from asm import hookimpl, load_plugins
from asm.config import AsmConfig
from asm.events import MessageReceived, MessageStreamed, ThinkingStreamed, TokenUsageUpdated
from asm.hookspecs import Register
from asm.model import Capabilities, RunInput, RunResult, TokenUsage
from asm.ports import Emit
from asm.runtime import Runtime, open_runtime

#: What a gate hands a run: a text chunk, thinking (``("think", text)``) or ``None`` to end it.
Step = str | tuple[str, str] | None


class Gate:
    """Feeds the ``gated`` provider: each :meth:`release` lets one step through, so a
    test decides exactly when every event of a run happens (no sleeps)."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[Step](math.inf)
        self.runs_started = 0
        self.started = trio.Event()

    def release(self, *steps: Step) -> None:
        for step in steps:
            self._send.send_nowait(step)

    def finish(self) -> None:
        self._send.send_nowait(None)


class GatedProvider:
    """Streams what its gate releases; ends the run on ``None``."""

    name = "gated"

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=True, thinking=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        self.gate.runs_started += 1
        self.gate.started.set()
        text: list[str] = []
        async for step in self.gate._receive:
            if step is None:
                break
            if isinstance(step, tuple):
                await emit(ThinkingStreamed(step[1]))
            else:
                text.append(step)
                await emit(MessageStreamed(step))
        output = "".join(text)
        await emit(MessageReceived(output))
        await emit(TokenUsageUpdated(TokenUsage(3, max(1, len(output) // 4)), model="gated-1"))
        return RunResult(output=output, stop_reason="end_turn", model="gated-1")


@attrs.define(eq=False)
class GatePlugin:
    gate: Gate

    @hookimpl
    def asm_register_providers(self, register: Register) -> None:
        register("gated", lambda config: GatedProvider(self.gate))


@contextlib.asynccontextmanager
async def gated_runtime(gate: Gate, **config: Any) -> AsyncIterator[Runtime]:
    """A runtime whose default provider is ``gated`` (memory store unless ``store=`` says)."""
    registry = load_plugins(extra=[GatePlugin(gate)])
    settings: dict[str, Any] = {"provider": "gated", "store": "memory", **config}
    async with open_runtime(AsmConfig(**settings), registry=registry) as runtime:
        yield runtime


@contextlib.asynccontextmanager
async def asgi_client(
    gate: Gate, options: WebOptions | None = None, **config: Any
) -> AsyncIterator[tuple[httpx2.AsyncClient, WebService]]:
    """An HTTP client on the ASGI app itself (no socket)."""
    async with gated_runtime(gate, **config) as runtime, open_web_service(runtime, options) as service:
        transport = httpx2.ASGITransport(app=create_app(service))
        async with httpx2.AsyncClient(transport=transport, base_url="http://asm.test") as client:
            yield client, service


@contextlib.asynccontextmanager
async def live_server(gate: Gate, options: WebOptions | None = None, **config: Any) -> AsyncIterator[str]:
    """The app on a free loopback port; yields its base URL."""
    async with gated_runtime(gate, **config) as runtime, open_server(runtime, options or WebOptions(port=0)) as url:
        yield url


@contextlib.asynccontextmanager
async def live_service(
    gate: Gate, options: WebOptions | None = None, **config: Any
) -> AsyncIterator[tuple[str, WebService, Runtime]]:
    """:func:`live_server`, also yielding the service it serves and its runtime."""
    from asm_web._serve import open_served

    async with gated_runtime(gate, **config) as runtime, open_served(runtime, options or WebOptions(port=0)) as served:
        url, service = served
        yield url, service, runtime


@contextlib.asynccontextmanager
async def sse_chunks(
    url: str, *, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx2.Response, AsyncIterator[bytes]]]:
    """A streamed GET of ``url``: the response and its raw chunks; leaving the block drops
    the connection wherever the reading stopped (and leaves no generator half-run)."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10.0, read=None), trust_env=False) as http:
        response = await http.send(http.build_request("GET", url, headers=headers, params=params), stream=True)
        chunks = response.aiter_raw()
        try:
            yield response, chunks
        finally:
            with trio.CancelScope(shield=True):
                await response.aclose()
                with contextlib.suppress(Exception):
                    async for _ in chunks:
                        pass
                await chunks.aclose()  # type: ignore[attr-defined]
