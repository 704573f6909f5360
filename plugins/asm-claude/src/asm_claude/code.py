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
from typing import Any, ClassVar, Final

import attrs

from asm import AsmError
from asm.process import CLIAgentProvider, CLICommand, CLIOptions, LineTranslator, StreamJsonTranslator

__all__ = ["ClaudeCodeOptions", "ClaudeCodeProvider", "create_code_provider"]

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


class ClaudeCodeProvider(CLIAgentProvider[ClaudeCodeOptions]):
    """Runs ``claude -p --output-format stream-json --verbose``; see :class:`ClaudeCodeOptions`.
    ``model_for`` is the ``model`` option, else Claude Code picks and its ``init`` line says which."""

    name = "claude-code"
    options_type = ClaudeCodeOptions
    program = "claude"
    install_hint = "npm install -g @anthropic-ai/claude-code"
    inherited_env = INHERITED
    flags: ClassVar = {
        "partial_messages": "--include-partial-messages",
        "model": "--model",
        "permission_mode": {mode: ["--permission-mode", mode] for mode in PERMISSION_MODES},
        "max_turns": "--max-turns",
        "system_prompt": "--system-prompt",
        "append_system_prompt": "--append-system-prompt",
        "allowed_tools": "--allowedTools",
        "disallowed_tools": "--disallowedTools",
    }
    resume_id = "a Claude Code session id"
    # claude -p --resume <id> with an id it does not have (or one from another directory)
    unknown_resume = r"no conversation found with session id"
    #: the run's policies become ``--allowedTools`` / ``--disallowedTools``: a denied tool never starts
    tool_lists = ("allowed_tools", "disallowed_tools")

    def command(self, options: ClaudeCodeOptions, prompt: str, resume: str | None) -> CLICommand:
        """``claude -p`` in stream-json with the flags and ``--resume``; the prompt on stdin."""
        args = ["-p", "--output-format", "stream-json", "--verbose", *self.option_args(options)]
        if resume:
            args += ["--resume", resume]
        return CLICommand(args, stdin=prompt, env=_retries(options))

    def translator(self, options: ClaudeCodeOptions) -> LineTranslator:
        """The stream-json translator (Claude Code enforces ``--max-turns`` itself)."""
        del options
        return StreamJsonTranslator(self.name)

    def check(self, options: ClaudeCodeOptions, *, invalid: str) -> None:
        """``max_retries`` must be >= 0."""
        if options.max_retries is not None and options.max_retries < 0:
            raise AsmError(
                invalid,
                f"claude-code max_retries must be >= 0 (0: fail at the first API error), not {options.max_retries}",
                details={"option": "max_retries"},
            )


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
    return ClaudeCodeProvider.from_config(config)
