"""QueryAPI (sessions, usage aggregates, event search) and Maintenance
(retention, vacuum, health) on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
from asm_sqlalchemy import SqlAlchemyStore

from asm import Cost, Event, Run, RunInput, RunResult, RunStatus, Session, SessionStatus, TokenUsage
from asm.events import ArtifactStored, MessageReceived, MessageStreamed, ToolCallStarted
from asm.ports import Maintenance, QueryAPI, SessionStore

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def test_the_store_implements_every_port(sqlite_url: str) -> None:
    store = SqlAlchemyStore(sqlite_url)
    assert isinstance(store, SessionStore) and isinstance(store, QueryAPI) and isinstance(store, Maintenance)


async def _seed(store: SqlAlchemyStore) -> list[Session]:
    sessions = [
        Session(id="ses_1", agent_id="support", provider="claude", status=SessionStatus.COMPLETED, created_at=T0),
        Session(
            id="ses_2",
            agent_id="support",
            provider="openai",
            status=SessionStatus.FAILED,
            created_at=T0 + timedelta(hours=1),
        ),
        Session(
            id="ses_3",
            agent_id="coder",
            provider="claude",
            status=SessionStatus.ACTIVE,
            created_at=T0 + timedelta(days=1),
        ),
    ]
    for session in sessions:
        await store.save_session(session)
    runs = [
        ("run_1", "ses_1", "claude", "opus", TokenUsage(100, 50, 10, 0), 0.5),
        ("run_2", "ses_1", "claude", "sonnet", TokenUsage(10, 5), 0.25),
        ("run_3", "ses_2", "openai", "gpt", TokenUsage(7, 3), None),
        ("run_4", "ses_3", "claude", "opus", TokenUsage(1, 1), 0.25),
    ]
    for i, (run_id, session_id, provider, model, usage, cost) in enumerate(runs):
        result = RunResult(output="x", usage=usage, model=model, cost=Cost(cost) if cost is not None else None)
        await store.save_run(
            Run(
                id=run_id,
                session_id=session_id,
                input=RunInput.coerce("q"),
                status=RunStatus.COMPLETED,
                provider=provider,
                created_at=T0 + timedelta(minutes=i),
                result=result,
                usage=usage,
            )
        )
    return sessions


async def test_search_sessions_by_agent_status_provider_and_time(store: SqlAlchemyStore) -> None:
    await _seed(store)

    async def ids(**filters: object) -> list[str]:
        return [s.id for s in await store.search_sessions(**filters)]

    assert await ids(agent_id="support") == ["ses_2", "ses_1"]
    assert await ids(provider="claude") == ["ses_3", "ses_1"]
    assert await ids(status="failed") == ["ses_2"]
    assert await ids(status=SessionStatus.ACTIVE, agent_id="coder") == ["ses_3"]
    assert await ids(since=T0 + timedelta(minutes=30), until=T0 + timedelta(days=2)) == ["ses_3", "ses_2"]
    assert await ids(limit=1, offset=1) == ["ses_2"]
    found = await store.search_sessions(agent_id="coder")
    assert found[0].status is SessionStatus.ACTIVE and found[0].created_at == T0 + timedelta(days=1)


async def test_usage_summary_per_session_agent_provider_and_model(store: SqlAlchemyStore) -> None:
    await _seed(store)

    def brief(summary: dict[str, object]) -> list[tuple[object, ...]]:
        groups = summary["groups"]
        assert isinstance(groups, list)
        return [(g["key"], g["runs"], g["total_tokens"], g["cost_usd"]) for g in groups]

    assert brief(await store.usage_summary(group_by="agent")) == [("coder", 1, 2, 0.25), ("support", 3, 175, 0.75)]
    assert brief(await store.usage_summary(group_by="provider")) == [("claude", 3, 167, 1.0), ("openai", 1, 10, None)]
    assert brief(await store.usage_summary(group_by="model")) == [
        ("gpt", 1, 10, None),
        ("opus", 2, 152, 0.75),
        ("sonnet", 1, 15, 0.25),
    ]
    assert brief(await store.usage_summary(group_by="session", agent_id="support")) == [
        ("ses_1", 2, 165, 0.75),
        ("ses_2", 1, 10, None),
    ]
    summary = await store.usage_summary(provider="claude", since=T0 + timedelta(minutes=1))
    assert summary["total"] == {
        "runs": 2,
        "input_tokens": 11,
        "output_tokens": 6,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "total_tokens": 17,
        "cost_usd": 0.5,
    }


async def test_search_events_by_type_and_text(store: SqlAlchemyStore) -> None:
    await _seed(store)
    events = [
        Event.new(MessageStreamed("The Quick brown fox"), session_id="ses_1", run_id="run_1"),
        Event.new(MessageReceived('she said "50% off_sale"'), session_id="ses_2"),
        Event.new(ToolCallStarted("t1", "grep", {"pattern": "quick"}), session_id="ses_3"),
        Event.new(MessageStreamed("nothing here"), session_id="ses_3"),
    ]
    stored = await store.append_events(events)

    async def ids(**filters: object) -> list[str]:
        return [e.id for e in await store.search_events(**filters)]

    assert await ids(text="quick") == [stored[0].id, stored[2].id], "text search is case-insensitive"
    assert await ids(text="quick", types=["message_streamed"]) == [stored[0].id]
    assert await ids(text='"50% off_sale"') == [stored[1].id], "quotes, % and _ are matched literally"
    assert await ids(text="50%_off") == []
    assert await ids(types=["tool_call_started", "message_received"]) == [stored[1].id, stored[2].id]
    assert await ids(session_id="ses_3") == [stored[2].id, stored[3].id]
    assert await ids(types=["message_streamed"], limit=1) == [stored[0].id]
    found = await store.search_events(run_id="run_1")
    assert found == [stored[0]]


async def test_events_are_searched_by_their_instant_whatever_their_timezone(store: SqlAlchemyStore) -> None:
    """The ``at`` column is naive UTC, so ``since``/``until`` compare instants: an event at
    13:00+02:00 is at 11:00 UTC, a naive time is taken as UTC, and each reads back as it was."""
    plus_two = timezone(timedelta(hours=2))
    times = [
        T0.astimezone(plus_two) - timedelta(hours=1),  # 11:00 UTC, written as 13:00+02:00
        T0.replace(tzinfo=None),  # 12:00, naive: UTC
        T0 + timedelta(microseconds=5),
        (T0 + timedelta(hours=1)).replace(microsecond=0),
    ]
    events = [Event("evt_" + str(i), "ses_at", None, MessageStreamed("x"), at) for i, at in enumerate(times)]
    stored = await store.append_events(events)

    async def ids(**window: datetime) -> list[str]:
        return [e.id for e in await store.search_events(session_id="ses_at", **window)]

    assert await ids(until=T0 - timedelta(minutes=30)) == ["evt_0"]
    assert await ids(since=T0, until=T0 + timedelta(microseconds=1)) == ["evt_1"]
    assert await ids(since=T0 + timedelta(microseconds=1)) == ["evt_2", "evt_3"]
    assert list((await store.read_events("ses_at")).events) == stored, "each time reads back as written"


async def test_retention_deletes_old_sessions_with_runs_events_and_artifact_refs(store: SqlAlchemyStore) -> None:
    now = datetime.now(UTC)
    old = Session(id="ses_old", agent_id="a", created_at=now - timedelta(days=40), updated_at=now - timedelta(days=31))
    new = Session(id="ses_new", agent_id="a", created_at=now - timedelta(days=40), updated_at=now - timedelta(days=1))
    for session in (old, new):
        await store.save_session(session)
        await store.save_run(Run(id=f"run_{session.id}", session_id=session.id, input=RunInput.coerce("q")))
        await store.append_events(
            [
                Event.new(MessageStreamed("a"), session_id=session.id),
                Event.new(ArtifactStored(f"runs/{session.id}/out.txt", 3), session_id=session.id),
            ]
        )
    assert await store.artifact_keys("ses_old") == ["runs/ses_old/out.txt"]
    counts = await store.apply_retention(max_age_days=30)
    assert counts == {"sessions": 1, "runs": 1, "events": 2, "artifact_refs": 1}
    assert [s.id for s in await store.search_sessions(agent_id="a")] == ["ses_new"]
    assert await store.latest_seq("ses_old") == 0
    assert await store.latest_seq("ses_new") == 2
    assert await store.apply_retention(max_age_days=30) == {"sessions": 0, "runs": 0, "events": 0, "artifact_refs": 0}


async def test_vacuum_and_health_check(store: SqlAlchemyStore) -> None:
    await _seed(store)
    await store.vacuum()
    assert await store.health_check() == []
    assert [s.id for s in await store.search_sessions(agent_id="coder")] == ["ses_3"]


async def test_health_check_reports_an_unreachable_database() -> None:
    store = SqlAlchemyStore("postgresql+psycopg://nobody:pw@127.0.0.1:1/db")
    problems = await store.health_check()
    assert len(problems) == 1 and problems[0].startswith("storage_connection_failed")
    await store.aclose()


async def test_a_saved_run_round_trips_with_its_status(store: SqlAlchemyStore) -> None:
    run = Run(id="run_rt", session_id="ses_rt", input=RunInput.coerce("q"), status=RunStatus.RUNNING)
    await store.save_run(run)
    assert await store.get_run("run_rt") == run
    finished = attrs.evolve(run, status=RunStatus.COMPLETED)
    await store.save_run(finished)
    assert await store.list_runs("ses_rt", status=RunStatus.COMPLETED) == [finished]


async def test_the_model_column_is_the_runs_model_whatever_its_end(store: SqlAlchemyStore) -> None:
    # A failed run has no result; the model it ran on (say, codex's configured one) is Run.model.
    await store.save_session(Session(id="ses_m", agent_id="a", provider="codex", created_at=T0))
    failed = Run(
        id="run_m",
        session_id="ses_m",
        input=RunInput.coerce("q"),
        status=RunStatus.FAILED,
        provider="codex",
        usage=TokenUsage(4, 2),
        model="gpt-5-codex",
    )
    await store.save_run(failed)
    assert await store.get_run("run_m") == failed
    summary = await store.usage_summary(group_by="model")
    assert [(g["key"], g["runs"]) for g in summary["groups"]] == [("gpt-5-codex", 1)]
