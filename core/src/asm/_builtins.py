"""asm-core's own plugins, registered through the same hooks as everyone else's."""

from __future__ import annotations

from typing import Any

import attrs

from asm.errors import AsmError
from asm.hookspecs import Register, hookimpl
from asm.plugins import parse_options
from asm.providers.scripted import EchoProvider, ScriptedProvider
from asm.rendering import CallbackSink, CompactRenderer, FileSink, JsonlSink
from asm.stores.memory import InMemoryArtifactStore, InMemorySessionStore


@attrs.frozen
class _EchoOptions:
    prefix: str = ""
    delay: float = 0.0


@attrs.frozen
class _ScriptedOptions:
    chunks: list[str] = attrs.field(factory=list)
    delay: float = 0.0


@attrs.frozen
class _NoOptions:
    pass


@attrs.frozen
class _CompactOptions:
    color: bool = False


@attrs.frozen
class _PathOptions:
    path: str = "-"


@attrs.frozen
class _RequiredPathOptions:
    path: str


def _echo(config: dict[str, Any]) -> EchoProvider:
    opts = parse_options(_EchoOptions, config, "echo provider")
    return EchoProvider(prefix=opts.prefix, delay=opts.delay)


def _scripted(config: dict[str, Any]) -> ScriptedProvider:
    opts = parse_options(_ScriptedOptions, config, "scripted provider")
    return ScriptedProvider(list(opts.chunks), delay=opts.delay)


def _memory_store(config: dict[str, Any]) -> InMemorySessionStore:
    parse_options(_NoOptions, config, "memory store")
    return InMemorySessionStore()


def _memory_artifacts(config: dict[str, Any]) -> InMemoryArtifactStore:
    parse_options(_NoOptions, config, "memory artifact store")
    return InMemoryArtifactStore()


def _compact(config: dict[str, Any]) -> CompactRenderer:
    return CompactRenderer(color=parse_options(_CompactOptions, config, "compact renderer").color)


def _file_sink(config: dict[str, Any]) -> FileSink:
    return FileSink(parse_options(_PathOptions, config, "file sink").path)


def _stdout_sink(config: dict[str, Any]) -> FileSink:
    parse_options(_NoOptions, config, "stdout sink")
    return FileSink("-")


def _jsonl_sink(config: dict[str, Any]) -> JsonlSink:
    return JsonlSink(parse_options(_RequiredPathOptions, config, "jsonl sink").path)


def _callback_sink(config: dict[str, Any]) -> CallbackSink:
    unknown = set(config) - {"callback"}
    if unknown or "callback" not in config:
        raise AsmError("invalid_config", "the callback sink takes exactly one option, 'callback' (a callable)")
    return CallbackSink(config["callback"])


@hookimpl
def asm_register_providers(register: Register) -> None:
    register("echo", _echo)
    register("scripted", _scripted)


@hookimpl
def asm_register_stores(register: Register) -> None:
    register("memory", _memory_store)


@hookimpl
def asm_register_artifact_stores(register: Register) -> None:
    register("memory", _memory_artifacts)


@hookimpl
def asm_register_commands(register: Register) -> None:
    from asm._artifacts_cli import add_artifacts

    register("artifacts", add_artifacts)


@hookimpl
def asm_register_renderers(register: Register) -> None:
    register("compact", _compact)


@hookimpl
def asm_register_sinks(register: Register) -> None:
    register("file", _file_sink)
    register("stdout", _stdout_sink)
    register("jsonl", _jsonl_sink)
    register("callback", _callback_sink)
