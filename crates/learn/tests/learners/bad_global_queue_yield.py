#!/usr/bin/env python3
"""Classic mistake (lesson 1): one global queue, several workers, one event each.

The lesson's own experiment: WORKERS workers all take from one queue, each
awaits something between taking an event and applying it (here the apply
delay, a stand-in for any I/O). Two adjacent events of one key are then in two
workers at the same time: their order is decided by the scheduler, not by the
sender. Under asyncio with equal delays the final value often happens to be
right, so the checker looks at what cannot be luck: a key's third event acked
before three applies could have run one after the other. Everything else is
good.py.
"""

import asyncio

import good


class GlobalQueueYield(good.Program):
    def make_queues(self):
        return [asyncio.Queue(maxsize=self.s.capacity)]

    def queue_for(self, key):
        return self.queues[0]

    def worker_loops(self):
        # The mistake: WORKERS workers, all pulling from the same queue.
        return [self.one_at_a_time(self.queues[0]) for _ in range(self.s.workers)]

    async def one_at_a_time(self, q):
        while True:
            ev = await q.get()
            await asyncio.sleep(0)
            await self.slow_consumer(1)
            self.apply_one(ev)
            self.batches += 1
            self.reply([{"ack": ev["id"]}])
            self.outstanding -= 1
            if self.outstanding == 0:
                self.drained.set()


if __name__ == "__main__":
    good.main(GlobalQueueYield)
