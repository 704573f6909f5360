"""asm-redis: every durable event on Redis pub/sub, for subscribers in any process.

Events are published as JSON (:func:`asm.serde.event_to_json`) on the channel
``asm.session.<session_id>``, only after the store acknowledged them. Turn it
on for a runtime with the ``redis`` sink::

    # asm.toml: a [sinks.redis] table enables the sink
    [sinks.redis]
    url = "redis://127.0.0.1:6379/0"

and follow a session from another process::

    async with asm_redis.RedisPubSub("redis://127.0.0.1:6379/0") as pubsub:
        async with pubsub.subscribe(asm.session_topic(session_id)) as events:
            async for event in events:
                print(event.seq, event.type)

or from a shell: ``python -m asm_redis watch <session_id>`` (``'*'`` for every session).

redis-py's client is blocking (its asyncio client does not run under trio),
so every Redis call runs in ``trio.to_thread.run_sync`` behind a small
limiter; a subscription polls in a worker thread with a short timeout, so
cancelling it takes effect within ``poll_interval`` seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asm import hookimpl
from asm.hookspecs import Register
from asm.plugins import lazy_attributes

if TYPE_CHECKING:
    from asm_redis._pubsub import DEFAULT_URL, RedisPubSub, RedisSink, RedisSinkOptions

__all__ = ["DEFAULT_URL", "RedisPubSub", "RedisSink", "RedisSinkOptions"]


__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "_pubsub"))


def _redis_sink(config: dict[str, Any]) -> Any:
    from asm_redis._pubsub import create_sink

    return create_sink(config)


@hookimpl
def asm_register_sinks(register: Register) -> None:
    """Register the ``redis`` sink."""
    register("redis", _redis_sink)
