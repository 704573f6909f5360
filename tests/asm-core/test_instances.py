"""Named instances: one plugin configured several times under names of its own."""

from __future__ import annotations

import io
from typing import Any

import pytest

from asm import AsmError, assemble, load_config, load_plugins, open_runtime
from asm.cli import run_cli

TWO_ECHOES = {
    "provider": "loud",
    "providers": {
        "loud": {"plugin": "echo", "prefix": "LOUD: "},
        "quiet": {"plugin": "echo", "prefix": "quiet: "},
        "echo": {"prefix": "plain: "},
    },
}


async def test_two_instances_of_one_plugin_live_side_by_side() -> None:
    async with open_runtime(load_config(TWO_ECHOES, env={}, user_file="/nonexistent")) as runtime:
        assert (await runtime.run_once("hi")).output == "LOUD: hi"
        assert (await runtime.run_once("hi", provider="quiet")).output == "quiet: hi"
        assert (await runtime.run_once("hi", provider="echo")).output == "plain: hi"
        assert runtime.provider("quiet").name == "echo"  # built by the echo factory


def test_a_runtimes_registry_builds_an_instance_from_its_own_table() -> None:
    """What a stacking plugin (the router) does with the registry= it is built from."""
    runtime = assemble(load_config(TWO_ECHOES, env={}, user_file="/nonexistent"))
    quiet = runtime.registry.create("providers", "quiet")
    assert quiet.prefix == "quiet: "
    (instance,) = [i for i in runtime.registry.instances() if i.name == "quiet"]
    assert (instance.kind, instance.built_from) == ("providers", "echo")
    assert "quiet" not in load_plugins().names("providers"), "the plugins' own registry is left as it was"


@pytest.mark.parametrize(
    ("providers", "fragment"),
    [
        ({"echo": {"plugin": "scripted"}}, "'echo' is the name of an installed provider"),
        ({"fast": {"plugin": "ecoh"}}, "no provider named 'ecoh' is installed (installed: "),
        ({"fast": {"plugin": "ecoh"}}, "did you mean 'echo'?"),
        ({"a": {"plugin": "echo"}, "b": {"plugin": "a"}}, "'a' is itself an instance"),
        ({"fast": {"plugin": 3}}, "[providers.fast] plugin = 3"),
    ],
)
def test_bad_instances_are_invalid_config_at_assembly(providers: dict[str, Any], fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        assemble(load_config({"providers": providers}, env={}, user_file="/nonexistent"))
    assert caught.value.code == "invalid_config"
    assert fragment in caught.value.message


def test_asm_plugins_lists_the_instances_and_what_they_are_built_from(isolated: Any) -> None:
    (isolated.project / "asm.toml").write_text('[providers.fast]\nplugin = "echo"\nprefix = "> "\n')
    out, err = io.StringIO(), io.StringIO()
    assert run_cli(["plugins"], stdout=out, stderr=err) == 0, err.getvalue()
    assert "named instances (from config)\n  providers.fast: echo [plugin asm-core]\n" in out.getvalue()
