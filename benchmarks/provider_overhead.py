"""API provider overhead: a 5,000-delta streamed answer from a fake server on loopback.

For each provider (``claude`` on the Anthropic Messages API, ``openai`` on the
Responses API, ``gemini`` on the Gemini API's ``streamGenerateContent``), in the same run:

(a) the SDK alone consuming the stream (``messages.create(stream=True)`` /
    ``responses.create(stream=True)`` / google-genai's ``aio.models.generate_content_stream``,
    iterating its typed events);
(b) ``SessionManager.run_once`` on the provider with the in-memory store;
(c) the same with the ``sqlite`` store, when a plugin provides one (asm-sqlalchemy).

Each side creates its SDK client and reads the whole stream from the same fake
server. Targets: (b)/(a) <= 1.03, (c)/(a) <= 1.10, for claude <= 1.0 (median times).

    python benchmarks/provider_overhead.py [--deltas N] [--repeats R] [--providers claude,openai,gemini] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import stopwatch, write_section

import asm

TARGET_MEMORY = 1.03
TARGET_SQLITE = 1.10
#: Issue #21: claude's durable SQLite run no slower than its SDK alone, in a quiet run.
TARGET_SQLITE_CLAUDE = 1.0


#: One SSL context for every SDK client, as the providers keep one: building it (loading the CA
#: bundle) costs tens of ms, which would otherwise dominate a run this short.
SSL_CONTEXT = httpx2.create_ssl_context()
SYNC_HTTP = httpx2.Client(verify=SSL_CONTEXT)


def anthropic_http() -> Any:
    import anthropic

    return anthropic.DefaultAsyncHttpxClient(verify=SSL_CONTEXT)


def openai_http() -> Any:
    import openai

    return openai.DefaultAsyncHttpxClient(verify=SSL_CONTEXT)


def deltas(count: int) -> list[str]:
    return [f"tok{i % 97} " for i in range(count)]


# -- the two providers -------------------------------------------------------


def claude_side(count: int) -> tuple[Any, Callable[[str], Any], Callable[[str], Any], Callable[[str], Any]]:
    import anthropic
    from asm_claude.messages import ClaudeProvider
    from asm_claude.testing import FakeAnthropicServer, text_stream

    reply = text_stream(deltas(count), model="claude-fake-1")
    server = FakeAnthropicServer(lambda _request: reply)

    async def sdk(url: str) -> int:
        seen = 0
        async with anthropic.AsyncAnthropic(
            api_key="k", base_url=url, max_retries=0, http_client=anthropic_http()
        ) as client:
            stream = await client.messages.create(
                model="claude-fake-1", max_tokens=10, messages=[{"role": "user", "content": "go"}], stream=True
            )
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    seen += 1
        return seen

    async def raw(url: str) -> int:
        size = 0
        async with anthropic.AsyncAnthropic(
            api_key="k", base_url=url, max_retries=0, http_client=anthropic_http()
        ) as client:
            request = {"model": "claude-fake-1", "max_tokens": 10, "messages": [{"role": "user", "content": "go"}]}
            async with client.messages.with_streaming_response.create(**request, stream=True) as response:
                async for chunk in response.http_response.aiter_bytes():
                    size += len(chunk)
        return size

    def provider(url: str) -> ClaudeProvider:
        return ClaudeProvider(api_key="k", base_url=url, model="claude-fake-1")

    return server, sdk, raw, provider


def openai_side(count: int) -> tuple[Any, Callable[[str], Any], Callable[[str], Any], Callable[[str], Any]]:
    import openai
    from asm_openai import OpenAIProvider
    from asm_openai.testing import FakeOpenAIServer, responses_text_stream

    reply = responses_text_stream(deltas(count), model="gpt-fake-1")
    server = FakeOpenAIServer(lambda _request: reply)

    async def sdk(url: str) -> int:
        seen = 0
        async with openai.AsyncOpenAI(
            api_key="k", base_url=url + "/v1", max_retries=0, http_client=openai_http()
        ) as client:
            stream = await client.responses.create(model="gpt-fake-1", input="go", stream=True)
            async for event in stream:
                if event.type == "response.output_text.delta":
                    seen += 1
        return seen

    async def raw(url: str) -> int:
        size = 0
        async with openai.AsyncOpenAI(
            api_key="k", base_url=url + "/v1", max_retries=0, http_client=openai_http()
        ) as client:
            request = {"model": "gpt-fake-1", "input": "go", "stream": True}
            async with client.responses.with_streaming_response.create(**request) as response:
                async for chunk in response.http_response.aiter_bytes():
                    size += len(chunk)
        return size

    def provider(url: str) -> OpenAIProvider:
        return OpenAIProvider(api_key="k", base_url=url + "/v1", model="gpt-fake-1")

    return server, sdk, raw, provider


def gemini_side(count: int) -> tuple[Any, Callable[[str], Any], Callable[[str], Any], Callable[[str], Any]]:
    from asm_gemini import GeminiProvider
    from asm_gemini.testing import FakeGeminiServer, text_stream
    from google import genai

    reply = text_stream(deltas(count), model="gemini-2.5-flash")
    server = FakeGeminiServer(lambda _request: reply)

    def client(url: str, http: httpx2.AsyncClient) -> genai.Client:
        # The SDK's own async client keeps a pool per asyncio loop, which trio has not: hand it one;
        # and a sync one with the shared SSL context, else it builds its own and loads a CA bundle.
        options = {"base_url": url, "api_version": "v1beta", "httpx_async_client": http, "httpx_client": SYNC_HTTP}
        return genai.Client(api_key="k", vertexai=False, http_options=options)  # type: ignore[arg-type]

    async def sdk(url: str) -> int:
        seen = 0
        async with httpx2.AsyncClient(verify=SSL_CONTEXT) as http:
            stream = await client(url, http).aio.models.generate_content_stream(model="gemini-2.5-flash", contents="go")
            async for chunk in stream:
                if chunk.text:
                    seen += 1
        return seen

    async def raw(url: str) -> int:
        size = 0
        async with httpx2.AsyncClient(verify=SSL_CONTEXT) as http:
            api = client(url, http).aio._api_client
            sent = api._build_request(
                "post",
                "models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                {"contents": [{"parts": [{"text": "go"}]}]},
            )
            response = (await api._async_request(sent, None, stream=True)).response_stream
            async for chunk in response.aiter_bytes():
                size += len(chunk)
            await response.aclose()
        return size

    def provider(url: str) -> GeminiProvider:
        return GeminiProvider(api_key="k", base_url=url, model="gemini-2.5-flash")

    return server, sdk, raw, provider


SIDES = {"claude": claude_side, "openai": openai_side, "gemini": gemini_side}


# -- timing ------------------------------------------------------------------


def time_sdk(sdk: Callable[[str], Any], url: str, count: int | None) -> float:
    async def main() -> float:
        elapsed = stopwatch()
        seen = await sdk(url)
        seconds = elapsed()
        assert count is None or seen == count, seen
        return seconds

    gc.collect()
    return float(trio.run(main))


def time_asm(provider: Any, count: int, store_name: str, directory: str) -> float:
    registry = asm.load_plugins()

    async def main() -> float:
        config = {"path": f"{directory}/bench-{asm.model.new_id('db')}.db"} if store_name == "sqlite" else {}
        store = registry.create("stores", store_name, config)
        async with contextlib.AsyncExitStack() as stack:
            if hasattr(store, "__aenter__"):
                await stack.enter_async_context(store)
            else:
                stack.push_async_callback(store.aclose)
            manager = asm.SessionManager(store, provider=provider)
            elapsed = stopwatch()
            run = await manager.run_once("go")
            seconds = elapsed()
        assert run.status is asm.RunStatus.COMPLETED, run.error
        assert run.output.count("tok") == count
        return seconds

    gc.collect()
    return float(trio.run(main))


def measure(name: str, side: Callable[[int], Any], count: int, repeats: int, sqlite: bool) -> dict[str, list[float]]:
    server, sdk, raw, make_provider = side(count)
    times: dict[str, list[float]] = {"raw": [], "sdk": [], "memory": [], "sqlite": []}
    with server, tempfile.TemporaryDirectory() as directory:
        provider = make_provider(server.url)
        time_sdk(sdk, server.url, count)  # warm up imports and the first connection
        time_asm(provider, count, "memory", directory)
        for _ in range(repeats):  # interleaved, so a busy machine slows every side alike
            times["raw"].append(time_sdk(raw, server.url, None))
            times["sdk"].append(time_sdk(sdk, server.url, count))
            times["memory"].append(time_asm(provider, count, "memory", directory))
            if sqlite:
                times["sqlite"].append(time_asm(provider, count, "sqlite", directory))
    print(name, {k: f"{statistics.median(v) * 1000:.1f} ms" for k, v in times.items() if v})
    return times


def row(label: str, values: list[float], baseline: float, count: int) -> str:
    median = statistics.median(values)
    return (
        f"| {label} | {min(values) * 1000:.1f} ms | {median * 1000:.1f} ms | {count / median:,.0f} "
        f"| {median / baseline:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deltas", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--providers", default=",".join(SIDES), help="which providers, comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    sqlite = "sqlite" in asm.load_plugins().names("stores")
    load_start = os.getloadavg()[0]
    rows = []
    verdicts = []
    for name, side in ((name, SIDES[name]) for name in args.providers.split(",")):
        times = measure(name, side, args.deltas, args.repeats, sqlite)
        baseline = statistics.median(times["sdk"])
        rows.append(row(f"`{name}`: HTTP bytes only, no parsing", times["raw"], baseline, args.deltas))
        rows.append(row(f"`{name}`: (a) SDK alone", times["sdk"], baseline, args.deltas))
        rows.append(row(f"`{name}`: (b) `run_once`, memory store", times["memory"], baseline, args.deltas))
        memory_ratio = statistics.median(times["memory"]) / baseline
        verdicts.append(
            f"`{name}` (b)/(a) = **{memory_ratio:.3f}** (target <= {TARGET_MEMORY}: "
            f"{'meets' if memory_ratio <= TARGET_MEMORY else 'MISSES'} it)"
        )
        if sqlite:
            rows.append(row(f"`{name}`: (c) `run_once`, sqlite store", times["sqlite"], baseline, args.deltas))
            sqlite_ratio = statistics.median(times["sqlite"]) / baseline
            per_event = (statistics.median(times["sqlite"]) - statistics.median(times["memory"])) / args.deltas
            target = TARGET_SQLITE_CLAUDE if name == "claude" else TARGET_SQLITE
            verdicts.append(
                f"`{name}` (c)/(a) = **{sqlite_ratio:.3f}** (target <= {target}: "
                f"{'meets' if sqlite_ratio <= target else 'MISSES'} it); the sqlite store adds "
                f"{per_event * 1e6:.0f} µs per event over the in-memory one"
            )
        else:
            verdicts.append(f"`{name}` (c): not yet measurable, no store named `sqlite` is installed")
    table = "\n".join(rows)
    findings = "\n".join(f"- {v}" for v in verdicts)
    load = f"{load_start:.1f} / {os.getloadavg()[0]:.1f}"
    body = f"""
A fake server on loopback (`asm_claude.testing` / `asm_openai.testing` / `asm_gemini.testing`, a
thread) streams a {args.deltas:,}-delta answer (for gemini, a `GenerateContentResponse` chunk per
delta). (a) is the SDK alone iterating its typed stream (`messages.create(stream=True)` /
`responses.create(stream=True)` / google-genai's `aio.models.generate_content_stream`, its pydantic
`GenerateContentResponse` per chunk); (b) is `SessionManager.run_once`
on the provider with the in-memory store, every delta becoming a stored `message_streamed` event;
(c) is (b) with the `sqlite` store (asm-sqlalchemy, a fresh database file). Each side creates its
SDK client (with one shared SSL context, as the providers do) and reads the whole stream; best and
median of {args.repeats} interleaved runs; the ratio is median / median of (a). Load average (1 min) at
the start and end: {load}.

| | best | median | deltas/s (median) | ratio to (a) |
|---|---|---|---|---|
{table}

{findings}

"HTTP bytes only" reads the same response through the SDK without parsing it: the floor any
consumer pays. The providers read the raw Server-Sent Events and parse each with orjson
(`asm.sse.loads_event`, 0.25 µs against `json.loads`' 1.2 for a text delta) instead of building the
SDK's typed event objects; that saving pays for asm's own work per event (the event
envelope, the run's write queue, seq assignment, storage). The provider emits one
`message_streamed` event per wire delta (never merged, so the events do not depend on how the
bytes were split), so (c) is (b) plus the store's work per event: its worker thread spends about
7 µs of CPU on each (building the row and its JSON about 2.4, then the multi-row insert and the
commit, inside SQLite, which lets go of the GIL). The Python part competes for the GIL with the
provider's parsing; the SQLite part runs beside it. WAL checkpoints run in a thread of the store's
own (a run of 5,000 deltas fills SQLite's 1,000-page WAL once, and left to SQLite, that copy and its
fsyncs stalled the run's last commit by 5-10 ms).

(c) keeps two cores busy (the event loop and the store's writer thread) where (a) keeps one, so
its ratio moves with the machine more than the others: when the second core is taken by other
work, the store's share of the work stops running beside the provider's and adds to it.
"""
    print(body)
    if not args.no_write:
        # A run of some providers only has its own section, leaving the full run's figures alone.
        everyone = args.providers == ",".join(SIDES)
        write_section("provider_overhead" if everyone else f"provider_overhead ({args.providers})", body)


if __name__ == "__main__":
    main()
