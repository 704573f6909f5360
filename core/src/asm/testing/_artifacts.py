"""The ArtifactStore contract suite (see :mod:`asm.testing`)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from asm.ports import ArtifactStore
from asm.testing._common import expect_asm_error, unique

__all__ = ["ArtifactStoreContract", "INVALID_KEYS"]

#: Keys every artifact store must refuse with ``validation_error``.
INVALID_KEYS: dict[str, str] = {
    "parent": "../x",
    "inner-parent": "a/../b",
    "absolute": "/abs",
    "empty-segment": "a//b",
    "trailing-slash": "a/",
    "dot-segment": "a/./b",
    "backslash": "a\\b",
    "empty": "",
    "nul": "a\x00b",
    "newline": "a\nb",
    "escape": "a\x1bb",
    "too-long": "k" * 1025,
    "segment-too-long": "a/" + "s" * 201,
    "only-parent": "..",
    "only-dot": ".",
    "trailing-parent": "a/..",
    "leading-dot-slash": "./a",
    "home": "~/a",
    "url": "s3://bucket/a",
    "windows-drive": "C:\\a",
    "unicode-slash": "a\u2215b",
    "tab": "a\tb",
    "delete-char": "a\x7fb",
}


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class _Interrupted(Exception):
    """Raised by the iterator of a put, midway."""


async def _interrupted(data: bytes, size: int) -> AsyncIterator[bytes]:
    """The chunks of ``data`` up to past the middle, then :class:`_Interrupted`."""
    async for chunk in _chunks(data[: len(data) // 2 + size], size):
        yield chunk
    raise _Interrupted("the source of the data failed midway")


class ArtifactStoreContract:
    """Behavioural contract of :class:`asm.ports.ArtifactStore`.

    Subclass it and supply an ``artifact_store`` fixture yielding an opened
    store. Every test works under a fresh key prefix, so the store may be
    shared between tests. See :mod:`asm.testing` for the flags.
    """

    pytestmark = pytest.mark.trio

    #: ``stat`` and ``list`` report the ``content_type`` given to ``put``.
    #: ``False`` for a backend with nowhere to keep it (the suite then accepts
    #: ``None`` there, but never a different type).
    preserves_content_type: ClassVar[bool] = True

    #: Size in bytes of the blob streamed in and out by the streaming test.
    large_blob_size: ClassVar[int] = 3 * 1024 * 1024 + 12345

    def _check_content_type(self, got: str | None, given: str | None, where: str) -> None:
        if self.preserves_content_type or got is not None:
            assert got == given, f"{where} reported content_type {got!r}; {given!r} was stored"

    async def test_put_get_stat(self, artifact_store: ArtifactStore) -> None:
        """``put`` returns the artifact's description (key, size, sha256 hex of
        the bytes, content type); ``get`` returns the bytes; ``stat`` describes
        the blob the same way without reading it.

        Failing means a wrong size or digest, or a stat that does not match
        what was put.
        """
        key = f"{unique('contract')}/runs/run_1/out.txt"
        data = "héllo, artifacts\n".encode() * 10
        digest = hashlib.sha256(data).hexdigest()
        put = await artifact_store.put(key, data, content_type="text/plain")
        assert (put.key, put.size, put.sha256) == (key, len(data), digest)
        self._check_content_type(put.content_type, "text/plain", "put")
        assert await artifact_store.get(key) == data
        stat = await artifact_store.stat(key)
        assert (stat.key, stat.size, stat.sha256) == (key, len(data), digest)
        self._check_content_type(stat.content_type, "text/plain", "stat")

    async def test_empty_blob(self, artifact_store: ArtifactStore) -> None:
        """An empty blob is a blob: size 0, the digest of ``b''``, ``get``
        returns ``b''``. Failing means empty data is refused or reads as missing."""
        key = f"{unique('contract')}/empty"
        put = await artifact_store.put(key, b"")
        assert (put.size, put.sha256) == (0, hashlib.sha256(b"").hexdigest())
        assert await artifact_store.get(key) == b""
        assert b"".join([chunk async for chunk in artifact_store.open_read(key)]) == b""
        assert (await artifact_store.stat(key)).size == 0

    async def test_put_replaces(self, artifact_store: ArtifactStore) -> None:
        """Putting an existing key replaces its bytes, size and digest (one
        entry in ``list``). Failing means stale bytes or metadata survive."""
        prefix = unique("contract")
        key = f"{prefix}/k"
        await artifact_store.put(key, b"first version, longer", content_type="text/plain")
        put = await artifact_store.put(key, b"second", content_type="application/octet-stream")
        assert put.size == 6
        assert await artifact_store.get(key) == b"second"
        stat = await artifact_store.stat(key)
        assert (stat.size, stat.sha256) == (6, hashlib.sha256(b"second").hexdigest())
        self._check_content_type(stat.content_type, "application/octet-stream", "stat after replace")
        assert [a.key for a in await artifact_store.list(prefix)] == [key]

    async def test_list_by_prefix_sorted(self, artifact_store: ArtifactStore) -> None:
        """``list(prefix)`` returns the artifacts whose key starts with
        ``prefix`` (a plain string prefix, not only whole folders), sorted by
        key, with their sizes.

        Failing means unsorted results, a directory-only notion of prefix, or
        keys from outside the prefix.
        """
        root = unique("contract")
        keys = [f"{root}/p/b", f"{root}/p/a", f"{root}/p/c/d", f"{root}/pq/x", f"{root}/q/x"]
        for index, key in enumerate(keys):
            await artifact_store.put(key, b"x" * (index + 1))
        listed = await artifact_store.list(f"{root}/p/")
        assert [a.key for a in listed] == [f"{root}/p/a", f"{root}/p/b", f"{root}/p/c/d"]
        assert [a.size for a in listed] == [2, 1, 3]
        partial = [a.key for a in await artifact_store.list(f"{root}/p")]
        assert partial == [f"{root}/p/a", f"{root}/p/b", f"{root}/p/c/d", f"{root}/pq/x"]
        everything = [a.key for a in await artifact_store.list()]
        assert [k for k in everything if k.startswith(root)] == sorted(keys)
        assert everything == sorted(everything), "list() must be sorted by key"
        assert await artifact_store.list(f"{root}/nothing") == []

    async def test_delete(self, artifact_store: ArtifactStore) -> None:
        """``delete`` removes the blob (``get`` then raises
        ``artifact_not_found``, ``list`` omits it) and is a no-op for a missing
        key. Failing means deleted blobs linger or a second delete raises."""
        prefix = unique("contract")
        key, other = f"{prefix}/gone", f"{prefix}/kept"
        await artifact_store.put(key, b"bye")
        await artifact_store.put(other, b"stay")
        await artifact_store.delete(key)
        with expect_asm_error("artifact_not_found", "get after delete"):
            await artifact_store.get(key)
        assert [a.key for a in await artifact_store.list(prefix)] == [other]
        await artifact_store.delete(key)
        await artifact_store.delete(f"{prefix}/never-existed")
        assert await artifact_store.get(other) == b"stay"

    async def test_streaming_put_and_open_read(self, artifact_store: ArtifactStore) -> None:
        """A blob of a few MB put from an async iterator of chunks reads back
        identical through ``open_read``, in several chunks of at most
        ``chunk_size`` bytes; size and sha256 describe the whole blob.

        Failing means the streaming paths drop, reorder or truncate chunks, or
        ``open_read`` loads everything into one chunk.
        """
        key = f"{unique('contract')}/big.bin"
        data = random.Random(1234).randbytes(self.large_blob_size)
        put = await artifact_store.put(key, _chunks(data, 100_003), content_type="application/octet-stream")
        assert (put.size, put.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        chunk_size = 65536
        chunks = [chunk async for chunk in artifact_store.open_read(key, chunk_size=chunk_size)]
        assert b"".join(chunks) == data, "open_read did not return the blob that was put"
        assert len(chunks) > 1, "open_read must stream a large blob in several chunks"
        assert all(0 < len(chunk) <= chunk_size for chunk in chunks), "chunks must be non-empty, <= chunk_size"
        assert await artifact_store.get(key) == data

    async def test_failed_streaming_put_stores_nothing(self, artifact_store: ArtifactStore) -> None:
        """A ``put`` whose async iterator raises midway re-raises that error
        and leaves nothing behind: a new key is not listed, gettable or
        stat-able, and a key that existed keeps its old bytes.

        Failing means a half-written artifact is visible (writes are not
        atomic: write to a temporary name and rename, or commit an upload only
        once every chunk is in).
        """
        prefix = unique("contract")
        fresh, existing = f"{prefix}/fresh.bin", f"{prefix}/existing.bin"
        await artifact_store.put(existing, b"old bytes", content_type="text/plain")
        data = random.Random(99).randbytes(self.large_blob_size)
        for key in (fresh, existing):
            with pytest.raises(_Interrupted):
                await artifact_store.put(key, _interrupted(data, 100_003), content_type="application/octet-stream")
        assert [a.key for a in await artifact_store.list(prefix)] == [existing], "a failed put left a key listed"
        with expect_asm_error("artifact_not_found", "get of a key whose only put failed"):
            await artifact_store.get(fresh)
        with expect_asm_error("artifact_not_found", "stat of a key whose only put failed"):
            await artifact_store.stat(fresh)
        assert await artifact_store.get(existing) == b"old bytes", "a failed put replaced the existing bytes"
        stat = await artifact_store.stat(existing)
        assert (stat.size, stat.sha256) == (9, hashlib.sha256(b"old bytes").hexdigest())

    async def test_unknown_key_raises_not_found(self, artifact_store: ArtifactStore) -> None:
        """``get``, ``stat`` and ``open_read`` of a missing key raise
        ``AsmError(code="artifact_not_found")``. Failing means callers get
        ``FileNotFoundError``/``KeyError`` or empty bytes."""
        key = f"{unique('contract')}/missing"
        with expect_asm_error("artifact_not_found", "get of a missing key"):
            await artifact_store.get(key)
        with expect_asm_error("artifact_not_found", "stat of a missing key"):
            await artifact_store.stat(key)
        with expect_asm_error("artifact_not_found", "reading open_read of a missing key"):
            async for _ in artifact_store.open_read(key):
                pass

    @pytest.mark.parametrize("key", list(INVALID_KEYS.values()), ids=list(INVALID_KEYS))
    async def test_invalid_keys_are_refused(self, artifact_store: ArtifactStore, key: str) -> None:
        """Keys with traversal, absolute paths, empty or ``.`` segments,
        backslashes, control characters, or more than 1024 characters are
        refused with ``validation_error`` by ``put``, ``get``, ``stat``,
        ``open_read`` and ``delete``, and nothing is written.

        Failing means a key can escape the store's root or address something
        it should not (use :func:`asm.stores.validate_artifact_key`).
        """
        with expect_asm_error("validation_error", f"put({key!r})"):
            await artifact_store.put(key, b"x")
        with expect_asm_error("validation_error", f"get({key!r})"):
            await artifact_store.get(key)
        with expect_asm_error("validation_error", f"stat({key!r})"):
            await artifact_store.stat(key)
        with expect_asm_error("validation_error", f"reading open_read({key!r})"):
            async for _ in artifact_store.open_read(key):
                pass
        with expect_asm_error("validation_error", f"delete({key!r})"):
            await artifact_store.delete(key)
        assert key not in {a.key for a in await artifact_store.list()}, "a refused key must not be stored"
