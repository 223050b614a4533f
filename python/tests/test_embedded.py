"""The embedded engine: overload, watch, the GIL, durability across reopen,
the asyncio face, and use after close."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import statecraft as sc


def test_reopen_recovers_state_and_ids(tmp_path: Path) -> None:
    d = tmp_path / "data"
    with sc.Engine(data_dir=d, shards=2) as db:
        res = db.send([{"key": f"c{i % 5}", "op": "incr", "value": 1, "id": f"e{i}"}
                       for i in range(100)], ack="durable")
        assert all(isinstance(r, sc.Applied) for r in res)
    with sc.Engine(data_dir=d, shards=2) as db:
        assert sum(db.get(f"c{i}").value for i in range(5)) == 100
        # The ids survived too: a resend is answered duplicate.
        res = db.send([{"key": "c0", "op": "incr", "value": 1, "id": "e0"}], ack="durable")
        assert res == [sc.Duplicate()]
        assert db.get("c0").value == 20


def test_overload_answers_overloaded_under_reject(tmp_path: Path) -> None:
    with sc.Engine(shards=1, queue_capacity=1, overflow="reject") as db:
        results = []
        for _ in range(20):
            results += db.send([{"key": "k", "op": "incr", "value": 1}] * 500, ack="applied")
        over = [r for r in results if isinstance(r, sc.Overloaded)]
        applied = [r for r in results if isinstance(r, sc.Applied)]
        assert over, "a queue of 1 must refuse some of 500 events at once"
        assert len(over) + len(applied) == len(results)
        assert db.get("k").value == len(applied)
        with pytest.raises(sc.OverloadedError) as ei:
            sc.check(over[0])
        assert ei.value.retry_after > 0 and ei.value.code == "overloaded"


def test_bad_engine_settings() -> None:
    with pytest.raises(ValueError):
        sc.Engine(shards=0)
    with pytest.raises(ValueError):
        sc.Engine(overflow="sometimes")
    with pytest.raises(ValueError):
        sc.Engine(ack="later")


def test_watch_sees_changes_in_order(engine: sc.Engine) -> None:
    w = engine.watch("user:")
    engine.send([{"key": "user:1", "op": "incr", "value": 1},
                 {"key": "other", "op": "incr", "value": 1},
                 {"key": "user:1", "op": "set", "value": {"a": 1}},
                 {"key": "user:1", "op": "delete"}], ack="applied")
    got = [w.next(10.0) for _ in range(3)]
    assert [(c.key, c.op, c.value, c.version) for c in got] == [
        ("user:1", "incr", 1, 1), ("user:1", "set", {"a": 1}, 2), ("user:1", "delete", None, 0)]
    assert w.next(0.05) is None
    w.close()


def test_waiting_releases_the_gil(engine: sc.Engine) -> None:
    # A thread blocks in the engine (watch.next) while this thread must run
    # Python to produce what it waits for. Holding the GIL while waiting
    # would starve this thread: the watcher would time out with nothing.
    w = engine.watch("gil:")
    got = []
    t = threading.Thread(target=lambda: got.append(w.next(60.0)))
    t.start()
    while not t.is_alive():
        pass
    engine.incr("gil:x", ack="applied")
    t.join()
    assert got and isinstance(got[0], sc.Change) and got[0].key == "gil:x"


def test_closed_engine_refuses(tmp_path: Path) -> None:
    db = sc.Engine(shards=1)
    w = db.watch("")
    db.close()
    db.close()  # idempotent
    assert db.closed
    with pytest.raises(sc.EngineClosed):
        db.incr("k")
    with pytest.raises(sc.EngineClosed):
        db.get("k")
    assert list(w) == []  # the feed ends


def test_incr_many_fast_path(engine: sc.Engine) -> None:
    n, other = engine.incr_many(["a", "b", "a", "", 5], ack="applied")  # type: ignore[list-item]
    assert n == 3
    assert [(i, r.code) for i, r in other] == [(3, "invalid_key"), (4, "invalid_event")]
    assert engine.get("a").value == 2


def test_async_engine(tmp_path: Path) -> None:
    async def main() -> None:
        async with sc.AsyncEngine(data_dir=tmp_path / "a", shards=2) as db:
            w = db.watch("k")
            rs = await asyncio.gather(*(db.incr("k", ack="applied") for _ in range(20)))
            assert sorted(r.version for r in rs) == list(range(1, 21))
            assert (await db.get("k")).value == 20
            assert [s.key async for s in db.scan("k")] == ["k"]
            first = await w.__anext__()
            assert first.key == "k" and first.version == 1
            w.close()
    asyncio.run(main())
