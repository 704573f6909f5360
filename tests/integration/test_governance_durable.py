"""Governance with the durable store: no secret reaches the SQLite file, and computed costs add
up in the QueryAPI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import asm
from asm import TokenUsage
from asm.events import (
    TokenUsageUpdated,
)
from asm.providers.scripted import ScriptedProvider
from asm.testing.secrets import SECRET_TEXT as TEXT
from asm.testing.secrets import SECRETS, leaky_provider


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for name in [n for n in os.environ if n.startswith("ASM_")]:
        monkeypatch.delenv(name)
    return tmp_path


async def test_no_secret_reaches_the_sqlite_file_or_the_jsonl_file(places: Path) -> None:
    database = places / "asm.db"
    jsonl = places / "events.jsonl"
    config = asm.load_config({"store": "sqlite", "stores.sqlite.path": str(database), "sinks.jsonl.path": str(jsonl)})
    async with asm.open_runtime(config) as runtime:
        run = await runtime.run_once(f"deploy with {TEXT}", provider=leaky_provider())
        assert run.status is asm.RunStatus.FAILED
        stored = (await runtime.store.read_events(run.session_id)).events
        assert len(stored) > 15
    files = [database, *sorted(places.glob("asm.db-*")), jsonl]  # noqa: ASYNC240 - the WAL too, if it is still there
    for path in files:
        raw = path.read_bytes()
        leaked = [kind for kind, secret in SECRETS.items() if secret.encode() in raw]
        assert leaked == [], f"{path.name} holds {leaked}"
    assert b"[REDACTED:anthropic_key]" in database.read_bytes() + jsonl.read_bytes()


async def test_computed_costs_add_up_in_the_query_api(places: Path) -> None:
    overrides = {
        "store": "sqlite",
        "stores.sqlite.path": str(places / "asm.db"),
        "pricing.ours.models.m-1.input": 2,
        "pricing.ours.models.m-1.output": 8,
    }
    usage = TokenUsageUpdated(TokenUsage(input_tokens=500_000, output_tokens=250_000), model="m-1")
    async with asm.open_runtime(asm.load_config(overrides)) as runtime:
        for _ in range(2):
            run = await runtime.run_once("go", provider=ScriptedProvider(["ok", usage], model="m-1"))
            assert run.cost is not None and run.cost.total_usd == 3
        summary = await runtime.store.usage_summary(group_by="model")  # type: ignore[attr-defined]
    (group,) = [g for g in summary["groups"] if g["key"] == "m-1"]
    assert group["runs"] == 2 and group["cost_usd"] == pytest.approx(6.0)
