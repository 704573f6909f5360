"""Provider ``claude``: the Anthropic Messages API, streamed, with a tool loop.

Built on the ``anthropic`` SDK (``AsyncAnthropic``), which runs under trio
through anyio and httpx2. The SDK builds and sends each request and maps HTTP
failures; the provider reads the raw Server-Sent Events itself (cheaper than
the SDK's typed stream) and normalizes them into asm's catalog:

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

import functools
import inspect
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import anthropic
import attrs
import httpx2
import trio

from asm import AsmError, Capabilities, RunInput, RunResult, TokenUsage, parse_options
from asm.events import (
    MessageReceived,
    MessageStreamed,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.plugins import PluginRegistry
from asm.ports import Emit
from asm.sse import SSEDecoder as SSEDecoder
from asm.sse import http_status_failure, loads_event, provider_failure, read_body
from asm.sse import retry_after_seconds as retry_after_seconds
from asm.tools import (
    PERMISSION_MODES,
    Tool,
    coerce_tools,
    execute_tool_call,
    override_options,
    registered_tools,
    run_options,
)

__all__ = ["ClaudeOptions", "ClaudeProvider", "SSEDecoder", "create_messages_provider", "retry_after_seconds"]

PROVIDER: Final = "claude"
API_KEY_ENV: Final = "ANTHROPIC_API_KEY"
#: ``sdk_opts`` keys that configure the client; the others go into each request.
CLIENT_KEYS: Final = frozenset({"timeout", "max_retries", "default_headers", "default_query", "auth_token"})
#: Options a run may set (``options={...}``).
RUN_KEYS: Final = frozenset(
    {"model", "system_prompt", "max_turns", "max_tokens", "temperature", "permission_mode", "tools", "sdk_opts"}
)


@attrs.frozen
class ClaudeOptions:
    """The ``claude`` provider's options (config table and per-run overrides)."""

    model: str = "claude-sonnet-4-6"
    system_prompt: str | None = None
    max_turns: int = 10
    max_tokens: int = 4096
    temperature: float | None = None
    permission_mode: str = "default"
    api_key: str | None = None
    base_url: str | None = None
    tools: list[str] = attrs.field(factory=list)
    sdk_opts: dict[str, Any] = attrs.field(factory=dict)

    def check(self, where: str, code: str) -> None:
        """Raise ``code`` naming the bad value, if any option is out of range."""
        problem = None
        if self.max_turns < 1:
            problem = f"max_turns must be >= 1, not {self.max_turns}"
        elif self.max_tokens < 1:
            problem = f"max_tokens must be >= 1, not {self.max_tokens}"
        elif self.permission_mode not in PERMISSION_MODES:
            problem = f"permission_mode must be one of {', '.join(PERMISSION_MODES)}, not {self.permission_mode!r}"
        elif self.temperature is not None and not 0.0 <= self.temperature <= 1.0:
            problem = f"temperature must be between 0 and 1, not {self.temperature}"
        elif not self.model:
            problem = "model must not be empty"
        if problem is not None:
            raise AsmError(code, f"invalid {where}: {problem}")


def create_messages_provider(config: dict[str, Any], *, registry: PluginRegistry | None = None) -> ClaudeProvider:
    """The ``claude`` provider factory: ``config`` is the ``[providers.claude]`` table.

    Tool names in ``tools`` are tools registered by plugins
    (``asm_register_tools``), looked up in ``registry`` (default: the
    installed plugins, as :func:`asm.load_plugins` finds them).
    """
    options = parse_options(ClaudeOptions, config, "claude provider")
    return ClaudeProvider(options=options, tools=registered_tools(options.tools, registry))


class ClaudeProvider:
    """The Anthropic Messages API as an asm provider (see the module docs).

    >>> provider = ClaudeProvider(model="claude-sonnet-4-6", tools=[get_weather])  # doctest: +SKIP
    """

    name = PROVIDER

    def __init__(
        self,
        *,
        options: ClaudeOptions | None = None,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        **overrides: Any,
    ) -> None:
        base = override_options(options or ClaudeOptions(), overrides, "claude provider")
        base.check("claude provider config", "invalid_config")
        self.options = base
        self._ssl_context: ssl.SSLContext | None = None
        self.tools = coerce_tools(list(tools), where="claude provider tools")

    def capabilities(self) -> Capabilities:
        """Streaming, tools and thinking."""
        return _CAPABILITIES

    def model_for(self, run: RunInput) -> str | None:
        """The run's ``model`` option, else the configured ``model`` ([providers.claude])."""
        model = run.options.get("model", self.options.model)
        return model if isinstance(model, str) and model else None

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run the tool loop: stream a model turn, run the tools it asked for,
        send their results back, until the model stops or ``max_turns``."""
        options, tools = run_options(PROVIDER, self.options, self.tools, run.options, RUN_KEYS)
        api_key = options.api_key or os.environ.get(API_KEY_ENV)
        if not api_key and "auth_token" not in options.sdk_opts and not os.environ.get("ANTHROPIC_AUTH_TOKEN"):
            raise _error(
                "provider_authentication_failed",
                "missing_api_key",
                f"no Anthropic API key: set the {API_KEY_ENV} environment variable "
                "or api_key in [providers.claude] of asm.toml",
            )
        client_opts = {k: v for k, v in options.sdk_opts.items() if k in CLIENT_KEYS}
        request_opts = {k: v for k, v in options.sdk_opts.items() if k not in CLIENT_KEYS}
        client_opts.setdefault("max_retries", 0)
        system, messages = _wire_messages(run, options.system_prompt)
        request: dict[str, Any] = {"model": options.model, "max_tokens": options.max_tokens, "messages": messages}
        if system:
            request["system"] = system
        if options.temperature is not None:
            request["temperature"] = options.temperature
        if tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools.values()
            ]
        request.update(request_opts)
        request = _sdk_request(request)
        usage = TokenUsage()
        turn = _Turn()
        if self._ssl_context is None:
            # Loading the CA bundle takes tens of ms: once per provider, off the event loop.
            self._ssl_context = await trio.to_thread.run_sync(httpx2.create_ssl_context)
        http_client = anthropic.DefaultAsyncHttpxClient(verify=self._ssl_context)
        client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=options.base_url or None, http_client=http_client, **client_opts
        )
        try:
            for number in range(1, options.max_turns + 1):
                turn = _Turn()
                with _mapped_errors():
                    async with client.messages.with_streaming_response.create(**request, stream=True) as response:
                        await read_body(response.http_response, functools.partial(turn.consume, emit=emit))
                usage = usage + turn.usage
                if turn.text:
                    await emit(MessageReceived(turn.text))
                await emit(TokenUsageUpdated(turn.usage, turn.model))
                await emit(TurnCompleted(number))
                if turn.stop_reason == "pause_turn" and number < options.max_turns:
                    # The API paused a long turn (server tools): send it back to go on.
                    messages.append({"role": "assistant", "content": turn.content})
                    continue
                if turn.stop_reason != "tool_use" or not turn.tool_calls:
                    break
                if number == options.max_turns:
                    for call in turn.tool_calls:
                        message = f"not run: the run reached max_turns={options.max_turns}"
                        await emit(ToolCallFailed(call.id, call.name, message))
                    return _result(turn, usage, stop_reason="max_turns", turns=number)
                messages.append({"role": "assistant", "content": turn.content})
                results = []
                for call in turn.tool_calls:
                    if call.error is not None:
                        await emit(ToolCallFailed(call.id, call.name, call.error))
                        content, is_error = call.error, True
                    else:
                        outcome = await execute_tool_call(
                            tools, call.id, call.name, call.input, emit=emit, permission_mode=options.permission_mode
                        )
                        content, is_error = outcome.content, outcome.is_error
                    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call.id, "content": content}
                    if is_error:
                        block["is_error"] = True
                    results.append(block)
                messages.append({"role": "user", "content": results})
            return _result(turn, usage, stop_reason=turn.stop_reason, turns=number)
        finally:
            # Close the connections now, even when cancelled: nothing may outlive the run.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await client.close()


_CAPABILITIES: Final = Capabilities(streaming=True, tools=True, thinking=True, authorizes_tools=True)


def _sdk_request(request: dict[str, Any]) -> dict[str, Any]:
    """The request as ``messages.create`` keywords: fields this SDK version has
    no parameter for (e.g. ``temperature``) go into ``extra_body``."""
    known = {k: v for k, v in request.items() if k in _SDK_PARAMS}
    extra = {k: v for k, v in request.items() if k not in _SDK_PARAMS}
    if extra:
        known["extra_body"] = {**extra, **(known.get("extra_body") or {})}
    return known


_SDK_PARAMS: Final = frozenset(inspect.signature(anthropic.resources.AsyncMessages.create).parameters) - {"self"}


def _result(turn: _Turn, usage: TokenUsage, *, stop_reason: str | None, turns: int) -> RunResult:
    return RunResult(
        output=turn.text,
        stop_reason=stop_reason,
        usage=usage,
        model=turn.model,
        metadata={"turns": turns, "message_id": turn.message_id},
    )


def _wire_messages(run: RunInput, system_prompt: str | None) -> tuple[str, list[dict[str, Any]]]:
    system = [system_prompt] if system_prompt else []
    messages: list[dict[str, Any]] = []
    for message in run.messages:
        if message.role == "system":
            system.append(message.content)
        else:
            role = "assistant" if message.role == "assistant" else "user"
            messages.append({"role": role, "content": message.content})
    return "\n\n".join(system), messages


# -- the stream --------------------------------------------------------------


@attrs.define
class _ToolCall:
    id: str
    name: str
    input: dict[str, Any]
    error: str | None = None


@attrs.define
class _Block:
    kind: str
    parts: list[str] = attrs.field(factory=list)
    start: dict[str, Any] = attrs.field(factory=dict)
    signature: str = ""


class _Turn:
    """One model call's stream, accumulated."""

    def __init__(self) -> None:
        self.blocks: dict[int, _Block] = {}
        self.content: list[dict[str, Any]] = []
        self.tool_calls: list[_ToolCall] = []
        self.text = ""
        self.model: str | None = None
        self.message_id: str | None = None
        self.stop_reason: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read = 0
        self.cache_write = 0

    @property
    def usage(self) -> TokenUsage:
        """This turn's usage (input includes cache reads and writes)."""
        return TokenUsage(
            self.input_tokens + self.cache_read + self.cache_write,
            self.output_tokens,
            self.cache_read,
            self.cache_write,
        )

    async def consume(self, chunks: AsyncIterator[bytes], emit: Emit) -> None:
        """Read Server-Sent Events up to ``message_stop``, emitting as they come."""
        decoder = SSEDecoder()
        async for chunk in chunks:
            for name, raw in decoder.feed(chunk):
                if await self._event(name, raw, emit):
                    return
        raise _error(
            "provider_unavailable",
            "stream_interrupted",
            "the Anthropic stream ended before its final event (message_stop); retry the run",
            retryable=True,
        )

    async def _event(self, name: str, raw: str, emit: Emit) -> bool:
        """Handle one event; ``True`` at the final one."""
        try:
            data = loads_event(raw)
            kind = data["type"]
        except (ValueError, TypeError, KeyError):
            raise _malformed(f"event {name or '(unnamed)'} has invalid data {raw[:200]!r}") from None
        try:
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
                self._finish()
                return True
            elif kind == "content_block_start":
                block = data["content_block"]
                self.blocks[data["index"]] = _Block(block["type"], start=block)
            elif kind == "content_block_stop":
                await self._close_block(data["index"], emit)
            elif kind == "message_start":
                message = data["message"]
                self.model = message.get("model")
                self.message_id = message.get("id")
                self._usage(message.get("usage") or {})
            elif kind == "message_delta":
                self.stop_reason = data["delta"].get("stop_reason")
                self._usage(data.get("usage") or {})
            elif kind == "error":
                raise _stream_error(data.get("error") or {})
        except (KeyError, TypeError, AttributeError) as exc:
            raise _malformed(f"event {kind!r} lacks {exc} or has the wrong shape") from None
        return False

    def _usage(self, usage: Mapping[str, Any]) -> None:
        self.input_tokens = int(usage.get("input_tokens") or self.input_tokens)
        self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
        self.cache_read = int(usage.get("cache_read_input_tokens") or self.cache_read)
        self.cache_write = int(usage.get("cache_creation_input_tokens") or self.cache_write)

    async def _close_block(self, index: int, emit: Emit) -> None:
        block = self.blocks[index]
        if block.kind == "text":
            self.content.append({"type": "text", "text": "".join(block.parts)})
        elif block.kind == "thinking":
            self.content.append({"type": "thinking", "thinking": "".join(block.parts), "signature": block.signature})
        elif block.kind == "tool_use":
            call_id, name = str(block.start["id"]), str(block.start["name"])
            raw = "".join(block.parts)
            error = None
            try:
                parsed = json.loads(raw) if raw.strip() else dict(block.start.get("input") or {})
            except ValueError:
                parsed, error = {}, f"the model sent invalid JSON as the input of {name!r}: {raw[:200]!r}"
            if not isinstance(parsed, dict):
                parsed, error = {}, f"the model sent a non-object input for {name!r}: {raw[:200]!r}"
            self.content.append({"type": "tool_use", "id": call_id, "name": name, "input": parsed})
            self.tool_calls.append(_ToolCall(call_id, name, parsed, error))
            await emit(ToolCallStarted(call_id, name, parsed))
        elif block.parts and "input" in block.start:
            # A server tool call (run by the API, e.g. web search): its input
            # streams like a tool_use block's; it is sent back complete.
            try:
                self.content.append({**block.start, "input": json.loads("".join(block.parts) or "{}")})
            except ValueError:
                raise _malformed(f"the input of a {block.kind} block is not JSON") from None
        else:
            # redacted_thinking, server tool results, ...: sent back as they came.
            self.content.append(block.start)

    def _finish(self) -> None:
        self.text = "".join("".join(block.parts) for _, block in sorted(self.blocks.items()) if block.kind == "text")


# -- errors ------------------------------------------------------------------


def _error(code: str, kind: str, message: str, *, retryable: bool | None = None, **details: Any) -> AsmError:
    return provider_failure(PROVIDER, code, kind, message, retryable=retryable, **details)


def _malformed(what: str) -> AsmError:
    return _error("provider_error", "malformed_stream", f"the Anthropic stream is malformed: {what}")


_STREAM_ERRORS: Final = {
    "overloaded_error": ("provider_unavailable", True),
    "api_error": ("provider_unavailable", True),
    "rate_limit_error": ("provider_rate_limited", True),
    "timeout_error": ("provider_timeout", True),
}


def _stream_error(error: Mapping[str, Any]) -> AsmError:
    kind = str(error.get("type") or "error")
    code, retryable = _STREAM_ERRORS.get(kind, ("provider_error", False))
    message = f"the Anthropic API failed mid-stream ({kind}): {error.get('message', '')}"
    return _error(code, kind, message, retryable=retryable)


_FIXES: Final = {
    400: "fix the request (model, max_tokens, messages, tools or sdk_opts)",
    401: f"set a valid key in the {API_KEY_ENV} environment variable or api_key in [providers.claude]",
    403: "the API key lacks permission for this model or feature; use another key or model",
    404: "check the model name and base_url",
    413: "the request is too large; send less input",
}


def _status_error(exc: anthropic.APIStatusError) -> AsmError:
    body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
    kind = str(error.get("type") or f"http_{exc.status_code}")
    headers = exc.response.headers
    return http_status_failure(
        PROVIDER,
        "the Anthropic API",
        exc.status_code,
        kind,
        str(error.get("message") or exc.message),
        headers,
        request_id=headers.get("request-id"),
        fixes=_FIXES,
        quota=exc.status_code == 402 or kind == "billing_error",
    )


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """SDK and HTTP errors as :class:`AsmError` (they never leave the plugin)."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        raise _status_error(exc) from None
    except (anthropic.APITimeoutError, httpx2.TimeoutException) as exc:
        raise _error("provider_timeout", "timeout", f"the Anthropic API timed out ({exc}); retry the run") from None
    except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, httpx2.UnsupportedProtocol | httpx2.InvalidURL):
            raise _error(
                "provider_error",
                "invalid_base_url",
                f"the Anthropic base URL is invalid ({cause}); fix base_url in [providers.claude]",
                retryable=False,
            ) from None
        raise _error(
            "provider_unavailable",
            "connection_error",
            f"lost the connection to the Anthropic API ({type(cause).__name__}: {cause}); retry the run",
        ) from None
    except anthropic.AnthropicError as exc:
        raise _error("provider_error", "sdk_error", f"the anthropic SDK failed: {exc}") from None
