"""Resuming a Server-Sent Event stream: read a session's events over HTTP, drop
the connection in the middle of an event, and reconnect with ``Last-Event-ID``:
the stream goes on from exactly the next event, nothing missed, nothing twice.

Runs offline: the server (asm-web's ``open_server``) runs in this process on a
free loopback port, on the echo provider and the in-memory store.
"""

from __future__ import annotations

import contextlib
import json

import httpx2
import trio
from asm_web import Client, WebOptions, open_server

from asm import open_runtime
from asm.sse import SSEDecoder


async def read(url: str, last_event_id: int, *, cut_after_bytes: int | None = None) -> list[dict[str, object]]:
    """The complete events of one connection: until ``cut_after_bytes`` bytes
    came (then the connection is dropped), or until the run ended."""
    decoder, events, seen = SSEDecoder(), [], 0
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10.0, read=None)) as http:
        request = http.build_request("GET", url, headers={"Last-Event-ID": str(last_event_id)})
        response = await http.send(request, stream=True)
        chunks = response.aiter_raw()
        try:
            async for chunk in chunks:
                if cut_after_bytes is not None:
                    chunk = chunk[: cut_after_bytes - seen]
                seen += len(chunk)
                events += [json.loads(data) for _, data in decoder.feed(chunk)]
                if (cut_after_bytes is not None and seen >= cut_after_bytes) or (
                    events and events[-1]["type"] == "run_completed"
                ):
                    break
        finally:
            await response.aclose()  # then the body iterator ends at once (or says the socket is gone)
            with contextlib.suppress(httpx2.HTTPError):
                async for _ in chunks:
                    pass
    return events


async def main() -> None:
    async with (
        open_runtime(provider="echo", store="memory") as runtime,
        open_server(runtime, WebOptions(port=0)) as url,
        Client(url) as client,
    ):
        session = await client.create_session()
        run = await client.submit(session.id, "one two three four five six seven eight nine ten")
        await client.wait_until_done(run.id)
        stream = f"{url}/v1/sessions/{session.id}/events/stream"

        # 1,000 bytes in, the connection drops in the middle of an event
        first = await read(stream, 0, cut_after_bytes=1000)
        last = int(str(first[-1]["seq"]))
        print(f"first connection: seq {first[0]['seq']}..{last}, then cut mid-event")
        rest = await read(stream, last)
        print(f"resumed with Last-Event-ID: {last}: seq {rest[0]['seq']}..{rest[-1]['seq']}")

        seqs = [int(str(e["seq"])) for e in first + rest]
        assert seqs == list(range(1, len(seqs) + 1)), seqs  # no gap, no duplicate
        page = await client.read_events(session.id, limit=1000)
        assert seqs == [e.seq for e in page.events]
        print(f"{len(seqs)} events, each once, in order")


if __name__ == "__main__":
    trio.run(main)
