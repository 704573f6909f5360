"""The ``asm`` command, run as the installed console script in a subprocess (and
in-process through ``run_cli`` where a subprocess adds nothing)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asm import load_config
from asm._cli_commands import render_config
from asm.cli import run_cli
from asm.events import EventType
from asm.serde import event_from_json

pytestmark = pytest.mark.usefixtures("isolated")

ASM = Path(sys.executable).parent / "asm"


#: The line ``asm run`` starts with on stderr (tests/asm-core/test_cli_run.py checks it).
IDS_LINE = re.compile(r"^session ses_[0-9a-f]+ \u00b7 run run_[0-9a-f]+\n", re.MULTILINE)


def asm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script in the (isolated) cwd and environment; stderr without
    the ids line ``asm run`` starts with."""
    result = subprocess.run(
        [str(ASM), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    result.stderr = IDS_LINE.sub("", result.stderr, count=1)
    return result


def in_process(*args: str) -> tuple[int, str, str]:
    """``run_cli(args)``: the status, stdout and stderr (less the ids line of ``asm run``)."""
    out, err = io.StringIO(), io.StringIO()
    status = run_cli(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), IDS_LINE.sub("", err.getvalue(), count=1)


def assert_one_error_line(stderr: str, code: str) -> str:
    """The error is exactly one line ``asm: error [code]: ...``, with no traceback."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"asm: error [{code}]: ")
    return lines[0]


def write_project_config(places: Any, text: str) -> Path:
    path: Path = places.project / "asm.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- asm run ------------------------------------------------------------------------------


def test_run_prints_the_answer() -> None:
    result = asm("run", "hello", "world")

    assert (result.returncode, result.stdout, result.stderr) == (0, "hello world\n", "")


def test_an_asm_variable_of_another_tool_is_one_warning_line() -> None:
    result = asm("run", "hello", env={"ASM_TMP": "/tmp/other-tool"})

    assert (result.returncode, result.stdout) == (0, "hello\n")
    assert result.stderr == (
        "asm: warning: environment variable ASM_TMP is not an asm setting; ignored (unset it if it was meant for asm)\n"
    )


def test_a_table_for_a_plugin_not_installed_here_is_one_warning_line(isolated: Any) -> None:
    (isolated.project / "asm.toml").write_text('[providers.nope]\nmodel = "x"\n')

    status, out, err = in_process("run", "hello")

    assert (status, out) == (0, "hello\n")
    assert err == (
        f"asm: warning: [providers.nope] (from project config {isolated.project / 'asm.toml'}) configures a "
        "provider that is not installed here; it is ignored (installed: echo, scripted, throwaway, throwaway-tools)\n"
    )


def test_a_misspelt_plugin_table_or_asm_load_plugins_name_is_an_error() -> None:
    Path("asm.toml").write_text("[stores.memroy]\n")
    typo = asm("run", "hello")
    Path("asm.toml").unlink()
    unknown = asm("run", "hello", env={"ASM_LOAD_PLUGINS": "asm-throwawy"})

    assert typo.returncode == unknown.returncode == 2
    assert "did you mean [stores.memory]?" in assert_one_error_line(typo.stderr, "invalid_config")
    assert "did you mean 'asm-throwaway'?" in assert_one_error_line(unknown.stderr, "invalid_config")


def test_run_joins_the_words_after_dashdash_for_a_provider_that_takes_no_argv() -> None:
    status, out, err = in_process("run", "--provider", "echo", "--", "-x", "a  b", "c")

    assert (status, out, err) == (0, "-x a  b c\n", "")


def test_run_json_prints_every_event_as_one_json_line_in_order() -> None:
    result = asm("run", "--json", "hello", "world")

    assert result.returncode == 0, result.stderr
    events = [event_from_json(line) for line in result.stdout.splitlines()]
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[0].type is EventType.SESSION_CREATED
    assert events[-1].type is EventType.SESSION_COMPLETED
    assert len({event.session_id for event in events}) == 1
    assert EventType.MESSAGE_STREAMED in {event.type for event in events}


def test_run_uses_a_third_party_provider_by_name() -> None:
    result = asm("run", "--provider", "throwaway", "hello", "world")

    assert (result.returncode, result.stdout, result.stderr) == (0, "HELLO WORLD!\n", "")


def test_run_reads_the_project_config(isolated: Any) -> None:
    write_project_config(isolated, '[providers.echo]\nprefix = "> "\n')

    result = asm("run", "hi")

    assert result.stdout == "> hi\n"


def test_run_reads_the_user_config(isolated: Any) -> None:
    isolated.user_config.parent.mkdir(parents=True)
    isolated.user_config.write_text('provider = "throwaway"\n', encoding="utf-8")

    result = asm("run", "hi")

    assert result.stdout == "HI!\n"


def test_run_takes_the_provider_from_the_environment() -> None:
    result = asm("run", "hi", env={"ASM_PROVIDER": "throwaway"})

    assert result.stdout == "HI!\n"


def test_run_with_an_explicit_config_file(isolated: Any) -> None:
    other = isolated.project / "conf" / "asm-other.toml"
    other.parent.mkdir()
    other.write_text('[providers.echo]\nprefix = "other: "\n', encoding="utf-8")

    result = asm("run", "--config", str(other), "hi")

    assert result.stdout == "other: hi\n"


def test_a_run_that_times_out_exits_1_with_the_timeout_error(isolated: Any) -> None:
    write_project_config(isolated, "[providers.echo]\ndelay = 60\n")

    status, _, err = in_process("run", "--timeout", "0.05", "slow")

    assert status == 1
    line = assert_one_error_line(err, "timeout")
    assert "run exceeded its timeout of 0.05s" in line


# -- asm plugins ------------------------------------------------------------------------------


def test_plugins_lists_every_plugin_with_its_distribution_version_and_names() -> None:
    result = asm("plugins")

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    core_version = metadata.version("asm-core")
    assert lines[lines.index(f"asm-core {core_version}  [plugin asm-core]") + 1 :][:6] == [
        "  artifact_stores: memory",
        "  commands: artifacts",
        "  providers: echo, scripted",
        "  renderers: compact",
        "  sinks: callback, file, jsonl, stdout",
        "  stores: memory",
    ]
    assert (
        lines[lines.index("asm-throwaway 0.0.1  [plugin throwaway]") + 1] == "  providers: throwaway, throwaway-tools"
    )


def test_plugins_shows_the_broken_plugin_and_its_error() -> None:
    result = asm("plugins")

    (broken,) = [line for line in result.stdout.splitlines() if line.startswith("BROKEN")]
    assert broken.startswith("BROKEN broken (asm-broken): import failed: ImportError(")
    assert "asm_broken needs a module that is not installed" in broken


def test_plugins_json_is_machine_readable() -> None:
    result = asm("plugins", "--json")

    payload = json.loads(result.stdout)
    plugins = {plugin["name"]: plugin for plugin in payload["plugins"]}
    assert plugins["throwaway"] == {
        "name": "throwaway",
        "distribution": "asm-throwaway",
        "version": "0.0.1",
        "registers": {"providers": ["throwaway", "throwaway-tools"]},
    }
    assert plugins["asm-core"]["registers"]["providers"] == ["echo", "scripted"]
    assert [(b["entry_point"], b["distribution"]) for b in payload["broken"]] == [("broken", "asm-broken")]


def test_asm_load_plugins_limits_what_plugins_lists() -> None:
    result = asm("plugins", "--json", env={"ASM_LOAD_PLUGINS": ""})

    payload = json.loads(result.stdout)
    assert [plugin["name"] for plugin in payload["plugins"]] == ["asm-core"]
    assert payload["broken"] == []


# -- asm config show ----------------------------------------------------------------------------


def test_config_show_names_the_source_of_each_value(isolated: Any) -> None:
    project_file = write_project_config(isolated, 'run_timeout = 30\n[providers.echo]\nprefix = "> "\n')

    result = asm("config", "show", env={"ASM_PROVIDER": "throwaway"})

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert 'provider = "throwaway"  # environment variable ASM_PROVIDER' in lines
    assert f"run_timeout = 30.0  # project config {project_file}" in lines
    assert 'artifact_store = "memory"  # default' in lines
    assert f"[providers.echo]  # project config {project_file}" in lines
    assert f'prefix = "> "  # project config {project_file}' in lines


def test_config_show_says_a_setting_is_unset() -> None:
    status, out, _ = in_process("config", "show")

    assert status == 0
    assert "# run_timeout is unset  # default" in out.splitlines()


def test_config_show_prints_toml_that_reads_back_as_the_config(isolated: Any) -> None:
    write_project_config(
        isolated,
        "run_timeout = inf\n"
        '[providers.scripted]\nchunks = ["a", "b"]\ndelay = 0.5\n'
        '[providers."my.plugin"]\noptions = { depth = 2, "odd key" = "x\\ny" }\nflag = true\n'
        '[redact_patterns]\nticket = "T-[0-9]+"\n[workspace]\npath = "."\nrollback_on = ["failed"]\n',
    )

    status, out, _ = in_process("config", "show")

    assert status == 0
    parsed = tomllib.loads(out)
    assert parsed["run_timeout"] == float("inf")
    assert parsed["providers"] == {
        "scripted": {"chunks": ["a", "b"], "delay": 0.5},
        "my.plugin": {"options": {"depth": 2, "odd key": "x\ny"}, "flag": True},
    }
    assert parsed["redact_patterns"] == {"ticket": "T-[0-9]+"}  # plain tables, not plugin tables
    assert parsed["workspace"] == {"path": ".", "rollback_on": ["failed"]}


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
toml_values = st.recursive(
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
plugin_tables = st.dictionaries(text.filter(bool), st.dictionaries(text, toml_values, max_size=3), max_size=3)


@settings(max_examples=75, deadline=None)
@given(providers=plugin_tables, provider=text.filter(bool))
def test_config_show_output_reads_back_whatever_the_values(providers: dict[str, Any], provider: str) -> None:
    loaded = load_config({"provider": provider, "providers": providers}, env={}, user_file="/nonexistent")

    parsed = tomllib.loads(render_config(loaded))

    assert parsed["provider"] == provider
    assert parsed.get("providers", {}) == providers


def test_config_show_with_a_config_file(isolated: Any) -> None:
    other = isolated.project / "other.toml"
    other.write_text('renderer = "compact"\n', encoding="utf-8")

    status, out, _ = in_process("config", "show", "--config", str(other))

    assert status == 0
    assert f'renderer = "compact"  # project config {other}' in out.splitlines()


# -- errors ------------------------------------------------------------------------------------


def test_an_empty_prompt_exits_2_with_one_error_line() -> None:
    result = asm("run", "  ")

    assert result.returncode == 2
    line = assert_one_error_line(result.stderr, "validation_error")
    assert "the prompt is empty (or only whitespace); pass a prompt to run" in line
    assert result.stdout == ""


def test_a_malformed_config_exits_2_naming_the_file(isolated: Any) -> None:
    project_file = write_project_config(isolated, "provider = \n")

    result = asm("run", "hi")

    assert result.returncode == 2
    line = assert_one_error_line(result.stderr, "invalid_config")
    assert f"{project_file} is not valid TOML" in line


def test_an_unknown_config_key_exits_2_naming_the_key(isolated: Any) -> None:
    write_project_config(isolated, "run_timout = 3\n")

    result = asm("config", "show")

    assert result.returncode == 2
    line = assert_one_error_line(result.stderr, "invalid_config")
    assert "unknown config key 'run_timout'; did you mean 'run_timeout'?" in line


def test_an_unknown_asm_variable_exits_2_naming_it() -> None:
    result = asm("run", "hi", env={"ASM_PROVIDR": "echo"})

    assert result.returncode == 2
    assert "environment variable ASM_PROVIDR" in assert_one_error_line(result.stderr, "invalid_config")


def test_an_unknown_provider_exits_1_listing_the_installed_ones() -> None:
    result = asm("run", "--provider", "claude", "hi")

    assert result.returncode == 1
    line = assert_one_error_line(result.stderr, "provider_not_found")
    assert "no provider named 'claude'; installed: echo, scripted, throwaway" in line
    assert "broken (asm-broken" in line


def test_a_missing_config_file_exits_2(isolated: Any) -> None:
    result = asm("run", "--config", "missing.toml", "hi")

    assert result.returncode == 2
    assert "does not exist" in assert_one_error_line(result.stderr, "invalid_config")


def test_a_bad_timeout_exits_2() -> None:
    status, _, err = in_process("run", "--timeout", "-1", "hi")

    assert status == 2
    line = assert_one_error_line(err, "validation_error")
    assert "argument --timeout: -1 is not a positive number of seconds (leave it out for no limit)" in line


def test_a_timeout_that_is_not_a_number_is_a_usage_error() -> None:
    result = asm("run", "--timeout", "soon", "hi")

    assert result.returncode == 2
    line = assert_one_error_line(result.stderr, "validation_error")
    assert "argument --timeout: 'soon' is not a number of seconds" in line
    assert "see 'asm run --help'" in line


def test_an_unknown_command_is_a_usage_error_in_process() -> None:
    status, out, err = in_process("frobnicate")

    assert status == 2
    assert "invalid choice: 'frobnicate'" in assert_one_error_line(err, "validation_error")
    assert out == ""


# -- help ------------------------------------------------------------------------------------------


def test_help_goes_to_the_given_stdout_and_exits_0() -> None:
    status, out, err = in_process("--help")

    assert status == 0
    assert out.startswith("usage: asm")
    for command in ("run", "plugins", "config"):
        assert command in out
    assert err == ""


def test_no_command_prints_the_help_and_exits_2() -> None:
    status, out, _ = in_process()

    assert status == 2
    assert out.startswith("usage: asm")


def test_config_without_a_subcommand_prints_its_help() -> None:
    status, out, _ = in_process("config")

    assert status == 2
    assert out.startswith("usage: asm config")
    assert "show" in out


def test_the_console_script_is_the_one_next_to_this_python() -> None:
    result = asm("run", "--help")

    assert result.returncode == 0
    assert result.stdout.startswith("usage: asm run")


# -- plugin commands -----------------------------------------------------------------------------

HELLO_COMMAND = """
from asm import AsmError, hookimpl


def hello(args):
    if args.name == "nobody":
        raise AsmError("invalid_input", "say hello to somebody")
    print(f"hello, {args.name}")
    return 3 if args.name == "three" else 0


@hookimpl
def asm_register_commands(register):
    def add(commands):
        parser = commands.add_parser("hello", help="greet someone")
        parser.add_argument("name")
        parser.set_defaults(handler=hello)

    register("hello", add)
"""

BROKEN_COMMAND = """
from asm import hookimpl


@hookimpl
def asm_register_commands(register):
    def add(commands):
        raise RuntimeError("command bug")

    register("oops", add)
"""


def test_a_plugin_command_runs_with_its_arguments(install_plugin: Any) -> None:
    install_plugin("asm-hello", "hello", HELLO_COMMAND)

    result = asm("hello", "world")

    assert (result.returncode, result.stdout, result.stderr) == (0, "hello, world\n", "")


def test_a_plugin_command_exits_with_the_status_it_returns(install_plugin: Any) -> None:
    install_plugin("asm-hello", "hello", HELLO_COMMAND)

    assert asm("hello", "three").returncode == 3


def test_an_error_in_a_plugin_command_is_one_line(install_plugin: Any) -> None:
    install_plugin("asm-hello", "hello", HELLO_COMMAND)

    result = asm("hello", "nobody")

    assert result.returncode == 2
    assert assert_one_error_line(result.stderr, "invalid_input") == (
        "asm: error [invalid_input]: say hello to somebody"
    )


def test_a_command_plugin_that_fails_is_listed_and_the_rest_works(install_plugin: Any) -> None:
    install_plugin("asm-oops", "oops", BROKEN_COMMAND)

    plugins = asm("plugins")
    run = asm("run", "still", "works")

    assert "BROKEN oops (asm-oops): command 'oops' could not be added: RuntimeError('command bug')" in (
        plugins.stdout.splitlines()
    )
    assert (run.returncode, run.stdout) == (0, "still works\n")


def test_a_reader_that_leaves_early_ends_the_run_quietly() -> None:
    """`asm run --json ... | head -1`: no BrokenPipeError traceback; the run goes on to its end
    and is stored; the exit status says the output was lost (141, as for every command)."""
    prompt = "word " * 20_000
    with subprocess.Popen(
        [str(ASM), "run", "--json", prompt], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy()
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read().decode()
        status = process.wait(timeout=60)
    assert json.loads(first)["type"] == "session_created"
    assert IDS_LINE.fullmatch(stderr) and status == 141


def with_closed_stdout(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``asm ARGS`` with stdout on a pipe nobody reads any more (`asm ... | head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        return subprocess.run(
            [str(ASM), *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, env=os.environ.copy()
        )
    finally:
        os.close(write_end)


def test_asm_run_into_a_closed_pipe_exits_141_without_a_traceback() -> None:
    result = with_closed_stdout("run", "--json", "hello")

    assert result.returncode == 141
    assert IDS_LINE.fullmatch(result.stderr)  # the ids line, and no traceback


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_command_whose_reader_left_exits_141_quietly_in_process() -> None:
    err = io.StringIO()
    assert run_cli(["plugins"], stdout=ClosedPipe(), stderr=err) == 141
    assert err.getvalue() == ""


LOUD_COMMAND = """
import sys

from asm import hookimpl


def loud(args):
    for n in range(100_000):
        print(f"line {n}")
        sys.stdout.flush()
    return 0


@hookimpl
def asm_register_commands(register):
    def add(commands):
        commands.add_parser("loud").set_defaults(handler=loud)

    register("loud", add)
"""


def test_a_command_whose_reader_left_exits_141_with_no_traceback(install_plugin: Any) -> None:
    install_plugin("asm-loud", "loud", LOUD_COMMAND)
    # Output that fails while the command runs, and output that fails only at exit.
    for args in (["loud"], ["plugins"]):
        result = with_closed_stdout(*args)
        assert (result.returncode, result.stderr) == (141, ""), args


def run_on_a_terminal(prompt: str, answer: str) -> str:
    """`asm run --provider throwaway-tools PROMPT` with its stdin and stdout on a pseudo-terminal."""
    import pty
    import select

    leader, follower = pty.openpty()
    with subprocess.Popen(
        [str(ASM), "run", "--provider", "throwaway-tools", prompt],
        stdin=follower,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    ) as process:
        os.close(follower)
        seen = b""
        answered = False
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            assert ready, f"no output from asm on the terminal; so far {seen!r}"
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: asm exited
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"[y/N]" in seen:
                os.write(leader, answer.encode() + b"\n")
                answered = True
        status = process.wait(timeout=60)
    os.close(leader)
    assert status == 0, process.stderr.read() if process.stderr else status
    return seen.decode()


@pytest.mark.parametrize(("answer", "outcome"), [("y", "ran rm"), ("n", "did not run rm")])
def test_on_a_terminal_asm_run_asks_before_a_tool_runs(answer: str, outcome: str) -> None:
    screen = run_on_a_terminal("rm -rf build", answer)
    assert 'allow tool rm {"args": "rm -rf build"}? [y/N]' in screen
    assert outcome in screen


def test_without_a_terminal_nobody_is_asked_and_the_tool_is_denied() -> None:
    result = asm("run", "--provider", "throwaway-tools", "rm -rf build")
    assert result.returncode == 0 and result.stdout == "did not run rm\n"
