"""End to end: a router over claude (its fake server answering 529) and openai (its fake
server answering) completes on openai, and the run's events tell the story."""

from __future__ import annotations

import pytest
from asm_claude.testing import FakeAnthropicServer, error_reply
from asm_openai.testing import FakeOpenAIServer

from asm import RunStatus, load_config, open_runtime
from asm.events import MessageStreamed, RouteFailedOver, RouteSelected, RunCompleted, RunStarted


async def test_a_router_fails_over_from_an_overloaded_claude_to_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeAnthropicServer() as claude, FakeOpenAIServer() as openai:
        claude.queue(error_reply(529, "overloaded_error", "Overloaded"))
        table = {
            "provider": "smart",
            "store": "memory",
            "providers": {
                # The SDKs' own retries off: the failover is the router's.
                "claude": {"base_url": claude.url, "model": "claude-haiku-4-5", "sdk_opts": {"max_retries": 0}},
                "openai": {"base_url": openai.base_url, "model": "gpt-4.1", "sdk_opts": {"max_retries": 0}},
                "smart": {"plugin": "router", "members": ["claude", "openai"]},
            },
        }
        async with open_runtime(load_config(table, env={}, user_file="/nonexistent")) as runtime:
            run = await runtime.run_once("hello from the router")
            events = [e.data for e in (await runtime.store.read_events(run.session_id, run_id=run.id)).events]
    assert run.status is RunStatus.COMPLETED and run.output == "hello from the router"
    assert run.provider == "smart" and run.model is not None and run.model.startswith("gpt-4.1")
    assert (len(claude.requests), len(openai.requests)) == (1, 1)
    story = [type(e).__name__ for e in events if not isinstance(e, MessageStreamed)]
    assert story[:5] == ["RunStarted", "MessageSent", "RouteSelected", "RouteFailedOver", "RouteSelected"]
    assert isinstance(events[0], RunStarted) and events[0].provider == "smart"
    first, second = [e for e in events if isinstance(e, RouteSelected)]
    (failed,) = [e for e in events if isinstance(e, RouteFailedOver)]
    assert (first.member, first.model, second.member, second.model) == (
        "claude",
        "claude-haiku-4-5",
        "openai",
        "gpt-4.1",
    )
    assert (failed.member, failed.error_code) == ("claude", "provider_unavailable")
    assert "529" in failed.error_message or "verloaded" in failed.error_message
    assert isinstance(events[-1], RunCompleted)
    assert run.result is not None and run.result.metadata["router"] == {
        "router": "smart",
        "member": "openai",
        "attempts": 2,
    }
