"""The hook implementation (private): it registers, and imports neither attrs nor fsspec."""

from __future__ import annotations

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy

__all__ = ["asm_register_artifact_stores"]


@hookimpl
def asm_register_artifact_stores(register: Register) -> None:
    """``fsspec``: artifacts on any fsspec URL."""
    register("fsspec", lazy("asm_fsspec._factories:create_fsspec_store"))
