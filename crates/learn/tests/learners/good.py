#!/usr/bin/env python3
"""A correct learner program for Statecraft lessons 1-3 (also 5, 6 and 9).

It speaks the pipe protocol (LEARNING.md, "The pipe protocol, version 1") on
stdin/stdout. Shape:

- one reader task parses stdin; an event is routed by key to the bounded queue
  of the one worker that owns the key (so a key's events stay in order);
- each worker collects a batch: everything already queued, up to MAX_BATCH,
  waiting at most MAX_WAIT_MS after the batch's first event (a fixed deadline);
- it applies the batch to the state, makes it durable when DATA_DIR is set
  (one append + fsync per batch; applied ids are logged with their effect so a
  re-sent id is acked as a duplicate), and only then acks;
- commands are barriers: answered once every earlier event has its reply
  (`ping` excepted: answered at once);
- EOF or SIGTERM: stop reading, finish what is queued, ack it, exit 0.

The bad learners in this directory import this file and change one thing.
"""

import asyncio
import collections
import json
import os
import signal
import sys
import time
import zlib

MAX_KEY_BYTES = 1024
OPS = ("set", "incr")


class ConfigError(Exception):
    """A setting that cannot be used; the message names the variable."""


class Invalid(Exception):
    """An input line that is not a valid event."""


def env_int(name, default, minimum=0):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_choice(name, default, choices):
    raw = os.environ.get(name) or default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


class Settings:
    def __init__(self):
        self.workers = env_int("STATECRAFT_WORKERS", 4, 1)
        self.max_batch = env_int("STATECRAFT_MAX_BATCH", 100, 1)
        self.max_wait = env_int("STATECRAFT_MAX_WAIT_MS", 5) / 1000.0
        self.capacity = env_int("STATECRAFT_QUEUE_CAPACITY", 1000, 1)
        self.overflow = env_choice("STATECRAFT_OVERFLOW", "block", ("block", "reject"))
        self.apply_delay = env_int("STATECRAFT_APPLY_DELAY_US", 0) / 1e6
        self.apply_mode = env_choice("STATECRAFT_APPLY_MODE", "sleep", ("sleep", "cpu"))
        self.data_dir = os.environ.get("STATECRAFT_DATA_DIR") or None


def parse_event(obj):
    """Validates one decoded line; returns the event or raises Invalid."""
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        raise Invalid("key must be a non-empty string")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise Invalid(f"key longer than {MAX_KEY_BYTES} bytes")
    op = obj.get("op")
    if op not in OPS:
        raise Invalid(f"op must be one of {', '.join(OPS)}")
    value = obj.get("value")
    if op == "incr":
        if value is None:
            value = 1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid("incr needs a number")
    return {"id": obj["id"], "key": key, "op": op, "value": value}


def burn(seconds):
    """Busy work: APPLY_MODE=cpu."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


class Program:
    def __init__(self, settings):
        self.s = settings
        self.state = {}  # key -> [value, version]
        self.applied_ids = set()  # with DATA_DIR only
        self.queues = self.make_queues()
        self.outstanding = 0  # admitted events without a reply yet
        self.drained = asyncio.Event()
        self.drained.set()
        self.batches = 0
        self.max_depth = 0
        self.stages = collections.defaultdict(float)  # stage -> total ms
        self.waits = collections.deque(maxlen=1000)  # recent queue waits, ms
        self.log_fd = None
        self.out = sys.stdout

    # --- routing and queues -------------------------------------------------

    def make_queues(self):
        return [asyncio.Queue(maxsize=self.s.capacity) for _ in range(self.s.workers)]

    def route(self, key):
        return zlib.crc32(key.encode()) % self.s.workers

    def queue_for(self, key):
        return self.queues[self.route(key)]

    def worker_loops(self):
        return [self.worker(q) for q in self.queues]

    async def admit(self, ev):
        q = self.queue_for(ev["key"])
        ev["t"] = time.perf_counter()
        if self.s.overflow == "reject":
            if q.full():
                self.reply([{"nack": ev["id"], "reason": "overloaded"}])
                return
            self.outstanding += 1
            self.drained.clear()
            q.put_nowait(ev)
        else:
            self.outstanding += 1
            self.drained.clear()
            await q.put(ev)
        self.max_depth = max(self.max_depth, q.qsize())

    # --- batching -------------------------------------------------------------

    async def collect(self, q):
        loop = asyncio.get_running_loop()
        batch = [await q.get()]
        deadline = loop.time() + self.s.max_wait
        while len(batch) < self.s.max_batch:
            try:
                batch.append(q.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(q.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def worker(self, q):
        while True:
            batch = await self.collect(q)
            started = time.perf_counter()
            for ev in batch:
                wait_ms = (started - ev["t"]) * 1000.0
                self.waits.append(wait_ms)
                self.stages["queue_wait"] += wait_ms
            replies = await self.apply_batch(batch)
            self.batches += 1
            self.reply(replies)
            self.outstanding -= len(batch)
            if self.outstanding == 0:
                self.drained.set()

    # --- apply and durability -------------------------------------------------

    def apply_one(self, ev):
        entry = self.state.get(ev["key"])
        value, version = entry if entry else (None, 0)
        if ev["op"] == "incr":
            if value is None:
                value = 0
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Invalid("incr on a value that is not a number")
            value = value + ev["value"]
        else:
            value = ev["value"]
        self.state[ev["key"]] = [value, version + 1]
        return value, version + 1

    async def slow_consumer(self, n):
        if self.s.apply_delay > 0:
            if self.s.apply_mode == "cpu":
                burn(self.s.apply_delay * n)
            else:
                await asyncio.sleep(self.s.apply_delay * n)

    async def apply_batch(self, batch):
        t0 = time.perf_counter()
        replies, records = [], []
        for ev in batch:
            if ev["id"] in self.applied_ids:
                replies.append({"ack": ev["id"], "duplicate": True})
                continue
            try:
                value, version = self.apply_one(ev)
            except Invalid:
                replies.append({"nack": ev["id"], "reason": "type_error"})
                continue
            replies.append({"ack": ev["id"]})
            if self.log_fd is not None:
                self.applied_ids.add(ev["id"])
                records.append({"i": ev["id"], "k": ev["key"], "v": value, "n": version})
        await self.slow_consumer(len(batch))
        t1 = time.perf_counter()
        self.stages["apply"] += (t1 - t0) * 1000.0
        if records:
            self.persist(records)
            self.stages["commit"] += (time.perf_counter() - t1) * 1000.0
        return replies

    def persist(self, records):
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
        os.write(self.log_fd, data)
        os.fsync(self.log_fd)

    def recover(self):
        if not self.s.data_dir:
            return
        os.makedirs(self.s.data_dir, exist_ok=True)
        path = os.path.join(self.s.data_dir, "events.log")
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            # A torn last line (kill -9 mid-write) was never acked: cut it off.
            end = data.rfind(b"\n") + 1
            if end != len(data):
                with open(path, "r+b") as f:
                    f.truncate(end)
            for line in data[:end].splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                self.state[rec["k"]] = [rec["v"], rec["n"]]
                self.applied_ids.add(rec["i"])
        self.log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    # --- replies and commands -------------------------------------------------

    def reply(self, objs):
        if not objs:
            return
        t0 = time.perf_counter()
        self.out.write("".join(json.dumps(o) + "\n" for o in objs))
        self.out.flush()
        self.stages["ack"] += (time.perf_counter() - t0) * 1000.0

    async def lookup(self, key):
        entry = self.state.get(key)
        return entry if entry else (None, 0)

    def stats(self):
        waits = sorted(self.waits)
        return {
            "batches": self.batches,
            "max_queue_depth": self.max_depth,
            "capacity": self.s.capacity,
            "stages_ms": {k: round(v, 3) for k, v in self.stages.items()},
            "queue_wait_p50_ms": round(percentile(waits, 0.50), 3),
            "queue_wait_p95_ms": round(percentile(waits, 0.95), 3),
        }

    async def command(self, obj):
        cmd = obj.get("cmd")
        if cmd == "ping":
            self.reply([{"pong": True}])
            return
        await self.drained.wait()
        if cmd == "get":
            key = obj.get("key")
            value, version = await self.lookup(key)
            self.reply([{"key": key, "value": value, "version": version}])
        elif cmd == "stats":
            self.reply([{"stats": self.stats()}])
        elif cmd == "sync":
            self.reply([{"synced": True}])
        else:
            self.reply([{"error": f"unknown command {cmd!r}"}])

    async def handle_line(self, raw):
        raw = raw.strip()
        if not raw:
            return
        t0 = time.perf_counter()
        try:
            obj = json.loads(raw)
        except ValueError:
            self.reply([{"error": "line is not JSON"}])
            return
        if not isinstance(obj, dict):
            self.reply([{"error": "line is not a JSON object"}])
            return
        if "cmd" in obj:
            await self.command(obj)
            return
        ev_id = obj.get("id")
        try:
            if not isinstance(ev_id, str):
                raise Invalid("missing id")
            ev = parse_event(obj)
        except Invalid as e:
            if isinstance(ev_id, str):
                self.reply([{"nack": ev_id, "reason": "invalid", "message": str(e)}])
            else:
                self.reply([{"error": str(e)}])
            return
        self.stages["parse"] += (time.perf_counter() - t0) * 1000.0
        await self.admit(ev)

    # --- lifecycle ------------------------------------------------------------

    def start(self):
        """Hook for subclasses: runs before the first line is read."""

    def close(self):
        if self.log_fd is not None:
            os.close(self.log_fd)

    async def run(self):
        loop = asyncio.get_running_loop()
        self.recover()
        self.start()
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )

        def on_term():
            # Stop reading; what is already buffered is still handled, then EOF.
            transport.pause_reading()
            reader.feed_eof()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        workers = [asyncio.create_task(w) for w in self.worker_loops()]
        while True:
            line = await reader.readline()
            if not line:
                break
            await self.handle_line(line)
        await self.drained.wait()
        for w in workers:
            w.cancel()
        self.close()


def main(program_class=Program):
    try:
        settings = Settings()
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        sys.exit(2)
    asyncio.run(program_class(settings).run())


if __name__ == "__main__":
    main()
