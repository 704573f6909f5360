"""asm-pricing: Anthropic, OpenAI and Google Gemini list prices as asm pricing tables.

Each table's factory takes its ``[pricing.<name>]`` config table, whose
``models`` override or add prices (see the README).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asm.hookspecs import Register, hookimpl
from asm_pricing._tables import ANTHROPIC, ANTHROPIC_AS_OF, GOOGLE, GOOGLE_AS_OF, OPENAI, OPENAI_AS_OF

if TYPE_CHECKING:
    from asm.cost import PricingTable

__all__ = ["anthropic_table", "google_table", "openai_table"]


def _table(name: str, as_of: str, models: dict[str, dict[str, Any]], config: dict[str, Any]) -> PricingTable:
    from asm.cost import pricing_table_from_config  # here: asm loads its plugins without asm.cost

    shipped = pricing_table_from_config(name, {"as_of": as_of, "models": models}, origin="asm-pricing")
    if not config:
        return shipped
    return shipped.with_overrides(pricing_table_from_config(name, config))


def anthropic_table(config: dict[str, Any]) -> PricingTable:
    """Claude model prices, with ``config``'s overrides."""
    return _table("anthropic", ANTHROPIC_AS_OF, ANTHROPIC, config)


def openai_table(config: dict[str, Any]) -> PricingTable:
    """OpenAI model prices, with ``config``'s overrides."""
    return _table("openai", OPENAI_AS_OF, OPENAI, config)


def google_table(config: dict[str, Any]) -> PricingTable:
    """Gemini model prices, with ``config``'s overrides."""
    return _table("google", GOOGLE_AS_OF, GOOGLE, config)


@hookimpl
def asm_register_pricing(register: Register) -> None:
    """Register the ``anthropic``, ``openai`` and ``google`` tables."""
    register("anthropic", anthropic_table)
    register("openai", openai_table)
    register("google", google_table)
