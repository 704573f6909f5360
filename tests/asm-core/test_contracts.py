"""asm-core's own stores and providers against the contract suites of asm.testing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import asm.testing
from asm.events import (
    EventType,
    MessageReceived,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallStarted,
)
from asm.model import TokenUsage
from asm.ports import Provider
from asm.providers.scripted import EchoProvider, ScriptedProvider, Stall
from asm.stores.memory import InMemoryArtifactStore, InMemorySessionStore
from asm.testing import ArtifactStoreContract, ProviderContract, SessionStoreContract, sample_payloads


class TestInMemorySessionStore(SessionStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[InMemorySessionStore]:
        async with InMemorySessionStore() as store:
            yield store


class TestInMemoryArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    async def artifact_store(self) -> AsyncIterator[InMemoryArtifactStore]:
        async with InMemoryArtifactStore() as store:
            yield store


class TestScriptedProvider(ProviderContract):
    @pytest.fixture
    def provider(self) -> Provider:
        return ScriptedProvider.from_text("Hello from the contract suite, streamed in small chunks.", chunk_size=7)

    @pytest.fixture
    def slow_provider(self) -> Provider:
        return ScriptedProvider(["partial ", "answer", Stall()])


class TestScriptedProviderWithTools(ProviderContract):
    prompt = "read a.py and summarize it"

    @pytest.fixture
    def provider(self) -> Provider:
        return ScriptedProvider(
            [
                ThinkingStreamed("I should read the file."),
                ToolCallStarted("call_1", "read_file", {"path": "a.py"}),
                ToolCallCompleted("call_1", "read_file", {"lines": ["print('hi')"], "count": 1}),
                "a.py prints ",
                "hi.",
                MessageReceived("a.py prints hi."),
                TokenUsageUpdated(TokenUsage(12, 5)),
            ]
        )

    @pytest.fixture
    def slow_provider(self) -> Provider:
        return ScriptedProvider([ToolCallStarted("call_1", "bash", {"command": "sleep 100"}), Stall()])


class TestScriptedToolOnlyProvider(ProviderContract):
    emits_text = False
    supports_concurrent_runs = False

    @pytest.fixture
    def provider(self) -> Provider:
        return ScriptedProvider(
            [
                ToolCallStarted("call_1", "write_file", {"path": "out.txt"}),
                ToolCallCompleted("call_1", "write_file", None),
                TokenUsageUpdated(TokenUsage(3, 0)),
            ],
            name="tool-only",
        )

    @pytest.fixture
    def slow_provider(self) -> Provider:
        return ScriptedProvider([Stall()], name="tool-only")


class TestEchoProvider(ProviderContract):
    prompt = "echo these words back one by one"

    @pytest.fixture
    def provider(self) -> Provider:
        return EchoProvider(prefix="echo: ")

    @pytest.fixture
    def slow_provider(self) -> Provider:
        return EchoProvider(delay=60.0)


def test_sample_payloads_cover_every_event_type() -> None:
    """The store suite's round-trip test must exercise every event type."""
    covered = {payload.type for payload in sample_payloads()}
    assert covered == set(EventType)


def test_public_names() -> None:
    """asm.testing exports exactly the contract suites and their helpers."""
    assert sorted(asm.testing.__all__) == [
        "ArtifactStoreContract",
        "INVALID_KEYS",
        "ProviderContract",
        "SessionStoreContract",
        "SinkContract",
        "sample_payloads",
    ]
    for name in asm.testing.__all__:
        assert getattr(asm.testing, name) is not None


def test_strategies_public_names() -> None:
    """asm.testing.strategies exports exactly its strategies."""
    from asm.testing import strategies

    assert sorted(strategies.__all__) == ["cut_session_logs", "events", "json_objects", "json_values", "payloads"]
    for name in strategies.__all__:
        assert callable(getattr(strategies, name))
