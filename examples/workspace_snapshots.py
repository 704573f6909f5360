"""Workspace snapshots: see what a run changed, keep the patch, undo a failed run.

A throwaway git repository stands in for your project; the ``shell`` provider
stands in for an agent that edits files (Codex, Claude Code and Amp work the
same way: they run in the workspace). Offline; needs git.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import trio
from asm_shell import ShellOptions, ShellProvider

import asm
from asm.events import WorkspaceDiffComputed, WorkspaceRolledBack
from asm.workspace import diff, rollback, snapshot

IDENTITY = {f"GIT_{who}_{what}": "example" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}


def make_project(root: Path) -> None:
    (root / "app.py").write_text("def answer():\n    return 41\n")
    (root / "README.md").write_text("# demo\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env={**os.environ, **IDENTITY})


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch)
        make_project(project)
        artifacts = asm.InMemoryArtifactStore()
        agent = ShellProvider(ShellOptions(shell=True))
        manager = asm.SessionManager(asm.InMemorySessionStore(), provider=agent, artifact_store=artifacts)
        workspace = {"path": str(project)}  # rollback_on defaults to failed, cancelled, timeout

        # 1. A run that edits files and succeeds: its changes stay, its patch is kept.
        fix = "sed -i 's/41/42/' app.py && echo '* fixed the answer' > CHANGES.md"
        run = await manager.run_once(fix, options={"workspace": workspace})
        assert run.status is asm.RunStatus.COMPLETED
        events = (await manager.store.read_events(run.session_id)).events
        (diffed,) = [e.data for e in events if isinstance(e.data, WorkspaceDiffComputed)]
        print(f"completed: {diffed.files_changed} files, +{diffed.insertions} -{diffed.deletions}")
        assert diffed.patch_ref is not None
        print((await artifacts.get(diffed.patch_ref)).decode())
        assert "return 42" in (project / "app.py").read_text()

        # 2. A run that breaks things and fails: the files are put back before run_failed.
        breaks = "rm README.md && echo 'oops' > app.py && exit 1"
        run = await manager.run_once(breaks, options={"workspace": workspace})
        assert run.status is asm.RunStatus.FAILED
        events = (await manager.store.read_events(run.session_id)).events
        (rolled,) = [e.data for e in events if isinstance(e.data, WorkspaceRolledBack)]
        print(f"failed, rolled back: {', '.join(rolled.paths)}")
        assert (project / "README.md").exists() and "return 42" in (project / "app.py").read_text()

        # 3. The same pieces by hand.
        before = await snapshot(str(project))
        (project / "scratch.txt").write_text("temporary\n")
        after = await snapshot(str(project), label="after")
        changes = await diff(before, after)
        print("by hand:", [(c.path, c.change) for c in changes.changes])
        await rollback(before, expected=after)
        assert not (project / "scratch.txt").exists()


if __name__ == "__main__":
    trio.run(main)
