"""What the studio view says about a tool call: a line while it runs, a summary when it ends.

Common tools have their own wording (``Reading src/app.py`` → ``Read src/app.py (72 lines)``);
any other tool gets the generic one (``Running lookup`` → ``lookup done``). Inputs are read
under the names the providers use (``file_path`` and ``path``, ``command`` and ``cmd``, ...).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import attrs

__all__ = ["ToolSummary", "output_lines", "summarize"]

#: How much of one input value a line shows.
_SHOWN: Final = 60


@attrs.frozen
class ToolSummary:
    """The words of one tool call: ``active`` while it runs, ``done`` after it."""

    active: str
    done: str


def _first(tool_input: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = tool_input.get(key)
        if value is None:
            continue
        if isinstance(value, list | tuple):  # an argv
            value = " ".join(str(part) for part in value)
        return _short(str(value))
    return ""


def _short(text: str, limit: int = _SHOWN) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def output_text(output: Any) -> str:
    """A tool's output as text: a string as it is, ``content``/``output``/``stdout`` of a
    dict, a list of text blocks joined, anything else as JSON."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        for key in ("content", "output", "aggregated_output", "stdout", "text", "result"):
            if key in output:
                return output_text(output[key])
    if isinstance(output, list) and all(isinstance(block, dict) and "text" in block for block in output):
        return "\n".join(str(block["text"]) for block in output)
    try:
        return json.dumps(output, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(output)


def output_lines(output: Any) -> list[str]:
    """A tool's output as lines (none for no output)."""
    text = output_text(output)
    return text.splitlines() if text else []


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _exit_code(output: Any) -> int | None:
    if isinstance(output, dict):
        for key in ("exit_code", "exitCode", "returncode", "status"):
            if isinstance(output.get(key), int):
                return int(output[key])
    return None


def _read(tool_input: dict[str, Any], output: Any) -> tuple[str, str]:
    path = _first(tool_input, "file_path", "path", "filename", "file")
    return f"Reading {path}", f"Read {path} ({_count(len(output_lines(output)), 'line')})"


def _write(tool_input: dict[str, Any], _output: Any) -> tuple[str, str]:
    path = _first(tool_input, "file_path", "path", "filename", "file")
    content = tool_input.get("content", tool_input.get("text"))
    lines = f" ({_count(len(str(content).splitlines()), 'line')})" if isinstance(content, str) else ""
    return f"Writing {path}", f"Wrote {path}{lines}"


def _edit(tool_input: dict[str, Any], _output: Any) -> tuple[str, str]:
    path = _first(tool_input, "file_path", "path", "filename", "file")
    edits = tool_input.get("edits")
    pairs = (
        [(e.get("old_string", ""), e.get("new_string", "")) for e in edits if isinstance(e, dict)]
        if isinstance(edits, list)
        else [(tool_input.get("old_string", ""), tool_input.get("new_string", ""))]
    )
    removed = sum(len(str(old).splitlines()) for old, _ in pairs)
    added = sum(len(str(new).splitlines()) for _, new in pairs)
    change = f" (+{added} -{removed})" if added or removed else ""
    return f"Editing {path}", f"Edited {path}{change}"


def _command(tool_input: dict[str, Any], output: Any) -> tuple[str, str]:
    command = _first(tool_input, "command", "cmd", "argv", "script")
    code = _exit_code(output)
    lines = len(output_lines(output))
    detail = ", ".join(
        part for part in (f"exit {code}" if code is not None else "", _count(lines, "line") if lines else "") if part
    )
    return f"Running {command}", f"Ran {command}" + (f" ({detail})" if detail else "")


def _grep(tool_input: dict[str, Any], output: Any) -> tuple[str, str]:
    pattern = _first(tool_input, "pattern", "query", "regex")
    where = _first(tool_input, "path", "glob")
    place = f" in {where}" if where else ""
    found = len(output_lines(output))
    return f"Searching {pattern}{place}", f"Searched {pattern}{place} ({_count(found, 'match', 'matches')})"


def _glob(tool_input: dict[str, Any], output: Any) -> tuple[str, str]:
    pattern = _first(tool_input, "pattern", "glob", "path")
    found = len(output_lines(output))
    return f"Finding {pattern}", f"Found {_count(found, 'file')} for {pattern}"


def _fetch(tool_input: dict[str, Any], output: Any) -> tuple[str, str]:
    url = _first(tool_input, "url", "uri")
    size = len(output_text(output).encode())
    return f"Fetching {url}", f"Fetched {url} ({_count(size, 'byte')})"


def _search(tool_input: dict[str, Any], _output: Any) -> tuple[str, str]:
    query = _first(tool_input, "query", "q")
    return f"Searching the web for {query}", f"Searched the web for {query}"


def _todo(tool_input: dict[str, Any], _output: Any) -> tuple[str, str]:
    todos = tool_input.get("todos")
    count = f" ({_count(len(todos), 'item')})" if isinstance(todos, list) else ""
    return "Updating the todo list", f"Updated the todo list{count}"


def _task(tool_input: dict[str, Any], _output: Any) -> tuple[str, str]:
    what = _first(tool_input, "description", "prompt")
    return f"Delegating {what}", f"Delegated {what}"


_BY_NAME: Final[dict[str, Callable[[dict[str, Any], Any], tuple[str, str]]]] = {
    "read": _read,
    "read_file": _read,
    "view": _read,
    "write": _write,
    "write_file": _write,
    "create_file": _write,
    "edit": _edit,
    "multiedit": _edit,
    "edit_file": _edit,
    "str_replace": _edit,
    "bash": _command,
    "shell": _command,
    "command_execution": _command,
    "exec": _command,
    "run_command": _command,
    "grep": _grep,
    "search": _grep,
    "glob": _glob,
    "ls": _glob,
    "list_files": _glob,
    "webfetch": _fetch,
    "web_fetch": _fetch,
    "fetch": _fetch,
    "websearch": _search,
    "web_search": _search,
    "todowrite": _todo,
    "task": _task,
}


def summarize(tool_name: str, tool_input: dict[str, Any], output: Any = None) -> ToolSummary:
    """The running line and the summary of a call of ``tool_name``.

    >>> summarize("Read", {"file_path": "src/app.py"}, "a\\nb").done
    'Read src/app.py (2 lines)'
    >>> summarize("lookup", {"id": 7}).active
    'Running lookup id=7'
    """
    known = _BY_NAME.get(tool_name.lower().replace("-", "_"))
    if known is not None:
        active, done = known(tool_input, output)
        return ToolSummary(active, done)
    shown = " ".join(f"{key}={_short(_value(value), 30)}" for key, value in list(tool_input.items())[:2])
    lines = len(output_lines(output))
    return ToolSummary(
        f"Running {tool_name}" + (f" {shown}" if shown else ""),
        f"{tool_name}" + (f" {shown}" if shown else "") + (f" ({_count(lines, 'line')})" if lines else " done"),
    )


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
