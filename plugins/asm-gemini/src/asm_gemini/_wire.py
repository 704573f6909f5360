"""The Gemini API's wire format (``streamGenerateContent?alt=sse``) mapped to asm.

A request is ``{"contents": [{"role": "user" | "model", "parts": [...]}],
"systemInstruction", "tools": [{"functionDeclarations": [...]}],
"generationConfig"}``; the answer is a stream of ``GenerateContentResponse``
chunks, each ``{"candidates": [{"content": {"parts": [...]}, "finishReason"}],
"usageMetadata", "modelVersion", "responseId"}``. There is no end event: the
chunk carrying ``finishReason`` is the last, so a stream that ends without one
was cut. A part is ``{"text"}`` (``"thought": true`` for a thought summary),
``{"functionCall": {"name", "args", "id"?}}``, and may carry the
``thoughtSignature`` that must go back with the history for the model to keep
its reasoning across a tool call. An error inside a stream is a chunk
``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from asm import TokenUsage
from asm.continuity import Entry, exchanges, tool_output_text
from asm.events import MessageStreamed, ThinkingStreamed, ToolCallStarted
from asm.ports import Emit
from asm.providers import http as kit
from asm.tools import ToolOutcome

__all__ = ["GeminiCall", "GeminiTurn", "conversation", "generate_request", "read_error_body", "tool_results"]

#: finishReasons that mean Google's filters withheld the answer (not an empty answer).
BLOCKED: Final = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
)
#: finishReason -> asm stop reason (the one vocabulary of claude and openai).
STOPS: Final = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens", "FINISH_REASON_UNSPECIFIED": "end_turn"}
#: google.rpc status of an error chunk -> (asm error code, retryable).
STREAM_ERRORS: Final = {
    "RESOURCE_EXHAUSTED": ("provider_rate_limited", True),
    "UNAVAILABLE": ("provider_unavailable", True),
    "INTERNAL": ("provider_unavailable", True),
    "DEADLINE_EXCEEDED": ("provider_timeout", True),
}
_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE: Final = "type.googleapis.com/google.rpc.QuotaFailure"
_ERROR_INFO: Final = "type.googleapis.com/google.rpc.ErrorInfo"


@attrs.define
class GeminiCall(kit.ToolCall):
    """A ``functionCall``; ``wire_id`` when the API gave it an id (then its
    ``functionResponse`` names it; without one, Gemini pairs them by order)."""

    wire_id: bool = False


# -- requests ----------------------------------------------------------------------


def conversation(messages: Sequence[Any], history: Sequence[Entry] = ()) -> list[dict[str, Any]]:
    """The replayed ``history`` and the run's messages as ``contents``; system messages go to
    ``systemInstruction``. Replayed calls carry no id: Gemini pairs a turn's
    ``functionResponse`` parts with its ``functionCall`` parts by order."""
    contents: list[dict[str, Any]] = []
    for exchange in exchanges(history):
        if exchange.kind == "tool_results":
            parts: list[dict[str, Any]] = [
                {
                    "functionResponse": {
                        "name": r.tool_name,
                        "response": {"error" if r.is_error else "result": tool_output_text(r)},
                    }
                }
                for r in exchange.results
            ]
            contents.append({"role": "user", "parts": parts})
        elif exchange.kind != "system":
            parts = [{"text": exchange.text}] if exchange.text else []
            parts += [{"functionCall": {"name": c.tool_name, "args": c.tool_input}} for c in exchange.calls]
            contents.append({"role": "model" if exchange.kind == "assistant" else "user", "parts": parts})
    return contents + [
        {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
        for m in messages
        if m.role != "system"
    ]


def generate_request(
    *,
    model: str,
    contents: list[dict[str, Any]],
    system: Sequence[str],
    tools: Mapping[str, Any],
    max_tokens: int | None,
    temperature: float | None,
    thinking: bool,
    thinking_budget: int | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """One ``streamGenerateContent`` request: ``model`` (it goes in the path),
    then the body; ``extra`` (``sdk_opts``) goes in at the top level, its
    ``generationConfig`` merged into the one built here."""
    config: dict[str, Any] = {}
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    if temperature is not None:
        config["temperature"] = temperature
    if thinking:
        config["thinkingConfig"] = {"includeThoughts": True}
        if thinking_budget is not None:
            config["thinkingConfig"]["thinkingBudget"] = thinking_budget
    request: dict[str, Any] = {"model": model, "contents": list(contents)}
    if system:
        request["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    if tools:
        # parametersJsonSchema takes a tool's JSON Schema as it is (``parameters``
        # is an OpenAPI subset that refuses additionalProperties, $defs, ...).
        declarations = [
            {"name": t.name, "description": t.description, "parametersJsonSchema": t.input_schema}
            for t in tools.values()
        ]
        request["tools"] = [{"functionDeclarations": declarations}]
    request.update({k: v for k, v in extra.items() if k != "generationConfig"})
    config.update(extra.get("generationConfig") or {})
    if config:
        request["generationConfig"] = config
    return request


def tool_results(results: Sequence[tuple[kit.ToolCall, ToolOutcome]]) -> list[Any]:
    """The results as one user turn of ``functionResponse`` parts, in the calls' order."""
    parts = []
    for call, outcome in results:
        response = {"error": outcome.content} if outcome.is_error else {"result": outcome.content}
        answer: dict[str, Any] = {"name": call.name, "response": response}
        if isinstance(call, GeminiCall) and call.wire_id:
            answer["id"] = call.id
        parts.append({"functionResponse": answer})
    return [{"role": "user", "parts": parts}]


# -- errors ------------------------------------------------------------------------


def _duration(text: Any) -> float | None:
    """A google.protobuf.Duration as JSON (``"34s"``, ``"1.5s"``) in seconds."""
    try:
        return float(str(text).removesuffix("s"))
    except ValueError:
        return None


def read_error_body(status: int, body: Any) -> tuple[int, str, str, dict[str, str], bool]:
    """An error body ``{"error": {"code", "message", "status", "details"}}`` as
    ``(status, kind, message, extra headers, quota)``.

    ``RetryInfo.retryDelay`` becomes a ``retry-after`` header (the API sends
    none); a ``QuotaFailure`` on a per-day quota is exhausted quota, not a
    rate limit; a 400 ``API_KEY_INVALID`` is classified as the 401 it means.
    """
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else (body if isinstance(body, dict) else {})
    kind = str(error.get("status") or f"http_{status}").lower()
    message = str(error.get("message") or "")
    headers: dict[str, str] = {}
    quota = False
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        what = detail.get("@type")
        if what == _RETRY_INFO and (delay := _duration(detail.get("retryDelay"))) is not None:
            headers["retry-after"] = f"{delay:g}"
        elif what == _QUOTA_FAILURE:
            quota |= any("PerDay" in str(v.get("quotaId", "")) for v in detail.get("violations") or [])
        elif what == _ERROR_INFO and detail.get("reason") == "API_KEY_INVALID":
            status, kind = 401, "api_key_invalid"
    return status, kind, message, headers, quota


# -- the stream ----------------------------------------------------------------------


class GeminiTurn(kit.Turn):
    """One ``streamGenerateContent`` answer: its chunks, accumulated."""

    final_event = "a chunk with a finishReason"

    def __init__(self, service: kit.Service) -> None:
        super().__init__(service)
        self.texts: list[str] = []
        self.signature: str | None = None
        #: The model's parts as they go back in the history (thought summaries left out).
        self.parts: list[dict[str, Any]] = []

    async def event(self, name: str, raw: str, emit: Emit) -> bool:
        data = self.load(name, raw)
        if "error" in data:
            error = data["error"]
            status = str(error.get("status") or error.get("code") or "error")
            code, retryable = STREAM_ERRORS.get(status, ("provider_error", False))
            raise self.service.mid_stream(status.lower(), str(error.get("message", "")), code=code, retryable=retryable)
        self.model = data.get("modelVersion") or self.model
        self.response_id = data.get("responseId") or self.response_id
        if "usageMetadata" in data:
            self._usage(data["usageMetadata"])
        feedback = data.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            raise self._blocked("the prompt", feedback["blockReason"], feedback.get("safetyRatings"))
        candidates = data.get("candidates") or []
        if not candidates:
            return False
        candidate = candidates[0]
        for part in (candidate.get("content") or {}).get("parts") or []:
            await self._part(part, emit)
        reason = candidate.get("finishReason")
        if not reason:
            return False
        if reason in BLOCKED:
            raise self._blocked("the answer", reason, candidate.get("safetyRatings"))
        if reason == "MALFORMED_FUNCTION_CALL":
            detail = candidate.get("finishMessage") or "the model wrote a function call that is not valid"
            raise self.service.error(
                "provider_error", "malformed_function_call", f"Gemini failed: {detail}; retry the run", retryable=True
            )
        self.text = "".join(self.texts)
        if self.text:
            self.parts.insert(
                0, {"text": self.text, **({"thoughtSignature": self.signature} if self.signature else {})}
            )
        self.stop_reason = "tool_use" if self.tool_calls else STOPS.get(reason, reason.lower())
        return True

    async def _part(self, part: dict[str, Any], emit: Emit) -> None:
        if "functionCall" in part:
            call = part["functionCall"]
            name, args = str(call["name"]), call.get("args") or {}
            wire_id = call.get("id")
            call_id = str(wire_id or f"{self.response_id or 'call'}_{len(self.tool_calls)}")
            error = None if isinstance(args, dict) else f"the model sent a non-object input for {name!r}: {args!r}"
            args = args if isinstance(args, dict) else {}
            self.tool_calls.append(GeminiCall(call_id, name, args, error, wire_id=bool(wire_id)))
            self.parts.append(part)
            await emit(ToolCallStarted(call_id, name, args))
        elif "text" in part:
            text = part["text"]
            if part.get("thought"):
                if part.get("thoughtSignature"):
                    self.parts.append(part)
                await emit(ThinkingStreamed(text))
                return
            self.signature = self.signature or part.get("thoughtSignature")
            if text:
                self.texts.append(text)
                await emit(MessageStreamed(text))
        elif part.get("thoughtSignature"):
            self.parts.append(part)

    def _blocked(self, what: str, reason: str, ratings: Any) -> Exception:
        flagged = [
            str(r.get("category", "")).removeprefix("HARM_CATEGORY_").lower()
            for r in ratings or []
            if isinstance(r, dict) and (r.get("blocked") or r.get("probability") in ("MEDIUM", "HIGH"))
        ]
        why = f" ({', '.join(flagged)})" if flagged else ""
        return self.service.error(
            "provider_error",
            "safety_blocked",
            f"Gemini blocked {what}: {reason}{why}; rephrase the prompt, or set safetySettings in sdk_opts",
            retryable=False,
        )

    def _usage(self, usage: Mapping[str, Any]) -> None:
        # Cumulative in each chunk. Input includes the cached tokens (as asm counts);
        # thinking is billed as output.
        prompt = int(usage.get("promptTokenCount") or 0) + int(usage.get("toolUsePromptTokenCount") or 0)
        output = int(usage.get("candidatesTokenCount") or 0) + int(usage.get("thoughtsTokenCount") or 0)
        self.usage = TokenUsage(prompt, output, int(usage.get("cachedContentTokenCount") or 0))

    def replay(self) -> list[Any]:
        return [{"role": "model", "parts": self.parts}]
