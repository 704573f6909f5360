"""asm-template: an asm plugin.

Replace this docstring with what the plugin provides and how to configure it.

This module is the value of the plugin's entry point (``[project.entry-points.asm]``
in ``pyproject.toml``). asm imports it whenever it loads its plugins - for every
``asm`` command, ``asm --help`` included, and every runtime - so it imports only
what registering needs and registers each part's factory by name with
:func:`asm.plugins.lazy`: the part's module (with your SDK, your driver) is
imported the first time a runtime builds the part. Plugins import ``hookimpl``
from asm, never pluggy.
"""

from __future__ import annotations

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy

__all__ = [
    "asm_register_providers",  # kind: provider
    "asm_register_renderers",  # kind: renderer
    "asm_register_sinks",  # kind: sink
    "asm_register_stores",  # kind: store
]


@hookimpl  # kind: provider
def asm_register_providers(register: Register) -> None:
    """Register the provider as ``template`` (what users pass to ``--provider``)."""
    register("template", lazy("asm_template.provider:create_provider"))


@hookimpl  # kind: renderer
def asm_register_renderers(register: Register) -> None:
    """Register the renderer as ``template`` (what users write in ``renderer = "..."``)."""
    register("template", lazy("asm_template.renderer:create_renderer"))


@hookimpl  # kind: sink
def asm_register_sinks(register: Register) -> None:
    """Register the sink as ``template`` (switched on by a ``[sinks.template]`` table)."""
    register("template", lazy("asm_template.sink:create_sink"))


@hookimpl  # kind: store
def asm_register_stores(register: Register) -> None:
    """Register the store as ``template`` (what users write in ``store = "..."``)."""
    register("template", lazy("asm_template.store:create_store"))
