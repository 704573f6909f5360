"""asm-template: an asm plugin.

Replace this docstring with what the plugin provides and how to configure it.

Each part the plugin registers lives in a module of its own, next to the
``@hookimpl`` that registers it. This module is the value of the plugin's entry
point (``[project.entry-points.asm]`` in ``pyproject.toml``): asm imports it and
registers every hook implementation it holds, so it re-exports theirs. Add a
line here for each part you add; plugins import ``hookimpl`` from ``asm``,
never pluggy.
"""

from __future__ import annotations

from asm_template.provider import asm_register_providers as asm_register_providers  # kind: provider
from asm_template.renderer import asm_register_renderers as asm_register_renderers  # kind: renderer
from asm_template.sink import asm_register_sinks as asm_register_sinks  # kind: sink
from asm_template.store import asm_register_stores as asm_register_stores  # kind: store

__all__ = [
    "asm_register_providers",  # kind: provider
    "asm_register_renderers",  # kind: renderer
    "asm_register_sinks",  # kind: sink
    "asm_register_stores",  # kind: store
]
