"""asm-celery's ``asm`` entry point: registration only. Loading plugins (every ``asm``
command) must not import Celery or SQLAlchemy; ``asm worker`` imports them when it runs."""

from __future__ import annotations

import argparse
from typing import Any

from asm import hookimpl
from asm.hookspecs import Register

__all__ = ["asm_register_commands"]


@hookimpl
def asm_register_commands(register: Register) -> None:
    """``asm worker``."""
    register("worker", add_worker)


def add_worker(subparsers: Any) -> None:
    """``asm worker [--concurrency N] [--queue NAME] [--name ID] [--config FILE]``."""
    parser = subparsers.add_parser(
        "worker",
        help="execute runs submitted through the celery server backend (a Celery worker)",
        description="Start a Celery worker that executes asm runs from the [celery] queue, with the store the "
        "config names (PostgreSQL). SIGTERM: stop claiming, let runs finish within [celery] grace_period, "
        "then cancel the rest.",
    )
    parser.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    parser.add_argument("--concurrency", type=int, help="runs executed at once (default: [celery] concurrency)")
    parser.add_argument("--queue", help="the queue to consume (default: [celery] queue)")
    parser.add_argument("--name", help="this worker's id (default: asm-<pid>@<host>)")
    parser.add_argument("--loglevel", default="WARNING", help="Celery's log level (default WARNING)")
    parser.set_defaults(handler=_run_worker)


def _run_worker(args: argparse.Namespace) -> int:
    from asm_celery._cli import run_worker

    return run_worker(args)
