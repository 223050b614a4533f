#!/usr/bin/env python3
"""Classic mistake (lesson 5): the log is written but never fsynced.

Each batch is appended to the log before its acks go out, so kill -9 of the
process loses nothing (the page cache survives a process crash); a power cut or
kernel crash would lose every acked event not yet written back. The checker
sees it by tracing the program's system calls: no fsync/fdatasync between the
log write and the ack. Everything else is good.py.
"""

import os

import good


class NoFsync(good.Program):
    def persist(self, records):
        data = "".join(good.json.dumps(r) + "\n" for r in records).encode()
        os.write(self.log_fd, data)  # the mistake: no os.fsync(self.log_fd)


if __name__ == "__main__":
    good.main(NoFsync)
