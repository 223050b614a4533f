#!/usr/bin/env python3
"""Classic mistake (lesson 6): a timer around the wrong span.

The `apply` timer starts after the slow part (the awaited I/O, here the apply
delay) and so measures only the dictionary update: the stage that takes the
time reads as free. Everything else is good.py.
"""

import time

import good


class WrongSpan(good.Program):
    async def apply_batch(self, batch):
        await self.slow_consumer(len(batch))
        t0 = time.perf_counter()  # the mistake: the timer starts too late
        replies, records = [], []
        for ev in batch:
            if ev["id"] in self.applied_ids:
                replies.append({"ack": ev["id"], "duplicate": True})
                continue
            value, version = self.apply_one(ev)
            replies.append({"ack": ev["id"]})
            if self.log_fd is not None:
                self.applied_ids.add(ev["id"])
                records.append({"i": ev["id"], "k": ev["key"], "v": value, "n": version})
        self.stages["apply"] += (time.perf_counter() - t0) * 1000.0
        if records:
            self.persist(records)
        return replies


if __name__ == "__main__":
    good.main(WrongSpan)
