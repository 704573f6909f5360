"""asm-fsspec: the artifact store on any fsspec URL (``s3://``, ``file://``, ``memory://``, ...).

Registered as the artifact store ``fsspec``::

    artifact_store = "fsspec"

    [artifact_stores.fsspec]
    url = "s3://my-bucket/asm"                       # needs: pip install 'asm-fsspec[s3]'
    storage_options = { endpoint_url = "http://127.0.0.1:9000" }   # optional

Credentials come from the usual AWS chain (environment, ``~/.aws``, instance
role) and are masked in every error and repr. Blobs stream in and out
(:meth:`FsspecArtifactStore.put` with an async iterator, ``put_file``,
``open_read``, ``get_file``), carry a sha256 checked on read, and appear
atomically. :mod:`asm_fsspec.testing` starts moto's S3 server for tests.

>>> async def main():
...     async with FsspecArtifactStore("memory://demo") as store:
...         await store.put("sessions/ses_1/a.txt", b"hi")
...         print([a.key for a in await store.list("sessions/ses_1/")])
"""

from typing import TYPE_CHECKING

from asm.plugins import lazy_attributes
from asm_fsspec._plugin import asm_register_artifact_stores as asm_register_artifact_stores

if TYPE_CHECKING:
    from asm_fsspec._factories import FsspecOptions as FsspecOptions
    from asm_fsspec._factories import create_fsspec_store as create_fsspec_store
    from asm_fsspec._store import FsspecArtifactStore as FsspecArtifactStore

__all__ = ["FsspecArtifactStore", "FsspecOptions", "asm_register_artifact_stores", "create_fsspec_store"]


#: Where each public name lives, imported on first use: loading the plugin (every ``asm``
#: command) imports neither attrs nor fsspec.
_LAZY = {
    "FsspecArtifactStore": "_store",
    "FsspecOptions": "_factories",
    "create_fsspec_store": "_factories",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
