"""asm-celery: runs executed by Celery workers across processes and machines.

A client opens a server on a runtime whose config says ``[server] backend =
"celery"`` (or calls :func:`open_session_server` itself); ``asm worker``
processes on any machine execute the runs. Sessions, runs and events live in
one PostgreSQL database (asm-sqlalchemy); the broker (RabbitMQ) only carries
run ids::

    # asm.toml
    store = "sqlalchemy"
    [stores.sqlalchemy]
    url = "postgresql+psycopg://asm@127.0.0.1:5432/asm"
    [server]
    backend = "celery"
    [celery]
    broker_url = "amqp://guest:guest@127.0.0.1:5672//"

    $ asm worker &                                   # as many as you like, anywhere

    async with asm.open_runtime() as rt, asm.open_session_server(rt) as server:
        run = await server.wait(await server.submit("hello"))

Exactly once: a worker claims a run with an atomic compare-and-set in the
dispatch ledger (``asm_celery_runs``) under a lease it renews by heartbeat;
per-session FIFO, ``max_concurrent_runs`` and ``max_parallel_runs`` are checked
in that same transaction. A worker that dies is taken over when its task is
redelivered (``on_worker_lost``). See docs/scaling.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asm.plugins import lazy_attributes

if TYPE_CHECKING:
    from asm_celery._app import TASK_NAME, make_app
    from asm_celery._client import CelerySessionServer, open_session_server
    from asm_celery._options import CeleryOptions, celery_options
    from asm_celery._worker import WorkerHost

__all__ = [
    "TASK_NAME",
    "CeleryOptions",
    "CelerySessionServer",
    "WorkerHost",
    "celery_options",
    "make_app",
    "open_session_server",
]

#: Where each name lives: imported on first use, so that loading asm's plugins (the
#: ``asm_celery._plugin`` entry point imports this package first) does not import Celery.
_HOMES = {
    "TASK_NAME": "_app",
    "make_app": "_app",
    "CelerySessionServer": "_client",
    "open_session_server": "_client",
    "CeleryOptions": "_options",
    "celery_options": "_options",
    "WorkerHost": "_worker",
}


__getattr__ = lazy_attributes(__name__, _HOMES)
