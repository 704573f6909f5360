"""The artifact store's options and factory (private; registered lazily by :mod:`asm_fsspec._plugin`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from asm.plugins import parse_options

if TYPE_CHECKING:
    from asm_fsspec._store import FsspecArtifactStore

__all__ = ["FsspecOptions", "create_fsspec_store"]


@attrs.frozen
class FsspecOptions:
    """``[artifact_stores.fsspec]``: ``url`` of the root (``s3://bucket/prefix``,
    ``file:///path``, ``memory://name``), ``storage_options`` passed to the
    filesystem (for S3: ``endpoint_url``, ``profile``, ``client_kwargs``, ...;
    credentials are best left to the AWS chain), ``max_threads`` for the
    blocking calls, and ``block_size`` (bytes per uploaded part and read block).

    >>> parse_options(FsspecOptions, {"url": "memory://artifacts"}, "fsspec artifact store").url
    'memory://artifacts'
    """

    url: str = ""
    storage_options: dict[str, Any] = attrs.field(factory=dict)
    max_threads: int = 4
    block_size: int = 8 * 1024 * 1024


def create_fsspec_store(config: dict[str, Any]) -> FsspecArtifactStore:
    """The ``fsspec`` artifact store from its config table (``url`` is required)."""
    from asm_fsspec._store import FsspecArtifactStore  # fsspec is imported when a store is built, not at start-up

    options = parse_options(FsspecOptions, config, "fsspec artifact store")
    return FsspecArtifactStore(
        options.url,
        storage_options=options.storage_options,
        max_threads=options.max_threads,
        block_size=options.block_size,
    )
