"""A plugin whose hook name is misspelt is BROKEN in ``asm plugins``, with a
did-you-mean, instead of silently registering nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from asm import load_plugins
from asm.cli import run_cli

pytestmark = pytest.mark.usefixtures("isolated")

MARKED = """
    from asm import hookimpl

    @hookimpl
    def asm_register_provider(register):
        register("never", lambda config: None)
"""

UNMARKED = """
    from asm import hookimpl

    @hookimpl
    def asm_register_providers(register):
        register("half", lambda config: None)

    def asm_run_finish(session, run):
        pass
"""


def plugins_json() -> dict[str, object]:
    out = io.StringIO()
    assert run_cli(["plugins", "--json"], stdout=out, stderr=io.StringIO()) == 0
    listing: dict[str, object] = json.loads(out.getvalue())
    return listing


def test_a_hookimpl_with_no_hookspec_makes_the_plugin_broken(install_plugin: Callable[..., Path]) -> None:
    install_plugin("asm-typo", "typo", MARKED)

    out = io.StringIO()
    status = run_cli(["plugins"], stdout=out, stderr=io.StringIO())

    assert status == 0
    assert (
        "BROKEN typo (asm-typo): unknown hook 'asm_register_provider'; did you mean 'asm_register_providers'? "
        "(asm.hookspecs lists the hooks a plugin may implement)"
    ) in out.getvalue().splitlines()
    assert {"entry_point": "typo", "distribution": "asm-typo"}.items() <= next(
        b
        for b in plugins_json()["broken"]
        if b["entry_point"] == "typo"  # type: ignore[attr-defined]
    ).items()


def test_an_unmarked_asm_function_is_a_misspelt_hook_and_nothing_of_the_plugin_loads(
    install_plugin: Callable[..., Path],
) -> None:
    install_plugin("asm-half", "half", UNMARKED)

    registry = load_plugins()

    (broken,) = [b for b in registry.broken if b.entry_point == "half"]
    assert broken.error.startswith("unknown hook 'asm_run_finish'; did you mean 'asm_run_finished'?")
    assert "half" not in registry.names("providers")
    assert not registry.manager.has_plugin("half")
