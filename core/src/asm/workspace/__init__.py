"""Workspace snapshots: what a run changed in the directory it works in, the
patch, and undoing it.

::

    before = await snapshot("/work/app")           # git work tree: a commit under refs/asm/
    ...                                            # an agent edits files
    after = await snapshot("/work/app", label="after")
    changes = await diff(before, after)            # added / modified / deleted, a unified patch
    await rollback(before, expected=after)         # the files as they were

Two backends. ``git`` (a path inside a git work tree) keeps snapshots as
commit objects written on a temporary index: the user's index, HEAD, branches
and stash are never touched; tracked and untracked files are snapshotted and
restored, ignored ones left alone. ``hash`` (any directory) keeps a sha256
manifest — ignore patterns, per-file and total size caps — and can say what
changed but not undo it. ``backend="auto"`` picks git where it can.
"""

from __future__ import annotations

import os
from typing import Literal

from asm.errors import AsmError
from asm.workspace import _git, _hash
from asm.workspace._model import (
    DEFAULT_IGNORES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    FileChange,
    SkippedFile,
    Snapshot,
    WorkspaceDiff,
    WorkspaceOptions,
)

__all__ = [
    "DEFAULT_IGNORES",
    "FileChange",
    "SkippedFile",
    "Snapshot",
    "WorkspaceDiff",
    "WorkspaceOptions",
    "diff",
    "rollback",
    "snapshot",
]


def _check_directory(path: str) -> str:
    if not os.path.exists(path):  # noqa: PTH110
        raise AsmError(
            "workspace_not_found",
            f"workspace {path} does not exist; create it or pass the directory the agent works in",
            details={"path": path},
        )
    if not os.path.isdir(path):  # noqa: PTH112
        raise AsmError(
            "invalid_input", f"workspace {path} is a file, not a directory; pass its directory", details={"path": path}
        )
    return os.path.abspath(path)  # noqa: PTH100


async def snapshot(
    path: str,
    *,
    backend: Literal["auto", "git", "hash"] = "auto",
    label: str = "snapshot",
    ignore: tuple[str, ...] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
) -> Snapshot:
    """Snapshot the directory ``path``.

    ``ignore``, ``max_file_bytes`` and ``max_total_bytes`` apply to the hash
    backend (git follows ``.gitignore``); a file over ``max_file_bytes`` is
    left out and listed in ``Snapshot.skipped``. A git work tree in the middle
    of a merge or rebase is refused (``workspace_busy``).

    >>> before = await snapshot(".")  # doctest: +SKIP
    """
    root = _check_directory(path)
    if backend != "hash":
        repo = await _git.find_repo(root)
        if repo is not None:
            return await _git.snapshot(repo, root, label=label)
        if backend == "git":
            raise AsmError(
                "invalid_input",
                f"workspace {root} is not in a git work tree; use backend = 'hash' or 'auto'",
                details={"path": root},
            )
    return await _hash.snapshot(
        root, label=label, ignore=ignore, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes
    )


async def diff(before: Snapshot, after: Snapshot) -> WorkspaceDiff:
    """What changed from ``before`` to ``after`` (two snapshots of one workspace, one backend)."""
    if (before.path, before.backend) != (after.path, after.backend):
        raise AsmError(
            "invalid_input",
            f"cannot diff a {before.backend} snapshot of {before.path} against a {after.backend} snapshot of "
            f"{after.path}; take both of the same workspace with the same backend",
        )
    if before.backend == "hash":
        return _hash.diff(before, after)
    await _repo_of(before)
    return await _git.diff(before, after)


async def rollback(before: Snapshot, *, expected: Snapshot | None = None, force: bool = False) -> list[str]:
    """Put the workspace back as it was at ``before``; return the paths restored or removed.

    With ``expected`` (the snapshot taken when the run ended), a workspace that
    changed since is refused (``workspace_changed``) unless ``force``. Only git
    snapshots can be rolled back (``workspace_rollback_unsupported``).
    """
    if not before.can_roll_back:
        raise AsmError(
            "workspace_rollback_unsupported",
            f"a {before.backend} snapshot keeps no file contents, so {before.path} cannot be rolled back; "
            "make the workspace a git work tree (git init) to get rollback",
            details={"path": before.path},
        )
    return await _git.rollback(await _repo_of(before), before, expected=expected, force=force)


async def _repo_of(snap: Snapshot) -> _git.Repo:
    repo = await _git.find_repo(_check_directory(snap.path))
    if repo is None:
        raise AsmError(
            "workspace_error", f"workspace {snap.path} is no longer a git work tree", details={"path": snap.path}
        )
    return repo
