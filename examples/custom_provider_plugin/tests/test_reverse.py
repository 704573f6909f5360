"""asm-reverse's tests: asm's provider contract suite, plus the plugin's own behaviour."""

from __future__ import annotations

import pytest
from asm_reverse import ReverseProvider, create_provider

import asm
from asm.testing import ProviderContract


class TestReverse(ProviderContract):
    """Every test of asm's ProviderContract, run against this provider."""

    @pytest.fixture
    def provider(self) -> ReverseProvider:
        return ReverseProvider()

    @pytest.fixture
    def slow_provider(self) -> ReverseProvider:
        # The cancellation and timeout tests need a run that lasts until it is cancelled.
        return ReverseProvider(delay=60)


async def test_streams_the_prompt_reversed() -> None:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=ReverseProvider(chunk_size=2))
    run = (await manager.run_once("hello")).raise_for_status()
    assert run.output == "olleh"
    page = await manager.store.read_events(run.session_id, types=["message_streamed"])
    assert [e.data.delta for e in page.events] == ["ol", "le", "h"]  # type: ignore[attr-defined]


def test_config_table_is_checked() -> None:
    assert create_provider({"chunk_size": 2}).chunk_size == 2
    with pytest.raises(asm.AsmError, match="chunk_sise") as caught:
        create_provider({"chunk_sise": 2})
    assert caught.value.code == "invalid_config"


def test_registered_under_its_entry_point() -> None:
    registry = asm.load_plugins()
    assert "reverse" in registry.names("providers")
    assert isinstance(registry.create("providers", "reverse", {}), ReverseProvider)
