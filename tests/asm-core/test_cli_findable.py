"""Finding one's data with asm-core alone: ``asm config show`` names the store in use
and where it keeps data, ``--json`` too; the commands of a durable store say what to
install instead of argparse's "invalid choice"; every positional argument has help."""

from __future__ import annotations

import argparse
import io
import json
import tomllib
from typing import Any

import pytest

from asm import load_plugins
from asm.cli import _parser, run_cli

pytestmark = pytest.mark.usefixtures("isolated")


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_cli(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_config_show_names_the_default_store_and_where_its_data_is() -> None:
    status, out, err = cli("config", "show")

    assert (status, err) == (0, "")
    assert out.endswith(
        "\n# the store in use: memory (the default, as no store is set); its data: in memory, in this process "
        "only (lost when it exits)\n"
    )
    tomllib.loads(out)  # still TOML


def test_config_show_json_has_the_config_its_sources_and_the_store(isolated: Any) -> None:
    (isolated.project / "asm.toml").write_text('store = "memory"\n[providers.echo]\nprefix = "> "\n')

    status, out, _ = cli("config", "show", "--json")

    shown = json.loads(out)
    assert status == 0
    assert shown["store"] == {
        "name": "memory",
        "chosen_by": "config",
        "location": "in memory, in this process only (lost when it exits)",
    }
    assert shown["config"]["providers"] == {"echo": {"prefix": "> "}}
    assert shown["sources"]["providers.echo.prefix"] == f"project config {isolated.project / 'asm.toml'}"
    assert shown["files"] == [str(isolated.project / "asm.toml")]


def test_config_show_json_masks_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDERS__ECHO__URL", "postgresql://app:hunter2@db/x")

    status, out, _ = cli("config", "show", "--json")

    assert status == 0 and "hunter2" not in out
    assert json.loads(out)["config"]["providers"]["echo"]["url"] == "postgresql://app:***@db/x"


@pytest.mark.parametrize("command", [("sessions", "list"), ("events", "ses_1", "--follow"), ("db", "upgrade")])
def test_a_durable_store_command_says_what_to_install(command: tuple[str, ...]) -> None:
    status, out, err = cli(*command)

    assert (status, out) == (1, "")
    assert err == (
        f"asm: error [plugin_not_found]: 'asm {command[0]}' reads a durable store, and none is installed: "
        "install asm-sqlalchemy (or another durable store) for this command (pip install asm-sqlalchemy)\n"
    )


def test_the_help_lists_them_with_what_to_install() -> None:
    _, out, _ = cli("--help")

    assert "sessions     list and show stored sessions (install asm-sqlalchemy for" in out


def positionals(parser: argparse.ArgumentParser, path: str = "asm") -> list[tuple[str, str | None]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += positionals(sub, f"{path} {name}")
        elif not action.option_strings and action.help != argparse.SUPPRESS:
            found.append((f"{path} {action.dest}", action.help))
    return found


def test_every_positional_argument_has_help() -> None:
    parser = _parser(load_plugins(), io.StringIO(), io.StringIO())

    found = positionals(parser)

    assert ("asm run prompt", found[0][1]) == found[0]
    assert [where for where, text in found if not text] == []
