"""``python -m asm_redis watch <session_id | '*'>``: print a session's events, as JSON lines, live.

Options: ``--url`` (default ``redis://127.0.0.1:6379/0``), ``--count N`` (exit
after N events). A line ``subscribed to <channel>`` goes to stderr once the
subscription is active.
"""

from __future__ import annotations

import argparse
import sys

import trio

from asm import AsmError, session_topic
from asm.serde import event_to_json
from asm_redis import DEFAULT_URL, RedisPubSub


async def watch(session: str, url: str, count: int | None) -> None:
    """Print the events of ``session`` (``*`` for every session) as they are published."""
    async with RedisPubSub(url) as pubsub:
        topic = session_topic(session)
        async with pubsub.subscribe(topic) as events:
            print(f"subscribed to {topic}", file=sys.stderr, flush=True)
            seen = 0
            async for event in events:
                print(event_to_json(event), flush=True)
                seen += 1
                if count is not None and seen >= count:
                    return


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m asm_redis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    watch_parser = commands.add_parser("watch", help="print a session's events live, one JSON line each")
    watch_parser.add_argument("session", help="a session id, or '*' for every session")
    watch_parser.add_argument("--url", default=DEFAULT_URL)
    watch_parser.add_argument("--count", type=int, default=None, help="exit after this many events")
    args = parser.parse_args(argv)
    try:
        trio.run(watch, args.session, args.url, args.count)
    except AsmError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
