"""Tests of the store part: asm's SessionStoreContract suite, then the store's own tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import asm
import pytest
from asm.testing import SessionStoreContract

from asm_template.store import TemplateStore, TemplateStoreOptions, create_store


class TestTemplateStore(SessionStoreContract):
    """asm's session store contract suite: every session store must pass it."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[TemplateStore]:
        # A real store opens a fresh (or shared: the suite uses fresh ids) database here.
        async with TemplateStore(TemplateStoreOptions()) as store:
            yield store


async def test_a_runtime_opens_runs_in_and_closes_the_store() -> None:
    async with asm.open_runtime(store="template", provider="echo") as runtime:
        store = runtime.store
        assert isinstance(store, TemplateStore) and store.opened
        run = (await runtime.run_once("stored here")).raise_for_status()
        assert (await store.get_run(run.id)).output == "stored here"
    assert not store.opened


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(asm.AsmError) as caught:
        create_store({"url": "x"})
    assert caught.value.code == "invalid_config"
    assert "url" in str(caught.value)


def test_loading_the_plugin_leaves_the_store_module_unimported() -> None:
    """asm imports the plugin for every command (``asm --help`` too); the store's module,
    and whatever it imports, waits until a runtime builds the store."""
    code = "import sys; from asm.plugins import load_plugins; load_plugins(); print(*sys.modules)"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "asm_template" in modules  # the plugin was loaded
    assert "asm_template.store" not in modules
