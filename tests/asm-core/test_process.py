"""asm.process: the subprocess runner under the CLI providers, with real child processes."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from asm.errors import AsmError
from asm.events import (
    CostUpdated,
    ErrorOccurred,
    EventData,
    MessageReceived,
    MessageStreamed,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.model import Cost, RunInput, TokenUsage
from asm.process import (
    DEFAULT_ENV_ALLOWLIST,
    CLIOptions,
    CLIProcess,
    IncrementalText,
    JsonLineReader,
    StreamJsonTranslator,
    build_env,
    check_cwd,
    classify_failure,
    find_executable,
    open_cli_process,
    parse_json_line,
    run_options,
)

MARKER = f"/nonexistent/asm-process-test-{uuid.uuid4().hex}"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that is not ours counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")


def marked_processes() -> list[int]:
    """Live processes started by this module: their PATH holds MARKER."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if MARKER.encode() in environ:
                found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True, scope="module")
def no_process_left() -> Iterator[None]:
    """Every child of these tests carries MARKER on its PATH; none may outlive the module."""
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{old}{os.pathsep}{MARKER}"
    try:
        yield
    finally:
        os.environ["PATH"] = old
    assert marked_processes() == [], "processes started by the tests are still running"


def script(source: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(source)]


async def all_lines(proc: CLIProcess) -> list[bytes]:
    lines = []
    while batch := await proc.receive_lines():
        lines.extend(batch)
    return lines


def pids_from(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


async def test_lines_are_framed_and_batched() -> None:
    argv = script(
        r"""
        import sys
        sys.stdout.buffer.write(b'{"a": 1}\n\n{"b": 2}\r\n   \n{"c": ')
        sys.stdout.buffer.flush()
        sys.stdout.buffer.write(b'3}\nlast-without-newline')
        """
    )
    seen: list[bytes] = []
    async with open_cli_process(argv, provider="test") as proc:
        while batch := await proc.receive_lines():
            seen.extend(batch)
        assert await proc.receive_lines() == []
        assert await proc.wait() == 0
    assert seen == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}', b"last-without-newline"]
    assert [parse_json_line(line) for line in seen] == [{"a": 1}, {"b": 2}, {"c": 3}, None]


async def test_a_line_over_the_limit_fails_and_stops_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    argv = script(
        f"""
        import os, sys, time
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        sys.stdout.write('{{"ok": 1}}\\n' + "x" * 200000)
        sys.stdout.flush()
        time.sleep(3600)
        """
    )
    with pytest.raises(AsmError) as caught:
        async with open_cli_process(argv, provider="test", max_line_bytes=65536) as proc:
            while await proc.receive_lines():
                pass
    assert caught.value.code == "provider_error"
    error = caught.value.details["provider_error"]
    assert error.kind == "line_too_long"
    assert "65,536" in error.message and "max_line_bytes" in error.message
    assert not alive(pids_from(pidfile)[0])


async def test_stderr_is_drained_bounded_and_cut() -> None:
    argv = script(
        """
        import sys
        sys.stderr.write(("boom " * 20 + "\\n") * 100000)  # ~10 MB
        print('{"partial": true}')
        sys.exit(3)
        """
    )
    async with open_cli_process(argv, provider="test", error_text_max_bytes=1000, error_text_max_lines=5) as proc:
        lines = await all_lines(proc)
        code = await proc.wait()
        error = proc.provider_error("exit", "test exited with status 3")
    assert lines == [b'{"partial": true}']
    assert code == 3
    assert error.exit_code == 3
    assert error.truncated is True
    assert error.stderr is not None
    assert error.stderr.count("\n") <= 4 and len(error.stderr.encode()) <= 1000
    assert error.stderr.startswith("boom boom")


async def test_environment_is_the_allow_list_plus_additions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_TEST_SECRET", "do-not-leak")
    monkeypatch.setenv("ASM_TEST_WANTED", "yes")
    env = build_env(extra_allow=("ASM_TEST_WANTED",), set={"ASM_TEST_ADDED": "1"})
    assert "ASM_TEST_SECRET" not in env
    assert set(env) <= {*DEFAULT_ENV_ALLOWLIST, "ASM_TEST_WANTED", "ASM_TEST_ADDED"}
    argv = script("import json, os; print(json.dumps(dict(os.environ)))")
    async with open_cli_process(argv, provider="test", env=env) as proc:
        child_env = parse_json_line(b"".join(await all_lines(proc)))
        await proc.wait()
    assert child_env["ASM_TEST_WANTED"] == "yes"
    assert child_env["ASM_TEST_ADDED"] == "1"
    assert "ASM_TEST_SECRET" not in child_env


def test_build_env_rejects_non_string_values() -> None:
    with pytest.raises(AsmError) as caught:
        build_env(set={"N": 1})  # type: ignore[dict-item]
    assert caught.value.code == "invalid_config"


async def test_cwd_and_stdin(tmp_path: Path) -> None:
    argv = script("import os, sys; print(os.getcwd()); print(sys.stdin.read().upper())")
    async with open_cli_process(argv, provider="test", cwd=str(tmp_path), stdin=b"hello\n") as proc:
        lines = await all_lines(proc)
        assert await proc.wait() == 0
    assert lines == [str(tmp_path).encode(), b"HELLO"]


def test_check_cwd(tmp_path: Path) -> None:
    assert check_cwd(tmp_path, provider="test") == str(tmp_path)
    assert check_cwd(None, provider="test") is None
    with pytest.raises(AsmError) as caught:
        check_cwd(tmp_path / "missing", provider="codex")
    assert caught.value.code == "invalid_config"
    assert "missing" in str(caught.value) and "does not exist" in str(caught.value)
    with pytest.raises(AsmError) as caught:
        check_cwd(tmp_path / "missing", provider="codex", code="invalid_input")
    assert caught.value.code == "invalid_input"


def test_find_executable(tmp_path: Path) -> None:
    assert find_executable(sys.executable, provider="test", install_hint="-") == sys.executable
    assert Path(find_executable("sh", provider="test", install_hint="-")).name == "sh"
    with pytest.raises(AsmError) as caught:
        find_executable("no-such-cli-xyz", provider="codex", install_hint="npm install -g @openai/codex")
    assert caught.value.code == "provider_not_found"
    message = str(caught.value)
    assert "'no-such-cli-xyz'" in message and "npm install -g @openai/codex" in message and "'path'" in message
    assert caught.value.details["provider_error"].kind == "executable_not_found"
    not_executable = tmp_path / "cli"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(AsmError) as caught:
        find_executable(str(not_executable), provider="codex", install_hint="-")
    assert caught.value.code == "provider_not_found"
    assert "is not an executable file" in str(caught.value)


async def test_timeout_stops_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    argv = script(f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(3600)")
    with pytest.raises(AsmError) as caught:
        async with open_cli_process(argv, provider="test", timeout=0.5) as proc:
            while await proc.receive_lines():
                pass
    assert caught.value.code == "provider_timeout"
    assert caught.value.details["provider_error"].kind == "timeout"
    assert "0.5s" in str(caught.value)
    assert not alive(pids_from(pidfile)[0])


IGNORES_SIGTERM_AND_FORKS = """
    import os, signal, time
    def note():
        with open({pidfile!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    note()
    if os.fork() == 0:  # a child, deaf to SIGTERM too
        note()
        time.sleep(3600)
        os._exit(0)
    if os.fork() == 0:  # a grandchild, orphaned by its parent (double fork), still in the group
        if os.fork() == 0:
            note()
            time.sleep(3600)
            os._exit(0)
        os._exit(0)
    while len(open({pidfile!r}).read().split()) < 3:
        time.sleep(0.01)
    print('{{"ready": true}}', flush=True)
    time.sleep(3600)
"""


async def test_cancel_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    argv = script(IGNORES_SIGTERM_AND_FORKS.format(pidfile=str(pidfile)))
    with trio.CancelScope() as scope:
        async with open_cli_process(argv, provider="test", terminate_grace=0.3) as proc:
            while await proc.receive_lines():
                scope.cancel()  # the group is complete: cancel while all of it ignores SIGTERM
    assert scope.cancelled_caught
    pids = pids_from(pidfile)
    assert len(pids) >= 3, pids  # the child, its child and the detached grandchild
    assert [pid for pid in pids if alive(pid)] == []
    assert proc.returncode is not None and proc.returncode < 0  # killed, and reaped: no zombie


async def test_processes_left_behind_after_a_normal_exit_are_stopped(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    argv = script(
        f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print('{{"done": true}}')
        """
    )
    async with open_cli_process(argv, provider="test", terminate_grace=0.5) as proc:
        lines = await all_lines(proc)
        assert await proc.wait() == 0
    assert lines == [b'{"done": true}']
    assert not alive(pids_from(pidfile)[0])


async def test_a_child_left_holding_stdout_does_not_keep_the_reader_waiting(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    argv = script(
        f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # inherits stdout
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print('{{"done": true}}')
        """
    )
    async with open_cli_process(argv, provider="test", terminate_grace=0.5) as proc:
        lines = await all_lines(proc)  # EOF comes once the leftover child is stopped
        assert await proc.wait() == 0
    assert lines == [b'{"done": true}']
    assert not alive(pids_from(pidfile)[0])


async def test_stdout_and_stderr_can_be_merged() -> None:
    argv = script(
        "import sys; sys.stderr.write('warn 1\\n'); sys.stderr.flush(); print('out', flush=True); sys.exit(2)"
    )
    async with open_cli_process(argv, provider="test", merge_output=True) as proc:
        assert proc.output_chunks is not None
        received: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        async for stream, chunk in proc.output_chunks:
            received[stream] += chunk
        assert await proc.wait() == 2
    assert received == {"stdout": b"out\n", "stderr": b"warn 1\n"}
    assert proc.stderr_text() == ("warn 1\n", False)


async def test_missing_executable_and_cwd_at_start(tmp_path: Path) -> None:
    with pytest.raises(AsmError) as caught:
        async with open_cli_process([str(tmp_path / "nope")], provider="test"):
            pass
    assert caught.value.code == "provider_not_found"
    with pytest.raises(AsmError) as caught:
        async with open_cli_process([sys.executable, "-V"], provider="test", cwd=str(tmp_path / "gone")):
            pass
    assert caught.value.code == "invalid_config"
    assert "working directory" in str(caught.value)
    with pytest.raises(AsmError) as caught:
        async with open_cli_process([], provider="test"):
            pass
    assert caught.value.code == "invalid_input"


def test_incremental_text_never_splits_a_character() -> None:
    decoder = IncrementalText()
    data = "héllo €".encode()
    text = "".join(decoder.feed(data[i : i + 1]) for i in range(len(data))) + decoder.flush()
    assert text == "héllo €"
    assert IncrementalText().feed(b"\xff") == "\ufffd"


@pytest.mark.parametrize(
    ("message", "status", "code"),
    [
        ("unexpected status 529 <unknown status code>: Overloaded", None, "provider_unavailable"),
        ("API Error: 529 Overloaded", 529, "provider_unavailable"),
        ("Rate limit reached for requests", None, "provider_rate_limited"),
        ("status 429", None, "provider_rate_limited"),
        ("Invalid API key", 401, "provider_authentication_failed"),
        ("Out of credits", None, "provider_quota_exceeded"),
        ("something else broke", None, "provider_error"),
    ],
)
def test_classify_failure(message: str, status: int | None, code: str) -> None:
    assert classify_failure(message, status) == code


@attrs.frozen
class _Options(CLIOptions):
    flavour: str = "plain"


def test_run_options_override_and_reject() -> None:
    base = _Options(model="a")
    options, rest = run_options(
        RunInput.coerce("hi", options={"model": "b", "resume": "s1"}), base, "x", extra=("resume",)
    )
    assert options == _Options(model="b") and rest == {"resume": "s1"}
    assert run_options(RunInput.coerce("hi"), base, "x") == (base, {})
    with pytest.raises(AsmError) as caught:
        run_options(RunInput.coerce("hi", options={"colour": "red"}), base, "x")
    assert caught.value.code == "invalid_input" and "'colour'" in str(caught.value)
    with pytest.raises(AsmError) as caught:
        run_options(RunInput.coerce("hi", options={"max_turns": "many"}), base, "x")
    assert caught.value.code == "invalid_input"


def test_sdk_opts_are_checked() -> None:
    assert _Options(sdk_opts={"args": ["--x"], "env": {"A": "1"}}).sdk_args("x") == (["--x"], {"A": "1"})
    for bad in ({"argv": []}, {"args": "--x"}, {"env": {"A": 1}}):
        with pytest.raises(AsmError) as caught:
            _Options(sdk_opts=bad).sdk_args("x")
        assert caught.value.code == "invalid_config"


class _Collect:
    """An ``Emit`` that keeps what it is given."""

    def __init__(self) -> None:
        self.items: list[EventData] = []

    async def __call__(self, data: EventData, /) -> None:
        self.items.append(data)

    async def request_approval(self, tool_call_id: str, tool_name: str, tool_input: dict[str, object]) -> bool:
        return False


async def read_json_lines(output: bytes) -> tuple[list[dict[str, object]], JsonLineReader, _Collect]:
    """What a JsonLineReader reads from a process printing ``output``, the reader, what it emitted."""
    emit = _Collect()
    async with open_cli_process(script(f"import sys; sys.stdout.buffer.write({output!r})"), provider="test") as proc:
        reader = JsonLineReader(proc, emit)
        values = []
        while batch := await reader.receive():
            values.extend(batch)
        await proc.wait()
    return values, reader, emit


async def test_json_line_reader_skips_and_reports_bad_lines() -> None:
    lines = ['{"a": 1}', "not json", "[1, 2]", '{"b": 2}'] + [f"bad {i}" for i in range(10)]
    values, reader, emit = await read_json_lines("\n".join(lines).encode() + b"\n")
    assert values == [{"a": 1}, {"b": 2}]
    assert reader.bad_lines == 12
    assert len(emit.items) == 5  # at most max_reports
    assert all(isinstance(e, ErrorOccurred) and e.error_code == "provider_output" for e in emit.items)


async def test_json_line_reader_reads_what_json_reads_invalid_utf8_replaced() -> None:
    # orjson (when installed) refuses these lines; they are read as the standard library reads them.
    raw = [b'{"text": "ok \xff\xfe"}', b'{"x": NaN}', b'{"n": ' + b"9" * 30 + b"}", b'{"plain": "\xc3\xa9"}']
    values, reader, emit = await read_json_lines(b"\n".join(raw) + b"\n")
    assert values[0] == {"text": "ok \ufffd\ufffd"} and values[1]["x"] != values[1]["x"]  # NaN
    # An integer beyond 64 bits: a float when orjson reads it (as asm.sse reads API events).
    assert values[2]["n"] == pytest.approx(1e30) and values[3] == {"plain": "é"}
    assert reader.bad_lines == 0 and emit.items == []


def test_stream_json_translator() -> None:
    translator = StreamJsonTranslator("test", max_turns=1)
    delta = {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "hm"}}
    text = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}
    out = translator.translate(
        [
            {"type": "system", "subtype": "init", "session_id": "s1", "model": "m"},
            {"type": "stream_event", "event": {"type": "message_start", "message": {"id": "m1"}}},
            {"type": "stream_event", "event": delta},
            {"type": "stream_event", "event": delta},
            {"type": "stream_event", "event": text},
            {"type": "stream_event", "event": text},
            {
                "type": "assistant",
                "message": {
                    "id": "m1",
                    "content": [
                        {"type": "thinking", "thinking": "hmhm"},
                        {"type": "text", "text": "HiHi"},
                        {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a"}},
                    ],
                    "usage": {"input_tokens": 5, "cache_read_input_tokens": 3, "output_tokens": 2},
                },
            },
            {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True}]}},
            {"type": "assistant", "message": {"id": "m2", "content": [{"type": "text", "text": "Done"}]}},
        ]
    )
    assert out == [
        ThinkingStreamed("hmhm"),
        MessageStreamed("HiHi"),
        MessageReceived("HiHi"),
        ToolCallStarted("t1", "Read", {"path": "a"}),
        ToolCallFailed("t1", "Read", "the tool failed"),
        TurnCompleted(1),
        MessageStreamed("Done"),
        MessageReceived("Done"),
    ]
    assert translator.over_turns and translator.session_id == "s1"
    final = translator.translate([{"type": "result", "subtype": "success", "result": "Done", "total_cost_usd": 0.5}])
    # the CLI's own cost before the tokens it covers (so asm computes none beside it); both name the model
    assert final == [
        TurnCompleted(2),
        CostUpdated(Cost(total_usd=0.5), "m"),
        TokenUsageUpdated(TokenUsage(input_tokens=8, output_tokens=2, cache_read_tokens=3), "m"),
    ]
    assert (translator.output, translator.finished, translator.failure) == ("Done", True, None)


def test_stream_json_api_retries_without_their_counts_still_read() -> None:
    translator = StreamJsonTranslator("test")
    out = translator.translate([{"type": "system", "subtype": "api_retry", "error": "overloaded", "attempt": "x"}])
    assert [(e.error_code, e.error_message) for e in out if isinstance(e, ErrorOccurred)] == [
        ("provider_unavailable", "test: API error (overloaded); retrying")
    ]
    line = {"type": "system", "subtype": "api_retry", "attempt": 2, "error_status": 429, "retry_delay_ms": 1500}
    (retry,) = translator.translate([line])
    assert isinstance(retry, ErrorOccurred) and retry.error_code == "provider_rate_limited"
    assert retry.error_message == "test: API error 429 (error); retry 2 in 1.5s"


def test_public_names() -> None:
    """What plugins may import from asm.process (a change here is an API change)."""
    import asm.process

    assert sorted(asm.process.__all__) == [
        "CLIAgentProvider",
        "CLICommand",
        "CLIOptions",
        "CLIProcess",
        "CLIProvider",
        "DEFAULT_ENV_ALLOWLIST",
        "DEFAULT_MAX_LINE_BYTES",
        "DEFAULT_TERMINATE_GRACE",
        "IncrementalText",
        "JsonLineReader",
        "LineTranslator",
        "StreamJsonTranslator",
        "build_env",
        "check_cwd",
        "classify_failure",
        "exit_error",
        "find_executable",
        "open_cli_process",
        "parse_json_line",
        "run_options",
    ]
    assert all(hasattr(asm.process, name) for name in asm.process.__all__)


HOST = """
    import sys, trio
    from asm.process import open_cli_process

    async def main():
        async with open_cli_process(sys.argv[1:], provider="test", terminate_grace=0.3) as proc:
            await proc.receive_lines()  # the whole group is up
            print("ready", flush=True)
            await trio.sleep_forever()

    trio.run(main)
"""


def test_a_killed_host_leaves_no_process_of_the_group(tmp_path: Path) -> None:
    """SIGKILL of the process running open_cli_process (asm itself): no finally
    runs, yet the child's whole group - deaf to SIGTERM, with a grandchild that
    left its parent - is stopped, and nothing of asm's is left running either."""
    pidfile = tmp_path / "pids"
    child = script(IGNORES_SIGTERM_AND_FORKS.format(pidfile=str(pidfile)))
    with subprocess.Popen([*script(HOST), *child], stdout=subprocess.PIPE) as host:
        assert host.stdout is not None
        ready, _, _ = select.select([host.stdout], [], [], 60)
        assert ready and host.stdout.readline() == b"ready\n"
        pids = pids_from(pidfile)
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
        host.kill()
        assert host.wait(timeout=60) == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while marked_processes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [pid for pid in pids if alive(pid)] == []
    assert marked_processes() == []  # the group, and whatever watched over it
