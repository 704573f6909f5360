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

from importlib import metadata as _metadata

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

try:
    #: the installed asm-core distribution's version (``"0+unknown"`` when asm is not installed)
    __version__: str = _metadata.version("asm-core")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree on sys.path, not installed
    __version__ = "0+unknown"

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
