"""Layered configuration.

From lowest to highest precedence: built-in defaults < the user config file
(``asm.toml`` in the platformdirs user config dir) < the project's
``./asm.toml`` (or the file given by ``--config`` / ``ASM_CONFIG``) <
``ASM_*`` environment variables < explicit arguments. Each layer is checked on
its own, so an error names the file (or variable), the key and the type it
needs. The file looks like::

    provider = "echo"          # the default provider
    store = "sqlite"           # the session store plugin (default: sqlite if installed, else memory)
    run_timeout = 120          # seconds; unset means no limit

    [providers.echo]           # each plugin's own table, handed to its factory
    prefix = "echo: "

    [sinks.jsonl]              # a [sinks.<name>] table enables that sink
    path = "events.jsonl"

Environment variables: ``ASM_PROVIDER=claude``, ``ASM_RUN_TIMEOUT=30``, nested
keys with ``__``: ``ASM_PROVIDERS__ECHO__PREFIX=">> "``. Values are read as
TOML values when they parse as one (numbers, booleans, arrays), else as strings;
a string setting (``ASM_PROVIDER``, ``ASM_STORE``, ...) is always read as text.
``ASM_CONFIG``, ``ASM_LOAD_PLUGINS`` and ``ASM_TRACE_PLUGINS`` are not settings.
A variable that names no setting (another tool's ``ASM_TMP``) is ignored with a
:class:`ConfigWarning`; one a letter or two away from a setting's name
(``ASM_PROVDIER``) is a typo and an ``invalid_config`` error.

``LoadedConfig.source_of(key)`` names the layer a value came from: ``default``,
``user config <path>``, ``project config <path>``, ``environment variable
ASM_<NAME>`` or ``argument``.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import platformdirs

from asm._spelling import TYPO_CUTOFF as TYPO_CUTOFF
from asm._spelling import close_match as close_match
from asm._spelling import typo_of as typo_of
from asm.errors import AsmError
from asm.model import CONTINUATION_MODES
from asm.serde import converter, describe_structure_error

__all__ = [
    "AsmConfig",
    "ConfigWarning",
    "LoadedConfig",
    "close_match",
    "load_config",
    "typo_of",
    "user_config_path",
]

#: Tables of plugin configs, by the kind of plugin they configure.
PLUGIN_TABLES: Final = ("providers", "stores", "artifact_stores", "renderers", "sinks", "policies", "pricing", "tools")

#: ASM_* variables that are not config keys.
RESERVED_ENV: Final = frozenset({"ASM_LOAD_PLUGINS", "ASM_TRACE_PLUGINS", "ASM_CONFIG"})


class ConfigWarning(UserWarning):
    """A config entry asm ignores, though it may be a mistake: a ``[<kind>.<name>]``
    table for a plugin that is not installed, an ``ASM_*`` variable that is no
    setting. The ``asm`` command prints each as one line, ``asm: warning: ...``;
    an application sees it through :mod:`warnings` (turn it into an error with
    ``warnings.simplefilter("error", asm.config.ConfigWarning)``)."""


@attrs.frozen
class AsmConfig:
    """The merged configuration a runtime is assembled from."""

    provider: str = "echo"
    #: unset: the embedded default, ``sqlite`` when a plugin provides it (asm-sqlalchemy), else ``memory``
    store: str | None = None
    artifact_store: str = "memory"
    renderer: str = "compact"
    run_timeout: float | None = None
    event_buffer_size: int = 1000
    error_text_max_bytes: int = 16_384
    error_text_max_lines: int = 200
    #: limits shared by every SessionServer of a runtime (unset: no limit)
    max_parallel_sessions: int | None = 100
    max_parallel_runs: int | None = 50
    #: seconds a tool call waits for approval before it counts as denied (unset: forever)
    approval_timeout: float | None = 300.0
    #: scrub secrets from every event before it is stored or shown (see asm.redaction)
    redact: bool = True
    #: extra secret patterns, kind -> regular expression
    redact_patterns: dict[str, str] = attrs.field(factory=dict)
    #: every run's workspace unless it gives its own: ``{path, backend, rollback_on, ...}`` (asm.workspace)
    workspace: dict[str, Any] | None = None
    #: retries of a provider that fails before any output: ``{max_retries, base_delay, max_delay}`` (asm.retry)
    retry: dict[str, Any] | None = None
    #: how a run continues its session: auto, replay, native or none (asm.continuity)
    continuation: str = "auto"
    #: the transcript's token budget (unset: 3/4 of the model's context window, when the pricing tables know it)
    continuation_max_tokens: int | None = None
    #: compaction of redundant streamed deltas and a per-session event cap:
    #: ``{after_days, max_session_events}`` (asm.retention)
    retention: dict[str, Any] | None = None
    #: ``{backend}``: where ``open_session_server(runtime)`` executes runs: ``"local"`` (this
    #: process, the default) or a plugin's server backend (``"celery"``: asm-celery's workers)
    server: dict[str, Any] = attrs.field(factory=dict)
    #: the ``[celery]`` table of asm-celery (broker_url, queue, concurrency, ...)
    celery: dict[str, Any] = attrs.field(factory=dict)
    #: ``asm serve`` (asm-web): ``{host, port, tokens, cors_origins, max_body_bytes, ...}``; read by that plugin
    web: dict[str, Any] = attrs.field(factory=dict)
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
    ``cwd`` (default: the current directory) is where ``./asm.toml`` is looked
    for and what a relative ``config_file`` / ``ASM_CONFIG`` is relative to.

    >>> load_config({"provider": "echo"}, env={}, user_file="/nonexistent").config.provider
    'echo'
    """
    env = os.environ if env is None else env
    base = Path.cwd() if cwd is None else Path(cwd)
    layers: list[tuple[str, dict[str, Any]]] = []
    files: list[Path] = []
    user = Path(user_file) if user_file is not None else user_config_path()
    if user.is_file():
        layers.append((f"user config {user}", _read_toml(user)))
        files.append(user)
    explicit = config_file if config_file is not None else env.get("ASM_CONFIG")
    if explicit:
        project = base / Path(explicit)
        if not project.is_file():
            given = "--config / config_file" if config_file is not None else "ASM_CONFIG"
            problem = (
                f"is a directory; pass the file ({project / 'asm.toml'}?)" if project.is_dir() else "does not exist"
            )
            raise AsmError(
                "invalid_config",
                f"config file {project} {problem}; check the path given to {given}",
                details={"path": str(project)},
            )
    else:
        project = base / "asm.toml"
    if project.is_file():
        layers.append((f"project config {project}", _read_toml(project)))
        files.append(project)
    layers.extend(_from_env(env))
    if overrides:
        layers.append(("argument", _from_dotted(dict(overrides))))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for origin, layer in layers:
        _check_layer(layer, origin)
        _merge(merged, layer, sources, origin, prefix="")
    config = converter.structure(merged, AsmConfig)
    return LoadedConfig(config, sources, tuple(files))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise AsmError(
            "invalid_config", f"{path} is not valid TOML: {exc}; fix the syntax", details={"path": str(path)}
        ) from None
    except UnicodeDecodeError:
        raise AsmError(
            "invalid_config", f"{path} is not valid TOML: it is not UTF-8 text", details={"path": str(path)}
        ) from None
    except OSError as exc:
        raise AsmError("invalid_config", f"cannot read {path}: {exc.strerror}", details={"path": str(path)}) from None


def _env_value(raw: str, path: list[str]) -> Any:
    field = _FIELDS.get(path[0]) if len(path) == 1 else None
    try:
        document = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        return raw
    if set(document) != {"v"}:
        return raw  # "1\nother = 2" is text, not a way to set other keys
    value = document["v"]
    if field is not None and field.type in (str, str | None) and not isinstance(value, str):
        return raw  # ASM_PROVIDER=1 names a provider "1"
    return value


def _from_env(env: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """One layer per ``ASM_*`` variable, so an error and ``source_of`` name the variable."""
    layers = []
    for name in sorted(env):
        if not name.startswith("ASM_") or name in RESERVED_ENV:
            continue
        path = [part.lower() for part in name[4:].split("__")]
        origin = f"environment variable {name}"
        if path[0] not in _FIELDS and not _env_typo(name, path[0]):
            # Not a setting, nor a near miss of one: another tool's variable (ASM_TMP).
            warnings.warn(
                ConfigWarning(f"{origin} is not an asm setting; ignored (unset it if it was meant for asm)"),
                stacklevel=3,
            )
            continue
        layer: dict[str, Any] = {}
        _set_path(layer, path, _env_value(env[name], path), origin=origin)
        layers.append((origin, layer))
    return layers


def _env_typo(name: str, key: str) -> bool:
    """Whether ``name`` (``ASM_<KEY>``, no setting) is a near miss of a setting (then the
    layer check refuses it, with a did-you-mean) or of a reserved variable (refused here)."""
    if typo_of(key, _FIELDS):
        return True
    reserved = typo_of(name, RESERVED_ENV)
    if reserved:
        raise AsmError(
            "invalid_config",
            f"environment variable {name} is not an asm setting; did you mean {reserved}?",
            details={"origin": f"environment variable {name}", "key": key},
        )
    return False


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


#: A plugin table's kind in the singular, as it is easy to write it (``[provider.echo]``).
_SINGULAR_TABLES: Final = {
    "provider": "providers",
    "store": "stores",
    "artifact_store": "artifact_stores",
    "renderer": "renderers",
    "sink": "sinks",
    "policy": "policies",
    "tool": "tools",
}


def _singular_table(key: str, value: Any, origin: str) -> None:
    """``[provider.echo]`` (a table under a singular name): ``invalid_config`` naming the
    plural table it was meant to be, ``[providers.echo]``."""
    plural = _SINGULAR_TABLES.get(key)
    if plural is None or not isinstance(value, dict) or not value:
        return
    name = next(iter(value))
    shown = f"{key}.{name}" if isinstance(value[name], dict) else key
    meant = f"{plural}.{name}" if isinstance(value[name], dict) else f"{plural}.<name>"
    raise AsmError(
        "invalid_config",
        f"{origin}: [{shown}] is no table asm knows; did you mean [{meant}]? Plugin tables are plural",
        details={"origin": origin, "key": key, "did_you_mean": plural},
    )


def _check_layer(layer: dict[str, Any], origin: str) -> None:
    for key, value in layer.items():
        _singular_table(key, value, origin)
        field = _FIELDS.get(key)
        if field is None:
            valid = ", ".join(sorted(_FIELDS))
            close = close_match(key, _FIELDS)
            hint = f"; did you mean {close!r}?" if close else ""
            raise AsmError(
                "invalid_config",
                f"{origin}: unknown config key {key!r}{hint} (valid keys: {valid})",
                details={"origin": origin, "key": key},
            )
        if key in PLUGIN_TABLES:
            _check_plugin_tables(key, value, origin)
            continue
        try:
            checked = converter.structure(value, field.type)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - any structuring failure is a type error here
            raise AsmError(
                "invalid_config",
                f"{origin}: {key} must be {_type_name(field.type)}, not {value!r} ({describe_structure_error(exc)})",
                details={"origin": origin, "key": key},
            ) from None
        problem = _range_problem(key, checked)
        if problem:
            raise AsmError(
                "invalid_config", f"{origin}: {key} {problem}, not {value!r}", details={"origin": origin, "key": key}
            )


def _range_problem(key: str, value: Any) -> str | None:
    if key in ("run_timeout", "approval_timeout") and value is not None and not value > 0:  # also catches nan
        return "must be a positive number of seconds (leave it unset for no limit)"
    if key in ("max_parallel_sessions", "max_parallel_runs") and value is not None and value < 1:
        return "must be at least 1 (leave it unset for no limit)"
    if key == "event_buffer_size" and value < 1:
        return "must be at least 1"
    if key == "continuation" and value not in CONTINUATION_MODES:
        return f"must be one of {', '.join(CONTINUATION_MODES)}"
    if key == "continuation_max_tokens" and value is not None and value < 1:
        return "must be at least 1 token (leave it unset for 3/4 of the model's context window)"
    if key in ("error_text_max_bytes", "error_text_max_lines") and value < 0:
        return "must be 0 or more"
    if key == "server" and (set(value) - {"backend"} or not isinstance(value.get("backend", ""), str)):
        return 'must be a table with only backend = "local" or a server backend\'s name (e.g. "celery")'
    return None


def _check_plugin_tables(kind: str, value: Any, origin: str) -> None:
    example = f"e.g. [{kind}.<name>] in asm.toml"
    if not isinstance(value, dict):
        raise AsmError(
            "invalid_config",
            f"{origin}: {kind} must be a table of tables, one per plugin ({example}), not {value!r}",
            details={"origin": origin, "key": kind},
        )
    for name, table in value.items():
        if not isinstance(table, dict):
            raise AsmError(
                "invalid_config",
                f"{origin}: {kind}.{name} must be a table of that plugin's options ({example}), not {table!r}",
                details={"origin": origin, "key": f"{kind}.{name}"},
            )


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else repr(annotation)
    return {
        "str": "a string",
        "str | None": "a string (or unset)",
        "int": "an integer",
        "float | None": "a number of seconds (or unset)",
        "float": "a number",
        "bool": "true or false",
    }.get(text, text)


def _merge(
    into: dict[str, Any], layer: Mapping[str, Any], sources: dict[str, str], origin: str, *, prefix: str
) -> None:
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
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
