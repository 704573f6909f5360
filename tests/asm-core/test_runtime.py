"""Assembling a runtime from config: every part built by plugin name, plugin tables
handed to factories, bad tables traced to their file, and everything closed on exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import asm
from asm import AsmError, assemble, hookimpl, load_config, load_plugins, open_runtime
from asm.events import Event, EventType
from asm.hookspecs import Register
from asm.rendering import CompactRenderer, JsonlSink
from asm.serde import event_from_json

pytestmark = pytest.mark.usefixtures("isolated")


def write_project_config(places: Any, text: str) -> Path:
    path: Path = places.project / "asm.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Recorder:
    """A sink that remembers what it got and whether it was closed."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.closed = False

    async def write(self, text: str, event: Event | None) -> None:
        self.texts.append(text)

    async def aclose(self) -> None:
        self.closed = True


class UnopenableStore(asm.InMemorySessionStore):
    async def __aenter__(self) -> UnopenableStore:
        raise AsmError("storage_connection_failed", "the database is down")


class ClosingProvider(asm.EchoProvider):
    def __init__(self) -> None:
        super().__init__(name="closing")
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


class FailsToClose(ClosingProvider):
    async def aclose(self) -> None:
        await super().aclose()
        raise OSError("socket already gone")


class Parts:
    """A plugin with a sink that records, a store that cannot open and providers that close."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.provider = ClosingProvider()
        self.failing = FailsToClose()

    @hookimpl
    def asm_register_sinks(self, register: Register) -> None:
        register("recorder", lambda config: self.recorder)

    @hookimpl
    def asm_register_stores(self, register: Register) -> None:
        register("unopenable", lambda config: UnopenableStore())

    @hookimpl
    def asm_register_providers(self, register: Register) -> None:
        register("closing", lambda config: self.provider)
        register("fails-to-close", lambda config: self.failing)


# -- assembling ---------------------------------------------------------------------


def test_assemble_builds_every_part_by_its_plugin_name() -> None:
    runtime = assemble(load_config())

    assert isinstance(runtime.store, asm.InMemorySessionStore)
    assert isinstance(runtime.artifact_store, asm.InMemoryArtifactStore)
    assert isinstance(runtime.renderer, CompactRenderer)
    assert runtime.sinks == []
    assert runtime.rendering is None
    assert runtime.manager.store is runtime.store


def test_assemble_without_a_config_uses_the_defaults() -> None:
    runtime = assemble()

    assert runtime.config == asm.AsmConfig()
    assert isinstance(runtime.provider(), asm.EchoProvider)


def test_a_sinks_table_enables_that_sink(isolated: Any) -> None:
    write_project_config(isolated, '[sinks.jsonl]\npath = "events.jsonl"\n')

    runtime = assemble(load_config())

    (sink,) = runtime.sinks
    assert isinstance(sink, JsonlSink)
    assert runtime.rendering is not None
    assert runtime.rendering.sinks == [sink]


def test_with_no_store_configured_an_installed_sqlite_store_is_the_default() -> None:
    class Sqlite:
        @hookimpl
        def asm_register_stores(self, register: Register) -> None:
            register("sqlite", lambda config: SqliteLike())

    class SqliteLike(asm.InMemorySessionStore):
        pass

    runtime = assemble(load_config(), registry=load_plugins(extra=[Sqlite()], env={}))

    assert isinstance(runtime.store, SqliteLike)


def test_a_configured_store_beats_the_default() -> None:
    class Sqlite:
        @hookimpl
        def asm_register_stores(self, register: Register) -> None:
            register("sqlite", lambda config: None)

    runtime = assemble(load_config({"store": "memory"}), registry=load_plugins(extra=[Sqlite()], env={}))

    assert type(runtime.store) is asm.InMemorySessionStore


def test_an_unknown_store_name_fails_at_assembly_listing_what_is_installed() -> None:
    with pytest.raises(AsmError) as caught:
        assemble(load_config({"store": "postgres"}))

    assert caught.value.code == "plugin_not_found"
    assert "no store named 'postgres'; installed: memory" in caught.value.message


def test_an_unknown_renderer_name_fails_at_assembly() -> None:
    with pytest.raises(AsmError) as caught:
        assemble(load_config({"renderer": "studio"}))

    assert caught.value.code == "plugin_not_found"
    assert "no renderer named 'studio'; installed: compact" in caught.value.message


# -- plugin tables ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            "[stores.memroy]",
            "[stores.memroy] (from project config {path}): no store named 'memroy' is installed; "
            "did you mean [stores.memory]?",
        ),
        (
            "[providers.ecoh]",
            "[providers.ecoh] (from project config {path}): no provider named 'ecoh' is installed; "
            "did you mean [providers.echo]?",
        ),
        (
            "[sinks.jsnol]",
            "[sinks.jsnol] (from project config {path}): no sink named 'jsnol' is installed; "
            "did you mean [sinks.jsonl]?",
        ),
    ],
)
def test_a_table_named_like_an_installed_plugin_is_a_typo(isolated: Any, table: str, expected: str) -> None:
    path = write_project_config(isolated, f"{table}\noption = 1\n")

    with pytest.raises(AsmError) as caught:
        assemble(load_config())

    assert caught.value.code == "invalid_config"
    assert caught.value.message.startswith(expected.format(path=path))


def test_a_table_for_a_plugin_not_installed_here_is_a_warning(isolated: Any) -> None:
    path = write_project_config(isolated, '[providers.nope]\nmodel = "x"\n[stores.postgresish]\nurl = "x"\n')

    with pytest.warns(asm.config.ConfigWarning) as caught:
        runtime = assemble(load_config())

    assert sorted(str(w.message) for w in caught) == [
        f"[providers.nope] (from project config {path}) configures a provider that is not installed here; "
        "it is ignored (installed: echo, scripted, throwaway, throwaway-tools)",
        f"[stores.postgresish] (from project config {path}) configures a store that is not installed here; "
        "it is ignored (installed: memory)",
    ]
    assert isinstance(runtime.store, asm.InMemorySessionStore)


def test_a_table_from_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDERS__NOPE__MODEL", "x")

    with pytest.warns(
        asm.config.ConfigWarning,
        match=r"^\[providers.nope\] \(from environment variable "
        r"ASM_PROVIDERS__NOPE__MODEL\) configures a provider that is not installed here",
    ):
        assemble(load_config())


def test_a_table_naming_its_plugin_is_not_an_unknown_plugin_table(isolated: Any) -> None:
    # A named instance ([providers.fast] plugin = "echo") is checked by whatever builds it.
    write_project_config(isolated, '[providers.fast]\nplugin = "echo"\n')

    assemble(load_config())  # no warning (they are errors here), no error


def test_policy_and_pricing_tables_need_no_plugin(isolated: Any) -> None:
    write_project_config(
        isolated,
        "[policies.budget]\nmax_total_tokens = 100\n[pricing.mine]\nmodels = {}\n",
    )

    assemble(load_config())


async def test_a_provider_table_goes_to_the_provider_factory(isolated: Any) -> None:
    write_project_config(isolated, '[providers.echo]\nprefix = "echo: "\n')

    async with open_runtime() as runtime:
        run = await runtime.run_once("hi")

    assert run.output == "echo: hi"


async def test_the_configured_provider_is_the_default(isolated: Any) -> None:
    write_project_config(isolated, 'provider = "scripted"\n[providers.scripted]\nchunks = ["one ", "two"]\n')

    async with open_runtime() as runtime:
        run = await runtime.run_once("ignored")

    assert run.provider == "scripted"
    assert run.output == "one two"


async def test_a_bad_provider_table_names_the_table_and_its_file(isolated: Any) -> None:
    project_file = write_project_config(isolated, '[providers.echo]\nprefx = "> "\n')

    async with open_runtime() as runtime:
        with pytest.raises(AsmError) as caught:
            await runtime.run_once("hi")

    error = caught.value
    assert error.code == "invalid_config"
    assert error.message.startswith(f"[providers.echo] (from project config {project_file}): ")
    assert "unknown option 'prefx'" in error.message
    assert error.details["origin"] == f"project config {project_file}"


async def test_a_bad_provider_value_from_the_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDERS__ECHO__DELAY", "soon")

    async with open_runtime() as runtime:
        with pytest.raises(AsmError) as caught:
            await runtime.run_once("hi")

    assert caught.value.code == "invalid_config"
    assert caught.value.message.startswith("[providers.echo] (from environment variable ASM_PROVIDERS__ECHO__DELAY): ")
    assert "delay" in caught.value.message


async def test_a_table_built_from_two_layers_names_both(isolated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    project_file = write_project_config(isolated, '[providers.echo]\nprefix = "> "\n')
    monkeypatch.setenv("ASM_PROVIDERS__ECHO__LOUD", "true")

    async with open_runtime() as runtime:
        with pytest.raises(AsmError) as caught:
            await runtime.run_once("hi")

    assert caught.value.code == "invalid_config"
    assert (
        f"[providers.echo] (from project config {project_file} and environment variable ASM_PROVIDERS__ECHO__LOUD)"
    ) in caught.value.message


def test_a_bad_sink_table_fails_at_assembly_naming_the_table(isolated: Any) -> None:
    project_file = write_project_config(isolated, "[sinks.jsonl]\n")

    with pytest.raises(AsmError) as caught:
        assemble(load_config())

    assert caught.value.code == "invalid_config"
    assert caught.value.message.startswith(f"[sinks.jsonl] (from project config {project_file}): ")
    assert "path: required field missing" in caught.value.message


def test_a_bad_table_in_a_bare_asm_config_says_config() -> None:
    config = asm.AsmConfig(renderers={"compact": {"colour": True}})

    with pytest.raises(AsmError) as caught:
        assemble(config)

    assert caught.value.code == "invalid_config"
    assert caught.value.message.startswith("[renderers.compact] (from config): ")
    assert "'colour'" in caught.value.message


# -- sinks get every event ------------------------------------------------------------------


async def test_the_jsonl_sink_gets_every_event_of_a_run(isolated: Any) -> None:
    write_project_config(isolated, '[sinks.jsonl]\npath = "logs/events.jsonl"\n')

    async with open_runtime() as runtime:
        run = await runtime.run_once("hello sinks")
        stored = (await runtime.store.read_events(run.session_id)).events

    lines = (isolated.project / "logs" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [event_from_json(line) for line in lines] == list(stored)
    assert stored[0].type is EventType.SESSION_CREATED
    assert stored[-1].type is EventType.SESSION_COMPLETED


async def test_the_file_sink_gets_the_compact_rendering(isolated: Any) -> None:
    write_project_config(isolated, '[sinks.file]\npath = "out.txt"\n')

    async with open_runtime() as runtime:
        await runtime.run_once("hi")

    assert (isolated.project / "out.txt").read_text(encoding="utf-8") == "r+echo >> hi tk:1/1 $0 r-:end_turn\n"


async def test_on_event_and_the_sinks_both_see_every_event(isolated: Any) -> None:
    write_project_config(isolated, '[sinks.jsonl]\npath = "events.jsonl"\n')
    seen: list[Event] = []

    async with open_runtime(on_event=seen.append) as runtime:
        await runtime.run_once("hi")

    lines = (isolated.project / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [event_from_json(line) for line in lines] == seen
    assert [event.seq for event in seen] == list(range(1, len(seen) + 1))


# -- providers ---------------------------------------------------------------------------------


async def test_the_runtime_manager_resolves_provider_names_through_plugins() -> None:
    async with open_runtime(providers={"scripted": {"chunks": ["a", "b"]}}) as runtime:
        scripted = await runtime.manager.run_once("x", provider="scripted")
        throwaway = await runtime.manager.run_once("quiet", provider="throwaway")

    assert scripted.output == "ab"
    assert throwaway.output == "QUIET!"


async def test_the_runtime_manager_runs_the_configured_provider_by_default() -> None:
    async with open_runtime(provider="throwaway") as runtime:
        session = await runtime.manager.start_session()
        run = await runtime.manager.run_once("by default")

    assert session.provider == "throwaway"
    assert (run.provider, run.output) == ("throwaway", "BY DEFAULT!")


async def test_the_configured_provider_is_built_only_when_a_run_needs_it() -> None:
    async with open_runtime(provider="not-installed") as runtime:
        other = await runtime.manager.run_once("hi", provider="echo")
        failed = await runtime.manager.run_once("hi")

    assert other.output == "hi"
    assert failed.status is asm.RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "provider_not_found"
    assert "no provider named 'not-installed'" in failed.error.message


async def test_an_unknown_provider_name_at_run_time_is_provider_not_found() -> None:
    async with open_runtime() as runtime:
        with pytest.raises(AsmError) as caught:
            await runtime.run_once("hi", provider="claude")

    assert caught.value.code == "provider_not_found"
    assert "no provider named 'claude'" in caught.value.message


def test_a_provider_is_built_once_per_runtime() -> None:
    runtime = assemble(load_config())

    assert runtime.provider("echo") is runtime.provider("echo")
    assert runtime.provider() is runtime.provider("echo")


async def test_run_once_accepts_a_provider_object() -> None:
    async with open_runtime() as runtime:
        run = await runtime.run_once("hi", provider=asm.EchoProvider(name="mine", prefix="* "))

    assert (run.provider, run.output) == ("mine", "* hi")


async def test_the_run_timeout_from_config_applies(autojump_clock: Any) -> None:
    async with open_runtime(run_timeout=5, providers={"echo": {"delay": 60}}) as runtime:
        run = await runtime.run_once("slow")

    assert run.status is asm.RunStatus.TIMEOUT
    assert run.error is not None
    assert run.error.code == "timeout"


# -- open_runtime ----------------------------------------------------------------------------


async def test_open_runtime_loads_the_config_file_it_is_given(isolated: Any) -> None:
    other = isolated.project / "other.toml"
    other.write_text('[providers.echo]\nprefix = "other: "\n', encoding="utf-8")

    async with open_runtime(config_file=other) as runtime:
        run = await runtime.run_once("hi")

    assert run.output == "other: hi"
    assert runtime.sources is not None
    assert runtime.sources.files == (other,)


async def test_open_runtime_with_a_config_and_overrides_is_a_validation_error() -> None:
    with pytest.raises(AsmError) as caught:
        async with open_runtime(load_config(), provider="echo"):
            pass

    assert caught.value.code == "validation_error"
    assert "not both" in caught.value.message


async def test_open_runtime_with_a_config_and_a_config_file_is_a_validation_error(isolated: Any) -> None:
    with pytest.raises(AsmError) as caught:
        async with open_runtime(asm.AsmConfig(), config_file=isolated.project / "asm.toml"):
            pass

    assert caught.value.code == "validation_error"


async def test_leaving_open_runtime_closes_sinks_and_providers() -> None:
    parts = Parts()
    registry = load_plugins(extra=[parts], env={})

    async with open_runtime(load_config({"sinks": {"recorder": {}}}), registry=registry) as runtime:
        await runtime.run_once("hi", provider="closing")
        assert not parts.recorder.closed

    assert parts.recorder.closed
    assert parts.provider.closed
    assert parts.recorder.texts[-1] == "\n"  # the renderer's closing text


async def test_sinks_are_closed_even_when_the_store_fails_to_open() -> None:
    parts = Parts()
    registry = load_plugins(extra=[parts], env={})
    config = load_config({"store": "unopenable", "sinks": {"recorder": {}}})

    with pytest.raises(AsmError) as caught:
        async with open_runtime(config, registry=registry):
            pass

    assert caught.value.code == "storage_connection_failed"
    assert parts.recorder.closed


async def test_every_provider_is_closed_even_when_one_fails_to_close() -> None:
    parts = Parts()
    registry = load_plugins(extra=[parts], env={})

    with pytest.raises(OSError, match="socket already gone"):
        async with open_runtime(load_config(), registry=registry) as runtime:
            runtime.provider("fails-to-close")
            runtime.provider("closing")

    assert parts.failing.closed
    assert parts.provider.closed
