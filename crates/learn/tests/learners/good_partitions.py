#!/usr/bin/env python3
"""A correct learner program for lesson 8: partitions, offsets, ownership.

Partition of a key = FNV-1a 64 of its UTF-8 bytes mod STATECRAFT_PARTITIONS.
Events of a partition this process does not own (STATECRAFT_OWNED) are nacked
`not_owner`. A partition always goes to the same worker, so its events apply in
`seq` order; the highest applied `seq` per partition is logged in the same
durable write as the state it produced, and an event at or below it is acked
as a duplicate without being applied. Everything else is good.py.
"""

import os

import good


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Partitioned(good.Program):
    def __init__(self, settings):
        super().__init__(settings)
        self.partitions = good.env_int("STATECRAFT_PARTITIONS", 1, 1)
        owned = os.environ.get("STATECRAFT_OWNED")
        try:
            self.owned = (
                {int(p) for p in owned.split(",") if p.strip()} if owned
                else set(range(self.partitions))
            )
        except ValueError:
            raise good.ConfigError(f"STATECRAFT_OWNED={owned!r} is not a list of partitions")
        self.offsets = {}  # partition -> highest applied seq
        self.seq_of = {}  # event id -> (partition, seq), until persisted

    def partition(self, key):
        return fnv1a64(key.encode()) % self.partitions

    def route(self, key):
        return self.partition(key) % self.s.workers

    async def admit(self, ev):
        if self.partition(ev["key"]) not in self.owned:
            self.reply([{"nack": ev["id"], "reason": "not_owner"}])
            return
        await super().admit(ev)

    async def apply_batch(self, batch):
        fresh, replies = [], []
        for ev in batch:
            seq = ev.get("seq")
            p = self.partition(ev["key"])
            if seq is not None and seq <= self.offsets.get(p, 0):
                replies.append({"ack": ev["id"], "duplicate": True})
            else:
                fresh.append(ev)
                if seq is not None:
                    self.offsets[p] = seq
                    self.seq_of[ev["id"]] = (p, seq)
        return replies + await super().apply_batch(fresh) if fresh else replies

    def persist(self, records):
        # Each record carries its own event's seq: after a torn write, the
        # offsets recovered are exactly those of the records that survived.
        for r in records:
            if r["i"] in self.seq_of:
                r["p"], r["s"] = self.seq_of.pop(r["i"])
        super().persist(records)

    def recover(self):
        super().recover()
        path = os.path.join(self.s.data_dir or "", "events.log")
        if self.s.data_dir and os.path.exists(path):
            import json
            with open(path, "rb") as f:
                for line in f:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if "p" in r:
                        self.offsets[r["p"]] = max(self.offsets.get(r["p"], 0), r["s"])


_parse = good.parse_event


def parse_event(obj):
    ev = _parse(obj)
    seq = obj.get("seq")
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise good.Invalid("seq must be a positive integer")
        ev["seq"] = seq
    return ev


good.parse_event = parse_event

if __name__ == "__main__":
    good.main(Partitioned)
