#!/usr/bin/env python3
"""Classic mistake: blocking the event loop while CPU work runs.

Apply is offloaded to worker processes as in good_parallel.py (so it still
runs in parallel), but the dispatcher waits for the results with a blocking
`future.result()` instead of awaiting them: while a round of CPU work runs,
the event loop cannot read stdin or answer anything.
"""

import good
import good_parallel


class BlockingLoop(good_parallel.Parallel):
    async def wait_all(self, futures):
        # The mistake: a blocking wait inside a coroutine.
        return [f.result() for f in futures]


if __name__ == "__main__":
    good.main(BlockingLoop)
