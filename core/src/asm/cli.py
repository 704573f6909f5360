"""The ``asm`` command.

::

    asm run [--provider NAME] [--config FILE] [--json] [--timeout S] PROMPT
    asm plugins [--json]
    asm config show [--config FILE]
    asm plugin new NAME [--kind provider|store|sink|renderer] [--directory DIR]
    asm artifacts list SESSION | get KEY [-o FILE]

Plugins add subcommands through the ``asm_register_commands`` hook. Every
``AsmError`` is printed as one line (``asm: error [code]: message``), never a
traceback; the exit status is 2 for bad input and 1 for any other failure.
SIGTERM and SIGHUP stop ``asm run`` like Ctrl-C: the run and its session are
stored ``cancelled``, the provider's processes stopped, and asm exits 143 / 129.
A command whose reader leaves (``asm sessions list | head -1``) stops quietly
with status 141 (128 + SIGPIPE, what the shell reports for a tool that SIGPIPE
ended); ``asm run`` finishes and records its run all the same, then exits 141
too, unless the run failed (its own status then: 1, or 2 for bad input).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import sys
import tomllib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Final, NoReturn, TextIO

from asm._cli_view import configure_logging, verbosity
from asm._signals import Stopped
from asm.errors import AsmError, ValidationError
from asm.plugins import BrokenPlugin, PluginRegistry, lazy, load_plugins

__all__ = ["main", "run_cli"]

#: The exit status of a command whose reader closed the pipe: 128 + SIGPIPE.
READER_GONE = 141


def main() -> None:
    """Console-script entry point."""
    status = run_cli(sys.argv[1:])
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the pipe; keep Python's exit-time flush from printing a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(status)


def run_cli(argv: Sequence[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the command line ``argv``; return the exit status.

    Output goes to ``stdout`` / ``stderr`` (default: the process's). It never
    raises for a bad command line or an ``AsmError``: it prints one line,
    ``asm: error [code]: message``, and returns 2 for bad input (validation
    errors, usage errors), 1 for any other failure, 141 if the reader of its
    output left. A :class:`~asm.config.ConfigWarning` is one line on ``stderr``,
    ``asm: warning: message``.

    >>> run_cli(["run", "--provider", "echo", "hello"])  # doctest: +SKIP
    hello
    0
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    stop_logging = configure_logging(verbosity(argv), err)  # before the plugins load: they log too
    try:
        registry = load_plugins()
        parser = _parser(registry, out, err)
        args = parser.parse_args(list(argv))
        with _warnings_as_lines(err):
            status = args.handler(args)
        # Output still buffered fails here, not in the exit-time flush, if its reader left.
        out.flush()
        if out is not sys.stdout:
            sys.stdout.flush()  # plugin commands write there whatever run_cli was given
        return 0 if status is None else int(status)
    except _Exit as exit_:
        return exit_.status
    except KeyboardInterrupt:
        err.write("asm: interrupted\n")
        return 130
    except Stopped as stopped:  # SIGTERM, SIGHUP: handled like Ctrl-C, with the shell's 128 + signal
        err.write(f"asm: {stopped}; the run was cancelled\n")
        return 128 + stopped.signal
    except BrokenPipeError:
        # The reader of asm's output left. (asm's own pipes and sockets fail as AsmErrors
        # or trio.BrokenResourceError; a BrokenPipeError that gets here is stdout's.)
        return _reader_left(out)
    except BaseExceptionGroup as group:
        if group.subgroup(BrokenPipeError) is not None:
            return _reader_left(out)
        matched, rest = group.split(AsmError)
        if matched is None or rest is not None:
            raise
        return _report(_first(matched), err)
    except AsmError as exc:
        return _report(exc, err)
    finally:
        stop_logging()


@contextlib.contextmanager
def _warnings_as_lines(err: TextIO) -> Iterator[None]:
    """Inside the block, each :class:`~asm.config.ConfigWarning` (a config entry asm
    ignores) is one line on ``err``, ``asm: warning: <message>``, once; other
    warnings are shown as Python shows them."""
    from asm.config import ConfigWarning  # only a command that runs reads config

    with warnings.catch_warnings():
        warnings.simplefilter("default", ConfigWarning)
        show_others = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, ConfigWarning):
                err.write(f"asm: warning: {message}\n")
            else:
                show_others(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _reader_left(out: TextIO) -> int:
    """The reader of ``out`` closed the pipe: point the process's stdout at the null
    device (what is still buffered, and Python's exit-time flush, go nowhere instead of
    failing again) and return :data:`READER_GONE`."""
    if out is sys.stdout or out is sys.__stdout__:
        with contextlib.suppress(OSError, ValueError):  # no file descriptor to replace
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, out.fileno())
            finally:
                os.close(devnull)
    return READER_GONE


def _report(exc: AsmError, err: TextIO) -> int:
    message = " ".join(exc.message.split("\n"))
    err.write(f"asm: error [{exc.code}]: {message}\n")
    return 2 if isinstance(exc, ValidationError) else 1


def _first(group: BaseExceptionGroup[AsmError]) -> AsmError:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


class _Exit(Exception):
    """argparse asked to exit (after ``--help``): not an error."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that writes to ``_out`` / ``_err`` and raises instead of exiting."""

    _out: TextIO = sys.stdout
    _err: TextIO = sys.stderr

    def print_help(self, file: Any = None) -> None:
        super().print_help(file or self._out)

    def print_usage(self, file: Any = None) -> None:
        super().print_usage(file or self._out)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._err.write(message)
        raise _Exit(status)

    def error(self, message: str) -> NoReturn:
        raise AsmError("validation_error", f"{message} (see '{self.prog} --help')")


class _VersionAction(argparse.Action):
    """``asm --version``: ``asm <version>`` on the parser's output, then exit 0."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        from asm import __version__

        out = parser._out if isinstance(parser, _Parser) else sys.stdout
        out.write(f"asm {__version__}\n")
        raise _Exit(0)


def _parser_class(out: TextIO, err: TextIO) -> type[_Parser]:
    class Parser(_Parser):
        _out = out
        _err = err

    return Parser


def _parser(registry: PluginRegistry, out: TextIO, err: TextIO) -> argparse.ArgumentParser:
    parser_class = _parser_class(out, err)
    parser = parser_class(prog="asm", description="Agent Session Manager")
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="print asm's version (the asm-core distribution's) and exit"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what asm does on stderr: -v INFO, -vv DEBUG (the 'asm' loggers)",
    )
    parser.set_defaults(handler=functools.partial(_cmd_help, parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=parser_class)

    run = commands.add_parser(
        "run",
        help="run a prompt on a provider and stream the answer",
        description="Run a prompt on a provider and stream the answer to stdout. The session and run ids "
        "are printed on stderr at the start ('session ses_... · run run_...'), for 'asm events' and "
        "'asm sessions show' afterwards.",
    )
    run.add_argument(
        "prompt",
        nargs="*",
        help="the prompt (words are joined with spaces; a provider that runs commands, like shell, "
        "takes several words as the exact argv; put '--' before words that start with '-'); "
        "'-' or nothing reads the prompt from stdin",
    )
    run.add_argument("--prompt-file", metavar="FILE", help="read the prompt from FILE (UTF-8 text)")
    run.add_argument("--provider", "-p", help="provider name (default: from config, else 'echo')")
    run.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    run.add_argument("--json", action="store_true", help="print every event as a JSON line")
    run.add_argument(
        "--renderer",
        "-r",
        metavar="NAME",
        help="show the run with this renderer (studio, verbose, compact, ...); default: studio when stdout "
        "is a terminal and asm-rich is installed, else the answer's text",
    )
    run.add_argument(
        "--thinking", action="store_true", help="show the model's thinking in full (a renderer that collapses it)"
    )
    run.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS", help="run timeout in seconds")
    run.add_argument("--model", type=_nonempty("--model"), help="the model (the provider's 'model' option)")
    run.add_argument(
        "--system", type=_nonempty("--system"), metavar="TEXT", help="the system prompt ('system_prompt' option)"
    )
    run.add_argument("--max-turns", type=_at_least_one, metavar="N", help="at most N model turns ('max_turns' option)")
    run.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        type=_run_option,
        metavar="KEY=VALUE",
        help='any run option of the provider; VALUE is read as a TOML value (1, 0.2, true, ["a"], '
        "{k = 1}) when it is one, else as text; the provider checks its type; repeatable",
    )
    run.add_argument(
        "--session",
        "-s",
        metavar="SESSION",
        help="run in this existing session (an id that 'asm run' printed or 'asm sessions list' shows) "
        "instead of a new one; the run is sent the session's conversation so far",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="with --session: continue by the provider's own resume of the session's last run (Claude Code "
        "--resume, a Codex thread, ...) instead of sending the conversation again",
    )
    run.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="CAPABILITY",
        help="a capability the provider must have (tools, thinking, vision, ...); repeatable",
    )
    run.add_argument(
        "--workspace",
        "-w",
        metavar="DIR",
        help="the directory the agent works in: snapshot it, keep the patch, roll back a failed run",
    )
    run.set_defaults(handler=functools.partial(lazy("asm._cli_commands:cmd_run"), registry=registry, out=out, err=err))

    plugins = commands.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="print as JSON")
    plugins.add_argument("--config", "-c", help="config file whose named instances to list (default: ./asm.toml)")
    plugins.set_defaults(handler=functools.partial(lazy("asm._cli_commands:cmd_plugins"), registry=registry, out=out))

    config = commands.add_parser("config", help="inspect the configuration")
    config.set_defaults(handler=functools.partial(_cmd_help, config))
    config_commands = config.add_subparsers(title="config commands", metavar="COMMAND", parser_class=parser_class)
    show = config_commands.add_parser(
        "show", help="the merged config, where each value came from, and the store in use (and where it keeps data)"
    )
    show.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    show.add_argument("--json", action="store_true", help="as JSON: config, sources, files and the store")
    show.set_defaults(handler=functools.partial(lazy("asm._cli_commands:cmd_config_show"), registry=registry, out=out))

    plugin = commands.add_parser("plugin", help="start a new plugin distribution: asm plugin new NAME")
    plugin.set_defaults(handler=functools.partial(_cmd_help, plugin))
    new = plugin.add_subparsers(title="plugin commands", metavar="COMMAND", parser_class=parser_class).add_parser(
        "new", help="scaffold a plugin distribution (with its contract tests) from asm's plugin skeleton"
    )
    new.add_argument("name", metavar="NAME", help="distribution name, e.g. asm-acme (import package asm_acme)")
    new.add_argument("--kind", default="provider", help="provider (default), store, sink or renderer")
    new.add_argument("--directory", metavar="DIR", help="where to create it (default: ./NAME); new or empty")
    new.set_defaults(handler=functools.partial(_cmd_plugin_new, registry=registry, out=out))

    # Plugin commands: factory(subparsers) adds a sub-parser whose ``handler``
    # default is handler(args) -> int. A broken one does not break the others.
    for registration in registry.registrations("commands"):
        try:
            registration.factory(commands)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - reported by `asm plugins`, the rest of asm works
            problem = f"command {registration.name!r} could not be added: {exc!r}"
            registry.broken.append(BrokenPlugin(registration.plugin, registration.distribution, problem))
    for name, what in _DURABLE_COMMANDS.items():
        if name not in commands.choices:  # asm-core alone: say what to install, not "invalid choice"
            missing = commands.add_parser(
                name, help=f"{what} (install asm-sqlalchemy for this command)", add_help=False
            )
            missing.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            missing.set_defaults(handler=functools.partial(_cmd_not_installed, name))
    return parser


#: Commands of a durable store plugin (asm-sqlalchemy), and what they do.
_DURABLE_COMMANDS: Final = {
    "sessions": "list and show stored sessions",
    "events": "a session's stored events",
    "db": "the session database",
}


def _cmd_not_installed(name: str, args: argparse.Namespace) -> int:
    del args
    raise AsmError(
        "plugin_not_found",
        f"'asm {name}' reads a durable store, and none is installed: install asm-sqlalchemy (or another "
        "durable store) for this command (pip install asm-sqlalchemy)",
        details={"command": name},
    )


def _cmd_plugin_new(args: argparse.Namespace, *, registry: PluginRegistry, out: TextIO) -> int:
    from asm import _scaffold

    taken = registry.names(f"{args.kind}s") if args.kind in _scaffold.KINDS else ()
    return _scaffold.command(args.name, args.kind, args.directory, taken, out)


def _cmd_help(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """No command given: the help of the command line so far, and status 2."""
    del args
    parser.print_help()
    return 2


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds (leave it out for no limit)")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; pass 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is less than 1; pass 1 or more")
    return value


def _nonempty(flag: str) -> Any:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{flag} needs a value that is not empty")
        return text

    return parse


def _run_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--option``: VALUE as a TOML value when it is one (``1``,
    ``0.2``, ``true``, ``["a"]``, ``{k = 1}``), else as text. A value that starts like
    a TOML string, array or table but does not parse as one is an error, not text."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. --option temperature=0.2)")
    if not all(c.isalnum() or c in "_-" for c in key):
        raise argparse.ArgumentTypeError(f"option name {key!r} is not a name (letters, digits, '_' and '-')")
    try:
        document = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError as exc:
        if raw.lstrip()[:1] in ('"', "'", "[", "{"):
            raise argparse.ArgumentTypeError(
                f'the value of {key} does not parse ({exc}); quote it for the shell, e.g. -o \'{key}=["a", "b"]\''
            ) from None
        return key, raw
    return key, document["v"] if set(document) == {"v"} else raw


if __name__ == "__main__":  # pragma: no cover
    main()
