#!/usr/bin/env python3
"""Classic mistake (lesson 1): every key routed to one worker.

`route()` returns 0 (as in the starter): per-key order holds trivially, but
STATECRAFT_WORKERS is ignored, so nothing runs concurrently: with 4 workers
configured, events still go through one at a time. Everything else is good.py.
"""

import good


class OneWorker(good.Program):
    def route(self, key):
        return 0  # the mistake: one worker owns every key


if __name__ == "__main__":
    good.main(OneWorker)
