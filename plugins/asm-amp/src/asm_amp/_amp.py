"""The ``amp`` provider (see the package docstring and docs/providers.md)."""

from __future__ import annotations

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

__all__ = ["AmpOptions", "AmpProvider", "create_provider"]

INSTALL_HINT: Final = "npm install -g @ampcode/cli"

#: Variables the CLI inherits besides asm's default allow-list.
INHERITED: Final = ("AMP_API_KEY", "AMP_URL", "AMP_SETTINGS_FILE")

#: permission_mode -> the amp flags it becomes.
PERMISSION_MODES: Final = {"default": [], "allow-all": ["--dangerously-allow-all"]}


@attrs.frozen
class AmpOptions(CLIOptions):
    """The ``[providers.amp]`` config table (see :class:`asm.process.CLIOptions`).

    ``model`` cannot be set: Amp picks its models by ``mode``."""

    #: Amp's agent mode (``--mode``: ``smart``, ``rush``, ...).
    mode: str | None = None
    #: Stream thinking blocks too (``--stream-json-thinking``).
    thinking: bool = False
    #: ``--settings-file``.
    settings_file: str | None = None


class AmpProvider:
    """Runs ``amp --execute --stream-json``; see :class:`AmpOptions`."""

    name = "amp"

    def __init__(self, options: AmpOptions | None = None) -> None:
        self.options = _checked(options or AmpOptions(), invalid="invalid_config")
        self._capabilities = Capabilities(
            streaming=True, tools=True, thinking=True, native_resume=True, code_execution=True, file_access=True
        )

    def capabilities(self) -> Capabilities:
        """Tools, thinking, code execution and file access; resumable threads."""
        return self._capabilities

    def command(self, options: AmpOptions, prompt: str, resume: str | None) -> tuple[list[str], dict[str, str]]:
        """The argv (without the executable) and extra env of a run."""
        sdk_args, sdk_env = options.sdk_args(self.name)
        argv = ["threads", "continue", resume] if resume else []
        if prompt.startswith("-"):
            prompt = " " + prompt  # never mistaken for a flag
        argv += ["--execute", prompt, "--stream-json-thinking" if options.thinking else "--stream-json"]
        if options.mode:
            argv += ["--mode", options.mode]
        if options.permission_mode:
            argv += PERMISSION_MODES[options.permission_mode]
        if options.settings_file:
            argv += ["--settings-file", options.settings_file]
        return argv + sdk_args, sdk_env

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        """Run amp on the prompt, translating its JSONL stream into events."""
        options, extra = run_options(run, self.options, self.name, extra=("resume",))
        options = _checked(options, invalid="invalid_input")
        resume = extra.get("resume")
        if resume is not None and not isinstance(resume, str):
            raise AsmError("invalid_input", f"run option 'resume' must be an amp thread id string, not {resume!r}")
        prompt = run.prompt
        if options.system_prompt:
            prompt = f"{options.system_prompt}\n\n{prompt}"
        args, sdk_env = self.command(options, prompt, resume)
        env = build_env(extra_allow=(*INHERITED, *options.inherit_env), set={**options.env, **sdk_env})
        exe = find_executable(options.path or "amp", provider=self.name, install_hint=INSTALL_HINT, env=env)
        cwd = check_cwd(options.cwd, provider=self.name)
        stream = StreamJsonTranslator(self.name, max_turns=options.max_turns)
        async with open_cli_process(
            [exe, *args],
            provider=self.name,
            cwd=cwd,
            env=env,
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
                if stream.over_turns:
                    raise proc.error("max_turns", f"amp went past max_turns={options.max_turns}; asm stopped it")
            stream.check_ended(proc, await proc.wait())
        return stream.result(with_cost=False)


def _checked(options: AmpOptions, *, invalid: str) -> AmpOptions:
    if options.model is not None:
        raise AsmError(
            invalid,
            "amp picks its model by mode; drop 'model' and set 'mode' (e.g. \"smart\" or \"rush\")",
            details={"option": "model"},
        )
    if options.permission_mode is not None and options.permission_mode not in PERMISSION_MODES:
        raise AsmError(
            invalid,
            f"amp permission_mode {options.permission_mode!r} is not one of {', '.join(PERMISSION_MODES)}",
            details={"option": "permission_mode"},
        )
    if options.max_turns is not None and options.max_turns < 1:
        raise AsmError(invalid, f"amp max_turns must be >= 1, not {options.max_turns}")
    options.sdk_args("amp")
    return options


def create_provider(config: dict[str, Any]) -> AmpProvider:
    """The factory: ``[providers.amp]`` -> an :class:`AmpProvider`."""
    return AmpProvider(parse_options(AmpOptions, config, "amp provider"))
