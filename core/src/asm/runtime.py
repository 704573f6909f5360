"""Assembling a runtime from config: store, providers, renderer and sinks by plugin name.

>>> async def main():
...     async with open_runtime(provider="echo") as rt:
...         run = await rt.run_once("hello")
...         print(run.output)

``assemble(config)`` builds the objects; ``open_runtime`` also opens the ones
that need it (anything that is an async context manager) and closes them all
when the block ends.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from asm.concurrency import ConcurrencyLimiter
from asm.config import AsmConfig, ConfigWarning, LoadedConfig, load_config, typo_of
from asm.cost import Pricing, pricing_table_from_config
from asm.errors import AsmError
from asm.manager import SessionManager
from asm.model import Capabilities, Run, RunInput, RunResult
from asm.plugins import PluginRegistry, load_plugins
from asm.policy import Policy
from asm.ports import ArtifactStore, Emit, EventCallback, Provider, Renderer, SessionStore, Sink
from asm.redaction import EventRedactor
from asm.rendering import RenderingPipeline
from asm.retry import RetryPolicy, with_retries
from asm.workspace import WorkspaceOptions

if TYPE_CHECKING:
    from asm.pubsub import Subscription

__all__ = ["Runtime", "assemble", "check_plugin_tables", "open_runtime"]


@attrs.define
class Runtime:
    """Everything a configured application needs, built from plugins."""

    config: AsmConfig
    registry: PluginRegistry
    store: SessionStore
    artifact_store: ArtifactStore
    renderer: Renderer
    sinks: list[Sink]
    manager: SessionManager
    rendering: RenderingPipeline | None = None
    #: shared by every SessionServer opened on this runtime
    limiter: ConcurrencyLimiter = attrs.field(factory=ConcurrencyLimiter)
    sources: LoadedConfig | None = None
    #: the ``[retry]`` policy every provider of this runtime is wrapped in (``None``: no retries)
    retry: RetryPolicy | None = None
    _providers: dict[str, Provider] = attrs.field(factory=dict)

    def provider(self, name: str | None = None) -> Provider:
        """The provider ``name`` (default: the configured one), built once from its config
        table, and retried as ``[retry]`` says (:mod:`asm.retry`)."""
        name = name or self.config.provider
        if name not in self._providers:
            self._providers[name] = with_retries(_create(self, "providers", name), self.retry)
        return self._providers[name]

    async def run_once(
        self,
        input: object,
        *,
        provider: str | Provider | None = None,
        on_event: EventCallback | None = None,
        **kwargs: Any,
    ) -> Run:
        """:meth:`SessionManager.run_once` on this runtime's store and provider."""
        chosen = provider if provider is not None and not isinstance(provider, str) else self.provider(provider)
        return await self.manager.run_once(input, provider=chosen, on_event=on_event, **kwargs)

    def subscribe(self, session_id: str, **options: Any) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """A durable subscription to any session of this runtime: its stored events
        after ``after=``, then live ones (see :func:`asm.pubsub.open_subscription`).

        >>> async with runtime.subscribe(session_id, after=0) as events:  # doctest: +SKIP
        ...     async for event in events: ...
        """
        from asm.pubsub import open_subscription

        return open_subscription(self, session_id, **options)

    async def aclose_providers(self) -> None:
        """Close the providers built so far that hold resources (``aclose``): all
        of them, even if one fails; then raise the first failure."""
        errors: list[Exception] = []
        for provider in self._providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # noqa: BLE001 - raised below, after every provider is closed
                    errors.append(exc)
        if errors:
            raise errors[0]


def _create(
    runtime_or_config: Runtime | tuple[AsmConfig, PluginRegistry, LoadedConfig | None], kind: str, name: str
) -> Any:
    if isinstance(runtime_or_config, Runtime):
        config, registry, loaded = runtime_or_config.config, runtime_or_config.registry, runtime_or_config.sources
    else:
        config, registry, loaded = runtime_or_config
    table = config.plugin_config(kind, name)
    try:
        return registry.create(kind, name, table)
    except AsmError as exc:
        if exc.code != "invalid_config":
            raise
        where = _origins(loaded, kind, name, table)
        raise AsmError(
            "invalid_config",
            f"[{kind}.{name}] (from {where}): {exc.message}",
            details={**exc.details, "origin": where},
        ) from None


def _origins(loaded: LoadedConfig | None, kind: str, name: str, table: dict[str, Any]) -> str:
    """Where a plugin table's keys were set: ``project config /x/asm.toml``, or several layers."""
    if loaded is None:
        return "config"
    origins = [loaded.source_of(f"{kind}.{name}.{key}") for key in table] or [loaded.source_of(f"{kind}.{name}")]
    return " and ".join(dict.fromkeys(origins))


#: Kinds whose ``[<kind>.<name>]`` tables only configure the plugin of that name. (A
#: ``[policies.<name>]`` or ``[pricing.<name>]`` table is a policy or a price list in itself.)
_CONFIGURING_KINDS = ("providers", "stores", "artifact_stores", "renderers", "sinks", "tools")
_WHAT = {
    "providers": "provider",
    "stores": "store",
    "artifact_stores": "artifact store",
    "renderers": "renderer",
    "sinks": "sink",
    "tools": "tool",
}


def configured(registry: PluginRegistry, config: AsmConfig) -> PluginRegistry:
    """``registry`` with the config's plugin tables and named instances
    (:meth:`PluginRegistry.configured`)."""
    return registry.configured({kind: getattr(config, kind) for kind in _CONFIGURING_KINDS})


def check_plugin_tables(config: AsmConfig | LoadedConfig, registry: PluginRegistry) -> None:
    """Check that each plugin table of ``config`` names a plugin of ``registry``.

    A table named a letter or two away from an installed plugin (``[stores.sqlitee]``)
    is a typo: ``invalid_config`` with a did-you-mean. A table for a plugin that is not
    installed here (an ``asm.toml`` shared between machines) is ignored with a
    :class:`~asm.config.ConfigWarning` - except a ``[sinks.<name>]`` table, which asks
    for its sink, so assembling fails with ``plugin_not_found``. A table with a
    ``plugin`` key names its plugin itself (a named instance) and is not checked here.
    """
    loaded = config if isinstance(config, LoadedConfig) else None
    cfg = loaded.config if loaded is not None else config
    assert isinstance(cfg, AsmConfig)
    for kind in _CONFIGURING_KINDS:
        installed = registry.names(kind)
        tables: dict[str, dict[str, Any]] = getattr(cfg, kind)
        for name, table in tables.items():
            if name in installed or "plugin" in table:
                continue
            where = _origins(loaded, kind, name, table)
            typo = typo_of(name, installed)
            if typo is not None:
                raise AsmError(
                    "invalid_config",
                    f"[{kind}.{name}] (from {where}): no {_WHAT[kind]} named {name!r} is installed; "
                    f"did you mean [{kind}.{typo}]? Rename the table",
                    details={"kind": kind, "name": name, "origin": where, "did_you_mean": typo},
                )
            if kind != "sinks":
                warnings.warn(
                    ConfigWarning(
                        f"[{kind}.{name}] (from {where}) configures a {_WHAT[kind]} that is not installed here; "
                        f"it is ignored (installed: {', '.join(installed) or 'none'})"
                    ),
                    stacklevel=2,
                )


#: The embedded default store, in order of preference, when the config names none.
DEFAULT_STORES = ("sqlite", "memory")


def default_store(registry: PluginRegistry) -> str:
    """The store used when the config names none: ``sqlite`` when installed, else ``memory``."""
    installed = registry.names("stores")
    return next((name for name in DEFAULT_STORES if name in installed), "memory")


def assemble(
    config: AsmConfig | LoadedConfig | None = None,
    *,
    registry: PluginRegistry | None = None,
    on_event: EventCallback | None = None,
) -> Runtime:
    """Build a :class:`Runtime` (not yet opened) from ``config`` and the plugin registry.

    Unknown plugin names are ``plugin_not_found`` / ``provider_not_found``
    errors listing what is installed; plugin tables are checked by
    :func:`check_plugin_tables`.
    """
    loaded = config if isinstance(config, LoadedConfig) else None
    cfg = loaded.config if loaded is not None else (config if isinstance(config, AsmConfig) else AsmConfig())
    registry = configured(registry or load_plugins(), cfg)
    check_plugin_tables(loaded or cfg, registry)
    context = (cfg, registry, loaded)
    store = _create(context, "stores", cfg.store or default_store(registry))
    artifact_store = _create(context, "artifact_stores", cfg.artifact_store)
    renderer = _create(context, "renderers", cfg.renderer)
    sinks = [_create(context, "sinks", name) for name in cfg.sinks]
    _install_redactor(registry, cfg)
    _install_retention(registry, cfg, store)
    pricing = _pricing(context)
    policies = _policies(context)
    pipeline = RenderingPipeline(renderer, sinks) if sinks else None
    callback = _chain(pipeline, on_event)
    runtime = Runtime(
        config=cfg,
        registry=registry,
        store=store,
        artifact_store=artifact_store,
        renderer=renderer,
        sinks=sinks,
        rendering=pipeline,
        limiter=ConcurrencyLimiter(
            max_parallel_sessions=cfg.max_parallel_sessions, max_parallel_runs=cfg.max_parallel_runs
        ),
        manager=SessionManager(
            store,
            provider=_ConfiguredProvider(cfg.provider, lambda: runtime),
            providers=lambda name: runtime.provider(name),
            plugins=registry,
            on_event=callback,
            run_timeout=cfg.run_timeout,
            event_buffer_size=cfg.event_buffer_size,
            error_text_max_bytes=cfg.error_text_max_bytes,
            error_text_max_lines=cfg.error_text_max_lines,
            pricing=pricing,
            policies=policies,
            approval_timeout=cfg.approval_timeout,
            artifact_store=artifact_store,
            workspace=_workspace(cfg),
            continuation=cfg.continuation,
            continuation_max_tokens=cfg.continuation_max_tokens,
        ),
        sources=loaded,
        retry=_retry(cfg),
    )
    for instance in registry.instances():
        if instance.kind == "providers":
            # Built now: a mistake in a table the user wrote for a name of their own (a
            # router's members, weights, a cycle) is a config error here, not at a run.
            runtime.provider(instance.name)
    return runtime


def _pricing(context: tuple[AsmConfig, PluginRegistry, LoadedConfig | None]) -> Pricing | None:
    """Every registered pricing table (each given its ``[pricing.<name>]`` table),
    after the tables defined only in config, which win. No tables at all means
    cost tracking is off (no "unknown cost" warnings on every run)."""
    cfg, registry, loaded = context
    registered = registry.names("pricing")
    own = [
        pricing_table_from_config(name, table, origin=loaded.source_of(f"pricing.{name}") if loaded else None)
        for name, table in cfg.pricing.items()
        if name not in registered
    ]
    tables = [*own, *(_create(context, "pricing", name) for name in registered)]
    return Pricing(tables) if tables else None


def _policies(context: tuple[AsmConfig, PluginRegistry, LoadedConfig | None]) -> list[Policy]:
    """Every ``[policies.<name>]`` table: a policy a plugin registered under that
    name (given the table), else one built from the table itself."""
    cfg, registry, loaded = context
    registered = registry.names("policies")
    policies = []
    for name, table in cfg.policies.items():
        if name in registered:
            policy = _create(context, "policies", name)
            if not isinstance(policy, Policy):
                raise AsmError(
                    "invalid_config", f"policy plugin {name!r} returned {type(policy).__name__}, not a Policy"
                )
        else:
            origin = loaded.source_of(f"policies.{name}") if loaded else None
            policy = Policy.from_config(name, table, origin=origin)
        policies.append(policy)
    return policies


def _retry(cfg: AsmConfig) -> RetryPolicy | None:
    """The ``[retry]`` table as a policy, checked at assembly."""
    return RetryPolicy.from_config(cfg.retry) if cfg.retry is not None else None


def _workspace(cfg: AsmConfig) -> dict[str, Any] | None:
    """The ``[workspace]`` table, checked now: a mistake in it is a config error, not a failed run."""
    if cfg.workspace is not None:
        try:
            WorkspaceOptions.parse(cfg.workspace, where="[workspace]")
        except AsmError as exc:
            raise AsmError("invalid_config", exc.message, details={"key": "workspace"}) from None
    return cfg.workspace


REDACTOR_PLUGIN = "asm.redaction"


def _install_redactor(registry: PluginRegistry, cfg: AsmConfig) -> None:
    """Register (or replace, or remove) the secrets redactor the config asks for."""
    previous = registry.manager.get_plugin(REDACTOR_PLUGIN)
    if previous is not None:
        registry.manager.unregister(previous, name=REDACTOR_PLUGIN)
    if cfg.redact:
        registry.manager.register(EventRedactor(cfg.redact_patterns), name=REDACTOR_PLUGIN)


RETENTION_PLUGIN = "asm.retention"


def _install_retention(registry: PluginRegistry, cfg: AsmConfig, store: SessionStore) -> None:
    """Register (or replace, or remove) the ``[retention]`` policy's enforcer for ``store``."""
    from asm.retention import RetentionEnforcer, RetentionPolicy

    policy = RetentionPolicy.from_config(cfg.retention)  # checked at assembly: a mistake is invalid_config
    previous = registry.manager.get_plugin(RETENTION_PLUGIN)
    if previous is not None:
        registry.manager.unregister(previous, name=RETENTION_PLUGIN)
    if policy.configured:
        registry.manager.register(RetentionEnforcer(policy, store), name=RETENTION_PLUGIN)


class _ConfiguredProvider:
    """The configured provider as the runtime's manager's default: built from its plugin
    on first use, so assembling a runtime builds no provider it does not run."""

    def __init__(self, name: str, runtime: Callable[[], Runtime]) -> None:
        self.name = name
        self._runtime = runtime

    def capabilities(self) -> Capabilities:
        return self._runtime().provider(self.name).capabilities()

    async def execute(self, run: RunInput, emit: Emit) -> RunResult:
        return await self._runtime().provider(self.name).execute(run, emit)


def _chain(*callbacks: EventCallback | None) -> EventCallback | None:
    present = [c for c in callbacks if c is not None]
    if len(present) <= 1:
        return present[0] if present else None

    async def both(event: Any) -> None:
        for callback in present:
            outcome = callback(event)
            if outcome is not None:
                await outcome

    return both


@contextlib.asynccontextmanager
async def open_runtime(
    config: AsmConfig | LoadedConfig | None = None,
    *,
    config_file: str | Path | None = None,
    registry: PluginRegistry | None = None,
    on_event: EventCallback | None = None,
    **overrides: Any,
) -> AsyncIterator[Runtime]:
    """Load config (unless given), assemble, open stores and sinks; close them on exit.

    Keyword ``overrides`` are the highest config layer: ``open_runtime(provider="echo")``.
    """
    if config is None:
        config = load_config(overrides, config_file=config_file)
    elif overrides or config_file is not None:
        raise AsmError("validation_error", "pass either a config or overrides/config_file to open_runtime, not both")
    runtime = assemble(config, registry=registry, on_event=on_event)
    async with contextlib.AsyncExitStack() as stack:
        if runtime.rendering is not None:
            # First in, last out: the sinks are closed even if opening a store fails.
            stack.push_async_callback(runtime.rendering.aclose)
        for resource in (runtime.store, runtime.artifact_store):
            if hasattr(resource, "__aenter__"):
                await stack.enter_async_context(resource)  # type: ignore[arg-type]
            else:
                stack.push_async_callback(resource.aclose)
        stack.push_async_callback(runtime.aclose_providers)
        yield runtime
