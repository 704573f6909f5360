"""Offline providers: ``ScriptedProvider`` plays a script, ``EchoProvider`` echoes.

A script is a list of steps: a ``str`` (streamed as ``message_streamed``), any
payload from :mod:`asm.events`, ``Delay(seconds)``, ``Stall()`` (wait until
cancelled), ``Fail(error)`` (raise an ``AsmError``) or ``Crash(exception)``
(raise anything else, as a buggy provider would)::

    provider = ScriptedProvider(["Hel", "lo", Delay(0.1), MessageReceived("Hello")])
    provider = ScriptedProvider(["partial", Fail(AsmError("provider_rate_limited", "slow down"))])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import trio

from asm.errors import AsmError
from asm.events import CostUpdated, EventData, MessageReceived, MessageStreamed, TokenUsageUpdated
from asm.model import Capabilities, Cost, RunInput, RunResult, TokenUsage
from asm.ports import Emit

__all__ = ["Crash", "Delay", "EchoProvider", "Fail", "ScriptedProvider", "Stall", "Step"]


@attrs.frozen
class Delay:
    """Sleep ``seconds`` before the next step."""

    seconds: float


@attrs.frozen
class Stall:
    """Hang until the run is cancelled or times out."""


@attrs.frozen
class Fail:
    """Fail the run with ``error`` (an ``AsmError``, so it has a code)."""

    error: AsmError


@attrs.frozen
class Crash:
    """Raise ``exception`` as a provider with a bug would."""

    exception: BaseException


Step = str | EventData | Delay | Stall | Fail | Crash


class ScriptedProvider:
    """Plays ``script`` step by step; returns the streamed text as output.

    ``delay`` sleeps between steps; ``result`` replaces the default result
    (``output`` = the streamed text or the last ``message_received``).
    ``model`` is the provider's configured model: a run's ``model`` option
    overrides it (:meth:`model_for`).
    """

    def __init__(
        self,
        script: Sequence[Step],
        *,
        name: str = "scripted",
        delay: float = 0.0,
        result: RunResult | None = None,
        model: str | None = "scripted",
        capabilities: Capabilities | None = None,
    ) -> None:
        for step in script:
            if not isinstance(step, str | EventData | Delay | Stall | Fail | Crash):
                raise AsmError(
                    "validation_error", f"script step {step!r} is not a str, payload, Delay, Stall, Fail or Crash"
                )
        # Strings become payloads once, here, so playing the script is cheap.
        self._steps = [MessageStreamed(step) if isinstance(step, str) else step for step in script]
        self.name = name
        self._delay = delay
        self._result = result
        self._model = model
        self._capabilities = capabilities or Capabilities(streaming=True)

    @classmethod
    def from_text(cls, text: str, *, chunk_size: int = 16, **kwargs: object) -> ScriptedProvider:
        """Stream ``text`` in chunks of ``chunk_size`` characters, then the whole message and its usage."""
        chunks: list[Step] = [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
        chunks += [MessageReceived(text), TokenUsageUpdated(TokenUsage(1, max(1, math.ceil(len(text) / 4))))]
        return cls(chunks, **kwargs)  # type: ignore[arg-type]

    def capabilities(self) -> Capabilities:
        """As given (streaming by default)."""
        return self._capabilities

    def model_for(self, run: RunInput) -> str | None:
        """The run's ``model`` option, else the ``model`` given here."""
        model = run.options.get("model")
        return model if isinstance(model, str) and model else self._model

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Play the script."""
        streamed: list[str] = []
        received: str | None = None
        delay = self._delay
        for step in self._steps:
            if delay:
                await trio.sleep(delay)
            if isinstance(step, MessageStreamed):
                streamed.append(step.delta)
                await emit(step)
            elif isinstance(step, EventData):
                if isinstance(step, MessageReceived):
                    received = step.content
                await emit(step)
            elif isinstance(step, Delay):
                await trio.sleep(step.seconds)
            elif isinstance(step, Stall):
                await trio.sleep_forever()
            elif isinstance(step, Fail):
                raise step.error
            else:
                raise step.exception
        if self._result is not None:
            return self._result
        output = received if received is not None else "".join(streamed)
        return RunResult(output=output, stop_reason="end_turn", model=self.model_for(run))


class EchoProvider:
    """Streams the prompt back, word by word: the offline default provider.

    >>> provider = EchoProvider(prefix="echo: ")
    """

    def __init__(self, *, name: str = "echo", prefix: str = "", delay: float = 0.0) -> None:
        self.name = name
        self.prefix = prefix
        self.delay = delay

    def capabilities(self) -> Capabilities:
        """Streaming only."""
        return Capabilities(streaming=True)

    def model_for(self, run: RunInput) -> str:
        """Always ``"echo"``: there is no other model to pick."""
        return "echo"

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Echo the last user message."""
        text = self.prefix + run.prompt
        words = text.split(" ")
        for index, word in enumerate(words):
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            await emit(MessageStreamed(word if index == len(words) - 1 else word + " "))
        usage = TokenUsage(
            input_tokens=max(1, math.ceil(sum(len(m.content) for m in run.messages) / 4)),
            output_tokens=max(1, math.ceil(len(text) / 4)),
        )
        await emit(MessageReceived(text))
        await emit(TokenUsageUpdated(usage, model="echo"))
        await emit(CostUpdated(Cost(), "echo"))  # echoing is free: a reported cost, not a guess
        return RunResult(output=text, stop_reason="end_turn", usage=usage, model="echo", cost=Cost())
