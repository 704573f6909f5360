"""asm-web's ``asm`` entry point: registration only. Loading plugins (every ``asm``
command) must not import Starlette or Hypercorn; ``asm serve`` imports them when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from asm import hookimpl
from asm.hookspecs import Register

__all__ = ["asm_register_commands"]


@hookimpl
def asm_register_commands(register: Register) -> None:
    """``asm serve``."""
    register("serve", add_serve_command)


def add_serve_command(subparsers: Any) -> None:
    """Add ``asm serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the HTTP API, live event streams and the web viewer",
        description="Serve asm over HTTP: the /v1 API, Server-Sent Event streams and the web viewer at /. "
        "With no token in [web] tokens it listens on loopback only.",
    )
    parser.add_argument("--host", help="address to listen on (default: [web] host, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default: [web] port, else 8765; 0: any free port)")
    parser.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    parser.add_argument(
        "--new-token", action="store_true", help="print a new random token and the hash to put in [web] tokens"
    )
    parser.add_argument(
        "--hash-token", action="store_true", help="read a token on standard input and print its hash for [web] tokens"
    )
    parser.set_defaults(handler=_serve_command)


def _serve_command(args: argparse.Namespace) -> int:
    from asm_web._serve import serve_command

    return serve_command(args)
