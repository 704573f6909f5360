"""The git backend: snapshots as commit objects written with plumbing on a
temporary index, so the user's index, HEAD, branches and stash are never touched.

A snapshot is ``git add -A`` of the workspace into a copy of the user's index
(the copy only saves re-hashing unchanged files), ``write-tree``,
``commit-tree``, and a ref ``refs/asm/snapshots/<commit>`` that keeps it from
garbage collection. Tracked and untracked files are in it; ignored ones are not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import attrs
import trio

from asm.errors import AsmError
from asm.workspace._model import Change, FileChange, Snapshot, WorkspaceDiff

#: Files in the git directory that say an operation is half done.
_BUSY: Final = {
    "MERGE_HEAD": ("a merge", "git merge --abort"),
    "rebase-merge": ("a rebase", "git rebase --abort"),
    "rebase-apply": ("a rebase or am", "git rebase --abort"),
    "CHERRY_PICK_HEAD": ("a cherry-pick", "git cherry-pick --abort"),
    "REVERT_HEAD": ("a revert", "git revert --abort"),
}
_IDENTITY: Final = {
    "GIT_AUTHOR_NAME": "asm",
    "GIT_AUTHOR_EMAIL": "asm@localhost",
    "GIT_COMMITTER_NAME": "asm",
    "GIT_COMMITTER_EMAIL": "asm@localhost",
}
SNAPSHOT_REFS: Final = "refs/asm/snapshots/"


@attrs.frozen
class Repo:
    """A git work tree and where the workspace is inside it."""

    top: str
    git_dir: str
    pathspec: str  # the workspace, relative to top ("." for the whole tree)


async def _git(
    cwd: str, *args: str, env: Mapping[str, str] | None = None, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", **(env or {})}
    try:
        result = await trio.run_process(
            ["git", "-C", cwd, *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=full_env,
        )
    except FileNotFoundError:
        raise AsmError(
            "dependency_not_available",
            "the git workspace backend needs the git executable on PATH; install git or use backend = 'hash'",
        ) from None
    if check and result.returncode != 0:
        why = result.stderr.decode(errors="replace").strip().splitlines()
        raise AsmError(
            "workspace_error",
            f"git {args[0]} failed in {cwd}: {why[0] if why else f'exit {result.returncode}'}",
            details={"path": cwd},
        )
    return result


async def find_repo(path: str) -> Repo | None:
    """The git work tree ``path`` is in, or ``None`` (not in one, or no git)."""
    try:
        result = await _git(path, "rev-parse", "--show-toplevel", "--absolute-git-dir", check=False)
    except AsmError:
        return None
    if result.returncode != 0:
        return None
    top, git_dir = result.stdout.decode().splitlines()[:2]
    return Repo(top, git_dir, _relative(path, top))


def _relative(path: str, top: str) -> str:
    return str(Path(path).resolve().relative_to(Path(top).resolve())) or "."


def check_not_busy(repo: Repo) -> None:
    """Refuse a work tree in the middle of a merge, rebase, cherry-pick or revert."""
    for name, (what, fix) in _BUSY.items():
        if Path(repo.git_dir, name).exists():
            raise AsmError(
                "workspace_busy",
                f"the git work tree {repo.top} is in the middle of {what}; finish it or abort it ({fix}) first",
                details={"path": repo.top},
            )


async def _tree_of_work_tree(repo: Repo, scratch: str) -> str:
    """The tree object of the work tree as it is now (tracked and untracked, not ignored),
    built in a temporary index."""
    index = str(Path(scratch, "index"))
    env = {"GIT_INDEX_FILE": index}
    # The user's index is only read: its stat data saves re-hashing unchanged files.
    if not await trio.to_thread.run_sync(_copy_if_there, Path(repo.git_dir, "index"), index):
        head = await _git(repo.top, "rev-parse", "--verify", "-q", "HEAD", check=False)
        if head.returncode == 0:
            await _git(repo.top, "read-tree", "HEAD", env=env)
    await _git(repo.top, "add", "-A", "--", repo.pathspec, env=env)
    return (await _git(repo.top, "write-tree", env=env)).stdout.decode().strip()


def _copy_if_there(source: Path, target: str) -> bool:
    try:
        shutil.copyfile(source, target)
    except FileNotFoundError:
        return False
    return True


async def snapshot(repo: Repo, path: str, *, label: str) -> Snapshot:
    """A commit of the work tree, referenced by ``refs/asm/snapshots/<commit>``."""
    check_not_busy(repo)
    with tempfile.TemporaryDirectory(prefix="asm-snapshot-") as scratch:
        tree = await _tree_of_work_tree(repo, scratch)
    head = await _git(repo.top, "rev-parse", "--verify", "-q", "HEAD", check=False)
    parents = ["-p", head.stdout.decode().strip()] if head.returncode == 0 else []
    message = f"asm workspace snapshot ({label})".encode()
    commit = (await _git(repo.top, "commit-tree", tree, *parents, env=_IDENTITY, stdin=message)).stdout.decode().strip()
    await _git(repo.top, "update-ref", SNAPSHOT_REFS + commit, commit)
    return Snapshot(path, "git", commit, label)


def _fields(output: bytes) -> list[str]:
    return [field.decode("utf-8", "surrogateescape") for field in output.split(b"\0") if field]


async def diff(before: Snapshot, after: Snapshot) -> WorkspaceDiff:
    """Files added, modified and deleted, with line counts and a unified patch
    (paths relative to the workspace)."""
    common = ("--no-renames", "--no-ext-diff", "--no-color", "--relative")
    spec = ("--", ".")
    where = after.path
    status = _fields((await _git(where, "diff", "--name-status", "-z", *common, before.ref, after.ref, *spec)).stdout)
    counts = _fields((await _git(where, "diff", "--numstat", "-z", *common, before.ref, after.ref, *spec)).stdout)
    patch = (await _git(where, "diff", *common, before.ref, after.ref, *spec)).stdout
    lines: dict[str, tuple[int, int, bool]] = {}
    for record in counts:
        inserted, removed, name = record.split("\t", 2)
        binary = inserted == "-"
        lines[name] = (0 if binary else int(inserted), 0 if binary else int(removed), binary)
    kinds: dict[str, Change] = {"A": "added", "D": "deleted"}
    changes = []
    for code, name in zip(status[::2], status[1::2], strict=True):
        insertions, deletions, binary = lines.get(name, (0, 0, False))
        changes.append(FileChange(name, kinds.get(code[0], "modified"), insertions, deletions, binary))
    return WorkspaceDiff(before, after, tuple(changes), patch.decode("utf-8", "replace"))


async def rollback(repo: Repo, before: Snapshot, *, expected: Snapshot | None, force: bool) -> list[str]:
    """Restore the workspace's tracked and untracked files to ``before`` (ignored files
    untouched); refuse if it no longer matches ``expected`` unless ``force``.
    Returns the paths restored or removed (relative to the work tree)."""
    check_not_busy(repo)
    with tempfile.TemporaryDirectory(prefix="asm-rollback-") as scratch:
        current = await _tree_of_work_tree(repo, scratch)
        if expected is not None and not force:
            wanted = (await _git(repo.top, "rev-parse", f"{expected.ref}^{{tree}}")).stdout.decode().strip()
            if wanted != current:
                raise AsmError(
                    "workspace_changed",
                    f"the workspace {before.path} changed since the run ended; nothing was rolled back "
                    "(rollback with force=True to discard those changes too)",
                    details={"path": before.path},
                )
        moves = _fields(
            (
                await _git(
                    repo.top, "diff", "--name-status", "-z", "--no-renames", current, before.ref, "--", repo.pathspec
                )
            ).stdout
        )
        restore = [name for code, name in zip(moves[::2], moves[1::2], strict=True) if code[0] != "D"]
        remove = [name for code, name in zip(moves[::2], moves[1::2], strict=True) if code[0] == "D"]
        if restore:
            env = {"GIT_INDEX_FILE": str(Path(scratch, "before"))}
            await _git(repo.top, "read-tree", before.ref, env=env)
            paths = b"\0".join(name.encode("utf-8", "surrogateescape") for name in restore) + b"\0"
            await _git(repo.top, "checkout-index", "-f", "-z", "--stdin", env=env, stdin=paths)
    await trio.to_thread.run_sync(_remove, repo.top, before.path, remove)
    return sorted(restore + remove)


def _remove(top: str, workspace: str, names: list[str]) -> None:
    """Delete files the run added, and the directories it left empty (up to the workspace)."""
    stop = Path(workspace).resolve()
    for name in names:
        path = Path(top, name)
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != stop and stop in parent.parents and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
