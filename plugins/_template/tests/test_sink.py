"""Tests of the sink part: asm's SinkContract suite, then the sink's own tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import asm
import pytest
from asm.testing import SinkContract

from asm_template.sink import TemplateSink, create_sink


class TestTemplateSink(SinkContract):
    """asm's sink contract suite: every sink must pass it."""

    @pytest.fixture
    def sink(self, tmp_path: Path) -> TemplateSink:
        return TemplateSink(tmp_path / "out.txt")

    @pytest.fixture
    def sink_output(self, tmp_path: Path) -> Callable[[], str]:
        # What reached the destination: a real sink reads back its channel or fake server.
        return lambda: (tmp_path / "out.txt").read_bytes().decode("utf-8")


async def test_a_runtime_writes_each_run_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.txt"
    async with asm.open_runtime(provider="echo", renderer="compact", sinks={"template": {"path": str(path)}}) as rt:
        (await rt.run_once("first")).raise_for_status()
        (await rt.run_once("second")).raise_for_status()
    written = path.read_text(encoding="utf-8")
    assert ">> first" in written and ">> second" in written
    assert written.index(">> first") < written.index(">> second")


def test_the_path_is_required() -> None:
    with pytest.raises(asm.AsmError) as caught:
        create_sink({})
    assert caught.value.code == "invalid_config"
    assert "path" in str(caught.value)


async def test_writing_after_close_is_an_error(tmp_path: Path) -> None:
    sink = TemplateSink(tmp_path / "out.txt")
    await sink.aclose()
    with pytest.raises(asm.AsmError) as caught:
        await sink.write("late", None)
    assert caught.value.code == "invalid_operation"


def test_loading_the_plugin_leaves_the_sink_module_unimported() -> None:
    """asm imports the plugin for every command (``asm --help`` too); the sink's module,
    and whatever it imports, waits until a runtime builds the sink."""
    code = "import sys; from asm.plugins import load_plugins; load_plugins(); print(*sys.modules)"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "asm_template" in modules  # the plugin was loaded
    assert "asm_template.sink" not in modules
