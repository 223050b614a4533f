#!/usr/bin/env python3
"""Classic mistake (lesson 3): acking on admission, before apply.

The ack goes out as soon as the event is queued; the worker applies it later.
Under a slow consumer the producer is told "done" for work that has not
happened (and a crash would lose it). Everything else is good.py.
"""

import good


class AckOnAdmit(good.Program):
    async def admit(self, ev):
        q = self.queue_for(ev["key"])
        if self.s.overflow == "reject" and q.full():
            self.reply([{"nack": ev["id"], "reason": "overloaded"}])
            return
        self.reply([{"ack": ev["id"]}])  # the mistake: acked before apply
        await super().admit(ev)

    async def worker(self, q):
        while True:
            batch = await self.collect(q)
            await self.apply_batch(batch)  # its acks already went out
            self.batches += 1
            self.outstanding -= len(batch)
            if self.outstanding == 0:
                self.drained.set()


if __name__ == "__main__":
    good.main(AckOnAdmit)
