"""Every op, ids, conflicts and bad input — the same tests against the
client (a real server) and the embedded engine."""

from __future__ import annotations

import uuid

import pytest

import statecraft as sc


def k(name: str = "k") -> str:
    return f"t{uuid.uuid4().hex[:10]}:{name}"


def test_every_op(db) -> None:
    key = k()
    assert db.incr(key, path="/clicks", ack="applied") == sc.Applied(1)
    assert db.incr(key, 4, path="/clicks", ack="applied") == sc.Applied(2)
    assert db.set(key, "ada", path="/name", ack="applied") == sc.Applied(3)
    assert db.merge(key, {"tags": {"a": 1}}, ack="applied") == sc.Applied(4)
    assert db.append(key, 1, path="/log", max_len=2, ack="applied").version == 5
    db.append(key, 2, path="/log", ack="applied")
    db.append(key, 3, path="/log", max_len=2, ack="applied")
    assert db.max(key, 10, path="/hi", ack="applied").ok
    assert db.max(key, 7, path="/hi", ack="applied").ok
    assert db.min(key, 10, path="/lo", ack="applied").ok
    assert db.min(key, -3.5, path="/lo", ack="applied").ok
    st = db.get(key)
    assert isinstance(st, sc.State)
    assert st.key == key and st.version == 11
    assert st.value == {"clicks": 5, "name": "ada", "tags": {"a": 1}, "log": [2, 3],
                        "hi": 10, "lo": -3.5}
    assert db.delete(key, path="/tags", ack="applied").ok
    assert "tags" not in db.get(key).value
    assert db.delete(key, ack="applied") == sc.Applied(0)
    assert db.get(key) is None


def test_values_round_trip(db) -> None:
    key = k()
    value = {"s": "é ✓", "i": -(2**63), "u": 2**64 - 1, "f": 0.25, "t": True,
             "n": None, "l": [1, [2, {"x": []}]]}
    db.set(key, value, ack="applied")
    assert db.get(key).value == value
    db.set(key, None, ack="applied")
    assert db.get(key).value is None


def test_send_many_results_in_order(db) -> None:
    keys = [k(str(i)) for i in range(7)]
    events = [{"key": keys[i % 7], "op": "incr", "value": 1} for i in range(3500)]
    res = db.send(events, ack="applied")
    assert len(res) == 3500 and all(isinstance(r, sc.Applied) for r in res)
    # Versions per key count up in input order.
    for i, key in enumerate(keys):
        versions = [r.version for r, e in zip(res, events) if e["key"] == key]
        assert versions == list(range(1, 501))
        assert db.get(key).value == 500


def test_ack_none_answers_accepted(db) -> None:
    key = k()
    res = db.send([{"key": key, "op": "incr", "value": 1}], ack="none")
    assert res == [sc.Accepted()]
    db.send([{"key": key, "op": "incr", "value": 1}], ack="applied")
    assert db.get(key).value == 2


def test_scan_pages_through_every_key(db) -> None:
    prefix = k("scan/")
    keys = sorted(f"{prefix}{i:03}" for i in range(25))
    db.send([{"key": x, "op": "set", "value": i} for i, x in enumerate(keys)], ack="applied")
    db.send([{"key": prefix[:-1] + "0", "op": "set", "value": 0}], ack="applied")  # not matching
    got = [s.key for s in db.scan(prefix, page=4)]
    assert got == keys
    page = db.scan_page(prefix, after=keys[9], limit=3)
    assert [s.key for s in page] == keys[10:13]
    assert [s.key for s in db.scan(prefix, after=keys[20])] == keys[21:]


def test_ids_make_a_repeat_a_duplicate(db) -> None:
    key = k()
    e = {"key": key, "op": "incr", "value": 1, "id": "evt-1"}
    assert db.send([e], ack="applied") == [sc.Applied(1)]
    assert db.send([e], ack="applied") == [sc.Duplicate()]
    assert db.incr(key, id="evt-1", ack="applied") == sc.Duplicate()
    assert db.get(key).value == 1
    # ids=True gives each event its own fresh id: both apply.
    r = db.send([{"key": key, "op": "incr", "value": 1}] * 2, ack="applied", ids=True)
    assert r == [sc.Applied(2), sc.Applied(3)]


def test_conflicts(db) -> None:
    key = k()
    assert db.set(key, 1, if_version=0, ack="applied") == sc.Applied(1)
    res = db.send([{"key": key, "op": "set", "value": 2, "if_version": 5}], ack="applied")
    assert res == [sc.Conflict(current_version=1)]
    with pytest.raises(sc.ConflictError) as ei:
        db.set(key, 3, if_version=0, ack="applied")
    assert ei.value.current_version == 1 and ei.value.code == "conflict"
    assert db.get(key).value == 1


def test_bad_input_rejects_only_that_event(db) -> None:
    key = k()
    good = {"key": key, "op": "incr", "value": 1}
    events = [
        good,
        "not a dict",
        {"key": key, "op": "incr", "value": 1, "colour": "red"},  # unknown field
        {"op": "incr", "value": 1},  # no key
        {"key": key, "op": "set", "value": float("nan")},
        {"key": key, "op": "set", "value": object()},
        {"key": key, "op": "set", "value": 2**70},
        {"key": key, "op": "incr", "value": "x"},  # wrong operand
        {"key": key, "op": "frobnicate", "value": 1},
        {"key": "", "op": "set", "value": 1},
        {"key": "x" * 5000, "op": "set", "value": 1},
        {"key": key, "op": "set", "value": 1, "if_version": -1},
        {"key": key, "op": "set", "path": "no-slash", "value": 1},
        good,
    ]
    res = db.send(events, ack="applied")
    assert len(res) == len(events)
    assert res[0] == sc.Applied(1) and res[-1] == sc.Applied(2)
    codes = [r.code for r in res[1:-1]]
    assert all(isinstance(r, sc.Rejected) for r in res[1:-1]), res
    assert codes[0] == "invalid_event" and codes[1] == "invalid_event"
    assert codes[2] == "invalid_event"
    assert codes[6] in ("invalid_operand", "type_error")
    assert codes[7] == "unknown_op"
    assert codes[8] == "invalid_key" and codes[9] == "invalid_key"
    assert codes[11] == "invalid_path"
    assert db.get(key).value == 2
    with pytest.raises(sc.RejectedError) as ei:
        db.incr(key, "x", ack="applied")
    assert ei.value.code in ("invalid_operand", "type_error")
    with pytest.raises(TypeError):
        db.send({"key": key, "op": "incr"})
    with pytest.raises(ValueError):
        db.send([good], ack="sometimes")
