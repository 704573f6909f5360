"""The ``claude-code`` provider: the Claude Code CLI
(``claude -p --output-format stream-json --verbose``) as a run.

Each run starts the CLI in its own process group with the prompt on stdin and
maps its stream-json lines onto asm's events (see
:class:`asm.process.StreamJsonTranslator`): text (token by token with
``partial_messages``, the default), thinking, tool calls and their results,
token usage and the cost Claude Code reports. The session id lands in
``run.result.metadata["session_id"]``; pass it back as the run option
``resume`` to continue that session (``--resume``). Options and the flags they
become: docs/providers.md.
"""

from __future__ import annotations

import os
from typing import Any, Final

import attrs

from asm import AsmError, Capabilities, RunInput, RunResult, parse_options
from asm.ports import Emit
from asm.process import (
    CLIOptions,
    JsonLineReader,
    StreamJsonTranslator,
    build_env,
    check_cwd,
    find_executable,
    open_cli_process,
    run_options,
)

__all__ = ["ClaudeCodeOptions", "ClaudeCodeProvider", "create_code_provider"]

INSTALL_HINT: Final = "npm install -g @anthropic-ai/claude-code"

#: Variables the CLI inherits besides asm's default allow-list.
INHERITED: Final = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_MAX_RETRIES",
)

#: The values of Claude Code's ``--permission-mode``.
PERMISSION_MODES: Final = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk")

#: How often Claude Code retries a failed API call (429, 5xx, 529 overloaded) unless told
#: otherwise. Its own default, 10 with exponential backoff, keeps a run waiting in silence for
#: minutes on an overloaded API; a few retries ride out a blip, and the run then fails
#: retryably, so asm's own retry or failover decides what happens next.
DEFAULT_MAX_RETRIES: Final = 3

#: The variable Claude Code reads its retry count from.
MAX_RETRIES_ENV: Final = "CLAUDE_CODE_MAX_RETRIES"


@attrs.frozen
class ClaudeCodeOptions(CLIOptions):
    """The ``[providers.claude-code]`` config table (see :class:`asm.process.CLIOptions`)."""

    #: Added to Claude Code's system prompt (``--append-system-prompt``);
    #: ``system_prompt`` replaces it (``--system-prompt``).
    append_system_prompt: str | None = None
    #: ``--allowedTools`` / ``--disallowedTools`` (e.g. ``"Bash(git:*)"``, ``"Edit"``).
    allowed_tools: list[str] = attrs.field(factory=list)
    disallowed_tools: list[str] = attrs.field(factory=list)
    #: Stream text token by token (``--include-partial-messages``).
    partial_messages: bool = True
    #: Retries of a failed API call (``CLAUDE_CODE_MAX_RETRIES``); ``None``: the variable as
    #: set in asm's environment, else :data:`DEFAULT_MAX_RETRIES`.
    max_retries: int | None = None


class ClaudeCodeProvider:
    """Runs ``claude -p --output-format stream-json --verbose``; see :class:`ClaudeCodeOptions`."""

    name = "claude-code"

    def __init__(self, options: ClaudeCodeOptions | None = None) -> None:
        self.options = _checked(options or ClaudeCodeOptions(), invalid="invalid_config")
        self._capabilities = Capabilities(
            streaming=True, tools=True, thinking=True, native_resume=True, code_execution=True, file_access=True
        )

    def capabilities(self) -> Capabilities:
        """Tools, thinking, code execution and file access; resumable sessions."""
        return self._capabilities

    def model_for(self, run: RunInput) -> str | None:
        """The run's ``model`` option, else ``model`` from ``[providers.claude-code]``;
        ``None`` when neither is set (Claude Code picks, and its ``init`` line says which)."""
        model = run.options.get("model", self.options.model)
        return model if isinstance(model, str) and model else None

    def command(self, options: ClaudeCodeOptions, resume: str | None) -> tuple[list[str], dict[str, str]]:
        """The argv (without the executable) and extra env of a run; the prompt goes on stdin."""
        sdk_args, sdk_env = options.sdk_args(self.name)
        argv = ["-p", "--output-format", "stream-json", "--verbose"]
        if options.partial_messages:
            argv.append("--include-partial-messages")
        if options.model:
            argv += ["--model", options.model]
        if options.permission_mode:
            argv += ["--permission-mode", options.permission_mode]
        if options.max_turns is not None:
            argv += ["--max-turns", str(options.max_turns)]
        if options.system_prompt:
            argv += ["--system-prompt", options.system_prompt]
        if options.append_system_prompt:
            argv += ["--append-system-prompt", options.append_system_prompt]
        if options.allowed_tools:
            argv += ["--allowedTools", ",".join(options.allowed_tools)]
        if options.disallowed_tools:
            argv += ["--disallowedTools", ",".join(options.disallowed_tools)]
        if resume:
            argv += ["--resume", resume]
        return argv + sdk_args, sdk_env

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run Claude Code on the prompt, translating its stream-json into events."""
        options, extra = run_options(run, self.options, self.name, extra=("resume",))
        options = _checked(options, invalid="invalid_input")
        if run.denied_tools or run.allowed_tools is not None:
            # The run's policies, as Claude Code's own flags: a denied tool is never started.
            allowed = options.allowed_tools if run.allowed_tools is None else list(run.allowed_tools)
            denied = [*options.disallowed_tools, *(t for t in run.denied_tools if t not in options.disallowed_tools)]
            options = attrs.evolve(options, allowed_tools=allowed, disallowed_tools=denied)
        resume = extra.get("resume")
        if resume is not None and not isinstance(resume, str):
            raise AsmError("invalid_input", f"run option 'resume' must be a Claude Code session id, not {resume!r}")
        args, sdk_env = self.command(options, resume)
        retries = _retries(options)
        env = build_env(extra_allow=(*INHERITED, *options.inherit_env), set={**retries, **options.env, **sdk_env})
        exe = find_executable(options.path or "claude", provider=self.name, install_hint=INSTALL_HINT, env=env)
        cwd = check_cwd(options.cwd, provider=self.name)
        stream = StreamJsonTranslator(self.name)
        async with open_cli_process(
            [exe, *args],
            provider=self.name,
            cwd=cwd,
            env=env,
            stdin=run.prompt.encode(),
            timeout=options.timeout,
            terminate_grace=options.terminate_grace,
            max_line_bytes=options.max_line_bytes,
            error_text_max_bytes=emit.error_text_max_bytes,
            error_text_max_lines=emit.error_text_max_lines,
        ) as proc:
            reader = JsonLineReader(proc, emit)
            while batch := await reader.receive():
                for data in stream.translate(batch):
                    await emit(data)
            stream.check_ended(proc, await proc.wait())
        return stream.result()


def _checked(options: ClaudeCodeOptions, *, invalid: str) -> ClaudeCodeOptions:
    if options.permission_mode is not None and options.permission_mode not in PERMISSION_MODES:
        raise AsmError(
            invalid,
            f"claude-code permission_mode {options.permission_mode!r} is not one of {', '.join(PERMISSION_MODES)}",
            details={"option": "permission_mode"},
        )
    if options.max_turns is not None and options.max_turns < 1:
        raise AsmError(invalid, f"claude-code max_turns must be >= 1, not {options.max_turns}")
    if options.max_retries is not None and options.max_retries < 0:
        raise AsmError(
            invalid,
            f"claude-code max_retries must be >= 0 (0: fail at the first API error), not {options.max_retries}",
            details={"option": "max_retries"},
        )
    options.sdk_args("claude-code")
    return options


def _retries(options: ClaudeCodeOptions) -> dict[str, str]:
    """``CLAUDE_CODE_MAX_RETRIES`` for the CLI: ``max_retries`` if set, else the
    variable as asm's environment has it (inherited as is), else the default.
    ``env`` / ``sdk_opts.env`` setting it win over all of these."""
    if options.max_retries is not None:
        return {MAX_RETRIES_ENV: str(options.max_retries)}
    if MAX_RETRIES_ENV in os.environ:
        return {}
    return {MAX_RETRIES_ENV: str(DEFAULT_MAX_RETRIES)}


def create_code_provider(config: dict[str, Any]) -> ClaudeCodeProvider:
    """The factory: ``[providers.claude-code]`` -> a :class:`ClaudeCodeProvider`."""
    return ClaudeCodeProvider(parse_options(ClaudeCodeOptions, config, "claude-code provider"))
