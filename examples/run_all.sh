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

# The CLI providers' examples (codex_direct.py, amp_direct.py, claude_code_direct.py,
# shell_exec.py) ran in the loop above, against the fake CLIs in fakes/. The shell
# provider from the command line: everything after `--` is the command.
header "asm run --provider shell -- uname -s"
output="$(asm run --provider shell -- uname -s)"
echo "$output"
[[ "$output" == "$(uname -s)" ]] || fail "expected '$(uname -s)' from the shell provider, got '$output'"

# The API providers' examples (claude_direct.py, openai_direct.py, tool_loop.py) ran in the
# loop above, against the fake servers their plugins ship. From the command line: start a fake
# server (it prints its base URL), point the provider at it, ask, stop the server.
api_run() {
    local module="$1" provider="$2" key_var="$3" prompt="$4"
    local out pid url="" output
    out="$(mktemp)"
    python -m "$module" >"$out" &
    pid=$!
    for _ in $(seq 300); do
        url="$(head -n 1 "$out")"
        [[ -n "$url" ]] && break
        sleep 0.1
    done
    [[ -n "$url" ]] || { kill "$pid"; fail "python -m $module printed no URL"; }
    header "asm run --provider $provider \"$prompt\" (base_url $url)"
    local upper="${provider^^}"
    output="$(env "ASM_PROVIDERS__${upper}__BASE_URL=$url" "$key_var=fake" ASM_STORE=memory asm run --provider "$provider" "$prompt")" ||
        { kill "$pid"; fail "asm run --provider $provider failed against the fake server"; }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$out"
    echo "$output"
    [[ "$output" == "$prompt" ]] || fail "expected '$prompt' back from the fake $provider server, got '$output'"
}
api_run asm_claude.testing claude ANTHROPIC_API_KEY "hello from the fake Anthropic API"
api_run asm_openai.testing openai OPENAI_API_KEY "hello from the fake OpenAI API"
api_run asm_gemini.testing gemini GEMINI_API_KEY "hello from the fake Gemini API"

header "all examples passed"
