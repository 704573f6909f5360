"""Fixtures: stores on a temporary folder, on memory:// and on a real S3 API
(moto's server, started once per test session on a free loopback port)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from asm_fsspec import FsspecArtifactStore
from asm_fsspec.testing import MotoServer, MotoUnavailable, moto_server


@pytest.fixture(autouse=True)
def _no_real_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real user config or data dirs (subprocesses inherit this)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for name in ("ASM_STORE", "ASM_ARTIFACT_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASM_LOAD_PLUGINS", "asm-fsspec")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto's S3 server; the S3 tests skip, saying why, only if it cannot start."""
    try:
        with moto_server() as server:
            yield server
    except MotoUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """A fresh, empty bucket."""
    name = f"asm-test-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(name)
    return name


@pytest.fixture
def s3_url(bucket: str) -> str:
    return f"s3://{bucket}/artifacts"


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    return (tmp_path / "artifacts").as_uri()


@pytest.fixture
def memory_url() -> str:
    return f"memory://asm-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["file", "memory", "s3"])
def url(request: pytest.FixtureRequest) -> str:
    """Each kind of URL in turn."""
    value: str = request.getfixturevalue(f"{request.param}_url")
    return value


@pytest.fixture
def storage_options(url: str, request: pytest.FixtureRequest) -> dict[str, object]:
    if url.startswith("s3://"):
        server: MotoServer = request.getfixturevalue("moto")
        return server.storage_options
    return {}


@pytest.fixture
async def store(url: str, storage_options: dict[str, object]) -> AsyncIterator[FsspecArtifactStore]:
    async with FsspecArtifactStore(url, storage_options=storage_options) as opened:
        yield opened
