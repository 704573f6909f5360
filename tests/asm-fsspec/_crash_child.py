"""Child process for the crash test: starts a streaming put, says ``midway`` once
part of the blob is written, then waits to be killed.

    python _crash_child.py URL STORAGE_OPTIONS_JSON KEY
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import trio
from asm_fsspec import FsspecArtifactStore

CHUNK = 6 * 1024 * 1024


async def main(url: str, options: str, key: str) -> None:
    store = FsspecArtifactStore(url, storage_options=json.loads(options))

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(3):  # 18 MiB: on S3, more than one 8 MiB part is uploaded before the kill
            yield bytes([index]) * CHUNK
        # put asks for the next chunk only after writing the previous ones: they are out of this process.
        print("midway", flush=True)
        await trio.sleep_forever()

    await store.put(key, chunks())


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:4])
