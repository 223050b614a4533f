#!/usr/bin/env python3
"""Classic mistake: no batch deadline.

The collector waits for a full batch (MAX_BATCH events). A partial batch is
only flushed after a whole second without input, so a lone event waits ~1 s
whatever MAX_WAIT_MS says. Bursts still batch nicely. Everything else is good.py.
"""

import asyncio

import good

IDLE_FLUSH_S = 1.0


class NoDeadline(good.Program):
    async def collect(self, q):
        batch = [await q.get()]
        while len(batch) < self.s.max_batch:
            try:
                batch.append(await asyncio.wait_for(q.get(), IDLE_FLUSH_S))
            except asyncio.TimeoutError:
                break
        return batch


if __name__ == "__main__":
    good.main(NoDeadline)
