"""asm-reverse: an example asm provider plugin that streams the prompt back, reversed.

Everything a provider plugin needs is here: a provider object (``name``,
``capabilities()``, ``async execute(run, emit)``), an options class parsed from
the plugin's config table with :func:`asm.parse_options`, and one
``@asm.hookimpl`` that registers a factory under the name users type::

    asm run --provider reverse "hello"      # prints: olleh

and in ``asm.toml``::

    provider = "reverse"

    [providers.reverse]
    chunk_size = 2
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio

import asm
from asm.events import MessageReceived, MessageStreamed, TokenUsageUpdated
from asm.hookspecs import Register
from asm.ports import Emit

__all__ = ["ReverseOptions", "ReverseProvider"]


@attrs.frozen
class ReverseOptions:
    """The ``[providers.reverse]`` config table. ``asm.parse_options`` builds
    it, so a misspelt key or a wrong type is an ``invalid_config`` error that
    names the key, instead of being silently ignored."""

    chunk_size: int = 4
    delay: float = 0.0


class ReverseProvider:
    """Streams the last user message back reversed, ``chunk_size`` characters at a time."""

    name = "reverse"

    def __init__(self, *, chunk_size: int = 4, delay: float = 0.0) -> None:
        if chunk_size < 1:
            raise asm.AsmError("invalid_config", f"chunk_size must be at least 1, not {chunk_size}")
        self.chunk_size = chunk_size
        self.delay = delay

    def capabilities(self) -> asm.Capabilities:
        """Streaming text, no tools."""
        return asm.Capabilities(streaming=True)

    async def execute(self, run: asm.RunInput, emit: Emit) -> asm.RunResult:
        """Emit the reversed prompt as ``message_streamed`` chunks, then the
        whole message and the token usage; return the result.

        The manager emits ``run_started`` / ``run_completed`` (or failed,
        cancelled, timeout) around this call; a provider emits content only.
        """
        text = run.prompt[::-1]
        for start in range(0, len(text), self.chunk_size):
            # A checkpoint per chunk: cancellation (cancel_run, a timeout) stops us promptly.
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            await emit(MessageStreamed(text[start : start + self.chunk_size]))
        usage = asm.TokenUsage(
            input_tokens=max(1, math.ceil(sum(len(m.content) for m in run.messages) / 4)),
            output_tokens=max(1, math.ceil(len(text) / 4)),
        )
        await emit(MessageReceived(text))
        await emit(TokenUsageUpdated(usage))
        return asm.RunResult(output=text, stop_reason="end_turn", usage=usage, model="reverse")


def create_provider(config: dict[str, Any]) -> ReverseProvider:
    """The factory asm calls with the ``[providers.reverse]`` table ({} if absent)."""
    options = asm.parse_options(ReverseOptions, config, "reverse provider")
    return ReverseProvider(chunk_size=options.chunk_size, delay=options.delay)


@asm.hookimpl
def asm_register_providers(register: Register) -> None:
    """Make the provider available as ``reverse``."""
    register("reverse", create_provider)
