"""asm-gemini with asm-pricing: a gemini run against the fake Gemini server is priced by the google table."""

from __future__ import annotations

from decimal import Decimal

import pytest
from asm_gemini import GeminiProvider
from asm_gemini.testing import FakeGeminiServer, text_stream

import asm
from asm.events import CostUpdated, EventType

pytestmark = pytest.mark.integration


async def test_a_gemini_run_is_priced() -> None:
    with FakeGeminiServer() as server:
        reply = text_stream("hi", model="gemini-2.5-flash", prompt_tokens=1_000_000, output_tokens=100_000)
        server.queue(reply)
        provider = GeminiProvider(api_key="k", base_url=server.url)
        async with asm.open_runtime(store="memory") as runtime:
            run = await runtime.run_once("go", provider=provider)
            events = (await runtime.store.read_events(run.session_id, types=[EventType.COST_UPDATED])).events
    assert run.status is asm.RunStatus.COMPLETED, run.error
    # $0.30 per million input tokens, $2.50 per million output tokens (thinking included).
    assert [e.data for e in events] == [
        CostUpdated(asm.Cost(Decimal("0.55"), Decimal("0.30"), Decimal("0.25")), "gemini-2.5-flash")
    ]
    assert run.cost == asm.Cost(Decimal("0.55"), Decimal("0.30"), Decimal("0.25"))
