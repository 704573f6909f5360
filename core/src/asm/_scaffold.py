"""``asm plugin new NAME``: a new third-party plugin distribution, made from asm's plugin skeleton.

The skeleton is ``plugins/_template`` in asm's repository; asm-core ships a copy of
it as package data (``asm/_plugin_template``, each file with ``.tmpl`` appended, so
no tool mistakes it for asm's own code), which is what this module reads: the
command works from an installed wheel. A test keeps the copy equal to the
skeleton.

The skeleton has one module per kind of part (``provider.py``, ``store.py``,
``sink.py``, ``renderer.py``) and one test module per part (``test_<kind>.py``,
running the part's contract suite from :mod:`asm.testing`). The new
distribution gets the chosen kind's module and tests only; a line of the
skeleton that ends in ``# kind: <kind>`` is kept for that kind alone, without
the comment (on a decorator: the whole decorated function). Then the names:
``asm_template`` becomes the import package, ``asm-template`` the
distribution, ``Template`` the class-name prefix and ``template`` the name the
part is registered under.
"""

from __future__ import annotations

import keyword
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Collection, Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Final, TextIO

import attrs

from asm.errors import AsmError

__all__ = ["KINDS", "PluginNames", "plugin_files", "plugin_names", "scaffold"]

#: The kinds of part ``asm plugin new --kind`` makes, each with its module and test module in the skeleton.
KINDS: Final = ("provider", "store", "sink", "renderer")

#: The package data directory holding the skeleton's copy.
TEMPLATE_DIR: Final = "_plugin_template"
#: What every file of the copy has appended to its name.
SUFFIX: Final = ".tmpl"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*")
_PART = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MARKER = re.compile(r"^(?P<line>.*?)\s*# kind: (?P<kind>[a-z]+)\s*$")
_RESERVED: Final = frozenset({"asm", "asm-core", "asm-template"})

#: What the generated README says about each kind: what it is, an asm.toml using it, what that does, its tests.
_README: Final = {
    "provider": (
        "a provider (a model, an API or an agent CLI that runs prompts)",
        '[providers.{name}]\ngreeting = "Hi"',
        "`asm run --provider {name} hello` then answers `Hi, hello`.",
        "asm's `ProviderContract` suite, then the provider's own tests",
    ),
    "store": (
        "a session store (where sessions, runs and their events are kept)",
        'store = "{name}"\n\n[stores.{name}]',
        "`asm run hello` then keeps its session in it (`asm config show` names the store in use). As made,"
        " it keeps everything in memory, for the life of the process: give it your database.",
        "asm's `SessionStoreContract` suite, then the store's own tests",
    ),
    "sink": (
        "a sink (where the rendered text of every event goes)",
        '[sinks.{name}]\npath = "asm-output.txt"',
        "Its table switches it on: `asm run hello` then appends the run's rendered events to `asm-output.txt`.",
        "asm's `SinkContract` suite, then the sink's own tests",
    ),
    "renderer": (
        "a renderer (how events are shown as text)",
        'renderer = "{name}"\n\n[renderers.{name}]\nshow_endings = true\n\n[sinks.file]\npath = "asm-output.txt"',
        "The renderer renders the events for every sink that is switched on (here asm's built-in `file`"
        " sink): `asm run hello` then appends `hello [completed]` to `asm-output.txt`.",
        "the renderer's tests through a real runtime (asm has no renderer contract suite)",
    ),
}


@attrs.frozen
class PluginNames:
    """The names a plugin's NAME becomes: ``asm-acme-tools`` -> distribution
    ``asm-acme-tools``, import package ``asm_acme_tools``, registered name
    ``acme-tools``, class-name prefix ``AcmeTools``."""

    distribution: str
    module: str
    registered: str
    classes: str


def plugin_names(name: str) -> PluginNames:
    """The names for a plugin called ``name`` (a distribution name), or a
    ``validation_error`` saying what a valid one looks like."""
    fix = "use letters, digits and single hyphens, starting with a letter, e.g. asm-acme"
    if not _NAME.fullmatch(name):
        raise AsmError("validation_error", f"{name!r} is not a valid plugin distribution name; {fix}")
    distribution = re.sub(r"[-_.]+", "-", name).lower()
    if distribution in _RESERVED:
        raise AsmError("validation_error", f"{distribution!r} is a name of asm itself; choose another, e.g. asm-acme")
    registered = distribution.removeprefix("asm-")
    if not _PART.fullmatch(registered):
        raise AsmError(
            "validation_error",
            f"{name!r}: after 'asm-' the name must start with a letter (it is what users type, e.g. "
            f"--provider acme); choose another, e.g. asm-acme",
        )
    module = distribution.replace("-", "_")
    if keyword.iskeyword(module) or module in sys.stdlib_module_names:
        raise AsmError(
            "validation_error",
            f"{name!r} would make the import package {module!r}, a Python keyword or standard-library module; "
            f"choose another, e.g. asm-{distribution}",
        )
    classes = "".join(part.capitalize() for part in registered.split("-"))
    return PluginNames(distribution, module, registered, classes)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise AsmError("validation_error", f"unknown plugin kind {kind!r}; choose one of: {', '.join(KINDS)}")


def _template_files(root: Traversable, prefix: PurePosixPath) -> Iterator[tuple[PurePosixPath, str]]:
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _template_files(entry, prefix / entry.name)
        elif entry.name.endswith(SUFFIX):
            yield prefix / entry.name.removesuffix(SUFFIX), entry.read_text(encoding="utf-8")


def _part_of(path: PurePosixPath) -> str | None:
    """The kind a skeleton file belongs to alone (``src/asm_template/sink.py``,
    ``tests/test_sink.py``), or None for a file every plugin has."""
    stem = path.stem.removeprefix("test_") if path.parent.name == "tests" else path.stem
    if path.suffix == ".py" and stem in KINDS:
        return stem
    return None


def _for_kind(text: str, kind: str) -> str:
    """The lines of ``text`` for ``kind``: a line ending in ``# kind: <k>`` is kept
    (without the comment) for ``k`` alone; on a decorator (``@hookimpl  # kind: sink``)
    the mark covers the whole decorated definition, up to the next top-level line
    after a blank one."""
    kept: list[str] = []
    dropping = False
    previous_blank = False
    for line in text.splitlines(keepends=True):
        blank = not line.strip()
        if dropping and not blank and previous_blank and not line[0].isspace():
            dropping = False
        previous_blank = blank
        marked = _MARKER.match(line)
        if marked is not None:
            if marked["kind"] == kind:
                kept.append(marked["line"] + "\n")
            elif marked["line"].lstrip().startswith("@"):
                dropping = True
            continue
        if not dropping:
            kept.append(line)
    return "".join(kept).rstrip("\n") + "\n"


def _substitute(text: str, names: PluginNames, kind: str) -> str:
    text = _for_kind(text, kind)
    for old, new in (
        ("asm_template", names.module),
        ("asm-template", names.distribution),
        ("Template", names.classes),
        ("template", names.registered),
    ):
        text = text.replace(old, new)
    return text


def _readme(names: PluginNames, kind: str) -> str:
    what, table, usage, tests = (part.format(name=names.registered) for part in _README[kind])
    return f"""# {names.distribution}

An asm plugin: {what}, registered as `{names.registered}`.
Made with `asm plugin new`; replace this README with the plugin's own.

- `pyproject.toml`: the distribution `{names.distribution}`, its entry point in the group `asm`, the
  `test` extra and pytest's config (`trio_mode`, which asm's async contract suites need);
- `src/{names.module}/__init__.py`: the entry point's module, whose `@hookimpl` registers the {kind} lazily;
- `src/{names.module}/{kind}.py`: the {kind}, its options class and its factory;
- `tests/test_{kind}.py`: {tests}.

## Develop

```console
$ python -m venv .venv && . .venv/bin/activate
$ pip install -e '.[test]'
$ pytest
$ asm plugins                   # lists {names.distribution} and what it registers
```

## Configure

In `asm.toml`:

```toml
{table}
```

{usage}
"""


def plugin_files(name: str, kind: str = "provider") -> dict[PurePosixPath, str]:
    """The files of a new plugin distribution ``name`` with a part of ``kind``:
    relative path -> text (nothing is written)."""
    _check_kind(kind)
    names = plugin_names(name)
    files: dict[PurePosixPath, str] = {}
    for path, text in _template_files(resources.files("asm") / TEMPLATE_DIR, PurePosixPath()):
        part = _part_of(path)
        if part is not None and part != kind:
            continue
        target = PurePosixPath(*(names.module if p == "asm_template" else p for p in path.parts))
        files[target] = _substitute(text, names, kind)
    files[PurePosixPath("README.md")] = _readme(names, kind)
    return files


def scaffold(
    name: str, *, kind: str = "provider", directory: str | Path | None = None, taken: Collection[str] = ()
) -> Path:
    """Write a new plugin distribution ``name`` (a part of ``kind``) into
    ``directory`` (default: ``./<name>``), which must not exist or be empty;
    ``taken`` are names already registered for that kind. Return the directory.

    All files are written into a temporary directory next to it, which is then
    renamed into place: on any error, nothing is left behind.
    """
    files = plugin_files(name, kind)
    names = plugin_names(name)
    if names.registered in taken:
        raise AsmError(
            "validation_error",
            f"a {kind} named {names.registered!r} is already installed; choose another plugin name",
        )
    target = Path(directory if directory is not None else names.distribution)
    if target.is_symlink() or (target.exists() and not (target.is_dir() and not any(target.iterdir()))):
        raise AsmError(
            "already_exists", f"{target} already exists and is not an empty directory; choose another --directory"
        )
    parent = target.absolute().parent
    if not parent.is_dir():
        raise AsmError(
            "validation_error", f"{parent} is not a directory; create it first or choose another --directory"
        )
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    except OSError as exc:
        raise AsmError(
            "storage_write_failed", f"cannot write in {parent}: {exc.strerror}; choose another --directory"
        ) from None
    try:
        for path, text in files.items():
            file = staging.joinpath(*path.parts)
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
        staging.chmod(0o777 & ~_umask())
        staging.rename(target)  # replaces an empty directory; fails on a non-empty one
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if target.exists():
            raise AsmError(
                "already_exists", f"{target} already exists and is not an empty directory; choose another --directory"
            ) from None
        raise AsmError(
            "storage_write_failed", f"cannot write {target}: {exc.strerror}; choose another --directory"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def command(name: str, kind: str, directory: str | None, taken: Collection[str], out: TextIO) -> int:
    """``asm plugin new``: scaffold, then say where and what to do next."""
    _check_kind(kind)
    target = scaffold(name, kind=kind, directory=directory, taken=taken)
    names = plugin_names(name)
    out.write(
        f"created {names.distribution} in {target} ({kind} {names.registered!r}, import package {names.module})\n"
        f"next: cd {shlex.quote(str(target))} && python -m venv .venv && . .venv/bin/activate"
        " && pip install -e '.[test]' && pytest\n"
    )
    return 0
