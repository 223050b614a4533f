"""The synchronous client: events over TCP protocol v1, reads over HTTP.

Invariants:

- ``send`` returns exactly one result per event, in input order.
- A frame is resent after a broken connection only when every event in it
  carries an ``id`` (then the server answers ``duplicate`` for what it had
  already applied: nothing is applied twice); otherwise the call raises
  :class:`ConnectionLost` naming the events whose outcome is unknown.
- At most ``max_in_flight`` (the server's, from ``HELLO_OK``) frames are
  unanswered on a connection; the client reads answers while it writes, so
  neither side can block the other.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from . import _codec
from ._ops import SyncOps
from ._types import (
    ACK_MODES,
    Change,
    ConnectionLost,
    EventDict,
    Lagged,
    OverloadedError,
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

DEFAULT_TCP = "127.0.0.1:7471"
DEFAULT_HTTP = "http://127.0.0.1:7470"
CLIENT_NAME = "statecraft-python"

#: ERROR codes after which a retry on a new connection may succeed.
RETRYABLE_CODES = frozenset(
    ("shutting_down", "unavailable", "too_many_connections", "connection_lost")
)


def _split_hostport(addr: str, default_port: int) -> Tuple[str, int]:
    if addr.startswith("tcp://"):
        addr = addr[len("tcp://"):]
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, default_port
    return host, int(port)


def _check_ack(ack: Optional[str]) -> None:
    if ack is not None and ack not in ACK_MODES:
        raise ValueError(f"ack must be one of {ACK_MODES} or None, not {ack!r}")


class _Broken(Exception):
    """The connection broke; frames from ``answered`` on have no answer."""

    def __init__(self, answered: int, cause: str, code: str = "connection_lost") -> None:
        super().__init__(cause)
        self.answered = answered
        self.code = code


def problem_error(status: int, body: bytes, headers: Any) -> StatecraftError:
    """Maps an HTTP error answer (an RFC 9457 problem) to an exception."""
    try:
        obj = json.loads(body) if body else {}
        if not isinstance(obj, dict):
            obj = {}
    except ValueError:
        obj = {}
    code = str(obj.get("code") or str(obj.get("type", "")).rsplit("/", 1)[-1] or status)
    detail = str(obj.get("detail") or obj.get("title") or "")
    if status == 401:
        return Unauthorized(detail or "unauthorized")
    if code == "overloaded" or status == 429:
        retry = headers.get("retry-after") if headers is not None else None
        try:
            retry_s = float(retry) if retry is not None else 1.0
        except ValueError:
            retry_s = 1.0
        results = [result_from_json(r) for r in obj.get("results", []) if isinstance(r, dict)]
        return OverloadedError(detail, retry_after=retry_s, results=results or None)
    if status == 503:
        return Unavailable(f"{code}: {detail}" if detail else code)
    return ServerError(code, detail, status=status)


class _Conn:
    """One TCP v1 connection after its handshake."""

    def __init__(self, client: "Client") -> None:
        self.timeout = client.timeout
        raw = socket.create_connection(client._tcp_addr, timeout=client.connect_timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if client._ssl is not None:
                raw = client._ssl.wrap_socket(raw, server_hostname=client._tcp_addr[0])
            self.sock: Any = raw
            self.reader = _codec.FrameReader()
            self.sock.settimeout(client.connect_timeout)
            self.sock.sendall(_codec.hello(client.token, client.default_ack, CLIENT_NAME))
            ftype, body = self._read_frame_blocking()
        except BaseException:
            raw.close()
            raise
        if ftype == _codec.ERROR:
            err = _codec.parse_error(body)
            raw.close()
            code = str(err.get("code", "internal"))
            if code == "unauthorized":
                raise Unauthorized(str(err.get("message", "unauthorized")))
            raise ServerError(code, str(err.get("message", "")))
        if ftype != _codec.HELLO_OK:
            raw.close()
            raise ServerError("protocol", f"expected HELLO_OK, got frame type {ftype:#x}")
        info = json.loads(body)
        self.max_in_flight = max(1, int(info.get("max_in_flight", 64)))
        self.max_frame_bytes = int(info.get("max_frame_bytes", 16 << 20))
        self.server = str(info.get("server", ""))
        self.seq = 0
        self.sock.setblocking(False)
        self.is_ssl = isinstance(self.sock, ssl.SSLSocket)

    def _read_frame_blocking(self) -> Tuple[int, bytes]:
        while True:
            f = self.reader.next()
            if f is not None:
                return f
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection during the handshake")
            self.reader.feed(data)

    def idle_ok(self) -> bool:
        """False when the server said something (an ERROR, or EOF) while the
        connection sat idle in the pool: it is closed or closing."""
        if self.is_ssl and self.sock.pending() > 0:
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not r

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def run(self, frames: List[bytes], on_answer: Any, after_write: Any = None) -> None:
        """Writes ``frames`` (pipelined, windowed) and hands each answer to
        ``on_answer(i, results, error)`` in order. Raises :class:`_Broken`.

        ``after_write`` (tests only) runs once every frame is written and
        before any answer is read; the answers are then treated as lost in
        transit (the connection is dropped)."""
        n = len(frames)
        seq0 = self.seq
        self.seq = (self.seq + n) & 0xFFFFFFFF
        window = self.max_in_flight
        nxt = 0  # next frame to hand to the socket
        answered = 0
        out = memoryview(b"")
        sock = self.sock
        reader = self.reader
        try:
            while answered < n:
                if after_write is not None and nxt == n and not out:
                    after_write()
                    raise _Broken(answered, "the answers were lost in transit (test hook)")
                if not out and nxt < n and nxt - answered < window:
                    end = nxt
                    size = 0
                    while end < n and end - answered < window and size < (1 << 20):
                        size += len(frames[end])
                        end += 1
                    out = memoryview(b"".join(frames[nxt:end]) if end - nxt > 1 else frames[nxt])
                    nxt = end
                readable = self.is_ssl and sock.pending() > 0
                writable = False
                if not readable:
                    r, w, _ = select.select([sock], [sock] if out else [], [], self.timeout)
                    if not r and not w:
                        raise Timeout(f"no answer from the server within {self.timeout} s")
                    readable, writable = bool(r), bool(w)
                if writable and out:
                    try:
                        sent = sock.send(out)
                        out = out[sent:]
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                        pass
                if readable:
                    try:
                        data = sock.recv(1 << 18)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        continue
                    if not data:
                        raise _Broken(answered, "the server closed the connection")
                    reader.feed(data)
                    while True:
                        f = reader.next()
                        if f is None:
                            break
                        ftype, body = f
                        if ftype == _codec.ACK:
                            seq, results = _codec.decode_ack(body)
                            if seq != ((seq0 + answered) & 0xFFFFFFFF):
                                raise _Broken(answered, f"ACK for seq {seq} out of order")
                            on_answer(answered, results, None)
                            answered += 1
                        elif ftype == _codec.ERROR:
                            err = _codec.parse_error(body)
                            code = str(err.get("code", "internal"))
                            if code in _codec.NON_FATAL_ERRORS and "frame_seq" in err:
                                on_answer(answered, None, err)
                                answered += 1
                                continue
                            if code in RETRYABLE_CODES:
                                raise _Broken(answered, str(err.get("message", code)), code)
                            if code == "unauthorized":
                                raise Unauthorized(str(err.get("message", "")))
                            raise ServerError(code, str(err.get("message", "")))
                        else:
                            raise _Broken(answered, f"unexpected frame type {ftype:#x}")
        except (OSError, _codec.ProtocolError) as e:
            if isinstance(e, Timeout):
                raise
            raise _Broken(answered, f"{type(e).__name__}: {e}") from None


class Client(SyncOps):
    """A Statecraft client. Thread-safe: connections are pooled.

    ::

        with statecraft.Client("127.0.0.1:7471", http="http://127.0.0.1:7470") as c:
            c.incr("user:42", path="/clicks")
            print(c.get("user:42"))

    Args:
        tcp: the TCP ingest address ``host:port`` (events go here).
        http: the HTTP base URL (reads, scans and watches go here);
            ``https://`` uses TLS.
        token: the server's auth token, if it has one.
        ack: the default ack mode (``durable``, ``applied``, ``none``);
            None = the server's default.
        tls: True, or an ``ssl.SSLContext``, for a TLS TCP ingest (the HTTP
            side follows its URL scheme and uses the same context).
        timeout: seconds without progress before a call raises
            :class:`Timeout`.
        connect_timeout: seconds to connect and finish the handshake.
        batch: events per frame (the server answers each frame at once).
        ids: give every event without an ``id`` a fresh one, so that a call
            interrupted by a broken connection is resent safely.
        retry_for: seconds to keep reconnecting and resending (frames whose
            events all carry ids) after a connection breaks; 0 = never.
        pool_size: idle connections kept per protocol.
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
        pool_size: int = 8,
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
        self.pool_size = pool_size
        self._lock = threading.Lock()
        self._tcp_pool: List[_Conn] = []
        self._http_pool: List[http.client.HTTPConnection] = []
        self._closed = False
        self._hooks: Dict[str, Any] = {}  # test hooks (see _Conn.run)

    # --- lifecycle -----------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes every pooled connection."""
        with self._lock:
            self._closed = True
            tcp, self._tcp_pool = self._tcp_pool, []
            hc, self._http_pool = self._http_pool, []
        for c in tcp:
            c.close()
        for h in hc:
            h.close()

    # --- events ---------------------------------------------------------------

    def _take_conn(self) -> _Conn:
        with self._lock:
            if self._closed:
                raise StatecraftError("the client is closed", code="closed")
            while self._tcp_pool:
                c = self._tcp_pool.pop()
                if c.idle_ok():
                    return c
                c.close()
        return _Conn(self)

    def _give_conn(self, c: _Conn) -> None:
        with self._lock:
            if not self._closed and len(self._tcp_pool) < self.pool_size:
                self._tcp_pool.append(c)
                return
        c.close()

    def send(
        self,
        events: List[EventDict],
        ack: Optional[str] = None,
        *,
        ids: Optional[bool] = None,
    ) -> List[Result]:
        """Sends events (dicts) and returns one result per event, in order.

        Events are pipelined in frames of ``batch`` events, at most the
        server's ``max_in_flight`` frames ahead of their answers. ``ack``
        overrides the client's default for this call; ``ids=True`` gives
        every event without an id a fresh one (see the class docs). An event
        that cannot be encoded (not a dict, an unknown field, a value that is
        not JSON) gets a :class:`Rejected` result and is not sent.
        """
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
        groups = _codec.split_frames(encoded, self.batch, 1 << 20)
        self._send_groups(events, encoded, groups, ack, results)
        return results  # type: ignore[return-value]

    def _send_groups(
        self,
        events: List[Any],
        encoded: List[Any],
        groups: List[List[int]],
        ack: Optional[str],
        results: List[Optional[Result]],
    ) -> None:
        deadline: Optional[float] = None
        delay = 0.05
        pending = groups
        while pending:
            frames = None
            try:
                conn = self._take_conn()
                frames = [
                    _codec.events_frame(conn.seq + k, ack, [encoded[i] for i in g])
                    for k, g in enumerate(pending)
                ]
            except (OSError, ServerError) as e:
                if isinstance(e, ServerError) and e.code not in RETRYABLE_CODES:
                    raise
                broken = _Broken(0, f"cannot connect: {e}", "not_sent")
            else:
                current = pending

                def on_answer(k: int, res: Optional[List[Result]], err: Optional[Dict[str, Any]]) -> None:
                    g = current[k]
                    if res is None or len(res) != len(g):
                        code = str((err or {}).get("code", "internal"))
                        msg = str((err or {}).get("message", "the frame got no results"))
                        for i in g:
                            results[i] = Rejected(code, msg)
                        return
                    for i, r in zip(g, res):
                        results[i] = r

                try:
                    conn.run(frames, on_answer, self._hooks.pop("after_write", None))
                except _Broken as b:
                    conn.close()
                    broken = b
                    pending = pending[b.answered:]
                except BaseException:
                    conn.close()
                    raise
                else:
                    self._give_conn(conn)
                    return
            # The connection broke (or could not be made): retry what is safe.
            # After `shutting_down` the unanswered frames were not applied
            # (docs/protocol.md): resending them is safe even without ids.
            # Nor were frames never written (no connection could be made).
            unsafe = [] if broken.code in ("shutting_down", "not_sent") else [
                i for g in pending for i in g
                if not (isinstance(events[i], dict) and events[i].get("id") is not None)]
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.retry_for
            if unsafe or now >= deadline or self._closed:
                unanswered = [i for g in pending for i in g]
                why = ("events without an id cannot be resent safely"
                       if unsafe else "gave up reconnecting")
                raise ConnectionLost(
                    f"{broken}; {len(unanswered)} events unanswered ({why})",
                    unanswered=unanswered,
                    results=list(results),
                )
            time.sleep(min(delay, max(0.0, deadline - now)))
            delay = min(delay * 2, 1.0)

    # --- HTTP -----------------------------------------------------------------

    def _new_http(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._http_https:
            return http.client.HTTPSConnection(
                self._http_host, self._http_port, timeout=timeout, context=self._http_ssl)
        return http.client.HTTPConnection(self._http_host, self._http_port, timeout=timeout)

    def _headers(self) -> Dict[str, str]:
        h = {"accept": "application/json", "user-agent": CLIENT_NAME}
        if self.token is not None:
            h["authorization"] = f"Bearer {self.token}"
        return h

    def _request(self, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes, Any]:
        h = self._headers()
        if headers:
            h.update(headers)
        for attempt in range(2):
            with self._lock:
                if self._closed:
                    raise StatecraftError("the client is closed", code="closed")
                conn = self._http_pool.pop() if self._http_pool else None
            reused = conn is not None
            if conn is None:
                conn = self._new_http(self.timeout)
            try:
                conn.request(method, self._http_base + path, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
            except socket.timeout:
                conn.close()
                raise Timeout(f"no HTTP answer within {self.timeout} s") from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if reused and attempt == 0:
                    continue  # a stale keep-alive connection: once more, fresh
                raise Unavailable(f"HTTP {method} {path}: {e}") from None
            if resp.will_close:
                conn.close()
            else:
                with self._lock:
                    if not self._closed and len(self._http_pool) < self.pool_size:
                        self._http_pool.append(conn)
                        conn = None  # type: ignore[assignment]
                if conn is not None:
                    conn.close()
            return resp.status, data, resp.headers
        raise Unavailable(f"HTTP {method} {path} failed")  # pragma: no cover

    def get(self, key: str) -> Optional[State]:
        """The key's state, or None when it does not exist."""
        status, data, headers = self._request(
            "GET", "/v1/state/" + urllib.parse.quote(key, safe=""))
        if status == 404:
            return None
        if status != 200:
            raise problem_error(status, data, headers)
        return state_from_json(json.loads(data))

    def scan_page(self, prefix: str = "", after: Optional[str] = None,
                  limit: int = 100) -> List[State]:
        """One page of a scan (at most ``limit`` ≤ 1000 keys)."""
        q = {"prefix": prefix, "limit": str(limit)}
        if after is not None:
            q["after"] = after
        status, data, headers = self._request("GET", "/v1/state?" + urllib.parse.urlencode(q))
        if status != 200:
            raise problem_error(status, data, headers)
        return [state_from_json(x) for x in json.loads(data)["items"]]

    def stats(self) -> Dict[str, Any]:
        """The server's ``/v1/stats`` figures."""
        status, data, headers = self._request("GET", "/v1/stats")
        if status != 200:
            raise problem_error(status, data, headers)
        return json.loads(data)

    def send_http(self, events: List[EventDict], ack: Optional[str] = None) -> List[Result]:
        """Sends events as one ``POST /v1/events`` (NDJSON). A request whose
        every event was refused by a full queue raises
        :class:`OverloadedError` (with ``retry_after`` and ``results``)."""
        _check_ack(ack)
        lines = []
        for e in events:
            try:
                lines.append(json.dumps(e, separators=(",", ":"), allow_nan=False))
            except (TypeError, ValueError):
                lines.append("{")  # answered invalid_json in its place
        path = "/v1/events" + (f"?ack={ack}" if ack else "")
        status, data, headers = self._request(
            "POST", path, ("\n".join(lines)).encode(),
            {"content-type": "application/x-ndjson"})
        if status != 200:
            raise problem_error(status, data, headers)
        return [result_from_json(r) for r in json.loads(data)["results"]]

    def watch(self, prefix: str = "", *, reconnect: bool = True) -> "Watch":
        """A live feed of changes to keys starting with ``prefix`` (an
        iterator of :class:`Change`, and :class:`Lagged` when changes were
        skipped). Subscribed when this returns. With ``reconnect``, a broken
        stream is reopened (yielding ``Lagged(None)``: changes in the gap are
        not replayed)."""
        return Watch(self, prefix, reconnect)


class Watch:
    """An open watch (see :meth:`Client.watch`). Iterate it; ``close()`` it
    (or use it as a context manager) to stop."""

    def __init__(self, client: Client, prefix: str, reconnect: bool) -> None:
        self._client = client
        self._prefix = prefix
        self._reconnect = reconnect
        self._conn: Optional[http.client.HTTPConnection] = None
        self._resp: Optional[http.client.HTTPResponse] = None
        self._closed = False
        self._gap = False
        self._open()

    def _open(self) -> None:
        c = self._client
        # Keep-alive comments arrive every 15 s: a longer read timeout.
        conn = c._new_http(max(c.timeout, 60.0))
        try:
            conn.request("GET", c._http_base + "/v1/watch?" +
                         urllib.parse.urlencode({"prefix": self._prefix}),
                         headers={**c._headers(), "accept": "text/event-stream"})
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise Unavailable(f"watch: {e}") from None
        if resp.status != 200:
            data = resp.read()
            conn.close()
            raise problem_error(resp.status, data, resp.headers)
        self._conn, self._resp = conn, resp

    def __iter__(self) -> Iterator[Union[Change, Lagged]]:
        return self

    def __next__(self) -> Union[Change, Lagged]:
        delay = 0.05
        while True:
            if self._closed:
                raise StopIteration
            if self._resp is None:
                try:
                    self._open()
                except Unavailable:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                if self._gap:
                    self._gap = False
                    return Lagged(None)
            item = self._read_event()
            if item is not None:
                return item
            # The stream ended or broke.
            self._drop()
            if not self._reconnect or self._closed:
                self._closed = True
                raise StopIteration
            self._gap = True

    def _read_event(self) -> Optional[Union[Change, Lagged]]:
        resp = self._resp
        assert resp is not None
        kind = "message"
        data: List[str] = []
        try:
            while True:
                line = resp.readline()
                if not line:
                    return None
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text == "":
                    if not data:
                        kind = "message"
                        continue
                    payload = json.loads("\n".join(data))
                    if kind == "lagged":
                        return Lagged(int(payload.get("missed", 0)))
                    if kind in ("change", "message"):
                        return change_from_json(payload)
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
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            return None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = self._resp = None

    def close(self) -> None:
        """Stops watching."""
        self._closed = True
        self._drop()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
