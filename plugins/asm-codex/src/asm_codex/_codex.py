"""The ``codex`` provider (see the package docstring and docs/providers.md)."""

from __future__ import annotations

from typing import Any, Final

import attrs

from asm import AsmError, Capabilities, RunInput, RunResult, TokenUsage, parse_options
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
from asm.ports import Emit
from asm.process import (
    CLIOptions,
    CLIProcess,
    JsonLineReader,
    build_env,
    check_cwd,
    classify_failure,
    find_executable,
    open_cli_process,
    run_options,
)

__all__ = ["CodexOptions", "CodexProvider", "create_provider"]

INSTALL_HINT: Final = "npm install -g @openai/codex"

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


class CodexProvider:
    """Runs ``codex exec --json``; see :class:`CodexOptions`."""

    name = "codex"

    def __init__(self, options: CodexOptions | None = None) -> None:
        self.options = _checked(options or CodexOptions(), invalid="invalid_config")
        self._capabilities = Capabilities(
            streaming=True, tools=True, thinking=True, native_resume=True, code_execution=True, file_access=True
        )

    def capabilities(self) -> Capabilities:
        """Tools, reasoning, code execution and file access; resumable threads."""
        return self._capabilities

    def model_for(self, run: RunInput) -> str | None:
        """The run's ``model`` option, else ``model`` from ``[providers.codex]``;
        ``None`` when neither is set (codex's own config.toml decides, and its
        stream does not say what it picked)."""
        model = run.options.get("model", self.options.model)
        return model if isinstance(model, str) and model else None

    def command(self, options: CodexOptions, resume: str | None) -> tuple[list[str], dict[str, str]]:
        """The argv (without the executable) and extra env of a run."""
        sdk_args, sdk_env = options.sdk_args(self.name)
        argv = ["exec", "--json"]
        if options.skip_git_repo_check:
            argv.append("--skip-git-repo-check")
        if options.model:
            argv += ["--model", options.model]
        if options.permission_mode:
            argv += PERMISSION_MODES[options.permission_mode]
        for key, value in options.config.items():
            argv += ["-c", f"{key}={_toml(value)}"]
        argv += sdk_args
        if resume:
            argv += ["resume", resume]
        argv.append("-")  # the prompt comes on stdin: no argv length limit, no quoting
        return argv, sdk_env

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run codex on the prompt, translating its JSONL stream into events."""
        options, extra = run_options(run, self.options, self.name, extra=("resume",))
        options = _checked(options, invalid="invalid_input")
        resume = extra.get("resume")
        if resume is not None and not isinstance(resume, str):
            raise AsmError("invalid_input", f"run option 'resume' must be a codex thread id string, not {resume!r}")
        args, sdk_env = self.command(options, resume)
        env = build_env(extra_allow=(*INHERITED, *options.inherit_env), set={**options.env, **sdk_env})
        exe = find_executable(options.path or "codex", provider=self.name, install_hint=INSTALL_HINT, env=env)
        cwd = check_cwd(options.cwd, provider=self.name)
        prompt = run.prompt
        if options.system_prompt:
            prompt = f"{options.system_prompt}\n\n{prompt}"
        state = _Stream(options.max_turns, options.model)
        async with open_cli_process(
            [exe, *args],
            provider=self.name,
            cwd=cwd,
            env=env,
            stdin=prompt.encode(),
            timeout=options.timeout,
            terminate_grace=options.terminate_grace,
            max_line_bytes=options.max_line_bytes,
            error_text_max_bytes=emit.error_text_max_bytes,
            error_text_max_lines=emit.error_text_max_lines,
        ) as proc:
            reader = JsonLineReader(proc, emit)
            while batch := await reader.receive():
                for line in batch:
                    for data in state.translate(line):
                        await emit(data)
                if state.over_turns:
                    raise proc.error(
                        "max_turns",
                        f"codex went past max_turns={options.max_turns}; asm stopped it",
                    )
            code = await proc.wait()
            if state.failure is not None:
                raise proc.error("turn_failed", state.failure, code=classify_failure(state.failure))
            if code != 0:
                raise _exit_error(proc, code)
        metadata: dict[str, Any] = {}
        if state.thread_id:
            metadata = {"thread_id": state.thread_id, "cli_session_id": state.thread_id}
        return RunResult(
            output=state.output,
            stop_reason="completed",
            usage=state.usage,
            model=options.model,
            metadata=metadata,
        )


def _exit_error(proc: CLIProcess, code: int) -> AsmError:
    stderr, _ = proc.stderr_text()
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    message = f"codex exited with status {code}" + (f": {last}" if last else "")
    return proc.error("exit", message, code=classify_failure(last) if last else "provider_error")


class _Stream:
    """One run's translation state: codex events in, asm payloads out."""

    def __init__(self, max_turns: int | None, model: str | None = None) -> None:
        self.max_turns = max_turns
        #: the model asked for (codex's stream never names one): its tokens are priced by it
        self.model = model
        self.thread_id: str | None = None
        self.output = ""
        self.usage = TokenUsage()
        self.turns = 0
        self.started: dict[str, str] = {}
        self.failure: str | None = None

    @property
    def over_turns(self) -> bool:
        return self.max_turns is not None and self.turns > self.max_turns

    def translate(self, line: dict[str, Any]) -> list[EventData]:
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


def _checked(options: CodexOptions, *, invalid: str) -> CodexOptions:
    if options.permission_mode is not None and options.permission_mode not in PERMISSION_MODES:
        raise AsmError(
            invalid,
            f"codex permission_mode {options.permission_mode!r} is not one of {', '.join(PERMISSION_MODES)}",
            details={"option": "permission_mode"},
        )
    if options.max_turns is not None and options.max_turns < 1:
        raise AsmError(invalid, f"codex max_turns must be >= 1, not {options.max_turns}")
    for value in options.config.values():
        _toml(value)
    options.sdk_args("codex")
    return options


def create_provider(config: dict[str, Any]) -> CodexProvider:
    """The factory: ``[providers.codex]`` -> a :class:`CodexProvider`."""
    return CodexProvider(parse_options(CodexOptions, config, "codex provider"))
