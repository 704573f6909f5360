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

from asm.hookspecs import Register, hookimpl
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
    "asm_register_commands",
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


@hookimpl
def asm_register_commands(register: Register) -> None:
    """Register ``asm serve``."""
    from asm_web._serve import add_serve_command

    register("serve", add_serve_command)
