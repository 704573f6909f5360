"""The workspace values: snapshots, file changes, diffs, and the options of a run's workspace."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from asm.errors import AsmError
from asm.model import utcnow

Backend = Literal["git", "hash"]
Change = Literal["added", "modified", "deleted"]

#: Names skipped by the hash backend at any depth, whatever the config adds.
DEFAULT_IGNORES: Final = (".git", "node_modules", ".venv", "__pycache__")
DEFAULT_MAX_FILE_BYTES: Final = 10 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES: Final = 1024 * 1024 * 1024
ROLLBACK_OUTCOMES: Final = frozenset({"completed", "failed", "cancelled", "timeout"})


@attrs.frozen
class SkippedFile:
    """A file a snapshot left out, and why (over the per-file size cap)."""

    path: str
    size: int
    reason: str


@attrs.frozen
class Snapshot:
    """The state of a workspace at one moment.

    ``ref`` names it: for the git backend a commit object (kept alive by
    ``refs/asm/snapshots/<id>``), for the hash backend the sha256 of its
    manifest. ``files`` is the hash backend's manifest (path → sha256); the git
    backend keeps its contents in git instead.
    """

    path: str
    backend: Backend
    ref: str
    label: str = "snapshot"
    taken_at: datetime = attrs.field(factory=utcnow)
    files: Mapping[str, str] = attrs.field(factory=dict)
    skipped: tuple[SkippedFile, ...] = ()

    @property
    def can_roll_back(self) -> bool:
        """Only git snapshots keep the contents a rollback needs."""
        return self.backend == "git"


@attrs.frozen
class FileChange:
    """One file a diff found changed; line counts are 0 for binary files."""

    path: str
    change: Change
    insertions: int = 0
    deletions: int = 0
    binary: bool = False


@attrs.frozen
class WorkspaceDiff:
    """What changed between two snapshots; ``patch`` is a unified diff of the text
    files (git backend; empty for the hash backend, which keeps no contents)."""

    before: Snapshot
    after: Snapshot
    changes: tuple[FileChange, ...] = ()
    patch: str = ""

    @property
    def files_changed(self) -> int:
        """How many files were added, modified or deleted."""
        return len(self.changes)

    @property
    def insertions(self) -> int:
        """Lines added, over all text files."""
        return sum(change.insertions for change in self.changes)

    @property
    def deletions(self) -> int:
        """Lines removed, over all text files."""
        return sum(change.deletions for change in self.changes)


@attrs.frozen
class WorkspaceOptions:
    """A run's ``workspace`` option: snapshot ``path`` before and after the run, store
    the diff's patch as an artifact, and roll back on the outcomes in ``rollback_on``.

    >>> WorkspaceOptions.parse({"path": ".", "rollback_on": ["failed"]}).rollback_on
    frozenset({'failed'})
    """

    path: str
    backend: Literal["auto", "git", "hash"] = "auto"
    rollback_on: frozenset[str] = frozenset({"failed", "cancelled", "timeout"})
    ignore: tuple[str, ...] = ()
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES

    @classmethod
    def parse(cls, value: object, *, where: str = "workspace") -> WorkspaceOptions:
        """A ``workspace`` option (a table, or just a path) as options, or
        ``invalid_input`` naming what is wrong."""
        if isinstance(value, str | Path):
            value = {"path": str(value)}
        if not isinstance(value, Mapping):
            raise _bad(where, f"must be a path or a table with 'path', not {type(value).__name__}")
        table: dict[str, Any] = dict(value)
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise _bad(where, f"has unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
        path = table.get("path")
        if not isinstance(path, str) or not path:
            raise _bad(where, "needs 'path', the directory the run works in")
        backend = table.get("backend", "auto")
        if backend not in ("auto", "git", "hash"):
            raise _bad(where, f"backend {backend!r} is not one of auto, git, hash")
        rollback_on = table.get("rollback_on", sorted(attrs.fields(cls).rollback_on.default))
        if isinstance(rollback_on, str) or not all(isinstance(o, str) for o in rollback_on):
            raise _bad(where, "rollback_on must be a list of run outcomes, e.g. ['failed', 'cancelled']")
        wrong = sorted(set(rollback_on) - ROLLBACK_OUTCOMES)
        if wrong:
            outcomes = ", ".join(sorted(ROLLBACK_OUTCOMES))
            raise _bad(where, f"rollback_on has {', '.join(wrong)}; the outcomes are {outcomes}")
        ignore = table.get("ignore", ())
        if isinstance(ignore, str) or not all(isinstance(p, str) for p in ignore):
            raise _bad(where, "ignore must be a list of patterns, e.g. ['*.log', 'build/']")
        sizes = {}
        for key in ("max_file_bytes", "max_total_bytes"):
            size = table.get(key, getattr(attrs.fields(cls), key).default)
            if type(size) is not int or size < 1:
                raise _bad(where, f"{key} must be a positive number of bytes, not {size!r}")
            sizes[key] = size
        return cls(path, backend, frozenset(rollback_on), tuple(ignore), **sizes)


def _bad(where: str, problem: str) -> AsmError:
    return AsmError("invalid_input", f"{where} {problem}", details={"option": where})
