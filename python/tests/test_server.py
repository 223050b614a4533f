"""The client against a real `statecraft serve`: pipelining, overload, auth,
TLS, watch (with reconnect), the asyncio client, and kill -9 mid-stream."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import List, Optional

import pytest

import statecraft as sc
from conftest import Server


def k(name: str = "k") -> str:
    return f"t{uuid.uuid4().hex[:10]}:{name}"


# --- pipelining and flow control ----------------------------------------------


def test_pipelined_frames_beyond_the_window(shared_server: Server) -> None:
    # 200 frames of 10 events: past the server's 64 frames in flight, and
    # the client must keep reading answers while it writes.
    key = k()
    with shared_server.client(batch=10) as c:
        res = c.send([{"key": key, "op": "incr", "value": 1}] * 2000, ack="applied")
    assert [r.version for r in res] == list(range(1, 2001))


def test_pool_is_thread_safe(shared_server: Server) -> None:
    key = k()
    with shared_server.client(pool_size=2) as c:
        def work() -> None:
            for _ in range(20):
                c.send([{"key": key, "op": "incr", "value": 1}] * 50, ack="applied")
        ts = [threading.Thread(target=work) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert c.get(key).value == 6 * 20 * 50


def test_http_send_and_stats(client: sc.Client) -> None:
    key = k()
    res = client.send_http([{"key": key, "op": "incr", "value": 2}, "bad"], ack="applied")
    assert res[0] == sc.Applied(1) and isinstance(res[1], sc.Rejected)
    assert "results" in client.stats()


# --- overload -------------------------------------------------------------------


def test_overload_tiny_queue(make_server) -> None:
    s = make_server("--shards", "1", "--queue-capacity", "1", "--overflow", "reject",
                    "--in-memory")
    with s.client(batch=1000) as c:
        results: List[sc.Result] = []
        for _ in range(10):
            results += c.send([{"key": "k", "op": "incr", "value": 1}] * 1000, ack="applied")
        over = sum(isinstance(r, sc.Overloaded) for r in results)
        applied = sum(isinstance(r, sc.Applied) for r in results)
        assert over > 0 and over + applied == len(results)
        assert c.get("k").value == applied
        # HTTP: a request whose every event is refused is a 429 with
        # Retry-After, raised as OverloadedError; partly refused is 200.
        seen_429 = None
        for _ in range(200):
            try:
                c.send_http([{"key": "k", "op": "incr", "value": 1}] * 2000, ack="applied")
            except sc.OverloadedError as e:
                seen_429 = e
                break
        if seen_429 is not None:
            assert seen_429.retry_after >= 1 and seen_429.results


# --- auth -------------------------------------------------------------------------


def test_auth_token(make_server) -> None:
    s = make_server("--in-memory", token="s3cret")
    with s.client() as good:
        assert good.incr("a", ack="applied") == sc.Applied(1)
        assert good.get("a").value == 1
    for token in (None, "wrong"):
        with s.client(token=token) as bad:
            with pytest.raises(sc.Unauthorized) as ei:
                bad.incr("a")
            assert ei.value.code == "unauthorized"
            with pytest.raises(sc.Unauthorized):
                bad.get("a")
            with pytest.raises(sc.Unauthorized):
                bad.watch("a")

    async def run() -> None:
        async with s.aclient(token="wrong") as bad:
            with pytest.raises(sc.Unauthorized):
                await bad.incr("a")
            with pytest.raises(sc.Unauthorized):
                await bad.get("a")
    asyncio.run(run())


# --- TLS (the HTTP side; the TCP ingest has no TLS server side) --------------------


def test_https_reads(make_server, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate: {r.stderr[-200:]!r}")
    s = make_server("--in-memory", "--tls-cert", str(cert), "--tls-key", str(key), https=True)
    ctx = ssl.create_default_context(cafile=str(cert))
    with sc.Client(s.tcp, s.http) as c:
        c._http_ssl = ctx  # the TCP side stays plain; trust our cert for HTTPS
        c.set("tls", {"ok": True}, ack="applied")
        assert c.get("tls").value == {"ok": True}
    # An untrusted certificate fails instead of silently talking in clear.
    with sc.Client(s.tcp, s.http) as c:
        with pytest.raises(sc.Unavailable):
            c.get("tls")


def make_cert(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate: {r.stderr[-200:]!r}")
    return cert, key


def test_tls_tcp_through_a_terminator(shared_server: Server, tmp_path: Path) -> None:
    """The TCP ingest behind a TLS terminator (statecraft serve has TLS on
    HTTP only): the client's non-blocking TLS send/receive loop, sync and
    async, pipelining past the window."""
    from conftest import free_port
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(cert), str(key))
    port = free_port()
    up_host, up_port = shared_server.tcp.split(":")
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, _ctx: None)  # refused handshakes are expected
    started = threading.Event()
    stop: List[asyncio.Future] = []

    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                w.write(data)
                await w.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            w.close()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(up_host, int(up_port))
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    async def serve() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", port, ssl=server_ctx)
        stop.append(loop.create_future())
        started.set()
        async with srv:
            await stop[0]

    t = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    t.start()
    started.wait(10)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    key_ = k()
    with sc.Client(f"127.0.0.1:{port}", shared_server.http, tls=client_ctx, batch=10) as c:
        res = c.send([{"key": key_, "op": "incr", "value": 1}] * 3000, ack="applied")
        assert [r.version for r in res] == list(range(1, 3001))

    async def run() -> None:
        async with sc.AsyncClient(f"127.0.0.1:{port}", shared_server.http, tls=client_ctx,
                                  batch=10) as c:
            res = await c.send([{"key": key_, "op": "incr", "value": 1}] * 1000, ack="applied")
            assert [r.version for r in res] == list(range(3001, 4001))
    asyncio.run(run())
    # A client that does not trust the certificate refuses the connection.
    with sc.Client(f"127.0.0.1:{port}", shared_server.http, tls=True, retry_for=0) as c:
        with pytest.raises((sc.ConnectionLost, ssl.SSLError)):
            c.send([{"key": key_, "op": "incr", "value": 1}])
    loop.call_soon_threadsafe(stop[0].set_result, None)
    t.join(10)


# --- watch -------------------------------------------------------------------------


def test_watch_and_reconnect(make_server) -> None:
    s = make_server("--shards", "1")
    with s.client() as c:
        w = c.watch("w:")
        c.send([{"key": "w:1", "op": "incr", "value": 1}, {"key": "x", "op": "incr", "value": 1},
                {"key": "w:1", "op": "delete"}], ack="applied")
        a, b = next(w), next(w)
        assert (a.key, a.op, a.value, a.version) == ("w:1", "incr", 1, 1)
        assert (b.op, b.value) == ("delete", None)
        s.restart()
        # The stream ended with the old server; the watch reconnects and
        # says so with Lagged(None) (changes in the gap are not replayed).
        assert next(w) == sc.Lagged(None)
        c.incr("w:2", ack="applied")
        after = next(w)
        assert after.key == "w:2"
        w.close()
        assert list(w) == []


def test_async_watch(shared_server: Server) -> None:
    prefix = k("aw/")

    async def run() -> None:
        async with shared_server.aclient() as c:
            async with c.watch(prefix) as w:
                await c.send([{"key": prefix + "a", "op": "set", "value": i} for i in range(3)],
                             ack="applied")
                got = [await w.__anext__() for _ in range(3)]
            assert [ch.value for ch in got] == [0, 1, 2]
    asyncio.run(run())


# --- the asyncio client --------------------------------------------------------------


def test_async_client_ops_and_concurrency(shared_server: Server) -> None:
    key = k()

    async def run() -> None:
        async with shared_server.aclient(pool_size=2, batch=7) as c:
            rs = await asyncio.gather(*(c.send([{"key": key, "op": "incr", "value": 1}] * 30,
                                               ack="applied") for _ in range(40)))
            versions = sorted(r.version for batch in rs for r in batch)
            assert versions == list(range(1, 1201))
            assert (await c.get(key)).value == 1200
            assert await c.get(k("absent")) is None
            assert await c.set(key, {"a": 1}, if_version=1200, ack="applied") == sc.Applied(1201)
            with pytest.raises(sc.ConflictError):
                await c.set(key, 1, if_version=1, ack="applied")
            assert await c.incr(key, id="x", path="/a", ack="applied") == sc.Applied(1202)
            assert await c.incr(key, id="x", path="/a", ack="applied") == sc.Duplicate()
            assert [s.key async for s in c.scan(key, page=1)] == [key]
            res = await c.send([{"key": key, "op": "incr", "value": 1}, 7], ack="applied")
            assert isinstance(res[1], sc.Rejected)
    asyncio.run(run())


def test_unreachable_server_raises(tmp_path: Path) -> None:
    from conftest import free_port
    port = free_port()
    with sc.Client(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", retry_for=0.3) as c:
        with pytest.raises(sc.ConnectionLost) as ei:
            c.send([{"key": "a", "op": "incr", "value": 1, "id": "1"}])
        assert ei.value.unanswered == [0]
        with pytest.raises(sc.Unavailable):
            c.get("a")


# --- kill -9 mid-stream ---------------------------------------------------------------


def counter_total(c: sc.Client, prefix: str) -> int:
    return sum(s.value for s in c.scan(prefix, page=1000))


def lose_the_ack(server: Server, reader: sc.Client, prefix: str, expect: int):
    """A hook run after the client wrote its frames and before it reads their
    answers: waits until the server has applied and fsynced them, then kills
    it (-9) and restarts it. The client never sees those ACKs."""
    def hook() -> None:
        deadline = time.monotonic() + 60
        while counter_total(reader, prefix) < expect:
            assert time.monotonic() < deadline, "the events were never applied"
            time.sleep(0.01)
        # One shard: a durable ack for a later event means the earlier ones
        # were fsynced too (group commit in queue order).
        reader.send([{"key": "barrier", "op": "incr", "value": 1}], ack="durable")
        server.kill9()
        server.start()
    return hook


def test_kill9_after_apply_before_ack_resends_with_the_same_ids(make_server) -> None:
    s = make_server("--shards", "1")
    prefix = "kill:"
    events = [{"key": f"{prefix}{i % 10}", "op": "incr", "value": 1} for i in range(300)]
    with s.client() as reader, s.client(ids=True, retry_for=60) as c:
        conn_hooks = {"after_write": lose_the_ack(s, reader, prefix, 300)}
        c._hooks = conn_hooks
        res = c.send(events, ack="durable")
        # Every event was applied before the crash and is now answered
        # duplicate: its first delivery counted, the resend did not.
        assert all(r.ok for r in res), res[:3]
        assert sum(isinstance(r, sc.Duplicate) for r in res) == 300
        assert counter_total(reader, prefix) == 300


def test_kill9_adversary_fresh_ids_on_retry_double_count(make_server) -> None:
    """The checker above catches a client that does not keep its ids: a
    retry with fresh ids (what a hand-written loop does) applies twice."""
    s = make_server("--shards", "1")
    prefix = "kill:"
    events = [{"key": f"{prefix}{i % 10}", "op": "incr", "value": 1} for i in range(300)]
    with s.client() as reader, s.client(ids=True, retry_for=0) as c:
        c._hooks = {"after_write": lose_the_ack(s, reader, prefix, 300)}
        with pytest.raises(sc.ConnectionLost) as ei:
            c.send(events, ack="durable")
        c._hooks = {}
        unanswered = [events[i] for i in ei.value.unanswered]
        assert len(unanswered) == 300
        c.send(unanswered, ack="durable")  # fresh ids: the server cannot tell
        assert counter_total(reader, prefix) == 600  # doubled


def test_kill9_mid_stream_nothing_lost_nothing_doubled(make_server) -> None:
    s = make_server("--shards", "2")
    prefix = "stream:"
    n_frames, per = 150, 100
    acked: List[int] = []
    errors: List[BaseException] = []

    def produce() -> None:
        try:
            with s.client(ids=True, retry_for=60, batch=per) as c:
                for f in range(n_frames):
                    res = c.send([{"key": f"{prefix}{(f * per + i) % 37}", "op": "incr",
                                   "value": 1, "id": f"e{f}-{i}"} for i in range(per)],
                                 ack="durable")
                    assert all(r.ok for r in res), res
                    acked.append(sum(isinstance(r, sc.Applied) for r in res))
        except BaseException as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=produce)
    t.start()
    with s.client() as reader:
        while len(acked) < n_frames // 3 and t.is_alive():
            time.sleep(0.005)
        s.kill9()
        time.sleep(0.1)
        s.start()
        t.join(120)
        assert not t.is_alive()
        assert not errors, errors
        assert len(acked) == n_frames
        # Nothing acked was lost and nothing resent was applied twice.
        assert counter_total(reader, prefix) == n_frames * per


def test_async_kill9_mid_stream_nothing_lost_nothing_doubled(make_server) -> None:
    s = make_server("--shards", "2")
    prefix = "astream:"
    n_sends, per = 80, 100
    acked: List[int] = []

    async def produce() -> None:
        async with s.aclient(ids=True, retry_for=60, batch=50, pool_size=2) as c:
            async def one(f: int) -> None:
                res = await c.send([{"key": f"{prefix}{(f * per + i) % 29}", "op": "incr",
                                     "value": 1} for i in range(per)], ack="durable")
                assert all(r.ok for r in res), res
                acked.append(f)
            # Four senders at a time share the pipelined connections.
            for base in range(0, n_sends, 4):
                await asyncio.gather(*(one(f) for f in range(base, base + 4)))

    def killer() -> None:
        deadline = time.monotonic() + 60
        while len(acked) < n_sends // 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        s.kill9()
        time.sleep(0.1)
        s.start()

    t = threading.Thread(target=killer)
    t.start()
    asyncio.run(produce())
    t.join(120)
    assert len(acked) == n_sends
    with s.client() as reader:
        assert counter_total(reader, prefix) == n_sends * per


def test_async_kill9_after_apply_before_ack_resends_with_the_same_ids(make_server) -> None:
    s = make_server("--shards", "1")
    prefix = "akill:"
    events = [{"key": f"{prefix}{i % 10}", "op": "incr", "value": 1} for i in range(300)]

    async def run() -> List[sc.Result]:
        async with s.aclient(ids=True, retry_for=60, batch=100) as c:
            with s.client() as reader:
                c._hooks = {"after_write": lose_the_ack(s, reader, prefix, 300)}
                return await c.send(events, ack="durable")
    res = asyncio.run(run())
    assert all(r.ok for r in res), res[:3]
    with s.client() as reader:
        assert counter_total(reader, prefix) == 300


def test_async_watch_reconnects(make_server) -> None:
    s = make_server("--shards", "1")

    async def run() -> None:
        async with s.aclient() as c:
            async with c.watch("aw:") as w:
                await c.incr("aw:1", ack="applied")
                first = await asyncio.wait_for(w.__anext__(), 30)
                assert (first.key, first.version) == ("aw:1", 1)
                await asyncio.get_running_loop().run_in_executor(None, s.restart)
                assert await asyncio.wait_for(w.__anext__(), 60) == sc.Lagged(None)
                await c.incr("aw:2", ack="applied")
                after = await asyncio.wait_for(w.__anext__(), 30)
                assert after.key == "aw:2"
    asyncio.run(run())
