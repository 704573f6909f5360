"""asm._signals: SIGTERM and SIGHUP cancel a block the way Ctrl-C would, in this process."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import trio

from asm._signals import Stopped, cancelled_on_signals


@pytest.fixture
def hangups_ignored() -> Iterator[None]:
    """SIGHUP ignored, as under ``nohup``."""
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, old)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
async def test_a_stop_signal_cancels_the_block_then_says_which(stop: signal.Signals) -> None:
    unwound = False
    with trio.fail_after(60), pytest.raises(Stopped) as caught:
        async with cancelled_on_signals():
            try:
                os.kill(os.getpid(), stop)
                await trio.sleep_forever()
            finally:
                unwound = True
    assert caught.value.signal is stop and str(caught.value) == f"stopped by {stop.name}"
    assert unwound
    assert signal.getsignal(stop) is signal.SIG_DFL  # the handler is gone with the block


async def test_a_block_that_ends_first_ends_normally() -> None:
    async with cancelled_on_signals():
        await trio.lowlevel.checkpoint()


@pytest.mark.usefixtures("hangups_ignored")
async def test_an_ignored_signal_stays_ignored() -> None:
    async with cancelled_on_signals():
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGHUP)  # discarded by the kernel: nothing to cancel
        await trio.lowlevel.checkpoint()
    with trio.fail_after(60), pytest.raises(Stopped):
        async with cancelled_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            await trio.sleep_forever()
