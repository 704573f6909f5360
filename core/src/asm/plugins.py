"""Plugin discovery and the registries built from it.

Plugins are entry points in the group ``asm`` (each a module with
``@asm.hookimpl`` functions); asm-core's own built-ins register through the
same hooks. ``ASM_LOAD_PLUGINS=a,b`` loads only the named entry points (or
distributions; empty loads none but the built-ins; a name that no installed
plugin has is an error, not a plugin quietly left out); ``ASM_TRACE_PLUGINS=1``
traces every hook call to stderr.

>>> registry = load_plugins()
>>> "echo" in registry.names("providers")
True
>>> provider = registry.create("providers", "echo", {})
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from types import ModuleType
from typing import Any, Final, TypeVar

import pluggy

from asm import hookspecs
from asm._spelling import close_match, typo_of
from asm.errors import AsmError

#: asm logs under the ``asm`` logger hierarchy and prints nothing itself (``asm -v`` shows it).
_LOG: Final = logging.getLogger("asm.plugins")
logging.getLogger("asm").addHandler(logging.NullHandler())

__all__ = [
    "KINDS",
    "LazyFactory",
    "parse_options",
    "BrokenPlugin",
    "PluginInfo",
    "PluginRegistry",
    "Registration",
    "lazy",
    "lazy_attributes",
    "load_plugins",
]

ENTRY_POINT_GROUP: Final = "asm"

T = TypeVar("T")

#: kind -> the registration hook that fills it
KINDS: Final[dict[str, str]] = {
    "providers": "asm_register_providers",
    "stores": "asm_register_stores",
    "artifact_stores": "asm_register_artifact_stores",
    "renderers": "asm_register_renderers",
    "sinks": "asm_register_sinks",
    "policies": "asm_register_policies",
    "pricing": "asm_register_pricing",
    "tools": "asm_register_tools",
    "commands": "asm_register_commands",
}

_SINGULAR: Final = {
    "providers": "provider",
    "stores": "store",
    "artifact_stores": "artifact store",
    "renderers": "renderer",
    "sinks": "sink",
    "policies": "policy",
    "pricing": "pricing table",
    "tools": "tool",
    "commands": "command",
}

_NOT_FOUND_CODE: Final = {"providers": "provider_not_found"}


@dataclasses.dataclass(frozen=True)
class Registration:
    """One name a plugin registered, and who registered it."""

    kind: str
    name: str
    factory: Callable[[dict[str, Any]], Any]
    plugin: str
    distribution: str | None
    version: str | None
    #: for a named instance (a config table ``[<kind>.<name>]`` with ``plugin = "<base>"``):
    #: the registered name it is built from, by that factory, with the rest of its table
    built_from: str | None = None


@dataclasses.dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that failed to load; the other plugins still work."""

    entry_point: str
    distribution: str | None
    error: str


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its distribution, version and what it registered."""

    name: str
    distribution: str | None
    version: str | None
    registers: dict[str, tuple[str, ...]]


class PluginRegistry:
    """The loaded plugins and, per kind, the factories they registered by name."""

    def __init__(
        self,
        manager: pluggy.PluginManager,
        *,
        broken: Iterable[BrokenPlugin] = (),
        distributions: Mapping[str, tuple[str | None, str | None]] | None = None,
    ) -> None:
        self.manager = manager
        self.hook = manager.hook
        self.broken: list[BrokenPlugin] = list(broken)
        self._distributions = {"asm-core": ("asm-core", _version("asm-core")), **(distributions or {})}
        self._registrations: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        #: kind -> name -> config table, for :meth:`create` without a config (see :meth:`configured`)
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}
        self._duplicate: AsmError | None = None
        self._collect()

    def _collect(self) -> None:
        plugins = self.manager.get_plugins()
        for kind, hook_name in KINDS.items():
            caller: pluggy.HookCaller = getattr(self.hook, hook_name)
            # Call each plugin's implementation alone (through pluggy, so
            # ASM_TRACE_PLUGINS traces it) to attribute every name to its
            # plugin, for duplicate errors and ``asm plugins``.
            order = list(dict.fromkeys(impl.plugin for impl in reversed(caller.get_hookimpls())))
            for plugin in order:
                plugin_name = self.manager.get_name(plugin) or repr(plugin)
                dist, version = self._distribution_of(plugin_name)
                register = _Register(self, kind, plugin_name, dist, version)
                alone = self.manager.subset_hook_caller(hook_name, remove_plugins=plugins - {plugin})
                try:
                    alone(register=register)
                except Exception as exc:  # noqa: BLE001 - a plugin's bug must not take the others down
                    if self._duplicate is not None:
                        raise self._duplicate from None
                    self.broken.append(BrokenPlugin(plugin_name, dist, f"{hook_name} raised {exc!r}"))
                if self._duplicate is not None:  # raised even if the plugin swallowed it
                    raise self._duplicate

    def _add(self, registration: Registration) -> None:
        table = self._registrations[registration.kind]
        existing = table.get(registration.name)
        if existing is not None:
            what = _SINGULAR[registration.kind]
            self._duplicate = AsmError(
                "duplicate_plugin",
                f"{what} {registration.name!r} is registered by both {_owner(existing)} and "
                f"{_owner(registration)}; uninstall one or limit plugins with ASM_LOAD_PLUGINS",
                details={
                    "kind": registration.kind,
                    "name": registration.name,
                    "plugins": [existing.plugin, registration.plugin],
                },
            )
            raise self._duplicate
        table[registration.name] = registration

    def names(self, kind: str) -> list[str]:
        """The registered names of ``kind`` (``"providers"``, ``"stores"``, ...), sorted."""
        return sorted(self._table(kind))

    def get(self, kind: str, name: str) -> Registration:
        """The registration of ``name``, or an error listing what is installed."""
        table = self._table(kind)
        try:
            return table[name]
        except KeyError:
            pass
        what = _SINGULAR[kind]
        installed = ", ".join(sorted(table)) or "none"
        close = close_match(name, table)
        hint = f"; did you mean {close!r}?" if close else ""
        if self.broken:
            hint += "; these plugins failed to load: " + ", ".join(
                f"{b.entry_point} ({b.distribution or 'unknown distribution'}: {b.error})" for b in self.broken
            )
        raise AsmError(
            _NOT_FOUND_CODE.get(kind, "plugin_not_found"),
            f"no {what} named {name!r}; installed: {installed}. Install the plugin that provides it{hint}",
            details={"kind": kind, "name": name, "installed": sorted(table)},
        )

    def create(self, kind: str, name: str, config: Mapping[str, Any] | None = None) -> Any:
        """Build the object ``name`` of ``kind`` from its config table (``None``: the
        table this registry was :meth:`configured` with, else none).

        A factory that takes a keyword argument ``registry`` gets this registry,
        to build what its config names (a provider's ``tools``, a router's members)
        from the same plugins, extras included, without loading them again; one
        that takes ``name`` gets ``name`` (an instance's own name, not its plugin's:
        a router names itself in its events and finds itself among its members)."""
        registration = self.get(kind, name)
        factory = registration.factory
        table = dict(config if config is not None else self._tables.get(kind, {}).get(name, {}))
        if registration.built_from is not None:
            table.pop("plugin", None)  # says which factory builds the instance; not an option of it
        keywords: dict[str, Any] = {}
        if _takes_keyword(factory, "registry"):
            keywords["registry"] = self
        if _takes_keyword(factory, "name"):
            keywords["name"] = name
        try:
            return factory(table, **keywords)
        except AsmError:
            raise
        except Exception as exc:
            raise AsmError(
                "invalid_config",
                f"{_SINGULAR[kind]} {name!r} could not be created from its config: {exc}",
                details={"kind": kind, "name": name},
            ) from exc

    def configured(self, tables: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> PluginRegistry:
        """This registry as a config sees it (``tables``: kind -> name -> table, e.g.
        ``{"providers": config.providers}``): :meth:`create` without a config uses a
        name's table, and a table with ``plugin = "<registered name>"`` whose own name
        is not registered becomes a *named instance*, registered under its name and
        built by that plugin's factory from the rest of its table. So two Claude
        models can live side by side::

            [providers.fast]
            plugin = "claude"
            model = "claude-haiku-4-5"

        An instance named like a registered plugin, an instance of an instance, and a
        ``plugin`` that is not registered are ``invalid_config``. This registry is
        left as it was; the plugins (and their hooks) are shared.
        """
        derived = copy.copy(self)
        derived._registrations = {kind: dict(table) for kind, table in self._registrations.items()}
        derived._tables = {kind: {name: dict(t) for name, t in by_name.items()} for kind, by_name in tables.items()}
        for kind, by_name in tables.items():
            registered = self._table(kind)
            what = _SINGULAR[kind]
            for name, table in by_name.items():
                if "plugin" not in table:
                    continue
                base = table["plugin"]
                where = f"[{kind}.{name}] plugin = {base!r}"
                if name in registered:
                    raise AsmError(
                        "invalid_config",
                        f"{where}: {name!r} is the name of an installed {what}, so it cannot be an instance of "
                        f"another; give the instance a name of its own",
                        details={"kind": kind, "name": name},
                    )
                if not isinstance(base, str) or base not in registered:
                    if isinstance(base, str) and base in by_name and "plugin" in by_name[base]:
                        problem = f"{base!r} is itself an instance; name the plugin it is built from"
                    else:
                        close = close_match(str(base), registered)
                        hint = f"; did you mean {close!r}?" if close else ""
                        installed = ", ".join(sorted(registered)) or "none"
                        problem = f"no {what} named {base!r} is installed (installed: {installed}){hint}"
                    raise AsmError("invalid_config", f"{where}: {problem}", details={"kind": kind, "name": name})
                derived._registrations[kind][name] = dataclasses.replace(registered[base], name=name, built_from=base)
        return derived

    def instances(self) -> list[Registration]:
        """The named instances (see :meth:`configured`), by kind and name."""
        return [
            registration
            for kind in KINDS
            for registration in self.registrations(kind)
            if registration.built_from is not None
        ]

    def registrations(self, kind: str) -> list[Registration]:
        """Every registration of ``kind``, sorted by name."""
        return [self._table(kind)[n] for n in self.names(kind)]

    def plugins(self) -> list[PluginInfo]:
        """Each loaded plugin with its distribution, version and registrations."""
        infos: dict[str, dict[str, list[str]]] = {}
        owners: dict[str, tuple[str | None, str | None]] = {}
        for name, plugin in self.manager.list_name_plugin():
            if plugin is None:
                continue
            infos.setdefault(name, {})
            owners[name] = self._distribution_of(name)
        for kind in KINDS:
            for registration in self._registrations[kind].values():
                if registration.built_from is None:  # instances are listed by :meth:`instances`
                    infos.setdefault(registration.plugin, {}).setdefault(kind, []).append(registration.name)
        return [
            PluginInfo(
                name=name,
                distribution=owners.get(name, (None, None))[0],
                version=owners.get(name, (None, None))[1],
                registers={kind: tuple(sorted(names)) for kind, names in kinds.items()},
            )
            for name, kinds in sorted(infos.items())
        ]

    def _distribution_of(self, plugin_name: str) -> tuple[str | None, str | None]:
        return self._distributions.get(plugin_name, (None, None))

    def _table(self, kind: str) -> dict[str, Registration]:
        try:
            return self._registrations[kind]
        except KeyError:
            raise AsmError("validation_error", f"unknown plugin kind {kind!r}; kinds are {', '.join(KINDS)}") from None


class _Register:
    """The ``register`` callable a registration hook receives (its repr shows in traces)."""

    def __init__(
        self, registry: PluginRegistry, kind: str, plugin: str, distribution: str | None, version: str | None
    ) -> None:
        self._registry = registry
        self._kind = kind
        self._plugin = plugin
        self._distribution = distribution
        self._version = version

    def __call__(self, name: str, factory: Callable[[dict[str, Any]], Any]) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"register() needs a non-empty name string, not {name!r}")
        if not callable(factory):
            raise TypeError(f"register({name!r}, ...) needs a factory callable, not {factory!r}")
        registration = Registration(self._kind, name, factory, self._plugin, self._distribution, self._version)
        self._registry._add(registration)

    def __repr__(self) -> str:
        return f"<register {self._kind} for plugin {self._plugin!r}>"


class LazyFactory:
    """A callable named by ``"module:attribute"``, imported when first called: see :func:`lazy`."""

    def __init__(self, target: str) -> None:
        module, sep, attribute = target.partition(":")
        if not sep or not module or not attribute:
            raise TypeError(f"lazy() needs 'package.module:attribute', not {target!r}")
        self.target = target
        self._factory: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The factory itself (importing its module the first time)."""
        factory = self._factory
        if factory is None:
            import importlib

            module, _, attribute = self.target.partition(":")
            try:
                found: Any = importlib.import_module(module)
                for part in attribute.split("."):
                    found = getattr(found, part)
            except (ImportError, AttributeError) as exc:
                raise AsmError(
                    "plugin_load_failed",
                    f"{self!r} cannot be loaded ({exc}); reinstall the plugin that registers it",
                    details={"target": self.target},
                ) from exc
            factory = self._factory = found
        return factory

    def __call__(self, *args: Any, **keywords: Any) -> Any:
        return self.resolve()(*args, **keywords)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> LazyFactory:
    """A factory for ``register`` that imports its module only when it is called.

    A plugin module is imported whenever asm loads its plugins, by every ``asm``
    command (``asm --help`` too) and every runtime: registering ``lazy(...)``
    instead of the factory itself keeps a provider's SDK, a store's database
    driver and the rest out of the processes that never build that object.
    ``target`` is ``"package.module:attribute"``, as in an entry point; the
    factory's own keyword arguments (``registry``, ``name``) are honoured.

    In a plugin module::

        @asm.hookimpl
        def asm_register_providers(register):
            register("acme", lazy("asm_acme._provider:create_provider"))

    >>> factory = lazy("builtins:dict")  # nothing imported yet
    >>> factory({"model": "x"})
    {'model': 'x'}
    """
    return LazyFactory(target)


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562) that imports each public name's submodule
    when the name is first used: ``homes`` maps a name to its submodule (relative to
    ``package``). The plugin's registration module can then live in the package without
    its import pulling in the SDK (see :func:`lazy`). Declare the names for type
    checkers under ``if TYPE_CHECKING:``.

    In ``asm_acme/__init__.py``::

        __getattr__ = lazy_attributes(__name__, {"AcmeProvider": "_provider"})

    >>> getattr_ = lazy_attributes("asm", {"EventType": "events"})
    >>> getattr_("EventType").__name__
    'EventType'
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute
        return value

    return __getattr__


def _takes_keyword(factory: Callable[..., Any], keyword: str) -> bool:
    if isinstance(factory, LazyFactory):
        factory = factory.resolve()
    try:
        parameter = inspect.signature(factory).parameters.get(keyword)
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return False
    return parameter is not None and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)


def _owner(registration: Registration) -> str:
    if registration.distribution:
        return f"plugin {registration.plugin!r} (distribution {registration.distribution})"
    return f"plugin {registration.plugin!r}"


def parse_options(cls: type[T], config: Mapping[str, Any], what: str) -> T:
    """Build a plugin's options class (frozen attrs) from its config table;
    an unknown key or a wrong type is an ``invalid_config`` error naming it.

    >>> import attrs
    >>> @attrs.frozen
    ... class EchoOptions:
    ...     prefix: str = ""
    >>> parse_options(EchoOptions, {"prefix": "> "}, "echo provider")
    EchoOptions(prefix='> ')
    """
    import attrs

    from asm.serde import structure

    if attrs.has(cls):
        known = sorted(field.name for field in attrs.fields(cls))
        unknown = sorted(set(config) - set(known))
        if unknown:
            valid = f"valid options: {', '.join(known)}" if known else f"the {what} takes no options"
            raise AsmError(
                "invalid_config",
                f"invalid {what} config: unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; {valid}",
                details={"unknown": unknown, "valid": known},
            )
    try:
        return structure(dict(config), cls, what=f"{what} config")
    except AsmError as exc:
        raise AsmError("invalid_config", exc.message, details=exc.details) from None


def _builtin_module() -> ModuleType:
    from asm import _builtins

    return _builtins


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _normalize(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): ``ASM_Foo.bar`` -> ``asm-foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _wanted(env: Mapping[str, str]) -> set[str] | None:
    raw = env.get("ASM_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _tracing(env: Mapping[str, str]) -> bool:
    return env.get("ASM_TRACE_PLUGINS", "").strip().lower() not in ("", "0", "false", "no", "off")


def load_plugins(
    *,
    entry_points: bool = True,
    extra: Iterable[object] = (),
    env: Mapping[str, str] | None = None,
) -> PluginRegistry:
    """Load the built-ins, the ``asm`` entry points and ``extra`` plugin objects.

    A plugin that fails to import (or whose hooks do not match the specs, or
    whose registration hook raises) is recorded in ``registry.broken`` with its
    distribution, and the rest load. ``extra`` registers plugin objects or
    modules directly, e.g. in tests or applications that do not package them.
    ``env`` (default ``os.environ``) is where ``ASM_LOAD_PLUGINS`` and
    ``ASM_TRACE_PLUGINS`` are read.
    """
    env = os.environ if env is None else env
    manager = pluggy.PluginManager("asm")
    manager.add_hookspecs(hookspecs)
    if _tracing(env):
        manager.trace.root.setwriter(lambda text: sys.stderr.write(text))
        manager.enable_tracing()
    manager.register(_builtin_module(), name="asm-core")
    broken: list[BrokenPlugin] = []
    distributions: dict[str, tuple[str | None, str | None]] = {}
    if entry_points:
        broken = _load_entry_points(manager, _wanted(env), distributions)
    for plugin in extra:
        name = _extra_name(manager, plugin)
        try:
            manager.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - pluggy's validation errors, as an AsmError
            raise AsmError(
                "plugin_load_failed", f"extra plugin {name!r} cannot be registered: {exc}", details={"plugin": name}
            ) from None
    _LOG.info(
        "%d plugins loaded%s",
        len(distributions) + 1,
        f", {len(broken)} broken: {', '.join(b.entry_point for b in broken)}" if broken else "",
    )
    return PluginRegistry(manager, broken=broken, distributions=distributions)


def unknown_hooks(manager: pluggy.PluginManager, plugin: object) -> str | None:
    """What is wrong with ``plugin``'s hook names, or ``None``: an ``@hookimpl`` whose
    name is no hook (what pluggy's ``check_pending()`` finds), or a function of the
    plugin's own module named ``asm_*`` that is no hook (a misspelt hook that pluggy
    would skip without a word, since it lacks the marker). Each gets a did-you-mean:
    ``unknown hook 'asm_register_provider'; did you mean 'asm_register_providers'?``.
    """
    specs = sorted(name for name in vars(hookspecs) if name.startswith("asm_"))
    names = {caller.name for caller in manager.get_hookcallers(plugin) or () if not caller.has_spec()}
    module = plugin.__name__ if isinstance(plugin, ModuleType) else None
    for name in dir(plugin):
        if not name.startswith("asm_") or name in specs:
            continue
        value = getattr(plugin, name, None)
        if callable(value) and (module is None or getattr(value, "__module__", None) == module):
            names.add(name)
    if not names:
        return None
    problems = []
    for name in sorted(names):
        close = close_match(name, specs)
        problems.append(f"unknown hook {name!r}" + (f"; did you mean {close!r}?" if close else ""))
    return "; ".join(problems) + " (asm.hookspecs lists the hooks a plugin may implement)"


def _extra_name(manager: pluggy.PluginManager, plugin: object) -> str:
    """A readable, unique name for an extra plugin (pluggy's default is ``id(plugin)``)."""
    base = getattr(plugin, "__name__", None)
    if not isinstance(base, str):
        base = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
    name, count = base, 1
    while manager.has_plugin(name):
        count += 1
        name = f"{base}#{count}"
    return name


def _check_wanted(wanted: set[str]) -> None:
    """Refuse ``ASM_LOAD_PLUGINS`` names that no installed plugin has: a misspelt
    ``asm-sqlalchmy`` would otherwise drop persistence without a word."""
    known: dict[str, str] = {"asm-core": "asm-core"}  # canonical form -> as installed
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        known.setdefault(_normalize(ep.name), ep.name)
        if ep.dist is not None:
            known.setdefault(_normalize(ep.dist.name), ep.dist.name)
    unknown = sorted(name for name in wanted if _normalize(name) not in known)
    if not unknown:
        return
    first = unknown[0]
    close = typo_of(_normalize(first), known)
    hint = f"; did you mean {known[close]!r}?" if close else ""
    installed = ", ".join(sorted({n for n in known.values() if n.startswith("asm-")} or known.values()))
    raise AsmError(
        "invalid_config",
        f"ASM_LOAD_PLUGINS names {first!r}, which no installed asm plugin is called{hint} "
        f"(installed: {installed}); fix the name or install the plugin",
        details={"unknown": unknown, "installed": sorted(known.values())},
    )


def _load_entry_points(
    manager: pluggy.PluginManager,
    wanted: set[str] | None,
    distributions: dict[str, tuple[str | None, str | None]],
) -> list[BrokenPlugin]:
    broken = []
    # Entry-point names and distribution names, both compared in canonical form.
    wanted_dists = {_normalize(name) for name in wanted} if wanted is not None else None
    if wanted is not None:
        _check_wanted(wanted)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else None
        if wanted_dists is not None and not {_normalize(ep.name), _normalize(dist or "")} & wanted_dists:
            continue
        if manager.is_blocked(ep.name):
            continue
        if manager.has_plugin(ep.name):
            owner = distributions.get(ep.name, (ep.name if ep.name == "asm-core" else None, None))[0]
            if owner != dist:
                problem = f"entry point name {ep.name!r} is already taken by {owner or 'another plugin'}"
                broken.append(BrokenPlugin(ep.name, dist, problem))
            continue  # else: the same distribution found twice on sys.path
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - a plugin that fails to import is reported, not fatal
            broken.append(BrokenPlugin(ep.name, dist, f"import failed: {exc!r}"))
            _LOG.info("plugin %s (%s) failed to import: %r", ep.name, dist, exc)
            continue
        try:
            manager.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hook implementation whose arguments do not match its spec
            broken.append(BrokenPlugin(ep.name, dist, f"cannot be registered: {exc}"))
            _LOG.info("plugin %s (%s) cannot be registered: %s", ep.name, dist, exc)
            continue
        unknown = unknown_hooks(manager, plugin)
        if unknown:
            manager.unregister(plugin, name=ep.name)  # half a plugin (its misspelt hook missing) is not loaded
            broken.append(BrokenPlugin(ep.name, dist, unknown))
            _LOG.info("plugin %s (%s) has an unknown hook: %s", ep.name, dist, unknown)
            continue
        distributions[ep.name] = (dist, version)
        _LOG.debug("loaded plugin %s from %s %s", ep.name, dist, version)
    return broken
