"""The faults every HTTP API provider must survive, as one test class: a provider's
tests subclass :class:`HTTPProviderFaultContract` with their fake server (built on
:mod:`asm.testing.http`) and a table of its error replies, and the same hostile
behaviours run against every provider (asm's claude, openai, gemini, the kit's
example, and yours)::

    from asm.testing.http_contract import Fault, HTTPProviderFaultContract

    class TestMyFaults(HTTPProviderFaultContract):
        provider_name = "my"
        key_variables = ("MY_API_KEY",)
        failures = {
            "429": Fault(my_error(429, "rate_limited", retry_after=12), "provider_rate_limited", True, "rate_limited"),
            "500": Fault(my_error(500, "internal"), "provider_unavailable", True, "internal"),
            "reset": Fault(reset_reply(), "provider_unavailable", True, "connection_error"),
        }

        @pytest.fixture
        def server(self):
            with FakeMyServer() as fake:
                yield fake

        @pytest.fixture
        def provider(self, make_provider):
            return make_provider()

        @pytest.fixture
        def make_provider(self, server):
            return lambda **options: MyProvider(**{"api_key": "k", "base_url": server.url, **options})

        @pytest.fixture
        def text_reply(self):
            return my_text_stream

The fixtures (module-level ones serve too):

``server``
    The fake server: ``queue(*replies)``, ``requests``, ``disconnected`` (a
    ``threading.Event``) and ``disconnects``, as :class:`~asm.testing.http.FakeHTTPServer`.
``provider``
    The provider pointed at ``server`` with a key.
``make_provider``
    ``make_provider(**options)``: a provider with these constructor options
    over the defaults of ``provider`` (``api_key=None`` for none,
    ``base_url=...`` elsewhere, ``model="slow"`` for a reply that stalls
    mid-stream until the client goes away).
``text_reply``
    ``text_reply(text)``: a 200 reply streaming ``text`` (a delta a word, or
    fewer) to its final event.

What the suite checks: every row of ``failures`` fails the run with its code,
retryable flag and ``provider_error`` (provider, kind), also on the
``run_failed`` event; the ``"429"`` row (with a retry-after of
``retry_after`` seconds) says when to retry; a missing key sends nothing and
says where keys go; the key from ``key_variables[0]`` is sent; a cut stream is
``stream_interrupted`` after what came before it was streamed; a stalled reply
cancelled mid-stream closes the connection; cancelling while events back up
leaves nothing half-read; a bad base URL is ``invalid_base_url``; a refused
connection is ``provider_unavailable``. Flags pin a provider's messages where
it has them (``None``: not pinned).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing

from asm.events import Event, MessageStreamed
from asm.manager import SessionManager
from asm.model import Run
from asm.ports import Provider
from asm.states import RunStatus
from asm.stores.memory import InMemorySessionStore
from asm.testing.http import FakeHTTPServer, Reply, cut_stream

__all__ = ["Fault", "HTTPProviderFaultContract", "provider_payloads", "run_once"]

#: The lifecycle payloads the manager emits, left out by :func:`provider_payloads`.
_LIFECYCLE = frozenset({"run_started", "run_completed", "run_failed", "message_sent"})


async def run_once(provider: Provider, prompt: object = "hi", **options: Any) -> tuple[Run, list[Any]]:
    """One run of ``provider`` with run ``options`` on a fresh in-memory store: the run and its payloads."""
    manager = SessionManager(InMemorySessionStore(), provider=provider)
    run = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(run.session_id, run_id=run.id)).events
    return run, [e.data for e in events]


def provider_payloads(payloads: list[Any]) -> list[Any]:
    """The provider's own payloads (no run lifecycle, no message_sent)."""
    return [p for p in payloads if p.type.value not in _LIFECYCLE]


@attrs.frozen
class Fault:
    """A reply the provider must turn into a failed run: its error ``code``,
    ``retryable`` flag, and the ``kind`` of its ``provider_error``."""

    reply: Reply
    code: str
    retryable: bool
    kind: str


class HTTPProviderFaultContract:
    """Hostile replies against an HTTP API provider; see :mod:`asm.testing.http_contract`."""

    pytestmark = pytest.mark.trio

    #: The provider's name (``provider_error.provider``, ``[providers.<name>]``).
    provider_name: ClassVar[str]
    #: Error replies and what each must give; ``"429"`` must carry a retry-after.
    failures: ClassVar[Mapping[str, Fault]]
    #: The environment variables the key is read from, the first named in the error; all unset for the test.
    key_variables: ClassVar[tuple[str, ...]]
    #: The request header the key is sent in, and how (``{}`` is the key).
    key_header: ClassVar[str] = "authorization"
    key_format: ClassVar[str] = "Bearer {}"
    #: Seconds of retry-after in the ``"429"`` row.
    retry_after: ClassVar[float] = 12.0
    #: Pinned messages: the 429's whole message, the start of a missing key's, a
    #: fragment of a cut stream's, the start of a refused connection's.
    rate_limit_message: ClassVar[str | None] = None
    missing_key_says: ClassVar[str | None] = None
    cut_stream_says: ClassVar[str | None] = None
    refused_says: ClassVar[str | None] = None
    #: The ``provider_error.kind`` of a missing key, where the provider gives one.
    missing_key_kind: ClassVar[str | None] = None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "fault" in metafunc.fixturenames:
            failures = metafunc.cls.failures
            metafunc.parametrize("fault", list(failures.values()), ids=list(failures))

    async def test_http_failures_fail_the_run(self, server: Any, provider: Provider, fault: Fault) -> None:
        server.queue(fault.reply)
        run, payloads = await run_once(provider)
        assert run.status is RunStatus.FAILED
        assert run.error is not None
        assert (run.error.code, run.error.retryable) == (fault.code, fault.retryable), run.error
        assert run.error.provider_error is not None
        assert (run.error.provider_error.provider, run.error.provider_error.kind) == (self.provider_name, fault.kind)
        assert payloads[-1].type.value == "run_failed"
        assert payloads[-1].provider_error == run.error.provider_error

    async def test_429_says_when_to_retry(self, server: Any, provider: Provider) -> None:
        server.queue(self.failures["429"].reply)
        run, _ = await run_once(provider)
        assert run.error is not None
        assert (run.error.details["retry_after"], run.error.details["status"]) == (self.retry_after, 429)
        assert f"retry after {self.retry_after:g}s" in run.error.message
        if self.rate_limit_message is not None:
            assert run.error.message == self.rate_limit_message

    async def test_a_missing_key_sends_nothing(
        self, server: Any, make_provider: Callable[..., Provider], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for variable in self.key_variables:
            monkeypatch.delenv(variable, raising=False)
        run, _ = await run_once(make_provider(api_key=None))
        assert run.error is not None
        assert run.error.code == "provider_authentication_failed"
        assert self.key_variables[0] in run.error.message
        assert f"api_key in [providers.{self.provider_name}]" in run.error.message
        if self.missing_key_says is not None:
            assert run.error.message.startswith(self.missing_key_says)
        if self.missing_key_kind is not None:
            assert run.error.provider_error is not None
            assert run.error.provider_error.kind == self.missing_key_kind
        assert server.requests == []

    async def test_the_key_from_the_environment_is_sent(
        self, server: Any, make_provider: Callable[..., Provider], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for variable in self.key_variables:
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setenv(self.key_variables[0], "from-env")
        run, _ = await run_once(make_provider(api_key=None))
        assert run.status is RunStatus.COMPLETED, run.error
        assert server.requests[0].headers[self.key_header] == self.key_format.format("from-env")

    async def test_a_cut_stream_is_interrupted(
        self, server: Any, provider: Provider, text_reply: Callable[[str], Reply]
    ) -> None:
        server.queue(cut_stream(text_reply("one two three four five six")))
        run, payloads = await run_once(provider)
        assert run.error is not None and run.error.provider_error is not None
        assert (run.error.code, run.error.retryable) == ("provider_unavailable", True)
        assert run.error.provider_error.kind == "stream_interrupted"
        assert payloads[-1].provider_error.kind == "stream_interrupted"
        if self.cut_stream_says is not None:
            assert self.cut_stream_says in run.error.message
        assert any(isinstance(p, MessageStreamed) for p in payloads), "what came before the cut was streamed"

    async def test_a_stall_is_cancelled_promptly_and_the_connection_closed(
        self, server: Any, make_provider: Callable[..., Provider]
    ) -> None:
        manager = SessionManager(InMemorySessionStore(), provider=make_provider(model="slow"))
        streamed = trio.Event()

        def on_event(event: Event) -> None:
            if isinstance(event.data, MessageStreamed):
                streamed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: manager.run_once("one two three four", on_event=on_event))
            await streamed.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        # The server sees the client go away (the stalled reply ends on EOF).
        assert await trio.to_thread.run_sync(server.disconnected.wait, 10)
        assert server.disconnects == 1

    async def test_cancelled_while_events_back_up(
        self, server: Any, provider: Provider, text_reply: Callable[[str], Reply]
    ) -> None:
        """Cancelled while emit waits for room (a slow consumer): the connection is
        closed and nothing is left half-read (no abandoned generator warnings)."""
        server.queue(text_reply(" ".join(f"d{i}" for i in range(2000))))
        manager = SessionManager(InMemorySessionStore(), provider=provider, event_buffer_size=1)
        seen = trio.Event()

        async def slow_consumer(event: Event) -> None:
            if isinstance(event.data, MessageStreamed):
                seen.set()
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: manager.run_once("x", on_event=slow_consumer))
            await seen.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        gc.collect()
        await trio.testing.wait_all_tasks_blocked()

    async def test_a_bad_base_url_is_a_config_error(self, make_provider: Callable[..., Provider]) -> None:
        run, _ = await run_once(make_provider(base_url="ftp://example.invalid"))
        assert run.error is not None and run.error.provider_error is not None
        assert (run.error.code, run.error.retryable) == ("provider_error", False)
        assert run.error.provider_error.kind == "invalid_base_url"
        assert f"fix base_url in [providers.{self.provider_name}]" in run.error.message

    async def test_a_refused_connection_is_unavailable(self, make_provider: Callable[..., Provider]) -> None:
        with FakeHTTPServer(lambda _request: Reply(500, b"")) as gone:
            url = gone.url
        run, _ = await run_once(make_provider(base_url=url))
        assert run.error is not None
        assert (run.error.code, run.error.retryable) == ("provider_unavailable", True)
        if self.refused_says is not None:
            assert run.error.message.startswith(self.refused_says)
