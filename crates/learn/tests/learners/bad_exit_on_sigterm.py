#!/usr/bin/env python3
"""Classic mistake (lesson 9): exiting at SIGTERM without finishing.

On SIGTERM the program exits at once: events it had read but not yet applied
and acked are lost (their producer never gets a reply). Everything else is
good.py.
"""

import os
import signal

import good


class ExitsAtOnce(good.Program):
    def start(self):
        loop = good.asyncio.get_running_loop()
        # The mistake: exit now, dropping what is queued.
        loop.add_signal_handler(signal.SIGTERM, lambda: os._exit(0))
        loop.add_signal_handler = lambda *args, **kwargs: None  # (keep this one)


if __name__ == "__main__":
    good.main(ExitsAtOnce)
