#!/usr/bin/env python3
"""Classic mistake (lesson 2): a blocking sleep inside the event loop.

The collector takes the first event, then `time.sleep(MAX_WAIT)` "to let the
batch fill" before taking what is queued. The sleep blocks the whole event
loop: nothing is read and nothing answered (not even ping) meanwhile, and the
batch cannot fill because the reader is blocked too. Everything else is
good.py.
"""

import time

import good


class BlockingSleep(good.Program):
    async def collect(self, q):
        batch = [await q.get()]
        time.sleep(self.s.max_wait)  # the mistake: blocks the event loop
        while len(batch) < self.s.max_batch and not q.empty():
            batch.append(q.get_nowait())
        return batch


if __name__ == "__main__":
    good.main(BlockingSleep)
