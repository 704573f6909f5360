"""The provider part: ``template``, which answers ``"Hello, <prompt>"``.

The parts every provider has are all here:

- a provider object with ``name``, ``capabilities()`` and
  ``async execute(run, emit) -> RunResult`` (see :class:`asm.ports.Provider`);
- an options class, built from the provider's config table (``[providers.template]``
  in ``asm.toml``) by :func:`asm.parse_options`, so an unknown key or a wrong
  type is a clear ``invalid_config`` error;
- a factory, ``create_provider(config)``, which the ``@hookimpl`` in
  ``__init__.py`` registers under the name users type (``asm run --provider template``).

Its tests, ``tests/test_provider.py``, run asm's ``ProviderContract`` suite.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio
from asm import AsmError, Capabilities, RunInput, RunResult, TokenUsage, parse_options
from asm.events import MessageReceived, MessageStreamed, TokenUsageUpdated
from asm.ports import Emit

__all__ = ["TemplateProvider", "TemplateProviderOptions", "create_provider"]


@attrs.frozen
class TemplateProviderOptions:
    """The ``[providers.template]`` config table; every key needs a default
    (the factory gets ``{}`` when the table is absent)."""

    greeting: str = "Hello"
    delay: float = 0.0


class TemplateProvider:
    """Answers ``"<greeting>, <prompt>"``, streamed word by word, waiting
    ``delay`` seconds before each word (as a slow model would).

    A real provider maps its API's or CLI's wire format to the payloads of
    :mod:`asm.events` here, raises :class:`asm.AsmError` with a ``provider_*``
    code when it fails, and stops promptly when cancelled (trio cancellation).
    """

    name = "template"

    def __init__(self, *, greeting: str = "Hello", delay: float = 0.0) -> None:
        self.greeting = greeting
        self.delay = delay

    def capabilities(self) -> Capabilities:
        """What the router may match runs on."""
        return Capabilities(streaming=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Emit content events and return the result.

        The manager emits the lifecycle events (``run_started``,
        ``run_completed``, ``run_failed``, ...) around this call; emitting one
        here is an error.
        """
        if not run.prompt:
            raise AsmError("invalid_input", "the template provider needs a user message; pass a prompt")
        text = f"{self.greeting}, {run.prompt}"
        words = text.split(" ")
        for index, word in enumerate(words):
            # A real provider awaits its API or subprocess here. Awaiting is what lets
            # cancel_run and timeouts stop the run promptly (trio cancellation).
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            await emit(MessageStreamed(word if index == len(words) - 1 else word + " "))
        usage = TokenUsage(input_tokens=len(run.prompt.split()), output_tokens=len(words))
        await emit(MessageReceived(text))
        await emit(TokenUsageUpdated(usage))
        return RunResult(output=text, stop_reason="end_turn", usage=usage)


def create_provider(config: dict[str, Any]) -> TemplateProvider:
    """The factory: asm calls it with the ``[providers.template]`` table ({} if absent)."""
    options = parse_options(TemplateProviderOptions, config, "template provider")
    return TemplateProvider(greeting=options.greeting, delay=options.delay)
