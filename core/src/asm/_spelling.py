"""Did-you-mean: the known name an unknown one is most like.

Its own module, importing nothing of asm: the plugin loader and the ``asm``
command use it before anything heavier is imported.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Final

__all__ = ["TYPO_CUTOFF", "close_match", "typo_of"]

#: How alike (difflib's ratio) an unknown name must be to a known one to count as its typo
#: (``asm-sqlalchmy`` / ``asm-sqlalchemy`` 0.96), rather than the name of something else
#: (another tool's variable, a plugin not installed here); one edit away is a typo too.
TYPO_CUTOFF: Final = 0.8


def close_match(name: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The choice most like ``name`` (for a did-you-mean), if any is at least ``cutoff`` alike.

    >>> close_match("sqlitee", ["memory", "sqlite"])
    'sqlite'
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def typo_of(name: str, choices: Iterable[str]) -> str | None:
    """The choice ``name`` is a typo of: one edit away (a letter added, dropped,
    changed, or two neighbours swapped) or at least :data:`TYPO_CUTOFF` alike.

    >>> typo_of("ecoh", ["echo", "scripted"]), typo_of("nope", ["echo", "scripted"])
    ('echo', None)
    """
    options = list(choices)
    return next((c for c in options if _one_edit_apart(name, c)), None) or close_match(
        name, options, cutoff=TYPO_CUTOFF
    )


def _one_edit_apart(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    start = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    if len(a) == len(b):
        rest = start + 1
        swapped = a[start : start + 2] == b[start : start + 2][::-1] and a[start + 2 :] == b[start + 2 :]
        return a[rest:] == b[rest:] or swapped
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    return shorter[start:] == longer[start + 1 :]
