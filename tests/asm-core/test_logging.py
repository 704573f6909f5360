"""asm logs through stdlib logging under the ``asm`` hierarchy and prints nothing itself;
``asm -v`` / ``-vv`` shows INFO / DEBUG on stderr."""

from __future__ import annotations

import io
import logging

import pytest
import trio

import asm
from asm.cli import run_cli
from asm.errors import AsmError
from asm.providers.scripted import Fail, ScriptedProvider
from asm.retry import RetryPolicy, with_retries


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("ASM_LOAD_PLUGINS", raising=False)


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_cli(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_without_v_nothing_is_logged() -> None:
    status, _, err = cli("plugins")
    assert status == 0 and err == ""


def test_v_logs_info_of_the_asm_loggers_on_stderr() -> None:
    status, out, err = cli("-v", "plugins")
    assert status == 0 and "asm-core" in out
    lines = err.splitlines()
    assert any(" INFO asm.plugins: " in line and "plugins loaded" in line for line in lines), err
    assert not any(" DEBUG " in line for line in lines)


def test_vv_logs_debug_too() -> None:
    status, _, err = cli("-vv", "plugins")
    assert status == 0
    assert any(" DEBUG asm.plugins: loaded plugin " in line for line in err.splitlines()), err


def test_the_handler_is_removed_when_the_command_ends() -> None:
    before = list(logging.getLogger("asm").handlers)
    cli("-v", "plugins")
    assert logging.getLogger("asm").handlers == before
    assert logging.getLogger("asm").level == logging.NOTSET


def retried_run() -> asm.Run:
    flaky = ScriptedProvider([Fail(AsmError("provider_unavailable", "try later", retryable=True))])
    attempts = iter([flaky, ScriptedProvider(["ok"])])

    class Flaky:
        name = "flaky"

        def capabilities(self) -> asm.Capabilities:
            return asm.Capabilities()

        async def execute(self, run: asm.RunInput, emit: asm.ports.Emit) -> asm.RunResult:
            return await next(attempts).execute(run, emit)

    provider = with_retries(Flaky(), RetryPolicy(max_retries=1, base_delay=0.0, max_delay=0.0))

    async def main() -> asm.Run:
        manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider)
        return await manager.run_once("hi")

    return trio.run(main)


def test_a_retry_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="asm"):
        run = retried_run()
    assert run.output == "ok"
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.name == "asm.retry"] == [
        ("asm.retry", "INFO", "flaky: attempt 1 failed [provider_unavailable] try later; retrying in 0.00s")
    ]


def test_the_library_prints_nothing_when_logging_is_not_configured(capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, root.handlers = root.handlers, []  # no logging set up at all (pytest's capture removed)
    try:
        retried_run()
        asm.load_plugins()
    finally:
        root.handlers = handlers
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")
