#!/usr/bin/env python3
"""W1 from Python, side by side in one run (BENCH.md: W1 counters, "Python").

The same events — ``incr`` by 1 of ``key:<i>``, 100,000 keys, uniform,
generated up front with a fixed seed — through:

1. the embedded engine (``statecraft.Engine``): ``send`` of event dicts in
   batches, and the ``incr_many`` fast path (keys only), ack=applied and
   ack=durable (a fresh data directory);
2. the client (``statecraft.Client``) to a ``statecraft serve`` started here
   on free loopback ports (fresh data directory), ack=durable and applied;
3. redis-py, pipelined ``INCRBY`` (pipeline depth = batch, no MULTI) to a
   ``redis-server`` started here on a free loopback port, no persistence;
4. the course's asyncio peer (bench/peers/asyncio_peer.py, ``--mode drain``
   and ``wait_for``), in its own process.

Each measurement: the clock covers sending every event and getting every
answer (or, for the peer, applying every event). Prints a table and, with
``--json``, one JSON object. A benchmark, not a test: figures depend on the
machine and its neighbours; report ``uptime`` with them.

    python python/bench/w1.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import statecraft as sc

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_keys(n: int, keys: int, seed: int) -> List[str]:
    rng = random.Random(seed)
    names = [f"key:{i}" for i in range(keys)]
    return [names[rng.randrange(keys)] for _ in range(n)]


def timed(fn: Callable[[], int]) -> Dict[str, Any]:
    t0 = time.perf_counter()
    n = fn()
    s = time.perf_counter() - t0
    return {"events": n, "seconds": s, "events_per_s": n / s}


def chunks(xs: List[Any], n: int) -> List[List[Any]]:
    return [xs[i:i + n] for i in range(0, len(xs), n)]


def bench_engine(keys: List[str], batch: int, ack: str, fast: bool, data: Optional[Path]) -> Dict[str, Any]:
    with sc.Engine(data_dir=data, ack=ack) as db:
        db.send([{"key": "warmup", "op": "incr", "value": 1}] * batch, ack)  # not timed
        # One call per 64 batches, as the client keeps 64 frames in flight.
        if fast:
            parts = chunks(keys, batch * 64)

            def run() -> int:
                ok = 0
                for p in parts:
                    n, other = db.incr_many(p, 1, ack)
                    assert not other, other[:3]
                    ok += n
                return ok
        else:
            parts = chunks([{"key": k, "op": "incr", "value": 1} for k in keys], batch * 64)

            def run() -> int:
                ok = 0
                for p in parts:
                    ok += sum(1 for r in db.send(p, ack) if r.ok)
                return ok
        r = timed(run)
        total = sum(s.value for s in db.scan("key:", page=1000))
    assert r["events"] == len(keys) and total == len(keys), (r, total)
    return r


def start_server(binary: str, data: Path) -> Dict[str, Any]:
    http, tcp = free_port(), free_port()
    proc = subprocess.Popen([binary, "serve", "--data-dir", str(data),
                             "--http", f"127.0.0.1:{http}", "--tcp", f"127.0.0.1:{tcp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, STATECRAFT_LOG_LEVEL="warn"))
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/readyz", timeout=1):
                return {"proc": proc, "tcp": f"127.0.0.1:{tcp}", "http": f"http://127.0.0.1:{http}"}
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("statecraft serve did not become ready")


def bench_client(srv: Dict[str, Any], keys: List[str], batch: int, ack: str, prefix: str) -> Dict[str, Any]:
    events = [{"key": prefix + k, "op": "incr", "value": 1} for k in keys]
    with sc.Client(srv["tcp"], srv["http"], batch=batch) as c:
        c.send(events[:batch], ack)  # connect and warm up (not timed)

        def run() -> int:
            ok = 0
            for p in chunks(events, batch * 64):
                ok += sum(1 for r in c.send(p, ack) if r.ok)
            return ok
        r = timed(run)
        total = sum(s.value for s in c.scan(prefix, page=1000))
    assert r["events"] == len(keys) and total == len(keys) + batch, (r, total)
    return r


def bench_redis(keys: List[str], batch: int) -> Optional[Dict[str, Any]]:
    try:
        import redis
    except ImportError:
        print("redis-py not installed (pip install redis): skipping", file=sys.stderr)
        return None
    binary = shutil.which("redis-server")
    if binary is None:
        print("no redis-server: skipping", file=sys.stderr)
        return None
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(host="127.0.0.1", port=port)
        end = time.monotonic() + 10
        while True:
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        parts = chunks(keys, batch)

        def run() -> int:
            n = 0
            for p in parts:
                pipe = r.pipeline(transaction=False)
                for k in p:
                    pipe.incrby(k, 1)
                n += len(pipe.execute())
            return n
        res = timed(run)
        total = 0
        for p in chunks([f"key:{i}" for i in range(100_000)], 10_000):
            total += sum(int(v) for v in r.mget(p) if v is not None)
        assert total == len(keys), total
        return res
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def bench_peer(n: int, mode: str) -> Dict[str, Any]:
    out = subprocess.run([sys.executable, str(REPO / "bench/peers/asyncio_peer.py"),
                          "--events", str(n), "--workers", "4", "--batch", "1000",
                          "--mode", mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--client-events", type=int, default=None,
                   help="events for the client and redis rows (default: --events)")
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--binary", default=None, help="statecraft binary (default: target/release)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    binary = args.binary or os.environ.get("STATECRAFT_BIN") or str(REPO / "target/release/statecraft")
    keys = make_keys(args.events, args.keys, args.seed)
    ckeys = keys[: args.client_events] if args.client_events else keys
    rounds: List[Dict[str, Any]] = []
    for rnd in range(args.rounds):
        rows: Dict[str, Any] = {}
        tmp = Path(tempfile.mkdtemp(prefix="w1py-"))
        try:
            rows["engine send (dicts), applied"] = bench_engine(keys, args.batch, "applied", False, None)
            rows["engine incr_many, applied"] = bench_engine(keys, args.batch, "applied", True, None)
            rows["engine send (dicts), durable"] = bench_engine(keys, args.batch, "durable", False, tmp / "e1")
            rows["engine incr_many, durable"] = bench_engine(keys, args.batch, "durable", True, tmp / "e2")
            if os.path.exists(binary):
                srv = start_server(binary, tmp / "srv")
                try:
                    rows["client (TCP), durable"] = bench_client(srv, ckeys, args.batch, "durable", "d")
                    rows["client (TCP), applied"] = bench_client(srv, ckeys, args.batch, "applied", "a")
                finally:
                    srv["proc"].send_signal(signal.SIGTERM)
                    srv["proc"].wait()
            else:
                print(f"no binary at {binary}: skipping the client rows", file=sys.stderr)
            red = bench_redis(ckeys, args.batch)
            if red is not None:
                rows["redis-py pipelined INCRBY, no persistence"] = red
            rows["asyncio peer, drain"] = bench_peer(args.events, "drain")
            rows["asyncio peer, wait_for"] = bench_peer(min(args.events, 200_000), "wait_for")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rounds.append(rows)
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    # Medians over rounds, per row; ratios of medians and per round.
    rows = {}
    for name in rounds[0]:
        rates = sorted(r[name]["events_per_s"] for r in rounds)
        rows[name] = {"events": rounds[0][name]["events"],
                      "events_per_s": rates[len(rates) // 2],
                      "runs": [r[name]["events_per_s"] for r in rounds]}
    load = os.getloadavg()
    print(f"W1 from Python: {args.events} events ({len(ckeys)} for client/redis), "
          f"{args.keys} keys, batch {args.batch}, Python {sys.version.split()[0]}, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'measurement (median of ' + str(args.rounds) + ' rounds)':48} {'events':>9} "
          f"{'events/s':>12}  runs")
    for name, r in rows.items():
        runs = ", ".join(f"{x / 1e3:,.0f}k" for x in r["runs"])
        print(f"{name:48} {r['events']:>9} {r['events_per_s']:>12,.0f}  ({runs})")

    def ratio(a: str, b: str) -> Dict[str, Any]:
        per = [ra[a]["events_per_s"] / ra[b]["events_per_s"] for ra in rounds]
        return {"median_of_medians": rows[a]["events_per_s"] / rows[b]["events_per_s"],
                "per_round": per}
    ratios = {}
    for name in ("engine send (dicts), applied", "engine incr_many, applied",
                 "engine send (dicts), durable"):
        ratios[f"{name} / asyncio drain"] = ratio(name, "asyncio peer, drain")
    if "client (TCP), durable" in rows and "redis-py pipelined INCRBY, no persistence" in rows:
        ratios["client durable / redis-py pipelined"] = ratio(
            "client (TCP), durable", "redis-py pipelined INCRBY, no persistence")
    for name, v in ratios.items():
        per = ", ".join(f"{x:.2f}" for x in v["per_round"])
        print(f"{name:60} {v['median_of_medians']:6.2f}x  ({per})")
    if args.json:
        print(json.dumps({"rows": rows, "ratios": ratios, "load": load, "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
