"""asm-router: the ``router`` provider and the ``composite`` store.

``router`` puts one provider name in front of several members, named in its
config table and built from asm's registry (plugins or named instances; it
imports no other plugin)::

    [providers.smart]
    plugin = "router"
    members = ["fast", "deep"]
    strategy = "weighted"
    weights = { fast = 3, deep = 1 }

It filters members by the run's required capabilities, their circuit breakers
and the run's cost budget, keeps a session on the member that served it,
fails over on a retryable error before any output, and says every decision
as an event (``route_selected``, ``route_failed_over``, ``circuit_*``).
``composite`` presents a session store and an artifact store as one object.
``asm router status`` shows the configured routers. Guide: docs/routing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asm.hookspecs import Register, hookimpl
from asm.plugins import lazy, lazy_attributes

if TYPE_CHECKING:
    from asm_router._breaker import BreakerSettings as BreakerSettings
    from asm_router._breaker import CircuitBreaker as CircuitBreaker
    from asm_router._breaker import CircuitState as CircuitState
    from asm_router._breaker import CircuitStatus as CircuitStatus
    from asm_router._composite import CompositeOptions as CompositeOptions
    from asm_router._composite import CompositeStore as CompositeStore
    from asm_router._composite import create_composite as create_composite
    from asm_router._router import MemberStatus as MemberStatus
    from asm_router._router import RouterOptions as RouterOptions
    from asm_router._router import RouterProvider as RouterProvider
    from asm_router._router import RouterStatus as RouterStatus
    from asm_router._router import create_router as create_router
    from asm_router._router import estimate_tokens as estimate_tokens
    from asm_router._router import pick_weighted as pick_weighted

__all__ = [
    "BreakerSettings",
    "CircuitBreaker",
    "CircuitState",
    "CircuitStatus",
    "CompositeOptions",
    "CompositeStore",
    "MemberStatus",
    "RouterOptions",
    "RouterProvider",
    "RouterStatus",
    "asm_register_commands",
    "asm_register_providers",
    "asm_register_stores",
    "create_composite",
    "create_router",
    "estimate_tokens",
    "pick_weighted",
]


@hookimpl
def asm_register_providers(register: Register) -> None:
    """Register the ``router`` provider."""
    register("router", lazy("asm_router._router:create_router"))


@hookimpl
def asm_register_stores(register: Register) -> None:
    """Register the ``composite`` store."""
    register("composite", lazy("asm_router._composite:create_composite"))


@hookimpl
def asm_register_commands(register: Register) -> None:
    """Register ``asm router``."""
    from asm_router._cli import add_router_command

    register("router", add_router_command)


#: Where each public name lives: imported on first use, not when asm loads its plugins.
_EXPORTS = {
    "BreakerSettings": "_breaker",
    "CircuitBreaker": "_breaker",
    "CircuitState": "_breaker",
    "CircuitStatus": "_breaker",
    "CompositeOptions": "_composite",
    "CompositeStore": "_composite",
    "create_composite": "_composite",
    "MemberStatus": "_router",
    "RouterOptions": "_router",
    "RouterProvider": "_router",
    "RouterStatus": "_router",
    "create_router": "_router",
    "estimate_tokens": "_router",
    "pick_weighted": "_router",
}


__getattr__ = lazy_attributes(__name__, _EXPORTS)
