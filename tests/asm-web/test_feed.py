"""A session's live feed on its own: what a client at a given cursor takes from the window
(whole batches, shared bytes; a filter; past the write cap), and how the window is bounded."""

from __future__ import annotations

import attrs
import trio
import trio.testing
from asm_web._feed import MAX_WRITE, SessionFeed, format_sse

from asm.events import Event, MessageStreamed, ThinkingStreamed


def events(first: int, count: int, *, size: int = 1) -> list[Event]:
    made = []
    for seq in range(first, first + count):
        data = ThinkingStreamed("t" * size) if seq % 3 == 0 else MessageStreamed(f"{seq:06d}" * size)
        made.append(attrs.evolve(Event.new(data, session_id="ses_feed", run_id="run_1"), seq=seq))
    return made


def seqs_of(data: bytes) -> list[int]:
    return [int(line[4:]) for line in data.split(b"\n") if line.startswith(b"id: ")]


def test_a_client_takes_whole_batches_after_its_cursor_as_the_same_bytes_for_everyone() -> None:
    feed = SessionFeed("ses_feed", 10, format_sse)
    first, second = events(11, 5), events(16, 5)
    feed.publish(first)
    feed.publish(second)
    assert (feed.first, feed.head) == (11, 20)

    everything, cursor = feed.take(10)
    assert seqs_of(everything) == list(range(11, 21)) and cursor == 20
    assert everything == b"".join(format_sse(e) for e in first + second)
    one_batch, _ = feed.take(15)
    assert one_batch is feed.take(15)[0]  # a batch is joined once, and written as it is
    mid_batch, cursor = feed.take(13)  # a client that joined mid-batch: the rest of it, then whole ones
    assert seqs_of(mid_batch) == list(range(14, 21)) and cursor == 20
    assert feed.take(20) == (b"", 20)
    assert feed.take(25) == (b"", 25)  # a cursor from the future stays where it is

    deltas, cursor = feed.take(10, lambda e: isinstance(e.data, ThinkingStreamed))
    assert seqs_of(deltas) == [12, 15, 18] and cursor == 20  # the cursor passes what the filter skips

    feed.publish(events(18, 3))
    assert feed.head == 20 and seqs_of(feed.take(10)[0]) == list(range(11, 21))  # not newer: dropped


def test_one_write_carries_at_most_max_write_events_rounded_up_to_a_batch() -> None:
    feed = SessionFeed("ses_feed", 0, format_sse, window=10 * MAX_WRITE)
    for start in range(1, 3 * MAX_WRITE, 500):
        feed.publish(events(start, 500))
    data, cursor = feed.take(0)
    assert seqs_of(data) == list(range(1, MAX_WRITE + 1)) and cursor == MAX_WRITE
    rest, cursor = feed.take(cursor)
    assert seqs_of(rest)[0] == MAX_WRITE + 1


def test_the_window_keeps_at_most_twice_its_size_and_drops_whole_batches() -> None:
    feed = SessionFeed("ses_feed", 0, format_sse, window=10)
    for start in range(1, 41, 4):
        feed.publish(events(start, 4))
        assert feed.head - feed.first + 1 <= 20
    assert feed.head == 40 and feed.first == 33  # past 20 events, trimmed to 8 (two batches) each time
    assert not feed.holds(31) and feed.holds(32)
    data, _ = feed.take(32)
    assert seqs_of(data) == list(range(33, 41))


def test_the_window_is_bounded_in_bytes_too() -> None:
    from asm_web._feed import WINDOW_BYTES

    feed = SessionFeed("ses_feed", 0, format_sse, window=1_000_000)
    for seq in range(1, 200):  # events of 170 KB to 1 MB: far fewer than the window's count
        feed.publish(events(seq, 1, size=170_000))
        kept, _ = feed.take(feed.first - 1)
        assert len(kept) <= 2 * WINDOW_BYTES
    assert feed.first > 1 and seqs_of(kept) == list(range(feed.first, 200))


async def test_a_waiting_client_wakes_for_a_batch_for_a_tick_and_when_the_feed_closes() -> None:
    feed = SessionFeed("ses_feed", 10, format_sse)
    woke: list[str] = []

    async def client(name: str) -> None:
        await feed.wait(10)
        woke.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client, "tick")
        await trio.testing.wait_all_tasks_blocked()
        feed.tick()  # nothing new: the client wakes to see whether it owes a heartbeat
        await trio.testing.wait_all_tasks_blocked()
        assert woke == ["tick"]

        nursery.start_soon(client, "batch")
        await trio.testing.wait_all_tasks_blocked()
        feed.publish(events(11, 2))
        await feed.fan_out(5)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == ["tick", "batch"]

        nursery.start_soon(client, "close")
        await trio.testing.wait_all_tasks_blocked()
        feed.close()
    assert woke == ["tick", "batch", "close"]
    await feed.wait(0)  # past the head or closed: returns at once


async def test_a_fan_out_wakes_its_clients_a_group_at_a_time_and_lets_other_tasks_run_between() -> None:
    feed = SessionFeed("ses_feed", 0, format_sse)
    written: list[int] = []
    writing = peak = turns = 0

    async def client(number: int) -> None:
        nonlocal writing, peak
        await feed.wait(0)
        writing += 1
        peak = max(peak, writing)
        for _ in range(2):  # a write passes two checkpoints: Hypercorn's send lock, the socket's send
            await trio.lowlevel.checkpoint()
        writing -= 1
        written.append(number)

    async def other_work() -> None:  # a run, the store, another request
        nonlocal turns
        while True:
            turns += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for number in range(100):
            nursery.start_soon(client, number)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(other_work)
        feed.publish(events(1, 3))
        before = turns
        await feed.fan_out(10)
        # every client wrote; a group had written before the next one woke (the run queue held
        # one group at most), and the other task had its turns all along
        assert sorted(written) == list(range(100))
        assert peak == 10
        assert turns - before >= 30
        nursery.cancel_scope.cancel()


def test_a_stream_owes_a_heartbeat_once_more_than_four_ticks_went_by_since_its_last_write() -> None:
    feed = SessionFeed("ses_feed", 0, format_sse)  # four ticks per heartbeat interval
    written = feed.ticks
    for _ in range(4):
        feed.tick()
        assert not feed.owes_heartbeat(written)
    feed.tick()  # between 1 and 1.25 intervals after the write, whenever in a tick it came
    assert feed.owes_heartbeat(written)
