"""TCP protocol v1 (docs/protocol.md), sans I/O: frames, the binary event
encoding, and the ACK decoder. Shared by the sync and asyncio clients.

Invariant: :func:`encode_events` returns one entry per input event — encoded
bytes, or the :class:`Rejected` result the event gets without being sent —
so the caller can always give back exactly one result per event, in order.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _native
from ._types import (
    Accepted,
    Applied,
    Conflict,
    Duplicate,
    Overloaded,
    Rejected,
    Result,
)

VERSION = 1

HELLO = 0x01
EVENTS_NDJSON = 0x02
EVENTS_BIN = 0x03
HELLO_OK = 0x81
ACK = 0x82
ERROR = 0x83

ACK_BYTE = {None: 0, "durable": 1, "applied": 2, "none": 3}

OP_CODES = {
    "set": 0,
    "merge": 1,
    "incr": 2,
    "append": 3,
    "max": 4,
    "min": 5,
    "delete": 6,
}

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1

_u32 = struct.Struct(">I")
_hdr = struct.Struct(">IB")  # length, type
_events_hdr = struct.Struct(">IBIBI")  # length, type, seq, ack, count
_f64 = struct.Struct("<d")

#: Frame header size: length (4) + type (1).
FRAME_HEADER = 5


class EncodeError(Exception):
    """An event cannot be encoded; carries the rejection code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def varint(n: int) -> bytes:
    """Unsigned LEB128."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Small varints are by far the most common (key lengths, small ints).
_SMALL = [bytes((i,)) for i in range(128)]


def _str(s: str, field: str) -> bytes:
    if type(s) is not str:
        raise EncodeError("invalid_event", f"`{field}` must be a string")
    try:
        b = s.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodeError("invalid_event", f"`{field}` is not valid UTF-8") from None
    n = len(b)
    return (_SMALL[n] if n < 128 else varint(n)) + b


def _uint(v: Any, field: str) -> bytes:
    if type(v) is not int or v < 0 or v > U64_MAX:
        raise EncodeError("invalid_event", f"`{field}` must be a non-negative integer")
    return _SMALL[v] if v < 128 else varint(v)


def encode_value(v: Any) -> bytes:
    """The binary value encoding: tag byte + payload."""
    t = type(v)
    if t is int:
        if I64_MIN <= v <= I64_MAX:
            z = (v << 1) ^ (v >> 63)
            return b"\x03" + (_SMALL[z] if z < 128 else varint(z))
        if v <= U64_MAX:
            return b"\x04" + varint(v)
        raise EncodeError("invalid_operand", "an integer outside i64/u64")
    if v is None:
        return b"\x00"
    if v is True:
        return b"\x02"
    if v is False:
        return b"\x01"
    if t is str:
        return b"\x06" + _str(v, "value")
    if t is float:
        if v != v or v in (float("inf"), float("-inf")):
            raise EncodeError("invalid_operand", "a float that is not finite")
        return b"\x05" + _f64.pack(v)
    if isinstance(v, bool):  # bool subclasses never reach here; keep mypy calm
        return b"\x02" if v else b"\x01"
    if isinstance(v, int):
        return encode_value(int(v))
    if isinstance(v, float):
        return encode_value(float(v))
    if isinstance(v, str):
        return encode_value(str(v))
    try:
        text = json.dumps(v, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise EncodeError("invalid_json", f"the value is not JSON: {e}") from None
    return b"\x07" + _str(text, "value")


def encode_event(e: Dict[str, Any]) -> bytes:
    """One event dict in the binary encoding. Raises :class:`EncodeError`."""
    if type(e) is not dict:
        if not isinstance(e, dict):
            raise EncodeError("invalid_event", "an event must be a dict")
    flags = 0
    key = op = None
    value = path = id_ = if_version = ttl_s = max_len = None
    has_value = False
    for k, v in e.items():
        if k == "key":
            key = v
        elif k == "op":
            op = v
        elif k == "value":
            value = v
            has_value = True
        elif k == "path":
            path = v
        elif k == "id":
            id_ = v
        elif k == "if_version":
            if_version = v
        elif k == "ttl_s":
            ttl_s = v
        elif k == "max_len":
            max_len = v
        else:
            raise EncodeError("invalid_event", f"unknown field `{k}`")
    if key is None:
        raise EncodeError("invalid_event", "missing field `key`")
    if op is None:
        raise EncodeError("invalid_event", "missing field `op`")
    if type(op) is not str:
        raise EncodeError("invalid_event", "`op` must be a string")
    code = OP_CODES.get(op)
    head = bytes((code,)) if code is not None else b"\xff" + _str(op, "op")
    parts = [b"", _str(key, "key")]
    if has_value:
        flags |= 0x01
        parts.append(encode_value(value))
    if path is not None:
        flags |= 0x02
        parts.append(_str(path, "path"))
    if id_ is not None:
        flags |= 0x04
        parts.append(_str(id_, "id"))
    if if_version is not None:
        flags |= 0x08
        parts.append(_uint(if_version, "if_version"))
    if ttl_s is not None:
        flags |= 0x10
        parts.append(_uint(ttl_s, "ttl_s"))
    if max_len is not None:
        flags |= 0x20
        parts.append(_uint(max_len, "max_len"))
    parts[0] = head + bytes((flags,))
    return b"".join(parts)


def encode_events_py(events: List[Any]) -> List[Union[bytes, Rejected]]:
    """Encodes each event (the pure-Python reference); an event that cannot be encoded gets its
    :class:`Rejected` result in its place."""
    out: List[Union[bytes, Rejected]] = []
    append = out.append
    for e in events:
        try:
            append(encode_event(e))
        except EncodeError as err:
            append(Rejected(err.code, str(err)))
    return out


def frame(ftype: int, body: bytes) -> bytes:
    """A frame: length, type, body."""
    return _hdr.pack(len(body) + 1, ftype) + body


def hello(token: Optional[str], ack: Optional[str], client: str) -> bytes:
    """The HELLO frame."""
    msg: Dict[str, Any] = {"version": VERSION, "client": client}
    if token is not None:
        msg["token"] = token
    if ack is not None:
        msg["ack"] = ack
    return frame(HELLO, json.dumps(msg).encode())


def events_frame(seq: int, ack: Optional[str], encoded: List[bytes]) -> bytes:
    """An EVENTS_BIN frame of already-encoded events."""
    body = b"".join(encoded)
    return (
        _events_hdr.pack(len(body) + 10, EVENTS_BIN, seq & 0xFFFFFFFF, ACK_BYTE[ack], len(encoded))
        + body
    )


class ProtocolError(Exception):
    """The server sent something this client cannot decode."""


def decode_ack_py(body: bytes) -> Tuple[int, List[Result]]:
    """An ACK body: (seq, results) (the pure-Python reference)."""
    try:
        (seq,) = _u32.unpack_from(body, 0)
        pos = 4
        b = body[pos]
        pos += 1
        if b < 0x80:
            count = b
        else:
            count, pos = _varint_at(body, pos - 1)
        results: List[Result] = []
        append = results.append
        for _ in range(count):
            status = body[pos]
            pos += 1
            if status == 0:
                b = body[pos]
                if b < 0x80:
                    pos += 1
                    append(Applied(b))
                else:
                    v, pos = _varint_at(body, pos)
                    append(Applied(v))
            elif status == 5:
                append(Accepted())
            elif status == 1:
                append(Duplicate())
            elif status == 2:
                v, pos = _varint_at(body, pos)
                append(Conflict(v))
            elif status == 3:
                code, pos = _str_at(body, pos)
                msg, pos = _str_at(body, pos)
                append(Rejected(code, msg))
            elif status == 4:
                append(Overloaded())
            else:
                raise ProtocolError(f"unknown result status byte {status}")
        return seq, results
    except (IndexError, struct.error) as e:
        raise ProtocolError(f"truncated ACK: {e}") from None


def _varint_at(buf: bytes, pos: int) -> Tuple[int, int]:
    n = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("varint too long")


def _str_at(buf: bytes, pos: int) -> Tuple[str, int]:
    n, pos = _varint_at(buf, pos)
    end = pos + n
    if end > len(buf):
        raise ProtocolError("string runs past the frame")
    return buf[pos:end].decode("utf-8", "replace"), end


class FrameReader:
    """Splits a byte stream into frames: feed bytes, take (type, body)."""

    def __init__(self, max_frame: int = 64 << 20) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> None:
        """Adds received bytes."""
        self._buf += data

    def next(self) -> Optional[Tuple[int, bytes]]:
        """The next complete frame, or None."""
        buf = self._buf
        if len(buf) < 4:
            return None
        (n,) = _u32.unpack_from(buf, 0)
        if n == 0 or n > self._max:
            raise ProtocolError(f"bad frame length {n}")
        if len(buf) < 4 + n:
            return None
        ftype = buf[4]
        body = bytes(buf[5 : 4 + n])
        del buf[: 4 + n]
        return ftype, body


def parse_error(body: bytes) -> Dict[str, Any]:
    """An ERROR frame's JSON body (a best effort for a garbled one)."""
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            return obj
    except ValueError:
        pass
    return {"code": "internal", "message": body[:200].decode("utf-8", "replace")}


#: ERROR codes after which the connection goes on.
NON_FATAL_ERRORS = frozenset(("malformed_frame", "internal"))


def split_frames(
    encoded: List[Union[bytes, Rejected]], batch: int, max_bytes: int
) -> List[List[int]]:
    """Groups the positions of the encodable events into frames of at most
    ``batch`` events and ``max_bytes`` body bytes."""
    frames: List[List[int]] = []
    cur: List[int] = []
    size = 0
    for i, e in enumerate(encoded):
        if not isinstance(e, bytes):
            continue
        if cur and (len(cur) >= batch or size + len(e) > max_bytes):
            frames.append(cur)
            cur = []
            size = 0
        cur.append(i)
        size += len(e)
    if cur:
        frames.append(cur)
    return frames


def encode_events(events: List[Any]) -> List[Union[bytes, Rejected]]:
    """Encodes each event; an event that cannot be encoded gets its
    :class:`Rejected` result in its place. Native (``_native``); the same
    bytes as :func:`encode_events_py`."""
    return _native.encode_events(events)


def decode_ack(body: bytes) -> Tuple[int, List[Result]]:
    """An ACK body: (seq, results). Native; the same results as
    :func:`decode_ack_py`. Raises :class:`ProtocolError`."""
    try:
        return _native.decode_ack(body)
    except ValueError as e:
        raise ProtocolError(str(e)) from None
