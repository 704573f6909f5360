"""asm-gemini: provider ``gemini``, the Google Gemini API on the ``google-genai`` SDK.

See :mod:`asm_gemini._provider` for the options and the event mapping,
:mod:`asm_gemini._wire` for the wire format, and :mod:`asm_gemini.testing` for a
fake Gemini server to test against offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asm import hookimpl
from asm.hookspecs import Register
from asm.plugins import lazy_attributes

if TYPE_CHECKING:
    from asm.plugins import PluginRegistry
    from asm_gemini._provider import GeminiOptions, GeminiProvider

__all__ = ["GeminiOptions", "GeminiProvider", "asm_register_providers", "create_provider"]


def create_provider(config: dict[str, Any], *, registry: PluginRegistry | None = None) -> GeminiProvider:
    """Build the ``gemini`` provider from its config table (imports the SDK on first use, so
    loading asm's plugins stays fast); ``registry`` resolves tool names (default: the installed plugins)."""
    from asm_gemini._provider import create_provider as create

    return create(config, registry=registry)


__getattr__ = lazy_attributes(__name__, {"GeminiOptions": "_provider", "GeminiProvider": "_provider"})


@hookimpl
def asm_register_providers(register: Register) -> None:
    """Register the ``gemini`` provider."""
    register("gemini", create_provider)
