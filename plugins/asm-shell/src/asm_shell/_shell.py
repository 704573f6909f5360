"""The ``shell`` provider (see the package docstring and docs/providers.md)."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from asm import AsmError, Capabilities, RunInput, RunResult
from asm.events import MessageStreamed
from asm.ports import Emit
from asm.process import DEFAULT_TERMINATE_GRACE, CLIProcess, CLIProvider, IncrementalText, check_cwd

__all__ = ["ShellOptions", "ShellProvider", "create_provider"]

#: Per-run options (``run_once(..., options={...})``) the provider understands.
RUN_OPTIONS: Final = frozenset({"argv", "cwd", "stdin", "timeout", "model"})


@attrs.frozen
class ShellOptions:
    """The ``[providers.shell]`` config table."""

    #: Run the prompt through ``path`` (default ``/bin/sh``) ``-c``; without it,
    #: the prompt is split into an argv list and run directly.
    shell: bool = False
    #: Program names (or absolute paths) a run may execute; ``None``: any.
    allowed_commands: list[str] | None = None
    #: The shell for ``shell = true``.
    path: str = "/bin/sh"
    #: Working directory of every command (default: asm's).
    cwd: str | None = None
    #: Variables set for the command, on top of the inherited allow-list.
    env: dict[str, str] = attrs.field(factory=dict)
    #: More variable names the command inherits from asm's environment.
    inherit_env: list[str] = attrs.field(factory=list)
    #: Seconds before the command is stopped and the run fails (``provider_timeout``).
    timeout: float | None = None
    #: Seconds between SIGTERM and SIGKILL when a command is stopped.
    terminate_grace: float = DEFAULT_TERMINATE_GRACE
    #: The run's output keeps the last this many bytes of stdout.
    max_output_bytes: int = 1024 * 1024


class ShellProvider(CLIProvider[ShellOptions]):
    """Runs the prompt as a command; see :class:`ShellOptions`."""

    name = "shell"
    options_type = ShellOptions
    install_hint = "check the command's spelling and PATH"
    supports = Capabilities(streaming=True, code_execution=True, file_access=True, takes_argv=True)

    def checked(self, options: ShellOptions, *, invalid: str) -> ShellOptions:
        """``allowed_commands`` cannot go with ``shell = true``."""
        del invalid
        if options.shell and options.allowed_commands is not None:
            raise AsmError(
                "invalid_config",
                "invalid shell provider config: allowed_commands cannot be enforced on shell strings "
                "(a string can chain any commands); drop 'shell = true' or 'allowed_commands'",
                details={"options": ["shell", "allowed_commands"]},
            )
        return options

    def command(self, run: RunInput) -> list[str]:
        """The argv a run executes (checked against ``allowed_commands``)."""
        _check_run_options(run.options)
        given = run.options.get("argv")
        if given is not None:
            argv = _checked_argv(given)
        elif self.options.shell:
            argv = [self.options.path, "-c", run.prompt]
        else:
            try:
                argv = shlex.split(run.prompt)
            except ValueError as exc:
                raise AsmError(
                    "invalid_input", f"cannot split the command {run.prompt!r} into arguments: {exc}"
                ) from None
        if not argv:
            raise AsmError("invalid_input", "the command is empty; the prompt is the command to run")
        if any("\0" in argument for argument in argv):
            where = "run option 'argv'" if given is not None else "the command"
            raise AsmError(
                "invalid_input",
                f"{where} contains a NUL character, which no program can receive as an argument; remove it",
            )
        allowed = self.options.allowed_commands
        if allowed is not None and argv[0] not in allowed and Path(argv[0]).name not in allowed:
            raise AsmError(
                "tool_permission_denied",
                f"command {argv[0]!r} is not in allowed_commands ({', '.join(allowed) or 'none'}); "
                "add it to [providers.shell] allowed_commands to run it",
                details={"command": argv[0], "allowed_commands": list(allowed)},
            )
        return argv

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run the command, streaming stdout and stderr; fail on a non-zero exit."""
        options = self.options
        argv = self.command(run)
        cwd_option = run.options.get("cwd")
        cwd = check_cwd(cwd_option, provider=self.name, code="invalid_input") if cwd_option else None
        cwd = cwd or check_cwd(options.cwd, provider=self.name)
        env = self.environment(options, options.env)
        argv[0] = self.executable(argv[0], env)
        stdin = run.options.get("stdin")
        output = _Tail(options.max_output_bytes)
        async with self.open_process(
            argv,
            emit,
            options,
            env=env,
            cwd=cwd,
            timeout=run.options.get("timeout", options.timeout),
            stdin=stdin.encode() if isinstance(stdin, str) else None,
            merge_output=True,
        ) as proc:
            assert proc.output_chunks is not None
            decoders = {"stdout": IncrementalText(), "stderr": IncrementalText()}
            async for stream, chunk in proc.output_chunks:
                if text := decoders[stream].feed(chunk):
                    await _stream(emit, output, stream, text)
            for stream, decoder in decoders.items():
                if text := decoder.flush():
                    await _stream(emit, output, stream, text)
            code = await proc.wait()
            if code != 0:
                raise _exit_error(proc, argv, code)
        return RunResult(
            output=output.text(),
            stop_reason="exit",
            metadata={"exit_code": code, "argv": argv, "output_truncated": output.dropped > 0},
        )


def _check_run_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - RUN_OPTIONS)
    if unknown:
        raise AsmError(
            "invalid_input",
            f"the shell provider does not understand run option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; it takes {', '.join(sorted(RUN_OPTIONS))}",
            details={"unknown": unknown},
        )


def _checked_argv(given: object) -> list[str]:
    """The run option ``argv`` as a list, or ``invalid_input`` saying what to pass instead.

    Each element is one argument, passed to the program as it is: nothing is joined,
    split, quoted or expanded."""
    fix = "pass a list of strings, e.g. options={'argv': ['printf', '%s', 'a b']}"
    if isinstance(given, str):
        raise AsmError(
            "invalid_input",
            f"run option 'argv' must be a list of strings, not a string ({given!r}); {fix}, "
            "or give a command line as the prompt to have it split",
        )
    if not isinstance(given, list | tuple):
        raise AsmError(
            "invalid_input", f"run option 'argv' must be a list of strings, not {type(given).__name__}; {fix}"
        )
    if not given:
        raise AsmError("invalid_input", f"run option 'argv' is empty; {fix}")
    for index, argument in enumerate(given):
        if not isinstance(argument, str):
            raise AsmError(
                "invalid_input",
                f"run option 'argv': argument {index} is {type(argument).__name__} ({argument!r}), not a string; {fix}",
                details={"index": index},
            )
    return list(given)


def _exit_error(proc: CLIProcess, argv: list[str], code: int) -> AsmError:
    program = Path(argv[0]).name
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return proc.error("signal", f"command {program!r} was killed by {name}")
    return proc.error("exit", f"command {program!r} exited with status {code}")


async def _stream(emit: Emit, output: _Tail, stream: str, text: str) -> None:
    if stream == "stdout":
        output.add(text)
    await emit(MessageStreamed(text, stream=stream))


class _Tail:
    """The last ``limit`` characters of a text stream (roughly bytes; counts what it drops)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.limit:
            self._compact()

    def _compact(self) -> None:
        whole = "".join(self.parts)
        keep = whole[-self.limit :]
        self.dropped += len(whole) - len(keep)
        self.parts, self.size = [keep], len(keep)

    def text(self) -> str:
        self._compact()
        return "".join(self.parts)


def create_provider(config: dict[str, Any]) -> ShellProvider:
    """The factory: ``[providers.shell]`` -> a :class:`ShellProvider`."""
    return ShellProvider.from_config(config)
