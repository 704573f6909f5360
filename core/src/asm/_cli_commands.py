"""The handlers of asm-core's own commands (``asm run``, ``asm plugins``, ``asm config show``).

:mod:`asm.cli` builds the command line from light modules only and imports this one when
a command runs: ``asm --help`` never pays for trio, the runtime or a provider.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time
from typing import Any, Final, TextIO

import trio

from asm._cli_view import EventView, open_event_view, output_lost, pick_renderer
from asm._signals import cancelled_on_signals
from asm.cli import READER_GONE, _reader_left
from asm.config import LoadedConfig, load_config
from asm.errors import AsmError
from asm.events import ApprovalRequested, Event, MessageStreamed
from asm.hookspecs import hookimpl
from asm.model import Run
from asm.plugins import PluginRegistry
from asm.ports import Provider
from asm.redaction import mask_url
from asm.runtime import Runtime, configured, open_runtime
from asm.serde import event_to_json
from asm.states import SessionStatus

__all__ = ["cmd_config_show", "cmd_plugins", "cmd_run", "render_config", "store_location"]


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


def cmd_run(args: argparse.Namespace, *, registry: PluginRegistry, out: TextIO, err: TextIO) -> int:
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
        lost = reader_gone or output_lost(view)
        if lost:
            _reader_left(out)  # the terminal went away; the run was recorded all the same
        elif not args.json and view is None:
            out.write("\n")
        run.raise_for_status()  # a failed run's own status says more than the lost output
        return READER_GONE if lost else 0

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


def cmd_plugins(args: argparse.Namespace, *, registry: PluginRegistry, out: TextIO) -> int:
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


def cmd_config_show(args: argparse.Namespace, *, registry: PluginRegistry, out: TextIO) -> int:
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
