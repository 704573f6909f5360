"""The ``[celery]`` config table (private)."""

from __future__ import annotations

from typing import Any, Final, Literal

import attrs

from asm import AsmError, parse_options
from asm.config import AsmConfig
from asm.redaction import mask_url

__all__ = ["CeleryOptions", "celery_options"]

OnWorkerLost = Literal["resume", "restart", "fail"]

#: What ``on_worker_lost`` may say, and what this version does.
WORKER_LOST_CHOICES: Final = ("restart", "fail", "resume")


@attrs.frozen
class CeleryOptions:
    """``[celery]`` in ``asm.toml``.

    ``broker_url``: the Celery broker (RabbitMQ: ``amqp://user:pw@host:5672/vhost``).
    ``queue``: the queue runs are published to and workers consume.
    ``concurrency``: runs one ``asm worker`` process executes at once (threads).
    ``prefetch_multiplier``: messages a worker reserves per slot (1: no run waits
    in one worker while another is free). ``lease_s``: how long a claim stays
    valid without a heartbeat (heartbeats every ``lease_s / 3``); a run whose
    owner stopped renewing it is taken over once it expires (at once when the
    owner is a dead process on the same host). ``on_worker_lost``: what a worker
    that takes over does with the interrupted run: ``restart`` it from its
    input, ``resume`` it (sent what its cut attempt had said and done, then
    asked to go on: :func:`asm.continuity.resume`), or ``fail`` it.
    ``grace_period``: seconds a worker stopping on SIGTERM lets its runs go on
    before it cancels them. ``claim_wait``: seconds a delivered
    task waits while only ``max_parallel_runs`` (or a live lease on another host)
    keeps its session from going on, before it is put back at the end of the
    queue. ``poll_interval``: how often such a task tries again (a run ending
    anywhere wakes it at once), and how often a client refreshes ``status()``.
    ``ledger_connections``: the PostgreSQL connections a worker (or a client)
    keeps for the dispatch ledger, besides one that listens for notifications
    (the store's own pool is ``[stores.sqlalchemy] max_threads``).
    ``settings``: any other Celery setting, passed through as is.
    """

    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    queue: str = "asm.runs"
    concurrency: int = 8
    prefetch_multiplier: int = 1
    lease_s: float = 30.0
    on_worker_lost: str = "restart"
    grace_period: float = 30.0
    claim_wait: float = 5.0
    poll_interval: float = 0.5
    ledger_connections: int = 2
    settings: dict[str, Any] = attrs.field(factory=dict)

    @property
    def masked_broker_url(self) -> str:
        """The broker URL with its password hidden, for messages."""
        return mask_url(self.broker_url)

    @property
    def heartbeat_s(self) -> float:
        """How often a worker renews the leases of the runs it executes."""
        return self.lease_s / 3


def celery_options(config: AsmConfig | dict[str, Any]) -> CeleryOptions:
    """The checked ``[celery]`` table of ``config``: ``invalid_config`` names a bad key."""
    table = config.celery if isinstance(config, AsmConfig) else config
    options = parse_options(CeleryOptions, table, "[celery]")
    problems = []
    if not options.broker_url:
        problems.append("broker_url must be set (e.g. amqp://guest:guest@127.0.0.1:5672//)")
    if not options.queue:
        problems.append("queue must be a queue name")
    if options.concurrency < 1:
        problems.append(f"concurrency must be >= 1, not {options.concurrency}")
    if options.prefetch_multiplier < 1:
        problems.append(f"prefetch_multiplier must be >= 1, not {options.prefetch_multiplier}")
    if options.ledger_connections < 1:
        problems.append(f"ledger_connections must be >= 1, not {options.ledger_connections}")
    for name in ("lease_s", "claim_wait", "poll_interval"):
        if not getattr(options, name) > 0:
            problems.append(f"{name} must be a positive number of seconds, not {getattr(options, name)!r}")
    if not options.grace_period >= 0:
        problems.append(f"grace_period must be 0 or more seconds, not {options.grace_period!r}")
    if options.on_worker_lost not in WORKER_LOST_CHOICES:
        problems.append(f'on_worker_lost must be "restart", "resume" or "fail", not {options.on_worker_lost!r}')
    if problems:
        raise AsmError("invalid_config", "[celery]: " + "; ".join(problems), details={"key": "celery"})
    return options
