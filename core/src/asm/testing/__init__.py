"""Contract test suites for asm plugins: a store, provider or sink passes them, or it is broken.

asm's ports (:mod:`asm.ports`) are ``typing.Protocol`` classes, so a type
checker can only check a plugin's *shape*. These suites check its *behaviour*:
seq assignment under concurrency, cursor paging, long-poll wake-ups, exact
round trips, key validation, cancellation and timeouts. asm's own stores and
providers run them, and so should yours.

Install the test extra, which brings pytest, pytest-trio and hypothesis::

    pip install "asm-core[testing]"

Installing asm-core registers this module as a pytest plugin (entry point
``pytest11: asm``), so the suites' assertions are rewritten by pytest and
failures show the values involved.

Usage
-----

Subclass a contract in your test module, supply one fixture, and every test
method of the contract runs against your plugin::

    import pytest
    from asm.testing import ArtifactStoreContract, ProviderContract, SessionStoreContract
    from asm.providers.scripted import Stall

    class TestMyStore(SessionStoreContract):
        @pytest.fixture
        async def store(self, tmp_path):
            async with open_my_store(tmp_path / "asm.db") as store:
                yield store

    class TestMyBlobs(ArtifactStoreContract):
        preserves_content_type = False  # this backend cannot keep it

        @pytest.fixture
        async def artifact_store(self, tmp_path):
            async with MyArtifactStore(tmp_path) as store:
                yield store

    class TestMyProvider(ProviderContract):
        prompt = "Say hello."

        @pytest.fixture
        def provider(self, fake_server):
            return MyProvider(base_url=fake_server.url)

        @pytest.fixture
        def slow_provider(self, fake_server):
            # a run that lasts until it is cancelled
            return MyProvider(base_url=fake_server.url + "/stall")

The test methods are ``async`` and marked ``pytest.mark.trio`` (pytest-trio
runs them, with or without ``trio_mode``); fixtures may be sync or async.
Never skip a contract test: if one fails, the plugin is wrong or a flag below
is set wrongly. Each test's docstring says what a failure means.

SessionStoreContract (fixture ``store``)
    Sessions and runs round-trip ``==`` through save/get and are replaced on
    save; unknown ids raise ``session_not_found`` / ``run_not_found``;
    ``list_sessions`` filters, orders newest first and pages; ``list_runs``
    is oldest first; ``append_events`` assigns gap-free per-session seqs, also
    with 20 concurrent writers, and is idempotent by event id; every event
    type round-trips exactly; ``read_events`` bounds, filters, cursors and
    bad-argument errors; ``wait_for_events`` returns at once, wakes on append
    and times out empty; ``latest_seq``; ``delete_session``. The suite uses
    fresh ids, so the fixture may share one store (one database) between
    tests. Flags:

    ``supports_concurrent_writers = True``
        Many tasks may call ``append_events`` at once. ``False`` makes the
        suite serialize its concurrent appends (and means your store must not
        be used by a manager running several runs of a session at once).
    ``wait_limit = 30.0``
        Seconds before a test that should finish at once fails as hung.
    ``short_timeout = 0.05``
        The ``timeout`` passed when ``wait_for_events`` should time out.

ArtifactStoreContract (fixture ``artifact_store``)
    put/get/stat with size and sha256; empty blobs; replacing a key; ``list``
    by string prefix, sorted; ``delete`` (silent when missing); a few-MB blob
    put from an async iterator and read back with ``open_read`` in chunks;
    ``artifact_not_found``; ``validation_error`` for unsafe keys (see
    :data:`INVALID_KEYS`) on every method. Every test uses a fresh key prefix.
    Flags:

    ``preserves_content_type = True``
        ``stat`` reports the ``content_type`` given to ``put``. ``False``: it
        may report ``None`` instead (never a different type).
    ``large_blob_size = 3 MiB + 12345``
        Size of the streamed blob.

ProviderContract (fixtures ``provider`` and ``slow_provider``)
    Runs go through a real :class:`~asm.manager.SessionManager` on an
    :class:`~asm.stores.memory.InMemorySessionStore`: a run completes; every
    event is a catalog payload that survives JSON and only the manager emits
    lifecycle events; streamed text matches the output; ``capabilities()``;
    three runs of one provider object stay separate; ``cancel_run`` from
    another task and cancelling the caller end a slow run ``cancelled``; a run
    timeout ends it ``timeout``; none of these leave a task behind.
    ``slow_provider`` (default: ``provider``) and the :meth:`slow_input`
    method (default: ``prompt``) must make a run that lasts until cancelled;
    the suite cancels it once the run has started and all tasks are blocked
    (the provider is waiting, typically mid-stream). Flags:

    ``prompt = "hello"``
        Input of ordinary runs (a string, messages, or a ``RunInput``).
    ``emits_text = True``
        The provider streams ``message_streamed`` deltas and its output is
        (the end of) that text. ``False``: it streams no text at all.
    ``supports_concurrent_runs = True``
        One provider object may execute several runs at once. ``False`` runs
        the three runs of that test one after another.
    ``run_timeout = 0.25``
        The timeout of the timeout test; the slow run must outlast it.
    ``wait_limit = 30.0``
        Seconds before a test that should finish fails as hung.

SinkContract (fixtures ``sink`` and ``sink_output``)
    ``sink`` is a fresh sink; ``sink_output()`` returns everything that has
    reached its destination so far, as one string (the file read back, what a
    fake server received). The suite writes the way a runtime does: a run's
    events through :class:`~asm.rendering.RenderingPipeline` arrive in seq
    order, followed by the closing text (``event=None``); ``""`` writes nothing;
    non-ASCII, CR/LF and a 256 KiB write arrive unchanged; closing twice is
    harmless; ``aclose`` leaves no task behind. Flags:

    ``delivers_text = True``
        The destination receives the rendered text, exactly. ``False``: one
        record per event (JSON lines); the suite checks that every event's id
        arrives, in seq order, and ignores the text.
    ``wait_limit = 30.0``
        Seconds before a test that should finish at once fails as hung.

HTTPProviderFaultContract (in :mod:`asm.testing.http_contract`; fixtures ``server``, ``provider``,
``make_provider`` and ``text_reply``)
    The faults of an HTTP API provider against its fake server (built on
    :mod:`asm.testing.http`): a table of error replies (class attribute
    ``failures``: name -> ``Fault(reply, code, retryable, kind)``, with a
    ``"429"`` carrying a retry-after), a reset, a cut stream, a stall
    cancelled mid-stream, cancelling while events back up, a missing key, the
    key from the environment, a bad base URL, a refused connection. Its
    module docstring has the example and the flags; ``run_once`` and
    ``provider_payloads`` there are the helpers its tests use.
"""

from __future__ import annotations

try:
    import pytest
except ImportError:  # asm.testing.http (fake servers) works without pytest; the suites need it
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    # Modules named here get pytest's assertion rewriting even when asm-core is
    # not itself treated as a plugin distribution (e.g. an editable install).
    pytest.register_assert_rewrite(
        "asm.testing._artifacts",
        "asm.testing._common",
        "asm.testing._provider",
        "asm.testing._sink",
        "asm.testing._store",
        "asm.testing.http_contract",
    )

    from asm.testing._artifacts import INVALID_KEYS as INVALID_KEYS
    from asm.testing._artifacts import ArtifactStoreContract as ArtifactStoreContract
    from asm.testing._provider import ProviderContract as ProviderContract
    from asm.testing._sink import SinkContract as SinkContract
    from asm.testing._store import SessionStoreContract as SessionStoreContract
    from asm.testing._store import sample_payloads as sample_payloads

__all__ = [
    "INVALID_KEYS",
    "ArtifactStoreContract",
    "ProviderContract",
    "SessionStoreContract",
    "SinkContract",
    "sample_payloads",
]
