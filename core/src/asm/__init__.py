"""asm: the Agent Session Manager.

Sessions and runs with enforced state machines, one normalized event stream
whatever the provider, durable event history, and every capability a plugin.

>>> import asm, trio
>>> async def main():
...     async with asm.open_runtime(provider="echo") as rt:
...         run = await rt.run_once("hello")
...     return run.output
>>> trio.run(main)
'hello'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str
    from asm.concurrency import ConcurrencyLimiter as ConcurrencyLimiter
    from asm.concurrency import LimiterStatus as LimiterStatus
    from asm.config import AsmConfig as AsmConfig
    from asm.config import load_config as load_config
    from asm.errors import AsmError as AsmError
    from asm.events import Event as Event
    from asm.events import EventData as EventData
    from asm.events import EventType as EventType
    from asm.hookspecs import Register as Register
    from asm.hookspecs import hookimpl as hookimpl
    from asm.manager import SessionManager as SessionManager
    from asm.model import Artifact as Artifact
    from asm.model import Capabilities as Capabilities
    from asm.model import Cost as Cost
    from asm.model import ErrorInfo as ErrorInfo
    from asm.model import Message as Message
    from asm.model import Page as Page
    from asm.model import ProcessIdentity as ProcessIdentity
    from asm.model import ProviderError as ProviderError
    from asm.model import Run as Run
    from asm.model import RunInput as RunInput
    from asm.model import RunOwner as RunOwner
    from asm.model import RunResult as RunResult
    from asm.model import Session as Session
    from asm.model import TokenUsage as TokenUsage
    from asm.plugins import load_plugins as load_plugins
    from asm.plugins import parse_options as parse_options
    from asm.ports import Emit as Emit
    from asm.ports import Provider as Provider
    from asm.providers.scripted import EchoProvider as EchoProvider
    from asm.providers.scripted import ScriptedProvider as ScriptedProvider
    from asm.pubsub import InProcessBroker as InProcessBroker
    from asm.pubsub import PubSubSink as PubSubSink
    from asm.pubsub import Subscription as Subscription
    from asm.pubsub import broker_for as broker_for
    from asm.pubsub import open_subscription as open_subscription
    from asm.pubsub import session_topic as session_topic
    from asm.runtime import Runtime as Runtime
    from asm.runtime import assemble as assemble
    from asm.runtime import open_runtime as open_runtime
    from asm.server import ServerStatus as ServerStatus
    from asm.server import SessionServer as SessionServer
    from asm.server import open_session_server as open_session_server
    from asm.states import RunStatus as RunStatus
    from asm.states import SessionStatus as SessionStatus
    from asm.stores.memory import InMemoryArtifactStore as InMemoryArtifactStore
    from asm.stores.memory import InMemorySessionStore as InMemorySessionStore
    from asm.stream import stream_session as stream_session
    from asm.tools import Tool as Tool

#: Where each public name lives. ``import asm`` imports none of them: a name's module is
#: imported when the name is first used (PEP 562), so the ``asm`` command (which loads every
#: plugin, and plugins import ``asm``) starts without trio, attrs and cattrs until it runs something.
_EXPORTS: dict[str, str] = {
    "ConcurrencyLimiter": "asm.concurrency",
    "LimiterStatus": "asm.concurrency",
    "AsmConfig": "asm.config",
    "load_config": "asm.config",
    "AsmError": "asm.errors",
    "Event": "asm.events",
    "EventData": "asm.events",
    "EventType": "asm.events",
    "Register": "asm.hookspecs",
    "hookimpl": "asm.hookspecs",
    "SessionManager": "asm.manager",
    "Artifact": "asm.model",
    "Capabilities": "asm.model",
    "Cost": "asm.model",
    "ErrorInfo": "asm.model",
    "Message": "asm.model",
    "Page": "asm.model",
    "ProcessIdentity": "asm.model",
    "ProviderError": "asm.model",
    "Run": "asm.model",
    "RunInput": "asm.model",
    "RunOwner": "asm.model",
    "RunResult": "asm.model",
    "Session": "asm.model",
    "TokenUsage": "asm.model",
    "load_plugins": "asm.plugins",
    "parse_options": "asm.plugins",
    "Emit": "asm.ports",
    "Provider": "asm.ports",
    "EchoProvider": "asm.providers.scripted",
    "ScriptedProvider": "asm.providers.scripted",
    "InProcessBroker": "asm.pubsub",
    "PubSubSink": "asm.pubsub",
    "Subscription": "asm.pubsub",
    "broker_for": "asm.pubsub",
    "open_subscription": "asm.pubsub",
    "session_topic": "asm.pubsub",
    "Runtime": "asm.runtime",
    "assemble": "asm.runtime",
    "open_runtime": "asm.runtime",
    "ServerStatus": "asm.server",
    "SessionServer": "asm.server",
    "open_session_server": "asm.server",
    "RunStatus": "asm.states",
    "SessionStatus": "asm.states",
    "InMemoryArtifactStore": "asm.stores.memory",
    "InMemorySessionStore": "asm.stores.memory",
    "stream_session": "asm.stream",
    "Tool": "asm.tools",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib import metadata

        try:
            #: the installed asm-core distribution's version (``"0+unknown"`` when asm is not installed)
            version = metadata.version("asm-core")
        except metadata.PackageNotFoundError:  # pragma: no cover - a source tree on sys.path, not installed
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'asm' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, "__version__"])


__all__ = [
    "__version__",
    "Artifact",
    "AsmConfig",
    "AsmError",
    "Capabilities",
    "ConcurrencyLimiter",
    "Cost",
    "EchoProvider",
    "Emit",
    "ErrorInfo",
    "Event",
    "EventData",
    "EventType",
    "InMemoryArtifactStore",
    "InMemorySessionStore",
    "InProcessBroker",
    "LimiterStatus",
    "Message",
    "Page",
    "Provider",
    "ProcessIdentity",
    "ProviderError",
    "PubSubSink",
    "Run",
    "RunInput",
    "RunOwner",
    "RunResult",
    "Register",
    "RunStatus",
    "Runtime",
    "ScriptedProvider",
    "ServerStatus",
    "Session",
    "SessionManager",
    "SessionServer",
    "SessionStatus",
    "Subscription",
    "TokenUsage",
    "Tool",
    "assemble",
    "broker_for",
    "hookimpl",
    "load_config",
    "load_plugins",
    "open_runtime",
    "open_session_server",
    "open_subscription",
    "parse_options",
    "session_topic",
    "stream_session",
]
