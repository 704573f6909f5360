"""Workspace snapshots: snapshot + diff of a 10,000-file tree, git backend vs hash backend.

A tree of ``--files`` small source files (100 directories, ~1 KB each) is
committed to a git repository; then, for each backend, a "before" snapshot,
an agent-like edit of 1% of the files (modify, add, delete), an "after"
snapshot and the diff are timed. Target: snapshot + diff <= 2 s per backend.

    python benchmarks/workspace.py [--files N] [--repeats R] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import stopwatch, write_section

from asm.workspace import diff, snapshot

TARGET_S = 2.0
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def make_tree(root: Path, files: int) -> None:
    line = "value = compute(alpha, beta, gamma)  # a typical line of source\n"
    for i in range(files):
        directory = root / f"pkg{i % 100:03d}"
        directory.mkdir(exist_ok=True)
        (directory / f"mod{i:05d}.py").write_text(f"# module {i}\n" + line * 16)
    subprocess.run(["git", "init", "-q", str(root)], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", "tree"], check=True, env=GIT_ENV)


def edit(root: Path, files: int, round_: int) -> None:
    """Touch 1% of the tree the way an agent would: modify, add and delete files."""
    for i in range(0, files, 100):
        path = root / f"pkg{i % 100:03d}" / f"mod{i:05d}.py"
        if path.exists():
            path.write_text(path.read_text() + f"# edited in round {round_}\n")
        (root / f"pkg{i % 100:03d}" / f"new{round_}_{i:05d}.py").write_text("fresh = True\n")


def time_backend(root: Path, backend: str, files: int, round_: int) -> tuple[float, float, float, int]:
    async def main() -> tuple[float, float, float, int]:
        elapsed = stopwatch()
        before = await snapshot(str(root), backend=backend)  # type: ignore[arg-type]
        first = elapsed()
        edit(root, files, round_)
        elapsed = stopwatch()
        after = await snapshot(str(root), backend=backend, label="after")  # type: ignore[arg-type]
        second = elapsed()
        elapsed = stopwatch()
        changes = await diff(before, after)
        return first, second, elapsed(), changes.files_changed

    return trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="asm-bench-workspace-") as scratch:
        root = Path(scratch) / "tree"
        root.mkdir()
        make_tree(root, args.files)
        round_ = 0
        for backend in ("git", "hash"):
            samples = []
            for _ in range(args.repeats):
                round_ += 1
                samples.append(time_backend(root, backend, args.files, round_))
            before, after, diffed, changed = (statistics.median(column) for column in zip(*samples, strict=True))
            total = after + diffed
            rows.append((backend, before, after, diffed, total, int(changed)))
            print(f"{backend}: snapshot {before:.3f}s / {after:.3f}s, diff {diffed:.3f}s, {int(changed)} files changed")
    table = [
        "| backend | first snapshot | snapshot after edits | diff | snapshot + diff | per file | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, before, after, diffed, total, _ in rows:
        per_file = total / args.files * 1e6
        met = "met" if total <= TARGET_S else "NOT met"
        table.append(
            f"| {backend} | {before:.3f} s | {after:.3f} s | {diffed:.3f} s | {total:.3f} s "
            f"| {per_file:.1f} µs | ≤ {TARGET_S:g} s: {met} |"
        )
    body = f"""`benchmarks/workspace.py`: a tree of {args.files:,} files (~1 KB each, 100 directories)
committed to git; per backend, a snapshot, an agent-like edit of 1% of the files (modify + add),
a second snapshot and the diff; medians of {args.repeats} rounds; load average
{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "snapshot + diff" is what a run
with a workspace adds after the provider ends (the first snapshot is taken before it starts). The
git backend's first snapshot copies the user's index, so unchanged files are not re-hashed.

{chr(10).join(table)}
"""
    print(body)
    if not args.no_write:
        write_section("workspace", body)


if __name__ == "__main__":
    main()
