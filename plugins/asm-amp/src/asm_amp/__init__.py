"""asm-amp: the ``amp`` provider - the Amp CLI (``amp --execute --stream-json``) as a run.

Each run starts ``amp --execute <prompt> --stream-json`` and maps its
Claude-Code-compatible JSONL onto asm's events: text, thinking (with
``thinking = true``), tool calls and their results, token usage. The thread
id lands in ``run.result.metadata["session_id"]``; pass it back as the run
option ``resume`` to continue that thread. Options: docs/providers.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy, lazy_attributes

if TYPE_CHECKING:
    from asm_amp._amp import AmpOptions as AmpOptions
    from asm_amp._amp import AmpProvider as AmpProvider
    from asm_amp._amp import create_provider as create_provider

__all__ = ["AmpOptions", "AmpProvider", "create_provider"]


@hookimpl
def asm_register_providers(register: Register) -> None:
    """Register the ``amp`` provider."""
    register("amp", lazy("asm_amp._amp:create_provider"))


__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "_amp"))
