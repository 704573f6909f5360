"""Reading a CLI's JSON lines and mapping them to asm: :class:`JsonLineReader`,
:class:`LineTranslator` (what a CLI provider subclasses for its line format),
:func:`classify_failure` and :func:`exit_error` (a CLI's failure -> an ``AsmError``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from asm.errors import AsmError
from asm.events import ErrorOccurred, EventData
from asm.model import RunResult

from ._runner import CLIProcess

_loads: Callable[[bytes], Any]
try:  # orjson reads a line several times faster; the CLI provider plugins depend on it
    from orjson import loads as _loads
except ImportError:  # without it: the standard library, which reads the same lines slower
    _loads = json.loads

if TYPE_CHECKING:
    from asm.ports import Emit

_STATUS: Final = re.compile(r"\b(4\d\d|5\d\d)\b")


def classify_failure(message: str, status: int | None = None) -> str:
    """The ``provider_*`` code for a CLI's failure message (and HTTP status, if
    it reports one): 429 -> ``provider_rate_limited``, 401/403 ->
    ``provider_authentication_failed``, 5xx / overloaded ->
    ``provider_unavailable`` (both retryable), else ``provider_error``.

    >>> classify_failure("unexpected status 529: Overloaded")
    'provider_unavailable'
    """
    if status is None:
        found = _STATUS.search(message)
        status = int(found.group(1)) if found else None
    lowered = message.lower()
    if status == 429 or "rate limit" in lowered or "rate_limit" in lowered:
        return "provider_rate_limited"
    if status in (401, 403) or "authentication" in lowered or "unauthorized" in lowered or "api key" in lowered:
        return "provider_authentication_failed"
    if "credit" in lowered or "quota" in lowered or "billing" in lowered:
        return "provider_quota_exceeded"
    if (status is not None and status >= 500) or "overloaded" in lowered:
        return "provider_unavailable"
    return "provider_error"


class JsonLineReader:
    """JSON objects from a CLI's stdout, batch by batch, read with orjson when it is
    installed (an integer beyond 64 bits is then a float, as in :mod:`asm.sse`); a
    line orjson refuses (invalid UTF-8, ``NaN``) is read as the standard library reads
    it, invalid UTF-8 replaced with U+FFFD. A line that is not a
    JSON object (garbage, binary noise, a stray progress message) is skipped
    and reported as ``error_occurred`` (code ``provider_output``), at most
    ``max_reports`` times per run."""

    def __init__(self, proc: CLIProcess, emit: Emit, *, max_reports: int = 5) -> None:
        self.proc = proc
        self.emit = emit
        self.max_reports = max_reports
        self.bad_lines = 0

    async def receive(self) -> list[dict[str, Any]]:
        """The next batch of objects; ``[]`` at EOF."""
        while lines := await self.proc.receive_lines():
            batch = []
            bad = []
            for line in lines:
                try:
                    value = _loads(line)  # strict UTF-8 and JSON
                except ValueError:
                    value = _lenient(line)
                if type(value) is dict:
                    batch.append(value)
                else:
                    bad.append(line.decode("utf-8", errors="replace"))
            for text in bad:
                await self._report(text)
            if batch:
                return batch
        return []

    async def _report(self, line: str) -> None:
        self.bad_lines += 1
        if self.bad_lines > self.max_reports:
            return
        shown = line[:200]
        more = " (further ones are not reported)" if self.bad_lines == self.max_reports else ""
        await self.emit(
            ErrorOccurred(
                "provider_output",
                f"{self.proc.provider} printed a line that is not a JSON object; skipped it{more}: {shown!r}",
            )
        )


def _lenient(line: bytes) -> Any:
    """A line orjson refused, as Python's json reads it: invalid UTF-8 replaced (U+FFFD),
    ``NaN`` and integers beyond 64 bits accepted; ``None`` if it is still not JSON."""
    try:
        return json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        return None


def exit_error(proc: CLIProcess, exit_code: int) -> AsmError:
    """The error of a CLI that exited with a non-zero status after its stream:
    ``provider_error`` (kind ``exit``) naming the status and the last line of
    stderr, classified by that line (:func:`classify_failure`)."""
    stderr, _ = proc.stderr_text()
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    message = f"{proc.provider} exited with status {exit_code}" + (f": {last}" if last else "")
    return proc.error("exit", message, code=classify_failure(last) if last else "provider_error")


class LineTranslator:
    """One run's translation of a CLI's JSON lines into asm payloads: what a
    CLI provider writes for its own line format (see
    :class:`~asm.process.CLIAgentProvider`). A subclass implements
    :meth:`translate` and :meth:`result`, counts ``turns`` as the stream starts
    them, records a failure the stream reports for :meth:`failed`, and sets
    ``finished = False`` until its final line if its CLI prints one.

    ::

        class EchoLines(LineTranslator):
            def translate(self, lines):
                out = []
                for line in lines:
                    if line.get("type") == "text":
                        self.output += line["text"]
                        out.append(MessageStreamed(line["text"]))
                return out

            def result(self):
                return RunResult(output=self.output)
    """

    def __init__(self, provider: str, *, max_turns: int | None = None) -> None:
        self.provider = provider
        #: asm stops the CLI once it starts more model turns than this (``None``: no limit)
        self.max_turns = max_turns
        #: the model turns the stream has started so far
        self.turns = 0
        #: whether the stream reached its end (a CLI with a final line sets it there)
        self.finished = True
        self.output = ""

    def translate(self, lines: Sequence[dict[str, Any]]) -> list[EventData]:
        """The payloads for a batch of lines (JSON objects), in order."""
        raise NotImplementedError

    def result(self) -> RunResult:
        """The run's result, once the CLI has exited cleanly."""
        raise NotImplementedError

    def failed(self, proc: CLIProcess) -> AsmError | None:
        """The error the stream itself reported (an error result, a failed
        turn), if any: it fails the run whatever the exit status."""
        del proc
        return None

    @property
    def over_turns(self) -> bool:
        """Whether the CLI started more model turns than ``max_turns``."""
        return self.max_turns is not None and self.turns > self.max_turns

    def check_ended(self, proc: CLIProcess, exit_code: int) -> None:
        """Raise why the run failed: the failure the stream reported
        (:meth:`failed`), a non-zero exit (:func:`exit_error`), or a stream
        that ended before its final line."""
        error = self.failed(proc)
        if error is not None:
            raise error
        if exit_code != 0:
            raise exit_error(proc, exit_code)
        if not self.finished:
            raise proc.error("incomplete", f"{self.provider} ended without a result line; its stream was cut short")
