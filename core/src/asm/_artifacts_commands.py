"""The handlers of ``asm artifacts`` (its parser: :mod:`asm._artifacts_cli`), imported when one runs."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

import trio

from asm.config import load_config
from asm.errors import AsmError
from asm.model import Artifact
from asm.plugins import PluginRegistry, load_plugins
from asm.ports import ArtifactStore
from asm.runtime import _create
from asm.serde import unstructure
from asm.stores import session_artifact_prefix, validate_artifact_key
from asm.stores.memory import InMemoryArtifactStore

__all__: list[str] = []


def _list(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    prefix = session_artifact_prefix(args.session_id)

    async def go() -> list[Artifact]:
        async with _opened(args, registry) as store:
            return await store.list(prefix)

    for artifact in trio.run(go):
        if args.json:
            out.write(json.dumps(unstructure(artifact), ensure_ascii=False) + "\n")
        else:
            when = artifact.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"{artifact.key}  {artifact.size}  {artifact.content_type or '-'}  {when}\n")
    return 0


def _get(args: argparse.Namespace, registry: PluginRegistry | None = None, out: TextIO | None = None) -> int:
    key = validate_artifact_key(args.key)

    async def go() -> None:
        async with _opened(args, registry) as store:
            if args.output is None:
                stream = (out or sys.stdout).buffer
                async for chunk in store.open_read(key):
                    stream.write(chunk)
                stream.flush()
            else:
                await _to_file(store.open_read(key), Path(args.output))

    trio.run(go)
    return 0


async def _to_file(chunks: AsyncIterator[bytes], target: Path) -> None:
    """Stream ``chunks`` into a temporary file beside ``target``, then rename it over
    ``target``: a failed read (``artifact_corrupt``, a lost connection) leaves no file."""
    temp = target.with_name(f".{target.name}~tmp-{secrets.token_hex(8)}")
    try:
        handle = temp.open("xb")
    except OSError as exc:
        raise AsmError("invalid_input", f"cannot write {os.fspath(target)!r}: {exc.strerror or exc}") from None
    try:
        with handle:
            async for chunk in chunks:
                await trio.to_thread.run_sync(handle.write, chunk)
        temp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


@contextlib.asynccontextmanager
async def _opened(args: argparse.Namespace, registry: PluginRegistry | None) -> AsyncIterator[ArtifactStore]:
    """The configured artifact store, opened (it may or may not be an async context manager)."""
    loaded = load_config(config_file=args.config)
    registry = registry or load_plugins()
    name = loaded.config.artifact_store
    store = _create((loaded.config, registry, loaded), "artifact_stores", name)
    if isinstance(store, InMemoryArtifactStore):
        raise AsmError(
            "invalid_config",
            f"the configured artifact store {name!r} keeps artifacts inside one process, so a command never sees "
            'them; configure a durable one: artifact_store = "fsspec" and [artifact_stores.fsspec] url = '
            '"file:///path" or "s3://bucket/prefix" (pip install asm-fsspec)',
        )
    if hasattr(store, "__aenter__"):
        async with store:
            yield store
    else:
        try:
            yield store
        finally:
            await store.aclose()
