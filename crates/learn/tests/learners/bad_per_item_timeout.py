#!/usr/bin/env python3
"""Classic mistake (lesson 2): a timeout per item instead of a fixed deadline.

The collector waits up to MAX_WAIT for *each* next event. While events keep
coming closer together than MAX_WAIT, the batch never closes until MAX_BATCH:
the first event of a trickle waits far past the deadline. Everything else is
good.py.
"""

import asyncio

import good


class PerItemTimeout(good.Program):
    async def collect(self, q):
        batch = [await q.get()]
        while len(batch) < self.s.max_batch:
            try:
                # The mistake: the remaining time restarts with every item.
                batch.append(await asyncio.wait_for(q.get(), self.s.max_wait))
            except asyncio.TimeoutError:
                break
        return batch


if __name__ == "__main__":
    good.main(PerItemTimeout)
