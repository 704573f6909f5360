"""What redacting streamed text as one text costs: time per delta, and how long text waits.

The secrets redactor holds back the tail of a delta that could still be the start of a secret
(docs/redaction.md). This measures, on an agent-like transcript (prose, code, shell output, a
few URLs and keys) cut into LLM-sized deltas (a word or a piece of one, with its space):

- the time it adds per delta: the same run through ``run_once`` with the in-memory store,
  without and with the redactor (best of the alternated runs; the provider's result is short,
  so that redacting the whole output once, at the end, is not counted per delta);
- how fast a whole text is redacted (``redact_text``: a message, a tool output, a run's result);
- how much text waits: the share of deltas released whole at once, and for every character,
  how many deltas later it was released (0: with its own delta).

    python benchmarks/redaction_stream.py [--deltas N] [--repeats R] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import stopwatch, write_section

import asm
from asm import Event, InMemorySessionStore, SessionManager
from asm.events import MessageStreamed, RunCompleted
from asm.model import RunResult
from asm.providers.scripted import ScriptedProvider
from asm.redaction import EventRedactor

PARAGRAPHS = [
    "I'll start by reading the configuration and the failing test, then run the suite again.\n",
    "```python\ndef connect(url: str, *, timeout: float = 5.0) -> Connection:\n"
    "    return Connection(url, timeout=timeout, retries=3)\n```\n",
    "$ pytest -q tests/test_api.py\n....F.\nFAILED tests/test_api.py::test_token_refresh - KeyError: 'expires_at'\n",
    "The token refresh reads `expires_at`, which the server renamed to `expiry`; the key is "
    "missing, so the refresh fails and every request after it returns 401.\n",
    "Set DATABASE_URL=postgresql://app:hunter2-fake@db:5432/app and API_KEY=sk-proj-Qw8fakefakefakefakefake02 "
    "in your .env (the password: fake-db-passw0rd is only for local runs).\n",
    "See https://docs.example.com/api/v2/auth#refresh and the diff below:\n"
    "-    expires = payload['expires_at']\n+    expires = payload.get('expiry', payload.get('expires_at'))\n",
    "All 214 tests pass now (3.2 s). Summary: one key renamed, two call sites updated, no schema change.\n",
]
_DELTA = re.compile(r"\s*\S{1,6}|\s+")  # a word or a piece of one, with the space before it


def deltas(count: int) -> list[str]:
    text = "".join(PARAGRAPHS)
    pieces = _DELTA.findall(text)
    return (pieces * (count // len(pieces) + 1))[:count]


def time_run(steps: list[str], redacted: bool) -> float:
    plugins = [EventRedactor()] if redacted else []
    registry = asm.load_plugins(entry_points=False, extra=plugins)

    async def main() -> float:
        provider = ScriptedProvider(steps, result=RunResult(output="done"))
        manager = SessionManager(InMemorySessionStore(), provider=provider, plugins=registry)
        elapsed = stopwatch()
        run = await manager.run_once("benchmark", on_event=lambda event: None)
        seconds = elapsed()
        assert run.status is asm.RunStatus.COMPLETED, run.error
        return seconds

    gc.collect()
    return trio.run(main)


def waiting(steps: list[str]) -> dict[str, Any]:
    """Feed the deltas to the redactor; for each character, how many deltas it waited."""
    redactor = EventRedactor()
    arrived: list[int] = []  # the delta index of each character not yet released
    waits: list[int] = []
    whole = 0
    for index, delta in enumerate(steps):
        arrived.extend([index] * len(delta))
        answer = redactor.asm_transform_event(Event.new(MessageStreamed(delta), session_id="s", run_id="r"))
        released = _released(answer, delta)
        # Redaction changes lengths: count released characters by what was held before.
        held = len(redactor._runs["r"][(MessageStreamed.type, None)].held)
        out = len(arrived) - held
        if out == len(arrived) and held == 0 and released == delta:
            whole += 1
        waits.extend(index - a for a in arrived[:out])
        del arrived[:out]
    answer = redactor.asm_transform_event(Event.new(RunCompleted(), session_id="s", run_id="r"))
    waits.extend(len(steps) - a for a in arrived)
    waits.sort()
    return {
        "whole": whole / len(steps),
        "immediate": sum(1 for w in waits if w == 0) / len(waits),
        "mean": statistics.fmean(waits),
        "p99": waits[int(len(waits) * 0.99)],
        "max": waits[-1],
    }


SECRETS = ("hunter2-fake", "sk-proj-Qw8fakefakefakefakefake02", "fake-db-passw0rd")


def _secret_share(steps: list[str]) -> float:
    """The share of deltas that carry a character of one of the transcript's secrets."""
    text = "".join(steps)
    inside = [False] * len(text)
    for secret in SECRETS:
        for match in re.finditer(re.escape(secret), text):
            inside[match.start() : match.end()] = [True] * len(secret)
    at, carrying = 0, 0
    for delta in steps:
        carrying += any(inside[at : at + len(delta)])
        at += len(delta)
    return carrying / len(steps)


def _row(times: list[float], count: int) -> str:
    best = min(times)
    return f"{best * 1000:.1f} ms | {statistics.median(times) * 1000:.1f} ms | {best / count * 1e6:.2f} µs"


def _seconds(work: Any, text: str) -> float:
    elapsed = stopwatch()
    work(text)
    return elapsed()


def _released(answer: object, delta: str) -> str:
    if answer is None:
        return delta
    events = answer if isinstance(answer, list) else [answer]
    return "".join(e.data.delta for e in events if isinstance(e.data, MessageStreamed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deltas", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    steps = deltas(args.deltas)

    plain_times, redacted_times = [], []
    for _ in range(args.repeats):  # alternated, so that load falls on both alike
        plain_times.append(time_run(steps, redacted=False))
        redacted_times.append(time_run(steps, redacted=True))
    plain, redacted = min(plain_times), min(redacted_times)
    added_us = (redacted - plain) / len(steps) * 1e6
    wait = waiting(steps)
    whole = "".join(steps)
    redactor = EventRedactor()
    whole_s = min(_seconds(redactor.redact_text, whole) for _ in range(args.repeats))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    chars = sum(map(len, steps)) / len(steps)
    secret_share = _secret_share(steps)
    body = f"""
{len(steps):,} `message_streamed` deltas of an agent-like transcript (prose, code, test output, a
diff; {secret_share:.1%} of the deltas carry part of a URL password, an API key or a `password:` value),
a word or a piece of one each ({chars:.1f} characters on average), through `run_once` with the in-memory
store, without and with the secrets redactor (`benchmarks/redaction_stream.py`). Best of
{args.repeats} alternated runs each. Load average at the end: {load}.

| | best | median | per delta (best) |
|---|---|---|---|
| no redactor | {_row(plain_times, len(steps))} |
| redactor (streamed text redacted as one) | {_row(redacted_times, len(steps))} |

Time the redactor adds: **{added_us:.2f} µs per delta** (best against best). A whole text (the
transcript, {len(whole):,} characters, as `message_received` or a tool output would carry it) is
redacted at {len(whole) / whole_s / 1e6:.1f} MB/s ({whole_s * 1000:.1f} ms).

How long text waits, counted in deltas (the provider's own pace sets what a delta is worth in
time: at 50 deltas/s, one delta is 20 ms):

| deltas released whole, at once | characters released with their own delta | mean wait | 99th percentile | longest |
|---|---|---|---|---|
| {wait["whole"]:.1%} | {wait["immediate"]:.1%} | {wait["mean"]:.3f} deltas | {wait["p99"]} | {wait["max"]} |

A held tail is a possible secret's start (`sk-`, `password: hun`, `://user:`, a number that may be
a bot id, `-`), released with the first later delta that decides it; the longest waits are the
secrets themselves, held until a delta shows where they end.
"""
    print(body)
    if not args.no_write:
        write_section("redaction_stream", body)


if __name__ == "__main__":
    main()
