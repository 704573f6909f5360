"""Start-up time of the ``asm`` command with every installed plugin.

Wall time of ``asm --help`` and ``asm run --provider echo hi`` (on the in-memory store
and on the default SQLite store) as fresh processes, each as a ratio to
``python -c pass`` measured in the same sitting; with ``.pyc`` files (warm: the usual
case after the first run) and without (``PYTHONPYCACHEPREFIX`` pointing at an empty
directory and ``PYTHONDONTWRITEBYTECODE``: every module compiled from source, as on
the first run after an install that wrote no bytecode). Then ``python -X importtime``
of ``asm --help``: the slowest top-level imports.

    uv run --frozen python benchmarks/startup.py [--repeats 5] [--no-write]

Targets (issue #20): ``asm --help`` <= 150 ms, ``asm run --provider echo hi`` <= 400 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _report import best_and_median, stopwatch, write_section

ASM = str(Path(sys.executable).parent / "asm")
TARGETS = {"asm --help": 0.150, "asm run --provider echo hi (memory store)": 0.400}


NOTE = """\
`asm --help` imports neither trio, attrs nor cattrs (tests/integration/test_startup_imports.py
holds it to that): it pays for Python, pluggy, importlib.metadata reading every installed
distribution's entry points, and each plugin's registration module, which registers
`asm.plugins.lazy` factories. `asm run` needs the runtime (trio is about half of it); the SQLite
row adds SQLAlchemy and opening the database. Without .pyc files every module is compiled from
source: pip writes them at install, uv with `--compile-bytecode`."""


def timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    elapsed = stopwatch()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return elapsed()


def measure(repeats: int, cold: bool, cwd: str) -> dict[str, tuple[float, float]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASM_")}
    base |= {"HOME": cwd, "XDG_CONFIG_HOME": f"{cwd}/config", "XDG_DATA_HOME": f"{cwd}/data"}
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "asm --help": [ASM, "--help"],
        "asm run --provider echo hi (memory store)": [ASM, "run", "--provider", "echo", "hi"],
        "asm run --provider echo hi (SQLite store)": [ASM, "run", "--provider", "echo", "hi"],
    }
    results = {}
    for name, argv in commands.items():
        env = dict(base)
        if "memory" in name:
            env["ASM_STORE"] = "memory"
        if cold:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            timed(argv, env, cwd)  # writes the .pyc files (and creates the SQLite file)

        def once(argv: list[str] = argv, env: dict[str, str] = env) -> float:
            if cold:
                with tempfile.TemporaryDirectory() as prefix:
                    return timed(argv, {**env, "PYTHONPYCACHEPREFIX": prefix}, cwd)
            return timed(argv, env, cwd)

        results[name] = best_and_median(once, repeats)
    return results


def slowest_imports(cwd: str, count: int = 10) -> list[tuple[str, float]]:
    """The top-level imports of ``asm --help`` (with .pyc files) by cumulative time."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = "import sys; from asm.cli import run_cli; run_cli(['--help'])"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match and not match[2].startswith(" "):  # top level only
            rows.append((match[2], int(match[1]) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        warm = measure(args.repeats, cold=False, cwd=cwd)
        cold = measure(max(1, args.repeats // 2), cold=True, cwd=cwd)
        imports = slowest_imports(cwd)
    load = os.getloadavg()
    lines = [
        f"Every workspace plugin installed; {args.repeats} runs each with .pyc files, "
        f"{max(1, args.repeats // 2)} without; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        "| command | with .pyc: best / median | ratio to `python -c pass` | no .pyc: best / median | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for name in warm:
        (wb, wm), (cb, cm) = warm[name], cold[name]
        ratio_warm = wm / warm["python -c pass"][1]
        ratio_cold = cm / cold["python -c pass"][1]
        target = TARGETS.get(name)
        verdict = "" if target is None else f"{target * 1000:.0f} ms: {'met' if wm <= target else 'missed'}"
        lines.append(
            f"| `{name}` | {wb * 1000:.0f} / {wm * 1000:.0f} ms | {ratio_warm:.1f}x | "
            f"{cb * 1000:.0f} / {cm * 1000:.0f} ms | {ratio_cold:.1f}x | {verdict} |"
        )
    lines += ["", "Slowest top-level imports of `asm --help` (`python -X importtime`, cumulative, with .pyc):", ""]
    lines += [f"- `{module}` {seconds * 1000:.0f} ms" for module, seconds in imports]
    lines += ["", NOTE]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("startup", body)


if __name__ == "__main__":
    main()
