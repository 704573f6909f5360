"""asm-claude: providers for Anthropic Claude.

``claude`` talks to the Messages API through the ``anthropic`` SDK
(:mod:`asm_claude.messages`); ``claude-code`` runs the Claude Code CLI
(``claude -p --output-format stream-json``, :mod:`asm_claude.code`).
"""

from __future__ import annotations

from typing import Any

from asm import hookimpl
from asm.hookspecs import Register
from asm.plugins import PluginRegistry

__all__ = ["asm_register_providers"]


# The SDK is imported when a provider is built, not when asm loads its plugins:
# `asm run --provider shell` should not pay for importing anthropic.
def _messages(config: dict[str, Any], *, registry: PluginRegistry | None = None) -> Any:
    from asm_claude.messages import create_messages_provider

    return create_messages_provider(config, registry=registry)


def _code(config: dict[str, Any]) -> Any:
    from asm_claude.code import create_code_provider

    return create_code_provider(config)


@hookimpl
def asm_register_providers(register: Register) -> None:
    """Register the Claude providers."""
    register("claude", _messages)
    register("claude-code", _code)
