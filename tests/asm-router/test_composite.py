"""The composite store passes both contract suites; opening and closing reach both halves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asm_router import CompositeStore, create_composite

from asm import AsmError, assemble, load_config, load_plugins, open_runtime
from asm.stores.memory import InMemoryArtifactStore, InMemorySessionStore
from asm.testing import ArtifactStoreContract, SessionStoreContract


class TestCompositeAsSessionStore(SessionStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[CompositeStore]:
        async with CompositeStore(InMemorySessionStore(), InMemoryArtifactStore()) as store:
            yield store


class TestCompositeAsArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    async def artifact_store(self) -> AsyncIterator[CompositeStore]:
        async with CompositeStore(InMemorySessionStore(), InMemoryArtifactStore()) as store:
            yield store


class Tracked(InMemoryArtifactStore):
    closed = 0

    async def aclose(self) -> None:
        Tracked.closed += 1


class TrackedSessions(InMemorySessionStore):
    closed = 0

    async def aclose(self) -> None:
        TrackedSessions.closed += 1


async def test_closing_the_composite_closes_both_stores() -> None:
    Tracked.closed = TrackedSessions.closed = 0
    async with CompositeStore(TrackedSessions(), Tracked()):
        pass
    assert (TrackedSessions.closed, Tracked.closed) == (1, 1)
    await CompositeStore(TrackedSessions(), Tracked()).aclose()
    assert (TrackedSessions.closed, Tracked.closed) == (2, 2)


async def test_a_runtime_on_the_composite_store_runs_and_keeps_artifacts() -> None:
    table = {"store": "composite", "stores": {"composite": {"sessions": "memory", "artifacts": "memory"}}}
    async with open_runtime(load_config(table, env={}, user_file="/nonexistent")) as runtime:
        assert isinstance(runtime.store, CompositeStore)
        run = await runtime.run_once("hi", provider="echo")
        assert run.output == "hi"
        await runtime.store.put("sessions/x/a.txt", b"abc")
        assert await runtime.store.get("sessions/x/a.txt") == b"abc"
        assert [r.id for r in await runtime.store.list_runs(run.session_id)] == [run.id]


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"sessions": "sqlit"}, "sessions = 'sqlit' is not a registered store (installed: "),
        ({"artifacts": "s3"}, "artifacts = 's3' is not a registered artifact store (installed: "),
        ({"sessions": "composite"}, "names itself as its session store"),
        ({"session": "memory"}, "unknown option 'session'"),
    ],
)
def test_bad_composite_tables_are_invalid_config(table: dict[str, Any], fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        assemble(load_config({"store": "composite", "stores": {"composite": table}}, env={}, user_file="/nonexistent"))
    assert caught.value.code == "invalid_config" and fragment in caught.value.message


def test_the_factory_works_without_a_runtime() -> None:
    store = create_composite({}, registry=load_plugins(env={}))
    assert isinstance(store.sessions, InMemorySessionStore) and isinstance(store.artifacts, InMemoryArtifactStore)
