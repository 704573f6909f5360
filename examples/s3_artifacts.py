"""Artifacts on S3 with asm-fsspec, offline: against moto's S3 server on loopback.

The example starts moto's server itself (``asm_fsspec.testing.moto_server``,
which needs ``moto[server]``), makes a bucket, and configures a runtime with
``artifact_store = "fsspec"``, as asm.toml would::

    artifact_store = "fsspec"
    [artifact_stores.fsspec]
    url = "s3://my-bucket/asm"
    storage_options = { endpoint_url = "http://127.0.0.1:PORT" }   # for a real bucket: leave it out

Credentials come from the usual AWS chain (here: the fake ones moto accepts,
put in the environment by ``moto_server``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import trio
from asm_fsspec import FsspecArtifactStore
from asm_fsspec.testing import moto_server

import asm
from asm.stores import session_artifact_key, session_artifact_prefix

BLOB_CHUNKS = 12  # x 1 MiB: more than one 8 MiB part, so the upload is a real multipart upload


async def blob_chunks() -> AsyncIterator[bytes]:
    """A 12 MiB blob, produced piece by piece (a tool's output, a tarball, ...)."""
    for index in range(BLOB_CHUNKS):
        yield bytes([index % 256]) * (1024 * 1024)


async def main(endpoint: str, bucket: str) -> str:
    url = f"s3://{bucket}/asm"
    config = {
        "artifact_store": "fsspec",
        "artifact_stores.fsspec.url": url,
        "artifact_stores.fsspec.storage_options": {"endpoint_url": endpoint},
    }
    async with asm.open_runtime(provider="echo", **config) as rt:
        store = rt.artifact_store
        assert isinstance(store, FsspecArtifactStore)

        # 1. A run, and what it produced stored under its session: sessions/<id>/runs/<run id>/...
        run = await rt.run_once("a report worth keeping")
        key = session_artifact_key(run.session_id, "runs", run.id, "report.txt")
        report = await store.put(key, run.output.encode(), content_type="text/plain")
        print(f"put {report.key} ({report.size} bytes, sha256 {report.sha256[:12]}...)")

        # 2. A large blob streamed in (multipart upload) and out (8 MiB read blocks), checked on the way out.
        big_key = session_artifact_key(run.session_id, "runs", run.id, "big.bin")
        big = await store.put(big_key, blob_chunks(), content_type="application/octet-stream")
        digest = hashlib.sha256()
        async for chunk in store.open_read(big_key, chunk_size=1024 * 1024):
            digest.update(chunk)
        assert digest.hexdigest() == big.sha256 and big.size == BLOB_CHUNKS * 1024 * 1024
        print(f"streamed {big.size:,} bytes in and out, sha256 checked")

        # 3. Everything the session stored, by key.
        listed = await store.list(session_artifact_prefix(run.session_id))
        assert [a.key for a in listed] == sorted([key, big_key])
        for artifact in listed:
            print(f"  {artifact.key}  {artifact.size:,}  {artifact.content_type}")

        # 4. Bad input is refused with a code and what to do.
        try:
            await store.put("../outside", b"x")
        except asm.AsmError as exc:
            print(f"traversal: [{exc.code}] {exc.message}")
            assert exc.code == "validation_error"
    try:
        async with FsspecArtifactStore("s3://no-such-bucket/asm", storage_options={"endpoint_url": endpoint}):
            pass
    except asm.AsmError as exc:
        print(f"missing bucket: [{exc.code}] {exc.message}")
        assert exc.code == "storage_not_found"
    return run.session_id


def cli(session_id: str, endpoint: str, bucket: str) -> None:
    """The same artifacts from the command line: ``asm artifacts list`` and ``get -o``."""
    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "asm.toml"
        toml.write_text(
            f'artifact_store = "fsspec"\n[artifact_stores.fsspec]\nurl = "s3://{bucket}/asm"\n'
            f'storage_options = {{ endpoint_url = "{endpoint}" }}\n'
        )
        asm_exe = str(Path(sys.executable).parent / "asm")
        listing = subprocess.run(
            [asm_exe, "artifacts", "list", session_id, "--config", str(toml)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ.copy(),
        ).stdout
        print(f"$ asm artifacts list {session_id}\n{listing}", end="")
        key = next(line.split()[0] for line in listing.splitlines() if line.split()[0].endswith("report.txt"))
        out = Path(tmp) / "report.txt"
        subprocess.run([asm_exe, "artifacts", "get", key, "-o", str(out), "--config", str(toml)], check=True)
        print(f"$ asm artifacts get {key} -o report.txt  ->  {out.read_text()!r}")
        assert out.read_text() == "a report worth keeping"


if __name__ == "__main__":
    with moto_server() as server:
        server.create_bucket("asm-example")
        session = trio.run(main, server.endpoint_url, "asm-example")
        cli(session, server.endpoint_url, "asm-example")
