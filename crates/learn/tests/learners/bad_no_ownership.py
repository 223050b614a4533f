#!/usr/bin/env python3
"""Classic mistake (lesson 8): applying events of partitions it does not own.

STATECRAFT_OWNED is read but not enforced: two processes would both apply the
same partition. Everything else is good_partitions.py.
"""

import good
import good_partitions


class NoOwnership(good_partitions.Partitioned):
    async def admit(self, ev):
        await good.Program.admit(self, ev)  # the mistake: no ownership check


if __name__ == "__main__":
    good.main(NoOwnership)
