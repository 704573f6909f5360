"""asm.tools: Tool values, schema inference, and running one tool call."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import pytest
import trio

import asm
from asm.events import EventData, ToolCallCompleted, ToolCallFailed
from asm.tools import Tool, ToolOutcome, coerce_tools, execute_tool_call


class RecordingEmit:
    """An Emit that records payloads and answers approvals with ``answer``."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.payloads: list[EventData] = []
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, data: EventData, /) -> None:
        self.payloads.append(data)

    async def request_approval(self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any]) -> bool:
        self.asked.append((tool_call_id, tool_name, tool_input))
        return self.answer

    async def authorize_tool(
        self, tool_call_id: str, tool_name: str, tool_input: dict[str, Any], *, default: str = "allow"
    ) -> bool:
        # As the manager does with no policy: the permission mode decides.
        if default == "ask":
            return await self.request_approval(tool_call_id, tool_name, tool_input)
        return default == "allow"


def add(a: int, b: int = 0, *, note: str | None = None, tags: list[str] | None = None) -> int:
    """Add two numbers.

    More text.
    """
    return a + b


def test_from_function_infers_name_description_and_schema() -> None:
    tool = Tool.from_function(add)
    assert tool.name == "add"
    assert tool.description == "Add two numbers.\n\nMore text."
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "integer"},
            "note": {"type": "string"},
            "tags": {"type": "array"},
        },
        "required": ["a"],
    }
    assert asm.Tool is Tool


def test_from_function_overrides() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "number"}}}
    tool = Tool.from_function(add, name="plus", description="Plus.", input_schema=schema, thread=True)
    assert (tool.name, tool.description, tool.input_schema, tool.thread) == ("plus", "Plus.", schema, True)


def test_tools_are_frozen_values() -> None:
    tool = Tool.from_function(add)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        tool.name = "x"  # type: ignore[misc]
    assert tool == Tool.from_function(add, thread=False)


@pytest.mark.parametrize(
    ("name", "schema", "function"),
    [
        ("", {"type": "object"}, add),
        ("has space", {"type": "object"}, add),
        ("x" * 65, {"type": "object"}, add),
        ("ok", {"type": "string"}, add),
        ("ok", {"type": "object"}, "not callable"),
    ],
    ids=["empty", "space", "long", "schema", "function"],
)
def test_invalid_tools_are_validation_errors(name: str, schema: dict[str, Any], function: Any) -> None:
    with pytest.raises(asm.AsmError) as info:
        Tool(name, "", schema, function)
    assert info.value.code == "validation_error"


async def test_call_sync_async_and_threaded() -> None:
    async def slow(x: int) -> int:
        await trio.lowlevel.checkpoint()
        return x * 3

    def where() -> bool:
        return threading.current_thread() is threading.main_thread()

    assert await Tool.from_function(add).call({"a": 2, "b": 3}) == 5
    assert await Tool.from_function(slow).call({"x": 2}) == 6
    assert await Tool.from_function(where).call({}) is True
    assert await Tool.from_function(where, thread=True).call({}) is False


def test_coerce_tools() -> None:
    tool = Tool.from_function(add)
    assert coerce_tools(None) == ()
    assert coerce_tools(add) == (tool,)
    assert coerce_tools([tool, Tool.from_function(add, name="other")])[1].name == "other"
    for bad in ("add", 42, [42], {"add": add}, [add, add]):
        with pytest.raises(asm.AsmError) as info:
            coerce_tools(bad)
        assert info.value.code == "validation_error"


async def test_execute_completes_with_a_json_value() -> None:
    emit = RecordingEmit()
    tools = {"add": Tool.from_function(add)}
    outcome = await execute_tool_call(tools, "t1", "add", {"a": 1, "b": 2}, emit=emit, permission_mode="accept_all")
    assert outcome == ToolOutcome("3")
    assert emit.payloads == [ToolCallCompleted("t1", "add", 3)]
    assert emit.asked == []


async def test_execute_non_json_results_become_text() -> None:
    emit = RecordingEmit()
    tools = {"obj": Tool.from_function(lambda: {"when": object()}, name="obj")}
    outcome = await execute_tool_call(tools, "t1", "obj", {}, emit=emit, permission_mode="accept_all")
    assert outcome.content.startswith('{"when": "<object object')
    (completed,) = emit.payloads
    assert isinstance(completed, ToolCallCompleted)
    assert isinstance(completed.tool_output, str)


async def test_execute_default_asks_and_a_denial_fails() -> None:
    emit = RecordingEmit(answer=False)
    tools = {"add": Tool.from_function(add)}
    outcome = await execute_tool_call(tools, "t1", "add", {"a": 1}, emit=emit)
    assert outcome == ToolOutcome("permission to run tool 'add' was denied", is_error=True)
    assert emit.asked == [("t1", "add", {"a": 1})]
    assert emit.payloads == [ToolCallFailed("t1", "add", "permission to run tool 'add' was denied")]


async def test_execute_deny_all_asks_nobody() -> None:
    emit = RecordingEmit()
    outcome = await execute_tool_call(
        {"add": Tool.from_function(add)}, "t1", "add", {"a": 1}, emit=emit, permission_mode="deny_all"
    )
    assert outcome.is_error
    assert emit.asked == []


async def test_execute_errors_become_error_results() -> None:
    def boom(**_: Any) -> None:
        raise KeyError("missing")

    emit = RecordingEmit()
    tools = {"boom": Tool.from_function(boom), "add": Tool.from_function(add)}
    raised = await execute_tool_call(tools, "t1", "boom", {}, emit=emit, permission_mode="accept_all")
    unknown = await execute_tool_call(tools, "t2", "nope", {}, emit=emit, permission_mode="accept_all")
    bad_args = await execute_tool_call(tools, "t3", "add", {"z": 1}, emit=emit, permission_mode="accept_all")
    assert raised == ToolOutcome("KeyError: 'missing'", is_error=True)
    assert unknown == ToolOutcome("no tool named 'nope' is available (available: add, boom)", is_error=True)
    assert bad_args.is_error
    assert bad_args.content.startswith("TypeError:")
    assert [type(p) for p in emit.payloads] == [ToolCallFailed] * 3


def test_run_tools_picks_by_name_adds_functions_and_names_unknown_ones() -> None:
    from asm.tools import run_tools

    known = {"add": Tool.from_function(add)}

    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    chosen = run_tools(["add", shout], known)
    assert sorted(chosen) == ["add", "shout"] and chosen["add"] is known["add"]
    with pytest.raises(asm.AsmError) as caught:
        run_tools(["add", "nope"], known)
    assert caught.value.code == "invalid_input" and "'nope'" in caught.value.message


@attrs.frozen
class _Options:
    model: str = "m1"
    max_turns: int = 10

    def check(self, where: str, code: str) -> None:
        if self.max_turns < 1:
            raise asm.AsmError(code, f"invalid {where}: max_turns must be >= 1, not {self.max_turns}")


def test_run_options_merge_a_run_s_overrides_and_tools() -> None:
    from asm.tools import run_options

    base = _Options()
    tools = [Tool.from_function(add)]
    allowed = frozenset({"model", "max_turns", "tools"})
    assert run_options("any", base, tools, {}, allowed) == (base, {"add": tools[0]})
    merged, chosen = run_options("any", base, tools, {"max_turns": 3, "tools": []}, allowed)
    assert merged == _Options(max_turns=3) and chosen == {}
    assert base == _Options(), "the provider's own options are untouched"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"colour": "red"}, "unknown any run option 'colour'; valid: max_turns, model, tools"),
        ({"max_turns": "many"}, "invalid any run options:"),
        ({"max_turns": 0}, "invalid any run options: max_turns must be >= 1, not 0"),
        ({"tools": ["nope"]}, "run option 'tools' names unknown tool 'nope'"),
    ],
)
def test_bad_run_options_are_invalid_input(given: dict[str, Any], says: str) -> None:
    from asm.tools import run_options

    with pytest.raises(asm.AsmError) as caught:
        run_options("any", _Options(), [Tool.from_function(add)], given, frozenset({"model", "max_turns", "tools"}))
    assert caught.value.code == "invalid_input" and says in caught.value.message


def test_override_options_parses_changes_as_config() -> None:
    from asm.tools import override_options

    base = _Options()
    assert override_options(base, {}, "any provider") is base
    assert override_options(base, {"model": "m2"}, "any provider") == _Options(model="m2")
    with pytest.raises(asm.AsmError) as caught:
        override_options(base, {"colour": "red"}, "any provider")
    assert caught.value.code == "invalid_config" and "unknown option 'colour'" in caught.value.message


def test_registered_tools_are_built_by_the_registry_given() -> None:
    from asm.tools import registered_tools

    class AddTool:
        @asm.hookimpl
        def asm_register_tools(self, register: Any) -> None:
            register("add", lambda config: Tool.from_function(add))

    registry = asm.load_plugins(extra=[AddTool()], env={})
    assert [tool.name for tool in registered_tools(["add"], registry)] == ["add"]
    assert registered_tools([], registry) == []
    with pytest.raises(asm.AsmError) as caught:
        registered_tools(["nope"], registry)
    assert caught.value.code == "plugin_not_found"
