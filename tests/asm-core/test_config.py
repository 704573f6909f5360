"""Layered configuration: defaults < user file < project file < ASM_* env < arguments,
each value traceable to its layer, and every bad input named precisely."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asm import AsmConfig, AsmError, load_config
from asm.config import ConfigWarning, user_config_path

pytestmark = pytest.mark.usefixtures("isolated")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(**kwargs: Any) -> AsmError:
    with pytest.raises(AsmError) as caught:
        load_config(**kwargs)
    return caught.value


# -- layers and precedence ---------------------------------------------------


def test_with_no_config_anywhere_every_value_is_the_default() -> None:
    loaded = load_config()

    assert loaded.config == AsmConfig()
    assert loaded.files == ()
    assert loaded.source_of("provider") == "default"
    assert loaded.source_of("providers.echo.prefix") == "default"


def test_the_user_config_file_is_found_through_platformdirs(isolated: Any) -> None:
    write(isolated.user_config, 'provider = "scripted"\n')

    loaded = load_config()

    assert user_config_path() == isolated.user_config
    assert loaded.config.provider == "scripted"
    assert loaded.source_of("provider") == f"user config {isolated.user_config}"
    assert loaded.files == (isolated.user_config,)


def test_the_project_asm_toml_is_found_in_the_current_directory(isolated: Any) -> None:
    project_file = write(isolated.project / "asm.toml", "run_timeout = 12.5\n")

    loaded = load_config()

    assert loaded.config.run_timeout == 12.5
    assert loaded.source_of("run_timeout") == f"project config {project_file}"


def test_the_project_file_overrides_the_user_file_key_by_key(isolated: Any) -> None:
    write(isolated.user_config, 'provider = "scripted"\nrenderer = "fancy"\n')
    project_file = write(isolated.project / "asm.toml", 'provider = "echo"\n')

    loaded = load_config()

    assert loaded.config.provider == "echo"
    assert loaded.source_of("provider") == f"project config {project_file}"
    assert loaded.config.renderer == "fancy"
    assert loaded.source_of("renderer") == f"user config {isolated.user_config}"
    assert loaded.files == (isolated.user_config, project_file)


def test_a_config_file_argument_replaces_the_project_file(isolated: Any) -> None:
    write(isolated.project / "asm.toml", 'provider = "from-cwd"\nrenderer = "from-cwd"\n')
    other = write(isolated.project / "conf" / "other.toml", 'provider = "from-argument"\n')

    loaded = load_config(config_file=other)

    assert loaded.config.provider == "from-argument"
    assert loaded.config.renderer == "compact"  # ./asm.toml is not read at all
    assert loaded.source_of("provider") == f"project config {other}"


def test_asm_config_names_the_project_file(isolated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    other = write(isolated.project / "elsewhere.toml", 'provider = "named-by-env"\n')
    monkeypatch.setenv("ASM_CONFIG", str(other))

    loaded = load_config()

    assert loaded.config.provider == "named-by-env"
    assert loaded.source_of("provider") == f"project config {other}"


def test_a_relative_config_file_is_relative_to_the_given_cwd(tmp_path: Path) -> None:
    write(tmp_path / "elsewhere" / "conf.toml", 'provider = "relative"\n')

    loaded = load_config(config_file="conf.toml", cwd=tmp_path / "elsewhere", env={})

    assert loaded.config.provider == "relative"


def test_environment_variables_override_the_project_file(isolated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated.project / "asm.toml", 'provider = "echo"\n')
    monkeypatch.setenv("ASM_PROVIDER", "scripted")

    loaded = load_config()

    assert loaded.config.provider == "scripted"
    assert loaded.source_of("provider") == "environment variable ASM_PROVIDER"


def test_explicit_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDER", "scripted")

    loaded = load_config({"provider": "echo"})

    assert loaded.config.provider == "echo"
    assert loaded.source_of("provider") == "argument"


def test_an_override_of_none_leaves_the_lower_layer_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_RUN_TIMEOUT", "30")

    loaded = load_config({"run_timeout": None, "provider": None})

    assert loaded.config.run_timeout == 30.0
    assert loaded.source_of("run_timeout") == "environment variable ASM_RUN_TIMEOUT"
    assert loaded.source_of("provider") == "default"


def test_overrides_accept_dotted_keys_into_plugin_tables() -> None:
    loaded = load_config({"providers.echo.prefix": "> "})

    assert loaded.config.plugin_config("providers", "echo") == {"prefix": "> "}
    assert loaded.source_of("providers.echo.prefix") == "argument"


def test_plugin_tables_merge_across_layers_and_each_key_keeps_its_source(
    isolated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(isolated.user_config, '[providers.echo]\nprefix = "user> "\ndelay = 0.5\n')
    project_file = write(isolated.project / "asm.toml", '[providers.echo]\nprefix = "project> "\n')
    monkeypatch.setenv("ASM_PROVIDERS__SCRIPTED__CHUNKS", '["a", "b"]')

    loaded = load_config()

    assert loaded.config.providers == {
        "echo": {"prefix": "project> ", "delay": 0.5},
        "scripted": {"chunks": ["a", "b"]},
    }
    assert loaded.source_of("providers.echo.prefix") == f"project config {project_file}"
    assert loaded.source_of("providers.echo.delay") == f"user config {isolated.user_config}"
    assert loaded.source_of("providers.scripted.chunks") == "environment variable ASM_PROVIDERS__SCRIPTED__CHUNKS"


def test_plugin_config_of_an_unconfigured_plugin_is_an_empty_table() -> None:
    assert load_config().config.plugin_config("providers", "echo") == {}


# -- environment values -------------------------------------------------------


def test_an_env_number_is_read_as_a_toml_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_RUN_TIMEOUT", "30")
    monkeypatch.setenv("ASM_EVENT_BUFFER_SIZE", "64")

    config = load_config().config

    assert config.run_timeout == 30.0
    assert isinstance(config.run_timeout, float)
    assert config.event_buffer_size == 64


def test_an_env_value_that_is_not_toml_is_read_as_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDERS__ECHO__PREFIX", "> ")

    loaded = load_config()

    assert loaded.config.plugin_config("providers", "echo") == {"prefix": "> "}
    assert loaded.source_of("providers.echo.prefix") == "environment variable ASM_PROVIDERS__ECHO__PREFIX"


def test_env_values_in_plugin_tables_keep_their_toml_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDERS__ECHO__DELAY", "0.25")
    monkeypatch.setenv("ASM_SINKS__FILE__PATH", '"out.txt"')
    monkeypatch.setenv("ASM_RENDERERS__COMPACT__COLOR", "true")

    config = load_config().config

    assert config.plugin_config("providers", "echo") == {"delay": 0.25}
    assert config.plugin_config("sinks", "file") == {"path": "out.txt"}
    assert config.plugin_config("renderers", "compact") == {"color": True}


def test_a_string_setting_from_the_env_stays_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDER", "1")
    monkeypatch.setenv("ASM_STORE", "true")

    config = load_config().config

    assert config.provider == "1"
    assert config.store == "true"


def test_an_env_value_cannot_smuggle_in_other_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDERS__ECHO__PREFIX", '1\nprovider = "evil"')

    config = load_config().config

    assert config.provider == "echo"
    assert config.plugin_config("providers", "echo") == {"prefix": '1\nprovider = "evil"'}


def test_reserved_env_variables_are_not_settings(isolated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "throwaway")
    monkeypatch.setenv("ASM_TRACE_PLUGINS", "1")
    monkeypatch.setenv("ASM_CONFIG", str(write(isolated.project / "c.toml", "")))

    loaded = load_config()

    assert loaded.config == AsmConfig()
    assert loaded.sources == {}


def test_env_variables_are_read_from_the_given_mapping_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDER", "from-os-environ")

    loaded = load_config(env={"ASM_STORE": "from-mapping"})

    assert loaded.config.provider == "echo"
    assert loaded.config.store == "from-mapping"


# -- bad input -----------------------------------------------------------------


def test_an_unknown_key_in_a_file_names_the_file_and_the_key(isolated: Any) -> None:
    project_file = write(isolated.project / "asm.toml", 'provdier = "echo"\n')

    error = config_error()

    assert error.code == "invalid_config"
    assert f"project config {project_file}" in error.message
    assert "unknown config key 'provdier'" in error.message
    assert "did you mean 'provider'?" in error.message
    assert error.details == {"origin": f"project config {project_file}", "key": "provdier"}


def test_an_unknown_key_in_the_user_file_names_the_user_file(isolated: Any) -> None:
    write(isolated.user_config, "colour = true\n")

    error = config_error()

    assert error.code == "invalid_config"
    assert f"user config {isolated.user_config}" in error.message
    assert "'colour'" in error.message


def test_a_value_of_the_wrong_type_names_the_file_the_key_and_the_type(isolated: Any) -> None:
    project_file = write(isolated.project / "asm.toml", 'run_timeout = "soon"\n')

    error = config_error()

    assert error.code == "invalid_config"
    assert str(project_file) in error.message
    assert "run_timeout must be a number of seconds (or unset), not 'soon'" in error.message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("provider = 3", "provider must be a string, not 3"),
        ("event_buffer_size = 1.5", "event_buffer_size must be an integer, not 1.5"),
        ("event_buffer_size = true", "event_buffer_size must be an integer, not True"),
        ("error_text_max_lines = '200'", "error_text_max_lines must be an integer, not '200'"),
    ],
)
def test_each_wrong_type_is_named(isolated: Any, line: str, expected: str) -> None:
    write(isolated.project / "asm.toml", line + "\n")

    error = config_error()

    assert error.code == "invalid_config"
    assert expected in error.message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("run_timeout = 0", "run_timeout must be a positive number of seconds"),
        ("run_timeout = -5", "run_timeout must be a positive number of seconds"),
        ("run_timeout = nan", "run_timeout must be a positive number of seconds"),
        ("event_buffer_size = 0", "event_buffer_size must be at least 1"),
        ("error_text_max_bytes = -1", "error_text_max_bytes must be 0 or more"),
    ],
)
def test_a_value_out_of_range_is_refused(isolated: Any, line: str, expected: str) -> None:
    project_file = write(isolated.project / "asm.toml", line + "\n")

    error = config_error()

    assert error.code == "invalid_config"
    assert str(project_file) in error.message
    assert expected in error.message


def test_malformed_toml_names_the_file(isolated: Any) -> None:
    project_file = write(isolated.project / "asm.toml", "provider = \n")

    error = config_error()

    assert error.code == "invalid_config"
    assert f"{project_file} is not valid TOML" in error.message
    assert "line 1" in error.message


def test_a_config_file_that_is_not_utf8_names_the_file(isolated: Any) -> None:
    project_file = isolated.project / "asm.toml"
    project_file.write_bytes(b'provider = "\xff\xfe"\n')

    error = config_error()

    assert error.code == "invalid_config"
    assert f"{project_file} is not valid TOML" in error.message


def test_a_missing_explicit_config_file_is_an_error(isolated: Any) -> None:
    missing = isolated.project / "nope.toml"

    error = config_error(config_file=missing)

    assert error.code == "invalid_config"
    assert f"config file {missing} does not exist" in error.message
    assert "--config" in error.message


def test_a_missing_asm_config_file_names_the_variable(isolated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = isolated.project / "nope.toml"
    monkeypatch.setenv("ASM_CONFIG", str(missing))

    error = config_error()

    assert error.code == "invalid_config"
    assert f"config file {missing} does not exist" in error.message
    assert "ASM_CONFIG" in error.message


def test_a_missing_project_asm_toml_is_not_an_error() -> None:
    assert load_config().files == ()


def test_a_plugin_table_that_is_not_a_table_is_an_error(isolated: Any) -> None:
    project_file = write(isolated.project / "asm.toml", 'providers = "echo"\n')

    error = config_error()

    assert error.code == "invalid_config"
    assert str(project_file) in error.message
    assert "providers must be a table of tables, one per plugin" in error.message
    assert "[providers.<name>]" in error.message


def test_a_plugin_table_whose_entry_is_not_a_table_names_the_entry(isolated: Any) -> None:
    project_file = write(isolated.project / "asm.toml", "[sinks]\njsonl = 1\n")

    error = config_error()

    assert error.code == "invalid_config"
    assert str(project_file) in error.message
    assert "sinks.jsonl must be a table of that plugin's options" in error.message
    assert error.details["key"] == "sinks.jsonl"


def test_an_unknown_asm_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVDIER", "echo")

    error = config_error()

    assert error.code == "invalid_config"
    assert "environment variable ASM_PROVDIER" in error.message
    assert "did you mean 'provider'?" in error.message


def test_an_asm_variable_of_another_tool_is_a_warning_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_TMP", "/tmp/other-tool")
    monkeypatch.setenv("ASM_PROVIDER", "scripted")

    with pytest.warns(ConfigWarning) as caught:
        loaded = load_config()

    (warning,) = caught
    assert str(warning.message).startswith("environment variable ASM_TMP is not an asm setting; ignored")
    assert loaded.config.provider == "scripted"
    assert "tmp" not in loaded.sources


def test_a_nested_asm_variable_of_another_tool_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_CACHE__DIR", "/tmp/other-tool")

    with pytest.warns(ConfigWarning, match="environment variable ASM_CACHE__DIR is not an asm setting"):
        assert load_config().config == AsmConfig()


def test_a_misspelt_reserved_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_LOAD_PLUGIN", "asm-throwaway")

    error = config_error()

    assert error.code == "invalid_config"
    assert "environment variable ASM_LOAD_PLUGIN" in error.message
    assert "did you mean ASM_LOAD_PLUGINS?" in error.message


def test_an_env_value_of_the_wrong_type_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_RUN_TIMEOUT", "soon")

    error = config_error()

    assert error.code == "invalid_config"
    assert "environment variable ASM_RUN_TIMEOUT" in error.message
    assert "run_timeout must be a number of seconds (or unset), not 'soon'" in error.message


def test_an_env_plugin_table_without_a_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_PROVIDERS__ECHO", "loud")

    error = config_error()

    assert error.code == "invalid_config"
    assert "environment variable ASM_PROVIDERS__ECHO" in error.message
    assert "providers.echo must be a table" in error.message


def test_an_unknown_override_is_named_as_an_argument() -> None:
    error = config_error(overrides={"provder": "echo"})

    assert error.code == "invalid_config"
    assert error.message.startswith("argument: unknown config key 'provder'")


def test_an_override_of_the_wrong_type_is_refused() -> None:
    error = config_error(overrides={"run_timeout": "soon"})

    assert error.code == "invalid_config"
    assert "argument: run_timeout must be a number of seconds" in error.message


# -- property: the highest layer wins ----------------------------------------------

LAYERS = ("user", "project", "env", "argument")
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)
SETTINGS: dict[str, st.SearchStrategy[Any]] = {
    "provider": names,
    "run_timeout": st.floats(min_value=0.001, max_value=1e9, allow_nan=False, allow_infinity=False),
    "event_buffer_size": st.integers(min_value=1, max_value=10**6),
    "providers.echo.prefix": names,
    "sinks.jsonl.path": names,
}
layer_values = st.fixed_dictionaries({}, optional=SETTINGS)


def _toml(value: Any) -> str:
    """A TOML string or number (JSON's, less the \\u escapes TOML refuses for surrogate pairs)."""
    return json.dumps(value, ensure_ascii=False)


def _toml_file(values: dict[str, Any]) -> str:
    top = [f"{key} = {_toml(value)}" for key, value in values.items() if "." not in key]
    tables = [key.rsplit(".", 1) for key in values if "." in key]
    return "\n".join(top + [f"[{table}]\n{leaf} = {_toml(values[f'{table}.{leaf}'])}" for table, leaf in tables])


def _lookup(config: AsmConfig, dotted: str) -> Any:
    first, *rest = dotted.split(".")
    value = getattr(config, first)
    for part in rest:
        value = value[part]
    return value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers=st.fixed_dictionaries(dict.fromkeys(LAYERS, layer_values)))
def test_each_key_gets_the_value_of_the_highest_layer_that_sets_it(layers: dict[str, dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as raw:
        root = Path(raw)
        user_file = write(root / "user" / "asm.toml", _toml_file(layers["user"]))
        project_file = write(root / "project" / "asm.toml", _toml_file(layers["project"]))
        # Quoted, env values are TOML strings and numbers whatever their text.
        env = {"ASM_" + key.upper().replace(".", "__"): _toml(value) for key, value in layers["env"].items()}

        loaded = load_config(layers["argument"], env=env, cwd=root / "project", user_file=user_file)

    origin = {
        "user": f"user config {user_file}",
        "project": f"project config {project_file}",
        "argument": "argument",
    }
    for key in SETTINGS:
        setters = [layer for layer in LAYERS if key in layers[layer]]
        if not setters:
            assert loaded.source_of(key) == "default"
            continue
        top = setters[-1]
        expected_origin = origin.get(top) or f"environment variable ASM_{key.upper().replace('.', '__')}"
        assert _lookup(loaded.config, key) == layers[top][key]
        assert loaded.source_of(key) == expected_origin
