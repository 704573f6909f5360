"""The hash backend: a sha256 manifest of any directory (no contents kept, no rollback)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import trio

from asm.errors import AsmError
from asm.workspace._model import DEFAULT_IGNORES, Change, FileChange, SkippedFile, Snapshot, WorkspaceDiff

_CHUNK = 1024 * 1024


def _ignored(relative: str, name: str, patterns: Iterable[str]) -> bool:
    """``.gitignore``-like: a pattern without ``/`` matches the name at any depth,
    one with ``/`` matches the path from the top; a trailing ``/`` is dropped."""
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatchcase(relative, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _manifest(
    root: str, ignore: tuple[str, ...], max_file_bytes: int, max_total_bytes: int
) -> tuple[dict[str, str], list[SkippedFile]]:
    patterns = (*DEFAULT_IGNORES, *ignore)
    files: dict[str, str] = {}
    skipped: list[SkippedFile] = []
    total = 0
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        with os.scandir(Path(root, relative_dir)) as entries:
            for entry in entries:
                relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
                if _ignored(relative, entry.name, patterns):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(relative)
                    continue
                if entry.is_symlink():
                    files[relative] = f"symlink:{Path(entry.path).readlink()}"
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue  # sockets, fifos: not files an agent edits
                size = entry.stat(follow_symlinks=False).st_size
                if size > max_file_bytes:
                    skipped.append(SkippedFile(relative, size, f"over max_file_bytes ({max_file_bytes})"))
                    continue
                total += size
                if total > max_total_bytes:
                    raise AsmError(
                        "workspace_too_large",
                        f"workspace {root} holds more than max_total_bytes ({max_total_bytes}) of files to hash; "
                        "raise max_total_bytes or add ignore patterns",
                        details={"path": root},
                    )
                files[relative] = _digest(entry.path)
    return dict(sorted(files.items())), skipped


async def snapshot(
    root: str, *, label: str, ignore: tuple[str, ...], max_file_bytes: int, max_total_bytes: int
) -> Snapshot:
    """Hash every file under ``root`` (in a worker thread)."""
    files, skipped = await trio.to_thread.run_sync(_manifest, root, ignore, max_file_bytes, max_total_bytes)
    ref = hashlib.sha256(json.dumps(files, separators=(",", ":")).encode()).hexdigest()
    return Snapshot(root, "hash", ref, label, files=files, skipped=tuple(skipped))


def diff(before: Snapshot, after: Snapshot) -> WorkspaceDiff:
    """Which files were added, modified or deleted (no line counts, no patch)."""
    changes = []
    for path in sorted(before.files.keys() | after.files.keys()):
        old, new = before.files.get(path), after.files.get(path)
        if old == new:
            continue
        change: Change = "added" if old is None else "deleted" if new is None else "modified"
        changes.append(FileChange(path, change))
    return WorkspaceDiff(before, after, tuple(changes))
