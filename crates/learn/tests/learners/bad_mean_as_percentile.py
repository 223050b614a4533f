#!/usr/bin/env python3
"""Classic mistake (lesson 6): the mean reported as a percentile.

queue_wait_p50_ms and queue_wait_p95_ms are both the mean wait: the tail that
users feel disappears into the average. Everything else is good.py.
"""

import good


class MeanAsPercentile(good.Program):
    def stats(self):
        out = super().stats()
        waits = list(self.waits)
        mean = sum(waits) / len(waits) if waits else 0.0
        out["queue_wait_p50_ms"] = round(mean, 3)  # the mistake
        out["queue_wait_p95_ms"] = round(mean, 3)
        return out


if __name__ == "__main__":
    good.main(MeanAsPercentile)
