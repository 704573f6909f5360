#!/usr/bin/env bash
# Run every example offline with the current environment's python and asm, and
# fail on the first failure (each example asserts on what it demonstrates).
#
# The custom plugin must be installed in that environment first, as the nox
# "examples" session does:
#     uv pip install --no-deps examples/custom_provider_plugin
set -euo pipefail
cd "$(dirname "$0")"

header() { printf '\n=== %s ===\n' "$*"; }
fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# Every script here, in name order, so a new example is picked up without editing this file.
for script in *.py; do
    header "python $script"
    python "$script"
done

# The plugin is found through its entry point (group "asm"), with no code change in asm.
header "asm plugins"
plugins="$(asm plugins)"
echo "$plugins"
grep -Eq '^  providers: (.*, )?reverse(,|$)' <<<"$plugins" ||
    fail "'asm plugins' does not list the reverse provider; install examples/custom_provider_plugin"

header "asm run --provider reverse hello"
output="$(asm run --provider reverse "hello")"
echo "$output"
[[ "$output" == "olleh" ]] || fail "expected 'olleh' from the reverse provider, got '$output'"

# The plugin's own tests (asm's ProviderContract), where pytest and asm.testing are installed.
header "pytest custom_provider_plugin/tests"
if python -c "import pytest, pytest_trio, asm.testing" 2>/dev/null; then
    (cd custom_provider_plugin && python -m pytest -q -p no:cacheprovider tests)
else
    echo "skipped: pytest, pytest-trio or asm.testing is not installed here"
fi

header "all examples passed"
