"""The ``asm`` command.

::

    asm run [--provider NAME] [--config FILE] [--json] [--timeout S] PROMPT
    asm plugins [--json]
    asm config show [--config FILE]

Plugins add subcommands through the ``asm_register_commands`` hook. Every
``AsmError`` is printed as one line (``asm: error [code]: message``), never a
traceback; the exit status is 2 for bad input and 1 for any other failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import trio

from asm.config import LoadedConfig, load_config
from asm.errors import AsmError, ValidationError
from asm.events import Event, MessageStreamed
from asm.plugins import PluginRegistry, load_plugins
from asm.runtime import open_runtime
from asm.serde import event_to_json

__all__ = ["main", "run_cli"]


def main() -> None:
    """Console-script entry point."""
    sys.exit(run_cli(sys.argv[1:]))


def run_cli(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the command line ``argv``; return the exit status.

    >>> run_cli(["run", "--provider", "echo", "hello"])  # doctest: +SKIP
    hello
    0
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        registry = load_plugins()
        parser = _parser(registry)
        args = parser.parse_args(list(argv))
        if not hasattr(args, "handler"):
            parser.print_help(out)
            return 2
        return int(args.handler(args, registry, out))
    except AsmError as exc:
        err.write(f"asm: error [{exc.code}]: {exc.message}\n")
        return 2 if isinstance(exc, ValidationError) else 1
    except KeyboardInterrupt:
        err.write("asm: interrupted\n")
        return 130


def _parser(registry: PluginRegistry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asm", description="Agent Session Manager")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = commands.add_parser("run", help="run a prompt on a provider and stream the answer")
    run.add_argument("prompt", nargs="+", help="the prompt (words are joined with spaces)")
    run.add_argument("--provider", "-p", help="provider name (default: from config, else 'echo')")
    run.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    run.add_argument("--json", action="store_true", help="print every event as a JSON line")
    run.add_argument("--timeout", type=float, help="run timeout in seconds")
    run.set_defaults(handler=_cmd_run)

    plugins = commands.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="print as JSON")
    plugins.set_defaults(handler=_cmd_plugins)

    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(title="config commands", metavar="COMMAND")
    show = config_commands.add_parser("show", help="the merged config and where each value came from")
    show.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    show.set_defaults(handler=_cmd_config_show)

    for registration in registry.registrations("commands"):
        registration.factory(commands)  # type: ignore[arg-type]
    return parser


def _cmd_run(args: argparse.Namespace, registry: PluginRegistry, out: TextIO) -> int:
    loaded = load_config(
        {"provider": args.provider, "run_timeout": args.timeout},
        config_file=args.config,
    )
    prompt = " ".join(args.prompt)

    def show(event: Event) -> None:
        if args.json:
            out.write(event_to_json(event) + "\n")
        elif isinstance(event.data, MessageStreamed):
            out.write(event.data.delta)
        else:
            return
        out.flush()

    async def go() -> int:
        async with open_runtime(loaded, registry=registry) as runtime:
            run = await runtime.run_once(prompt, on_event=show)
        if not args.json:
            out.write("\n")
        run.raise_for_status()
        return 0

    return trio.run(go)


def _cmd_plugins(args: argparse.Namespace, registry: PluginRegistry, out: TextIO) -> int:
    infos = registry.plugins()
    if args.json:
        payload: dict[str, Any] = {
            "plugins": [
                {"name": i.name, "distribution": i.distribution, "version": i.version, "registers": i.registers}
                for i in infos
            ],
            "broken": [
                {"entry_point": b.entry_point, "distribution": b.distribution, "error": b.error} for b in registry.broken
            ],
        }
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    for info in infos:
        out.write(f"{info.distribution or info.name} {info.version or '(unknown version)'}  [plugin {info.name}]\n")
        for kind, names in sorted(info.registers.items()):
            out.write(f"  {kind}: {', '.join(names)}\n")
    for broken in registry.broken:
        out.write(f"BROKEN {broken.entry_point} ({broken.distribution or 'unknown distribution'}): {broken.error}\n")
    return 0


def _cmd_config_show(args: argparse.Namespace, registry: PluginRegistry, out: TextIO) -> int:
    loaded = load_config(config_file=args.config)
    out.write(render_config(loaded))
    return 0


def render_config(loaded: LoadedConfig) -> str:
    """The merged config as TOML, each value commented with where it came from."""
    from asm.serde import unstructure

    data = unstructure(loaded.config)
    lines = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {key} is unset  # {loaded.source_of(key)}")
        else:
            lines.append(f"{key} = {json.dumps(value)}  # {loaded.source_of(key)}")
    for kind, plugins in tables:
        for name, table in plugins.items():
            lines.append("")
            lines.append(f"[{kind}.{name}]  # {loaded.source_of(f'{kind}.{name}')}")
            for key, value in table.items():
                lines.append(f"{key} = {json.dumps(value)}  # {loaded.source_of(f'{kind}.{name}.{key}')}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    main()
