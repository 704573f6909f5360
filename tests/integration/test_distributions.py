"""Every distribution is publishable as it stands (what `nox -s build` builds): the
Apache-2.0 LICENSE in its directory (and so in its wheel and sdist), authors, keywords
and classifiers, plugins depending on a bounded asm-core range, and a README whose links
work on a package index (absolute, or none). SQLite users get no PostgreSQL driver."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = [ROOT / "core", *sorted(p for p in ROOT.glob("plugins/asm-*") if (p / "pyproject.toml").is_file())]
RELATIVE_LINK = re.compile(r"\]\((?!https?://|mailto:|#)[^)]*\)")


def project(path: Path) -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    return table


def test_the_root_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


@pytest.mark.parametrize("path", PROJECTS, ids=[p.name for p in PROJECTS])
def test_a_distribution_has_what_an_index_shows(path: Path) -> None:
    meta = project(path)

    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    assert (path / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert meta["authors"] and meta["maintainers"] and "asm" in meta["keywords"]  # type: ignore[operator]
    assert {"Typing :: Typed", "Programming Language :: Python :: 3.11"} <= set(meta["classifiers"])  # type: ignore[arg-type]
    readme = (path / str(meta["readme"])).read_text()
    assert RELATIVE_LINK.findall(readme) == [], "links that break on an index"


@pytest.mark.parametrize("path", PROJECTS[1:], ids=[p.name for p in PROJECTS[1:]])
def test_a_plugin_depends_on_the_asm_core_range_it_is_tested_with(path: Path) -> None:
    core = project(ROOT / "core")["version"]
    requirement = next(d for d in project(path)["dependencies"] if d.startswith("asm-core"))  # type: ignore[attr-defined]

    assert requirement == "asm-core>=0.1,<0.2" and str(core).startswith("0.1.")


def test_postgresql_s_driver_is_an_extra_of_asm_sqlalchemy() -> None:
    meta = project(ROOT / "plugins" / "asm-sqlalchemy")

    assert not [d for d in meta["dependencies"] if d.startswith("psycopg")]  # type: ignore[attr-defined]
    assert meta["optional-dependencies"] == {"postgres": ["psycopg[binary]>=3.2,<4"]}
