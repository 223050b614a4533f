#!/usr/bin/env python3
"""Classic mistake (lesson 2): MAX_BATCH ignored.

The collector takes everything already queued, however much that is, so under a
burst one batch holds hundreds of events: latency of the whole batch grows with
the backlog. Everything else is good.py.
"""

import asyncio

import good


class IgnoresMaxBatch(good.Program):
    async def collect(self, q):
        loop = asyncio.get_running_loop()
        batch = [await q.get()]
        deadline = loop.time() + self.s.max_wait
        while True:  # the mistake: no MAX_BATCH bound
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


if __name__ == "__main__":
    good.main(IgnoresMaxBatch)
