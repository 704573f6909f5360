"""asm-core's own plugins, registered through the same hooks as everyone else's.

Every ``asm`` command loads this module: the factories live in
:mod:`asm._builtin_factories`, imported when one is first called.
"""

from __future__ import annotations

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy


@hookimpl
def asm_register_providers(register: Register) -> None:
    register("echo", lazy("asm._builtin_factories:echo"))
    register("scripted", lazy("asm._builtin_factories:scripted"))


@hookimpl
def asm_register_stores(register: Register) -> None:
    register("memory", lazy("asm._builtin_factories:memory_store"))


@hookimpl
def asm_register_artifact_stores(register: Register) -> None:
    register("memory", lazy("asm._builtin_factories:memory_artifacts"))


@hookimpl
def asm_register_commands(register: Register) -> None:
    from asm._artifacts_cli import add_artifacts

    register("artifacts", add_artifacts)


@hookimpl
def asm_register_renderers(register: Register) -> None:
    register("compact", lazy("asm._builtin_factories:compact"))


@hookimpl
def asm_register_sinks(register: Register) -> None:
    register("file", lazy("asm._builtin_factories:file_sink"))
    register("stdout", lazy("asm._builtin_factories:stdout_sink"))
    register("jsonl", lazy("asm._builtin_factories:jsonl_sink"))
    register("callback", lazy("asm._builtin_factories:callback_sink"))
