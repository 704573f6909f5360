"""``asm plugin new NAME``: a plugin distribution scaffolded from the skeleton asm-core
ships (a copy of plugins/_template, kept equal to it here), with only the chosen kind's
part and tests; bad names, kinds and targets are one-line errors that write nothing.
(tests/integration/test_template_outside.py installs the scaffolds with pip and runs their tests.)"""

from __future__ import annotations

import ast
import io
import tomllib
from pathlib import Path

import pytest

from asm import AsmError
from asm._scaffold import KINDS, SUFFIX, plugin_names, scaffold
from asm.cli import run_cli

pytestmark = pytest.mark.usefixtures("isolated")

ROOT = Path(__file__).resolve().parents[2]
SKELETON = ROOT / "plugins" / "_template"
SHIPPED = ROOT / "core" / "src" / "asm" / "_plugin_template"


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_cli(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts)
    }


def test_the_shipped_skeleton_is_plugins_template() -> None:
    """One source of truth: asm-core's package data is plugins/_template (less its README,
    which is about the skeleton), each file with .tmpl appended."""
    skeleton = {path: data for path, data in files_under(SKELETON).items() if path != "README.md"}
    shipped = {path.removesuffix(SUFFIX): data for path, data in files_under(SHIPPED).items()}
    assert shipped == skeleton, (
        "core/src/asm/_plugin_template differs from plugins/_template; after editing the skeleton, copy it: "
        "cd plugins/_template && for f in $(git ls-files . | grep -v README.md); do "
        "install -D $f ../../core/src/asm/_plugin_template/$f.tmpl; done"
    )
    assert all(path.endswith(SUFFIX) for path in files_under(SHIPPED))


@pytest.mark.parametrize("kind", KINDS)
def test_new_writes_a_distribution_with_only_that_kind(tmp_path: Path, kind: str) -> None:
    status, out, err = cli("plugin", "new", "asm-acme-tools", "--kind", kind, "--directory", str(tmp_path / kind))

    assert (status, err) == (0, "")
    assert out.startswith(f"created asm-acme-tools in {tmp_path / kind} ({kind} 'acme-tools'")
    files = files_under(tmp_path / kind)
    assert sorted(files) == sorted(
        [
            "README.md",
            "pyproject.toml",
            "src/asm_acme_tools/__init__.py",
            "src/asm_acme_tools/py.typed",
            f"src/asm_acme_tools/{kind}.py",
            f"tests/test_{kind}.py",
        ]
    )
    texts = {path: data.decode("utf-8") for path, data in files.items()}
    assert not any("template" in text.lower() for text in texts.values()), "a name of the skeleton was left"
    assert not any("# kind:" in text for text in texts.values())
    for path, text in texts.items():
        if path.endswith(".py"):
            ast.parse(text, path)
    pyproject = tomllib.loads(texts["pyproject.toml"])
    assert pyproject["project"]["name"] == "asm-acme-tools"
    assert pyproject["project"]["entry-points"]["asm"] == {"acme-tools": "asm_acme_tools"}
    assert pyproject["project"]["optional-dependencies"]["test"] == ["asm-core[testing]>=0.1,<0.2"]
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/asm_acme_tools"]
    assert pyproject["tool"]["pytest"]["ini_options"]["trio_mode"] is True
    hook = {"provider": "providers", "store": "stores", "sink": "sinks", "renderer": "renderers"}[kind]
    init = texts["src/asm_acme_tools/__init__.py"]  # the one hook of the kind, registering the part lazily
    assert init.count("@hookimpl") == 1 and f"def asm_register_{hook}(register: Register) -> None:" in init
    assert f'register("acme-tools", lazy("asm_acme_tools.{kind}:create_{kind}"))' in init
    assert f"def create_{kind}(config: dict[str, Any])" in texts[f"src/asm_acme_tools/{kind}.py"]
    assert "AcmeTools" in texts[f"tests/test_{kind}.py"]


def test_the_default_is_a_provider_in_a_directory_named_after_it() -> None:
    status, _, err = cli("plugin", "new", "asm-acme")

    assert (status, err) == (0, "")
    assert (Path("asm-acme") / "src" / "asm_acme" / "provider.py").is_file()
    assert not (Path("asm-acme") / "src" / "asm_acme" / "store.py").exists()


def test_an_empty_directory_is_filled(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    status, _, err = cli("plugin", "new", "asm-acme", "--kind", "store", "--directory", str(tmp_path / "empty"))

    assert (status, err) == (0, "")
    assert (tmp_path / "empty" / "tests" / "test_store.py").is_file()


def test_names() -> None:
    names = plugin_names("ASM_Acme.Tools")
    assert (names.distribution, names.module, names.registered, names.classes) == (
        "asm-acme-tools",
        "asm_acme_tools",
        "acme-tools",
        "AcmeTools",
    )
    assert plugin_names("acme").module == "acme"  # the asm- prefix is a convention, not a rule


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Bad Name", "not a valid plugin distribution name"),
        ("asm-", "not a valid plugin distribution name"),
        ("-acme", "not a valid plugin distribution name"),
        ("asm--acme", "not a valid plugin distribution name"),
        ("asm-ä", "not a valid plugin distribution name"),
        ("asm-3d", "must start with a letter"),
        ("asm", "a name of asm itself"),
        ("asm-core", "a name of asm itself"),
        ("class", "a Python keyword or standard-library module"),
        ("json", "a Python keyword or standard-library module"),
        ("asm-echo", "a provider named 'echo' is already installed"),
    ],
)
def test_a_bad_name_is_an_error_and_writes_nothing(name: str, says: str) -> None:
    status, out, err = cli("plugin", "new", "--", name)

    assert (status, out) == (2, "")
    assert err.startswith("asm: error [validation_error]: ") and says in err and err.count("\n") == 1
    assert list(Path().iterdir()) == []


def test_an_unknown_kind_is_an_error_and_writes_nothing() -> None:
    status, _, err = cli("plugin", "new", "asm-acme", "--kind", "widget")

    assert status == 2
    assert err == (
        "asm: error [validation_error]: unknown plugin kind 'widget'; choose one of: provider, store, sink, renderer\n"
    )
    assert list(Path().iterdir()) == []


def test_a_non_empty_directory_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me", encoding="utf-8")
    (tmp_path / "a-file").write_text("also mine", encoding="utf-8")

    for where in (target, tmp_path / "a-file"):
        status, _, err = cli("plugin", "new", "asm-acme", "--directory", str(where))
        assert status == 1
        assert err == (
            f"asm: error [already_exists]: {where} already exists and is not an empty directory; "
            "choose another --directory\n"
        )
    assert files_under(target) == {"notes.txt": b"keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "mine", "project"]  # no staging directory left


def test_a_missing_parent_is_an_error(tmp_path: Path) -> None:
    status, _, err = cli("plugin", "new", "asm-acme", "--directory", str(tmp_path / "no" / "such" / "dir"))

    assert status == 2
    assert err.startswith("asm: error [validation_error]: ") and "create it first" in err
    assert not (tmp_path / "no").exists()


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up on the third file: no target and no staging directory remain."""
    written: list[Path] = []
    write_text = Path.write_text

    def failing(self: Path, data: str, *args: object, **kwargs: object) -> int:
        written.append(self)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        return write_text(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", failing)
    parent = tmp_path / "out"
    parent.mkdir()

    with pytest.raises(AsmError) as caught:
        scaffold("asm-acme", kind="sink", directory=parent / "asm-acme")

    assert caught.value.code == "storage_write_failed"
    assert "No space left on device" in str(caught.value)
    assert len(written) == 3 and list(parent.iterdir()) == []


def test_help_lists_the_command() -> None:
    status, out, _ = cli("plugin", "new", "--help")

    assert status == 0
    assert "NAME" in out and "--kind" in out and "provider (default), store, sink or renderer" in out
