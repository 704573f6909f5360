"""The ``codex`` provider (see the package docstring and docs/providers.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

import attrs

from asm import AsmError, RunResult, TokenUsage
from asm.events import (
    ErrorOccurred,
    EventData,
    MessageReceived,
    MessageStreamed,
    ThinkingStreamed,
    TokenUsageUpdated,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    TurnCompleted,
)
from asm.process import CLIAgentProvider, CLICommand, CLIOptions, CLIProcess, LineTranslator, classify_failure

__all__ = ["CodexOptions", "CodexProvider", "create_provider"]

#: Variables the CLI inherits besides asm's default allow-list.
INHERITED: Final = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT",
    "CODEX_HOME",
    "CODEX_API_KEY",
)

#: permission_mode -> the codex exec flags it becomes.
PERMISSION_MODES: Final = {
    "read-only": ["--sandbox", "read-only"],
    "workspace-write": ["--sandbox", "workspace-write"],
    "danger-full-access": ["--sandbox", "danger-full-access"],
    "full-auto": ["--full-auto"],
    "bypass": ["--dangerously-bypass-approvals-and-sandbox"],
}

#: Codex item types that are tool calls, and the tool name asm gives them.
TOOL_ITEMS: Final = {
    "command_execution": "command_execution",
    "file_change": "file_change",
    "mcp_tool_call": "mcp_tool_call",
    "web_search": "web_search",
}


@attrs.frozen
class CodexOptions(CLIOptions):
    """The ``[providers.codex]`` config table (see :class:`asm.process.CLIOptions`)."""

    #: Pass ``--skip-git-repo-check`` (codex refuses to run outside a git repository otherwise).
    skip_git_repo_check: bool = False
    #: ``-c key=value`` config overrides (values written as TOML).
    config: dict[str, Any] = attrs.field(factory=dict)


class CodexProvider(CLIAgentProvider[CodexOptions]):
    """Runs ``codex exec --json``; see :class:`CodexOptions`. Its stream does not
    name the model: ``model_for`` is the ``model`` option, else codex's own
    config.toml decides."""

    name = "codex"
    options_type = CodexOptions
    program = "codex"
    install_hint = "npm install -g @openai/codex"
    inherited_env = INHERITED
    flags: ClassVar = {
        "skip_git_repo_check": "--skip-git-repo-check",
        "model": "--model",
        "permission_mode": PERMISSION_MODES,
    }
    resume_id = "a codex thread id string"
    # codex exec resume <id> whose rollout is gone: "no rollout found for thread id <id>"
    unknown_resume = r"no rollout found|no saved session found|missing rollout path"

    def command(self, options: CodexOptions, prompt: str, resume: str | None) -> CLICommand:
        """``codex exec --json`` with the flags, ``-c`` overrides, then ``resume <id>`` and
        ``-``: the prompt (after the system prompt) comes on stdin, no argv limit, no quoting."""
        args = ["exec", "--json", *self.option_args(options)]
        for key, value in options.config.items():
            args += ["-c", f"{key}={_toml(value)}"]
        if options.system_prompt:
            prompt = f"{options.system_prompt}\n\n{prompt}"
        return CLICommand(args, [*(["resume", resume] if resume else []), "-"], stdin=prompt)

    def translator(self, options: CodexOptions) -> LineTranslator:
        """A run's :class:`_Stream`: codex's tokens are named and priced by the configured model."""
        return _Stream(options.max_turns, options.model)

    def check(self, options: CodexOptions, *, invalid: str) -> None:
        """Each ``config`` value must be writable as TOML."""
        del invalid
        for value in options.config.values():
            _toml(value)


class _Stream(LineTranslator):
    """One run's translation: codex events in, asm payloads out."""

    def __init__(self, max_turns: int | None, model: str | None = None) -> None:
        super().__init__("codex", max_turns=max_turns)
        #: the model asked for (codex's stream never names one): its tokens are priced by it
        self.model = model
        self.thread_id: str | None = None
        self.usage = TokenUsage()
        self.started: dict[str, str] = {}
        self.failure: str | None = None

    def translate(self, lines: Sequence[dict[str, Any]]) -> list[EventData]:
        out: list[EventData] = []
        for line in lines:
            out += self._line(line)
        return out

    def failed(self, proc: CLIProcess) -> AsmError | None:
        """A ``turn.failed`` / ``error`` line fails the run (kind ``turn_failed``)."""
        if self.failure is None:
            return None
        return proc.error("turn_failed", self.failure, code=classify_failure(self.failure))

    def result(self) -> RunResult:
        metadata: dict[str, Any] = {}
        if self.thread_id:
            metadata = {"thread_id": self.thread_id, "cli_session_id": self.thread_id}
        return RunResult(
            output=self.output,
            stop_reason="completed",
            usage=self.usage,
            model=self.model,
            metadata=metadata,
            resume_id=self.thread_id,
        )

    def _line(self, line: dict[str, Any]) -> list[EventData]:
        kind = line.get("type")
        if kind == "thread.started":
            self.thread_id = _str(line.get("thread_id")) or None
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = line.get("item")
            if isinstance(item, dict):
                return self._item(item, completed=kind == "item.completed")
        elif kind == "turn.completed":
            self.turns += 1
            usage = _usage(line.get("usage"))
            self.usage = self.usage + usage
            return [TokenUsageUpdated(usage, self.model), TurnCompleted(self.turns)]
        elif kind == "turn.failed":
            error = line.get("error")
            self.failure = _str(error.get("message")) if isinstance(error, dict) else "codex reported a failed turn"
        elif kind == "error":
            self.failure = self.failure or _str(line.get("message")) or "codex reported an error"
        return []

    def _item(self, item: dict[str, Any], *, completed: bool) -> list[EventData]:
        item_type = _str(item.get("type"))
        item_id = _str(item.get("id"))
        if item_type in TOOL_ITEMS:
            return self._tool(item, item_type, item_id, completed=completed)
        if not completed:
            return []
        if item_type == "agent_message":
            text = _str(item.get("text"))
            self.output = text
            return [MessageStreamed(text), MessageReceived(text)] if text else []
        if item_type == "reasoning":
            text = _str(item.get("text"))
            return [ThinkingStreamed(text)] if text else []
        if item_type == "error":
            return [ErrorOccurred("provider_warning", f"codex: {_str(item.get('message'))}")]
        return []  # plan, todo_list, collab_tool_call and future item types: not in the catalog

    def _tool(self, item: dict[str, Any], item_type: str, item_id: str, *, completed: bool) -> list[EventData]:
        name = TOOL_ITEMS[item_type]
        if item_type == "mcp_tool_call":
            name = f"mcp:{_str(item.get('server'))}/{_str(item.get('tool'))}"
        events: list[EventData] = []
        if item_id not in self.started:
            self.started[item_id] = name
            events.append(ToolCallStarted(item_id, name, _tool_input(item_type, item)))
        if not completed:
            return events
        status = _str(item.get("status"))
        if item_type == "command_execution":
            exit_code = item.get("exit_code")
            output = _str(item.get("aggregated_output"))
            if status == "completed" and exit_code in (0, None):
                events.append(ToolCallCompleted(item_id, name, {"exit_code": exit_code, "output": output}))
            else:
                detail = f"exit code {exit_code}" if exit_code is not None else status or "failed"
                tail = output.strip()[-500:]
                events.append(ToolCallFailed(item_id, name, f"command {detail}" + (f": {tail}" if tail else "")))
        elif item_type == "mcp_tool_call":
            error = item.get("error")
            if isinstance(error, dict) or status == "failed":
                message = _str(error.get("message")) if isinstance(error, dict) else "failed"
                events.append(ToolCallFailed(item_id, name, message or "failed"))
            else:
                events.append(ToolCallCompleted(item_id, name, _json_value(item.get("result"))))
        elif status == "failed":
            events.append(ToolCallFailed(item_id, name, f"{item_type} failed"))
        else:
            result: dict[str, Any] = _tool_input(item_type, item) if item_type == "file_change" else {"status": status}
            events.append(ToolCallCompleted(item_id, name, result))
        return events


def _tool_input(item_type: str, item: dict[str, Any]) -> dict[str, Any]:
    if item_type == "command_execution":
        return {"command": _str(item.get("command"))}
    if item_type == "file_change":
        changes = item.get("changes")
        return {"changes": _json_value(changes) if isinstance(changes, list) else []}
    if item_type == "mcp_tool_call":
        return {
            "server": _str(item.get("server")),
            "tool": _str(item.get("tool")),
            "arguments": _json_value(item.get("arguments")),
        }
    return {"query": _str(item.get("query"))}


def _usage(raw: object) -> TokenUsage:
    if not isinstance(raw, dict):
        return TokenUsage()
    return TokenUsage(
        input_tokens=_int(raw.get("input_tokens")),
        output_tokens=_int(raw.get("output_tokens")),
        cache_read_tokens=_int(raw.get("cached_input_tokens")),
        cache_write_tokens=_int(raw.get("cache_write_input_tokens")),
    )


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _json_value(value: object) -> Any:
    """A plain JSON value (what the CLI printed is already JSON; this only guards the type)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise AsmError("invalid_config", f"codex config override value {value!r} must be a string, number, bool or list")


def create_provider(config: dict[str, Any]) -> CodexProvider:
    """The factory: ``[providers.codex]`` -> a :class:`CodexProvider`."""
    return CodexProvider.from_config(config)
