#!/usr/bin/env python3
"""Classic mistake (lesson 9): no limits on input.

Any key is accepted, however long, and any op name is taken as a set: a
2,000-byte key, or a typo'd op, is applied instead of refused. Everything else
is good.py.
"""

import good


def parse_event(obj):
    key = obj.get("key")
    if not isinstance(key, str) or not key:
        raise good.Invalid("key must be a non-empty string")
    # The mistake: no length limit on the key.
    op = obj.get("op")
    if op not in good.OPS:
        raise good.Invalid("op must be set or incr")
    value = obj.get("value")
    if op == "incr":
        if value is None:
            value = 1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise good.Invalid("incr needs a number")
    return {"id": obj["id"], "key": key, "op": op, "value": value}


good.parse_event = parse_event

if __name__ == "__main__":
    good.main()
