"""The Statecraft engine embedded in this process (no server): the Rust
engine through the ``statecraft._native`` extension.

:class:`Engine` has the client's methods (``send``, ``incr``, ``get``,
``scan``, ``watch``, ...) with the same event dicts and result objects, so
code moves between embedded and client-server by changing the line that
makes the handle. Every wait releases the GIL. :class:`AsyncEngine` is the
asyncio face: the same calls as coroutines, waiting in a thread pool.

Invariant: one result per event, in order (an event that cannot be
converted gets its :class:`Rejected` result in place); after ``close()``
every call raises :class:`EngineClosed`.
"""

from __future__ import annotations

import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple, Union

from . import _native
from ._ops import AsyncOps, SyncOps
from ._types import (
    Change,
    EngineClosed,
    EventDict,
    Lagged,
    Result,
    State,
    StatecraftError,
    with_ids,
)


def _wrap(e: BaseException) -> BaseException:
    if isinstance(e, _native.EngineClosed):
        return EngineClosed(str(e))
    if isinstance(e, _native.EngineFailure):
        return StatecraftError(str(e), code="engine_failed")
    return e


class Engine(SyncOps):
    """The engine, in process::

        with statecraft.Engine(data_dir="./data", shards=2) as db:
            db.incr("user:42", path="/clicks")
            print(db.get("user:42"))

    Args:
        data_dir: where state is kept durably (recovered on open); None =
            in memory only (``ack="durable"`` then answers like ``applied``).
        shards: shard workers (threads); default: the engine's default.
        queue_capacity: events per shard queue.
        overflow: ``block`` (wait for room), ``reject`` (answer
            :class:`Overloaded`), ``drop_oldest``, ``drop_newest``.
        ack: the default ack mode (``durable``, ``applied``, ``none``).
        max_batch, max_wait_ms: the shard workers' batching.
        dedup_window_s: how long an event ``id`` is remembered.
        block_timeout_ms: under ``block``, how long to wait for room before
            answering :class:`Overloaded`.
        ids: give every event without an ``id`` a fresh one.
    """

    def __init__(
        self,
        data_dir: Union[str, "os.PathLike[str]", None] = None,
        shards: Optional[int] = None,
        *,
        queue_capacity: Optional[int] = None,
        overflow: Optional[str] = None,
        ack: Optional[str] = None,
        max_batch: Optional[int] = None,
        max_wait_ms: Optional[int] = None,
        dedup_window_s: Optional[int] = None,
        block_timeout_ms: Optional[int] = None,
        ids: bool = False,
    ) -> None:
        try:
            self._native = _native.NativeEngine(
                data_dir=os.fspath(data_dir) if data_dir is not None else None,
                shards=shards,
                queue_capacity=queue_capacity,
                overflow=overflow,
                ack=ack,
                max_batch=max_batch,
                max_wait_ms=max_wait_ms,
                dedup_window_s=dedup_window_s,
                block_timeout_ms=block_timeout_ms,
            )
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None
        self.ids = ids

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Drains the queues, applies and commits everything admitted, and
        stops the engine. Idempotent."""
        try:
            self._native.close()
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return bool(self._native.closed())

    def send(self, events: List[EventDict], ack: Optional[str] = None, *,
             ids: Optional[bool] = None) -> List[Result]:
        """Submits events (dicts); one result per event, in input order."""
        if isinstance(events, (dict, str, bytes)):
            raise TypeError("events must be a list of dicts")
        if ids if ids is not None else self.ids:
            events = with_ids(list(events))
        try:
            return self._native.submit(events, ack)
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None

    #: The engine's name for :meth:`send`.
    submit = send

    def incr_many(self, keys: List[str], by: int = 1, ack: Optional[str] = None
                  ) -> Tuple[int, List[Tuple[int, Result]]]:
        """``incr`` by ``by`` of every key in ``keys`` without a dict per
        event (the counter fast path). Returns the number applied (or
        accepted, with ``ack="none"``) and the other results as
        ``(position, result)`` pairs."""
        try:
            return self._native.incr_many(keys, by, ack)
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None

    def get(self, key: str) -> Optional[State]:
        """The key's state, or None."""
        try:
            return self._native.get(key)
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None

    def scan_page(self, prefix: str = "", after: Optional[str] = None,
                  limit: int = 100) -> List[State]:
        """One page of a scan: up to ``limit`` live keys starting with
        ``prefix``, greater than ``after``, in byte order."""
        try:
            return self._native.scan(prefix, after, limit)
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None

    def watch(self, prefix: str = "") -> "EngineWatch":
        """A live feed of changes to keys starting with ``prefix``:
        subscribed when this returns; iterate it for :class:`Change` (and
        :class:`Lagged` when this watcher fell behind)."""
        try:
            return EngineWatch(self._native.watch(prefix))
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None

    def stats(self) -> Dict[str, Any]:
        """The engine's figures (as ``/v1/stats`` shows them)."""
        try:
            return json.loads(self._native.stats_json())
        except (_native.EngineClosed, _native.EngineFailure) as e:
            raise _wrap(e) from None


class EngineWatch:
    """An open watch on the embedded engine. Iterating ends when the engine
    closes. ``next(timeout)`` returns None when nothing came in time."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def next(self, timeout: Optional[float] = None) -> Optional[Union[Change, Lagged]]:
        """The next change, waiting at most ``timeout`` seconds."""
        try:
            return self._native.next(timeout)
        except _native.EngineClosed as e:
            raise EngineClosed(str(e)) from None

    def __iter__(self) -> Iterator[Union[Change, Lagged]]:
        return self

    def __next__(self) -> Union[Change, Lagged]:
        while True:
            try:
                item = self._native.next(1.0)
            except _native.EngineClosed:
                raise StopIteration from None
            if item is not None:
                return item

    def close(self) -> None:
        """Stops watching."""
        self._native.close()

    def __enter__(self) -> "EngineWatch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncEngine(AsyncOps):
    """The asyncio face of :class:`Engine`: the same arguments and methods,
    as coroutines; each call waits in a thread pool (the GIL is released
    while the engine works), so the event loop keeps running::

        async with statecraft.AsyncEngine(data_dir="./data") as db:
            await db.incr("user:42", path="/clicks")
    """

    def __init__(self, *args: Any, threads: int = 4, **kwargs: Any) -> None:
        self.engine = Engine(*args, **kwargs)
        self._pool = ThreadPoolExecutor(max_workers=threads,
                                        thread_name_prefix="statecraft-engine")

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def __aenter__(self) -> "AsyncEngine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the engine (draining and committing)."""
        await self._call(self.engine.close)
        self._pool.shutdown(wait=False)

    async def send(self, events: List[EventDict], ack: Optional[str] = None, *,
                   ids: Optional[bool] = None) -> List[Result]:
        """Submits events; one result per event, in order."""
        return await self._call(lambda: self.engine.send(events, ack, ids=ids))

    submit = send

    async def incr_many(self, keys: List[str], by: int = 1, ack: Optional[str] = None
                        ) -> Tuple[int, List[Tuple[int, Result]]]:
        """See :meth:`Engine.incr_many`."""
        return await self._call(self.engine.incr_many, keys, by, ack)

    async def get(self, key: str) -> Optional[State]:
        """The key's state, or None."""
        return await self._call(self.engine.get, key)

    async def scan_page(self, prefix: str = "", after: Optional[str] = None,
                        limit: int = 100) -> List[State]:
        """One page of a scan."""
        return await self._call(self.engine.scan_page, prefix, after, limit)

    async def stats(self) -> Dict[str, Any]:
        """The engine's figures."""
        return await self._call(self.engine.stats)

    def watch(self, prefix: str = "") -> "AsyncEngineWatch":
        """An async iterator of changes, subscribed when this returns; ends
        when the engine closes."""
        return AsyncEngineWatch(self, self.engine.watch(prefix))


class AsyncEngineWatch:
    """An open watch of :class:`AsyncEngine` (an async iterator)."""

    def __init__(self, engine: AsyncEngine, watch: EngineWatch) -> None:
        self._engine = engine
        self._watch = watch

    def __aiter__(self) -> "AsyncEngineWatch":
        return self

    async def __anext__(self) -> Union[Change, Lagged]:
        while True:
            try:
                item = await self._engine._call(self._watch.next, 0.5)
            except EngineClosed:
                raise StopAsyncIteration from None
            if item is not None:
                return item

    async def __aenter__(self) -> "AsyncEngineWatch":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stops watching."""
        self._watch.close()
