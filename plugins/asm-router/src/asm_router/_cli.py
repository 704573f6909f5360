"""``asm router status [NAME] [--json]``: the configured routers, their members and circuits.

A router's circuits live in the process that runs it; this command builds the
routers of the config afresh, so it shows their members, strategy and settings,
and the circuits as a new process starts them (closed). A long-running process
shows its live state with ``runtime.provider("<name>").status()``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import TYPE_CHECKING, Any

from asm.errors import AsmError

if TYPE_CHECKING:
    from asm_router._router import RouterStatus

__all__ = ["add_router_command", "router_names", "status_lines"]


def add_router_command(subparsers: Any) -> None:
    """Add ``asm router status``."""
    router = subparsers.add_parser("router", help="inspect the routers the config defines")
    commands = router.add_subparsers(title="router commands", metavar="COMMAND")
    router.set_defaults(handler=functools.partial(_help, router))
    status = commands.add_parser("status", help="each router's members, weights, latency and circuits")
    status.add_argument("name", nargs="?", metavar="NAME", help="one router (default: every configured router)")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    status.set_defaults(handler=_status)


def _help(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    del args
    parser.print_help()
    return 2


def router_names(providers: dict[str, dict[str, Any]]) -> list[str]:
    """The provider names a config's tables make routers: ``[providers.router]``
    and every ``[providers.<name>]`` with ``plugin = "router"``."""
    return sorted(name for name, table in providers.items() if name == "router" or table.get("plugin") == "router")


def status_lines(status: RouterStatus) -> list[str]:
    """A router's status as text, one line per member and circuit."""
    lines = [f"{status.name}: strategy {status.strategy}, {status.sticky_sessions} sticky session(s)"]
    for member in status.members:
        latency = "-" if member.latency_s is None else f"{member.latency_s * 1000:.1f} ms"
        lines.append(f"  {member.name} ({member.provider}): weight {member.weight:g}, first event {latency}")
        if not member.circuits:
            lines.append("    circuit closed (no run yet)")
        for circuit in member.circuits:
            model = f" [{circuit.model}]" if circuit.model else ""
            when = "" if circuit.retry_in_s is None else f", probed in {circuit.retry_in_s:.3g}s"
            lines.append(f"    circuit{model} {circuit.state.value}: {circuit.failures} failure(s){when}")
    return lines


def _status(args: argparse.Namespace) -> int:
    # Imported here: `asm --help` builds this command's parser, and should not pay for the runtime.
    from asm.config import load_config
    from asm.plugins import load_plugins
    from asm.runtime import configured
    from asm.serde import unstructure
    from asm_router._router import RouterProvider

    loaded = load_config(config_file=args.config)
    registry = configured(load_plugins(), loaded.config)
    names = router_names(loaded.config.providers)
    if args.name is not None:
        if args.name not in names:
            raise AsmError(
                "invalid_input",
                f"no router named {args.name!r} in the config (routers: {', '.join(names) or 'none'}); "
                'a router is a [providers.<name>] table with plugin = "router"',
            )
        names = [args.name]
    statuses = []
    for name in names:
        router = registry.create("providers", name)
        assert isinstance(router, RouterProvider)
        statuses.append(router.status())
    if args.json:
        sys.stdout.write(json.dumps([unstructure(s) for s in statuses], indent=2) + "\n")
    elif not statuses:
        sys.stdout.write('no routers configured (a [providers.<name>] table with plugin = "router")\n')
    else:
        for status in statuses:
            sys.stdout.write("\n".join(status_lines(status)) + "\n")
    return 0
