"""Provider ``claude``: the Anthropic Messages API, streamed, with a tool loop.

Built on asm's HTTP provider kit (:mod:`asm.providers.http`: options, the tool
loop, errors, cancellation) and the ``anthropic`` SDK (``AsyncAnthropic``),
which runs under trio through anyio and httpx2. The SDK builds and sends each
request and maps HTTP failures; the provider reads the raw Server-Sent Events
itself (cheaper than the SDK's typed stream) and normalizes them into asm's
catalog:

==========================================  ==========================================
wire                                        event
==========================================  ==========================================
``text_delta``                              ``message_streamed``
``thinking_delta``                          ``thinking_streamed``
a ``tool_use`` block, once complete         ``tool_call_started`` (parsed input)
the tool's result / error                   ``tool_call_completed`` / ``tool_call_failed``
``message_stop`` (the whole text)           ``message_received``
usage of ``message_start`` + ``message_delta``  ``token_usage_updated``, then ``turn_completed``
==========================================  ==========================================

Config (``[providers.claude]``) and per-run options (``options={...}``)::

    model = "claude-sonnet-4-6"   system_prompt = "..."   max_turns = 10
    max_tokens = 4096             temperature = 0.2       permission_mode = "default"
    api_key = "..."   (else ANTHROPIC_API_KEY)   base_url = "http://127.0.0.1:8765" (else ANTHROPIC_BASE_URL)
    tools = ["get_weather"]   (config: names registered with asm_register_tools; per run: asm.Tool values)
    sdk_opts = {max_retries = 2, timeout = 60, top_p = 0.9}   (client keys to the client, the rest to the request)

Input tokens in asm's usage include cache reads and writes (Anthropic reports
them apart; ``cache_read_tokens`` / ``cache_write_tokens`` say how many).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anthropic
import attrs
import httpx2

from asm import TokenUsage
from asm.continuity import exchanges, render_preamble, system_texts, tool_output_text, wire_tool_id
from asm.events import MessageStreamed, ThinkingStreamed, ToolCallStarted
from asm.ports import Emit
from asm.providers import http as kit
from asm.sse import SSEDecoder as SSEDecoder
from asm.sse import retry_after_seconds as retry_after_seconds
from asm.tools import ToolOutcome

__all__ = ["ClaudeOptions", "ClaudeProvider", "SSEDecoder", "create_messages_provider", "retry_after_seconds"]

PROVIDER: Final = "claude"
API_KEY_ENV: Final = "ANTHROPIC_API_KEY"
#: Options a run may set (``options={...}``).
RUN_KEYS: Final = kit.HTTPOptions.RUN_KEYS


@attrs.frozen
class ClaudeOptions(kit.HTTPOptions):
    """The ``claude`` provider's options (config table and per-run overrides)."""

    model: str = kit.option("claude-sonnet-4-6", nonempty=True)
    max_tokens: int = kit.option(4096, min=1)


def _read_error(status: int, body: Mapping[str, Any]) -> tuple[Any, Any, bool]:
    """An error body, ``{"type": "error", "error": {"type", "message"}}``; billing is a quota failure."""
    error = body["error"] if isinstance(body.get("error"), dict) else body
    return error.get("type"), error.get("message"), status == 402 or error.get("type") == "billing_error"


_FIXES: Final = {
    400: "fix the request (model, max_tokens, messages, tools or sdk_opts)",
    403: "the API key lacks permission for this model or feature; use another key or model",
    404: "check the model name and base_url",
}
#: The SDK; ``sdk_opts`` keys that configure its client (the others go into each request).
SDK: Final = kit.StainlessSDK(
    anthropic,
    anthropic.AsyncAnthropic,
    anthropic.AnthropicError,
    httpx2,
    client_keys=frozenset({"timeout", "max_retries", "default_headers", "default_query", "auth_token"}),
)
_RULES: Final = SDK.rules(request_id="request-id", read_error=_read_error)
SERVICE: Final = kit.Service(PROVIDER, "Anthropic", API_KEY_ENV, sdk="anthropic", fixes=_FIXES, rules=_RULES)


_SDK_PARAMS: Final = frozenset(inspect.signature(anthropic.resources.AsyncMessages.create).parameters) - {"self"}


# -- the stream --------------------------------------------------------------


@attrs.define
class _Block:
    kind: str
    parts: list[str] = attrs.field(factory=list)
    start: dict[str, Any] = attrs.field(factory=dict)
    signature: str = ""


#: Error events in a stream: (asm error code, retryable); any other kind is a provider_error.
_STREAM_ERRORS: Final = {
    "overloaded_error": ("provider_unavailable", True),
    "api_error": ("provider_unavailable", True),
    "rate_limit_error": ("provider_rate_limited", True),
    "timeout_error": ("provider_timeout", True),
}


class _Turn(kit.Turn):
    """One Messages API stream: content blocks, accumulated."""

    final_event = "message_stop"
    id_key = "message_id"

    def __init__(self, service: kit.Service) -> None:
        super().__init__(service)
        self.blocks: dict[int, _Block] = {}
        self.content: list[dict[str, Any]] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read = 0
        self.cache_write = 0

    @property
    def wants_tools(self) -> bool:
        return self.stop_reason == "tool_use" and bool(self.tool_calls)

    @property
    def paused(self) -> bool:
        # The API paused a long turn (server tools): send it back to go on.
        return self.stop_reason == "pause_turn"

    def replay(self) -> list[Any]:
        return [{"role": "assistant", "content": self.content}]

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        data = self.load(name, raw)
        kind = data["type"]
        if kind == "content_block_delta":
            delta = data["delta"]
            dtype = delta["type"]
            if dtype == "text_delta":
                text = delta["text"]
                self.blocks[data["index"]].parts.append(text)
                await emit(MessageStreamed(text))
            elif dtype == "thinking_delta":
                thought = delta["thinking"]
                self.blocks[data["index"]].parts.append(thought)
                await emit(ThinkingStreamed(thought))
            elif dtype == "input_json_delta":
                self.blocks[data["index"]].parts.append(delta["partial_json"])
            elif dtype == "signature_delta":
                self.blocks[data["index"]].signature += delta["signature"]
        elif kind == "message_stop":
            blocks = sorted(self.blocks.items())
            self.text = "".join("".join(block.parts) for _, block in blocks if block.kind == "text")
            return True
        elif kind == "content_block_start":
            block = data["content_block"]
            self.blocks[data["index"]] = _Block(block["type"], start=block)
        elif kind == "content_block_stop":
            await self._close_block(data["index"], emit)
        elif kind == "message_start":
            message = data["message"]
            self.model = message.get("model")
            self.response_id = message.get("id")
            self._usage(message.get("usage") or {})
        elif kind == "message_delta":
            self.stop_reason = data["delta"].get("stop_reason")
            self._usage(data.get("usage") or {})
        elif kind == "error":
            error = data.get("error") or {}
            kind = str(error.get("type") or "error")
            code, retryable = _STREAM_ERRORS.get(kind, ("provider_error", False))
            raise self.service.mid_stream(kind, str(error.get("message", "")), code=code, retryable=retryable)
        return False

    def _usage(self, usage: Mapping[str, Any]) -> None:
        self.input_tokens = int(usage.get("input_tokens") or self.input_tokens)
        self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
        self.cache_read = int(usage.get("cache_read_input_tokens") or self.cache_read)
        self.cache_write = int(usage.get("cache_creation_input_tokens") or self.cache_write)
        # Input includes cache reads and writes.
        total_input = self.input_tokens + self.cache_read + self.cache_write
        self.usage = TokenUsage(total_input, self.output_tokens, self.cache_read, self.cache_write)

    async def _close_block(self, index: int, emit: Emit) -> None:
        block = self.blocks[index]
        if block.kind == "text":
            self.content.append({"type": "text", "text": "".join(block.parts)})
        elif block.kind == "thinking":
            self.content.append({"type": "thinking", "thinking": "".join(block.parts), "signature": block.signature})
        elif block.kind == "tool_use":
            call_id, name = str(block.start["id"]), str(block.start["name"])
            parsed, error = kit.parse_tool_input(name, "".join(block.parts), block.start.get("input"))
            self.content.append({"type": "tool_use", "id": call_id, "name": name, "input": parsed})
            self.tool_calls.append(kit.ToolCall(call_id, name, parsed, error))
            await emit(ToolCallStarted(call_id, name, parsed))
        elif block.parts and "input" in block.start:
            # A server tool call (run by the API, e.g. web search): its input
            # streams like a tool_use block's; it is sent back complete.
            try:
                self.content.append({**block.start, "input": json.loads("".join(block.parts) or "{}")})
            except ValueError:
                raise self.service.malformed(f"the input of a {block.kind} block is not JSON") from None
        else:
            # redacted_thinking, server tool results, ...: sent back as they came.
            self.content.append(block.start)


class ClaudeProvider(kit.StainlessProvider[ClaudeOptions]):
    """The Anthropic Messages API as an asm provider (see the module docs).

    >>> provider = ClaudeProvider(model="claude-sonnet-4-6", tools=[get_weather])  # doctest: +SKIP
    """

    name = PROVIDER
    service = SERVICE
    options_class = ClaudeOptions
    stainless = SDK
    turn_class = _Turn

    def needs_key(self, options: ClaudeOptions) -> bool:
        """An ``auth_token`` (sdk_opts or ANTHROPIC_AUTH_TOKEN) stands in for the key."""
        return "auth_token" not in options.sdk_opts and not os.environ.get("ANTHROPIC_AUTH_TOKEN")

    def conversation(self, ctx: kit.RunContext[ClaudeOptions]) -> list[Any]:
        """The session's history (replayed) and the run's messages; system messages go to the
        request's ``system``. Without tools in the request the history's tool calls and
        results are told as text: the API refuses tool blocks in a request with no tools."""
        messages: list[dict[str, Any]] = []
        for exchange in exchanges(ctx.run.history):
            if exchange.kind == "assistant":
                blocks: list[dict[str, Any]] = [{"type": "text", "text": exchange.text}] if exchange.text else []
                for call in exchange.calls:
                    if ctx.tools:
                        blocks.append(
                            {
                                "type": "tool_use",
                                "id": wire_tool_id(call.tool_call_id),
                                "name": call.tool_name,
                                "input": call.tool_input,
                            }
                        )
                    else:
                        blocks.append({"type": "text", "text": render_preamble([call])})
                _add(messages, "assistant", blocks)
            elif exchange.kind == "tool_results":
                results: list[dict[str, Any]] = []
                for result in exchange.results:
                    if not ctx.tools:
                        results.append({"type": "text", "text": render_preamble([result])})
                        continue
                    block: dict[str, Any] = {
                        "type": "tool_result",
                        "tool_use_id": wire_tool_id(result.tool_call_id),
                        "content": tool_output_text(result),
                    }
                    results.append({**block, "is_error": True} if result.is_error else block)
                _add(messages, "user", results)
            elif exchange.kind == "user":
                _add(messages, "user", [{"type": "text", "text": exchange.text}])
        for m in ctx.run.messages:
            if m.role != "system":
                _add(messages, "assistant" if m.role == "assistant" else "user", [{"type": "text", "text": m.content}])
        # A message of one text block is sent as plain text, as most clients write it.
        return [
            {**m, "content": m["content"][0]["text"]} if [b["type"] for b in m["content"]] == ["text"] else m
            for m in messages
        ]

    def request(self, ctx: kit.RunContext[ClaudeOptions], conversation: list[Any]) -> dict[str, Any]:
        options = ctx.options
        system = system_texts(options.system_prompt, ctx.run)
        request: dict[str, Any] = {
            "model": options.model,
            "max_tokens": options.max_tokens,
            "messages": list(conversation),
            "stream": True,
        }
        if system:
            request["system"] = "\n\n".join(system)
        if options.temperature is not None:
            request["temperature"] = options.temperature
        if ctx.tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                for t in ctx.tools.values()
            ]
        return kit.sdk_request(request, ctx.extra, _SDK_PARAMS)

    def open_stream(self, client: anthropic.AsyncAnthropic, request: dict[str, Any]) -> Any:
        return kit.stainless_stream(client.messages.with_streaming_response.create, request)

    def tool_results(self, results: Sequence[tuple[kit.ToolCall, ToolOutcome]]) -> list[Any]:
        blocks = []
        for call, outcome in results:
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call.id, "content": outcome.content}
            if outcome.is_error:
                block["is_error"] = True
            blocks.append(block)
        return [{"role": "user", "content": blocks}]


#: The ``claude`` provider factory (``[providers.claude]``): see :meth:`HTTPProvider.from_config`.
create_messages_provider: Final = ClaudeProvider.from_config


def _add(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Append a message, or join it to the last one of the same role (the API would join
    them anyway); a message's tool results stay before its text, as the API requires."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        merged = [*messages[-1]["content"], *blocks]
        merged.sort(key=lambda block: block["type"] != "tool_result")
        messages[-1] = {"role": role, "content": merged}
    else:
        messages.append({"role": role, "content": blocks})
