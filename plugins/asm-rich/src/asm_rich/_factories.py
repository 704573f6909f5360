"""The renderers' and the sink's options and factories (private; registered lazily by :mod:`asm_rich`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from asm.plugins import parse_options

if TYPE_CHECKING:
    from asm_rich._console import ConsoleSink
    from asm_rich._studio import StudioRenderer
    from asm_rich._verbose import VerboseRenderer

__all__ = ["StudioOptions", "VerboseOptions", "make_studio", "make_tty", "make_verbose"]


@attrs.frozen
class StudioOptions:
    """``[renderers.studio]``."""

    tool_output: Literal["summary", "preview", "full"] = "summary"
    thinking: bool = False
    #: unset: colours when the terminal has them (NO_COLOR / FORCE_COLOR honoured)
    color: bool | None = None
    show_spinner: bool = True


@attrs.frozen
class VerboseOptions:
    """``[renderers.verbose]``."""

    #: each value cut to this many characters (0: never cut)
    width: int = 80
    seq: bool = False
    color: bool | None = None


def make_studio(config: dict[str, Any]) -> StudioRenderer:
    from asm_rich._studio import StudioRenderer

    options = parse_options(StudioOptions, config, "studio renderer")
    return StudioRenderer(
        tool_output=options.tool_output,
        thinking=options.thinking,
        color=options.color,
        show_spinner=options.show_spinner,
    )


def make_verbose(config: dict[str, Any]) -> VerboseRenderer:
    from asm import AsmError
    from asm_rich._verbose import VerboseRenderer

    options = parse_options(VerboseOptions, config, "verbose renderer")
    if options.width < 0:
        raise AsmError("invalid_config", f"verbose renderer: width must be 0 or more, not {options.width}")
    return VerboseRenderer(width=options.width, seq=options.seq, color=options.color)


def make_tty(config: dict[str, Any]) -> ConsoleSink:
    from asm_rich._console import ConsoleSink

    parse_options(_NoOptions, config, "tty sink")
    # Called for every event by a runtime's rendering pipeline: a plain write, no thread hop each time.
    return ConsoleSink(threaded=False)


@attrs.frozen
class _NoOptions:
    pass
