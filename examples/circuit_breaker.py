"""The router's circuit breaker, through a whole cycle, on a clock moved by hand.

`primary` fails (529) until we fix it; `backup` always answers. After 2 failures within
60 s, primary's circuit opens: runs skip it for its 10 s cooldown. Then one probe run
is let through: it fails, so the circuit opens again for twice as long; the next probe
succeeds and the circuit closes. Each change is an event in the run that caused it.

    python examples/circuit_breaker.py
"""

from __future__ import annotations

import trio
from asm_router import RouterOptions, RouterProvider

import asm
from asm.events import CircuitClosed, CircuitHalfOpen, CircuitOpened, RouteSelected
from asm.ports import Emit
from asm.stores.memory import InMemorySessionStore


class Primary:
    """Overloaded until ``fixed``."""

    name = "primary"
    fixed = False

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: Emit) -> asm.RunResult:
        if not self.fixed:
            raise asm.AsmError("provider_unavailable", "529 overloaded")
        return asm.RunResult(output="primary")


class Backup:
    name = "backup"

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: asm.RunInput, emit: Emit) -> asm.RunResult:
        return asm.RunResult(output="backup")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def main() -> None:
    clock, primary = Clock(), Primary()
    options = RouterOptions(
        members=["primary", "backup"], failure_threshold=2, failure_window=60, cooldown=10, max_cooldown=300
    )
    router = RouterProvider({"primary": primary, "backup": Backup()}, options, name="smart", clock=clock)
    manager = asm.SessionManager(InMemorySessionStore(), provider=router)

    async def step(at: float, what: str) -> None:
        clock.now = at
        run = await manager.run_once("hi")
        notes = []
        for event in (await manager.store.read_events(run.session_id)).events:
            data = event.data
            if isinstance(data, CircuitOpened):
                notes.append(f"circuit_opened (cooldown {data.cooldown_s:g}s)")
            elif isinstance(data, CircuitHalfOpen | CircuitClosed):
                notes.append(data.type.value)
            elif isinstance(data, RouteSelected) and data.skipped and data.skipped[0].reason == "circuit_open":
                notes.append("primary skipped: " + data.skipped[0].detail)
        (circuit,) = router.status().members[0].circuits
        print(f"t={at:>4g}s {what:<22} -> {run.output:<7} circuit {circuit.state.value:<9} {'; '.join(notes)}")

    await step(0, "primary fails")
    await step(1, "primary fails again")
    await step(5, "cooling down")
    await step(11, "probe: still failing")
    await step(25, "cooling down (20s)")
    primary.fixed = True
    await step(31, "probe: fixed")
    await step(32, "closed again")
    (circuit,) = router.status().members[0].circuits
    assert circuit.state.value == "closed" and circuit.cooldown_s == 10


if __name__ == "__main__":
    trio.run(main)
