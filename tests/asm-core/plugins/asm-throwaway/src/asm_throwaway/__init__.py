"""A third-party plugin as a user would write one: a provider and a sink, by entry point."""

from __future__ import annotations

from typing import Any

from asm import Capabilities, RunInput, RunResult, hookimpl
from asm.events import MessageStreamed
from asm.ports import Emit


class ShoutProvider:
    """Streams the prompt back in capitals."""

    name = "throwaway"

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        text = run.prompt.upper() + self.suffix
        await emit(MessageStreamed(text))
        return RunResult(output=text, stop_reason="end_turn")


@hookimpl
def asm_register_providers(register: Any) -> None:
    register("throwaway", lambda config: ShoutProvider(**config))
