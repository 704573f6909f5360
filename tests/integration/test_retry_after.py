"""asm's retry honours a real 429's retry-after, through the Claude provider and its fake server."""

from __future__ import annotations

import pytest
import trio
from asm_claude.testing import FakeAnthropicServer, error_reply, text_stream

from asm import RunStatus, load_config, open_runtime
from asm.events import RunRetrying


async def test_a_429_with_retry_after_is_retried_after_that_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with FakeAnthropicServer() as server:
        server.queue(error_reply(429, "rate_limit_error", retry_after=1))
        server.queue(text_stream("Hello after waiting"))
        table = {
            "provider": "claude",
            "store": "memory",
            "retry": {"max_retries": 2},
            # The SDK's own retries off, so the wait is asm's.
            "providers": {"claude": {"base_url": server.url, "sdk_opts": {"max_retries": 0}}},
        }
        async with open_runtime(load_config(table, env={}, user_file="/nonexistent")) as runtime:
            start = trio.current_time()
            run = await runtime.run_once("hi")
            waited = trio.current_time() - start
            events = (await runtime.store.read_events(run.session_id)).events
    assert run.status is RunStatus.COMPLETED and run.output == "Hello after waiting"
    (retry,) = [e.data for e in events if isinstance(e.data, RunRetrying)]
    assert (retry.attempt, retry.delay_s, retry.error_code) == (1, 1.0, "provider_rate_limited")
    assert waited >= 1.0, "the retry-after the server asked for was waited"
    assert len(server.requests) == 2
