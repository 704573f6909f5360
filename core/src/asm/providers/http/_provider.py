"""The tool loop every streaming HTTP-API provider runs; a provider supplies its wire mapping."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import attrs
import trio

from asm.events import MessageReceived, TokenUsageUpdated, ToolCallFailed, TurnCompleted
from asm.model import Capabilities, RunInput, RunResult, TokenUsage
from asm.plugins import PluginRegistry, parse_options
from asm.ports import Emit
from asm.providers.http._options import HTTPOptions
from asm.providers.http._service import Service
from asm.providers.http._turn import ToolCall, Turn
from asm.sse import StreamingResponse, read_body
from asm.tools import (
    Tool,
    ToolOutcome,
    coerce_tools,
    execute_tool_call,
    override_options,
    registered_tools,
    run_options,
)

__all__ = ["Client", "HTTPProvider", "RunContext", "Wire", "sdk_request", "split_sdk_opts"]

OptionsT = TypeVar("OptionsT", bound=HTTPOptions)
OptionsT_co = TypeVar("OptionsT_co", bound=HTTPOptions, covariant=True)
OptionsT_contra = TypeVar("OptionsT_contra", bound=HTTPOptions, contravariant=True)


class Client(Protocol):
    """What the kit needs of a provider's client (an SDK's, or :class:`~asm.providers.http.HTTPClient`)."""

    async def close(self) -> None: ...


@attrs.frozen
class RunContext(Generic[OptionsT_co]):
    """One run as its wire mapping sees it: the run (its messages), its options
    (the provider's with the run's own), its tools by name, and ``extra``: the
    ``sdk_opts`` that go into each request."""

    run: RunInput
    options: OptionsT_co
    tools: Mapping[str, Tool]
    extra: Mapping[str, Any]


class Wire(Protocol[OptionsT_contra]):
    """A wire format: how a provider talks to one API (``HTTPProvider.wire``)."""

    @property
    def turn_class(self) -> type[Turn]:
        """The :class:`Turn` subclass one response is read into (a class attribute will do)."""
        ...

    def conversation(self, ctx: RunContext[OptionsT_contra]) -> list[Any]:
        """The run's transcript (``ctx.run.messages``) as the API's message list."""
        ...

    def request(self, ctx: RunContext[OptionsT_contra], conversation: list[Any]) -> dict[str, Any]:
        """One turn's request: model, ``conversation``, tools, ``ctx.extra``."""
        ...

    def open_stream(self, client: Any, request: dict[str, Any]) -> AbstractAsyncContextManager[StreamingResponse]:
        """Send ``request``; yield the streaming HTTP response."""
        ...

    def tool_results(self, results: Sequence[tuple[ToolCall, ToolOutcome]]) -> list[Any]:
        """What to add to the conversation for the tool calls' results."""
        ...


def split_sdk_opts(sdk_opts: Mapping[str, Any], client_keys: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``sdk_opts`` as ``(client options, request options)``: ``client_keys`` go
    to the client (``max_retries`` 0 unless given: asm's workflow retries), the
    rest into each request.

    >>> split_sdk_opts({"timeout": 5, "top_p": 0.9}, frozenset({"timeout"}))
    ({'timeout': 5, 'max_retries': 0}, {'top_p': 0.9})
    """
    client = {k: v for k, v in sdk_opts.items() if k in client_keys}
    client.setdefault("max_retries", 0)
    return client, {k: v for k, v in sdk_opts.items() if k not in client_keys}


def sdk_request(request: Mapping[str, Any], extra: Mapping[str, Any], params: frozenset[str]) -> dict[str, Any]:
    """``request`` with ``extra`` over it, as an SDK method's keywords: fields the
    method has no parameter for (``params``) go into ``extra_body``.

    >>> sdk_request({"model": "m"}, {"top_k": 3}, frozenset({"model", "extra_body"}))
    {'model': 'm', 'extra_body': {'top_k': 3}}
    """
    merged = {**request, **extra}
    known = {k: v for k, v in merged.items() if k in params}
    unknown = {k: v for k, v in merged.items() if k not in params}
    if unknown:
        known["extra_body"] = {**unknown, **(known.get("extra_body") or {})}
    return known


class HTTPProvider(Generic[OptionsT]):
    """A streaming HTTP-API provider with a tool loop: the kit's half.

    It checks options (config and per run), finds the API key, builds the
    client, then loops: send a request, read the streamed answer into a
    :class:`Turn`, emit ``message_received`` / ``token_usage_updated`` /
    ``turn_completed``, run the tools the model asked for (authorized and
    approved through :func:`asm.tools.execute_tool_call`) and send their
    results back, until the model stops or ``max_turns``. Errors go through
    :attr:`service` (``Service.mapped_errors``); on cancellation the client is
    closed at once.

    A subclass sets :attr:`name`, :attr:`service`, :attr:`options_class` (an
    :class:`HTTPOptions` subclass), and supplies :meth:`client` and the
    :class:`Wire` members (``turn_class``, ``conversation``, ``request``,
    ``open_stream``, ``tool_results``) — or :meth:`wire` choosing among several
    wire formats.
    """

    name: str
    service: ClassVar[Service]
    options_class: ClassVar[type[Any]]
    #: ``sdk_opts`` keys that configure the client (see :func:`split_sdk_opts`).
    client_keys: ClassVar[frozenset[str]] = frozenset({"timeout", "max_retries"})
    capabilities_value: ClassVar[Capabilities] = Capabilities(
        streaming=True, tools=True, thinking=True, authorizes_tools=True
    )

    def __init__(
        self,
        *,
        options: OptionsT | None = None,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        **overrides: Any,
    ) -> None:
        what = f"{self.name} provider"
        base: OptionsT = override_options(options or self.options_class(), overrides, what)
        base.check(f"{what} config", "invalid_config")
        self.options = base
        self.tools = coerce_tools(list(tools), where=f"{what} tools")
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_loaded = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, registry: PluginRegistry | None = None) -> Self:
        """The provider factory a plugin registers: the provider from its config
        table (``[providers.<name>]``); tool names in ``tools`` are tools
        registered by plugins (``asm_register_tools``), looked up in ``registry``
        (default: the installed plugins, as :func:`asm.load_plugins` finds them)."""
        options = parse_options(cls.options_class, config, f"{cls.name} provider")
        return cls(options=options, tools=registered_tools(options.tools, registry))

    def capabilities(self) -> Capabilities:
        """Streaming, tools and thinking (``capabilities_value``)."""
        return self.capabilities_value

    def model_for(self, run: RunInput) -> str | None:
        """The run's ``model`` option, else the configured ``model``."""
        model = run.options.get("model", self.options.model)
        return model if isinstance(model, str) and model else None

    # -- what a provider supplies ---------------------------------------------

    def client(self, options: OptionsT, api_key: str | None, client_opts: dict[str, Any], ssl_context: Any) -> Client:
        """The client one run uses (closed when the run ends)."""
        raise NotImplementedError

    def new_ssl_context(self) -> ssl.SSLContext | None:
        """The SSL context clients verify with (default ``None``: the client's own).
        Called once per provider, in a worker thread: loading a CA bundle takes tens of ms."""
        return None

    def wire(self, options: OptionsT) -> Wire[OptionsT]:
        """The wire format of a run with ``options`` (default: the provider itself)."""
        return self  # type: ignore[return-value]

    def needs_key(self, options: OptionsT) -> bool:
        """Whether a run without an API key is refused (default: yes)."""
        return True

    def api_key(self, options: OptionsT) -> str | None:
        """``api_key``, else the ``service.key_env`` variable; ``missing_api_key`` if neither and :meth:`needs_key`."""
        key = options.api_key or os.environ.get(self.service.key_env)
        if not key and self.needs_key(options):
            raise self.service.missing_key()
        return key

    # -- the loop -------------------------------------------------------------

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run the tool loop: stream a model turn, run the tools it asked for,
        send their results back, until the model stops or ``max_turns``."""
        options, tools = run_options(self.name, self.options, self.tools, run.options, self.options.RUN_KEYS)
        api_key = self.api_key(options)
        client_opts, request_opts = split_sdk_opts(options.sdk_opts, self.client_keys)
        wire = self.wire(options)
        ctx = RunContext(run, options, tools, request_opts)
        conversation = wire.conversation(ctx)
        if not self._ssl_loaded:
            self._ssl_context = await trio.to_thread.run_sync(self.new_ssl_context)
            self._ssl_loaded = True
        with self.service.mapped_errors():
            client = self.client(options, api_key, client_opts, self._ssl_context)
        try:
            return await self._loop(wire, client, ctx, conversation, emit)
        finally:
            # Close the connections now, even when cancelled: nothing may outlive the run.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await client.close()

    async def _loop(
        self, wire: Wire[OptionsT], client: Client, ctx: RunContext[OptionsT], conversation: list[Any], emit: Emit
    ) -> RunResult:
        usage = TokenUsage()
        options = ctx.options
        max_turns = options.max_turns
        for number in range(1, max_turns + 1):
            turn = wire.turn_class(self.service)
            request = wire.request(ctx, conversation)
            with self.service.mapped_errors():
                async with wire.open_stream(client, request) as response:
                    await read_body(response, functools.partial(turn.consume, emit=emit))
            usage = usage + turn.usage
            if turn.text:
                await emit(MessageReceived(turn.text))
            await emit(TokenUsageUpdated(turn.usage, turn.model))
            await emit(TurnCompleted(number))
            if turn.paused and number < max_turns:
                conversation.extend(turn.replay())
                continue
            if not turn.wants_tools:
                break
            if number == max_turns:
                for call in turn.tool_calls:
                    await emit(ToolCallFailed(call.id, call.name, f"not run: the run reached max_turns={max_turns}"))
                return self.result(turn, usage, stop_reason="max_turns", turns=number)
            conversation.extend(turn.replay())
            results = []
            for call in turn.tool_calls:
                if call.error is not None:
                    await emit(ToolCallFailed(call.id, call.name, call.error))
                    outcome = ToolOutcome(call.error, is_error=True)
                else:
                    outcome = await execute_tool_call(
                        ctx.tools, call.id, call.name, call.input, emit=emit, permission_mode=options.permission_mode
                    )
                results.append((call, outcome))
            conversation.extend(wire.tool_results(results))
        return self.result(turn, usage, stop_reason=turn.stop_reason, turns=number)

    def result(self, turn: Turn, usage: TokenUsage, *, stop_reason: str | None, turns: int) -> RunResult:
        """The run's result: the last turn's text and model, the usage of all turns."""
        return RunResult(
            output=turn.text,
            stop_reason=stop_reason,
            usage=usage,
            model=turn.model,
            metadata={"turns": turns, turn.id_key: turn.response_id},
            resume_id=turn.response_id if turn.resumable else None,
        )
