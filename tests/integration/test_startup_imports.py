"""Start-up stays light: with every workspace plugin installed, ``asm --help`` and
``asm run --provider echo`` on the in-memory store import none of the plugins' heavy
dependencies; a plugin module imports what registration needs, its factories and
command handlers the rest. (Timings are in benchmarks/startup.py, not here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

#: Heavy dependencies of the plugins (the SDKs, SQLAlchemy and alembic, fsspec, redis,
#: OpenTelemetry, rich).
HEAVY = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "anthropic",
    "openai",
    "google.genai",
    "fsspec",
    "s3fs",
    "redis",
    "opentelemetry.sdk",
    "rich",
    "celery",
    "kombu",
    "starlette",
    "hypercorn",
)


PROBE = """
import io, json, sys
from asm.cli import run_cli
status = run_cli(sys.argv[1:], stdout=io.StringIO(), stderr=io.StringIO())
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def imported(*argv: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter holds after ``asm ARGV`` (in-memory store, no config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASM_")}
    env |= {"ASM_STORE": "memory", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env["ASM_LOAD_PLUGINS"] = ",".join(sorted({ep.name for ep in entry_points(group="asm")}))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["status"] == 0, result.stderr
    return set(report["modules"])


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if h in modules or any(m.startswith(f"{h}.") for m in modules))


@pytest.mark.parametrize("argv", [("--help",), ("run", "--provider", "echo", "hi"), ("plugins",)])
def test_a_light_command_imports_no_heavy_dependency(argv: tuple[str, ...], tmp_path: Path) -> None:
    modules = imported(*argv, tmp_path=tmp_path)

    assert heavy_in(modules) == []
    # every workspace plugin with an entry point was loaded all the same
    assert {"asm_sqlalchemy", "asm_fsspec", "asm_claude", "asm_openai", "asm_redis"} <= modules


#: asm's own runtime: trio, attrs and cattrs. ``asm --help`` (and ``--version``) only build
#: the command line, from every plugin's registrations and commands: none of these is needed.
RUNTIME = ("trio", "attrs", "attr", "cattrs", "asm.events", "asm.model", "asm.config", "asm.runtime")


@pytest.mark.parametrize("argv", [("--help",), ("--version",), ("db", "--help"), ("sessions", "list", "--help")])
def test_help_imports_not_even_the_runtime(argv: tuple[str, ...], tmp_path: Path) -> None:
    modules = imported(*argv, tmp_path=tmp_path)

    assert sorted(m for m in RUNTIME if m in modules) == []
    assert {"asm_sqlalchemy", "asm_rich", "asm_router", "asm_web"} <= modules  # the plugins were loaded


def test_a_command_that_needs_the_database_imports_it(tmp_path: Path) -> None:
    modules = imported("db", "upgrade", "--url", f"sqlite:///{tmp_path / 'x.db'}", tmp_path=tmp_path)

    assert "sqlalchemy" in modules
