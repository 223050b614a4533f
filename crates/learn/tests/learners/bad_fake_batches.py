#!/usr/bin/env python3
"""Classic mistake (lesson 2): batches counted, not made.

Events are applied one at a time, but `stats` reports a small `batches` count
(the counter is bumped once per burst, not once per applied batch). The checker
does not take the program's word for it: it sees the acks leave one by one.
Everything else is good.py.
"""

import good


class FakeBatches(good.Program):
    async def collect(self, q):
        return [await q.get()]  # the mistake: one event per "batch"

    def stats(self):
        out = super().stats()
        out["batches"] = 1  # ... reported as if it were batched
        return out


if __name__ == "__main__":
    good.main(FakeBatches)
