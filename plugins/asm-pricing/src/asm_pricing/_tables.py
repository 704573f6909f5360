"""The published list prices, USD per million tokens.

Anthropic: cache_write is the 5-minute cache write price, cache_read the cache hit price.
OpenAI: cached input is the cache read price; writing the cache costs the input price.
Google: Gemini Developer API (paid tier, text), prompts up to 200k tokens; context caching's
read price (a cache hit) as cache_read; implicit caching writes at the input price (explicit
caches' hourly storage is not modelled).
"""

from __future__ import annotations

from typing import Any

ANTHROPIC_AS_OF = "2025-11-24"
OPENAI_AS_OF = "2025-11-24"
# Google's published Gemini Developer API pricing page, as listed in January 2026.
GOOGLE_AS_OF = "2026-01-08"


#: Context windows (tokens) as the providers' model pages list them (Claude: the standard 200k,
#: not the 1M beta).
CLAUDE_WINDOW = 200_000


def _claude(i: str, o: str, write: str, read: str, *aliases: str) -> dict[str, Any]:
    return {
        "input": i,
        "output": o,
        "cache_write": write,
        "cache_read": read,
        "aliases": aliases,
        "context_window": CLAUDE_WINDOW,
    }


def _openai(i: str, o: str, read: str, window: int, *aliases: str) -> dict[str, Any]:
    return {"input": i, "output": o, "cache_write": i, "cache_read": read, "aliases": aliases, "context_window": window}


ANTHROPIC: dict[str, dict[str, Any]] = {
    "claude-opus-4-5": _claude("5", "25", "6.25", "0.50", "claude-opus-4-5-20251101"),
    "claude-opus-4-1": _claude("15", "75", "18.75", "1.50", "claude-opus-4-1-20250805"),
    "claude-opus-4": _claude("15", "75", "18.75", "1.50", "claude-opus-4-20250514", "claude-opus-4-0"),
    "claude-sonnet-4-5": _claude("3", "15", "3.75", "0.30", "claude-sonnet-4-5-20250929"),
    "claude-sonnet-4": _claude("3", "15", "3.75", "0.30", "claude-sonnet-4-20250514", "claude-sonnet-4-0"),
    "claude-3-7-sonnet": _claude("3", "15", "3.75", "0.30", "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest"),
    "claude-haiku-4-5": _claude("1", "5", "1.25", "0.10", "claude-haiku-4-5-20251001"),
    "claude-3-5-haiku": _claude("0.80", "4", "1", "0.08", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
}

OPENAI: dict[str, dict[str, Any]] = {
    "gpt-5": _openai("1.25", "10", "0.125", 400_000),
    "gpt-5-codex": _openai("1.25", "10", "0.125", 400_000),
    "gpt-5-mini": _openai("0.25", "2", "0.025", 400_000),
    "gpt-5-nano": _openai("0.05", "0.40", "0.005", 400_000),
    "gpt-4.1": _openai("2", "8", "0.50", 1_047_576),
    "gpt-4.1-mini": _openai("0.40", "1.60", "0.10", 1_047_576),
    "gpt-4.1-nano": _openai("0.10", "0.40", "0.025", 1_047_576),
    "gpt-4o": _openai("2.50", "10", "1.25", 128_000),
    "gpt-4o-mini": _openai("0.15", "0.60", "0.075", 128_000),
    "o3": _openai("2", "8", "0.50", 200_000),
    "o3-mini": _openai("1.10", "4.40", "0.55", 200_000),
    "o4-mini": _openai("1.10", "4.40", "0.275", 200_000),
}


def _gemini(i: str, o: str, read: str, *aliases: str) -> dict[str, Any]:
    return {
        "input": i,
        "output": o,
        "cache_write": i,
        "cache_read": read,
        "aliases": aliases,
        "context_window": 1_048_576,
    }


#: Output prices include thinking tokens (billed as output; asm counts them so).
GOOGLE: dict[str, dict[str, Any]] = {
    "gemini-2.5-pro": _gemini("1.25", "10", "0.125"),
    "gemini-2.5-flash": _gemini("0.30", "2.50", "0.03"),
    "gemini-2.5-flash-lite": _gemini("0.10", "0.40", "0.01"),
    "gemini-2.0-flash": _gemini("0.10", "0.40", "0.025"),
}
