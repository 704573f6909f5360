"""``asm artifacts list SESSION`` and ``asm artifacts get KEY [-o FILE]`` (private).

Registered by asm-core's built-in plugin through ``asm_register_commands``,
like any plugin's command. Both open the artifact store the config names
(``artifact_store`` and its ``[artifact_stores.<name>]`` table). A session's
artifacts are the keys under ``sessions/<session_id>/``
(:func:`asm.stores.session_artifact_prefix`; see docs/artifacts.md).
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

from asm.plugins import lazy

__all__ = ["add_artifacts"]


def add_artifacts(subparsers: Any) -> None:
    """``asm artifacts list SESSION`` and ``asm artifacts get KEY [-o FILE]``."""
    artifacts = subparsers.add_parser("artifacts", help="list and fetch the blobs runs stored (patches, outputs)")
    commands = artifacts.add_subparsers(title="artifacts commands", metavar="COMMAND")
    artifacts.set_defaults(handler=functools.partial(_help, artifacts))

    listing = commands.add_parser("list", help="a session's artifacts (the keys under sessions/<id>/), by key")
    listing.add_argument("session_id", metavar="SESSION", help="the session id (ses_...), as asm run prints it")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    listing.set_defaults(handler=lazy("asm._artifacts_commands:_list"))

    get = commands.add_parser("get", help="an artifact's bytes, to stdout or to a file")
    get.add_argument("key", metavar="KEY", help="the artifact's key, as 'asm artifacts list' shows it")
    get.add_argument("--output", "-o", metavar="FILE", help="write to FILE (complete and checked, or not at all)")
    get.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    get.set_defaults(handler=lazy("asm._artifacts_commands:_get"))


def _help(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    del args
    parser.print_help()
    return 2
