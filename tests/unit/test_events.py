"""The event bus: delivery by type, ids, bounded queues that drop the oldest, replay, threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from claracore.events import EVENT_TYPES, EventBus


def test_events_reach_the_subscribers_that_want_their_type_in_order() -> None:
    bus = EventBus()
    every, models = bus.subscribe(), bus.subscribe(["model"])
    bus.publish("model", {"id": "a", "state": "loading"})
    bus.publish("log", {"message": "hi"})
    bus.publish("model", {"id": "a", "state": "loaded"})
    got = [every.get_nowait() for _ in range(3)]
    assert [(e.type, e.id) for e in got if e] == [("model", 1), ("log", 2), ("model", 3)]
    assert [e.data["state"] for e in (models.get_nowait(), models.get_nowait()) if e] == ["loading", "loaded"]
    assert models.get_nowait() is None and every.get_nowait() is None
    assert got[0] is not None and got[0].as_json() == {
        "type": "model",
        "data": {"id": "a", "state": "loading"},
    }


def test_a_full_queue_drops_its_oldest_and_counts_them() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3)
    for i in range(10):
        bus.publish("log", {"n": i})
    assert slow.take_missed() == 7 and slow.take_missed() == 0
    assert [e.data["n"] for e in iter(slow.get_nowait, None)] == [7, 8, 9]


def test_unknown_types_are_refused_naming_them() -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="nope") as info:
        bus.subscribe(["model", "nope"])
    assert all(t in str(info.value) for t in EVENT_TYPES)
    with pytest.raises(ValueError, match="bogus"):
        bus.publish("bogus", {})


def test_since_replays_what_the_ring_buffer_still_holds() -> None:
    bus = EventBus(history=5)
    for i in range(8):
        bus.publish("model" if i % 2 else "log", {"n": i})
    assert [e.id for e in bus.since(0)] == [4, 5, 6, 7, 8]
    assert [e.id for e in bus.since(6)] == [7, 8]
    assert [e.id for e in bus.since(0, ["model"])] == [4, 6, 8]


def test_closing_drops_the_queue_and_stops_delivery() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish("log", {})
    assert bus.subscribers == 1
    sub.close()
    bus.publish("log", {})
    assert bus.subscribers == 0 and sub.get_nowait() is None and sub.get(timeout=0.01) is None


async def test_an_async_subscriber_wakes_for_events_published_by_other_threads() -> None:
    bus = EventBus()
    sub = bus.subscribe(["request"])

    def publish() -> None:
        for i in range(50):
            bus.publish("request", {"n": i})

    threading.Thread(target=publish).start()
    got = [await asyncio.wait_for(sub.next(), 10) for _ in range(50)]
    assert [e.data["n"] for e in got if e] == list(range(50))
    assert await sub.next(timeout=0.01) is None  # nothing more: a timeout, not a hang


async def test_closing_wakes_a_waiting_async_subscriber() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiting = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0)
    threading.Thread(target=sub.close).start()
    assert await asyncio.wait_for(waiting, 10) is None


async def test_cancelling_a_waiting_subscriber_is_never_swallowed_by_an_event_arriving_with_it() -> None:
    """`claracore pull` hung after Ctrl+C: the cancel landed just as a progress event woke the
    wait, Python 3.11's wait_for returned the event instead, and the loop never saw the cancel.
    Cancel at every point of the wake-up (the event loop's order is deterministic)."""
    bus = EventBus()
    for steps in range(12):
        sub = bus.subscribe(["log"])
        waiting = asyncio.ensure_future(sub.next(timeout=30))
        await asyncio.sleep(0)
        bus.publish("log", {"n": steps})
        for _ in range(steps):
            await asyncio.sleep(0)
        if waiting.done():
            break  # woken before the cancel: nothing left to race
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        sub.close()
    else:
        pytest.fail("the wait never finished: the race was not covered")


def test_a_thread_subscriber_waits_for_the_next_event() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    timer = threading.Timer(0.05, bus.publish, args=("config", {"changed": True}))
    timer.start()
    event = sub.get(timeout=10)
    assert event is not None and event.data == {"changed": True}


def test_observers_see_every_event_in_the_publishers_thread_whatever_the_queues() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=1)
    seen: list[tuple[int, str]] = []
    stop = bus.observe(lambda e: seen.append((e.id, threading.current_thread().name)))
    for i in range(5):
        bus.publish("request", {"n": i})
    assert [i for i, _ in seen] == [1, 2, 3, 4, 5]  # none lost, though the queue kept one
    assert {name for _, name in seen} == {threading.current_thread().name}
    assert slow.take_missed() == 4
    stop()
    bus.publish("request", {})
    assert len(seen) == 5


def test_an_observer_that_raises_never_fails_the_publisher() -> None:
    bus = EventBus()
    seen: list[int] = []

    def broken(_event: object) -> None:
        raise RuntimeError("a bug in an observer")

    bus.observe(broken)
    bus.observe(lambda e: seen.append(e.id))
    assert bus.publish("log", {}).id == 1 and seen == [1] and bus.observer_errors == 1


def test_last_id_is_where_the_stream_stands() -> None:
    bus = EventBus()
    assert bus.last_id == 0
    bus.publish("log", {})
    bus.publish("model", {})
    assert bus.last_id == 2
