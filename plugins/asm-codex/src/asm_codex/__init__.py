"""asm-codex: the ``codex`` provider - the OpenAI Codex CLI (``codex exec --json``) as a run.

Each run starts ``codex exec --json`` with the prompt on stdin, reads its JSONL
stream and maps it onto asm's events: agent messages, reasoning, command
executions, file changes and MCP/web-search calls (as tool calls), token
usage per turn. The thread id lands in ``run.result.metadata["thread_id"]``;
pass it back as the run option ``resume`` to continue that thread. Options
and the flags they become: docs/providers.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy, lazy_attributes

if TYPE_CHECKING:
    from asm_codex._codex import CodexOptions as CodexOptions
    from asm_codex._codex import CodexProvider as CodexProvider
    from asm_codex._codex import create_provider as create_provider

__all__ = ["CodexOptions", "CodexProvider", "create_provider"]


@hookimpl
def asm_register_providers(register: Register) -> None:
    """Register the ``codex`` provider."""
    register("codex", lazy("asm_codex._codex:create_provider"))


__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "_codex"))
