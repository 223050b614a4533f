"""The event model shared by the client and the embedded engine.

Events are plain dicts (``{"key": ..., "op": ..., "value": ...}``, exactly the
JSON objects of ``POST /v1/events``); the helpers below build them. Results
are small immutable native classes (one per event, so they cost one
allocation), states and changes are dataclasses; whole-call failures are
exceptions carrying the server's (or engine's) code.

Invariant: a call that sends N events returns exactly N results, in input
order; an event the library cannot even encode gets a :class:`Rejected`
result in its place, never an exception that loses its neighbours.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

from . import _native

#: One event: a dict with ``key`` and ``op`` and optionally ``value``,
#: ``path``, ``id``, ``if_version``, ``ttl_s``, ``max_len``.
EventDict = Dict[str, Any]

#: The ack modes: when the answer comes back.
ACK_MODES = ("durable", "applied", "none")

EVENT_FIELDS = frozenset(
    ("key", "op", "value", "path", "id", "if_version", "ttl_s", "max_len")
)


# --- results -----------------------------------------------------------------


# The per-event results are native classes (src/results.rs): immutable,
# compared and hashed by their fields, each with ``status`` (the wire name),
# ``ok`` and ``__match_args__`` — one allocation per result, since every
# event gets one.
Applied = _native.Applied
Duplicate = _native.Duplicate
Conflict = _native.Conflict
Rejected = _native.Rejected
Overloaded = _native.Overloaded
Accepted = _native.Accepted

#: One event's result.
Result = Union[Applied, Duplicate, Conflict, Rejected, Overloaded, Accepted]

#: How long to wait before retrying an overloaded event (the server's
#: ``Retry-After`` for a refused request).
RETRY_AFTER_S = 1.0


@dataclass
class State:
    """The current state of one key."""

    __slots__ = ("key", "value", "version", "updated_at", "expires_at")
    key: str
    value: Any
    version: int
    updated_at: int
    expires_at: Optional[int]


@dataclass
class Change:
    """One change on the change feed (``value`` is None after a delete)."""

    __slots__ = ("key", "op", "value", "version", "updated_at")
    key: str
    op: str
    value: Any
    version: int
    updated_at: int


@dataclass
class Lagged:
    """The watcher fell behind and ``missed`` changes were skipped; ``None``
    when unknown (the client reconnected and changes in the gap were not
    replayed)."""

    __slots__ = ("missed",)
    missed: Optional[int]


def result_from_json(obj: Dict[str, Any]) -> Result:
    """Builds a result from its JSON form (``{"status": "applied", ...}``)."""
    status = obj.get("status")
    if status == "applied":
        return Applied(int(obj["version"]))
    if status == "duplicate":
        return Duplicate()
    if status == "conflict":
        return Conflict(int(obj["current_version"]))
    if status == "rejected":
        return Rejected(str(obj.get("code", "")), str(obj.get("message", "")))
    if status == "overloaded":
        return Overloaded()
    if status == "accepted":
        return Accepted()
    return Rejected("internal", f"unknown result status {status!r}")


def state_from_json(obj: Dict[str, Any]) -> State:
    """Builds a :class:`State` from its JSON form."""
    return State(
        obj["key"],
        obj.get("value"),
        int(obj["version"]),
        int(obj.get("updated_at", 0)),
        obj.get("expires_at"),
    )


def change_from_json(obj: Dict[str, Any]) -> Change:
    """Builds a :class:`Change` from its JSON form."""
    return Change(
        obj["key"],
        str(obj.get("op", "")),
        obj.get("value"),
        int(obj.get("version", 0)),
        int(obj.get("updated_at", 0)),
    )


# --- errors ------------------------------------------------------------------


class StatecraftError(Exception):
    """A whole call failed. ``code`` is the server's (or engine's) code:
    ``unauthorized``, ``overloaded``, ``malformed_frame``, ``shutting_down``,
    ``conflict``, ``rejected``, ``timeout``, ``connection_lost``, ..."""

    code: str = "error"

    def __init__(self, message: str = "", code: Optional[str] = None) -> None:
        super().__init__(message or (code or self.code))
        if code is not None:
            self.code = code


class Unauthorized(StatecraftError):
    """The auth token is missing or wrong."""

    code = "unauthorized"


class OverloadedError(StatecraftError):
    """The server refused the request or event because a queue is full.
    Retry after ``retry_after`` seconds."""

    code = "overloaded"

    def __init__(
        self,
        message: str = "",
        retry_after: float = RETRY_AFTER_S,
        results: Optional[List[Result]] = None,
    ) -> None:
        super().__init__(message or "overloaded: retry later")
        self.retry_after = retry_after
        self.results = results


class ConflictError(StatecraftError):
    """``if_version`` did not match; ``current_version`` is the key's now."""

    code = "conflict"

    def __init__(self, current_version: int, message: str = "") -> None:
        super().__init__(
            message or f"version conflict: the key is at version {current_version}"
        )
        self.current_version = current_version


class RejectedError(StatecraftError):
    """The event was rejected; ``code`` says why (``type_error``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}", code=code)
        self.reason = message


class ServerError(StatecraftError):
    """The server answered an error (an ``ERROR`` frame or an HTTP problem)."""

    def __init__(
        self, code: str, message: str = "", status: Optional[int] = None
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code, code=code)
        self.status = status


class Unavailable(StatecraftError):
    """The server is starting, stopping, or cannot be reached."""

    code = "unavailable"


class ConnectionLost(StatecraftError):
    """The connection broke before every answer came back, and the unanswered
    events could not be resent safely (they carry no ``id``; pass
    ``ids=True`` to the client to make retries safe). ``unanswered`` holds the
    positions (in the call's input) of the events whose outcome is unknown;
    ``results`` the results that did come back (``None`` where unknown)."""

    code = "connection_lost"

    def __init__(
        self,
        message: str,
        unanswered: Optional[List[int]] = None,
        results: Optional[List[Optional[Result]]] = None,
    ) -> None:
        super().__init__(message)
        self.unanswered = unanswered or []
        self.results = results


class Timeout(StatecraftError, TimeoutError):
    """An operation did not complete within the client's ``timeout``."""

    code = "timeout"


class EngineClosed(StatecraftError):
    """The embedded engine is closed (or closing) and admits nothing new."""

    code = "shutting_down"


def check(result: Result) -> Result:
    """Returns ``result`` if it is a success (applied, duplicate, accepted),
    else raises the matching exception."""
    if result.ok:
        return result
    if isinstance(result, Conflict):
        raise ConflictError(result.current_version)
    if isinstance(result, Overloaded):
        raise OverloadedError(retry_after=RETRY_AFTER_S)
    if isinstance(result, Rejected):
        raise RejectedError(result.code, result.message)
    raise StatecraftError(f"unexpected result {result!r}")


# --- event helpers -----------------------------------------------------------


def new_id() -> str:
    """A fresh idempotency id (a random UUID)."""
    return uuid.uuid4().hex


def event(
    op: str,
    key: str,
    value: Any = None,
    *,
    path: Optional[str] = None,
    id: Optional[str] = None,
    if_version: Optional[int] = None,
    ttl_s: Optional[int] = None,
    max_len: Optional[int] = None,
    has_value: bool = True,
) -> EventDict:
    """Builds an event dict, leaving out the fields that are None."""
    e: EventDict = {"key": key, "op": op}
    if has_value:
        e["value"] = value
    if path is not None:
        e["path"] = path
    if id is not None:
        e["id"] = id
    if if_version is not None:
        e["if_version"] = if_version
    if ttl_s is not None:
        e["ttl_s"] = ttl_s
    if max_len is not None:
        e["max_len"] = max_len
    return e


def with_ids(events: List[EventDict]) -> List[EventDict]:
    """Returns the events, each one without an ``id`` copied with a fresh one
    (events that already have an id, and non-dicts, are kept as they are)."""
    out = []
    for e in events:
        if isinstance(e, dict) and e.get("id") is None:
            e = dict(e)
            e["id"] = new_id()
        out.append(e)
    return out
