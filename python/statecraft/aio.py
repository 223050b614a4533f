"""The asyncio client: events over TCP protocol v1, reads over HTTP/1.1,
both on asyncio streams.

Invariants (as the sync client's): one result per event, in order; a frame
is resent after a broken connection only when every event in it carries an
``id``; at most ``max_in_flight`` frames are unanswered per connection
(concurrent ``send`` calls share a connection's pipeline; a semaphore holds
the window, a reader task matches answers to frames in order).
"""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
import time
import urllib.parse
from typing import Any, AsyncIterator, Deque, Dict, List, Optional, Tuple, Union

from . import _codec
from ._ops import AsyncOps
from ._types import (
    Change,
    ConnectionLost,
    EventDict,
    Lagged,
    Rejected,
    Result,
    ServerError,
    State,
    StatecraftError,
    Timeout,
    Unauthorized,
    Unavailable,
    change_from_json,
    result_from_json,
    state_from_json,
    with_ids,
)
from .client import (
    CLIENT_NAME,
    DEFAULT_HTTP,
    DEFAULT_TCP,
    RETRYABLE_CODES,
    _check_ack,
    _split_hostport,
    problem_error,
)


class _Broken(Exception):
    def __init__(self, cause: str, code: str = "connection_lost") -> None:
        super().__init__(cause)
        self.code = code


class _AConn:
    """One TCP v1 connection; a reader task answers the frames in order."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.waiting: Deque[Tuple[int, "asyncio.Future[Any]"]] = collections.deque()
        self.seq = 0
        self.broken: Optional[BaseException] = None
        self.task: Optional["asyncio.Task[None]"] = None

    @classmethod
    async def open(cls, client: "AsyncClient") -> "_AConn":
        self = cls()
        host, port = client._tcp_addr
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=client._ssl,
                                        server_hostname=host if client._ssl else None,
                                        limit=1 << 22),
                client.connect_timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"cannot connect to {host}:{port} within {client.connect_timeout} s") from None
        try:
            self.writer.write(_codec.hello(client.token, client.default_ack, CLIENT_NAME))
            ftype, body = await asyncio.wait_for(self._read_frame(), client.connect_timeout)
        except BaseException:
            self.writer.close()
            raise
        if ftype == _codec.ERROR:
            self.writer.close()
            err = _codec.parse_error(body)
            code = str(err.get("code", "internal"))
            if code == "unauthorized":
                raise Unauthorized(str(err.get("message", "unauthorized")))
            raise ServerError(code, str(err.get("message", "")))
        if ftype != _codec.HELLO_OK:
            self.writer.close()
            raise ServerError("protocol", f"expected HELLO_OK, got frame type {ftype:#x}")
        info = json.loads(body)
        self.window_size = max(1, int(info.get("max_in_flight", 64)))
        self.window = asyncio.Semaphore(self.window_size)
        self.max_frame_bytes = int(info.get("max_frame_bytes", 16 << 20))
        self.task = asyncio.get_running_loop().create_task(self._read_loop())
        return self

    async def _read_frame(self) -> Tuple[int, bytes]:
        head = await self.reader.readexactly(5)
        n = int.from_bytes(head[:4], "big")
        if n == 0:
            raise _codec.ProtocolError("empty frame")
        body = await self.reader.readexactly(n - 1)
        return head[4], body

    async def _read_loop(self) -> None:
        try:
            while True:
                ftype, body = await self._read_frame()
                if ftype == _codec.ACK:
                    seq, results = _codec.decode_ack(body)
                    if not self.waiting or self.waiting[0][0] != seq:
                        raise _Broken(f"ACK for seq {seq} out of order")
                    _, fut = self.waiting.popleft()
                    self.window.release()
                    if not fut.done():
                        fut.set_result(results)
                elif ftype == _codec.ERROR:
                    err = _codec.parse_error(body)
                    code = str(err.get("code", "internal"))
                    if code in _codec.NON_FATAL_ERRORS and "frame_seq" in err and self.waiting:
                        _, fut = self.waiting.popleft()
                        self.window.release()
                        if not fut.done():
                            fut.set_result(err)
                        continue
                    if code in RETRYABLE_CODES:
                        raise _Broken(str(err.get("message", code)), code)
                    if code == "unauthorized":
                        raise Unauthorized(str(err.get("message", "")))
                    raise ServerError(code, str(err.get("message", "")))
                else:
                    raise _Broken(f"unexpected frame type {ftype:#x}")
        except asyncio.CancelledError:
            self._fail(_Broken("the connection was closed"))
            raise
        except (OSError, asyncio.IncompleteReadError, _codec.ProtocolError) as e:
            self._fail(_Broken(f"{type(e).__name__}: {e}"))
        except BaseException as e:  # fatal server errors, _Broken
            self._fail(e)

    def _fail(self, e: BaseException) -> None:
        self.broken = e
        # Wake every sender waiting for window room: they see `broken`.
        for _ in range(self.window_size):
            self.window.release()
        while self.waiting:
            _, fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(e)
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass

    async def submit_frame(self, ack: Optional[str], encoded: List[bytes]) -> "asyncio.Future[Any]":
        """Writes one frame (waiting for window room); its answer's future."""
        await self.window.acquire()
        if self.broken is not None:
            self.window.release()
            raise self.broken
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self.waiting.append((seq, fut))
        self.writer.write(_codec.events_frame(seq, ack, encoded))
        return fut

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass


class AsyncClient(AsyncOps):
    """The asyncio client; the same arguments and methods as
    :class:`statecraft.Client`, as coroutines (``watch`` and ``scan`` are
    async iterators). Use ``async with``::

        async with statecraft.AsyncClient() as c:
            await c.incr("user:42", path="/clicks")
            async for change in c.watch("user:"):
                ...

    Concurrent ``send`` calls share up to ``pool_size`` pipelined
    connections.
    """

    def __init__(
        self,
        tcp: str = DEFAULT_TCP,
        http: str = DEFAULT_HTTP,
        *,
        token: Optional[str] = None,
        ack: Optional[str] = None,
        tls: Union[bool, ssl.SSLContext, None] = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        batch: int = 1000,
        ids: bool = False,
        retry_for: float = 30.0,
        pool_size: int = 4,
    ) -> None:
        _check_ack(ack)
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._tcp_addr = _split_hostport(tcp, 7471)
        url = urllib.parse.urlsplit(http if "://" in http else "http://" + http)
        if url.scheme not in ("http", "https"):
            raise ValueError(f"http must be an http:// or https:// URL, not {http!r}")
        self._http_https = url.scheme == "https"
        self._http_host = url.hostname or "127.0.0.1"
        self._http_port = url.port or (443 if self._http_https else 80)
        self._http_base = url.path.rstrip("/")
        if tls is True:
            self._ssl: Optional[ssl.SSLContext] = ssl.create_default_context()
        elif isinstance(tls, ssl.SSLContext):
            self._ssl = tls
        else:
            self._ssl = None
        self._http_ssl = self._ssl if self._ssl is not None else (
            ssl.create_default_context() if self._http_https else None)
        self.token = token
        self.default_ack = ack
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.batch = batch
        self.ids = ids
        self.retry_for = retry_for
        self.pool_size = max(1, pool_size)
        self._conns: List[Optional[_AConn]] = [None] * self.pool_size
        self._opening: List[Optional["asyncio.Future[_AConn]"]] = [None] * self.pool_size
        self._rr = 0
        self._http_pool: List[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._closed = False
        self._hooks: Dict[str, Any] = {}  # test hooks (see send)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes every connection."""
        self._closed = True
        for c in self._conns:
            if c is not None:
                c.close()
        self._conns = [None] * self.pool_size
        for _, w in self._http_pool:
            w.close()
        self._http_pool = []

    async def _conn(self) -> _AConn:
        if self._closed:
            raise StatecraftError("the client is closed", code="closed")
        slot = self._rr
        self._rr = (self._rr + 1) % self.pool_size
        c = self._conns[slot]
        if c is not None and c.broken is None:
            return c
        opening = self._opening[slot]
        if opening is not None:
            return await asyncio.shield(opening)
        fut: asyncio.Future[_AConn] = asyncio.get_running_loop().create_future()
        self._opening[slot] = fut
        try:
            c = await _AConn.open(self)
            self._conns[slot] = c
            fut.set_result(c)
            return c
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning
            raise
        finally:
            self._opening[slot] = None

    async def send(
        self,
        events: List[EventDict],
        ack: Optional[str] = None,
        *,
        ids: Optional[bool] = None,
    ) -> List[Result]:
        """Sends events; one result per event, in order (see
        :meth:`statecraft.Client.send`)."""
        _check_ack(ack)
        if not isinstance(events, list):
            if isinstance(events, (dict, str, bytes)):
                raise TypeError("events must be a list of dicts")
            events = list(events)
        if ids if ids is not None else self.ids:
            events = with_ids(events)
        encoded = _codec.encode_events(events)
        results: List[Optional[Result]] = [
            e if isinstance(e, Rejected) else None for e in encoded
        ]
        pending = _codec.split_frames(encoded, self.batch, 1 << 20)
        deadline: Optional[float] = None
        delay = 0.05
        while pending:
            failed: List[List[int]] = []
            cause: BaseException
            try:
                conn = await self._conn()
            except (OSError, ServerError, Timeout) as e:
                if isinstance(e, ServerError) and e.code not in RETRYABLE_CODES:
                    raise
                failed, cause = pending, _Broken(f"cannot connect: {e}", "not_sent")
            else:
                futs = []
                try:
                    for g in pending:
                        futs.append(await conn.submit_frame(ack, [encoded[i] for i in g]))
                    await asyncio.wait_for(conn.writer.drain(), self.timeout)
                    hook = self._hooks.pop("after_write", None)
                    if hook is not None:  # tests: the answers are lost in transit
                        hook()
                        conn._fail(_Broken("the answers were lost in transit (test hook)"))
                except (OSError, _Broken, asyncio.TimeoutError) as e:
                    conn._fail(_Broken(str(e)))
                try:
                    answers = await asyncio.wait_for(
                        asyncio.gather(*futs, return_exceptions=True), self.timeout
                    ) if futs else []
                except asyncio.TimeoutError:
                    conn._fail(_Broken("timed out"))
                    raise Timeout(f"no answer from the server within {self.timeout} s") from None
                cause = _Broken("the connection broke")
                for k, g in enumerate(pending):
                    a = answers[k] if k < len(answers) else cause
                    if isinstance(a, list) and len(a) == len(g):
                        for i, r in zip(g, a):
                            results[i] = r
                    elif isinstance(a, dict):
                        code = str(a.get("code", "internal"))
                        for i in g:
                            results[i] = Rejected(code, str(a.get("message", "")))
                    elif isinstance(a, (_Broken, OSError)) or not isinstance(a, BaseException):
                        failed.append(g)
                        if isinstance(a, BaseException):
                            cause = a
                    else:
                        raise a
            if not failed:
                break
            pending = failed
            # After `shutting_down` the unanswered frames were not applied.
            unsafe = [] if getattr(cause, "code", "") in ("shutting_down", "not_sent") else [
                i for g in pending for i in g
                if not (isinstance(events[i], dict) and events[i].get("id") is not None)]
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.retry_for
            if unsafe or now >= deadline or self._closed:
                unanswered = [i for g in pending for i in g]
                why = ("events without an id cannot be resent safely"
                       if unsafe else "gave up reconnecting")
                raise ConnectionLost(f"{cause}; {len(unanswered)} events unanswered ({why})",
                                     unanswered=unanswered, results=list(results))
            await asyncio.sleep(min(delay, max(0.0, deadline - now)))
            delay = min(delay * 2, 1.0)
        return results  # type: ignore[return-value]

    # --- HTTP/1.1 on asyncio streams -----------------------------------------

    def _head(self, method: str, path: str, extra: Optional[Dict[str, str]] = None,
              body: bytes = b"") -> bytes:
        lines = [f"{method} {self._http_base}{path} HTTP/1.1",
                 f"host: {self._http_host}:{self._http_port}",
                 f"user-agent: {CLIENT_NAME}",
                 f"content-length: {len(body)}"]
        if self.token is not None:
            lines.append(f"authorization: Bearer {self.token}")
        for k, v in (extra or {}).items():
            lines.append(f"{k}: {v}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def _open_http(self) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(asyncio.open_connection(
                self._http_host, self._http_port, ssl=self._http_ssl,
                server_hostname=self._http_host if self._http_ssl else None,
                limit=1 << 22), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise Unavailable(f"cannot connect to {self._http_host}:{self._http_port}: {e}") from None

    @staticmethod
    async def _read_head(r: asyncio.StreamReader) -> Tuple[int, Dict[str, str]]:
        line = await r.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        parts = line.decode("latin-1").split(" ", 2)
        status = int(parts[1])
        headers: Dict[str, str] = {}
        while True:
            h = await r.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    @staticmethod
    async def _read_body(r: asyncio.StreamReader, headers: Dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int((await r.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await r.readline()
                    return bytes(out)
                out += await r.readexactly(size)
                await r.readline()
        n = int(headers.get("content-length", "0"))
        return await r.readexactly(n) if n else b""

    async def _request(self, method: str, path: str, body: bytes = b"",
                       extra: Optional[Dict[str, str]] = None) -> Tuple[int, bytes, Dict[str, str]]:
        for attempt in range(2):
            if self._closed:
                raise StatecraftError("the client is closed", code="closed")
            reused = bool(self._http_pool)
            r, w = self._http_pool.pop() if reused else await self._open_http()
            try:
                w.write(self._head(method, path, extra, body))
                status, headers = await asyncio.wait_for(self._read_head(r), self.timeout)
                data = await asyncio.wait_for(self._read_body(r, headers), self.timeout)
            except asyncio.TimeoutError:
                w.close()
                raise Timeout(f"no HTTP answer within {self.timeout} s") from None
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                w.close()
                if reused and attempt == 0:
                    continue
                raise Unavailable(f"HTTP {method} {path}: {e}") from None
            if headers.get("connection", "").lower() == "close" or len(self._http_pool) >= self.pool_size:
                w.close()
            else:
                self._http_pool.append((r, w))
            return status, data, headers
        raise Unavailable(f"HTTP {method} {path} failed")  # pragma: no cover

    async def get(self, key: str) -> Optional[State]:
        """The key's state, or None."""
        status, data, headers = await self._request(
            "GET", "/v1/state/" + urllib.parse.quote(key, safe=""))
        if status == 404:
            return None
        if status != 200:
            raise problem_error(status, data, headers)
        return state_from_json(json.loads(data))

    async def scan_page(self, prefix: str = "", after: Optional[str] = None,
                        limit: int = 100) -> List[State]:
        """One page of a scan."""
        q = {"prefix": prefix, "limit": str(limit)}
        if after is not None:
            q["after"] = after
        status, data, headers = await self._request("GET", "/v1/state?" + urllib.parse.urlencode(q))
        if status != 200:
            raise problem_error(status, data, headers)
        return [state_from_json(x) for x in json.loads(data)["items"]]

    async def stats(self) -> Dict[str, Any]:
        """The server's ``/v1/stats`` figures."""
        status, data, headers = await self._request("GET", "/v1/stats")
        if status != 200:
            raise problem_error(status, data, headers)
        return json.loads(data)

    async def send_http(self, events: List[EventDict], ack: Optional[str] = None) -> List[Result]:
        """Sends events as one ``POST /v1/events`` (NDJSON)."""
        _check_ack(ack)
        lines = []
        for e in events:
            try:
                lines.append(json.dumps(e, separators=(",", ":"), allow_nan=False))
            except (TypeError, ValueError):
                lines.append("{")
        status, data, headers = await self._request(
            "POST", "/v1/events" + (f"?ack={ack}" if ack else ""),
            "\n".join(lines).encode(), {"content-type": "application/x-ndjson"})
        if status != 200:
            raise problem_error(status, data, headers)
        return [result_from_json(r) for r in json.loads(data)["results"]]

    def watch(self, prefix: str = "", *, reconnect: bool = True) -> "AsyncWatch":
        """A live feed of changes (see :meth:`statecraft.Client.watch`): an
        async iterator, subscribed at its first ``__anext__`` — or when
        entered with ``async with`` (then changes made after the ``async
        with`` line are seen)."""
        return AsyncWatch(self, prefix, reconnect)

    async def _watch_open(self, path: str
                          ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter, Dict[str, str]]:
        r, w = await self._open_http()
        try:
            w.write(self._head("GET", path, {"accept": "text/event-stream"}))
            status, headers = await asyncio.wait_for(self._read_head(r), self.timeout)
            if status != 200:
                data = await self._read_body(r, headers)
                raise problem_error(status, data, headers)
        except BaseException:
            w.close()
            raise
        return r, w, headers

    @staticmethod
    async def _lines(r: asyncio.StreamReader, headers: Dict[str, str]) -> AsyncIterator[bytes]:
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        if not chunked:
            while True:
                line = await r.readline()
                if not line:
                    return
                yield line
        buf = bytearray()
        while True:
            size_line = await r.readline()
            if not size_line:
                return
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            buf += await r.readexactly(size)
            await r.readline()
            while True:
                i = buf.find(b"\n")
                if i < 0:
                    break
                yield bytes(buf[: i + 1])
                del buf[: i + 1]

    async def _sse(self, r: asyncio.StreamReader, headers: Dict[str, str]
                   ) -> AsyncIterator[Union[Change, Lagged]]:
        kind = "message"
        data: List[str] = []
        async for line in self._lines(r, headers):
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text == "":
                if data:
                    payload = json.loads("\n".join(data))
                    if kind == "lagged":
                        yield Lagged(int(payload.get("missed", 0)))
                    elif kind in ("change", "message"):
                        yield change_from_json(payload)
                kind, data = "message", []
                continue
            if text.startswith(":"):
                continue
            field, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)


class AsyncWatch:
    """An open (or about to open) watch of :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, prefix: str, reconnect: bool) -> None:
        self._client = client
        self._path = "/v1/watch?" + urllib.parse.urlencode({"prefix": prefix})
        self._reconnect = reconnect
        self._conn: Optional[Tuple[asyncio.StreamReader, asyncio.StreamWriter, Dict[str, str]]] = None
        self._closed = False
        self._gen: Optional[AsyncIterator[Union[Change, Lagged]]] = None

    async def open(self) -> "AsyncWatch":
        """Subscribes now."""
        if self._conn is None:
            self._conn = await self._client._watch_open(self._path)
        return self

    async def __aenter__(self) -> "AsyncWatch":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Stops watching."""
        self._closed = True
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> Union[Change, Lagged]:
        if self._gen is None:
            self._gen = self._run()
        return await self._gen.__anext__()

    async def _run(self) -> AsyncIterator[Union[Change, Lagged]]:
        c = self._client
        delay = 0.05
        gap = False
        while not self._closed and not c._closed:
            if self._conn is None:
                try:
                    self._conn = await c._watch_open(self._path)
                except (Unavailable, Timeout, OSError):
                    if not self._reconnect:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
            r, w, headers = self._conn
            if gap:
                gap = False
                yield Lagged(None)
            delay = 0.05
            try:
                async for item in c._sse(r, headers):
                    yield item
            except (OSError, asyncio.IncompleteReadError, ValueError):
                pass
            w.close()
            self._conn = None
            if not self._reconnect:
                return
            gap = True
