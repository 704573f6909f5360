"""asm-core's sinks against asm.testing.SinkContract, and the suite failing sinks that
lose, reorder or alter what they are given (so a pass means something)."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from asm.rendering import CallbackSink, FileSink, JsonlSink
from asm.testing import SinkContract


class TestFileSinkOnAPath(SinkContract):
    @pytest.fixture
    def sink(self, tmp_path: Path) -> FileSink:
        return FileSink(tmp_path / "out" / "asm.log")

    @pytest.fixture
    def sink_output(self, tmp_path: Path) -> Callable[[], str]:
        return lambda: (tmp_path / "out" / "asm.log").read_bytes().decode("utf-8")


class TestFileSinkOnAStream(SinkContract):
    @pytest.fixture
    def stream(self) -> io.StringIO:
        return io.StringIO(newline="")

    @pytest.fixture
    def sink(self, stream: io.StringIO) -> FileSink:
        return FileSink(stream)

    @pytest.fixture
    def sink_output(self, stream: io.StringIO) -> Callable[[], str]:
        return stream.getvalue


class TestJsonlSink(SinkContract):
    delivers_text = False

    @pytest.fixture
    def sink(self, tmp_path: Path) -> JsonlSink:
        return JsonlSink(tmp_path / "events.jsonl")

    @pytest.fixture
    def sink_output(self, tmp_path: Path) -> Callable[[], str]:
        return lambda: (tmp_path / "events.jsonl").read_text(encoding="utf-8")


class TestCallbackSink(SinkContract):
    @pytest.fixture
    def received(self) -> list[str]:
        return []

    @pytest.fixture
    def sink(self, received: list[str]) -> CallbackSink:
        return CallbackSink(lambda event, text: received.append(text))

    @pytest.fixture
    def sink_output(self, received: list[str]) -> Callable[[], str]:
        return lambda: "".join(received)


#: A flaw -> the line that introduces it at the top of a list-backed sink's write().
BROKEN_SINKS = {
    "DropsTheClosingText": "if event is None: return",
    "DropsEveryOtherWrite": "self.n += 1\n        if self.n % 2: return",
    "WritesInReverseOrder": "self.parts.insert(0, text); return",
    "StopsAfterTwoWrites": "if len(self.parts) >= 2: return",
    "WritesAsciiOnly": "text = text.encode('ascii', 'replace').decode()",
    "WritesForEmptyText": "text = text or '-'",
}

BROKEN_MODULE = """
import pytest
from asm.testing import SinkContract


class BrokenSink:
    def __init__(self):
        self.parts, self.n = [], 0

    async def write(self, text, event):
        FLAW
        self.parts.append(text)

    async def aclose(self):
        pass


class TestNAME(SinkContract):
    @pytest.fixture
    def sink(self):
        return BrokenSink()

    @pytest.fixture
    def sink_output(self, sink):
        return lambda: "".join(sink.parts)
"""


def test_the_suite_fails_every_broken_sink(tmp_path: Path) -> None:
    """Each flaw fails at least one test of the suite (all run in one pytest of their own)."""
    for name, flaw in BROKEN_SINKS.items():
        module = BROKEN_MODULE.replace("FLAW", flaw).replace("NAME", name)
        (tmp_path / f"test_{name.lower()}.py").write_text(module, encoding="utf-8")
    argv = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-c", "/dev/null"]
    result = subprocess.run(
        [*argv, "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    failed = {line.split("::")[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")}
    assert failed == {f"Test{name}" for name in BROKEN_SINKS}, result.stdout[-3000:]
