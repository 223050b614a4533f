"""The one-event helpers (incr, set, merge, ...) shared by every face —
:class:`~statecraft.Client`, :class:`~statecraft.Engine` and their asyncio
twins — written once on top of ``send``.

Invariant: a helper sends exactly one event and returns its success result
(:class:`Applied`, :class:`Duplicate` or :class:`Accepted`) or raises the
matching exception (:class:`ConflictError`, :class:`RejectedError`,
:class:`OverloadedError`).
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional

from ._types import EventDict, Result, State, check, event

_NO_VALUE = object()


def _one(op: str, key: str, value: Any = _NO_VALUE, **fields: Any) -> EventDict:
    return event(op, key, None if value is _NO_VALUE else value,
                 has_value=value is not _NO_VALUE, **fields)


class SyncOps:
    """incr/set/merge/append/max/min/delete over ``send``."""

    def send(self, events: List[EventDict], ack: Optional[str] = None) -> List[Result]:
        raise NotImplementedError

    def _send_one(self, e: EventDict, ack: Optional[str]) -> Result:
        return check(self.send([e], ack=ack)[0])

    def incr(self, key: str, by: Any = 1, *, path: Optional[str] = None,
             id: Optional[str] = None, if_version: Optional[int] = None,
             ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Adds ``by`` (an int or float) to the number at ``key``/``path``."""
        return self._send_one(_one("incr", key, by, path=path, id=id,
                                   if_version=if_version, ttl_s=ttl_s), ack)

    def set(self, key: str, value: Any, *, path: Optional[str] = None,
            id: Optional[str] = None, if_version: Optional[int] = None,
            ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Replaces the value (or the member at ``path``)."""
        return self._send_one(_one("set", key, value, path=path, id=id,
                                   if_version=if_version, ttl_s=ttl_s), ack)

    def merge(self, key: str, patch: Any, *, path: Optional[str] = None,
              id: Optional[str] = None, if_version: Optional[int] = None,
              ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """JSON Merge Patch (RFC 7386) of ``patch`` into the value."""
        return self._send_one(_one("merge", key, patch, path=path, id=id,
                                   if_version=if_version, ttl_s=ttl_s), ack)

    def append(self, key: str, value: Any, *, max_len: Optional[int] = None,
               path: Optional[str] = None, id: Optional[str] = None,
               if_version: Optional[int] = None, ttl_s: Optional[int] = None,
               ack: Optional[str] = None) -> Result:
        """Pushes ``value`` onto the array (keeping the newest ``max_len``)."""
        return self._send_one(_one("append", key, value, path=path, id=id,
                                   if_version=if_version, ttl_s=ttl_s,
                                   max_len=max_len), ack)

    def max(self, key: str, value: Any, *, path: Optional[str] = None,
            id: Optional[str] = None, if_version: Optional[int] = None,
            ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Keeps the larger of the current number and ``value``."""
        return self._send_one(_one("max", key, value, path=path, id=id,
                                   if_version=if_version, ttl_s=ttl_s), ack)

    def min(self, key: str, value: Any, *, path: Optional[str] = None,
            id: Optional[str] = None, if_version: Optional[int] = None,
            ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Keeps the smaller of the current number and ``value``."""
        return self._send_one(_one("min", key, value, path=path, id=id,
                                   if_version=if_version, ttl_s=ttl_s), ack)

    def delete(self, key: str, *, path: Optional[str] = None,
               id: Optional[str] = None, if_version: Optional[int] = None,
               ack: Optional[str] = None) -> Result:
        """Removes the key (or the member at ``path``)."""
        return self._send_one(_one("delete", key, path=path, id=id,
                                   if_version=if_version), ack)

    def scan_page(self, prefix: str = "", after: Optional[str] = None,
                  limit: int = 100) -> List[State]:
        raise NotImplementedError

    def scan(self, prefix: str = "", *, after: Optional[str] = None,
             page: int = 100) -> Iterator[State]:
        """Every live key starting with ``prefix`` (after ``after``), in byte
        order, fetched ``page`` keys at a time."""
        while True:
            items = self.scan_page(prefix, after, page)
            yield from items
            if len(items) < page:
                return
            after = items[-1].key


class AsyncOps:
    """The asyncio twin of :class:`SyncOps`."""

    async def send(self, events: List[EventDict], ack: Optional[str] = None) -> List[Result]:
        raise NotImplementedError

    async def _send_one(self, e: EventDict, ack: Optional[str]) -> Result:
        return check((await self.send([e], ack=ack))[0])

    async def incr(self, key: str, by: Any = 1, *, path: Optional[str] = None,
                   id: Optional[str] = None, if_version: Optional[int] = None,
                   ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Adds ``by`` to the number at ``key``/``path``."""
        return await self._send_one(_one("incr", key, by, path=path, id=id,
                                         if_version=if_version, ttl_s=ttl_s), ack)

    async def set(self, key: str, value: Any, *, path: Optional[str] = None,
                  id: Optional[str] = None, if_version: Optional[int] = None,
                  ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Replaces the value (or the member at ``path``)."""
        return await self._send_one(_one("set", key, value, path=path, id=id,
                                         if_version=if_version, ttl_s=ttl_s), ack)

    async def merge(self, key: str, patch: Any, *, path: Optional[str] = None,
                    id: Optional[str] = None, if_version: Optional[int] = None,
                    ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """JSON Merge Patch of ``patch`` into the value."""
        return await self._send_one(_one("merge", key, patch, path=path, id=id,
                                         if_version=if_version, ttl_s=ttl_s), ack)

    async def append(self, key: str, value: Any, *, max_len: Optional[int] = None,
                     path: Optional[str] = None, id: Optional[str] = None,
                     if_version: Optional[int] = None, ttl_s: Optional[int] = None,
                     ack: Optional[str] = None) -> Result:
        """Pushes ``value`` onto the array."""
        return await self._send_one(_one("append", key, value, path=path, id=id,
                                         if_version=if_version, ttl_s=ttl_s,
                                         max_len=max_len), ack)

    async def max(self, key: str, value: Any, *, path: Optional[str] = None,
                  id: Optional[str] = None, if_version: Optional[int] = None,
                  ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Keeps the larger of the current number and ``value``."""
        return await self._send_one(_one("max", key, value, path=path, id=id,
                                         if_version=if_version, ttl_s=ttl_s), ack)

    async def min(self, key: str, value: Any, *, path: Optional[str] = None,
                  id: Optional[str] = None, if_version: Optional[int] = None,
                  ttl_s: Optional[int] = None, ack: Optional[str] = None) -> Result:
        """Keeps the smaller of the current number and ``value``."""
        return await self._send_one(_one("min", key, value, path=path, id=id,
                                         if_version=if_version, ttl_s=ttl_s), ack)

    async def delete(self, key: str, *, path: Optional[str] = None,
                     id: Optional[str] = None, if_version: Optional[int] = None,
                     ack: Optional[str] = None) -> Result:
        """Removes the key (or the member at ``path``)."""
        return await self._send_one(_one("delete", key, path=path, id=id,
                                         if_version=if_version), ack)

    async def scan_page(self, prefix: str = "", after: Optional[str] = None,
                        limit: int = 100) -> List[State]:
        raise NotImplementedError

    async def scan(self, prefix: str = "", *, after: Optional[str] = None,
                   page: int = 100):  # -> AsyncIterator[State]
        """Every live key starting with ``prefix``, ``page`` keys at a time
        (an async iterator)."""
        while True:
            items = await self.scan_page(prefix, after, page)
            for item in items:
                yield item
            if len(items) < page:
                return
            after = items[-1].key
