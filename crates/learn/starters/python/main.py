#!/usr/bin/env python3
"""Your state management system, lesson by lesson.

It speaks the Statecraft pipe protocol: events arrive on stdin, one JSON
object per line; every event gets exactly one reply on stdout once its effect
is applied; commands (`get`, `stats`, `sync`) are answered after every earlier
event has its reply; at end of input it finishes what is queued and exits 0.
Logs go to stderr, never stdout.

It runs as it is and passes `statecraft check 1`'s protocol objective. The
interesting parts are left to you, marked `TODO: YOUR CODE HERE`; each has a
naive default in place so the program keeps working while you build.
"""

import asyncio
import collections
import json
import os
import stat
import sys
import time


def setting(name, default):
    """An integer setting from the environment (the checker sets these)."""
    raw = os.environ.get(name)
    # TODO: YOUR CODE HERE (lesson 9) — refuse a bad value with a message
    # naming the variable on stderr and a non-zero exit, before doing anything.
    return int(raw) if raw else default


WORKERS = setting("STATECRAFT_WORKERS", 4)
MAX_BATCH = setting("STATECRAFT_MAX_BATCH", 100)
MAX_WAIT = setting("STATECRAFT_MAX_WAIT_MS", 5) / 1000.0
CAPACITY = setting("STATECRAFT_QUEUE_CAPACITY", 1000)
OVERFLOW = os.environ.get("STATECRAFT_OVERFLOW") or "block"  # or "reject"
APPLY_DELAY = setting("STATECRAFT_APPLY_DELAY_US", 0) / 1e6
APPLY_MODE = os.environ.get("STATECRAFT_APPLY_MODE") or "sleep"  # or "cpu"


def log(*args):
    print(*args, file=sys.stderr)


class Program:
    def __init__(self):
        self.state = {}  # key -> [value, version]
        # TODO: YOUR CODE HERE (lesson 3) — bound each queue (CAPACITY) and
        # apply the OVERFLOW policy in admit(). An unbounded queue grows with
        # the offered load, and so does memory.
        self.queues = [asyncio.Queue() for _ in range(WORKERS)]
        self.outstanding = 0  # events admitted and not yet replied to
        self.drained = asyncio.Event()
        self.drained.set()
        self.batches = 0
        self.max_depth = 0

    def route(self, key):
        """Which worker owns this key."""
        # TODO: YOUR CODE HERE (lesson 1) — spread keys over the workers so
        # that one key always goes to the same worker (why does that matter?).
        return 0

    async def admit(self, event):
        queue = self.queues[self.route(event["key"])]
        self.outstanding += 1
        self.drained.clear()
        await queue.put(event)
        self.max_depth = max(self.max_depth, queue.qsize())

    async def collect_batch(self, queue):
        """The next batch for one worker."""
        batch = [await queue.get()]
        # TODO: YOUR CODE HERE (lesson 2) — also take what is already queued, up
        # to MAX_BATCH events, waiting at most MAX_WAIT after the first one
        # (a fixed deadline for the whole batch, not a timeout per item).
        return batch

    async def slow_down(self, n):
        """The checker plays a slow consumer with APPLY_DELAY_US (per event)."""
        if APPLY_DELAY > 0:
            if APPLY_MODE == "cpu":
                end = time.perf_counter() + APPLY_DELAY * n
                while time.perf_counter() < end:
                    pass
            else:
                await asyncio.sleep(APPLY_DELAY * n)

    def apply(self, event):
        value, version = self.state.get(event["key"], (None, 0))
        if event["op"] == "incr":
            value = (value or 0) + event.get("value", 1)
        elif event["op"] == "set":
            value = event.get("value")
        self.state[event["key"]] = [value, version + 1]

    async def worker(self, queue):
        while True:
            batch = await self.collect_batch(queue)
            for event in batch:
                self.apply(event)
            await self.slow_down(len(batch))
            self.batches += 1
            self.reply([{"ack": event["id"]} for event in batch])
            self.outstanding -= len(batch)
            if self.outstanding == 0:
                self.drained.set()

    def reply(self, objects):
        try:
            sys.stdout.write("".join(json.dumps(o) + "\n" for o in objects))
            sys.stdout.flush()
        except BrokenPipeError:
            log("stdout was closed: nobody is reading the replies, exiting")
            os._exit(1)

    async def command(self, cmd):
        name = cmd.get("cmd")
        if name == "ping":
            # The one command answered at once: it shows the reader is responsive.
            self.reply([{"pong": True}])
            return
        await self.drained.wait()  # every earlier event has its reply
        if name == "get":
            value, version = self.state.get(cmd.get("key"), (None, 0))
            self.reply([{"key": cmd.get("key"), "value": value, "version": version}])
        elif name == "stats":
            self.reply([{"stats": {
                "batches": self.batches,
                "max_queue_depth": self.max_depth,
                "capacity": CAPACITY,
            }}])
        elif name == "sync":
            self.reply([{"synced": True}])
        else:
            self.reply([{"error": f"unknown command {name!r}"}])

    async def run(self):
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        if stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode):
            # A file (`python3 main.py < events.ndjson`): pipe transports refuse files.
            reader.feed_data(sys.stdin.buffer.read())
            reader.feed_eof()
        else:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        workers = [asyncio.create_task(self.worker(q)) for q in self.queues]
        while True:
            line = await reader.readline()
            if not line:
                break  # end of input
            if not line.strip():
                continue
            message = json.loads(line)
            if "cmd" in message:
                await self.command(message)
            else:
                await self.admit(message)
        await self.drained.wait()  # finish what is queued, then exit 0
        for task in workers:
            task.cancel()


if __name__ == "__main__":
    asyncio.run(Program().run())
