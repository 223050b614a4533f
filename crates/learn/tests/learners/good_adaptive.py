#!/usr/bin/env python3
"""A correct learner program for lesson 7: an adaptive queue.

Admission control by a capacity that a control loop resizes every 100 ms to
hold the p95 queue wait near STATECRAFT_TARGET_WAIT_MS. Little's law: capacity
≈ target wait × service rate, aimed at 60 % of it so the p95 (not the mean)
lands near the target; the rate is measured over busy time, so a light load
does not read as a slow consumer. Within MIN..MAX, with hysteresis (no change
under 10 %) and a bounded step (at most halve or grow by half). The p95 it
reports covers the last second. Everything else is good.py.
"""

import asyncio
import collections
import sys
import time

import good


class Adaptive(good.Program):
    def __init__(self, settings):
        super().__init__(settings)
        self.capacity = settings.capacity
        self.target = good.env_int("STATECRAFT_TARGET_WAIT_MS", 20, 1) / 1000.0
        self.min_cap = good.env_int("STATECRAFT_MIN_CAPACITY", 10, 1)
        self.max_cap = good.env_int("STATECRAFT_MAX_CAPACITY", 10_000, 1)
        self.capacity = max(self.min_cap, min(self.max_cap, self.capacity))
        self.recent = collections.deque()  # (time, wait_ms)
        self.applied = collections.deque()  # (time, events, busy seconds)

    def make_queues(self):
        # Bounded by admission control below, not by the queue object.
        return [asyncio.Queue() for _ in range(self.s.workers)]

    def depth(self):
        return sum(q.qsize() for q in self.queues)

    async def admit(self, ev):
        if self.s.overflow == "reject" and self.depth() >= self.capacity:
            self.reply([{"nack": ev["id"], "reason": "overloaded"}])
            return
        while self.depth() >= self.capacity:
            await asyncio.sleep(0.001)
        q = self.queue_for(ev["key"])
        ev["t"] = time.perf_counter()
        self.outstanding += 1
        self.drained.clear()
        q.put_nowait(ev)
        self.max_depth = max(self.max_depth, self.depth())

    async def apply_batch(self, batch):
        started = time.perf_counter()
        for ev in batch:
            self.recent.append((started, (started - ev["t"]) * 1000.0))
        replies = await super().apply_batch(batch)
        self.applied.append((time.perf_counter(), len(batch), time.perf_counter() - started))
        return replies

    def window(self, now, span=1.0):
        while self.recent and self.recent[0][0] < now - span:
            self.recent.popleft()
        while self.applied and self.applied[0][0] < now - span:
            self.applied.popleft()
        return sorted(w for _, w in self.recent)

    async def control(self):
        while True:
            await asyncio.sleep(0.1)
            now = time.perf_counter()
            waits = self.window(now)
            events = sum(n for _, n, _ in self.applied)
            busy = sum(b for _, _, b in self.applied)
            if len(waits) < 20 or busy <= 0:
                continue
            rate = events / busy
            # Little's law gives the mean wait; aim lower so the p95 lands near target.
            desired = max(self.min_cap, min(self.max_cap, 0.6 * self.target * rate))
            if abs(desired - self.capacity) < 0.1 * self.capacity:
                continue
            step = max(-self.capacity / 2, min(self.capacity / 2, desired - self.capacity))
            new = int(max(self.min_cap, min(self.max_cap, self.capacity + step)))
            if new != self.capacity:
                print(f"capacity_adjusted {self.capacity} -> {new} (p95 "
                      f"{good.percentile(waits, 0.95):.1f} ms, rate {rate:.0f}/s)",
                      file=sys.stderr, flush=True)
                self.capacity = new

    def worker_loops(self):
        return super().worker_loops() + [self.control()]

    def stats(self):
        stats = super().stats()
        waits = self.window(time.perf_counter())
        stats["capacity"] = self.capacity
        stats["queue_wait_p50_ms"] = round(good.percentile(waits, 0.50), 3)
        stats["queue_wait_p95_ms"] = round(good.percentile(waits, 0.95), 3)
        return stats


if __name__ == "__main__":
    good.main(Adaptive)
