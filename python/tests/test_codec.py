"""The TCP v1 codec: the native encoder/decoder agree byte for byte with the
pure-Python reference, and with docs/protocol.md's worked example."""

from __future__ import annotations

import pytest

import statecraft as sc
from statecraft import _codec

EVENTS = [
    {"key": "user:42", "op": "incr", "value": 1},
    {"key": "k", "op": "set", "value": {"a": [1, 2.5, None, True, "é"]}, "path": "/x",
     "id": "e1", "if_version": 3, "ttl_s": 600},
    {"key": "k", "op": "append", "value": "s", "max_len": 300},
    {"key": "k", "op": "delete"},
    {"key": "k", "op": "custom_thing", "value": -(2**63)},
    {"key": "k", "op": "max", "value": 2**64 - 1},
    {"key": "k", "op": "min", "value": -0.5},
    {"key": "k", "op": "set", "value": None},
    {"key": "k", "op": "set", "value": False},
    {"key": "k", "op": "merge", "value": [1, (2, 3)]},
    "nope",
    {"key": "k"},
    {"op": "set"},
    {"key": "k", "op": "set", "value": float("inf")},
    {"key": "k", "op": "set", "value": 2**64},
    {"key": "k", "op": "set", "value": set()},
    {"key": "k", "op": "set", "if_version": True},
    {"key": 5, "op": "set"},
    {"key": "k", "op": "set", "extra": 1},
]


def test_worked_example() -> None:
    assert _codec.encode_events([{"key": "user:42", "op": "incr", "value": 1}]) == [
        bytes.fromhex("020107") + b"user:42" + bytes.fromhex("0302")]


def test_native_matches_reference() -> None:
    native = _codec.encode_events(EVENTS)
    ref = _codec.encode_events_py(EVENTS)
    assert len(native) == len(EVENTS)
    for i, (a, b) in enumerate(zip(native, ref)):
        if isinstance(b, bytes):
            assert a == b, (i, EVENTS[i])
        else:
            assert isinstance(a, sc.Rejected), (i, a)
            assert a.code == b.code, (i, a, b)


def ack_body(seq: int, parts: list) -> bytes:
    return seq.to_bytes(4, "big") + _codec.varint(len(parts)) + b"".join(parts)


def test_decode_ack_matches_reference() -> None:
    body = ack_body(7, [b"\x00" + _codec.varint(300), b"\x01", b"\x02\x05",
                        b"\x03\x0binvalid_key\x03bad", b"\x04", b"\x05"])
    want = (7, [sc.Applied(300), sc.Duplicate(), sc.Conflict(5),
                sc.Rejected("invalid_key", "bad"), sc.Overloaded(), sc.Accepted()])
    assert _codec.decode_ack(body) == want
    assert _codec.decode_ack_py(body) == want


@pytest.mark.parametrize("body", [
    b"\x00\x00",                                   # no seq
    ack_body(1, [b"\x00"]),                       # applied without a version
    ack_body(1, [b"\x09"]),                       # unknown status
    ack_body(1, [b"\x03\x05ab"]),                 # string runs past the end
    ack_body(1, [b"\x00\x01", b"\x00\x01"])[:-2],  # fewer results than count
    ack_body(1, [b"\x00\x01"]) + b"\x00",         # trailing bytes
])
def test_malformed_ack_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(_codec.ProtocolError):
        _codec.decode_ack(body)


def test_problem_mapping() -> None:
    from statecraft.client import problem_error
    body = (b'{"type":"/problems/overloaded","title":"Overloaded","status":429,'
            b'"detail":"every event was refused","code":"overloaded",'
            b'"results":[{"status":"overloaded"},{"status":"overloaded"}]}')
    e = problem_error(429, body, {"retry-after": "2"})
    assert isinstance(e, sc.OverloadedError) and e.retry_after == 2.0
    assert e.results == [sc.Overloaded(), sc.Overloaded()] and e.code == "overloaded"
    e = problem_error(503, body.replace(b"429", b"503"), {"retry-after": "1"})
    assert isinstance(e, sc.OverloadedError) and e.retry_after == 1.0
    assert isinstance(problem_error(401, b"{}", {}), sc.Unauthorized)
    e = problem_error(503, b'{"type":"/problems/not-ready","code":"not-ready"}', {})
    assert isinstance(e, sc.Unavailable)
    e = problem_error(400, b'{"type":"/problems/invalid-query","code":"invalid-query","detail":"x"}', {})
    assert isinstance(e, sc.ServerError) and e.code == "invalid-query" and e.status == 400
    assert isinstance(problem_error(500, b"not json", {}), sc.ServerError)
