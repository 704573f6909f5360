"""The CLI-agent provider base: :class:`CLIProvider` (any provider that runs a
command) and :class:`CLIAgentProvider` (an agent CLI printing JSON lines), with
the options every agent CLI takes (:class:`CLIOptions`, :func:`run_options`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from asm.continuity import replay_prompt
from asm.errors import AsmError
from asm.model import Capabilities, RunInput, RunResult
from asm.plugins import parse_options

from ._runner import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_TERMINATE_GRACE,
    CLIProcess,
    build_env,
    check_cwd,
    find_executable,
    open_cli_process,
)
from ._translate import JsonLineReader, LineTranslator

if TYPE_CHECKING:
    from typing import Self

    from asm.ports import Emit

T = TypeVar("T")


@attrs.frozen
class CLIOptions:
    """The options every CLI agent provider takes (its config table; a provider
    subclasses this with its own). Each provider's section of docs/providers.md
    says which CLI flag each one becomes."""

    #: The executable: a name looked up on PATH, or a path.
    path: str | None = None
    model: str | None = None
    #: The CLI's own permission / sandbox mode (values differ per CLI).
    permission_mode: str | None = None
    max_turns: int | None = None
    system_prompt: str | None = None
    #: Working directory of the CLI (default: asm's).
    cwd: str | None = None
    #: Escape hatch: ``{"args": [extra CLI flags], "env": {VAR: value}}``.
    sdk_opts: dict[str, Any] = attrs.field(factory=dict)
    #: Variables set for the CLI, on top of the inherited allow-list.
    env: dict[str, str] = attrs.field(factory=dict)
    #: More variable names the CLI inherits from asm's environment.
    inherit_env: list[str] = attrs.field(factory=list)
    #: Seconds before the CLI is stopped and the run fails (``provider_timeout``).
    timeout: float | None = None
    terminate_grace: float = DEFAULT_TERMINATE_GRACE
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    def sdk_args(self, provider: str) -> tuple[list[str], dict[str, str]]:
        """``sdk_opts`` checked: (extra args, extra env)."""
        unknown = sorted(set(self.sdk_opts) - {"args", "env"})
        if unknown:
            raise AsmError(
                "invalid_config",
                f"invalid {provider} provider config: unknown sdk_opts key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; sdk_opts takes 'args' (a list of CLI flags) and 'env' (a table)",
                details={"unknown": unknown},
            )
        args = self.sdk_opts.get("args", [])
        env = self.sdk_opts.get("env", {})
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise AsmError(
                "invalid_config", f"invalid {provider} provider config: sdk_opts.args must be a list of strings"
            )
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise AsmError("invalid_config", f"invalid {provider} provider config: sdk_opts.env must be a string table")
        return list(args), dict(env)


def run_options(run: RunInput, options: T, provider: str, *, extra: Iterable[str] = ()) -> tuple[T, dict[str, Any]]:
    """Apply a run's options (``run_once(..., options={...})``) over the
    provider's config: those naming a field of ``options`` (an attrs instance)
    replace it; those in ``extra`` (e.g. ``resume``) come back in the dict;
    any other is ``invalid_input`` naming it."""
    fields = {field.name for field in attrs.fields(type(options))}  # type: ignore[arg-type]
    allowed = fields | set(extra)
    unknown = sorted(set(run.options) - allowed)
    if unknown:
        raise AsmError(
            "invalid_input",
            f"the {provider} provider does not understand run option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; it takes {', '.join(sorted(allowed))}",
            details={"unknown": unknown},
        )
    overrides = {k: v for k, v in run.options.items() if k in fields}
    rest = {k: v for k, v in run.options.items() if k not in fields}
    if not overrides:
        return options, rest
    from asm.serde import converter, structure

    merged = {**converter.unstructure(options), **overrides}
    try:
        return structure(merged, type(options), what=f"{provider} run options"), rest
    except AsmError as exc:
        raise AsmError("invalid_input", exc.message) from None


class ProcessOptions(Protocol):
    """What :class:`CLIProvider` reads from any provider's options."""

    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def inherit_env(self) -> Sequence[str]: ...
    @property
    def terminate_grace(self) -> float: ...


OptionsT = TypeVar("OptionsT", bound=ProcessOptions)
AgentOptionsT = TypeVar("AgentOptionsT", bound=CLIOptions)

#: How :attr:`CLIAgentProvider.flags` turns an option into arguments: a flag
#: (``"--model"``), or an enumeration: each allowed value -> its arguments.
Flag = str | Mapping[str, Sequence[str]]


class CLIProvider(Generic[OptionsT]):
    """The base of a provider that runs a command (``asm-shell``; through
    :class:`CLIAgentProvider`, every agent CLI): its name, executable and
    install hint, the environment it inherits, its options and capabilities,
    and the one way to start its process. A subclass declares the class
    attributes and writes :meth:`execute` with :meth:`environment`,
    :meth:`executable` and :meth:`open_process` (:class:`CLIAgentProvider`
    writes it for JSON-line agents).
    """

    #: The provider's registered name (errors and config tables use it).
    name: str
    #: The attrs class of its ``[providers.<name>]`` table (:meth:`from_config`).
    options_type: ClassVar[type[Any]]
    #: The executable looked up on PATH when the options' ``path`` is not set.
    program: ClassVar[str] = ""
    #: How to install the executable, for the error that it is missing.
    install_hint: ClassVar[str] = ""
    #: Variables the child inherits besides :data:`asm.process.DEFAULT_ENV_ALLOWLIST`
    #: (and the options' ``inherit_env``): the credentials and settings the CLI reads.
    inherited_env: ClassVar[tuple[str, ...]] = ()
    #: What :meth:`capabilities` answers.
    supports: ClassVar[Capabilities] = Capabilities(streaming=True)

    def __init__(self, options: OptionsT | None = None) -> None:
        self.options: OptionsT = self.checked(
            options if options is not None else self.options_type(), invalid="invalid_config"
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self:
        """The provider factory: its config table -> a provider (an unknown key
        or a wrong type is ``invalid_config``)."""
        return cls(parse_options(cls.options_type, config, f"{cls.name} provider"))

    def checked(self, options: OptionsT, *, invalid: str) -> OptionsT:
        """``options`` if they are valid, else ``AsmError(invalid)`` saying what to
        fix (``invalid_config`` for the config table, ``invalid_input`` for a run's)."""
        del invalid
        return options

    def capabilities(self) -> Capabilities:
        """What the provider supports (:attr:`supports`)."""
        return self.supports

    def model_for(self, run: RunInput) -> str | None:
        """The run's ``model`` option, else the configured ``model``; ``None``
        when neither is set (the CLI picks, and its stream may say which)."""
        model = run.options.get("model", getattr(self.options, "model", None))
        return model if isinstance(model, str) and model else None

    def environment(self, options: OptionsT, variables: Mapping[str, str]) -> dict[str, str]:
        """The child's environment: the default allow-list, :attr:`inherited_env`
        and the options' ``inherit_env`` from asm's, then ``variables`` on top."""
        return build_env(extra_allow=(*self.inherited_env, *options.inherit_env), set=variables)

    def executable(self, program: str, env: Mapping[str, str]) -> str:
        """The absolute path of ``program`` on the child's PATH, or
        ``provider_not_found`` with :attr:`install_hint`."""
        return find_executable(program, provider=self.name, install_hint=self.install_hint, env=env)

    def open_process(
        self,
        argv: Sequence[str],
        emit: Emit,
        options: OptionsT,
        *,
        env: Mapping[str, str],
        cwd: str | None,
        timeout: float | None,
        stdin: bytes | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        merge_output: bool = False,
    ) -> AbstractAsyncContextManager[CLIProcess]:
        """:func:`~asm.process.open_cli_process` for one run: the options'
        ``terminate_grace``, stderr cut to the run's error-text limits."""
        return open_cli_process(
            argv,
            provider=self.name,
            cwd=cwd,
            env=env,
            stdin=stdin,
            timeout=timeout,
            terminate_grace=options.terminate_grace,
            max_line_bytes=max_line_bytes,
            error_text_max_bytes=emit.error_text_max_bytes,
            error_text_max_lines=emit.error_text_max_lines,
            merge_output=merge_output,
        )

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run ``run``'s command, emitting its events (a subclass writes it)."""
        raise NotImplementedError


@attrs.frozen
class CLICommand:
    """What :meth:`CLIAgentProvider.command` builds for one run."""

    #: The arguments after the executable; the options' ``sdk_opts.args`` follow them.
    args: list[str]
    #: Arguments after ``sdk_opts.args`` (positional ones, e.g. ``resume <id> -``).
    tail: list[str] = attrs.field(factory=list)
    #: Text for the CLI's stdin (the prompt, for a CLI that reads it there); ``None``: ``/dev/null``.
    stdin: str | None = None
    #: Variables the provider sets; the options' ``env`` and ``sdk_opts.env`` win over them.
    env: dict[str, str] = attrs.field(factory=dict)


class CLIAgentProvider(CLIProvider[AgentOptionsT]):
    """The base of an agent-CLI provider: it runs the CLI once per run and
    translates the JSON objects it prints, line by line, into asm's events.

    A provider declares its class attributes (:attr:`name`, :attr:`options_type`
    - a :class:`CLIOptions` subclass -, :attr:`program`, :attr:`install_hint`,
    :attr:`inherited_env`, :attr:`flags`, and :attr:`resume_id` /
    :attr:`tool_lists` where its CLI has them) and supplies two methods:
    :meth:`command` (the argv) and :meth:`translator` (a
    :class:`~asm.process.LineTranslator`: line -> payloads). The base does the
    rest: option checks (enumerations from :attr:`flags`, ``max_turns``,
    ``sdk_opts``; more in :meth:`check`), a run's options over the config
    (:func:`run_options`), the run option ``resume``, the run's tool policies
    as the CLI's tool lists, finding the executable, the environment, the
    working directory, the process (:func:`~asm.process.open_cli_process`),
    JSON-line reading, ``max_turns``, and the errors of a failed run.
    """

    supports = Capabilities(
        streaming=True, tools=True, thinking=True, native_resume=True, code_execution=True, file_access=True
    )
    #: Option name -> how it becomes arguments (:meth:`option_args`): a flag, or
    #: an enumeration (allowed value -> its arguments; other values are refused).
    flags: ClassVar[Mapping[str, Flag]] = {}
    #: What the run option ``resume`` takes, for its error (``"a codex thread id
    #: string"``); ``None``: the CLI cannot resume and ``resume`` is not a run option.
    resume_id: ClassVar[str | None] = None
    #: What the CLI says (stderr or its error) when it no longer knows the conversation it was
    #: asked to resume (a regular expression, case-insensitive): the run's error is then
    #: ``resume_not_found``, and the manager replays the transcript instead.
    unknown_resume: ClassVar[str | None] = None
    #: The options' (allowed, denied) tool-list fields, if the CLI takes tool lists:
    #: a run's policies (``allowed_tools`` / ``denied_tools``) are applied to them.
    tool_lists: ClassVar[tuple[str, str] | None] = None

    def command(self, options: AgentOptionsT, prompt: str, resume: str | None) -> CLICommand:
        """The command of one run (options checked, the run's applied):
        arguments, stdin and environment; :meth:`option_args` builds the flags."""
        raise NotImplementedError

    def translator(self, options: AgentOptionsT) -> LineTranslator:
        """A fresh translator for one run's lines."""
        raise NotImplementedError

    def check(self, options: AgentOptionsT, *, invalid: str) -> None:
        """Refuse what else the provider's options cannot be (``AsmError(invalid)``)."""
        del options, invalid

    def checked(self, options: AgentOptionsT, *, invalid: str) -> AgentOptionsT:
        """``options`` checked: the enumerations of :attr:`flags`, ``max_turns``,
        :meth:`check`, ``sdk_opts``."""
        for option, flag in self.flags.items():
            value = getattr(options, option)
            if not isinstance(flag, str) and value is not None and value not in flag:
                raise AsmError(
                    invalid,
                    f"{self.name} {option} {value!r} is not one of {', '.join(flag)}",
                    details={"option": option},
                )
        if options.max_turns is not None and options.max_turns < 1:
            raise AsmError(invalid, f"{self.name} max_turns must be >= 1, not {options.max_turns}")
        self.check(options, invalid=invalid)
        options.sdk_args(self.name)
        return options

    def option_args(self, options: AgentOptionsT, *names: str) -> list[str]:
        """The arguments of the options ``names`` (default: all of :attr:`flags`),
        in order: ``None``, false, ``""`` and ``[]`` give nothing; ``True`` the
        flag alone; a list the flag and the items joined by commas; an
        enumeration its value's arguments; anything else the flag and the value."""
        args: list[str] = []
        for name in names or self.flags:
            flag, value = self.flags[name], getattr(options, name)
            if value is None or value is False or value == "" or value == []:
                continue
            if not isinstance(flag, str):
                args += flag[value]
            elif value is True:
                args.append(flag)
            elif isinstance(value, list):
                args += [flag, ",".join(map(str, value))]
            else:
                args += [flag, str(value)]
        return args

    def options_for(self, run: RunInput) -> tuple[AgentOptionsT, str | None]:
        """The options of ``run`` (its own over the config, checked, its tool
        policies applied) and the CLI session it resumes."""
        extra = ("resume",) if self.resume_id is not None else ()
        options, rest = run_options(run, self.options, self.name, extra=extra)
        options = self.checked(options, invalid="invalid_input")
        if self.tool_lists is not None and (run.denied_tools or run.allowed_tools is not None):
            # The run's policies, as the CLI's own flags: a denied tool is never started.
            allowed_field, denied_field = self.tool_lists
            listed: list[str] = getattr(options, denied_field)
            allowed = getattr(options, allowed_field) if run.allowed_tools is None else list(run.allowed_tools)
            denied = [*listed, *(tool for tool in run.denied_tools if tool not in listed)]
            lists: dict[str, Any] = {allowed_field: allowed, denied_field: denied}
            options = attrs.evolve(options, **lists)
        resume = rest.get("resume")
        if resume is not None and not isinstance(resume, str):
            raise AsmError("invalid_input", f"run option 'resume' must be {self.resume_id}, not {resume!r}")
        return options, resume

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run the CLI on the prompt, translating its JSON lines into events.

        The CLI resumes its own conversation when the run carries a resume id (native
        continuation, or the run option ``resume``); otherwise a replayed session's
        history goes into the prompt (:func:`asm.continuity.replay_prompt`)."""
        options, resume = self.options_for(run)
        if resume is None and self.resume_id is not None:
            resume = run.resume_id
        prompt = run.prompt if resume is not None else replay_prompt(run)
        try:
            return await self._execute(emit, options, self.command(options, prompt, resume))
        except AsmError as exc:
            if resume is None or self.unknown_resume is None or not _says(exc, self.unknown_resume):
                raise
            raise AsmError(
                "resume_not_found",
                f"{self.name} no longer knows the conversation {resume!r} it was asked to resume; "
                "continue without it (continuation='replay')",
                details=exc.details,
            ) from None

    async def _execute(self, emit: Emit, options: AgentOptionsT, command: CLICommand) -> RunResult:
        sdk_args, sdk_env = options.sdk_args(self.name)
        env = self.environment(options, {**command.env, **options.env, **sdk_env})
        exe = self.executable(options.path or self.program, env)
        cwd = check_cwd(options.cwd, provider=self.name)
        translator = self.translator(options)
        async with self.open_process(
            [exe, *command.args, *sdk_args, *command.tail],
            emit,
            options,
            env=env,
            cwd=cwd,
            timeout=options.timeout,
            stdin=command.stdin.encode() if command.stdin is not None else None,
            max_line_bytes=options.max_line_bytes,
        ) as proc:
            reader = JsonLineReader(proc, emit)
            while batch := await reader.receive():
                for data in translator.translate(batch):
                    await emit(data)
                if translator.over_turns:
                    limit = options.max_turns
                    raise proc.error("max_turns", f"{self.name} went past max_turns={limit}; asm stopped it")
            translator.check_ended(proc, await proc.wait())
        return translator.result()


def _says(error: AsmError, pattern: str) -> bool:
    """Whether ``error``'s message or the CLI's stderr it carries matches ``pattern``."""
    provider_error = error.details.get("provider_error")
    stderr = getattr(provider_error, "stderr", None) or ""
    return re.search(pattern, f"{error.message}\n{stderr}", re.IGNORECASE) is not None
