"""asm's ArtifactStore contract on file://, memory:// and S3 (moto's server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asm_fsspec import FsspecArtifactStore

from asm.testing import ArtifactStoreContract


class TestFsspecArtifactStore(ArtifactStoreContract):
    # Bigger than one upload part (8 MiB): the S3 run goes through a real multipart upload.
    large_blob_size = 9 * 1024 * 1024 + 12345

    @pytest.fixture
    async def artifact_store(self, store: FsspecArtifactStore) -> AsyncIterator[FsspecArtifactStore]:
        yield store
