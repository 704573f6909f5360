"""Model-aware cost: pricing tables and what a run's tokens cost.

Pricing tables come from plugins (``asm_register_pricing``; ``asm-pricing``
ships current Anthropic and OpenAI prices) and from config. Prices are USD per
million tokens, held as exact ``Decimal``::

    [pricing.anthropic.models.my-fine-tune]   # override or add a model
    input = 3
    output = 15

A model is found by exact id, then by alias, then as a dated or versioned
form of a known id (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``).
A model no table knows has cost ``None`` — unknown, never 0.

>>> table = PricingTable("demo", "2026-11-01", {"m-1": ModelPrice(input=3, output=15)})
>>> Pricing([table]).cost("m-1-20260101", TokenUsage(input_tokens=1_000_000, output_tokens=1000))
Cost(total_usd=Decimal('3.015'), input_usd=Decimal('3'), output_usd=Decimal('0.015'), ...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

import attrs

from asm.errors import AsmError
from asm.model import Cost, TokenUsage, to_decimal

__all__ = ["ModelPrice", "Pricing", "PricingTable", "pricing_table_from_config"]

_MILLION: Final = Decimal(1_000_000)
#: What may follow a known id in a dated or versioned model name.
_VERSION_SUFFIX: Final = re.compile(r"^[-@:.](?:\d{4}-?\d{2}-?\d{2}|v?\d+(?:[.-]\d+)*|latest)$")


def _price(value: Any) -> Decimal:
    price = to_decimal(value)
    if price < 0:
        raise AsmError("validation_error", f"{value!r} is negative")
    return price


@attrs.frozen
class ModelPrice:
    """USD per million tokens; cache prices default to the input price."""

    input: Decimal = attrs.field(converter=_price)
    output: Decimal = attrs.field(converter=_price)
    cache_write: Decimal | None = attrs.field(default=None, converter=attrs.converters.optional(_price))
    cache_read: Decimal | None = attrs.field(default=None, converter=attrs.converters.optional(_price))
    aliases: tuple[str, ...] = ()
    #: the model's context window in tokens (what a transcript is truncated to, see
    #: :mod:`asm.continuity`); ``None`` when the table does not say
    context_window: int | None = None

    def cost(self, usage: TokenUsage) -> Cost:
        """What ``usage`` costs at these prices."""
        input_usd = usage.input_tokens * self.input / _MILLION
        output_usd = usage.output_tokens * self.output / _MILLION
        read = usage.cache_read_tokens * (self.cache_read if self.cache_read is not None else self.input) / _MILLION
        write = usage.cache_write_tokens * (self.cache_write if self.cache_write is not None else self.input) / _MILLION
        return Cost(input_usd + output_usd + read + write, input_usd, output_usd, read, write)


@attrs.frozen
class PricingTable:
    """A named set of model prices, with the date they were taken."""

    name: str
    as_of: str
    models: dict[str, ModelPrice]

    def with_overrides(self, overrides: PricingTable) -> PricingTable:
        """This table with ``overrides``' models added or replaced."""
        return PricingTable(self.name, overrides.as_of or self.as_of, {**self.models, **overrides.models})


class Pricing:
    """Every pricing table a runtime knows, looked up as one.

    Tables earlier in the list win when two know the same model.
    """

    def __init__(self, tables: Iterable[PricingTable] = ()) -> None:
        self.tables = list(tables)
        self._exact: dict[str, ModelPrice] = {}
        for table in reversed(self.tables):
            for model_id, price in table.models.items():
                self._exact[model_id] = price
                for alias in price.aliases:
                    self._exact[alias] = price
        # Longest first, so "gpt-4o-mini-2024" finds gpt-4o-mini, not gpt-4o.
        self._prefixes = sorted(self._exact, key=len, reverse=True)

    def price(self, model: str | None) -> ModelPrice | None:
        """The price of ``model``: exact id, alias, or a dated/versioned form of one."""
        if not model:
            return None
        found = self._exact.get(model)
        if found is not None:
            return found
        for known in self._prefixes:
            if model.startswith(known) and _VERSION_SUFFIX.match(model[len(known) :]):
                return self._exact[known]
        return None

    def cost(self, model: str | None, usage: TokenUsage) -> Cost | None:
        """What ``usage`` on ``model`` costs, or ``None`` if no table knows the model."""
        price = self.price(model)
        return price.cost(usage) if price is not None else None


def pricing_table_from_config(name: str, config: Mapping[str, Any], *, origin: str | None = None) -> PricingTable:
    """A table from a ``[pricing.<name>]`` config table: ``as_of`` and
    ``models.<id>.{input, output, cache_write, cache_read, aliases}``; a missing
    or bad price is ``invalid_config`` naming the key and where (``origin``) it came from."""
    where = f"pricing.{name}"
    suffix = f" (from {origin})" if origin else ""
    unknown = set(config) - {"as_of", "models"}
    if unknown:
        raise AsmError(
            "invalid_config", f"{where}{suffix}: unknown key(s) {', '.join(sorted(unknown))}; use as_of and models"
        )
    models_raw = config.get("models", {})
    if not isinstance(models_raw, Mapping):
        raise AsmError("invalid_config", f"{where}.models{suffix} must be a table of models")
    models = {}
    for model_id, entry in models_raw.items():
        key = f"{where}.models.{model_id}"
        shown = key + suffix
        if not isinstance(entry, Mapping):
            raise AsmError("invalid_config", f"{shown} must be a table with input and output prices")
        extra = set(entry) - {"input", "output", "cache_write", "cache_read", "aliases", "context_window"}
        if extra:
            raise AsmError("invalid_config", f"{shown}: unknown key(s) {', '.join(sorted(extra))}")
        for required in ("input", "output"):
            if required not in entry:
                raise AsmError(
                    "invalid_config",
                    f"{key}.{required}{suffix} is missing; give the USD price per million tokens",
                    details={"key": f"{key}.{required}"},
                )
        try:
            models[model_id] = ModelPrice(
                input=entry["input"],
                output=entry["output"],
                cache_write=entry.get("cache_write"),
                cache_read=entry.get("cache_read"),
                aliases=tuple(entry.get("aliases", ())),
                context_window=_context_window(entry.get("context_window"), shown),
            )
        except AsmError as exc:
            raise AsmError(
                "invalid_config", f"{shown}: {exc.message}; prices are non-negative numbers", details={"key": key}
            ) from None
    return PricingTable(name, str(config.get("as_of", "")), models)


def _context_window(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AsmError("invalid_config", f"{where}.context_window must be a positive number of tokens, not {value!r}")
    return value
