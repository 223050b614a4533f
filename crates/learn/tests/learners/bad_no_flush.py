#!/usr/bin/env python3
"""Classic mistake (lesson 1): replies written but never flushed.

Python buffers stdout when it is a pipe (8 KiB), so replies sit in the buffer
and the checker waits for an ack that was "printed". It works in a terminal
(line-buffered) and with PYTHONUNBUFFERED=1 set in the shell, which is why the
checker removes that variable from the program's environment. Everything else
is good.py.
"""

import json

import good


class NoFlush(good.Program):
    def reply(self, objs):
        if objs:
            # The mistake: no self.out.flush().
            self.out.write("".join(json.dumps(o) + "\n" for o in objs))


if __name__ == "__main__":
    good.main(NoFlush)
