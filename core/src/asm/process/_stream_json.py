"""The stream-json format of ``claude -p`` and ``amp -x`` (see :class:`StreamJsonTranslator`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from asm.errors import AsmError
from asm.events import (
    CostUpdated,
    ErrorOccurred,
    ErrorRecovered,
    EventData,
    MessageReceived,
    MessageStreamed,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.model import Cost, ProviderError, RunResult, TokenUsage

from ._runner import CLIProcess
from ._translate import LineTranslator, classify_failure


class StreamJsonTranslator(LineTranslator):
    """One run's translation of the ``stream-json`` JSONL that Claude Code
    (``claude -p --output-format stream-json --verbose``) and Amp (``amp -x
    --stream-json``, "Claude Code compatible") print, into asm payloads.

    Lines: ``system`` (``init`` carries the CLI's session id and model;
    ``api_retry`` announces a retry of a failed API call), ``stream_event``
    (raw Anthropic stream events, with ``--include-partial-messages``),
    ``assistant`` (one message - or, for Claude Code, one content block of it -
    per line), ``user`` (tool results) and the final ``result``. Text and
    thinking deltas that arrive in one batch are coalesced into one event.
    Input tokens include cache reads and writes (reported apart by the CLI).

    An assistant message of model ``<synthetic>`` is one the CLI wrote itself
    (an API error's text, "API Error: 529 ..."): it is not the model's answer,
    so it is neither streamed nor received, and the ``result`` line that
    follows fails the run with it. Each ``api_retry`` becomes an
    ``error_occurred`` (a retryable code, ``provider_error.kind = "api_retry"``),
    and the first answer after retries an ``error_recovered``.
    """

    def __init__(self, provider: str, *, max_turns: int | None = None, with_cost: bool = True) -> None:
        super().__init__(provider, max_turns=max_turns)
        #: whether :meth:`result` carries the cost the ``result`` line reported
        self.with_cost = with_cost
        self.session_id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.usage = TokenUsage()
        self.cost: Cost | None = None
        self.num_turns: int | None = None
        #: set when the ``result`` line reported an error: (message, HTTP status, subtype)
        self.failure: tuple[str, int | None, str] | None = None
        self.finished = False
        self._message_id: str | None = None
        self._partial: set[str] = set()
        self._tools: dict[str, str] = {}
        self._message_usage: dict[str, dict[str, Any]] = {}
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._out: list[EventData] = []
        #: the code of the retries announced since the last answer (``None``: not retrying)
        self._retrying: str | None = None

    def failed(self, proc: CLIProcess) -> AsmError | None:
        """An error ``result`` line, as the run's error (``max_turns`` or ``result_error``)."""
        if self.failure is None:
            return None
        message, status, subtype = self.failure
        kind = "max_turns" if subtype == "error_max_turns" else "result_error"
        return proc.error(kind, f"{self.provider}: {message}", code=classify_failure(message, status))

    def result(self, *, with_cost: bool | None = None) -> RunResult:
        """The run's result; the CLI's session id is in ``metadata`` for resume.
        ``with_cost`` (default: as constructed) includes the reported cost."""
        if with_cost is None:
            with_cost = self.with_cost
        metadata: dict[str, Any] = {"num_turns": self.num_turns}
        if self.session_id:
            metadata |= {"session_id": self.session_id, "cli_session_id": self.session_id}
        return RunResult(
            output=self.output,
            stop_reason=self.stop_reason,
            usage=self.usage,
            model=self.model,
            cost=self.cost if with_cost else None,
            metadata=metadata,
            resume_id=self.session_id,
        )

    def translate(self, lines: Iterable[dict[str, Any]]) -> list[EventData]:
        """The payloads for a batch of lines, in order."""
        out = self._out = []
        text = self._text
        for line in lines:
            kind = line.get("type")
            if kind == "stream_event":
                event = line.get("event")
                # the hot path: a token of text
                if type(event) is dict and event.get("type") == "content_block_delta" and not self._thinking:
                    delta = event.get("delta")
                    if type(delta) is dict and delta.get("type") == "text_delta":
                        piece = delta.get("text")
                        if type(piece) is str:
                            text.append(piece)
                        continue
                self._stream_event(event)
                text = self._text
                continue
            self._flush()
            if kind == "assistant":
                self._assistant(line)
            elif kind == "user":
                self._user(line)
            elif kind == "result":
                self._result(line)
            elif kind == "system" and line.get("subtype") == "init":
                self.session_id = _s(line.get("session_id")) or self.session_id
                self.model = _model(line.get("model")) or self.model
            elif kind == "system" and line.get("subtype") == "api_retry":
                self._api_retry(line)
        self._flush()
        return out

    def _flush(self) -> None:
        if self._thinking:
            self._out.append(ThinkingStreamed("".join(self._thinking)))
            self._thinking = []
        if self._text:
            self._out.append(MessageStreamed("".join(self._text)))
            self._text.clear()

    def _stream_event(self, event: object) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                return
            if delta.get("type") == "text_delta":
                if self._thinking:
                    self._flush()
                self._text.append(_s(delta.get("text")))
            elif delta.get("type") == "thinking_delta":
                if self._text:
                    self._flush()
                self._thinking.append(_s(delta.get("thinking")))
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._flush()
                self._answered()
                self.model = _model(message.get("model")) or self.model
                self._partial.add(_s(message.get("id")))
                self._begin(_s(message.get("id")))

    def _api_retry(self, line: dict[str, Any]) -> None:
        """The CLI retries a failed API call (and waits first): say so, as it happens."""
        status = line.get("error_status")
        status = status if isinstance(status, int) and not isinstance(status, bool) else None
        error = _s(line.get("error")) or "error"
        delay = line.get("retry_delay_ms")
        wait = f" in {delay / 1000:.1f}s" if isinstance(delay, int | float) and not isinstance(delay, bool) else ""
        attempt, most = _n(line.get("attempt")), _n(line.get("max_retries"))
        which = f"retry {attempt}/{most}" if attempt and most else f"retry {attempt}" if attempt else "retrying"
        failed = f"API error {status} ({error})" if status is not None else f"API error ({error})"
        message = f"{self.provider}: {failed}; {which}{wait}"
        code = classify_failure(error, status)
        if code == "provider_error":
            code = "provider_unavailable"  # the CLI retries only what it judges transient
        self._retrying = code
        self._out.append(ErrorOccurred(code, message, ProviderError(self.provider, "api_retry", message)))

    def _answered(self) -> None:
        """An answer arrived: the retries announced before it succeeded."""
        if self._retrying is not None:
            self._out.append(ErrorRecovered(self._retrying, f"{self.provider}: the API answered after retrying"))
            self._retrying = None

    def _begin(self, message_id: str) -> None:
        """A model turn starts with each new message; the previous one is complete."""
        if message_id != self._message_id:
            if self._message_id is not None:
                self._out.append(TurnCompleted(self.turns))
            self._message_id = message_id
            self.turns += 1

    def _assistant(self, line: dict[str, Any]) -> None:
        message = line.get("message")
        if not isinstance(message, dict):
            return
        if message.get("model") == SYNTHETIC_MODEL:
            return  # the CLI's own text (an API error's): not an answer, the result line tells the failure
        self._answered()
        message_id = _s(message.get("id"))
        self._begin(message_id)
        self.model = _model(message.get("model")) or self.model
        if isinstance(message.get("usage"), dict):
            self._message_usage[message_id] = message["usage"]
        if message.get("stop_reason"):
            self.stop_reason = _s(message.get("stop_reason"))
        partial = message_id in self._partial
        for block in message.get("content") or ():
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                text = _s(block.get("text"))
                if text and not partial:
                    self._out.append(MessageStreamed(text))
                if text:
                    self._out.append(MessageReceived(text))
            elif kind == "thinking":
                thinking = _s(block.get("thinking"))
                if thinking and not partial:
                    self._out.append(ThinkingStreamed(thinking))
            elif kind == "tool_use":
                tool_id, name = _s(block.get("id")), _s(block.get("name"))
                self._tools[tool_id] = name
                tool_input = block.get("input")
                self._out.append(ToolCallStarted(tool_id, name, tool_input if isinstance(tool_input, dict) else {}))

    def _user(self, line: dict[str, Any]) -> None:
        message = line.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            return
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            tool_id = _s(block.get("tool_use_id"))
            if tool_id not in self._tools:
                continue  # a result for a call this run never announced (e.g. a sub-agent's)
            name = self._tools.pop(tool_id)
            result = _tool_text(block.get("content"))
            if block.get("is_error"):
                self._out.append(ToolCallFailed(tool_id, name, result or "the tool failed"))
            else:
                self._out.append(ToolCallCompleted(tool_id, name, result))

    def _result(self, line: dict[str, Any]) -> None:
        self.finished = True
        self.session_id = _s(line.get("session_id")) or self.session_id
        if self._message_id is not None:
            self._out.append(TurnCompleted(self.turns))
            self._message_id = None
        if isinstance(line.get("num_turns"), int):
            self.num_turns = line["num_turns"]
        self.stop_reason = _s(line.get("stop_reason")) or self.stop_reason
        self.usage = self._final_usage(line.get("usage"))
        cost = line.get("total_cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            # Before the tokens it covers: the CLI's own figure, so asm prices nothing beside it.
            self.cost = Cost(total_usd=float(cost))
            self._out.append(CostUpdated(self.cost, self.model))
        if self.usage != TokenUsage():
            self._out.append(TokenUsageUpdated(self.usage, self.model))
        if line.get("is_error") or _s(line.get("subtype")).startswith("error"):
            message = _s(line.get("error")) or _s(line.get("result")) or f"{self.provider} reported an error"
            status = line.get("api_error_status")
            self.failure = (message, status if isinstance(status, int) else None, _s(line.get("subtype")))
        else:
            self.output = _s(line.get("result"))

    def _final_usage(self, reported: object) -> TokenUsage:
        totals = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        for usage in self._message_usage.values():
            for key in totals:
                totals[key] += _n(usage.get(key))
        if isinstance(reported, dict):
            for key in totals:
                if key in reported:
                    totals[key] = _n(reported.get(key))
        read, write = totals["cache_read_input_tokens"], totals["cache_creation_input_tokens"]
        return TokenUsage(totals["input_tokens"] + read + write, totals["output_tokens"], read, write)


def _s(value: object) -> str:
    return value if isinstance(value, str) else ""


#: The model Claude Code names on messages it wrote itself (API errors, interruptions).
SYNTHETIC_MODEL: Final = "<synthetic>"


def _model(value: object) -> str:
    """A model id from the stream ('' for none, and for the CLI's ``<synthetic>``)."""
    return value if isinstance(value, str) and value != SYNTHETIC_MODEL else ""


def _n(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _tool_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_s(b.get("text")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""
