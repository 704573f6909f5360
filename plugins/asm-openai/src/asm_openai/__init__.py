"""asm-openai: provider ``openai``, on the ``openai`` SDK.

The Responses API by default; Chat Completions with ``api = "chat"``, for any
OpenAI-compatible server given by ``base_url``. See :mod:`asm_openai._provider`
for the options and the event mapping, and :mod:`asm_openai.testing` for a fake
server to test against offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asm import hookimpl
from asm.hookspecs import Register
from asm.plugins import lazy_attributes

if TYPE_CHECKING:
    from asm.plugins import PluginRegistry
    from asm_openai._provider import OpenAIOptions, OpenAIProvider

__all__ = ["OpenAIOptions", "OpenAIProvider", "asm_register_providers", "create_provider"]


def create_provider(config: dict[str, Any], *, registry: PluginRegistry | None = None) -> OpenAIProvider:
    """Build the ``openai`` provider from its config table (imports the SDK on first use, so
    loading asm's plugins stays fast); ``registry`` resolves tool names (default: the installed plugins)."""
    from asm_openai._provider import create_provider as create

    return create(config, registry=registry)


__getattr__ = lazy_attributes(__name__, {"OpenAIOptions": "_provider", "OpenAIProvider": "_provider"})


@hookimpl
def asm_register_providers(register: Register) -> None:
    """Register the ``openai`` provider."""
    register("openai", create_provider)
