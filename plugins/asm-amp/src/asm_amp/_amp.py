"""The ``amp`` provider (see the package docstring and docs/providers.md)."""

from __future__ import annotations

from typing import Any, ClassVar, Final

import attrs

from asm import AsmError
from asm.process import CLIAgentProvider, CLICommand, CLIOptions, LineTranslator, StreamJsonTranslator

__all__ = ["AmpOptions", "AmpProvider", "create_provider"]

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


class AmpProvider(CLIAgentProvider[AmpOptions]):
    """Runs ``amp --execute --stream-json``; see :class:`AmpOptions`."""

    name = "amp"
    options_type = AmpOptions
    program = "amp"
    install_hint = "npm install -g @ampcode/cli"
    inherited_env = INHERITED
    flags: ClassVar = {"mode": "--mode", "permission_mode": PERMISSION_MODES, "settings_file": "--settings-file"}
    resume_id = "an amp thread id string"
    # amp threads continue <id> with an id it does not have: "Thread T-... not found"
    unknown_resume = r"thread\b.*\bnot found|no such thread"

    def command(self, options: AmpOptions, prompt: str, resume: str | None) -> CLICommand:
        """``[threads continue <id>] --execute <prompt>`` (after the system prompt; a
        leading space keeps a prompt starting with ``-`` from reading as a flag), then the flags."""
        if options.system_prompt:
            prompt = f"{options.system_prompt}\n\n{prompt}"
        if prompt.startswith("-"):
            prompt = " " + prompt  # never mistaken for a flag
        args = ["threads", "continue", resume] if resume else []
        args += ["--execute", prompt, "--stream-json-thinking" if options.thinking else "--stream-json"]
        return CLICommand([*args, *self.option_args(options)])

    def translator(self, options: AmpOptions) -> LineTranslator:
        """The stream-json translator; amp's result line carries no cost asm can trust."""
        return StreamJsonTranslator(self.name, max_turns=options.max_turns, with_cost=False)

    def check(self, options: AmpOptions, *, invalid: str) -> None:
        """``model`` is refused: amp picks its model by ``mode``."""
        if options.model is not None:
            raise AsmError(
                invalid,
                "amp picks its model by mode; drop 'model' and set 'mode' (e.g. \"smart\" or \"rush\")",
                details={"option": "model"},
            )


def create_provider(config: dict[str, Any]) -> AmpProvider:
    """The factory: ``[providers.amp]`` -> an :class:`AmpProvider`."""
    return AmpProvider.from_config(config)
