"""Statecraft for Python: a client for ``statecraft serve`` and the engine
embedded in-process, with one event model.

- :class:`Client` / :class:`AsyncClient`: events over TCP protocol v1
  (pipelined, windowed, resent safely with ids), reads and watches over HTTP.
- :class:`Engine` / :class:`AsyncEngine`: the Rust engine in this process.

Events are dicts (``{"key": "user:42", "op": "incr", "path": "/clicks",
"value": 1}``); results are :class:`Applied`, :class:`Duplicate`,
:class:`Conflict`, :class:`Rejected`, :class:`Overloaded`, :class:`Accepted`.
See docs/python.md.
"""

from . import _native
from ._types import (
    ACK_MODES,
    Accepted,
    Applied,
    Change,
    Conflict,
    ConflictError,
    ConnectionLost,
    Duplicate,
    EngineClosed,
    EventDict,
    Lagged,
    Overloaded,
    OverloadedError,
    Rejected,
    RejectedError,
    Result,
    ServerError,
    State,
    StatecraftError,
    Timeout,
    Unauthorized,
    Unavailable,
    check,
    event,
    new_id,
    with_ids,
)

_native.set_types(State, Change, Lagged)

from .aio import AsyncClient, AsyncWatch  # noqa: E402
from .client import Client, Watch  # noqa: E402
from .embedded import AsyncEngine, Engine, EngineWatch  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ACK_MODES",
    "Accepted",
    "Applied",
    "AsyncClient",
    "AsyncEngine",
    "AsyncWatch",
    "Change",
    "Client",
    "Conflict",
    "ConflictError",
    "ConnectionLost",
    "Duplicate",
    "Engine",
    "EngineClosed",
    "EngineWatch",
    "EventDict",
    "Lagged",
    "Overloaded",
    "OverloadedError",
    "Rejected",
    "RejectedError",
    "Result",
    "ServerError",
    "State",
    "StatecraftError",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "Watch",
    "check",
    "event",
    "new_id",
    "with_ids",
]
