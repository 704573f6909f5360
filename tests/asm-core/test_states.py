"""The session and run state machines are enforced, by the tables and by the manager."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asm import AsmError, RunStatus, SessionManager, SessionStatus
from asm.providers.scripted import Fail, ScriptedProvider
from asm.states import (
    RUN_TRANSITIONS,
    SESSION_TRANSITIONS,
    check_run_transition,
    check_session_transition,
)
from asm.stores.memory import InMemorySessionStore

S, R = SessionStatus, RunStatus

# The machines as DESIGN.md states them, written out independently of asm.states.
SESSION_ALLOWED = {
    (S.PENDING, S.ACTIVE), (S.PENDING, S.FAILED), (S.PENDING, S.CANCELLED),
    (S.ACTIVE, S.PAUSED), (S.PAUSED, S.ACTIVE),
    (S.ACTIVE, S.COMPLETED), (S.ACTIVE, S.FAILED), (S.ACTIVE, S.CANCELLED),
    (S.PAUSED, S.COMPLETED), (S.PAUSED, S.FAILED), (S.PAUSED, S.CANCELLED),
}  # fmt: skip
RUN_ALLOWED = {
    (R.PENDING, R.RUNNING), (R.PENDING, R.CANCELLED),
    (R.RUNNING, R.COMPLETED), (R.RUNNING, R.FAILED), (R.RUNNING, R.CANCELLED), (R.RUNNING, R.TIMEOUT),
}  # fmt: skip


def test_tables_are_exactly_the_documented_machines() -> None:
    assert {(a, b) for a, targets in SESSION_TRANSITIONS.items() for b in targets} == SESSION_ALLOWED
    assert {(a, b) for a, targets in RUN_TRANSITIONS.items() for b in targets} == RUN_ALLOWED
    assert {s for s in S if s.is_terminal} == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert {r for r in R if r.is_terminal} == {R.COMPLETED, R.FAILED, R.CANCELLED, R.TIMEOUT}


@given(st.lists(st.sampled_from(list(S)), max_size=12))
def test_no_sequence_of_session_transitions_leaves_the_machine(targets: list[SessionStatus]) -> None:
    state = S.PENDING
    for target in targets:
        if (state, target) in SESSION_ALLOWED:
            state = check_session_transition(state, target)
        else:
            with pytest.raises(AsmError) as caught:
                check_session_transition(state, target)
            assert caught.value.code == "invalid_transition"
            assert state.value in caught.value.message and target.value in caught.value.message
    assert state in S


@given(st.lists(st.sampled_from(list(R)), max_size=8))
def test_no_sequence_of_run_transitions_leaves_the_machine(targets: list[RunStatus]) -> None:
    state = R.PENDING
    for target in targets:
        if (state, target) in RUN_ALLOWED:
            state = check_run_transition(state, target)
        else:
            with pytest.raises(AsmError, match="run cannot go") as caught:
                check_run_transition(state, target)
            assert caught.value.code == "invalid_transition"


OPERATIONS = ["activate", "pause", "resume", "complete", "fail", "cancel", "run_ok", "run_fail"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(OPERATIONS), max_size=10))
async def test_manager_operations_follow_the_session_machine(operations: list[str]) -> None:
    """Any sequence of manager calls keeps the stored status on the machine, and
    every refused call is an invalid_transition or session_not_active error."""
    store = InMemorySessionStore()
    manager = SessionManager(store, provider=ScriptedProvider(["ok"]))
    failing = ScriptedProvider([Fail(AsmError("provider_unavailable", "down"))])
    session = await manager.start_session(agent_id="a")
    expected = S.PENDING
    for op in operations:
        target = {
            "activate": S.ACTIVE,
            "pause": S.PAUSED,
            "resume": S.ACTIVE,
            "complete": S.COMPLETED,
            "fail": S.FAILED,
            "cancel": S.CANCELLED,
        }.get(op)
        try:
            if op == "activate":
                await manager.activate_session(session.id)
            elif op == "pause":
                await manager.pause_session(session.id)
            elif op == "resume":
                await manager.resume_session(session.id)
            elif op == "complete":
                await manager.complete_session(session.id)
            elif op == "fail":
                await manager.fail_session(session.id, AsmError("internal_error", "x"))
            elif op == "cancel":
                await manager.cancel_session(session.id)
            else:
                run = await manager.start_run(session.id, "go")
                done = await manager.execute_run(run.id, provider=failing if op == "run_fail" else None)
                assert done.status is (R.FAILED if op == "run_fail" else R.COMPLETED)
        except AsmError as exc:
            if target is None:
                assert exc.code == "session_not_active"
                assert expected is not S.ACTIVE
            else:
                assert exc.code == "invalid_transition"
                assert (expected, target) not in SESSION_ALLOWED or (op == "resume" and expected is not S.PAUSED)
        else:
            if target is not None:
                allowed = (expected, target) in SESSION_ALLOWED and not (op == "resume" and expected is not S.PAUSED)
                assert allowed, f"{op} from {expected} was accepted"
                expected = target
        assert (await store.get_session(session.id)).status is expected
