"""Provider ``openai``: the Responses API (default) or Chat Completions (``api = "chat"``), with a tool loop.

Built on the ``openai`` SDK (``AsyncOpenAI``), which runs under trio through
anyio and httpx2. The SDK builds and sends each request and maps HTTP failures;
the provider reads the raw Server-Sent Events itself and normalizes them:

=================================================  ======================================
wire (Responses / Chat Completions)                event
=================================================  ======================================
``response.output_text.delta`` / ``delta.content``   ``message_streamed``
reasoning summary / text, ``delta.reasoning_content``  ``thinking_streamed``
a complete ``function_call`` / ``tool_calls`` entry  ``tool_call_started`` (parsed input)
the tool's result / error                          ``tool_call_completed`` / ``tool_call_failed``
the whole text of the turn                         ``message_received``
``response.completed`` usage / the usage chunk     ``token_usage_updated``, then ``turn_completed``
=================================================  ======================================

Stop reasons use one vocabulary for both APIs: ``end_turn``, ``tool_use``,
``max_tokens``, ``content_filter`` (and ``max_turns`` when the loop stops).

Config (``[providers.openai]``) and per-run options (``options={...}``)::

    api = "responses" | "chat"    model = "gpt-5.1"      system_prompt = "..."
    max_turns = 10                max_tokens = 4096      temperature = 0.2
    permission_mode = "default"   api_key = "..." (else OPENAI_API_KEY)
    base_url = "http://127.0.0.1:8000/v1"   (else OPENAI_BASE_URL; any OpenAI-compatible server with api = "chat")
    tools = ["get_weather"]       sdk_opts = {max_retries = 2, timeout = 60, top_p = 0.9}
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

import attrs
import httpx2
import openai
import trio
from openai.resources.chat.completions import AsyncCompletions
from openai.resources.responses import AsyncResponses

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

__all__ = ["OpenAIOptions", "OpenAIProvider", "SSEDecoder", "create_provider", "retry_after_seconds"]

PROVIDER: Final = "openai"
API_KEY_ENV: Final = "OPENAI_API_KEY"
APIS: Final = ("responses", "chat")
#: ``sdk_opts`` keys that configure the client; the others go into each request.
CLIENT_KEYS: Final = frozenset(
    {"timeout", "max_retries", "default_headers", "default_query", "organization", "project"}
)
#: Options a run may set (``options={...}``).
RUN_KEYS: Final = frozenset(
    {"model", "system_prompt", "max_turns", "max_tokens", "temperature", "permission_mode", "tools", "sdk_opts"}
)


@attrs.frozen
class OpenAIOptions:
    """The ``openai`` provider's options (config table and per-run overrides)."""

    api: str = "responses"
    model: str = "gpt-5.1"
    system_prompt: str | None = None
    max_turns: int = 10
    max_tokens: int | None = None
    temperature: float | None = None
    permission_mode: str = "default"
    api_key: str | None = None
    base_url: str | None = None
    tools: list[str] = attrs.field(factory=list)
    sdk_opts: dict[str, Any] = attrs.field(factory=dict)

    def check(self, where: str, code: str) -> None:
        """Raise ``code`` naming the bad value, if any option is out of range."""
        problem = None
        if self.api not in APIS:
            problem = f"api must be 'responses' or 'chat', not {self.api!r}"
        elif self.max_turns < 1:
            problem = f"max_turns must be >= 1, not {self.max_turns}"
        elif self.max_tokens is not None and self.max_tokens < 1:
            problem = f"max_tokens must be >= 1, not {self.max_tokens}"
        elif self.permission_mode not in PERMISSION_MODES:
            problem = f"permission_mode must be one of {', '.join(PERMISSION_MODES)}, not {self.permission_mode!r}"
        elif self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            problem = f"temperature must be between 0 and 2, not {self.temperature}"
        elif not self.model:
            problem = "model must not be empty"
        if problem is not None:
            raise AsmError(code, f"invalid {where}: {problem}")


def create_provider(config: dict[str, Any], *, registry: PluginRegistry | None = None) -> OpenAIProvider:
    """The ``openai`` provider factory: ``config`` is the ``[providers.openai]`` table.

    Tool names in ``tools`` are tools registered by plugins
    (``asm_register_tools``), looked up in ``registry`` (default: the
    installed plugins, as :func:`asm.load_plugins` finds them).
    """
    options = parse_options(OpenAIOptions, config, "openai provider")
    return OpenAIProvider(options=options, tools=registered_tools(options.tools, registry))


class OpenAIProvider:
    """The OpenAI API as an asm provider (see the module docs).

    >>> provider = OpenAIProvider(api="chat", base_url="http://127.0.0.1:8000/v1", model="llama")  # doctest: +SKIP
    """

    name = PROVIDER

    def __init__(
        self,
        *,
        options: OpenAIOptions | None = None,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        **overrides: Any,
    ) -> None:
        base = override_options(options or OpenAIOptions(), overrides, "openai provider")
        base.check("openai provider config", "invalid_config")
        self.options = base
        self._ssl_context: ssl.SSLContext | None = None
        self.tools = coerce_tools(list(tools), where="openai provider tools")

    def capabilities(self) -> Capabilities:
        """Streaming, tools and reasoning."""
        return _CAPABILITIES

    def model_for(self, run: RunInput) -> str | None:
        """The run's ``model`` option, else the configured ``model`` ([providers.openai])."""
        model = run.options.get("model", self.options.model)
        return model if isinstance(model, str) and model else None

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run the tool loop: stream a model turn, run the tools it asked for,
        send their results back, until the model stops or ``max_turns``."""
        options, tools = run_options(PROVIDER, self.options, self.tools, run.options, RUN_KEYS)
        api_key = options.api_key or os.environ.get(API_KEY_ENV)
        if not api_key:
            raise _error(
                "provider_authentication_failed",
                "missing_api_key",
                f"no OpenAI API key: set the {API_KEY_ENV} environment variable "
                "or api_key in [providers.openai] of asm.toml (any value for a local server that needs none)",
            )
        client_opts = {k: v for k, v in options.sdk_opts.items() if k in CLIENT_KEYS}
        request_opts = {k: v for k, v in options.sdk_opts.items() if k not in CLIENT_KEYS}
        client_opts.setdefault("max_retries", 0)
        chat = options.api == "chat"
        conversation = _chat_messages(run, options) if chat else _responses_input(run)
        usage = TokenUsage()
        turn: _Turn = _ChatTurn() if chat else _ResponsesTurn()
        if self._ssl_context is None:
            # Loading the CA bundle takes tens of ms: once per provider, off the event loop.
            self._ssl_context = await trio.to_thread.run_sync(httpx2.create_ssl_context)
        http_client = openai.DefaultAsyncHttpxClient(verify=self._ssl_context)
        client = openai.AsyncOpenAI(
            api_key=api_key, base_url=options.base_url or None, http_client=http_client, **client_opts
        )
        try:
            for number in range(1, options.max_turns + 1):
                turn = _ChatTurn() if chat else _ResponsesTurn()
                request = _request(options, tools, conversation, request_opts)
                create = (
                    client.chat.completions.with_streaming_response.create
                    if chat
                    else client.responses.with_streaming_response.create
                )
                with _mapped_errors():
                    async with create(**request) as response:
                        await read_body(response.http_response, functools.partial(turn.consume, emit=emit))
                usage = usage + turn.usage
                if turn.text:
                    await emit(MessageReceived(turn.text))
                await emit(TokenUsageUpdated(turn.usage, turn.model))
                await emit(TurnCompleted(number))
                if not turn.tool_calls:
                    break
                if number == options.max_turns:
                    for call in turn.tool_calls:
                        message = f"not run: the run reached max_turns={options.max_turns}"
                        await emit(ToolCallFailed(call.id, call.name, message))
                    return _result(turn, usage, stop_reason="max_turns", turns=number)
                conversation.extend(turn.replay())
                for call in turn.tool_calls:
                    if call.error is not None:
                        await emit(ToolCallFailed(call.id, call.name, call.error))
                        content = call.error
                    else:
                        outcome = await execute_tool_call(
                            tools, call.id, call.name, call.input, emit=emit, permission_mode=options.permission_mode
                        )
                        content = outcome.content if not outcome.is_error else f"error: {outcome.content}"
                    if chat:
                        conversation.append({"role": "tool", "tool_call_id": call.id, "content": content})
                    else:
                        conversation.append({"type": "function_call_output", "call_id": call.id, "output": content})
            return _result(turn, usage, stop_reason=turn.stop_reason, turns=number)
        finally:
            # Close the connections now, even when cancelled: nothing may outlive the run.
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await client.close()


_CAPABILITIES: Final = Capabilities(streaming=True, tools=True, thinking=True, authorizes_tools=True)


def _request(
    options: OpenAIOptions, tools: Mapping[str, Tool], conversation: list[dict[str, Any]], extra: dict[str, Any]
) -> dict[str, Any]:
    if options.api == "chat":
        request: dict[str, Any] = {
            "model": options.model,
            "messages": list(conversation),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if options.max_tokens is not None:
            request["max_completion_tokens"] = options.max_tokens
        if tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in tools.values()
            ]
        params = _CHAT_PARAMS
    else:
        request = {"model": options.model, "input": list(conversation), "stream": True}
        if options.system_prompt:
            request["instructions"] = options.system_prompt
        if options.max_tokens is not None:
            request["max_output_tokens"] = options.max_tokens
        if tools:
            request["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                    "strict": False,
                }
                for t in tools.values()
            ]
        params = _RESPONSES_PARAMS
    if options.temperature is not None:
        request["temperature"] = options.temperature
    request.update(extra)
    # Fields this SDK version has no parameter for go into extra_body.
    known = {k: v for k, v in request.items() if k in params}
    unknown = {k: v for k, v in request.items() if k not in params}
    if unknown:
        known["extra_body"] = {**unknown, **(known.get("extra_body") or {})}
    return known


_RESPONSES_PARAMS: Final = frozenset(inspect.signature(AsyncResponses.create).parameters)
_CHAT_PARAMS: Final = frozenset(inspect.signature(AsyncCompletions.create).parameters)


def _result(turn: _Turn, usage: TokenUsage, *, stop_reason: str | None, turns: int) -> RunResult:
    return RunResult(
        output=turn.text,
        stop_reason=stop_reason,
        usage=usage,
        model=turn.model,
        metadata={"turns": turns, "response_id": turn.response_id},
    )


def _chat_messages(run: RunInput, options: OpenAIOptions) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if options.system_prompt:
        messages.append({"role": "system", "content": options.system_prompt})
    for message in run.messages:
        role = message.role if message.role in ("system", "assistant") else "user"
        messages.append({"role": role, "content": message.content})
    return messages


def _responses_input(run: RunInput) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in run.messages:
        role = {"system": "developer", "assistant": "assistant"}.get(message.role, "user")
        items.append({"role": role, "content": message.content})
    return items


# -- the streams -------------------------------------------------------------


@attrs.define
class _ToolCall:
    id: str
    name: str
    input: dict[str, Any]
    error: str | None = None


def _parse_arguments(name: str, raw: str) -> tuple[dict[str, Any], str | None]:
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}, f"the model sent invalid JSON as the input of {name!r}: {raw[:200]!r}"
    if not isinstance(parsed, dict):
        return {}, f"the model sent a non-object input for {name!r}: {raw[:200]!r}"
    return parsed, None


class _Turn:
    """One model call's stream, accumulated (the API-specific parts in subclasses)."""

    final_event = ""

    def __init__(self) -> None:
        self.tool_calls: list[_ToolCall] = []
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
                    raise _malformed(f"event {name or raw[:80]!r} lacks {exc} or has the wrong shape") from None
        raise _error(
            "provider_unavailable",
            "stream_interrupted",
            f"the OpenAI stream ended before its final event ({self.final_event}); retry the run",
            retryable=True,
        )

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        """Handle one event; ``True`` at the final one."""
        raise NotImplementedError

    def replay(self) -> list[dict[str, Any]]:
        """What to add to the conversation before the tool results."""
        raise NotImplementedError


def _load(name: str, raw: str) -> dict[str, Any]:
    try:
        data = loads_event(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise _malformed(f"event {name or '(unnamed)'} has invalid data {raw[:200]!r}")
    return data


_INCOMPLETE: Final = {"max_output_tokens": "max_tokens", "content_filter": "content_filter"}


class _ResponsesTurn(_Turn):
    final_event = "response.completed"

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.arguments: dict[str, list[str]] = {}
        self.output: list[dict[str, Any]] = []

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        data = _load(name, raw)
        kind = data.get("type")
        if kind == "response.output_text.delta":
            delta = data["delta"]
            self.parts.append(delta)
            await emit(MessageStreamed(delta))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            await emit(ThinkingStreamed(data["delta"]))
        elif kind == "response.function_call_arguments.delta":
            self.arguments.setdefault(data["item_id"], []).append(data["delta"])
        elif kind == "response.output_item.done":
            item = data["item"]
            self.output.append(item)
            if item["type"] == "function_call":
                name_, call_id = str(item["name"]), str(item["call_id"])
                raw_args = item.get("arguments") or "".join(self.arguments.get(item.get("id", ""), []))
                parsed, error = _parse_arguments(name_, raw_args)
                self.tool_calls.append(_ToolCall(call_id, name_, parsed, error))
                await emit(ToolCallStarted(call_id, name_, parsed))
        elif kind in ("response.created", "response.in_progress"):
            response = data["response"]
            self.model, self.response_id = response.get("model"), response.get("id")
        elif kind in ("response.completed", "response.incomplete"):
            response = data["response"]
            self.model = response.get("model") or self.model
            self._usage(response.get("usage") or {})
            self.text = "".join(self.parts)
            if kind == "response.incomplete":
                reason = str((response.get("incomplete_details") or {}).get("reason") or "incomplete")
                self.stop_reason = _INCOMPLETE.get(reason, reason)
            else:
                self.stop_reason = "tool_use" if self.tool_calls else "end_turn"
            return True
        elif kind == "response.failed":
            failure: dict[str, Any] = data["response"].get("error") or {}
            raise _api_error(str(failure.get("code") or "response_failed"), str(failure.get("message", "")))
        elif kind == "error":
            raise _api_error(str(data.get("code") or "error"), str(data.get("message", "")))
        return False

    def _usage(self, usage: Mapping[str, Any]) -> None:
        cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
        self.usage = TokenUsage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0), cached)

    def replay(self) -> list[dict[str, Any]]:
        return list(self.output)


_FINISH: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}


class _ChatTurn(_Turn):
    final_event = "data: [DONE]"

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        if raw == "[DONE]":
            await self._finish(emit)
            return True
        data = _load(name, raw)
        if "error" in data and "choices" not in data:
            error = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
            raise _api_error(str(error.get("code") or error.get("type") or "error"), str(error.get("message", "")))
        self.model = data.get("model") or self.model
        self.response_id = data.get("id") or self.response_id
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self.parts.append(text)
                await emit(MessageStreamed(text))
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought:
                await emit(ThinkingStreamed(thought))
            for fragment in delta.get("tool_calls") or ():
                call = self.calls.setdefault(int(fragment.get("index") or 0), {"id": "", "name": "", "arguments": []})
                call["id"] = fragment.get("id") or call["id"]
                function = fragment.get("function") or {}
                call["name"] = function.get("name") or call["name"]
                call["arguments"].append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                reason = choice["finish_reason"]
                self.stop_reason = _FINISH.get(reason, reason)
        usage = data.get("usage")
        if usage:
            cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
            self.usage = TokenUsage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), cached
            )
        return False

    async def _finish(self, emit: Emit) -> None:
        self.text = "".join(self.parts)
        for _, call in sorted(self.calls.items()):
            name = str(call["name"])
            parsed, error = _parse_arguments(name, "".join(call["arguments"]))
            self.tool_calls.append(_ToolCall(str(call["id"]), name, parsed, error))
            await emit(ToolCallStarted(str(call["id"]), name, parsed))

    def replay(self) -> list[dict[str, Any]]:
        calls = [
            {
                "id": str(call["id"]),
                "type": "function",
                "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
            }
            for _, call in sorted(self.calls.items())
        ]
        return [{"role": "assistant", "content": self.text or None, "tool_calls": calls}]


# -- errors ------------------------------------------------------------------


def _error(code: str, kind: str, message: str, *, retryable: bool | None = None, **details: Any) -> AsmError:
    return provider_failure(PROVIDER, code, kind, message, retryable=retryable, **details)


def _malformed(what: str) -> AsmError:
    return _error("provider_error", "malformed_stream", f"the OpenAI stream is malformed: {what}")


def _api_error(kind: str, detail: str) -> AsmError:
    if "rate_limit" in kind:
        code, retryable = "provider_rate_limited", True
    elif kind in ("server_error", "overloaded", "service_unavailable") or "timeout" in kind:
        code, retryable = "provider_unavailable", True
    elif "quota" in kind:
        code, retryable = "provider_quota_exceeded", False
    else:
        code, retryable = "provider_error", False
    return _error(code, kind, f"the OpenAI API failed mid-stream ({kind}): {detail}", retryable=retryable)


_FIXES: Final = {
    400: "fix the request (model, max_tokens, input, tools or sdk_opts)",
    401: f"set a valid key in the {API_KEY_ENV} environment variable or api_key in [providers.openai]",
    403: "the API key lacks access to this model or region; use another key or model",
    404: "check the model name, api ('responses' or 'chat') and base_url (it usually ends in /v1)",
    413: "the request is too large; send less input",
}


def _status_error(exc: openai.APIStatusError) -> AsmError:
    error: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
    kind = str(error.get("code") or error.get("type") or f"http_{exc.status_code}")
    headers = exc.response.headers
    return http_status_failure(
        PROVIDER,
        "the OpenAI API",
        exc.status_code,
        kind,
        str(error.get("message") or exc.message),
        headers,
        request_id=headers.get("x-request-id"),
        fixes=_FIXES,
        quota=exc.status_code == 429 and "quota" in kind,
    )


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """SDK and HTTP errors as :class:`AsmError` (they never leave the plugin)."""
    try:
        yield
    except openai.APIStatusError as exc:
        raise _status_error(exc) from None
    except (openai.APITimeoutError, httpx2.TimeoutException) as exc:
        raise _error("provider_timeout", "timeout", f"the OpenAI API timed out ({exc}); retry the run") from None
    except (openai.APIConnectionError, httpx2.TransportError) as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, httpx2.UnsupportedProtocol | httpx2.InvalidURL):
            raise _error(
                "provider_error",
                "invalid_base_url",
                f"the OpenAI base URL is invalid ({cause}); fix base_url in [providers.openai]",
                retryable=False,
            ) from None
        raise _error(
            "provider_unavailable",
            "connection_error",
            f"lost the connection to the OpenAI API ({type(cause).__name__}: {cause}); retry the run",
        ) from None
    except openai.OpenAIError as exc:
        raise _error("provider_error", "sdk_error", f"the openai SDK failed: {exc}") from None
