"""asm.workspace: snapshots, diffs and rollback, on real git work trees and directories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import asm
from asm import AsmError, InMemoryArtifactStore, InMemorySessionStore, SessionManager
from asm.events import ErrorOccurred, MessageStreamed, WorkspaceDiffComputed, WorkspaceRolledBack
from asm.model import RunInput, RunResult
from asm.ports import Emit
from asm.workspace import WorkspaceOptions, diff, rollback, snapshot

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A work tree with history, a branch, a stash entry, a staged change and an ignored file."""
    root = tmp_path / "app"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("*.log\n")
    (root / "keep.txt").write_text("one\ntwo\nthree\n")
    (root / "gone.txt").write_text("delete me\n")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hi')\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    git(root, "branch", "feature")
    (root / "keep.txt").write_text("one\ntwo\nthree\nstashed\n")
    git(root, "stash", "-q")
    (root / "src" / "app.py").write_text("print('staged')\n")
    git(root, "add", "src/app.py")
    (root / "debug.log").write_text("ignored\n")
    return root


def git_state(repo: Path) -> dict[str, Any]:
    """What the user owns in git: the index bytes, HEAD, branches, the stash."""
    dot = repo / ".git"
    return {
        "index": (dot / "index").read_bytes(),
        "HEAD": (dot / "HEAD").read_bytes(),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/stash"),
        "stash": git(repo, "stash", "list"),
        "status": git(repo, "status", "--porcelain"),
    }


async def test_git_snapshot_diff_and_rollback_leave_the_users_git_state_byte_identical(repo: Path) -> None:
    state = git_state(repo)
    before = await snapshot(str(repo))
    assert before.backend == "git" and before.can_roll_back
    assert git_state(repo) == state
    # The agent edits: modifies, adds (untracked, in a new directory), deletes, and writes an ignored file.
    (repo / "keep.txt").write_text("one\n2\nthree\nfour\n")
    (repo / "new").mkdir()
    (repo / "new" / "file.txt").write_text("fresh\n")
    (repo / "gone.txt").unlink()
    (repo / "build.log").write_text("ignored output\n")
    after = await snapshot(str(repo), label="after")
    changes = await diff(before, after)
    assert {(c.path, c.change) for c in changes.changes} == {
        ("keep.txt", "modified"),
        ("new/file.txt", "added"),
        ("gone.txt", "deleted"),
    }
    assert (changes.files_changed, changes.insertions, changes.deletions) == (3, 3, 2)
    assert "+four" in changes.patch and "-delete me" in changes.patch and "+fresh" in changes.patch
    restored = await rollback(before, expected=after)
    assert restored == ["gone.txt", "keep.txt", "new/file.txt"]
    assert (repo / "keep.txt").read_text() == "one\ntwo\nthree\n"
    assert (repo / "gone.txt").read_text() == "delete me\n"
    assert (repo / "src" / "app.py").read_text() == "print('staged')\n"
    assert not (repo / "new").exists()
    assert (repo / "build.log").read_text() == "ignored output\n", "ignored files are left alone"
    assert (repo / "debug.log").exists()
    now = git_state(repo)
    assert {k: v for k, v in now.items() if k != "index"} == {k: v for k, v in state.items() if k != "index"}
    assert git(repo, "diff", "--cached", "--name-only") == "src/app.py\n", "the staged change is still staged"
    assert now["index"] == state["index"], "the user's index was rewritten"


async def test_a_snapshot_of_a_subdirectory_sees_only_it(repo: Path) -> None:
    before = await snapshot(str(repo / "src"))
    (repo / "src" / "app.py").write_text("print('changed')\n")
    (repo / "keep.txt").write_text("outside\n")
    after = await snapshot(str(repo / "src"))
    assert [(c.path, c.change) for c in (await diff(before, after)).changes] == [("app.py", "modified")]
    await rollback(before, expected=after)
    assert (repo / "src" / "app.py").read_text() == "print('staged')\n"
    assert (repo / "keep.txt").read_text() == "outside\n"


async def test_rollback_refuses_a_tree_changed_since_the_run_ended_unless_forced(repo: Path) -> None:
    before = await snapshot(str(repo))
    (repo / "keep.txt").write_text("by the agent\n")
    after = await snapshot(str(repo))
    (repo / "keep.txt").write_text("by the user, after the run\n")
    with pytest.raises(AsmError) as caught:
        await rollback(before, expected=after)
    assert caught.value.code == "workspace_changed" and "force=True" in caught.value.message
    assert (repo / "keep.txt").read_text() == "by the user, after the run\n", "nothing was touched"
    await rollback(before, expected=after, force=True)
    assert (repo / "keep.txt").read_text() == "one\ntwo\nthree\n"


@pytest.mark.parametrize(("marker", "what"), [("MERGE_HEAD", "a merge"), ("rebase-merge", "a rebase")])
async def test_a_tree_in_the_middle_of_a_merge_or_rebase_is_refused(repo: Path, marker: str, what: str) -> None:
    path = repo / ".git" / marker
    path.mkdir() if marker == "rebase-merge" else path.write_text(git(repo, "rev-parse", "HEAD"))
    with pytest.raises(AsmError) as caught:
        await snapshot(str(repo))
    assert caught.value.code == "workspace_busy" and what in caught.value.message


async def test_a_repository_without_commits_can_be_snapshotted_and_rolled_back(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    before = await snapshot(str(tmp_path))
    (tmp_path / "a.txt").write_text("changed\n")
    (tmp_path / "b.txt").write_text("b\n")
    after = await snapshot(str(tmp_path))
    assert (await diff(before, after)).files_changed == 2
    await rollback(before, expected=after)
    assert (tmp_path / "a.txt").read_text() == "a\n" and not (tmp_path / "b.txt").exists()


async def test_the_hash_backend_diffs_any_directory_and_says_it_cannot_roll_back(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("x")
    (tmp_path / "out.tmp").write_text("ignored by pattern")
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    before = await snapshot(str(tmp_path), ignore=("*.tmp",), max_file_bytes=1000)
    assert before.backend == "hash" and sorted(before.files) == ["a.txt"]
    assert [(s.path, s.size) for s in before.skipped] == [("big.bin", 2000)], "an over-size file is reported"
    (tmp_path / "a.txt").write_text("changed")
    (tmp_path / "c.txt").write_text("new")
    after = await snapshot(str(tmp_path), ignore=("*.tmp",), max_file_bytes=1000)
    assert [(c.path, c.change) for c in (await diff(before, after)).changes] == [
        ("a.txt", "modified"),
        ("c.txt", "added"),
    ]
    with pytest.raises(AsmError) as caught:
        await rollback(before)
    assert caught.value.code == "workspace_rollback_unsupported" and "git init" in caught.value.message


async def test_the_hash_backends_total_cap_is_an_error(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"{i}.txt").write_bytes(b"x" * 100)
    with pytest.raises(AsmError) as caught:
        await snapshot(str(tmp_path), max_total_bytes=250)
    assert caught.value.code == "workspace_too_large" and "max_total_bytes" in caught.value.message


async def test_a_missing_path_or_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AsmError) as caught:
        await snapshot(str(tmp_path / "nope"))
    assert caught.value.code == "workspace_not_found"
    (tmp_path / "file").write_text("x")
    with pytest.raises(AsmError) as caught:
        await snapshot(str(tmp_path / "file"))
    assert caught.value.code == "invalid_input" and "is a file" in caught.value.message
    with pytest.raises(AsmError) as caught:
        await snapshot(str(tmp_path), backend="git")
    assert caught.value.code == "invalid_input" and "not in a git work tree" in caught.value.message


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (3, "must be a path or a table"),
        ({"backend": "git"}, "needs 'path'"),
        ({"path": ".", "backend": "svn"}, "backend 'svn'"),
        ({"path": ".", "rollback_on": ["exploded"]}, "rollback_on has exploded"),
        ({"path": ".", "rollback_on": "failed"}, "must be a list"),
        ({"path": ".", "max_file_bytes": 0}, "max_file_bytes must be a positive"),
        ({"path": ".", "colour": "red"}, "unknown key(s) colour"),
    ],
)
def test_bad_workspace_options_are_invalid_input(value: object, fragment: str) -> None:
    with pytest.raises(AsmError) as caught:
        WorkspaceOptions.parse(value)
    assert caught.value.code == "invalid_input" and fragment in caught.value.message


# -- a run's workspace ----------------------------------------------------------------------


class Editor:
    """Edits files in its ``cwd`` (as a CLI agent does), then ends as told."""

    name = "editor"

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.cwds: list[str] = []

    def capabilities(self) -> asm.Capabilities:
        return asm.Capabilities(file_access=True)

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        cwd = Path(run.options["cwd"])
        self.cwds.append(str(cwd))
        (cwd / "keep.txt").write_text("rewritten by the agent\n")
        (cwd / "added.py").write_text("x = 1\n")
        await emit(MessageStreamed("edited"))
        if self.fail:
            raise AsmError("provider_error", "the agent gave up halfway")
        return RunResult(output="edited")


async def run_in(workspace: dict[str, Any], provider: Editor) -> tuple[asm.Run, list[asm.Event], InMemoryArtifactStore]:
    store, artifacts = InMemorySessionStore(), InMemoryArtifactStore()
    manager = SessionManager(store, provider=provider, artifact_store=artifacts)
    run = await manager.run_once("edit the files", options={"workspace": workspace})
    return run, list((await store.read_events(run.session_id)).events), artifacts


async def test_a_failed_run_is_rolled_back_and_its_patch_kept(repo: Path) -> None:
    state = git_state(repo)
    provider = Editor(fail=True)
    run, events, artifacts = await run_in({"path": str(repo)}, provider)
    assert run.status is asm.RunStatus.FAILED
    assert provider.cwds == [str(repo)], "a CLI-like provider works in the workspace"
    kinds = [e.type.value for e in events]
    assert kinds[kinds.index("run_started") :] == [
        "run_started",
        "message_sent",
        "workspace_snapshot_taken",
        "message_streamed",
        "workspace_snapshot_taken",
        "artifact_stored",
        "workspace_diff_computed",
        "workspace_rolled_back",
        "run_failed",
        "session_failed",
    ]
    diffed = next(e.data for e in events if isinstance(e.data, WorkspaceDiffComputed))
    assert (diffed.files_changed, diffed.insertions, diffed.deletions) == (2, 2, 3)
    key = f"sessions/{run.session_id}/runs/{run.id}/workspace.patch"
    assert diffed.patch_ref == key
    patch = (await artifacts.get(key)).decode()
    assert "+rewritten by the agent" in patch and "+x = 1" in patch
    rolled = next(e.data for e in events if isinstance(e.data, WorkspaceRolledBack))
    assert (rolled.outcome, rolled.paths) == ("failed", ("added.py", "keep.txt"))
    assert (repo / "keep.txt").read_text() == "one\ntwo\nthree\n" and not (repo / "added.py").exists()
    assert git_state(repo) == state


async def test_a_completed_run_keeps_its_changes_unless_asked(repo: Path) -> None:
    run, events, _ = await run_in({"path": str(repo)}, Editor())
    assert run.status is asm.RunStatus.COMPLETED
    assert not any(isinstance(e.data, WorkspaceRolledBack) for e in events)
    assert (repo / "added.py").exists()
    (repo / "added.py").unlink()
    (repo / "keep.txt").write_text("one\ntwo\nthree\n")
    run, events, _ = await run_in({"path": str(repo), "rollback_on": ["completed"]}, Editor())
    assert any(isinstance(e.data, WorkspaceRolledBack) for e in events) and not (repo / "added.py").exists()


async def test_a_failed_snapshot_fails_the_run_before_the_provider_starts(tmp_path: Path) -> None:
    provider = Editor()
    run, events, _ = await run_in({"path": str(tmp_path / "missing")}, provider)
    assert run.status is asm.RunStatus.FAILED and run.error is not None
    assert run.error.code == "workspace_not_found"
    assert provider.cwds == [], "the provider never started"
    assert not any(isinstance(e.data, MessageStreamed) for e in events)


async def test_the_hash_backend_reports_changes_and_says_it_cannot_roll_back(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("before\n")
    run, events, _ = await run_in({"path": str(tmp_path)}, Editor(fail=True))
    assert run.status is asm.RunStatus.FAILED
    diffed = next(e.data for e in events if isinstance(e.data, WorkspaceDiffComputed))
    assert (diffed.files_changed, diffed.patch_ref) == (2, None)
    (problem,) = [e.data for e in events if isinstance(e.data, ErrorOccurred)]
    assert problem.error_code == "workspace_rollback_unsupported"
    assert (tmp_path / "added.py").exists(), "nothing pretended to roll back"


async def test_a_bad_workspace_option_is_refused_before_anything_is_stored() -> None:
    store = InMemorySessionStore()
    with pytest.raises(AsmError) as caught:
        await SessionManager(store, provider=Editor()).run_once("x", options={"workspace": {"backend": "git"}})
    assert caught.value.code == "invalid_input"
    assert await store.list_sessions() == []
