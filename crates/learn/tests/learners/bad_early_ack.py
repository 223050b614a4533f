#!/usr/bin/env python3
"""Classic mistake: acking before the effect is durable.

Each event is acked as soon as it is read; the log is written and fsynced in
the background every 100 ms. After kill -9, the events acked since the last
flush are gone. A clean exit flushes, so restarts after EOF look fine.
Everything else is good.py.
"""

import asyncio
import os

import good


class EarlyAck(good.Program):
    def start(self):
        self.pending_log = []
        if self.log_fd is not None:
            asyncio.get_running_loop().create_task(self.flusher())

    async def flusher(self):
        while True:
            await asyncio.sleep(0.1)
            self.flush()

    def flush(self):
        if self.pending_log:
            records, self.pending_log = self.pending_log, []
            good.Program.persist(self, records)

    def persist(self, records):
        # The mistake: buffered, not written before the ack.
        self.pending_log.extend(records)

    async def admit(self, ev):
        # The mistake: the ack goes out before the event is even queued.
        self.reply([{"ack": ev["id"]}])
        await super().admit(ev)

    async def worker(self, q):
        while True:
            batch = await self.collect(q)
            await self.apply_batch(batch)  # its acks already went out at admission
            self.batches += 1
            self.outstanding -= len(batch)
            if self.outstanding == 0:
                self.drained.set()

    def close(self):
        self.flush()
        super().close()


if __name__ == "__main__":
    good.main(EarlyAck)
