#!/usr/bin/env python3
"""Classic mistake (lesson 9): SIGTERM ignored.

The program never handles SIGTERM (here: ignores it outright), so a service
manager's stop request does nothing until it gives up and sends SIGKILL,
losing whatever was in flight. Everything else is good.py.
"""

import signal

import good


class IgnoresSigterm(good.Program):
    def start(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the mistake
        loop = good.asyncio.get_running_loop()
        loop.add_signal_handler = lambda *args, **kwargs: None  # (keep it ignored)


if __name__ == "__main__":
    good.main(IgnoresSigterm)
