"""``asm serve``: the app on Hypercorn's trio worker, assembled from ``asm.toml``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from asm.config import LoadedConfig, load_config
from asm.errors import AsmError
from asm.runtime import Runtime, open_runtime
from asm_web._app import create_app
from asm_web._options import WebOptions, check_exposure, hash_token, new_token
from asm_web._service import WebService, open_web_service

__all__ = ["open_served", "open_server", "serve", "serve_command"]


def _hypercorn_config(host: str, port: int) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # asm_web.access writes its own lines: no query strings, no bodies
    config.errorlog = logging.getLogger("asm_web.server")
    # Open SSE streams never end on their own: give them a moment, then close them.
    config.graceful_timeout = 2.0
    config.keep_alive_timeout = 30.0
    # Dashboards open many long-lived streams at once: room for a burst of connects.
    config.backlog = 2048
    return config


@contextlib.asynccontextmanager
async def open_server(runtime: Runtime, options: WebOptions | None = None) -> AsyncIterator[str]:
    """Serve ``runtime`` over HTTP until the block ends; yields the base URL
    (``http://127.0.0.1:<port>``; port 0 in ``options`` picks a free one).
    Leaving the block stops the server and cancels the runs still going on
    through it (each recorded ``cancelled``)."""
    async with open_served(runtime, options) as (url, _):
        yield url


@contextlib.asynccontextmanager
async def open_served(runtime: Runtime, options: WebOptions | None = None) -> AsyncIterator[tuple[str, WebService]]:
    """:func:`open_server`, yielding the base URL and the :class:`WebService` it serves."""
    options = options or WebOptions(port=0)
    check_exposure(options)
    async with open_web_service(runtime, options) as service, trio.open_nursery() as nursery:
        stop = trio.Event()
        app = create_app(service)
        binds: list[str] = await nursery.start(
            lambda task_status: hypercorn_serve(
                app,  # type: ignore[arg-type]
                _hypercorn_config(options.host, options.port),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        try:
            yield binds[0], service
        finally:
            stop.set()


async def serve(
    loaded: LoadedConfig,
    options: WebOptions,
    *,
    on_ready: Callable[[str], None] | None = None,
    shutdown_trigger: Callable[[], Any] | None = None,
) -> None:
    """Open the runtime of ``loaded`` and serve it until ``shutdown_trigger``
    returns (default: SIGINT or SIGTERM); ``on_ready(url)`` once listening."""
    check_exposure(options)
    async with open_runtime(loaded) as runtime, open_server(runtime, options) as url:
        if on_ready is not None:
            on_ready(url)
        if shutdown_trigger is not None:
            await shutdown_trigger()
        else:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break


def serve_command(args: argparse.Namespace) -> int:
    """``asm serve``'s handler: serve until SIGTERM / SIGINT (or print a token, or a hash)."""
    out = sys.stdout
    if args.new_token:
        token = new_token()
        out.write(f"token: {token}\nhash:  {hash_token(token)}\n")
        out.write('put the hash in asm.toml ([web] tokens = ["sha256:..."]); give the token to clients\n')
        return 0
    if args.hash_token:
        token = sys.stdin.readline().strip()
        if not token:
            raise AsmError("invalid_input", "no token on standard input; pipe one: echo TOKEN | asm serve --hash-token")
        out.write(hash_token(token) + "\n")
        return 0
    loaded = load_config(config_file=args.config)
    options = WebOptions.from_config(loaded.config.web, host=args.host, port=args.port)
    check_exposure(options)
    if options.access_log:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        for name in ("asm_web", "asm_web.access"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.INFO)
        logging.getLogger("asm_web").addHandler(handler)

    def ready(url: str) -> None:
        out.write(f"asm serve: listening on {url} (viewer: {url}/, API: {url}/v1, OpenAPI: {url}/v1/openapi.json)\n")
        out.flush()

    trio.run(lambda: serve(loaded, options, on_ready=ready))
    return 0
