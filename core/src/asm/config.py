"""Layered configuration.

From lowest to highest precedence: built-in defaults < the user config file
(``asm.toml`` in the platformdirs user config dir) < the project's
``./asm.toml`` (or the file given by ``--config`` / ``ASM_CONFIG``) <
``ASM_*`` environment variables < explicit arguments. Each layer is checked on
its own, so an error names the file (or variable), the key and the type it
needs. The file looks like::

    provider = "echo"          # the default provider
    store = "memory"           # the session store plugin
    run_timeout = 120          # seconds; unset means no limit

    [providers.echo]           # each plugin's own table, handed to its factory
    prefix = "echo: "

    [sinks.jsonl]              # a [sinks.<name>] table enables that sink
    path = "events.jsonl"

Environment variables: ``ASM_PROVIDER=claude``, ``ASM_RUN_TIMEOUT=30``, nested
keys with ``__``: ``ASM_PROVIDERS__ECHO__PREFIX=">> "``. Values are read as
TOML values when they parse as one (numbers, booleans, arrays), else as strings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import platformdirs

from asm.errors import AsmError
from asm.serde import converter, describe_structure_error

__all__ = ["AsmConfig", "LoadedConfig", "load_config", "user_config_path"]

#: Tables of plugin configs, by the kind of plugin they configure.
PLUGIN_TABLES: Final = ("providers", "stores", "artifact_stores", "renderers", "sinks", "policies", "pricing", "tools")

#: ASM_* variables that are not config keys.
RESERVED_ENV: Final = frozenset({"ASM_LOAD_PLUGINS", "ASM_TRACE_PLUGINS", "ASM_CONFIG"})


@attrs.frozen
class AsmConfig:
    """The merged configuration a runtime is assembled from."""

    provider: str = "echo"
    store: str = "memory"
    artifact_store: str = "memory"
    renderer: str = "compact"
    run_timeout: float | None = None
    event_buffer_size: int = 1000
    error_text_max_bytes: int = 16_384
    error_text_max_lines: int = 200
    providers: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    stores: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    artifact_stores: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    renderers: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    sinks: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    policies: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    pricing: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    tools: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    def plugin_config(self, kind: str, name: str) -> dict[str, Any]:
        """The config table ``[<kind>.<name>]`` ({} if absent)."""
        tables: dict[str, dict[str, Any]] = getattr(self, kind)
        return dict(tables.get(name, {}))


attrs.resolve_types(AsmConfig)
_FIELDS: Final = {f.name: f for f in attrs.fields(AsmConfig)}


@attrs.frozen
class LoadedConfig:
    """A config and, for each dotted key set by a layer, where it came from."""

    config: AsmConfig
    sources: dict[str, str]
    files: tuple[Path, ...] = ()

    def source_of(self, key: str) -> str:
        """Where ``key`` (dotted, e.g. ``providers.echo.prefix``) was set; ``default`` if nowhere."""
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return "default"


def user_config_path() -> Path:
    """``asm.toml`` in the platform's user config dir (e.g. ``~/.config/asm/asm.toml``)."""
    return Path(platformdirs.user_config_dir("asm")) / "asm.toml"


def load_config(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    user_file: str | Path | None = None,
) -> LoadedConfig:
    """Merge every layer into an :class:`AsmConfig`.

    ``overrides`` are the explicit arguments (dotted keys allowed:
    ``{"providers.echo.prefix": "> "}``). ``config_file`` replaces the project
    file; a missing ``config_file`` is an error, a missing ``./asm.toml`` is not.

    >>> load_config({"provider": "echo"}, env={}, user_file="/nonexistent").config.provider
    'echo'
    """
    env = os.environ if env is None else env
    layers: list[tuple[str, dict[str, Any]]] = []
    files: list[Path] = []
    user = Path(user_file) if user_file is not None else user_config_path()
    if user.is_file():
        layers.append((f"user config {user}", _read_toml(user)))
        files.append(user)
    explicit = config_file if config_file is not None else env.get("ASM_CONFIG")
    if explicit:
        project = Path(explicit)
        if not project.is_file():
            raise AsmError("invalid_config", f"config file {project} does not exist; check the path given to --config / ASM_CONFIG")
    else:
        project = Path(cwd or Path.cwd()) / "asm.toml"
    if project.is_file():
        layers.append((f"project config {project}", _read_toml(project)))
        files.append(project)
    layers.append(("environment", _from_env(env)))
    if overrides:
        layers.append(("argument", _from_dotted(dict(overrides))))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for origin, layer in layers:
        _check_layer(layer, origin, env_origin=origin == "environment")
        _merge(merged, layer, sources, origin, prefix="")
    config = converter.structure(merged, AsmConfig)
    return LoadedConfig(config, sources, tuple(files))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise AsmError("invalid_config", f"{path} is not valid TOML: {exc}; fix the syntax") from None
    except OSError as exc:
        raise AsmError("invalid_config", f"cannot read {path}: {exc.strerror}") from None


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith("ASM_") or name in RESERVED_ENV:
            continue
        path = [part.lower() for part in name[4:].split("__")]
        _set_path(layer, path, _env_value(raw), origin=f"environment variable {name}")
    return layer


def _from_dotted(values: dict[str, Any]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for key, value in values.items():
        if value is not None:
            _set_path(layer, key.split("."), value, origin=f"argument {key}")
    return layer


def _set_path(layer: dict[str, Any], path: list[str], value: Any, *, origin: str) -> None:
    node = layer
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise AsmError("invalid_config", f"{origin}: {'.'.join(path)} conflicts with a value set above it")
        node = child
    node[path[-1]] = value


def _check_layer(layer: dict[str, Any], origin: str, *, env_origin: bool) -> None:
    for key, value in layer.items():
        where = f"ASM_{key.upper()}" if env_origin else key
        field = _FIELDS.get(key)
        if field is None:
            valid = ", ".join(sorted(_FIELDS))
            raise AsmError(
                "invalid_config",
                f"{origin}: unknown config key {where!r}; valid keys are {valid}",
                details={"origin": origin, "key": key},
            )
        if key in PLUGIN_TABLES:
            _check_plugin_tables(key, value, origin)
            continue
        try:
            converter.structure(value, field.type)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - any structuring failure is a type error here
            raise AsmError(
                "invalid_config",
                f"{origin}: {where} must be {_type_name(field.type)}, not {value!r} ({describe_structure_error(exc)})",
                details={"origin": origin, "key": key},
            ) from None


def _check_plugin_tables(kind: str, value: Any, origin: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise AsmError(
            "invalid_config",
            f"{origin}: {kind} must be a table of tables, one per plugin, e.g. [{kind}.<name>]",
            details={"origin": origin, "key": kind},
        )


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else repr(annotation)
    return {
        "str": "a string",
        "int": "an integer",
        "float | None": "a number of seconds (or unset)",
        "float": "a number",
        "bool": "true or false",
    }.get(text, text)


def _merge(into: dict[str, Any], layer: Mapping[str, Any], sources: dict[str, str], origin: str, *, prefix: str) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, sources, origin, prefix=f"{dotted}.")
        else:
            into[key] = _copy(value)
            for stale in [k for k in sources if k.startswith(f"{dotted}.")]:
                del sources[stale]
            sources[dotted] = origin
            if isinstance(value, dict):
                _record_nested(value, sources, origin, prefix=f"{dotted}.")


def _record_nested(value: Mapping[str, Any], sources: dict[str, str], origin: str, *, prefix: str) -> None:
    for key, child in value.items():
        sources[f"{prefix}{key}"] = origin
        if isinstance(child, dict):
            _record_nested(child, sources, origin, prefix=f"{prefix}{key}.")


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value
