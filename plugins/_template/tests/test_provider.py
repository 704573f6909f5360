"""Tests of the provider part: asm's ProviderContract suite, then the provider's own tests."""

from __future__ import annotations

import subprocess
import sys

import asm
import pytest
from asm.testing import ProviderContract

from asm_template.provider import TemplateProvider, create_provider


class TestTemplateProvider(ProviderContract):
    """asm's provider contract suite: every provider must pass it."""

    @pytest.fixture
    def provider(self) -> TemplateProvider:
        return TemplateProvider()

    @pytest.fixture
    def slow_provider(self) -> TemplateProvider:
        # A run that lasts until cancelled, for the cancellation and timeout tests.
        # A real provider points this at a fake server that stalls mid-stream.
        return TemplateProvider(delay=60)


async def test_greets() -> None:
    manager = asm.SessionManager(asm.InMemorySessionStore(), provider=TemplateProvider(greeting="Hi"))
    run = (await manager.run_once("there")).raise_for_status()
    assert run.output == "Hi, there"


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(asm.AsmError) as caught:
        create_provider({"greting": "Hi"})
    assert caught.value.code == "invalid_config"
    assert "greting" in str(caught.value)


def test_registered_through_the_entry_point() -> None:
    """Installed, the plugin is found by asm: what `asm plugins` lists, `--provider` uses."""
    registration = asm.load_plugins().get("providers", "template")
    assert registration.distribution == "asm-template"


def test_loading_the_plugin_leaves_the_provider_module_unimported() -> None:
    """asm imports the plugin for every command (``asm --help`` too); the provider's module,
    and whatever it imports, waits until a runtime builds the provider."""
    code = "import sys; from asm.plugins import load_plugins; load_plugins(); print(*sys.modules)"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "asm_template" in modules  # the plugin was loaded
    assert "asm_template.provider" not in modules
