"""``asm artifacts list SESSION`` and ``asm artifacts get KEY [-o FILE]`` on a
configured fsspec store, run as the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from asm_fsspec import FsspecArtifactStore
from fsspec.core import url_to_fs

from asm.stores import session_artifact_key

ASM = str(Path(sys.executable).parent / "asm")


def asm_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([ASM, *args], cwd=cwd, capture_output=True, timeout=120, env=os.environ.copy(), check=False)


@pytest.fixture
def project(tmp_path: Path, file_url: str) -> Path:
    """A project folder whose asm.toml stores artifacts under ``file_url``, holding
    two artifacts of session ses_1 and one of ses_2."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "asm.toml").write_text(f'artifact_store = "fsspec"\n[artifact_stores.fsspec]\nurl = "{file_url}"\n')

    async def fill() -> None:
        async with FsspecArtifactStore(file_url) as store:
            patch = session_artifact_key("ses_1", "runs", "run_1", "workspace.patch")
            await store.put(patch, b"--- a/x\n+++ b/x\n", content_type="text/x-diff")
            await store.put(session_artifact_key("ses_1", "notes.txt"), b"notes")
            await store.put(session_artifact_key("ses_2", "other.txt"), b"not ses_1's")
            await store.put(session_artifact_key("ses_10", "x.txt"), b"a session whose id starts like ses_1")

    trio.run(fill)
    return folder


def test_list_shows_the_sessions_artifacts_by_key(project: Path) -> None:
    done = asm_cli("artifacts", "list", "ses_1", cwd=project)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert [line.split("  ")[:3] for line in lines] == [
        ["sessions/ses_1/notes.txt", "5", "-"],
        ["sessions/ses_1/runs/run_1/workspace.patch", "16", "text/x-diff"],
    ]


def test_list_json_is_one_artifact_per_line(project: Path) -> None:
    done = asm_cli("artifacts", "list", "ses_1", "--json", cwd=project)
    rows = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [(r["key"], r["size"]) for r in rows] == [
        ("sessions/ses_1/notes.txt", 5),
        ("sessions/ses_1/runs/run_1/workspace.patch", 16),
    ]
    assert all(len(r["sha256"]) == 64 for r in rows)


def test_list_of_a_session_with_no_artifacts_prints_nothing(project: Path) -> None:
    done = asm_cli("artifacts", "list", "ses_none", cwd=project)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_get_writes_the_bytes_to_stdout_or_to_a_file(project: Path) -> None:
    key = "sessions/ses_1/runs/run_1/workspace.patch"
    done = asm_cli("artifacts", "get", key, cwd=project)
    assert (done.returncode, done.stdout) == (0, b"--- a/x\n+++ b/x\n")
    done = asm_cli("artifacts", "get", key, "-o", "out.patch", cwd=project)
    assert (done.returncode, done.stdout) == (0, b"")
    assert (project / "out.patch").read_bytes() == b"--- a/x\n+++ b/x\n"


def test_get_of_changed_bytes_fails_and_writes_no_file(project: Path, file_url: str) -> None:
    fs, root = url_to_fs(file_url)
    fs.pipe_file(f"{root}/sessions/ses_1/notes.txt", b"NOTES")
    done = asm_cli("artifacts", "get", "sessions/ses_1/notes.txt", "-o", "notes.txt", cwd=project)
    assert done.returncode == 1
    assert done.stderr.decode().startswith("asm: error [artifact_corrupt]: ")
    assert sorted(p.name for p in project.iterdir()) == ["asm.toml"]


@pytest.mark.parametrize(
    ("args", "code", "status"),
    [
        (["get", "sessions/ses_1/missing.txt"], "artifact_not_found", 1),
        (["get", "../etc/passwd"], "validation_error", 2),
        (["list", "../ses_1"], "validation_error", 2),
    ],
)
def test_bad_input_is_one_error_line(project: Path, args: list[str], code: str, status: int) -> None:
    done = asm_cli("artifacts", *args, cwd=project)
    assert done.returncode == status
    stderr = done.stderr.decode()
    assert stderr.startswith(f"asm: error [{code}]: ") and len(stderr.splitlines()) == 1, stderr
    assert "Traceback" not in stderr


def test_with_the_in_memory_store_the_command_says_to_configure_a_durable_one(tmp_path: Path) -> None:
    done = asm_cli("artifacts", "list", "ses_1", cwd=tmp_path)
    assert done.returncode == 2
    assert 'artifact_store = "fsspec"' in done.stderr.decode()
