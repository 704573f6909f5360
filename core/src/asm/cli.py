"""The ``asm`` command.

::

    asm run [--provider NAME] [--config FILE] [--json] [--timeout S] PROMPT
    asm plugins [--json]
    asm config show [--config FILE]
    asm artifacts list SESSION | get KEY [-o FILE]

Plugins add subcommands through the ``asm_register_commands`` hook. Every
``AsmError`` is printed as one line (``asm: error [code]: message``), never a
traceback; the exit status is 2 for bad input and 1 for any other failure.
SIGTERM and SIGHUP stop ``asm run`` like Ctrl-C: the run and its session are
stored ``cancelled``, the provider's processes stopped, and asm exits 143 / 129.
A command whose reader leaves (``asm sessions list | head -1``) stops quietly
with status 141 (128 + SIGPIPE, what the shell reports for a tool that SIGPIPE
ended); ``asm run`` finishes and records its run all the same and exits with
the run's status.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import shlex
import sys
import tomllib
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Final, NoReturn, TextIO

import trio

from asm._cli_view import EventView, configure_logging, open_event_view, output_lost, pick_renderer, verbosity
from asm._signals import Stopped, cancelled_on_signals
from asm.config import ConfigWarning, LoadedConfig, load_config
from asm.errors import AsmError, ValidationError
from asm.events import ApprovalRequested, Event, MessageStreamed
from asm.hookspecs import hookimpl
from asm.plugins import BrokenPlugin, PluginRegistry, load_plugins
from asm.redaction import mask_url
from asm.runtime import configured, open_runtime
from asm.serde import event_to_json
from asm.states import SessionStatus

if TYPE_CHECKING:
    from asm.model import Run
    from asm.ports import Provider
    from asm.runtime import Runtime

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
    run.set_defaults(handler=functools.partial(_cmd_run, registry=registry, out=out, err=err))

    plugins = commands.add_parser("plugins", help="list installed plugins and what they register")
    plugins.add_argument("--json", action="store_true", help="print as JSON")
    plugins.add_argument("--config", "-c", help="config file whose named instances to list (default: ./asm.toml)")
    plugins.set_defaults(handler=functools.partial(_cmd_plugins, registry=registry, out=out))

    config = commands.add_parser("config", help="inspect the configuration")
    config.set_defaults(handler=functools.partial(_cmd_help, config))
    config_commands = config.add_subparsers(title="config commands", metavar="COMMAND", parser_class=parser_class)
    show = config_commands.add_parser(
        "show", help="the merged config, where each value came from, and the store in use (and where it keeps data)"
    )
    show.add_argument("--config", "-c", help="config file (default: ./asm.toml)")
    show.add_argument("--json", action="store_true", help="as JSON: config, sources, files and the store")
    show.set_defaults(handler=functools.partial(_cmd_config_show, registry=registry, out=out))

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


#: The largest prompt ``asm run`` reads from stdin or a file (bytes).
MAX_PROMPT_BYTES: Final = 64 * 1024 * 1024


def _prompt_words(args: argparse.Namespace) -> list[str]:
    """The prompt of ``asm run`` as words: the arguments, else the ``--prompt-file``, else
    stdin (``-`` or no prompt). Read as bytes and decoded as UTF-8: anything else, and a
    prompt that is empty or only whitespace, is a ``validation_error`` before anything runs."""
    words: list[str] = args.prompt
    if args.prompt_file is not None:
        if words:
            raise AsmError("validation_error", "give the prompt as arguments or with --prompt-file, not both")
        try:
            with open(args.prompt_file, "rb") as handle:
                data = handle.read(MAX_PROMPT_BYTES + 1)
        except IsADirectoryError:
            raise AsmError(
                "validation_error", f"--prompt-file {args.prompt_file} is a directory; pass a file"
            ) from None
        except OSError as exc:
            raise AsmError(
                "validation_error", f"cannot read --prompt-file {args.prompt_file}: {exc.strerror}"
            ) from None
        words = [_decoded(data, f"--prompt-file {args.prompt_file}")]
    elif not words or words == ["-"]:
        stdin = sys.stdin
        if stdin is None or (not words and stdin.isatty()):
            raise AsmError(
                "validation_error",
                "asm run needs a prompt: asm run 'your prompt', asm run --prompt-file FILE, or pipe it on stdin",
            )
        buffer = getattr(stdin, "buffer", None)
        data = buffer.read(MAX_PROMPT_BYTES + 1) if buffer is not None else stdin.read().encode()
        words = [_decoded(data, "the prompt on stdin")]
    if not any(word.strip() for word in words):
        raise AsmError("validation_error", "the prompt is empty (or only whitespace); pass a prompt to run")
    return words


def _decoded(data: bytes, where: str) -> str:
    if len(data) > MAX_PROMPT_BYTES:
        raise AsmError(
            "validation_error", f"{where} is over {MAX_PROMPT_BYTES // (1024 * 1024)} MB; pass a shorter prompt"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AsmError(
            "validation_error",
            f"{where} is not UTF-8 text (byte {exc.start} is {data[exc.start : exc.start + 1]!r}); "
            "convert it to UTF-8 (e.g. iconv -t UTF-8)",
        ) from None


def _run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The run options from ``--option`` (later ones win) and the flags that name one."""
    options = dict(args.option)
    for key, value in (("model", args.model), ("system_prompt", args.system), ("max_turns", args.max_turns)):
        if value is not None:
            options[key] = value
    return options


def _cmd_run(args: argparse.Namespace, *, registry: PluginRegistry, out: TextIO, err: TextIO) -> int:
    if args.resume and args.session is None:
        raise AsmError("validation_error", "--resume continues a session: pass --session SESSION with it")
    words = _prompt_words(args)
    loaded = load_config(
        {"provider": args.provider, "run_timeout": args.timeout},
        config_file=args.config,
    )

    reader_gone = False
    # A renderer's view (studio on a terminal, --renderer NAME), else the plain text / JSON lines below.
    view_name = pick_renderer(registry, args.renderer, json=args.json, out=out)
    view: EventView | None = None
    announced = False

    def announce(session_id: str, run_id: str) -> None:
        nonlocal announced
        if not announced:
            announced = True
            err.write(f"session {session_id} \u00b7 run {run_id}\n")
            err.flush()

    def show(event: Event) -> None:
        nonlocal reader_gone
        if event.run_id is not None:
            announce(event.session_id, event.run_id)
        if view is not None:
            view(event)
            return
        if reader_gone:
            return
        try:
            if args.json:
                out.write(event_to_json(event) + "\n")
            elif isinstance(event.data, MessageStreamed):
                out.write(event.data.delta)
            else:
                return
            out.flush()
        except BrokenPipeError:
            # `asm run ... | head -1`: the reader left; the run still ends (and is recorded) normally.
            reader_gone = True
            _reader_left(out)

    approver: _TerminalApprover | None = None
    if sys.stdin is not None and sys.stdin.isatty() and not registry.manager.has_plugin(_TerminalApprover.NAME):
        # Someone is at the keyboard: tool calls that need approval are asked about here.
        approver = _TerminalApprover(out)
        registry.manager.register(approver, name=_TerminalApprover.NAME)

    async def go() -> int:
        nonlocal view
        async with (
            open_runtime(loaded, registry=registry) as runtime,
            open_event_view(runtime.registry, view_name, out, thinking=args.thinking) as view,
        ):
            if approver is not None:
                approver.ask = getattr(view, "ask_approval", None)  # a live view asks in its own place
            provider = runtime.provider()
            prompt, argv = _run_input(words, provider)
            options = {**_run_options(args), **(argv or {})}
            if args.workspace is not None:
                options["workspace"] = {**(loaded.config.workspace or {}), "path": args.workspace}
            async with cancelled_on_signals():
                if args.session is None:
                    run = await runtime.run_once(
                        prompt, on_event=show, options=options or None, required_capabilities=args.require
                    )
                else:
                    run = await _run_in_session(runtime, args.session, prompt, options, args, show, announce, err)
        if output_lost(view):
            _reader_left(out)  # the terminal went away; the run was recorded all the same
        elif not args.json and not reader_gone and view is None:
            out.write("\n")
        run.raise_for_status()
        return 0

    return trio.run(go)


def _run_input(words: list[str], provider: Provider) -> tuple[str, dict[str, Any] | None]:
    """The prompt and run options for the words of ``asm run``: joined with spaces
    into one prompt, except for a provider that takes an argv (shell), which gets
    several words as they are (option ``argv``; the prompt records them quoted)."""
    if len(words) > 1 and provider.capabilities().takes_argv:
        return shlex.join(words), {"argv": list(words)}
    return " ".join(words), None


async def _run_in_session(
    runtime: Runtime,
    session_id: str,
    prompt: str,
    options: dict[str, Any],
    args: argparse.Namespace,
    show: Callable[[Event], None],
    announce: Callable[[str, str], None],
    err: TextIO,
) -> Run:
    """``asm run --session``: a new run in the stored session ``session_id`` (resumed if
    paused), on ``--provider`` if given, else the provider the session was started on;
    ``--resume`` asks for the provider's native continuation (see :mod:`asm.continuity`).
    A session that has ended (``asm run`` completes its own) takes no more runs: the run
    goes to a fork of its whole history, said on stderr."""
    manager = runtime.manager
    session = await manager.get_session(session_id)  # session_not_found for an unknown id
    if session.status.is_terminal:
        if args.resume:
            raise AsmError(
                "session_not_active",
                f"session {session_id} is {session.status.value}: a new run goes to a copy of its history, "
                "which the provider cannot resume natively; leave out --resume (the conversation is then sent)",
                details={"session_id": session_id, "status": session.status.value},
            )
        at = await manager.store.latest_seq(session_id)
        fork = await manager.store.fork_session(session_id, at_seq=at)
        err.write(
            f"asm: session {session_id} is {session.status.value}; continuing in a copy of its history: "
            f"{fork.id} (asm sessions fork {session_id} --at {at})\n"
        )
        session_id, session = fork.id, fork
    name = args.provider or session.provider or runtime.config.provider
    provider = runtime.provider(name)
    if args.resume and not provider.capabilities().native_resume:
        raise AsmError(
            "validation_error",
            f"provider {name!r} cannot resume a conversation of its own; leave out --resume "
            "(the session's conversation is then sent to it)",
            details={"provider": name},
        )
    if session.status is SessionStatus.PENDING:
        await manager.activate_session(session_id, on_event=show)
    elif session.status is SessionStatus.PAUSED:
        await manager.resume_session(session_id, on_event=show)
    run = await manager.start_run(
        session_id,
        prompt,
        provider=name,
        options=options or None,
        required_capabilities=args.require,
        continuation="native" if args.resume else None,
    )
    announce(session_id, run.id)
    return await manager.execute_run(run.id, provider=provider, on_event=show)


class _TerminalApprover:
    """Answers ``approval_requested`` by asking the person at the terminal (the
    ``approval_timeout`` still applies: no answer in time is a denial)."""

    NAME = "asm.cli.terminal-approval"

    def __init__(self, out: TextIO) -> None:
        self._out = out
        #: A renderer's view that asks itself (asm-rich's clears its live lines first), if any.
        self.ask: Callable[[ApprovalRequested, str], Awaitable[str]] | None = None

    @hookimpl
    async def asm_approve_tool(self, request: ApprovalRequested) -> bool:
        shown = json.dumps(request.tool_input, ensure_ascii=False)
        shown = shown if len(shown) <= 200 else shown[:197] + "..."
        question = f"allow tool {request.tool_name} {shown}? [y/N] "
        if self.ask is not None:
            answer = await self.ask(request, question)
        else:
            self._out.write("\n" + question)
            self._out.flush()
            answer = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        return answer.strip().lower() in ("y", "yes")


def _cmd_plugins(args: argparse.Namespace, *, registry: PluginRegistry, out: TextIO) -> int:
    infos = registry.plugins()
    instances = configured(registry, load_config(config_file=args.config).config).instances()
    if args.json:
        payload: dict[str, Any] = {
            "plugins": [
                {"name": i.name, "distribution": i.distribution, "version": i.version, "registers": i.registers}
                for i in infos
            ],
            "instances": [{"kind": i.kind, "name": i.name, "built_from": i.built_from} for i in instances],
            "broken": [
                {"entry_point": b.entry_point, "distribution": b.distribution, "error": b.error}
                for b in registry.broken
            ],
        }
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    for info in infos:
        out.write(f"{info.distribution or info.name} {info.version or '(unknown version)'}  [plugin {info.name}]\n")
        for kind, names in sorted(info.registers.items()):
            out.write(f"  {kind}: {', '.join(names)}\n")
    if instances:
        out.write("named instances (from config)\n")
        for instance in instances:
            out.write(f"  {instance.kind}.{instance.name}: {instance.built_from} [plugin {instance.plugin}]\n")
    for broken in registry.broken:
        out.write(f"BROKEN {broken.entry_point} ({broken.distribution or 'unknown distribution'}): {broken.error}\n")
    return 0


def _cmd_config_show(args: argparse.Namespace, *, registry: PluginRegistry, out: TextIO) -> int:
    from asm.runtime import check_plugin_tables, default_store
    from asm.serde import unstructure

    loaded = load_config(config_file=args.config)
    check_plugin_tables(loaded, configured(registry, loaded.config))
    name = loaded.config.store or default_store(registry)
    chosen = "config" if loaded.config.store else "default"
    store = configured(registry, loaded.config).create("stores", name)
    location = store_location(store)
    if args.json:
        payload = {
            "config": json.loads(mask_url(json.dumps(unstructure(loaded.config), default=str))),
            "sources": loaded.sources,
            "files": [str(path) for path in loaded.files],
            "store": {"name": name, "chosen_by": chosen, "location": location},
        }
        out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return 0
    out.write(render_config(loaded))
    why = "set in the config" if chosen == "config" else "the default, as no store is set"
    out.write(f"\n# the store in use: {name} ({why}); its data: {location}\n")
    return 0


def store_location(store: object) -> str:
    """Where ``store`` keeps its data, for people: a store's own ``location`` (a SQLite
    file's path, a database URL with its password masked), ``in memory ...`` for the
    in-memory store, else the store's type."""
    location = getattr(store, "location", None)
    if isinstance(location, str) and location:
        return mask_url(location)
    from asm.stores.memory import InMemorySessionStore

    if isinstance(store, InMemorySessionStore):
        return "in memory, in this process only (lost when it exits)"
    return f"kept by {type(store).__module__}.{type(store).__qualname__}"


def render_config(loaded: LoadedConfig) -> str:
    """The merged config as TOML, each value commented with where it came from.

    The output parses back (``tomllib.loads``) to the merged config, less the
    settings that are unset, and with the password of every URL shown as ``***``.
    """
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
            lines.append(f"{key} = {_toml_value(value)}  # {loaded.source_of(key)}")
    for name, table in tables:
        if not table:
            continue
        if all(isinstance(value, dict) for value in table.values()):
            # A kind of plugin tables ([providers.<name>], ...): one table per plugin.
            for plugin, options in table.items():
                lines.extend(_toml_table(loaded, (name, plugin), options))
        else:  # a plain table of settings ([workspace], [redact_patterns])
            lines.extend(_toml_table(loaded, (name,), table))
    return "\n".join(lines) + "\n"


def _toml_table(loaded: LoadedConfig, path: tuple[str, ...], table: dict[str, Any]) -> list[str]:
    dotted = ".".join(path)
    lines = ["", f"[{'.'.join(map(_toml_key, path))}]  # {loaded.source_of(dotted)}"]
    for key, value in table.items():
        where = loaded.source_of(f"{dotted}.{key}")
        if value is None:
            lines.append(f"# {_toml_key(key)} is unset  # {where}")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}  # {where}")
    return lines


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key) else _toml_string(key)


def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's, but TOML refuses \\u surrogate pairs and a raw DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + (f" {items} " if items else "") + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return _toml_string(mask_url(str(value)))  # a database's or Redis's password is not printed


if __name__ == "__main__":  # pragma: no cover
    main()
