"""SIGTERM and SIGHUP stop a command the way Ctrl-C does.

Python dies of SIGTERM and SIGHUP on the spot, before any ``finally`` runs: a
run in progress would stay ``running`` in the store and its provider's
processes would be left to run on (``timeout 5 asm run ...``, a closed
terminal, ``systemctl stop``). :func:`cancelled_on_signals` turns them into
trio cancellation of a block instead, so everything cancellation guarantees
happens: the manager records the run (and the one-shot session) ``cancelled``
and the provider stops its child process group, SIGTERM then SIGKILL after
its ``terminate_grace``. Then :class:`Stopped` says which signal it was::

    try:
        async with cancelled_on_signals():
            await runtime.run_once(...)
    except Stopped as stopped:
        sys.exit(128 + stopped.signal)   # 143 for SIGTERM, 129 for SIGHUP
"""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

__all__ = ["STOP_SIGNALS", "Stopped", "cancelled_on_signals"]

#: The signals that cancel the block: a polite request to terminate, and a hangup.
#: (SIGINT stays trio's KeyboardInterrupt; SIGKILL cannot be caught - see asm.process.)
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """The block was cancelled because the process received ``signal``."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(f"stopped by {signum.name}")
        self.signal = signum


@asynccontextmanager
async def cancelled_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> AsyncIterator[None]:
    """Cancel the block when one of ``signals`` arrives and, once it has
    unwound, raise :class:`Stopped`. If the block finished before the
    cancellation reached it, it ends normally. More of these signals while it
    unwinds are ignored (the unwinding is bounded: each provider's
    ``terminate_grace``); SIGKILL remains for the impatient.

    A signal the process ignores stays ignored (``nohup asm run ...`` keeps
    running when the terminal hangs up). Signals can only be caught in the
    main thread: elsewhere the block runs with the default handling.
    """
    import trio  # here: the asm command imports this module for Stopped before it knows it runs anything

    from asm._trio import single_errors

    caught = tuple(s for s in signals if signal.getsignal(s) is not signal.SIG_IGN)
    if threading.current_thread() is not threading.main_thread() or not caught:
        yield
        return
    received: list[signal.Signals] = []
    with trio.open_signal_receiver(*caught) as incoming, single_errors():
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in incoming:
                    received.append(signal.Signals(signum))
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch, name="asm stop signals")
            yield
            nursery.cancel_scope.cancel()  # the block is done: stop watching
    if received and nursery.cancel_scope.cancelled_caught:
        raise Stopped(received[0])
