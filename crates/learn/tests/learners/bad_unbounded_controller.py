#!/usr/bin/env python3
"""Classic mistake (lesson 7): a controller without bounds.

It halves the capacity while p95 is above target and doubles it below, and
never clamps to MIN_CAPACITY/MAX_CAPACITY: under a sustained overload the
capacity falls through the floor (and would run away above the ceiling).
Everything else is good_adaptive.py.
"""

import asyncio
import time

import good
import good_adaptive


class UnboundedController(good_adaptive.Adaptive):
    async def control(self):
        while True:
            await asyncio.sleep(0.1)
            waits = self.window(time.perf_counter())
            if len(waits) < 20:
                continue
            p95 = good.percentile(waits, 0.95) / 1000.0
            # The mistake: no clamp to [min_cap, max_cap].
            if p95 > self.target:
                self.capacity = max(1, self.capacity // 2)
            else:
                self.capacity = self.capacity * 2


if __name__ == "__main__":
    good.main(UnboundedController)
