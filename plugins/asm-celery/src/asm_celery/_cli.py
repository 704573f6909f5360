"""``asm worker`` (private)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import attrs
from celery import Celery, signals
from celery.exceptions import Reject

from asm import load_config
from asm_celery._app import TASK_NAME, make_app
from asm_celery._options import celery_options
from asm_celery._worker import WorkerHost

__all__ = ["register_task", "run_worker"]


def register_task(app: Celery, host: WorkerHost) -> None:
    """The task ``asm_celery.execute(run_id)`` on ``app``, executing through ``host``."""

    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def execute(self: Any, run_id: str) -> None:
        try:
            outcome = host.handle(run_id)
        except Exception as exc:  # noqa: BLE001 - the database or the runtime failed: never ack the run away
            logging.getLogger("asm_celery").warning("task for run %s failed (%r); requeued", run_id, exc)
            raise self.retry(countdown=host.options.claim_wait, max_retries=None) from None
        if outcome == "requeue":
            # Its session's next turn (or, waiting for max_parallel_runs, not its turn for a while):
            # a new message at the back of the queue, and this slot is free; should the broker not
            # take it, this message goes back as it is.
            try:
                self.apply_async(args=[run_id], queue=host.options.queue, routing_key=host.options.queue)
            except Exception as exc:  # noqa: BLE001 - whatever the broker client raised, keep the token
                raise Reject(f"could not requeue the task for run {run_id}: {exc!r}", requeue=True) from None
        if outcome == "reject":
            raise Reject(f"worker {host.worker_id} is stopping", requeue=True)


def run_worker(args: argparse.Namespace) -> int:
    """Run a worker until SIGTERM / SIGINT; its exit status."""
    loaded = load_config(config_file=args.config)
    options = celery_options(loaded.config)
    if args.concurrency is not None:
        options = attrs.evolve(options, concurrency=args.concurrency)
    if args.queue:
        options = attrs.evolve(options, queue=args.queue)
    logging.basicConfig(level=args.loglevel.upper(), stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    host = WorkerHost(loaded, options, worker_id=args.name)
    host.start()  # migration_required, a SQLite store: refused here, before consuming anything
    app = make_app(options)
    register_task(app, host)

    def shutting_down(**_: Any) -> None:
        host.begin_shutdown()

    def ready(**_: Any) -> None:
        sys.stderr.write(f"asm worker {host.worker_id}: ready (pid {os.getpid()})\n")
        sys.stderr.flush()

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    signals.worker_ready.connect(ready, weak=False)
    try:
        worker = app.Worker(
            hostname=host.worker_id,
            pool="threads",
            concurrency=options.concurrency,
            queues=[options.queue],
            loglevel=args.loglevel.upper(),
            without_gossip=True,
            without_mingle=True,
            quiet=True,
        )
        sys.stderr.write(f"asm worker {host.worker_id}: consuming {options.queue} on {options.masked_broker_url}\n")
        sys.stderr.flush()
        worker.start()
        return int(worker.exitcode or 0)
    finally:
        host.stop()
