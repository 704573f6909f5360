"""Tools a provider offers the model: a name, a description, a JSON schema and a Python callable.

API providers (``claude``, ``openai``) run the tool loop themselves: the model
asks for a tool, asm calls the callable, the result (or the error) goes back to
the model, until the model stops. Give tools per run or register them from a
plugin::

    def get_weather(location: str, unit: str = "celsius") -> str:
        \"\"\"The current weather at a place.\"\"\"
        return f"18 degrees {unit} in {location}"

    weather = Tool.from_function(get_weather)
    run = await runtime.run_once("Weather in Paris?", options={"tools": [weather]})

    @asm.hookimpl
    def asm_register_tools(register):
        register("get_weather", lambda config: Tool.from_function(get_weather))

The callable gets the model's input as keyword arguments. It may be sync or
async; a sync callable runs in the trio thread unless ``thread=True`` (then in
``trio.to_thread``, for blocking work). Whatever it returns goes back to the
model (a ``str`` as is, anything else as JSON); whatever it raises goes back as
an error result and becomes a ``tool_call_failed`` event.

Whether a call may run is asked of ``emit.authorize_tool``: the run's policies
decide first (a denied tool never runs; the model is told), and where they say
nothing, ``permission_mode`` does: ``default`` asks (the ``asm_approve_tool``
hook; denied when no hook answers), ``accept_all`` runs every call, ``deny_all``
none. A provider using this declares ``Capabilities(authorizes_tools=True)``.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, TypeVar

import attrs
import trio
from attrs import AttrsInstance

from asm.config import close_match
from asm.errors import AsmError
from asm.events import ToolCallCompleted, ToolCallFailed
from asm.plugins import PluginRegistry, load_plugins, parse_options
from asm.ports import Emit

__all__ = [
    "PERMISSION_MODES",
    "CheckedOptions",
    "PermissionMode",
    "Tool",
    "ToolOutcome",
    "coerce_tools",
    "execute_tool_call",
    "override_options",
    "registered_tools",
    "run_options",
    "run_tools",
]

PermissionMode = Literal["default", "accept_all", "deny_all"]

#: The values ``permission_mode`` accepts.
PERMISSION_MODES: Final = ("default", "accept_all", "deny_all")

_JSON_TYPES: Final[dict[object, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
}


@attrs.frozen
class Tool:
    """A tool the model may call: ``function(**input)``, sync or async.

    ``input_schema`` is the JSON schema of the input object (``{"type":
    "object", "properties": ...}``); ``thread=True`` runs a sync function in a
    worker thread so a blocking call does not stall the run.
    """

    name: str
    description: str
    input_schema: dict[str, Any]
    function: Callable[..., Any] = attrs.field(eq=False)
    thread: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name) or len(self.name) > 64:
            raise AsmError(
                "validation_error",
                f"tool name {self.name!r} is invalid; use 1-64 letters, digits, '_' or '-'",
            )
        if not callable(self.function):
            raise AsmError("validation_error", f"tool {self.name!r} needs a callable function, not {self.function!r}")
        if not isinstance(self.input_schema, dict) or self.input_schema.get("type", "object") != "object":
            raise AsmError(
                "validation_error",
                f"tool {self.name!r}: input_schema must be a JSON schema dict of type 'object'",
            )

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        thread: bool = False,
    ) -> Tool:
        """A tool from a function: the name is the function's, the description
        its docstring, and the schema is inferred from its parameters (``str``,
        ``int``, ``float``, ``bool``, ``list``, ``dict`` and optional ones)
        unless given.

        >>> def add(a: int, b: int = 0) -> int:
        ...     "Add two numbers."
        ...     return a + b
        >>> Tool.from_function(add).input_schema["required"]
        ['a']
        """
        tool_name = name or str(getattr(function, "__name__", ""))
        doc = description if description is not None else inspect.getdoc(function) or ""
        schema = dict(input_schema) if input_schema is not None else _infer_schema(function)
        return cls(tool_name, doc, schema, function, thread)

    async def call(self, arguments: Mapping[str, Any]) -> Any:
        """Call the function with ``arguments`` as keyword arguments and return its result."""
        if self.thread and not inspect.iscoroutinefunction(self.function):
            return await trio.to_thread.run_sync(lambda: self.function(**arguments))
        result = self.function(**arguments)
        if inspect.isawaitable(result):
            result = await result
        return result


def _infer_schema(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
    except (TypeError, ValueError, NameError):
        return {"type": "object", "properties": {}}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        properties[parameter.name] = _json_type(hints.get(parameter.name))
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _json_type(hint: object) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _json_type(members[0]) if len(members) == 1 else {}
    kind = _JSON_TYPES.get(origin if origin is not None else hint)
    return {"type": kind} if kind is not None else {}


def coerce_tools(value: object, *, where: str = "tools") -> tuple[Tool, ...]:
    """Turn ``value`` (a :class:`Tool`, a function, or an iterable of either)
    into tools; a plain function becomes :meth:`Tool.from_function`. Two tools
    with one name are a ``validation_error``."""
    if value is None:
        return ()
    items: Iterable[object] = (
        [value] if isinstance(value, Tool) or callable(value) else value  # type: ignore[assignment]
    )
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise AsmError("validation_error", f"{where} must be a list of asm.tools.Tool or functions, not {value!r}")
    tools: list[Tool] = []
    for item in items:
        if isinstance(item, Tool):
            tools.append(item)
        elif callable(item):
            tools.append(Tool.from_function(item))
        else:
            raise AsmError("validation_error", f"{where}: {item!r} is not an asm.tools.Tool or a function")
    names = [tool.name for tool in tools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AsmError("validation_error", f"{where}: tool names must be unique; repeated: {', '.join(duplicates)}")
    return tuple(tools)


@attrs.frozen
class ToolOutcome:
    """How one tool call ended: the text to send back to the model and whether it is an error."""

    content: str
    is_error: bool = False


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _json_ready(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return _as_text(value)


async def execute_tool_call(
    tools: Mapping[str, Tool],
    tool_call_id: str,
    tool_name: str,
    tool_input: dict[str, Any],
    *,
    emit: Emit,
    permission_mode: str = "default",
) -> ToolOutcome:
    """Run one tool call the model asked for (its ``tool_call_started`` is
    already emitted): check permission, call the tool, emit
    ``tool_call_completed`` or ``tool_call_failed``, and return what goes back
    to the model. A tool's exception never escapes: it becomes an error result."""
    tool = tools.get(tool_name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        message = f"no tool named {tool_name!r} is available (available: {known})"
        await emit(ToolCallFailed(tool_call_id, tool_name, message))
        return ToolOutcome(message, is_error=True)
    default = {"deny_all": "deny", "accept_all": "allow"}.get(permission_mode, "ask")
    allowed = await emit.authorize_tool(tool_call_id, tool_name, tool_input, default=default)
    if not allowed:
        message = f"permission to run tool {tool_name!r} was denied"
        await emit(ToolCallFailed(tool_call_id, tool_name, message))
        return ToolOutcome(message, is_error=True)
    try:
        result = await tool.call(tool_input)
    except Exception as exc:  # noqa: BLE001 - a tool's failure goes back to the model, never up
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await emit(ToolCallFailed(tool_call_id, tool_name, message))
        return ToolOutcome(message, is_error=True)
    await emit(ToolCallCompleted(tool_call_id, tool_name, _json_ready(result)))
    return ToolOutcome(_as_text(result))


def run_tools(value: object, known: dict[str, Tool]) -> dict[str, Tool]:
    """The run option ``tools``: the run's whole tool set. A name picks one of
    the provider's tools (serializable, so durable stores can keep the run's
    options); a :class:`~asm.tools.Tool` or a function adds one for this run."""
    items: list[object] = list(value) if isinstance(value, list | tuple) else [value]
    names = [item for item in items if isinstance(item, str)]
    unknown = [name for name in names if name not in known]
    if unknown:
        available = ", ".join(sorted(known)) or "none"
        raise AsmError(
            "invalid_input",
            f"run option 'tools' names unknown tool{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the provider has: {available}",
        )
    try:
        given = coerce_tools([item for item in items if not isinstance(item, str)], where="run option 'tools'")
    except (AsmError, TypeError) as exc:
        raise AsmError(
            "invalid_input", f"run option 'tools' must be a list of tool names, asm.Tool values or functions ({exc})"
        ) from None
    chosen = {name: known[name] for name in names}
    for tool in given:
        chosen[tool.name] = tool
    return chosen


class CheckedOptions(AttrsInstance, Protocol):
    """A provider's options class (frozen attrs) that checks its own ranges."""

    def check(self, where: str, code: str) -> None:
        """Raise ``code`` naming the bad value, if any option is out of range."""
        ...


OptionsT = TypeVar("OptionsT", bound=CheckedOptions)


def override_options(options: OptionsT, changes: Mapping[str, Any], what: str) -> OptionsT:
    """``options`` with ``changes`` applied, parsed as a config table would be
    (``invalid_config`` naming a bad key or value); not yet range-checked."""
    if not changes:
        return options
    return parse_options(type(options), {**attrs.asdict(options, recurse=False), **changes}, what)


def registered_tools(names: Sequence[str], registry: PluginRegistry | None = None) -> list[Tool]:
    """The tools plugins registered (``asm_register_tools``) under ``names``,
    built by ``registry`` (default: the installed plugins); an unknown name is
    ``plugin_not_found``."""
    if not names:
        return []
    registry = registry if registry is not None else load_plugins()
    return [registry.create("tools", name) for name in names]


def run_options(
    provider: str, options: OptionsT, tools: Sequence[Tool], given: Mapping[str, Any], allowed: frozenset[str]
) -> tuple[OptionsT, dict[str, Tool]]:
    """A tool-loop provider's options and tools for one run: ``options`` with
    the run's own ``given`` (``RunInput.options``; only keys in ``allowed``),
    checked again, and the tools by name (``given["tools"]`` picks and adds
    them, see :func:`run_tools`). Bad run options are ``invalid_input``.

    >>> run_options("claude", options, tools, {"max_turns": 3}, RUN_KEYS)  # doctest: +SKIP
    (ClaudeOptions(model='claude-sonnet-4-6', ..., max_turns=3, ...), {...})
    """
    known = {tool.name: tool for tool in tools}
    if not given:
        return options, known
    unknown = sorted(set(given) - allowed)
    if unknown:
        close = close_match(unknown[0], allowed)
        hint = f"; did you mean {close!r}?" if close else ""
        raise AsmError(
            "invalid_input",
            f"unknown {provider} run option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(sorted(allowed))}{hint}",
        )
    chosen = run_tools(given["tools"], known) if "tools" in given else known
    changes = {k: v for k, v in given.items() if k != "tools"}
    if not changes:
        return options, chosen
    try:
        merged = override_options(options, changes, provider)
    except AsmError as exc:
        raise AsmError("invalid_input", f"invalid {provider} run options: {exc.message}") from None
    merged.check(f"{provider} run options", "invalid_input")
    return merged, chosen
