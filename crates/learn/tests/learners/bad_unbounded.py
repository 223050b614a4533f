#!/usr/bin/env python3
"""Classic mistake: an unbounded queue.

`asyncio.Queue()` without a maxsize is never full, so the overflow policy never
triggers: nothing is refused, the queue grows with the offered load, and so
does memory. Everything else is good.py.
"""

import asyncio

import good


class Unbounded(good.Program):
    def make_queues(self):
        return [asyncio.Queue() for _ in range(self.s.workers)]


if __name__ == "__main__":
    good.main(Unbounded)
