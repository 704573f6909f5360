"""The CLI half of the provider kit: one robust subprocess runner for the
providers that drive a CLI (codex, amp, claude-code, shell), and the base
classes they are written on.

::

    env = build_env(extra_allow=("OPENAI_API_KEY",), set={"CODEX_HOME": home})
    exe = find_executable("codex", provider="codex", install_hint="npm install -g @openai/codex")
    async with open_cli_process([exe, "exec", "--json", prompt], provider="codex", env=env) as proc:
        while lines := await proc.receive_lines():
            for line in lines:
                event = parse_json_line(line)
                ...
        exit_code = await proc.wait()
        if exit_code != 0:
            raise proc.error("exit", f"codex exited with status {exit_code}")

What it guarantees:

- the child runs in its own process group (its stdin is ``/dev/null`` unless
  ``stdin=`` gives bytes), with an environment built from an allow-list plus
  explicit additions (:func:`build_env`), in ``cwd`` (checked first);
- stdout is framed into lines with a maximum length (a longer line is a
  ``provider_error`` of kind ``line_too_long``, never unbounded memory); the
  lines that arrived in one read come as one batch, so a provider can coalesce
  a burst of text deltas;
- stderr is drained all along into a bounded buffer (the child never blocks on
  a full pipe) and reported cut to ``error_text_max_bytes`` /
  ``error_text_max_lines`` (:func:`asm.model.truncate_text`);
- leaving the ``async with`` early - an error, cancellation, ``timeout`` -
  sends SIGTERM to the whole group, then SIGKILL after ``terminate_grace``
  seconds, and reaps the child; after a normal exit, group members the CLI
  left behind get the same treatment. No child, grandchild or zombie survives
  (a process that moves itself to another process group or session escapes
  any process-group based runner; use a container for hostile code).

A provider for an agent CLI subclasses :class:`CLIAgentProvider`: it declares
its name, executable, install hint, options class and flags, and supplies its
argv builder (:meth:`~CLIAgentProvider.command`) and its line translator (a
:class:`LineTranslator`: one JSON line -> asm payloads); the base does option
checks, resume, tool lists, discovery, the process and the error mapping. See
docs/writing-plugins.md, "A CLI-agent provider".

The public names are re-exported here from private modules: ``_runner``
(the process), ``_translate`` (lines -> payloads, failures -> errors),
``_stream_json`` (the Claude Code / Amp format) and ``_provider`` (the bases).
"""

from ._provider import CLIAgentProvider as CLIAgentProvider
from ._provider import CLICommand as CLICommand
from ._provider import CLIOptions as CLIOptions
from ._provider import CLIProvider as CLIProvider
from ._provider import run_options as run_options
from ._runner import DEFAULT_ENV_ALLOWLIST as DEFAULT_ENV_ALLOWLIST
from ._runner import DEFAULT_MAX_LINE_BYTES as DEFAULT_MAX_LINE_BYTES
from ._runner import DEFAULT_TERMINATE_GRACE as DEFAULT_TERMINATE_GRACE
from ._runner import CLIProcess as CLIProcess
from ._runner import IncrementalText as IncrementalText
from ._runner import build_env as build_env
from ._runner import check_cwd as check_cwd
from ._runner import find_executable as find_executable
from ._runner import open_cli_process as open_cli_process
from ._runner import parse_json_line as parse_json_line
from ._stream_json import StreamJsonTranslator as StreamJsonTranslator
from ._translate import JsonLineReader as JsonLineReader
from ._translate import LineTranslator as LineTranslator
from ._translate import classify_failure as classify_failure
from ._translate import exit_error as exit_error

__all__ = [
    "DEFAULT_ENV_ALLOWLIST",
    "DEFAULT_MAX_LINE_BYTES",
    "DEFAULT_TERMINATE_GRACE",
    "CLIAgentProvider",
    "CLICommand",
    "CLIOptions",
    "CLIProcess",
    "CLIProvider",
    "IncrementalText",
    "JsonLineReader",
    "LineTranslator",
    "StreamJsonTranslator",
    "build_env",
    "check_cwd",
    "classify_failure",
    "exit_error",
    "find_executable",
    "open_cli_process",
    "parse_json_line",
    "run_options",
]
