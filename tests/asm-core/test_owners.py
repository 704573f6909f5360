"""Run owners: telling a live owner from a dead one and from a reused PID."""

from __future__ import annotations

import subprocess

import attrs
import pytest

from asm import ProcessIdentity
from asm.owners import current_owner, owner_state, process_identity

needs_proc = pytest.mark.skipif(current_owner().process.started is None, reason="start times need /proc (Linux)")


def test_this_process_is_a_live_owner() -> None:
    assert owner_state(current_owner()) == "alive"


def test_a_pid_no_process_has_is_a_dead_owner() -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its PID is free
    owner = attrs.evolve(current_owner(), process=ProcessIdentity(child.pid))
    assert owner_state(owner) == "dead"


@needs_proc
def test_a_reused_pid_is_a_dead_owner() -> None:
    me = current_owner()
    assert me.process.started is not None
    reused = attrs.evolve(me, process=ProcessIdentity(me.process.pid, me.process.started + 1))
    assert owner_state(reused) == "dead"


@needs_proc
def test_another_boot_is_a_dead_owner_and_another_host_is_unknown() -> None:
    me = current_owner()
    assert owner_state(attrs.evolve(me, boot_id="another-boot")) == "dead"
    assert owner_state(attrs.evolve(me, host=me.host + "-elsewhere")) == "unknown"


@needs_proc
def test_a_process_identity_carries_its_start_time() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        identity = process_identity(child.pid)
        assert identity.pid == child.pid and identity.started is not None
        assert identity.started >= (current_owner().process.started or 0)
    finally:
        child.kill()
        child.wait()
