#!/usr/bin/env python3
"""Classic mistake (lesson 8): consuming without stored offsets.

Events carry a `seq` (their offset in the source log), but the program does not
store the offsets it applied: when the source redelivers from an earlier offset
after a restart (with fresh ids), every redelivered effect is applied again.
Everything else is good_partitions.py.
"""

import good
import good_partitions


class NoOffsets(good_partitions.Partitioned):
    async def apply_batch(self, batch):
        # The mistake: seq is ignored; only ids (which a redelivery changes) dedupe.
        return await good.Program.apply_batch(self, batch)


if __name__ == "__main__":
    good.main(NoOffsets)
