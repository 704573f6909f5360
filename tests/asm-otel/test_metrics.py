"""The metrics: the GenAI histograms as the conventions define them, and asm's counters."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

import asm
from asm.events import CostUpdated, TokenUsageUpdated, ToolCallCompleted, ToolCallStarted, TurnCompleted
from asm.model import Cost, RunInput, RunResult, TokenUsage
from asm.ports import Emit
from asm.providers.scripted import Fail

# gen-ai-metrics.md: the advice for each histogram's ExplicitBucketBoundaries.
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
#: Attributes each GenAI metric may carry (gen-ai-metrics.md), plus gen_ai.tool.name on tool durations.
TOKEN_ATTRIBUTES = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.token.type",
    "gen_ai.request.model",
    "server.port",
    "gen_ai.response.model",
    "server.address",
}
DURATION_ATTRIBUTES = {
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "error.type",
    "gen_ai.request.model",
    "server.port",
    "gen_ai.response.model",
    "server.address",
    "gen_ai.tool.name",
}

SCRIPT = [
    "Reading. ",
    ToolCallStarted("c1", "read_file", {"path": "a.py"}),
    TokenUsageUpdated(TokenUsage(input_tokens=100, output_tokens=20)),
    TurnCompleted(1),
    ToolCallCompleted("c1", "read_file", "x"),
    "Done.",
    TokenUsageUpdated(TokenUsage(input_tokens=150, output_tokens=5)),
    CostUpdated(Cost(total_usd="0.25")),
    TurnCompleted(2),
]


async def test_the_genai_histograms_have_the_conventions_units_buckets_and_attributes(otel: Any) -> None:
    manager = asm.SessionManager(
        asm.InMemorySessionStore(), provider=asm.ScriptedProvider(SCRIPT, model="m"), plugins=otel.registry
    )
    await manager.run_once("go")
    metrics = otel.metrics()
    usage, duration = metrics["gen_ai.client.token.usage"], metrics["gen_ai.client.operation.duration"]
    assert (usage.unit, duration.unit) == ("{token}", "s")
    for point in usage.data.data_points:
        assert list(point.explicit_bounds) == TOKEN_BUCKETS
        assert set(point.attributes) <= TOKEN_ATTRIBUTES
        assert {"gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.token.type"} <= set(point.attributes)
    tokens = {
        (p.attributes["gen_ai.operation.name"], p.attributes["gen_ai.token.type"]): (p.count, p.sum)
        for p in usage.data.data_points
    }
    # One record per model call and token type: two turns.
    assert tokens == {("chat", "input"): (2, 250), ("chat", "output"): (2, 25)}
    operations = {}
    for point in duration.data.data_points:
        assert list(point.explicit_bounds) == DURATION_BUCKETS
        assert set(point.attributes) <= DURATION_ATTRIBUTES
        operations[point.attributes["gen_ai.operation.name"]] = point.count
    assert operations == {"chat": 2, "execute_tool": 1, "invoke_agent": 1}


async def test_runs_started_and_ended_by_status_cost_and_events_stored(otel: Any) -> None:
    store = asm.InMemorySessionStore()
    ok = asm.SessionManager(store, provider=asm.ScriptedProvider(SCRIPT), plugins=otel.registry)
    first = await ok.run_once("one")
    second = await ok.run_once("two")
    failing = asm.ScriptedProvider([Fail(asm.AsmError("provider_unavailable", "down"))])
    third = await ok.run_once("three", provider=failing)
    assert third.status is asm.RunStatus.FAILED
    started = otel.points("asm.runs.started")
    assert sum(p.value for p in started) == 3
    ended = {
        (p.attributes["asm.run.status"], p.attributes.get("error.type")): p.value for p in otel.points("asm.runs.ended")
    }
    assert ended == {("completed", None): 2, ("failed", "provider_unavailable"): 1}
    cost = otel.metrics()["asm.cost"]
    assert cost.unit == "USD"
    assert sum(p.value for p in cost.data.data_points) == 0.5
    stored = {p.attributes["asm.event.type"]: p.value for p in otel.points("asm.events.stored")}
    total = sum([await store.latest_seq(run.session_id) for run in (first, second, third)])
    assert sum(stored.values()) == total
    assert stored["run_completed"] == 2 and stored["run_failed"] == 1 and stored["tool_call_started"] == 2


class Gated:
    """A provider whose runs wait for ``release`` (a test's gate), then echo."""

    name = "gated"

    def __init__(self) -> None:
        self.release = trio.Event()
        self.running = trio.Event()

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        self.running.set()
        await self.release.wait()
        return RunResult(output=run.prompt)


def gauge(otel: Any, name: str) -> int:
    return sum(p.value for p in otel.points(name))


async def test_the_queue_depth_and_active_runs_of_session_servers(otel: Any) -> None:
    provider = Gated()
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider, plugins=otel.registry)
    async with asm.open_session_server(manager, max_concurrent_runs=1) as server:
        ids = [await server.submit(f"job {n}") for n in range(3)]
        with trio.fail_after(30):
            await provider.running.wait()
            # The run's writer delivers its run_started (which takes it off the queue) on its own task.
            await trio.testing.wait_all_tasks_blocked()
        assert (gauge(otel, "asm.server.queue.depth"), gauge(otel, "asm.runs.active")) == (2, 1)
        await server.cancel(ids[2])  # cancelled while queued: it leaves the queue too
        assert gauge(otel, "asm.server.queue.depth") == 1
        provider.release.set()
        await server.drain(timeout=30)
    assert (gauge(otel, "asm.server.queue.depth"), gauge(otel, "asm.runs.active")) == (0, 0)
    assert otel.telemetry.statistics().queued_runs == 0
