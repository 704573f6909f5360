"""A third-party plugin as a user would write one: two providers, by entry point."""

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


class CarefulProvider:
    """Wants to run a tool named after the prompt, and asks first (permission mode "ask")."""

    name = "throwaway-tools"

    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=True, tools=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        tool = run.prompt.split()[0]
        allowed = await emit.authorize_tool("call-1", tool, {"args": run.prompt}, default="ask")
        text = f"ran {tool}" if allowed else f"did not run {tool}"
        await emit(MessageStreamed(text))
        return RunResult(output=text, stop_reason="end_turn")


@hookimpl
def asm_register_providers(register: Any) -> None:
    register("throwaway", lambda config: ShoutProvider(**config))
    register("throwaway-tools", lambda config: CarefulProvider())
