"""The Redis pub/sub client and sink (imported on first use; see the package docstring)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import attrs
import redis
import trio

from asm import AsmError, Event, parse_options, session_topic
from asm.redaction import mask_url
from asm.serde import event_from_json, event_to_json

__all__ = ["DEFAULT_URL", "RedisPubSub", "RedisSink", "RedisSinkOptions", "create_sink"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"

logger = logging.getLogger("asm_redis")

T = TypeVar("T")


def _unreachable(url: str, exc: Exception) -> AsmError:
    shown = mask_url(url)  # the password never reaches an error, its details or a log line
    return AsmError(
        "storage_connection_failed",
        f"cannot reach Redis at {shown}: {mask_url(str(exc))}; start Redis there or fix the url",
        details={"url": shown},
    )


class RedisPubSub:
    """A :class:`asm.ports.PubSub` on a Redis server.

    ``publish`` sends one ``PUBLISH`` per event (in order; the events of one
    publisher are never reordered). ``subscribe(topic)`` follows one channel,
    or a pattern when ``topic`` contains ``*`` (``asm.session.*``: every
    session). An unreachable server is ``storage_connection_failed`` naming
    the URL (its password masked, as everywhere asm shows a URL).
    """

    def __init__(self, url: str = DEFAULT_URL, *, connect_timeout: float = 2.0, poll_interval: float = 0.1) -> None:
        self.url = url
        self.poll_interval = poll_interval
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url, socket_connect_timeout=connect_timeout, socket_timeout=max(connect_timeout, 5.0)
            )
        except ValueError as exc:
            shown = mask_url(url)
            raise AsmError(
                "invalid_config", f"bad Redis url {shown!r}: {mask_url(str(exc))}", details={"url": shown}
            ) from None
        self._publishing = trio.CapacityLimiter(1)

    async def __aenter__(self) -> RedisPubSub:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(self, function: Callable[..., T], *args: Any, limiter: trio.CapacityLimiter) -> T:
        def call() -> T:
            try:
                return function(*args)
            except redis.RedisError as exc:
                raise _unreachable(self.url, exc) from None

        return await trio.to_thread.run_sync(call, limiter=limiter)

    async def ping(self) -> None:
        """Check that the server answers (``storage_connection_failed`` if not)."""
        await self._call(self._client.ping, limiter=self._publishing)

    async def publish(self, topic: str, event: Event) -> None:
        """``PUBLISH topic <event as JSON>``."""
        await self._call(self._client.publish, topic, event_to_json(event), limiter=self._publishing)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        """``async with pubsub.subscribe(topic) as events``: what is published
        on ``topic`` (a channel, or a pattern with ``*``) once the subscription
        is confirmed by the server, until the block ends."""
        limiter = trio.CapacityLimiter(1)
        pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
        pattern = "*" in topic
        try:
            await self._call(pubsub.psubscribe if pattern else pubsub.subscribe, topic, limiter=limiter)
            # Yield only once the server confirmed: nothing published after this is missed.
            while True:
                message = await self._call(pubsub.get_message, False, self.poll_interval, limiter=limiter)
                if message is not None and message["type"] in ("subscribe", "psubscribe"):
                    break
            yield _RedisEvents(self, pubsub, limiter)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(pubsub.close, limiter=limiter)

    async def aclose(self) -> None:
        """Close the connection pool."""
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._client.close, limiter=self._publishing)


class _RedisEvents:
    def __init__(self, owner: RedisPubSub, pubsub: Any, limiter: trio.CapacityLimiter) -> None:
        self._owner = owner
        self._pubsub = pubsub
        self._limiter = limiter

    def __aiter__(self) -> _RedisEvents:
        return self

    async def __anext__(self) -> Event:
        owner = self._owner
        while True:
            message = await owner._call(self._pubsub.get_message, True, owner.poll_interval, limiter=self._limiter)
            if message is not None and message["type"] in ("message", "pmessage"):
                return event_from_json(message["data"])


@attrs.frozen
class RedisSinkOptions:
    """The ``[sinks.redis]`` config table."""

    url: str = DEFAULT_URL
    connect_timeout: float = 2.0


class RedisSink:
    """A rendering-pipeline :class:`asm.ports.Sink` publishing every event on
    ``asm.session.<session_id>``.

    A Redis failure never fails a run (its events are stored all the same):
    the sink logs it once, stops publishing, and raises it
    (``storage_connection_failed``, naming the URL) when it is closed.
    """

    def __init__(self, url: str = DEFAULT_URL, *, connect_timeout: float = 2.0) -> None:
        self.pubsub = RedisPubSub(url, connect_timeout=connect_timeout)
        #: The first publishing failure, raised by :meth:`aclose`.
        self.error: AsmError | None = None

    async def write(self, text: str, event: Event | None) -> None:
        """Publish ``event`` (not the renderer's closing text)."""
        if event is None or self.error is not None:
            return
        try:
            await self.pubsub.publish(session_topic(event.session_id), event)
        except AsmError as exc:
            self.error = exc
            logger.error("asm-redis: %s; events are no longer published (they are still stored)", exc.message)

    async def aclose(self) -> None:
        """Close the connection; raise the failure that stopped publishing, if any."""
        await self.pubsub.aclose()
        if self.error is not None:
            raise self.error


def create_sink(config: dict[str, Any]) -> RedisSink:
    options = parse_options(RedisSinkOptions, config, "redis sink")
    return RedisSink(options.url, connect_timeout=options.connect_timeout)
