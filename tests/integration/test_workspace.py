"""Every distribution in the workspace is packaged the same way and installs beside the others."""

from __future__ import annotations

import tomllib
from pathlib import Path

import asm

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [ROOT / "core", *sorted(p for p in (ROOT / "plugins").glob("asm-*") if p.is_dir())]


def test_each_distribution_has_a_readme_a_src_layout_and_py_typed() -> None:
    for path in DISTRIBUTIONS:
        project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        package = "asm" if path.name == "core" else project["name"].replace("-", "_")
        assert (path / "README.md").is_file(), path
        assert (path / "src" / package / "py.typed").is_file(), path
        if path.name != "core":
            assert project["entry-points"]["asm"], f"{path.name} declares no asm entry point"
            assert "asm-core" in " ".join(project["dependencies"])


def test_all_installed_plugins_load_together_without_clashes() -> None:
    registry = asm.load_plugins()
    assert registry.broken == []
    distributions = {info.distribution for info in registry.plugins()}
    assert "asm-core" in distributions
    assert {"echo", "scripted"} <= set(registry.names("providers"))
