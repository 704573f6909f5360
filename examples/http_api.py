"""asm over HTTP: start ``asm serve`` (asm-web) on a free loopback port, create a
session, submit a run and follow its events live with ``asm_web.Client``.

Runs offline: the echo provider streams the prompt back word by word, and the
sessions go to a SQLite file in a temporary directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import trio
from asm_web import Client

from asm.events import RUN_END_TYPES, EventType

CONFIG = """\
provider = "echo"
store = "sqlite"

[stores.sqlite]
path = "sessions.db"

[providers.echo]
delay = 0.02
"""


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await trio.Path(tmp, "asm.toml").write_text(CONFIG)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASM_")}
        # `asm serve --port 0` picks a free port and prints the URL on its first line.
        server = subprocess.Popen(  # noqa: ASYNC220 - started here, waited for in a thread
            [sys.executable, "-c", "from asm.cli import main; main()", "serve", "--port", "0"],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
        )
        try:
            assert server.stdout is not None
            line = (await trio.to_thread.run_sync(server.stdout.readline)).decode()
            print(line.strip())
            url = line.split()[4]
            async with Client(url) as client:
                session = await client.create_session(agent_id="http-example")
                run = await client.submit(session.id, "streamed over HTTP, word by word")
                text = ""
                async with client.follow(session.id) as events:
                    async for event in events:
                        if event.data.type is EventType.MESSAGE_STREAMED:
                            text += event.data.delta  # type: ignore[attr-defined]
                            print(f"  seq {event.seq}: {event.data.delta!r}")  # type: ignore[attr-defined]
                        if event.run_id == run.id and event.data.type in RUN_END_TYPES:
                            break
                finished = await client.get_run(run.id)
                print(f"run {finished.status.value}: {finished.output!r}, usage {finished.usage}")
                assert text == finished.output == "streamed over HTTP, word by word"
                listed = await client.list_sessions(agent_id="http-example")
                assert [s.id for s in listed.sessions] == [session.id]
        finally:
            server.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(server.wait) == 0
            server.stdout.close()  # type: ignore[union-attr]


if __name__ == "__main__":
    trio.run(main)
