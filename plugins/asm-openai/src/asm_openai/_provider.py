"""Provider ``openai``: the Responses API (default) or Chat Completions (``api = "chat"``), with a tool loop.

Built on asm's HTTP provider kit (:mod:`asm.providers.http`: options, the tool
loop, errors, cancellation) and the ``openai`` SDK (``AsyncOpenAI``), which runs
under trio through anyio and httpx2. The SDK builds and sends each request and
maps HTTP failures; the provider reads the raw Server-Sent Events itself and
normalizes them (one wire class per API, :class:`_ResponsesWire` and
:class:`_ChatWire`):

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

import inspect
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import httpx2
import openai
from openai.resources.chat.completions import AsyncCompletions
from openai.resources.responses import AsyncResponses

from asm import Capabilities, RunInput, RunResult, TokenUsage
from asm.continuity import Entry, exchanges, tool_output_text, wire_tool_id
from asm.errors import AsmError
from asm.events import MessageStreamed, ThinkingStreamed, ToolCallStarted
from asm.ports import Emit
from asm.providers import http as kit
from asm.sse import SSEDecoder as SSEDecoder
from asm.sse import retry_after_seconds as retry_after_seconds
from asm.tools import ToolOutcome

__all__ = ["OpenAIOptions", "OpenAIProvider", "SSEDecoder", "create_provider", "retry_after_seconds"]

PROVIDER: Final = "openai"
API_KEY_ENV: Final = "OPENAI_API_KEY"
APIS: Final = ("responses", "chat")
#: Options a run may set (``options={...}``).
RUN_KEYS: Final = kit.HTTPOptions.RUN_KEYS


@attrs.frozen
class OpenAIOptions(kit.HTTPOptions):
    """The ``openai`` provider's options (config table and per-run overrides)."""

    api: str = kit.option("responses", choices=APIS)
    model: str = kit.option("gpt-5.1", nonempty=True)
    temperature: float | None = kit.option(None, min=0.0, max=2.0)


def _read_error(status: int, body: Mapping[str, Any]) -> tuple[Any, Any, bool]:
    """An error body (``{"code", "type", "message"}``); ``insufficient_quota`` and the like on a 429 are quota."""
    kind = body.get("code") or body.get("type")
    return kind, body.get("message"), status == 429 and "quota" in str(kind or "")


#: The SDK, and the ``sdk_opts`` keys that configure its client (the others go into each request).
SDK: Final = kit.StainlessSDK(
    openai,
    openai.AsyncOpenAI,
    openai.OpenAIError,
    httpx2,
    client_keys=frozenset({"timeout", "max_retries", "default_headers", "default_query", "organization", "project"}),
)
SERVICE: Final = kit.Service(
    PROVIDER,
    "OpenAI",
    API_KEY_ENV,
    sdk="openai",
    key_hint=" (any value for a local server that needs none)",
    rules=SDK.rules(request_id="x-request-id", read_error=_read_error),
    fixes={
        400: "fix the request (model, max_tokens, input, tools or sdk_opts)",
        403: "the API key lacks access to this model or region; use another key or model",
        404: "check the model name, api ('responses' or 'chat') and base_url (it usually ends in /v1)",
    },
)


# -- the streams -------------------------------------------------------------


def _api_error(service: kit.Service, kind: str, detail: str) -> Exception:
    if "rate_limit" in kind:
        code, retryable = "provider_rate_limited", True
    elif kind in ("server_error", "overloaded", "service_unavailable") or "timeout" in kind:
        code, retryable = "provider_unavailable", True
    elif "quota" in kind:
        code, retryable = "provider_quota_exceeded", False
    else:
        code, retryable = "provider_error", False
    return service.mid_stream(kind, detail, code=code, retryable=retryable)


_INCOMPLETE: Final = {"max_output_tokens": "max_tokens", "content_filter": "content_filter"}


class _ResponsesTurn(kit.Turn):
    final_event = "response.completed"
    resumable = True  # the API stores responses: previous_response_id continues one

    def __init__(self, service: kit.Service) -> None:
        super().__init__(service)
        self.parts: list[str] = []
        self.arguments: dict[str, list[str]] = {}
        self.output: list[dict[str, Any]] = []

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        data = self.load(name, raw)
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
                parsed, error = kit.parse_tool_input(name_, raw_args)
                self.tool_calls.append(kit.ToolCall(call_id, name_, parsed, error))
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
            raise _api_error(
                self.service, str(failure.get("code") or "response_failed"), str(failure.get("message", ""))
            )
        elif kind == "error":
            raise _api_error(self.service, str(data.get("code") or "error"), str(data.get("message", "")))
        return False

    def _usage(self, usage: Mapping[str, Any]) -> None:
        cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
        self.usage = TokenUsage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0), cached)

    def replay(self) -> list[Any]:
        return list(self.output)


_FINISH: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}


class _ChatTurn(kit.Turn):
    final_event = "data: [DONE]"

    def __init__(self, service: kit.Service) -> None:
        super().__init__(service)
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        if raw == "[DONE]":
            await self._finish(emit)
            return True
        data = self.load(name, raw)
        if "error" in data and "choices" not in data:
            error = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
            raise _api_error(
                self.service, str(error.get("code") or error.get("type") or "error"), str(error.get("message", ""))
            )
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
            parsed, error = kit.parse_tool_input(name, "".join(call["arguments"]))
            self.tool_calls.append(kit.ToolCall(str(call["id"]), name, parsed, error))
            await emit(ToolCallStarted(str(call["id"]), name, parsed))

    def replay(self) -> list[Any]:
        calls = [
            {
                "id": str(call["id"]),
                "type": "function",
                "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
            }
            for _, call in sorted(self.calls.items())
        ]
        return [{"role": "assistant", "content": self.text or None, "tool_calls": calls}]


# -- the two wire formats ----------------------------------------------------


class _ResponsesWire:
    """The Responses API (``POST /responses``)."""

    turn_class = _ResponsesTurn

    def conversation(self, ctx: kit.RunContext[OpenAIOptions]) -> list[Any]:
        """The replayed history as input items, then the run's messages (a run that
        resumes a stored response sends only its own: ``previous_response_id``)."""
        roles = {"system": "developer", "assistant": "assistant"}
        items: list[Any] = []
        for exchange in exchanges(ctx.run.history):
            if exchange.kind == "tool_results":
                items += [
                    {"type": "function_call_output", "call_id": wire_tool_id(r.tool_call_id), "output": _output(r)}
                    for r in exchange.results
                ]
                continue
            if exchange.text:
                items.append({"role": roles.get(exchange.kind, "user"), "content": exchange.text})
            items += [
                {
                    "type": "function_call",
                    "call_id": wire_tool_id(c.tool_call_id),
                    "name": c.tool_name,
                    "arguments": json.dumps(c.tool_input),
                }
                for c in exchange.calls
            ]
        return items + [{"role": roles.get(m.role, "user"), "content": m.content} for m in ctx.run.messages]

    def request(self, ctx: kit.RunContext[OpenAIOptions], conversation: list[Any]) -> dict[str, Any]:
        options = ctx.options
        request: dict[str, Any] = {"model": options.model, "input": list(conversation), "stream": True}
        if ctx.run.resume_id:
            request["previous_response_id"] = ctx.run.resume_id
        if options.system_prompt:
            request["instructions"] = options.system_prompt
        if options.max_tokens is not None:
            request["max_output_tokens"] = options.max_tokens
        if ctx.tools:
            request["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                    "strict": False,
                }
                for t in ctx.tools.values()
            ]
        if options.temperature is not None:
            request["temperature"] = options.temperature
        return kit.sdk_request(request, ctx.extra, _RESPONSES_PARAMS)

    def open_stream(self, client: openai.AsyncOpenAI, request: dict[str, Any]) -> Any:
        return kit.stainless_stream(client.responses.with_streaming_response.create, request)

    def tool_results(self, results: Sequence[tuple[kit.ToolCall, ToolOutcome]]) -> list[Any]:
        return [{"type": "function_call_output", "call_id": c.id, "output": _tool_text(c, o)} for c, o in results]


class _ChatWire:
    """Chat Completions (``POST /chat/completions``), for any OpenAI-compatible server."""

    turn_class = _ChatTurn

    def conversation(self, ctx: kit.RunContext[OpenAIOptions]) -> list[Any]:
        """The system prompt, the replayed history, then the run's messages."""
        prompt = ctx.options.system_prompt
        messages: list[Any] = [{"role": "system", "content": prompt}] if prompt else []
        for exchange in exchanges(ctx.run.history):
            if exchange.kind == "tool_results":
                messages += [
                    {"role": "tool", "tool_call_id": wire_tool_id(r.tool_call_id), "content": _output(r)}
                    for r in exchange.results
                ]
            elif exchange.calls:
                calls = [
                    {
                        "id": wire_tool_id(c.tool_call_id),
                        "type": "function",
                        "function": {"name": c.tool_name, "arguments": json.dumps(c.tool_input)},
                    }
                    for c in exchange.calls
                ]
                messages.append({"role": "assistant", "content": exchange.text or None, "tool_calls": calls})
            else:
                messages.append({"role": exchange.kind, "content": exchange.text})
        roles = ("system", "assistant")
        return messages + [
            {"role": m.role if m.role in roles else "user", "content": m.content} for m in ctx.run.messages
        ]

    def request(self, ctx: kit.RunContext[OpenAIOptions], conversation: list[Any]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": ctx.options.model,
            "messages": list(conversation),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if ctx.options.max_tokens is not None:
            request["max_completion_tokens"] = ctx.options.max_tokens
        if ctx.tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in ctx.tools.values()
            ]
        if ctx.options.temperature is not None:
            request["temperature"] = ctx.options.temperature
        return kit.sdk_request(request, ctx.extra, _CHAT_PARAMS)

    def open_stream(self, client: openai.AsyncOpenAI, request: dict[str, Any]) -> Any:
        return kit.stainless_stream(client.chat.completions.with_streaming_response.create, request)

    def tool_results(self, results: Sequence[tuple[kit.ToolCall, ToolOutcome]]) -> list[Any]:
        return [{"role": "tool", "tool_call_id": c.id, "content": _tool_text(c, o)} for c, o in results]


def _output(result: Entry) -> str:
    """A replayed tool result as the model reads it (errors say so, as :func:`_tool_text`)."""
    text = tool_output_text(result)
    return f"error: {text}" if result.is_error else text


def _tool_text(call: kit.ToolCall, outcome: ToolOutcome) -> str:
    """A tool's result as the model reads it: errors of the tool itself say so."""
    return f"error: {outcome.content}" if outcome.is_error and call.error is None else outcome.content


_RESPONSES: Final = _ResponsesWire()
_CHAT: Final = _ChatWire()
_RESPONSES_PARAMS: Final = frozenset(inspect.signature(AsyncResponses.create).parameters)
_CHAT_PARAMS: Final = frozenset(inspect.signature(AsyncCompletions.create).parameters)


class OpenAIProvider(kit.StainlessProvider[OpenAIOptions]):
    """The OpenAI API as an asm provider (see the module docs).

    >>> provider = OpenAIProvider(api="chat", base_url="http://127.0.0.1:8000/v1", model="llama")  # doctest: +SKIP
    """

    name = PROVIDER
    service = SERVICE
    options_class = OpenAIOptions
    stainless = SDK

    def wire(self, options: OpenAIOptions) -> kit.Wire[OpenAIOptions]:
        """Chat Completions with ``api = "chat"``, else the Responses API."""
        return _CHAT if options.api == "chat" else _RESPONSES

    def capabilities(self) -> Capabilities:
        """The kit's, and native resume on the Responses API (``previous_response_id``)."""
        return attrs.evolve(self.capabilities_value, native_resume=self.options.api != "chat")

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """The kit's tool loop; a stored response the API no longer has (``previous_response_id``
        of a resumed run) is ``resume_not_found``, which the manager answers with a replay."""
        try:
            return await super().execute(run, emit)
        except AsmError as exc:
            if run.resume_id and _LOST_RESPONSE.search(f"{exc.message} {exc.details.get('provider_error')}"):
                raise AsmError(
                    "resume_not_found",
                    f"OpenAI no longer has the response {run.resume_id!r} this run continues; "
                    "continue without it (continuation='replay')",
                    details=exc.details,
                ) from None
            raise


#: What the API says of a ``previous_response_id`` it does not have.
_LOST_RESPONSE: Final = re.compile(r"previous_response_not_found|previous response with id .* not found", re.I)


#: The ``openai`` provider factory (``[providers.openai]``): see :meth:`HTTPProvider.from_config`.
create_provider: Final = OpenAIProvider.from_config
