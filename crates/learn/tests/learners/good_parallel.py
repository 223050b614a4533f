#!/usr/bin/env python3
"""A correct learner program for lesson 4: CPU-bound apply off the event loop.

State is sharded by key over WORKERS processes (each a one-process pool that
owns its shard in a module global, so workers share nothing). One dispatcher
task collects a batch, splits it by shard, submits each part to its process and
*awaits* the results, so the event loop stays free to read stdin and answer
`ping` while the CPU work runs. Batches of one round run in parallel; a key
always goes to the same process, in order. Everything else is good.py.
"""

import asyncio
import concurrent.futures
import multiprocessing
import time

import good

_SHARD = {}  # in each worker process: key -> [value, version]


def _apply_in_worker(events, delay, mode):
    replies = []
    for ev_id, key, op, value in events:
        if delay > 0:
            if mode == "cpu":
                good.burn(delay)
            else:
                time.sleep(delay)
        current, version = _SHARD.get(key, (None, 0))
        if op == "incr":
            current = (current or 0) + value
        else:
            current = value
        _SHARD[key] = [current, version + 1]
        replies.append({"ack": ev_id})
    return replies


def _get_in_worker(key):
    entry = _SHARD.get(key)
    return entry if entry else (None, 0)


def _ready():
    return True


class Parallel(good.Program):
    def start(self):
        ctx = multiprocessing.get_context("fork")
        self.pools = [
            concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
            for _ in range(self.s.workers)
        ]
        for pool in self.pools:
            pool.submit(_ready).result()

    def make_queues(self):
        return [asyncio.Queue(maxsize=self.s.capacity)]

    def queue_for(self, key):
        return self.queues[0]

    def worker_loops(self):
        return [self.worker(self.queues[0])]

    async def wait_all(self, futures):
        return await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))

    async def apply_batch(self, batch):
        t0 = time.perf_counter()
        parts = {}
        for ev in batch:
            parts.setdefault(self.route(ev["key"]), []).append(
                (ev["id"], ev["key"], ev["op"], ev["value"])
            )
        futures = [
            self.pools[shard].submit(_apply_in_worker, events, self.s.apply_delay, self.s.apply_mode)
            for shard, events in parts.items()
        ]
        results = await self.wait_all(futures)
        self.stages["apply"] += (time.perf_counter() - t0) * 1000.0
        return [reply for part in results for reply in part]

    async def lookup(self, key):
        loop = asyncio.get_running_loop()
        pool = self.pools[self.route(key)]
        return await loop.run_in_executor(pool, _get_in_worker, key)

    def close(self):
        for pool in self.pools:
            pool.shutdown(wait=False, cancel_futures=True)
        super().close()


if __name__ == "__main__":
    good.main(Parallel)
