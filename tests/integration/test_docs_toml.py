"""Every TOML block in the docs and the READMEs pastes into a working asm.toml: it
loads (every key known, every type right), names installed plugins, and the runtime
it describes assembles (built, not opened: no server is contacted)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from asm import EchoProvider, Register, hookimpl, load_config, load_plugins
from asm.config import ConfigWarning
from asm.plugins import PluginRegistry
from asm.runtime import assemble

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("plugins/asm-*/README.md")])
BLOCK = re.compile(r"^```toml\n(.*?)^```", re.M | re.S)


#: Blocks that are a pyproject.toml, not an asm.toml.
PYPROJECT = re.compile(r"^\[(project|build-system|tool\.|dependency-groups)", re.M)


class DocExamples:
    """The example plugin docs/writing-plugins.md builds, registered so its tables are known."""

    @hookimpl
    def asm_register_providers(self, register: Register) -> None:
        register("reverse", lambda config: EchoProvider(name="reverse"))


def blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            if PYPROJECT.search(match[1]):
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", match[1]))
    return found


BLOCKS = blocks()


def test_the_docs_have_toml_blocks() -> None:
    assert len(BLOCKS) > 10


@pytest.fixture(scope="module")
def registry() -> PluginRegistry:
    return load_plugins(extra=[DocExamples()])


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_a_toml_block_of_the_docs_is_a_working_config(
    where: str, text: str, tmp_path: Path, registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a sink's relative path (events.jsonl) is made here, not in the checkout
    (tmp_path / "asm.toml").write_text(text, encoding="utf-8")
    loaded = load_config(config_file=tmp_path / "asm.toml", env={}, cwd=tmp_path, user_file=tmp_path / "none.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)  # a table for a plugin that is not in the workspace
        assemble(loaded, registry=registry)
