"""Colours for text the renderers build themselves, painted with rich's styles.

A :class:`Painter` turns ``(text, style name)`` into ANSI text for one colour system (or
plain text when there is none). ``NO_COLOR`` keeps bold and dim but drops colours, as
https://no-color.org asks; rich's :class:`~rich.console.Console` decides the colour system
(``FORCE_COLOR``, ``TERM=dumb``, a terminal or not).
"""

from __future__ import annotations

from typing import Final

from rich.cells import cell_len, get_character_cell_size
from rich.color import ColorSystem
from rich.console import Console
from rich.style import Style

__all__ = ["Painter", "fit"]

STYLES: Final[dict[str, str]] = {
    "dim": "dim",
    "ok": "green",
    "error": "bold red",
    "warn": "yellow",
    "tool": "cyan",
    "spinner": "cyan",
    "label": "bold magenta",
    "footer": "dim",
    "thinking": "dim italic",
}


_SYSTEMS: Final = {
    "standard": ColorSystem.STANDARD,
    "256": ColorSystem.EIGHT_BIT,
    "truecolor": ColorSystem.TRUECOLOR,
    "windows": ColorSystem.WINDOWS,
}


class Painter:
    """Paints text by style name; ``color_system=None`` paints nothing."""

    def __init__(self, color_system: ColorSystem | None = None, *, no_color: bool = False) -> None:
        self.color_system = color_system
        self._cache: dict[str, tuple[str, str]] = {}
        for name, spec in STYLES.items():
            style = Style.parse(spec)
            if no_color:
                style = style.without_color
            if color_system is None:
                self._cache[name] = ("", "")
            else:
                # A style rendered around a marker gives its opening and closing sequences.
                opened, _, closed = style.render("\0", color_system=color_system).partition("\0")
                self._cache[name] = (opened, closed)

    @classmethod
    def for_console(cls, console: Console, color: bool | None = None) -> Painter:
        """The painter for ``console``: its colour system unless ``color`` is False
        (``True`` forces 256 colours where the console has none)."""
        if color is False:
            return cls(None)
        system = _SYSTEMS.get(console.color_system or "")
        if system is None and color:
            system = ColorSystem.EIGHT_BIT
        return cls(system, no_color=console.no_color)

    @property
    def enabled(self) -> bool:
        """Whether this painter writes any escape sequences."""
        return self.color_system is not None

    def __call__(self, text: str, name: str) -> str:
        if not text:
            return text
        opened, closed = self._cache[name]
        return f"{opened}{text}{closed}" if opened else text


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` terminal cells (an ellipsis where it was cut)."""
    if width <= 0:
        return ""
    if text.isascii():
        return text if len(text) <= width else text[: width - 1] + "…"
    if cell_len(text) <= width:
        return text
    cells = 0
    for index, char in enumerate(text):
        cells += get_character_cell_size(char)
        if cells > width - 1:
            return text[:index] + "…"
    return text
