"""Tests of the renderer part, through a real runtime (asm has no renderer contract suite)."""

from __future__ import annotations

import subprocess
import sys

import asm
import pytest
from asm.providers.scripted import Fail

from asm_template.renderer import TemplateRenderer, create_renderer


async def render(renderer: TemplateRenderer, provider: asm.Provider, prompt: str) -> tuple[str, asm.Run]:
    """Run ``prompt`` through a SessionManager whose events ``renderer`` renders."""
    out: list[str] = []

    async def on_event(event: asm.Event) -> None:
        out.append(renderer.render(event))

    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=provider, on_event=on_event)
    run = await manager.run_once(prompt)
    return "".join(out) + renderer.finish(), run


async def test_shows_the_text_and_how_the_run_ended() -> None:
    text, _ = await render(TemplateRenderer(), asm.EchoProvider(), "hello renderer")
    assert text == "hello renderer [completed]\n"


async def test_a_failed_run_shows_its_error_code() -> None:
    provider = asm.ScriptedProvider(["partial", Fail(asm.AsmError("provider_unavailable", "down; try later"))])
    text, run = await render(TemplateRenderer(), provider, "hi")
    assert run.status is asm.RunStatus.FAILED
    assert text == "partial [failed: provider_unavailable]\n"


async def test_endings_can_be_switched_off() -> None:
    text, _ = await render(create_renderer({"show_endings": False}), asm.EchoProvider(), "just text")
    assert text == "just text"


async def test_a_runtime_uses_it_by_name() -> None:
    seen: list[str] = []
    callback = {"callback": lambda _event, text: seen.append(text)}
    async with asm.open_runtime(provider="echo", renderer="template", sinks={"callback": callback}) as rt:
        (await rt.run_once("by name")).raise_for_status()
    assert "".join(seen) == "by name [completed]\n"


def test_a_wrong_type_is_an_error() -> None:
    with pytest.raises(asm.AsmError) as caught:
        create_renderer({"show_endings": "sometimes"})
    assert caught.value.code == "invalid_config"


def test_loading_the_plugin_leaves_the_renderer_module_unimported() -> None:
    """asm imports the plugin for every command (``asm --help`` too); the renderer's module,
    and whatever it imports, waits until a runtime builds the renderer."""
    code = "import sys; from asm.plugins import load_plugins; load_plugins(); print(*sys.modules)"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "asm_template" in modules  # the plugin was loaded
    assert "asm_template.renderer" not in modules
