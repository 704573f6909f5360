"""Provider routing: one provider name in front of two members, with failover and a budget.

A router named `smart` is configured like any provider, over two named members. Here
they are scripted stand-ins for `claude` and `openai` (so the example runs offline):
`fast` answers 529 overloaded, `steady` answers. The run completes on `steady`, and its
events say why: route_selected, route_failed_over, route_selected. Then a cost policy
makes the router skip a member whose estimated cost is over the run's budget.

    python examples/provider_routing.py
"""

from __future__ import annotations

import sys
from typing import Any

import trio

import asm
from asm.events import RouteFailedOver, RouteSelected
from asm.hookspecs import Register
from asm.policy import Limits, Policy
from asm.providers.scripted import Fail, ScriptedProvider


@asm.hookimpl
def asm_register_providers(register: Register) -> None:
    # Stand-ins for real providers; in asm.toml these would be [providers.fast] plugin = "claude", ...
    def overloaded(config: dict[str, Any]) -> ScriptedProvider:
        return ScriptedProvider([Fail(asm.AsmError("provider_unavailable", "529 overloaded"))], name="overloaded")

    def steady(config: dict[str, Any]) -> ScriptedProvider:
        return ScriptedProvider.from_text("Hello from the steady member.", name="steady", model="steady-1")

    register("overloaded", overloaded)
    register("steady", steady)


CONFIG = {
    "provider": "smart",
    "store": "memory",
    "providers": {
        "fast": {"plugin": "overloaded"},
        "careful": {"plugin": "steady"},
        # The router: members by name, tried in this order (strategy "prefer").
        "smart": {"plugin": "router", "members": ["fast", "careful"], "max_attempts": 2},
    },
    # Prices per million tokens, so the router can estimate each member's cost.
    "pricing": {"demo": {"models": {"scripted": {"input": 15, "output": 75}, "steady-1": {"input": 1, "output": 2}}}},
}


def show(events: list[asm.Event]) -> None:
    for event in events:
        data = event.data
        if isinstance(data, RouteSelected):
            skipped = ", ".join(f"{s.member} ({s.reason}: {s.detail})" for s in data.skipped) or "none"
            print(f"  route_selected     attempt {data.attempt}: {data.member} [{data.reason}], skipped: {skipped}")
        elif isinstance(data, RouteFailedOver):
            print(f"  route_failed_over  {data.member} failed with {data.error_code}: {data.error_message}")


async def main() -> None:
    registry = asm.load_plugins(extra=[sys.modules[__name__]])
    config = asm.load_config(CONFIG, env={}, user_file="/nonexistent")
    async with asm.open_runtime(config, registry=registry) as runtime:
        print("1. fast is overloaded: the router fails over to careful")
        run = await runtime.run_once("Say hello.")
        show((await runtime.store.read_events(run.session_id)).events)
        print(f"  -> {run.status.value} on {run.result.metadata['router']['member']}: {run.output!r}")
        assert run.status is asm.RunStatus.COMPLETED and run.output == "Hello from the steady member."

        print("2. a $0.05 budget: fast (4096 output tokens at $75/M is ~$0.31) is skipped before it is tried")
        budget = Policy("budget", Limits(max_cost_usd="0.05"))
        run = await runtime.run_once("Say hello.", policies=[budget])
        events = (await runtime.store.read_events(run.session_id)).events
        show(events)
        (selected,) = [e.data for e in events if isinstance(e.data, RouteSelected)]
        assert selected.member == "careful" and selected.skipped[0].reason == "over_budget"

        status = runtime.provider("smart").status()  # type: ignore[attr-defined]
        print("3. status:", ", ".join(f"{m.name} {[c.state.value for c in m.circuits]}" for m in status.members))


if __name__ == "__main__":
    trio.run(main)
