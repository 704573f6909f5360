"""The Celery app built from ``[celery]`` (private)."""

from __future__ import annotations

from typing import Any, Final

from celery import Celery

from asm_celery._options import CeleryOptions

__all__ = ["TASK_NAME", "make_app"]

#: The one task: execute the asm run whose id it carries.
TASK_NAME: Final = "asm_celery.execute"


def make_app(options: CeleryOptions, *, main: str = "asm") -> Celery:
    """A Celery app for ``options``: late acks, requeue when a worker is lost,
    ``prefetch_multiplier`` (1 by default), no result backend (results are in
    the asm store), JSON messages, the runs' queue; then ``settings`` as given."""
    app = Celery(main, broker=options.broker_url, set_as_current=False)
    config: dict[str, Any] = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": options.prefetch_multiplier,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": options.queue,
        "task_routes": {TASK_NAME: {"queue": options.queue, "routing_key": options.queue}},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_concurrency": options.concurrency,
        "worker_pool": "threads",
        # No pidbox queue per worker: asm stops workers by signal, and two workers given
        # the same --name on one broker would otherwise lock each other out.
        "worker_enable_remote_control": False,
        "task_create_missing_queues": True,
    }
    config.update(options.settings)
    app.conf.update(config)
    return app
