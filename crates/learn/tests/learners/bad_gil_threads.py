#!/usr/bin/env python3
"""Classic mistake (lesson 4): threads sharing one state for CPU-bound work.

Apply runs in a thread pool of WORKERS threads that share one dict under one
lock. The event loop stays responsive, but pure-Python CPU work in threads
holds the GIL: 4 threads do the work of one. Everything else is good.py.
"""

import asyncio
import concurrent.futures
import threading

import good


class GilThreads(good.Program):
    def start(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.s.workers)
        self.lock = threading.Lock()

    def _apply_locked(self, batch):
        if self.s.apply_delay > 0:
            if self.s.apply_mode == "cpu":
                good.burn(self.s.apply_delay * len(batch))
        with self.lock:  # the shared state needs a lock: workers share it
            return [self.apply_one(ev) for ev in batch]

    async def apply_batch(self, batch):
        loop = asyncio.get_running_loop()
        if self.s.apply_mode != "cpu" and self.s.apply_delay > 0:
            await asyncio.sleep(self.s.apply_delay * len(batch))
        await loop.run_in_executor(self.pool, self._apply_locked, batch)
        return [{"ack": ev["id"]} for ev in batch]

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().close()


if __name__ == "__main__":
    good.main(GilThreads)
