"""Plugin discovery through real entry points: the built-ins, the throwaway plugin
(installed from tests/asm-core/plugins/asm-throwaway) and the broken one (asm-broken)."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import pytest

import asm
from asm import AsmError, hookimpl, load_plugins, parse_options
from asm.events import EventType
from asm.hookspecs import Register
from asm.plugins import BrokenPlugin, PluginInfo, lazy

BUILTINS = {
    "providers": ("echo", "scripted"),
    "stores": ("memory",),
    "artifact_stores": ("memory",),
    "renderers": ("compact",),
    "sinks": ("callback", "file", "jsonl", "stdout"),
    "commands": ("artifacts",),
}
BROKEN_IMPORT = "asm_broken needs a module that is not installed (on purpose)"


class EchoAgain:
    """A second plugin that registers a provider named ``echo``."""

    @hookimpl
    def asm_register_providers(self, register: Register) -> None:
        register("echo", lambda config: asm.EchoProvider(prefix="again: "))


class FailsToRegisterProviders:
    """Its provider hook raises; its sink hook works."""

    @hookimpl
    def asm_register_providers(self, register: Register) -> None:
        raise RuntimeError("provider hook bug")

    @hookimpl
    def asm_register_sinks(self, register: Register) -> None:
        register("survivor", lambda config: None)


class Fragile:
    """A provider whose factory refuses its config."""

    @hookimpl
    def asm_register_providers(self, register: Register) -> None:
        def factory(config: dict[str, Any]) -> asm.EchoProvider:
            raise ValueError(f"needs a model, got {sorted(config)}")

        register("fragile", factory)


def info_of(registry: Any, name: str) -> PluginInfo:
    return next(info for info in registry.plugins() if info.name == name)


# -- built-ins --------------------------------------------------------------------


def test_builtins_are_registered_under_the_asm_core_distribution() -> None:
    registry = load_plugins(env={})

    core = info_of(registry, "asm-core")

    assert core == PluginInfo("asm-core", "asm-core", metadata.version("asm-core"), BUILTINS)


def test_each_builtin_registration_names_its_plugin_and_distribution() -> None:
    registry = load_plugins(env={})

    for kind, names in BUILTINS.items():
        for name in names:
            registration = registry.get(kind, name)
            assert (registration.kind, registration.name) == (kind, name)
            assert (registration.plugin, registration.distribution) == ("asm-core", "asm-core")
            assert registration.version == metadata.version("asm-core")


def test_a_builtin_factory_builds_from_its_config_table() -> None:
    provider = load_plugins(env={}).create("providers", "echo", {"prefix": "> "})

    assert isinstance(provider, asm.EchoProvider)
    assert provider.prefix == "> "


def test_builtins_load_even_without_entry_points() -> None:
    registry = load_plugins(entry_points=False, env={})

    assert registry.names("providers") == ["echo", "scripted"]
    assert registry.broken == []
    assert [info.name for info in registry.plugins()] == ["asm-core"]


# -- the throwaway plugin, by entry point ----------------------------------------------------


def test_the_throwaway_plugin_is_installed_with_an_asm_entry_point() -> None:
    (entry_point,) = [ep for ep in metadata.entry_points(group="asm") if ep.name == "throwaway"]

    assert entry_point.value == "asm_throwaway"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "asm-throwaway"


def test_the_throwaway_plugin_is_discovered_through_its_entry_point() -> None:
    registry = load_plugins(env={})

    registration = registry.get("providers", "throwaway")

    assert registration.plugin == "throwaway"
    assert registration.distribution == "asm-throwaway"
    assert registration.version == "0.0.1"
    assert info_of(registry, "throwaway") == PluginInfo(
        "throwaway", "asm-throwaway", "0.0.1", {"providers": ("throwaway", "throwaway-tools")}
    )


@pytest.mark.usefixtures("isolated")
async def test_the_throwaway_provider_runs_end_to_end() -> None:
    async with asm.open_runtime(provider="throwaway") as runtime:
        run = await runtime.run_once("hello plugins")
        page = await runtime.store.read_events(run.session_id)

    assert run.status is asm.RunStatus.COMPLETED
    assert run.output == "HELLO PLUGINS!"
    assert run.provider == "throwaway"
    streamed = [event.data for event in page.events if event.type is EventType.MESSAGE_STREAMED]
    assert [data.delta for data in streamed] == ["HELLO PLUGINS!"]  # type: ignore[attr-defined]


# -- the broken plugin ---------------------------------------------------------------


def test_the_broken_plugin_is_listed_with_its_distribution_and_import_error() -> None:
    registry = load_plugins(env={})

    (broken,) = registry.broken

    assert broken.entry_point == "broken"
    assert broken.distribution == "asm-broken"
    assert broken.error == f"import failed: ImportError({BROKEN_IMPORT!r})"


def test_everything_else_works_beside_the_broken_plugin() -> None:
    registry = load_plugins(env={})

    assert registry.names("providers") == ["echo", "scripted", "throwaway", "throwaway-tools"]
    assert "broken" not in [info.name for info in registry.plugins()]


# -- unknown names ----------------------------------------------------------------------


def test_an_unknown_provider_lists_the_installed_ones_and_the_broken_plugin() -> None:
    registry = load_plugins(env={})

    with pytest.raises(AsmError) as caught:
        registry.get("providers", "claude")

    error = caught.value
    assert error.code == "provider_not_found"
    assert "no provider named 'claude'; installed: echo, scripted, throwaway, throwaway-tools" in error.message
    assert "these plugins failed to load: broken (asm-broken: import failed: ImportError(" in error.message
    assert error.details["installed"] == ["echo", "scripted", "throwaway", "throwaway-tools"]


def test_an_unknown_store_is_plugin_not_found() -> None:
    registry = load_plugins(env={})

    with pytest.raises(AsmError) as caught:
        registry.create("stores", "postgres", {})

    assert caught.value.code == "plugin_not_found"
    assert "no store named 'postgres'; installed: memory" in caught.value.message
    assert "broken (asm-broken" in caught.value.message


def test_an_unknown_kind_is_a_validation_error() -> None:
    with pytest.raises(AsmError) as caught:
        load_plugins(env={}).names("widgets")

    assert caught.value.code == "validation_error"
    assert "unknown plugin kind 'widgets'" in caught.value.message


# -- duplicates and extra plugins -----------------------------------------------------------


def test_one_name_registered_by_two_plugins_is_an_error_naming_both() -> None:
    with pytest.raises(AsmError) as caught:
        load_plugins(extra=[EchoAgain()], env={})

    error = caught.value
    extra_name = f"{EchoAgain.__module__}.EchoAgain"
    assert error.code == "duplicate_plugin"
    assert "provider 'echo' is registered by both" in error.message
    assert "plugin 'asm-core' (distribution asm-core)" in error.message
    assert f"plugin {extra_name!r}" in error.message
    assert "ASM_LOAD_PLUGINS" in error.message
    assert sorted(error.details["plugins"]) == sorted(["asm-core", extra_name])


def test_an_extra_plugin_adds_its_names_under_a_readable_plugin_name() -> None:
    registry = load_plugins(extra=[Fragile()], env={})

    registration = registry.get("providers", "fragile")

    assert registration.plugin == f"{Fragile.__module__}.Fragile"
    assert (registration.distribution, registration.version) == (None, None)


def test_a_factory_taking_registry_gets_the_registry_it_is_built_from() -> None:
    seen: dict[str, object] = {}

    class Needy:
        @hookimpl
        def asm_register_providers(self, register: Register) -> None:
            def needy(config: dict[str, object], *, registry: object) -> object:
                seen["registry"] = registry
                return ("needy", config)

            register("needy", needy)
            register("plain", lambda config: ("plain", config))

    registry = load_plugins(extra=[Needy()], env={})

    assert registry.create("providers", "needy", {"a": 1}) == ("needy", {"a": 1})
    assert seen["registry"] is registry, "the factory builds what it names from this registry, extras included"
    assert registry.create("providers", "plain") == ("plain", {}), "a factory of config alone gets only that"


LAZY_MODULE = """
seen = []


def create(config, *, registry, name):
    seen.append((registry, name))
    return ("lazy", name, config)
"""


def test_a_lazy_factory_imports_its_module_only_when_it_is_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "asm_lazy_probe.py").write_text(LAZY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))

    class Light:
        @hookimpl
        def asm_register_providers(self, register: Register) -> None:
            register("probe", lazy("asm_lazy_probe:create"))

    registry = load_plugins(extra=[Light()], env={})
    assert "asm_lazy_probe" not in sys.modules and "probe" in registry.names("providers")

    built = registry.create("providers", "probe", {"a": 1})

    probe = sys.modules.pop("asm_lazy_probe")
    assert built == ("lazy", "probe", {"a": 1})
    assert probe.seen == [(registry, "probe")], "the factory's registry and name keywords still reach it"


def test_a_lazy_factory_whose_module_is_gone_is_plugin_load_failed() -> None:
    class Stale:
        @hookimpl
        def asm_register_providers(self, register: Register) -> None:
            register("stale", lazy("asm_no_such_module_here:create"))

    registry = load_plugins(extra=[Stale()], env={})

    with pytest.raises(AsmError) as caught:
        registry.create("providers", "stale", {})
    assert caught.value.code == "plugin_load_failed"
    assert caught.value.message.startswith("lazy('asm_no_such_module_here:create') cannot be loaded (No module")
    assert caught.value.message.endswith("; reinstall the plugin that registers it")


@pytest.mark.parametrize("target", ["no_colon", ":create", "module:"])
def test_a_lazy_target_that_is_not_module_colon_attribute_is_refused(target: str) -> None:
    with pytest.raises(TypeError, match=r"lazy\(\) needs 'package\.module:attribute'"):
        lazy(target)


def test_two_extra_plugins_of_one_class_get_distinct_names() -> None:
    class Tools:
        def __init__(self, name: str) -> None:
            self.tool = name

        @hookimpl
        def asm_register_tools(self, register: Register) -> None:
            register(self.tool, lambda config: self.tool)

    registry = load_plugins(extra=[Tools("grep"), Tools("read")], env={})

    plugins = {registry.get("tools", "grep").plugin, registry.get("tools", "read").plugin}
    assert len(plugins) == 2


def test_an_extra_plugin_with_a_bad_hook_signature_is_refused() -> None:
    class Misspelled:
        @hookimpl
        def asm_register_providers(self, registr: Register) -> None:
            registr("never", lambda config: None)

    with pytest.raises(AsmError) as caught:
        load_plugins(extra=[Misspelled()], env={})

    assert caught.value.code == "plugin_load_failed"
    assert "Misspelled" in caught.value.message
    assert "registr" in caught.value.message


# -- ASM_LOAD_PLUGINS -------------------------------------------------------------------


def test_asm_load_plugins_selects_entry_points_by_name() -> None:
    registry = load_plugins(env={"ASM_LOAD_PLUGINS": "throwaway"})

    assert registry.names("providers") == ["echo", "scripted", "throwaway", "throwaway-tools"]
    assert registry.broken == []


@pytest.mark.parametrize("name", ["asm-throwaway", "asm_throwaway", "ASM-Throwaway"])
def test_asm_load_plugins_selects_entry_points_by_distribution_name(name: str) -> None:
    registry = load_plugins(env={"ASM_LOAD_PLUGINS": f" {name} , asm-core"})

    assert "throwaway" in registry.names("providers")
    assert registry.broken == []


def test_a_misspelt_asm_load_plugins_name_fails_with_a_did_you_mean() -> None:
    with pytest.raises(AsmError) as caught:
        load_plugins(env={"ASM_LOAD_PLUGINS": "asm-throwaway,asm-thowaway"})

    assert caught.value.code == "invalid_config"
    assert caught.value.message.startswith(
        "ASM_LOAD_PLUGINS names 'asm-thowaway', which no installed asm plugin is called; did you mean 'asm-throwaway'?"
    )
    assert caught.value.details["unknown"] == ["asm-thowaway"]


def test_an_asm_load_plugins_name_matching_nothing_installed_fails_listing_what_is() -> None:
    with pytest.raises(AsmError) as caught:
        load_plugins(env={"ASM_LOAD_PLUGINS": "asm-elsewhere"})

    assert caught.value.code == "invalid_config"
    assert "no installed asm plugin is called" in caught.value.message
    assert "asm-throwaway" in caught.value.message  # what is installed


def test_asm_load_plugins_can_select_only_the_broken_one() -> None:
    registry = load_plugins(env={"ASM_LOAD_PLUGINS": "asm-broken"})

    assert registry.names("providers") == ["echo", "scripted"]
    assert [broken.distribution for broken in registry.broken] == ["asm-broken"]


def test_an_empty_asm_load_plugins_loads_only_the_builtins() -> None:
    registry = load_plugins(env={"ASM_LOAD_PLUGINS": ""})

    assert [info.name for info in registry.plugins()] == ["asm-core"]
    assert registry.broken == []


def test_asm_load_plugins_is_read_from_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "")

    registry = load_plugins()

    assert registry.names("providers") == ["echo", "scripted"]


# -- a plugin's bugs stay its own ---------------------------------------------------------


def test_a_registration_hook_that_raises_is_recorded_as_broken() -> None:
    registry = load_plugins(extra=[FailsToRegisterProviders()], env={})

    name = f"{FailsToRegisterProviders.__module__}.FailsToRegisterProviders"
    assert BrokenPlugin(name, None, "asm_register_providers raised RuntimeError('provider hook bug')") in (
        registry.broken
    )
    assert registry.names("providers") == ["echo", "scripted", "throwaway", "throwaway-tools"]
    assert registry.get("sinks", "survivor").plugin == name


def test_a_registration_hook_that_raises_an_asm_error_is_broken_not_fatal() -> None:
    class Picky:
        @hookimpl
        def asm_register_stores(self, register: Register) -> None:
            raise AsmError("dependency_not_available", "the picky store needs libpicky")

    registry = load_plugins(extra=[Picky()], env={})

    (problem,) = [b for b in registry.broken if b.entry_point.endswith("Picky")]
    assert "asm_register_stores raised" in problem.error
    assert "the picky store needs libpicky" in problem.error
    assert registry.names("stores") == ["memory"]


def test_registering_something_that_is_not_a_factory_marks_the_plugin_broken() -> None:
    class NotAFactory:
        @hookimpl
        def asm_register_renderers(self, register: Register) -> None:
            register("plain", "not callable")  # type: ignore[arg-type]

    registry = load_plugins(extra=[NotAFactory()], env={})

    (problem,) = [b for b in registry.broken if b.entry_point.endswith("NotAFactory")]
    assert "register('plain', ...) needs a factory callable" in problem.error
    assert registry.names("renderers") == ["compact"]


def test_a_factory_that_raises_is_an_invalid_config_error() -> None:
    registry = load_plugins(extra=[Fragile()], env={})

    with pytest.raises(AsmError) as caught:
        registry.create("providers", "fragile", {"temperature": 2})

    assert caught.value.code == "invalid_config"
    assert caught.value.message == (
        "provider 'fragile' could not be created from its config: needs a model, got ['temperature']"
    )


def test_a_third_party_factory_given_an_unknown_option_is_an_invalid_config_error() -> None:
    with pytest.raises(AsmError) as caught:
        load_plugins(env={}).create("providers", "throwaway", {"volume": 11})

    assert caught.value.code == "invalid_config"
    assert "provider 'throwaway' could not be created from its config" in caught.value.message
    assert "volume" in caught.value.message


# -- ASM_TRACE_PLUGINS ---------------------------------------------------------------------


def test_asm_trace_plugins_traces_hook_calls_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    load_plugins(env={"ASM_TRACE_PLUGINS": "1"})

    err = capsys.readouterr().err
    assert "asm_register_providers [hook]" in err
    assert "register: <register providers for plugin 'asm-core'>" in err
    assert "register: <register providers for plugin 'throwaway'>" in err
    assert "finish asm_register_sinks" in err


@pytest.mark.parametrize("value", ["", "0", "false", "OFF"])
def test_tracing_stays_off_unless_asked_for(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    load_plugins(env={"ASM_TRACE_PLUGINS": value})

    assert capsys.readouterr().err == ""


# -- parse_options ----------------------------------------------------------------------------


@attrs.frozen
class DemoOptions:
    model: str
    retries: int = 3


def test_parse_options_builds_the_options_class() -> None:
    assert parse_options(DemoOptions, {"model": "m1"}, "demo provider") == DemoOptions("m1", 3)


def test_parse_options_names_an_unknown_key_and_the_valid_ones() -> None:
    with pytest.raises(AsmError) as caught:
        parse_options(DemoOptions, {"model": "m1", "retires": 5}, "demo provider")

    assert caught.value.code == "invalid_config"
    assert caught.value.message == (
        "invalid demo provider config: unknown option 'retires'; valid options: model, retries"
    )


def test_parse_options_names_a_key_of_the_wrong_type() -> None:
    with pytest.raises(AsmError) as caught:
        parse_options(DemoOptions, {"model": "m1", "retries": "3"}, "demo provider")

    assert caught.value.code == "invalid_config"
    assert "invalid demo provider config" in caught.value.message
    assert "retries" in caught.value.message
    assert "int" in caught.value.message


def test_parse_options_names_a_missing_key() -> None:
    with pytest.raises(AsmError) as caught:
        parse_options(DemoOptions, {}, "demo provider")

    assert caught.value.code == "invalid_config"
    assert "model: required field missing" in caught.value.message


def test_a_builtin_with_no_options_says_so() -> None:
    with pytest.raises(AsmError) as caught:
        load_plugins(env={}).create("stores", "memory", {"path": "x.db"})

    assert caught.value.code == "invalid_config"
    assert "unknown option 'path'; the memory store takes no options" in caught.value.message


# -- more real distributions, installed by the test ------------------------------------------


def test_an_entry_point_whose_hooks_do_not_match_the_specs_is_broken(install_plugin: Any) -> None:
    install_plugin(
        "asm-misspelt",
        "misspelt",
        """
        from asm import hookimpl

        @hookimpl
        def asm_register_providers(registr):
            registr("never", lambda config: None)
        """,
    )

    registry = load_plugins(env={})

    (problem,) = [b for b in registry.broken if b.entry_point == "misspelt"]
    assert problem.distribution == "asm-misspelt"
    assert problem.error.startswith("cannot be registered: ")
    assert "registr" in problem.error
    assert registry.names("providers") == ["echo", "scripted", "throwaway", "throwaway-tools"]


def test_an_entry_point_name_taken_by_another_distribution_is_broken(install_plugin: Any) -> None:
    install_plugin(
        "asm-impostor",
        "throwaway",
        """
        from asm import hookimpl

        @hookimpl
        def asm_register_renderers(register):
            register("impostor", lambda config: None)
        """,
    )

    registry = load_plugins(env={})

    # The impostor comes first on sys.path, so it wins the name and the real one is reported.
    assert BrokenPlugin(
        "throwaway", "asm-throwaway", "entry point name 'throwaway' is already taken by asm-impostor"
    ) in (registry.broken)
    assert registry.get("renderers", "impostor").distribution == "asm-impostor"


def test_a_distribution_installed_by_the_test_is_listed_with_its_version(install_plugin: Any) -> None:
    install_plugin(
        "asm-hello",
        "hello",
        """
        from asm import hookimpl

        @hookimpl
        def asm_register_tools(register):
            register("hello", lambda config: "hi")
        """,
        version="2.5.0",
    )

    registry = load_plugins(env={})

    assert info_of(registry, "hello") == PluginInfo("hello", "asm-hello", "2.5.0", {"tools": ("hello",)})
    assert registry.create("tools", "hello") == "hi"
