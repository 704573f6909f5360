"""asm-web: ``asm serve``, an HTTP API with resumable Server-Sent Event streams and a
live web session viewer, assembled from the same ``asm.toml`` as everything else.

::

    asm serve                       # http://127.0.0.1:8765: the viewer at /, the API at /v1

    async with asm_web.Client("http://127.0.0.1:8765") as client:
        session = await client.create_session()
        run = await client.submit(session.id, "hello")
        async with client.follow(session.id) as events:
            async for event in events: ...

In Python, :func:`open_server` serves an open runtime on a free loopback port and
:func:`create_app` gives the ASGI application of a :class:`WebService`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asm.plugins import lazy_attributes

if TYPE_CHECKING:
    from asm_web._app import create_app, format_sse
    from asm_web._client import Client, Follow, SessionPage
    from asm_web._errors import error_body, status_of
    from asm_web._openapi import openapi_document
    from asm_web._options import WebOptions, check_exposure, hash_token, is_loopback, new_token
    from asm_web._serve import open_server, serve
    from asm_web._service import WebService, open_web_service

__all__ = [
    "Client",
    "Follow",
    "SessionPage",
    "WebOptions",
    "WebService",
    "check_exposure",
    "create_app",
    "error_body",
    "format_sse",
    "hash_token",
    "is_loopback",
    "new_token",
    "open_server",
    "open_web_service",
    "openapi_document",
    "serve",
    "status_of",
]

#: Where each name lives: imported on first use, so that loading asm's plugins (the
#: ``asm_web._plugin`` entry point imports this package first) does not import Starlette.
_HOMES = {
    "create_app": "_app",
    "format_sse": "_app",
    "Client": "_client",
    "Follow": "_client",
    "SessionPage": "_client",
    "error_body": "_errors",
    "status_of": "_errors",
    "openapi_document": "_openapi",
    "WebOptions": "_options",
    "check_exposure": "_options",
    "hash_token": "_options",
    "is_loopback": "_options",
    "new_token": "_options",
    "open_server": "_serve",
    "serve": "_serve",
    "WebService": "_service",
    "open_web_service": "_service",
}


__getattr__ = lazy_attributes(__name__, _HOMES)
