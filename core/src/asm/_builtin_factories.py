"""The factories of asm-core's own plugins (registered lazily by :mod:`asm._builtins`)."""

from __future__ import annotations

from typing import Any

import attrs

from asm.errors import AsmError
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


def echo(config: dict[str, Any]) -> EchoProvider:
    opts = parse_options(_EchoOptions, config, "echo provider")
    return EchoProvider(prefix=opts.prefix, delay=opts.delay)


def scripted(config: dict[str, Any]) -> ScriptedProvider:
    opts = parse_options(_ScriptedOptions, config, "scripted provider")
    return ScriptedProvider(list(opts.chunks), delay=opts.delay)


def memory_store(config: dict[str, Any]) -> InMemorySessionStore:
    parse_options(_NoOptions, config, "memory store")
    return InMemorySessionStore()


def memory_artifacts(config: dict[str, Any]) -> InMemoryArtifactStore:
    parse_options(_NoOptions, config, "memory artifact store")
    return InMemoryArtifactStore()


def compact(config: dict[str, Any]) -> CompactRenderer:
    return CompactRenderer(color=parse_options(_CompactOptions, config, "compact renderer").color)


def file_sink(config: dict[str, Any]) -> FileSink:
    return FileSink(parse_options(_PathOptions, config, "file sink").path)


def stdout_sink(config: dict[str, Any]) -> FileSink:
    parse_options(_NoOptions, config, "stdout sink")
    return FileSink("-")


def jsonl_sink(config: dict[str, Any]) -> JsonlSink:
    return JsonlSink(parse_options(_RequiredPathOptions, config, "jsonl sink").path)


def callback_sink(config: dict[str, Any]) -> CallbackSink:
    unknown = set(config) - {"callback"}
    if unknown or "callback" not in config:
        raise AsmError("invalid_config", "the callback sink takes exactly one option, 'callback' (a callable)")
    return CallbackSink(config["callback"])
