#!/usr/bin/env python3
"""Classic mistake (lesson 5): no idempotency ids.

The log keeps effects but forgets which event ids were applied. An event that
was applied and logged, but whose ack was lost in a crash, is re-sent by the
producer and applied a second time. Everything else is good.py.
"""

import good


class NoIds(good.Program):
    async def apply_batch(self, batch):
        self.applied_ids = set()  # the mistake: applied ids are not remembered
        return await super().apply_batch(batch)

    def recover(self):
        super().recover()
        self.applied_ids = set()


if __name__ == "__main__":
    good.main(NoIds)
