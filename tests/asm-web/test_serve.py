"""``asm serve`` as a real process on a free loopback port, driven by the Python client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from asm_web import Client, hash_token

from asm.events import EventType

pytestmark = [pytest.mark.usefixtures("isolated"), pytest.mark.integration]

ASM = [sys.executable, "-c", "from asm.cli import main; main()"]


@asynccontextmanager
async def asm_serve(*args: str, port: int = 0) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """``asm serve --port PORT ARGS`` until the block ends (then SIGTERM): the process and its URL."""
    process = subprocess.Popen(  # noqa: ASYNC220 - Popen starts it; the waits below are in threads
        [*ASM, "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(120):
            line = (await trio.to_thread.run_sync(process.stdout.readline)).decode()
        assert line.startswith("asm serve: listening on http://127.0.0.1:"), line + process.stderr.read().decode()
        yield process, line.split()[4]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            await trio.to_thread.run_sync(process.wait)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


async def test_a_run_followed_with_the_client_and_a_clean_sigterm(isolated: Path) -> None:
    (isolated / "asm.toml").write_text(
        'provider = "echo"\nstore = "sqlite"\n[stores.sqlite]\npath = "asm.db"\n[providers.echo]\ndelay = 0.01\n'
    )
    async with asm_serve() as (process, url), Client(url) as client:
        assert await client.ready()
        session = await client.create_session(agent_id="http")
        run = await client.submit(session.id, "hello from the other side")
        text = ""
        async with client.follow(session.id) as events:
            async for event in events:
                if event.data.type is EventType.MESSAGE_STREAMED and event.run_id == run.id:
                    text += event.data.delta  # type: ignore[attr-defined]
                if event.data.type is EventType.RUN_COMPLETED:
                    break
        assert text == "hello from the other side"
        assert (await client.get_run(run.id)).output == text
        [listed] = (await client.list_sessions(agent_id="http")).sessions
        assert listed.id == session.id
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            code = await trio.to_thread.run_sync(process.wait)
        assert code == 0
    assert process.stderr is not None


async def test_tokens_from_config_and_the_token_helpers(isolated: Path) -> None:
    made = (await trio.run_process([*ASM, "serve", "--new-token"], capture_stdout=True)).stdout.decode()
    token = made.split("token: ")[1].split()[0]
    assert f"hash:  {hash_token(token)}" in made
    hashed = (
        (await trio.run_process([*ASM, "serve", "--hash-token"], stdin=(token + "\n").encode(), capture_stdout=True))
        .stdout.decode()
        .strip()
    )
    assert hashed == hash_token(token)
    (isolated / "asm.toml").write_text(f'store = "memory"\n[web]\ntokens = ["{hashed}"]\n')
    async with asm_serve("--host", "127.0.0.1") as (_, url):
        async with Client(url) as anonymous:
            with pytest.raises(Exception) as refused:
                await anonymous.list_sessions()
            assert getattr(refused.value, "code", None) == "unauthorized"
        async with Client(url, token=token) as client:
            assert (await client.list_sessions()).sessions == ()


def test_no_token_means_loopback_only(isolated: Path) -> None:
    (isolated / "asm.toml").write_text('store = "memory"\n')
    result = subprocess.run([*ASM, "serve", "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("asm: error [invalid_config]: refusing to serve on 0.0.0.0 with no token")
    assert "Traceback" not in result.stderr
    empty = subprocess.run([*ASM, "serve", "--hash-token"], input="", capture_output=True, text=True)
    assert empty.returncode == 2 and "[invalid_input]" in empty.stderr


async def test_follow_goes_on_across_a_restart_of_the_server_process(isolated: Path) -> None:
    (isolated / "asm.toml").write_text(
        'provider = "echo"\nstore = "sqlite"\n[stores.sqlite]\npath = "asm.db"\n[providers.echo]\ndelay = 0.05\n'
    )
    words = " ".join(f"w{i}" for i in range(200))  # 10 s at the echo's pace: still going when stopped
    seen: list[int] = []
    async with asm_serve() as (first, url):
        port = int(url.rsplit(":", 1)[1])
        client = Client(url)
        session = await client.create_session()
        run = await client.submit(session.id, words)
        async with client.follow(session.id, reconnect_delay=0.1, max_reconnect_delay=0.5) as events:
            async for event in events:
                seen.append(event.seq or 0)
                if event.data.type is EventType.MESSAGE_STREAMED and len(seen) > 12:
                    break
            first.send_signal(signal.SIGTERM)  # mid-run: the run is recorded cancelled
            with trio.fail_after(60):
                assert await trio.to_thread.run_sync(first.wait) == 0
            async with asm_serve(port=port) as (_, again):
                assert again == url
                second = await client.submit(session.id, "after the restart")
                async for event in events:  # the same iterator: it reconnects by itself
                    seen.append(event.seq or 0)
                    if event.run_id == second.id and event.data.type is EventType.RUN_COMPLETED:
                        break
                assert events.reconnects >= 1
                stored = (await client.read_events(session.id, limit=1000)).events
        await client.aclose()
    assert seen == [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert [e.data.type for e in stored if e.run_id == run.id][-1] is EventType.RUN_CANCELLED
