#!/usr/bin/env python3
"""The textbook Python asyncio design, as a benchmark peer (BENCH.md, W6).

This is the design a learner writes in lessons 1-3, written cleanly:

- one bounded ``asyncio.Queue`` per worker; events are routed by
  ``hash(key) % workers``, so one worker owns each key (per-key order);
- each worker collects a batch with a *fixed deadline* that starts at the
  batch's first item: ``--mode drain`` then takes whatever is already queued
  with ``get_nowait`` and waits (up to the deadline) only when the queue is
  empty; ``--mode wait_for`` awaits ``asyncio.wait_for(queue.get(), remaining)``
  for every item, the per-item timeout a first version usually has;
- the state is a dict; applying an ``incr`` is ``state[key] = state.get(key, 0) + by``.

It is fed the same W6 events as the Rust engine's in-process run: ``incr`` by
1 on ``--keys`` keys named ``key:<i>``, uniform (or zipf), generated up front,
inside this process, before the clock starts. The clock covers feeding every
event and the workers applying all of them.

Prints one JSON line: {"events", "seconds", "events_per_s", ...}.

    python3 bench/peers/asyncio_peer.py --events 1000000 --workers 4 --batch 1000
    python3 bench/peers/asyncio_peer.py --events 200000 --mode wait_for
"""

import argparse
import asyncio
import itertools
import json
import random
import sys
import time

STOP = None  # the end-of-stream marker a worker's queue receives last


def make_events(n, keys, dist, zipf_s, seed):
    """Pre-generates the event keys: W6 measures the pipeline, not generation."""
    rng = random.Random(seed)
    names = [f"key:{i}" for i in range(keys)]
    if dist == "zipf":
        weights = [1.0 / (rank ** zipf_s) for rank in range(1, keys + 1)]
        cum = list(itertools.accumulate(weights))
        return rng.choices(names, cum_weights=cum, k=n)
    return [names[rng.randrange(keys)] for _ in range(n)]


async def collect_batch(queue, max_batch, max_wait, mode, loop):
    """Returns up to max_batch items, waiting at most max_wait after the first.

    The deadline is fixed when the first item arrives; it never moves. The
    batch may end with STOP, which the caller handles after applying.
    """
    first = await queue.get()
    batch = [first]
    if first is STOP:
        return batch
    deadline = loop.time() + max_wait
    while len(batch) < max_batch:
        if mode == "drain":
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
        else:  # wait_for: a timeout per item
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                item = await asyncio.wait_for(queue.get(), remaining)
            except asyncio.TimeoutError:
                break
        batch.append(item)
        if item is STOP:
            break
    return batch


async def worker(queue, state, max_batch, max_wait, mode, applied):
    """Owns the keys routed to `queue`: applies batches until STOP."""
    loop = asyncio.get_running_loop()
    while True:
        batch = await collect_batch(queue, max_batch, max_wait, mode, loop)
        done = batch[-1] is STOP
        if done:
            batch.pop()
        for key, by in batch:
            state[key] = state.get(key, 0) + by
        applied[0] += len(batch)
        if done:
            return


async def run(args):
    events = make_events(args.events, args.keys, args.dist, args.zipf_s, args.seed)
    queues = [asyncio.Queue(maxsize=args.queue_size) for _ in range(args.workers)]
    states = [{} for _ in range(args.workers)]
    applied = [[0] for _ in range(args.workers)]
    max_wait = args.max_wait_ms / 1000.0
    n = args.workers
    start = time.perf_counter()
    tasks = [
        asyncio.create_task(
            worker(queues[i], states[i], args.batch, max_wait, args.mode, applied[i])
        )
        for i in range(n)
    ]
    for key in events:
        # put() only suspends when the queue is full: backpressure.
        await queues[hash(key) % n].put((key, 1))
    for q in queues:
        await q.put(STOP)
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - start
    total_applied = sum(a[0] for a in applied)
    total_value = sum(sum(s.values()) for s in states)
    if total_applied != args.events or total_value != args.events:
        print(
            f"error: applied {total_applied}, sum {total_value}, expected {args.events}",
            file=sys.stderr,
        )
        return 1
    print(
        json.dumps(
            {
                "events": args.events,
                "seconds": seconds,
                "events_per_s": args.events / seconds,
                "workers": args.workers,
                "batch": args.batch,
                "max_wait_ms": args.max_wait_ms,
                "mode": args.mode,
                "keys": args.keys,
                "dist": args.dist,
                "python": sys.version.split()[0],
            }
        )
    )
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--dist", choices=["uniform", "zipf"], default="uniform")
    p.add_argument("--zipf-s", type=float, default=0.99)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--batch", type=int, default=1000, help="most items per batch")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="batch deadline after its first item")
    p.add_argument("--queue-size", type=int, default=10_000, help="capacity of each worker's queue")
    p.add_argument("--mode", choices=["drain", "wait_for"], default="drain")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    if args.events < 1 or args.workers < 1 or args.batch < 1 or args.keys < 1:
        p.error("--events, --workers, --batch and --keys must be at least 1")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
