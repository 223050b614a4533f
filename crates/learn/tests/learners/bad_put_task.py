#!/usr/bin/env python3
"""Classic mistake (lesson 3): `block` as a task per pending put.

Under OVERFLOW=block, admit() does `create_task(q.put(ev))` instead of
`await q.put(ev)`: the reader never waits, so a task holding the event is
created for every line read. The queue itself never exceeds its capacity, but
every waiting task is an event held in memory: a hidden unbounded queue.
Everything else is good.py.
"""

import asyncio
import time

import good


class PutTask(good.Program):
    async def admit(self, ev):
        if self.s.overflow == "reject":
            await super().admit(ev)
            return
        q = self.queue_for(ev["key"])
        ev["t"] = time.perf_counter()
        self.outstanding += 1
        self.drained.clear()
        # The mistake: the put waits in a task; the reader goes on reading.
        asyncio.get_running_loop().create_task(q.put(ev))
        self.max_depth = max(self.max_depth, q.qsize())


if __name__ == "__main__":
    good.main(PutTask)
