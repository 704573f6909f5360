"""The renderer part: ``template``, which shows the answer's text and how each run ended.

A renderer turns events into text for people (:class:`asm.ports.Renderer`):
``render(event) -> str`` (``""`` leaves an event out) and ``finish() -> str``,
the closing text when the stream ends. It may keep state between events. The
config key ``renderer`` chooses one; a runtime renders each stored event once
and hands the text to every sink that is switched on::

    renderer = "template"

    [renderers.template]
    show_endings = false

Its tests, ``tests/test_renderer.py``, drive it through a real runtime
(asm has no contract suite for renderers: their output is theirs to choose).
"""

from __future__ import annotations

from typing import Any

import attrs
from asm import Event, parse_options
from asm.events import MessageStreamed, RunCancelled, RunCompleted, RunFailed, RunTimeout

__all__ = ["TemplateRenderer", "TemplateRendererOptions", "create_renderer"]


@attrs.frozen
class TemplateRendererOptions:
    """The ``[renderers.template]`` config table; every key needs a default."""

    show_endings: bool = True


class TemplateRenderer:
    """The streamed text as it arrives, then ``[completed]`` (``[failed: code]``,
    ``[cancelled]``, ``[timeout]``) at the end of each run when ``show_endings``."""

    def __init__(self, *, show_endings: bool = True) -> None:
        self.show_endings = show_endings

    def render(self, event: Event) -> str:
        """The text for one event ("" for the events it leaves out)."""
        data = event.data
        if isinstance(data, MessageStreamed):
            return data.delta
        if not self.show_endings:
            return ""
        if isinstance(data, RunCompleted):
            return " [completed]\n"
        if isinstance(data, RunFailed):
            return f" [failed: {data.error_code}]\n"
        if isinstance(data, RunCancelled):
            return " [cancelled]\n"
        if isinstance(data, RunTimeout):
            return " [timeout]\n"
        return ""

    def finish(self) -> str:
        """The closing text when the stream ends: nothing (each run ended its line)."""
        return ""


def create_renderer(config: dict[str, Any]) -> TemplateRenderer:
    """The factory: asm calls it with the ``[renderers.template]`` table ({} if absent)."""
    options = parse_options(TemplateRendererOptions, config, "template renderer")
    return TemplateRenderer(show_endings=options.show_endings)
