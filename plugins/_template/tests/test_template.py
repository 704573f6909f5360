"""Tests of asm-template. In the repo they live in tests/asm-<name>/ (see README.md)."""

from __future__ import annotations

import pytest
from asm_template import TemplateProvider, create_provider

import asm
from asm.testing import ProviderContract


class TestTemplateProvider(ProviderContract):
    """asm's provider contract suite: every provider plugin must pass it."""

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
