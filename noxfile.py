"""Development sessions: ``uv run --frozen nox -s lint typecheck tests integration examples``.

Every session installs from ``uv.lock`` (``uv sync --frozen``) into its own
virtualenv. ``tests`` runs each distribution's tests in an environment holding
only that distribution, asm-core and the test dependencies: that is what
proves a plugin installs and works alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_external_run = True
nox.options.sessions = ["lint", "typecheck", "tests", "integration", "examples"]

ROOT = Path(__file__).parent
DISTRIBUTIONS = {"asm-core": "core"} | {
    path.name: f"plugins/{path.name}" for path in sorted((ROOT / "plugins").glob("asm-*")) if path.is_dir()
}
#: Throwaway plugin distributions the core tests install, to discover them through real entry points.
TEST_PLUGINS = sorted(str(p) for p in (ROOT / "tests" / "asm-core" / "plugins").glob("asm-*") if p.is_dir())


def sync(session: nox.Session, *args: str) -> None:
    """Install the locked dependencies into this session's virtualenv."""
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--exact",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


def uv_pip_install(session: nox.Session, *args: str) -> None:
    """Install local, unpublished distributions (test plugins, examples) without touching the rest."""
    session.run_install(
        "uv", "pip", "install", "--no-deps", "--python", session.virtualenv.location, *args, external=True
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    sync(session, "--only-dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on every distribution's sources."""
    sync(session, "--all-packages")
    session.run("mypy", *(f"{path}/src" for path in DISTRIBUTIONS.values()))


@nox.session
@nox.parametrize("distribution", list(DISTRIBUTIONS))
def tests(session: nox.Session, distribution: str) -> None:
    """One distribution's tests, in an environment with only it, asm-core and test deps."""
    sync(session, "--package", distribution, "--group", "test", "--no-default-groups")
    if distribution == "asm-core":
        uv_pip_install(session, *TEST_PLUGINS)
    session.run("pytest", "-p", "no:cacheprovider", *(session.posargs or [f"tests/{distribution}"]))


@nox.session
def integration(session: nox.Session) -> None:
    """Cross-distribution and end-to-end tests, with every distribution installed."""
    sync(session, "--all-packages")
    session.run("pytest", "-p", "no:cacheprovider", *(session.posargs or ["tests/integration"]))


@nox.session
def examples(session: nox.Session) -> None:
    """Every script in examples/, offline."""
    sync(session, "--all-packages")
    uv_pip_install(session, "examples/custom_provider_plugin")
    session.run("bash", "examples/run_all.sh", external=True)


@nox.session
def web_screenshots(session: nox.Session) -> None:
    """The web viewer's screenshots in docs/ (docs/web.md shows them), taken by its browser test."""
    sync(session, "--package", "asm-web", "--group", "test", "--no-default-groups")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/asm-web/test_viewer.py",
        env={"VIEWER_SCREENSHOTS": str(ROOT / "docs")},
    )


@nox.session
def build(session: nox.Session) -> None:
    """Every wheel and sdist into dist/, checked (twine check, a LICENSE in each); then each
    plugin installed alone next to asm-core into a fresh venv with pip, and `asm plugins` run
    there (no BROKEN, the plugin listed). Not a default session: it installs from the index."""
    import shutil
    import tempfile
    import zipfile

    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.run("uv", "build", "--all-packages", "--out-dir", str(out), external=True)
    session.install("twine>=7,<8")  # twine 7 reads Metadata-Version 2.5 (hatchling's)
    built = sorted([*out.glob("*.whl"), *out.glob("*.tar.gz")])
    session.run("twine", "check", "--strict", *(str(p) for p in built))
    wheels = {p.name.split("-")[0].replace("_", "-"): p for p in sorted(out.glob("*.whl"))}
    for wheel in wheels.values():
        if not any(n.endswith("/licenses/LICENSE") for n in zipfile.ZipFile(wheel).namelist()):
            session.error(f"{wheel.name} has no LICENSE")
    for name, wheel in wheels.items():
        if name == "asm-core":
            continue
        with tempfile.TemporaryDirectory() as tmp:
            session.run(sys.executable, "-m", "venv", tmp, external=True)
            python = str(Path(tmp) / "bin" / "python")
            # its sister plugins (asm-celery needs asm-sqlalchemy) come from dist/, the rest from the index
            session.run(python, "-m", "pip", "install", "--quiet", "--find-links", str(out),
                        str(wheels["asm-core"]), str(wheel), external=True)  # fmt: skip
            listing = session.run(str(Path(tmp) / "bin" / "asm"), "plugins", external=True, silent=True)
            if not isinstance(listing, str) or "BROKEN" in listing or name not in listing:
                session.error(f"{name} alone: asm plugins says\n{listing}")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; each writes its figures into docs/performance.md."""
    sync(session, "--all-packages", "--group", "bench")
    scripts = sorted((ROOT / "benchmarks").glob("[!_]*.py"))  # _report.py is a helper
    # scale_out last: its worker processes and databases keep PostgreSQL and the CPU busy for a
    # while after it ends, which the benchmarks after it would measure.
    scripts.sort(key=lambda script: script.name == "scale_out.py")
    for script in scripts:
        session.run("python", str(script.relative_to(ROOT)), *session.posargs)
