"""Approval gates: tools ruled `ask` wait for an answer; no answer in time is a denial.

Run: python examples/approval_gates.py (offline).
"""

from __future__ import annotations

import trio

import asm
from asm.events import ApprovalRequested, ToolCallCompleted, ToolCallStarted
from asm.policy import Policy, ToolRule
from asm.ports import Emit


class Reviewer:
    """An approval hook: here a rule of thumb; in a product, a person answering in a UI."""

    @asm.hookimpl
    async def asm_approve_tool(self, request: ApprovalRequested) -> bool | None:
        await trio.sleep(0.01)  # e.g. waiting for a click
        if request.tool_name == "slow_question":
            await trio.sleep_forever()  # never answered: the timeout denies it
        return "prod" not in str(request.tool_input)


class Deployer:
    """A provider that runs its own tools, asking asm first (as API providers do)."""

    name = "deployer"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities(tools=True)

    async def execute(self, run: asm.RunInput, emit: Emit) -> asm.RunResult:
        for call_id, (tool, args) in enumerate(
            [("deploy", {"env": "staging"}), ("deploy", {"env": "prod"}), ("slow_question", {}), ("read_logs", {})]
        ):
            if await emit.authorize_tool(str(call_id), tool, args):
                await emit(ToolCallStarted(str(call_id), tool, args))
                self.ran.append(f"{tool}{args}")
                await emit(ToolCallCompleted(str(call_id), tool, "ok"))
        return asm.RunResult(output="; ".join(self.ran))


async def main() -> None:
    store = asm.InMemorySessionStore()
    provider = Deployer()
    manager = asm.SessionManager(
        store,
        provider=provider,
        policies=[Policy("change-control", tool_rules=(ToolRule("deploy", "ask"), ToolRule("slow_*", "ask")))],
        plugins=asm.load_plugins(entry_points=False, extra=[Reviewer()]),
        approval_timeout=0.2,
    )
    run = await manager.run_once("ship it")
    for event in (await store.read_events(run.session_id)).events:
        if event.type.value.startswith("approval_"):
            print(event.type.value, event.data)
    print("ran:", provider.ran)
    assert provider.ran == ["deploy{'env': 'staging'}", "read_logs{}"]


if __name__ == "__main__":
    trio.run(main)
