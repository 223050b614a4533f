#!/usr/bin/env python3
"""Classic mistake (lesson 5): recovery replays the log on top of a snapshot
that already contains it.

The log holds operations (incr by 3, set to x). At a clean exit the program
writes a snapshot of the state, but does not truncate the log or remember up to
where the snapshot covers it; at start it loads the snapshot and then replays
the whole log: every incr since the beginning counts twice. Everything else is
good.py.
"""

import json
import os

import good


class ReplayTwice(good.Program):
    def recover(self):
        if not self.s.data_dir:
            return
        os.makedirs(self.s.data_dir, exist_ok=True)
        snap = os.path.join(self.s.data_dir, "snapshot.json")
        path = os.path.join(self.s.data_dir, "ops.log")
        if os.path.exists(snap):
            with open(snap) as f:
                self.state = {k: list(v) for k, v in json.load(f).items()}
        if os.path.exists(path):
            with open(path, "rb") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    # The mistake: replays ops the snapshot already includes.
                    self.apply_one({"key": rec["k"], "op": rec["op"], "value": rec["v"]})
                    self.applied_ids.add(rec["i"])
        self.log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def apply_batch(self, batch):
        self.pending_ops = [
            {"i": ev["id"], "k": ev["key"], "op": ev["op"], "v": ev["value"]}
            for ev in batch
            if ev["id"] not in self.applied_ids
        ]
        return await super().apply_batch(batch)

    def persist(self, records):
        good.Program.persist(self, self.pending_ops)

    def close(self):
        if self.s.data_dir:
            tmp = os.path.join(self.s.data_dir, "snapshot.tmp")
            with open(tmp, "w") as f:
                json.dump(self.state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(self.s.data_dir, "snapshot.json"))
        super().close()


if __name__ == "__main__":
    good.main(ReplayTwice)
