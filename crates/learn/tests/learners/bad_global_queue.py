#!/usr/bin/env python3
"""Classic mistake: one global queue shared by several workers.

Each worker takes whatever is next from the one queue, so two events of the
same key can be in two workers at once; when their (simulated) I/O takes
different times, the later `set` can land first. Everything else is good.py.
"""

import asyncio
import random

import good


class GlobalQueue(good.Program):
    def make_queues(self):
        return [asyncio.Queue(maxsize=self.s.capacity)]

    def queue_for(self, key):
        return self.queues[0]

    def worker_loops(self):
        # The mistake: WORKERS workers, all pulling from the same queue.
        return [self.io_worker(self.queues[0], i) for i in range(self.s.workers)]

    async def io_worker(self, q, index):
        while True:
            batch = [await q.get()]
            while len(batch) < 10 and not q.empty():
                batch.append(q.get_nowait())
            # Simulated I/O that takes longer on some workers than on others:
            # a batch taken later can finish (and write its sets) earlier.
            if self.s.apply_delay > 0:
                slowness = (1 + 3 * index) * random.uniform(0.5, 1.5)
                await asyncio.sleep(self.s.apply_delay * len(batch) * slowness)
            for ev in batch:
                self.apply_one(ev)
            self.batches += 1
            self.reply([{"ack": ev["id"]} for ev in batch])
            self.outstanding -= len(batch)
            if self.outstanding == 0:
                self.drained.set()


if __name__ == "__main__":
    good.main(GlobalQueue)
