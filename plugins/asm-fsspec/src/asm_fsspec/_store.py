"""The artifact store on an fsspec filesystem (private; see :mod:`asm_fsspec`).

Layout under the URL's root, for a key ``runs/r1/out.txt``::

    runs/r1/out.txt             the bytes, exactly as put
    runs/r1/out.txt~asm.json    the description: size, sha256, content type, created_at

``~`` is not allowed in keys (:func:`asm.stores.validate_artifact_key`), so the
store's own names (descriptions, temporary files) can never collide with a key.
The description is written last and is what makes an artifact exist: a put
that fails, or a process killed midway, leaves at most a data object with no
description, which ``list``, ``get`` and ``stat`` do not see and the next put
of that key replaces.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import trio
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from asm import Artifact, AsmError
from asm.model import utcnow
from asm.stores import validate_artifact_key, validate_artifact_prefix
from asm_fsspec._errors import Secrets, map_errors

__all__ = ["FsspecArtifactStore"]

T = TypeVar("T")

META_SUFFIX: Final = "~asm.json"
TEMP_MARK: Final = "~tmp-"
#: Object stores: no rename, but an upload becomes visible only when it completes
#: (a single PUT, or the completion of a multipart upload), so writes go straight to the key.
OBJECT_STORES: Final = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"})
#: Filesystems asm cannot write to.
READ_ONLY: Final = frozenset({"http", "https", "github", "git", "zip", "tar", "libarchive", "reference", "data"})
#: The longest object key S3 (and most object stores) accept, in bytes.
OBJECT_KEY_LIMIT: Final = 1024
_FORMAT: Final = 1


class FsspecArtifactStore:
    """An :class:`asm.ports.ArtifactStore` on any fsspec URL.

    ``url`` is where the artifacts live: ``file:///var/lib/asm/artifacts``,
    ``memory://artifacts``, ``s3://bucket/prefix`` (needs ``asm-fsspec[s3]``).
    ``storage_options`` go to the filesystem (for S3: ``endpoint_url``,
    ``profile``, ``client_kwargs``, ...); leave credentials out and they come
    from the usual AWS chain (environment, ``~/.aws``, instance role).
    Credential values are masked in every error and repr.

    Blocking filesystem calls run in worker threads, at most ``max_threads``
    at a time. Large blobs stream: ``put`` takes an async iterator of chunks
    (or :meth:`put_file` a path) and uploads in parts of ``block_size`` bytes;
    :meth:`open_read` and :meth:`get_file` read in blocks. The sha256 and
    size recorded at ``put`` are checked on every full read
    (``artifact_corrupt`` when they do not match).

    >>> async def main():
    ...     async with FsspecArtifactStore("file:///tmp/asm-artifacts") as store:
    ...         artifact = await store.put("sessions/ses_1/notes.txt", b"hello", content_type="text/plain")
    ...         assert await store.get(artifact.key) == b"hello"
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        max_threads: int = 4,
        block_size: int = 8 * 1024 * 1024,
    ) -> None:
        if not isinstance(url, str) or not url.strip():
            raise AsmError(
                "invalid_config",
                'the fsspec artifact store needs a url: set [artifact_stores.fsspec] url = "s3://bucket/prefix" '
                '(or "file:///path/to/folder")',
            )
        options = dict(storage_options or {})
        self._secrets = Secrets(url, options)
        self.url = self._secrets.url
        if max_threads < 1:
            raise AsmError("invalid_config", f"max_threads={max_threads} must be at least 1")
        if block_size < 5 * 1024 * 1024:
            raise AsmError(
                "invalid_config",
                f"block_size={block_size} is too small: S3 parts are at least 5 MiB; use 5242880 or more",
            )
        self._fs, root = _filesystem(url, options, self._secrets)
        self._root = root.rstrip("/")
        protocols = self._fs.protocol if isinstance(self._fs.protocol, tuple) else (self._fs.protocol,)
        self._direct = bool(OBJECT_STORES.intersection(protocols))
        self._block_size = block_size
        self._limiter = trio.CapacityLimiter(max_threads)

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url!r}, storage_options={self._secrets.masked_options()!r})"

    async def __aenter__(self) -> FsspecArtifactStore:
        """Check that the root exists (the bucket, for object stores; a local
        folder is created) so a wrong URL fails here, not at the first put."""
        await self._thread(self._check_root)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to release: the filesystem's connections belong to fsspec."""

    # -- writing -------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
    ) -> Artifact:
        """Store ``data`` (bytes, or an async iterator of chunks) under ``key``,
        replacing what was there. Atomic: until it returns, readers see the old
        artifact (or none); if it fails, or ``data`` raises, nothing changes and
        ``data``'s own exception propagates."""
        validate_artifact_key(key)
        path = self._path(key)
        source = _source(data)
        doing = f"writing artifact {key!r}"
        with map_errors(self._secrets, doing, key=key, write=True):
            writer = await self._thread(_Writer, self._fs, path, self._direct, self._block_size)
        digest = hashlib.sha256()
        size = 0
        try:
            pending = bytearray()
            async for chunk in source:
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise AsmError(
                        "validation_error",
                        f"artifact data must be bytes or an async iterator of bytes, not of {type(chunk).__name__}",
                    )
                digest.update(chunk)
                size += len(chunk)
                if not pending and len(chunk) >= _HOP_BYTES:
                    block = bytes(chunk)  # no copy for bytes
                else:
                    # Small chunks are gathered so each trip to a worker thread moves a useful amount.
                    pending += chunk
                    if len(pending) < _HOP_BYTES:
                        continue
                    block, pending = bytes(pending), bytearray()
                with map_errors(self._secrets, doing, key=key, write=True):
                    await self._thread(writer.write, block)
            with map_errors(self._secrets, doing, key=key, write=True):
                if pending:
                    await self._thread(writer.write, bytes(pending))
                await self._thread(writer.commit)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._thread(writer.discard)
            raise
        sha256 = digest.hexdigest()
        artifact = Artifact(key=key, size=size, content_type=content_type, sha256=sha256, created_at=utcnow())
        with map_errors(self._secrets, doing, key=key, write=True):
            await self._thread(self._write_small, path + META_SUFFIX, _describe(artifact))
        return artifact

    async def put_file(self, key: str, path: str | os.PathLike[str], *, content_type: str | None = None) -> Artifact:
        """Store the local file ``path`` under ``key``, streaming it in blocks."""
        validate_artifact_key(key)
        try:
            handle = await trio.to_thread.run_sync(open, os.fspath(path), "rb", limiter=self._limiter)
        except OSError as exc:
            raise AsmError(
                "invalid_input", f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}; give an existing file"
            ) from None

        async def blocks() -> AsyncIterator[bytes]:
            while block := await self._thread(handle.read, _HOP_BYTES):
                yield block

        try:
            return await self.put(key, blocks(), content_type=content_type)
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        """Delete ``key`` if present: its description first, so a delete cut
        short leaves at most invisible bytes behind."""
        validate_artifact_key(key)
        path = self._path(key)
        with map_errors(self._secrets, f"deleting artifact {key!r}", key=key, write=True):
            await self._thread(self._remove, path)

    # -- reading -------------------------------------------------------------

    async def stat(self, key: str) -> Artifact:
        """The artifact's description (no bytes are read), or ``artifact_not_found``."""
        validate_artifact_key(key)
        with map_errors(self._secrets, f"reading artifact {key!r}", key=key, missing="artifact"):
            raw = await self._thread(self._fs.cat_file, self._path(key) + META_SUFFIX)
        return self._parse(key, raw)

    async def get(self, key: str) -> bytes:
        """The whole blob, checked against its sha256 (use :meth:`open_read` or
        :meth:`get_file` for blobs too large to hold)."""
        return b"".join([chunk async for chunk in self.open_read(key, chunk_size=_HOP_BYTES)])

    async def open_read(self, key: str, *, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The blob in chunks of at most ``chunk_size`` bytes. After the last
        chunk its size and sha256 are checked: ``artifact_corrupt`` if they do
        not match what was put (the consumer should discard what it got)."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise AsmError("validation_error", f"chunk_size={chunk_size!r} must be an integer >= 1")
        expected = await self.stat(key)
        doing = f"reading artifact {key!r}"
        with map_errors(self._secrets, doing, key=key, missing="artifact"):
            reader = await self._thread(self._open_reader, self._path(key))
        try:
            digest = hashlib.sha256()
            size = 0
            while True:
                with map_errors(self._secrets, doing, key=key, missing="artifact"):
                    chunk = await self._thread(reader.read, chunk_size)
                if not chunk:
                    break
                size += len(chunk)
                if size > expected.size:
                    break
                digest.update(chunk)
                yield chunk
        finally:
            reader.close()  # a read handle holds no upload: closing it does not block
        if size != expected.size or digest.hexdigest() != expected.sha256:
            await self._corrupt(key, expected, size)

    async def get_file(self, key: str, path: str | os.PathLike[str]) -> Artifact:
        """Write the blob to the local file ``path``, streaming. The file appears
        (replacing one there) only once every byte is in and checked."""
        target = Path(path)
        temp = target.with_name(f".{target.name}{TEMP_MARK}{secrets.token_hex(8)}")
        try:
            handle = await trio.to_thread.run_sync(open, temp, "xb", limiter=self._limiter)
        except OSError as exc:
            raise AsmError(
                "invalid_input", f"cannot write {os.fspath(path)!r}: {exc.strerror or exc}; give a writable path"
            ) from None
        try:
            with handle:
                async for chunk in self.open_read(key, chunk_size=_HOP_BYTES):
                    await self._thread(handle.write, chunk)
            await trio.to_thread.run_sync(os.replace, temp, target, limiter=self._limiter)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        return await self.stat(key)

    async def list(self, prefix: str = "") -> list[Artifact]:
        """Artifacts whose key starts with ``prefix`` (a plain string prefix), by key."""
        validate_artifact_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        with map_errors(self._secrets, f"listing artifacts under {prefix!r}"):
            found = await self._thread(self._describe_all, folder, prefix)
        return [self._parse(key, raw) for key, raw in sorted(found.items())]

    # -- in worker threads ---------------------------------------------------

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _path(self, key: str) -> str:
        path = f"{self._root}/{key}"
        if self._direct and len((path + META_SUFFIX).encode()) > OBJECT_KEY_LIMIT:
            raise AsmError(
                "validation_error",
                f"artifact key {key!r} is too long for {self.url}: with the URL's prefix the object key would pass "
                f"{OBJECT_KEY_LIMIT} bytes; use a shorter key or prefix",
                details={"key": key},
            )
        return path

    def _check_root(self) -> None:
        with map_errors(self._secrets, "opening the artifact store"):
            if isinstance(self._fs, LocalFileSystem):
                if self._fs.isfile(self._root):
                    raise AsmError(
                        "invalid_config",
                        f"{self.url} is a file, not a folder; point [artifact_stores.fsspec] url at a folder",
                    )
                self._fs.makedirs(self._root, exist_ok=True)
            elif self._direct:
                bucket = self._root.split("/", 1)[0]
                self._fs.info(bucket)  # FileNotFoundError / PermissionError say what is wrong

    def _write_small(self, path: str, data: bytes) -> None:
        if self._direct:
            self._fs.pipe_file(path, data)
            return
        writer = _Writer(self._fs, path, False, self._block_size)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.discard()
            raise

    def _remove(self, path: str) -> None:
        for target in (path + META_SUFFIX, path):
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(target)
        if isinstance(self._fs, LocalFileSystem):
            # Empty folders left by deleted keys would otherwise pile up (and block a key of that name).
            parent = Path(path).parent
            while parent != Path(self._root) and Path(self._root) in parent.parents:
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent

    def _open_reader(self, path: str) -> Any:
        if isinstance(self._fs, MemoryFileSystem):
            # memory:// hands every reader the same BytesIO (one seek position): read a copy.
            return io.BytesIO(self._fs.cat_file(path))
        return self._fs.open(path, "rb", block_size=self._block_size)

    def _describe_all(self, folder: str, prefix: str) -> dict[str, bytes]:
        base = f"{self._root}/{folder}" if folder else self._root
        try:
            listed = self._fs.find(base)
        except FileNotFoundError:
            if self._direct:
                raise  # an object store finds nothing under a missing prefix: this is a missing bucket
            return {}  # a folder no key has been put under yet
        start = len(self._root) + 1
        metas = {}
        for name in listed:
            relative = name[start:] if name.startswith(self._root + "/") else name.lstrip("/")
            if relative.endswith(META_SUFFIX):
                key = relative[: -len(META_SUFFIX)]
                if key.startswith(prefix) and "~" not in key:
                    metas[name] = key
        if not metas:
            return {}
        # One call: async filesystems (s3fs) fetch all the descriptions concurrently.
        raws = self._fs.cat(list(metas), on_error="omit")
        return {metas[name]: raw for name, raw in raws.items() if name in metas}

    # -- descriptions ----------------------------------------------------------

    def _parse(self, key: str, raw: bytes) -> Artifact:
        try:
            meta = json.loads(raw)
            return Artifact(
                key=key,
                size=int(meta["size"]),
                content_type=meta.get("content_type"),
                sha256=str(meta["sha256"]),
                created_at=datetime.fromisoformat(meta["created_at"]),
                metadata=dict(meta.get("metadata") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AsmError(
                "artifact_corrupt",
                f"the description of artifact {key!r} on {self.url} is unreadable ({exc}); put the artifact again",
                details={"key": key},
            ) from None

    async def _corrupt(self, key: str, expected: Artifact, size: int) -> None:
        try:
            now = await self.stat(key)
        except AsmError:
            now = None
        if now is None or (now.sha256, now.created_at) != (expected.sha256, expected.created_at):
            raise AsmError(
                "artifact_corrupt",
                f"artifact {key!r} was replaced or deleted while it was read; read it again",
                retryable=True,
                details={"key": key},
            )
        raise AsmError(
            "artifact_corrupt",
            f"artifact {key!r} on {self.url} does not match what was put ({size} bytes read, {expected.size} "
            f"recorded, or a different sha256); discard what was read and put the artifact again",
            details={"key": key, "expected_size": expected.size, "read_size": size},
        )


#: Bytes moved per trip to a worker thread when writing (and per chunk of get / get_file).
_HOP_BYTES: Final = 1024 * 1024


class _Writer:
    """One upload, in worker threads: ``write``..., then ``commit`` or ``discard``.

    On a filesystem with rename the bytes go to a temporary name beside the
    key and are renamed over it at commit. On an object store they go to the
    key itself: the upload becomes visible only when it completes, and
    ``discard`` aborts it (a multipart upload's parts are deleted).
    """

    def __init__(self, fs: AbstractFileSystem, path: str, direct: bool, block_size: int) -> None:
        self._fs = fs
        self._path = path
        self._target = path if direct else f"{path}{TEMP_MARK}{secrets.token_hex(8)}"
        if not direct:
            fs.makedirs(fs._parent(self._target), exist_ok=True)
        self._file = fs.open(self._target, "wb", block_size=block_size)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> None:
        self._file.close()  # an object store's upload completes here
        if self._target != self._path:
            if isinstance(self._fs, LocalFileSystem):
                # A rename, not fs.mv: shutil.move would move the file *into* a folder named like the key.
                Path(self._target).replace(self._path)
            else:
                if self._fs.isdir(self._path):
                    raise IsADirectoryError(self._path)
                self._fs.mv(self._target, self._path)

    def discard(self) -> None:
        if self._target != self._path:
            # A temporary name: closing it publishes nothing; then it goes.
            with contextlib.suppress(Exception):
                self._file.close()
            with contextlib.suppress(Exception):
                self._fs.rm_file(self._target)
            return
        with contextlib.suppress(Exception):
            if not self._file.closed:
                self._file.discard()  # s3fs: abort the multipart upload (nothing was sent for a single PUT)
        # Closing would complete the upload with what was written, and so would the file's __del__:
        # mark it closed instead (fsspec's buffered files have a settable ``closed``).
        self._file.closed = True


def _filesystem(url: str, options: dict[str, Any], secrets_: Secrets) -> tuple[AbstractFileSystem, str]:
    """The filesystem and root path of ``url``, or an error saying what to install or fix."""
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    if protocol in READ_ONLY:
        raise AsmError(
            "invalid_config",
            f"{secrets_.url}: fsspec's {protocol!r} filesystem is read-only; use s3://, file://, memory:// "
            "or another writable filesystem",
        )
    try:
        # A fresh instance with no listings cache: what another process stored is seen at once.
        fs, root = url_to_fs(url, skip_instance_cache=True, use_listings_cache=False, **options)
    except ImportError as exc:
        install = "pip install 'asm-fsspec[s3]'" if protocol in ("s3", "s3a") else f"install it ({exc})"
        raise AsmError(
            "dependency_not_available",
            f"{secrets_.url} needs the {protocol!r} filesystem, which is not installed; {install}",
            details={"protocol": protocol},
        ) from None
    except ValueError as exc:
        if "Protocol not known" not in str(exc):
            raise AsmError("invalid_config", f"{secrets_.url}: {secrets_.mask(str(exc))}") from None
        raise AsmError(
            "invalid_config",
            f"{secrets_.url}: unknown URL scheme {protocol!r}; use s3://bucket/prefix, file:///path or memory://name",
            details={"protocol": protocol},
        ) from None
    except TypeError as exc:
        raise AsmError(
            "invalid_config",
            f"{secrets_.url}: a storage option is not accepted by the {protocol!r} filesystem "
            f"({secrets_.mask(str(exc))}); check [artifact_stores.fsspec.storage_options]",
        ) from None
    return fs, root


def _source(data: bytes | AsyncIterable[bytes]) -> AsyncIterable[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        return _once(bytes(data))
    if hasattr(data, "__aiter__"):
        return data
    raise AsmError(
        "validation_error",
        f"artifact data must be bytes or an async iterator of bytes, not {type(data).__name__} "
        "(for a file, use put_file)",
    )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _describe(artifact: Artifact) -> bytes:
    return json.dumps(
        {
            "asm_artifact": _FORMAT,
            "key": artifact.key,
            "size": artifact.size,
            "sha256": artifact.sha256,
            "content_type": artifact.content_type,
            "created_at": artifact.created_at.isoformat(),
            "metadata": artifact.metadata,
        },
        sort_keys=True,
    ).encode()
