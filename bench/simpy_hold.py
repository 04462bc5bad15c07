# The hold model on SimPy, the baseline of bench/scheduler.ts: N processes each
# loop `yield env.timeout(d)` with d exponential (mean 1000, rounded to an
# integer, as latsim's nanoseconds), so N events are always pending and every
# event fired schedules one more. After a warm-up, each repetition runs a
# span of simulated time holding about --events events; the best repetition
# gives events/s. Prints one JSON object.
#
# Leaves out: anything but the event loop (no resources, no interrupts).
# SimPy is Debian's python3-simpy3, installed for /usr/bin/python3.
#
# usage: simpy_hold.py --pending 10,1000,100000 --events N --reps R --seed S

import argparse
import json
import platform
import random
import sys
import time

try:
    import simpy
except ImportError:
    print('simpy is not installed for %s: apt-get install python3-simpy3' % sys.executable, file=sys.stderr)
    sys.exit(3)

MEAN = 1000.0


def holder(env, draw, count):
    timeout = env.timeout
    while True:
        yield timeout(round(draw()))
        count[0] += 1


def measure(pending, events, reps, seed):
    env = simpy.Environment()
    rng = random.Random(seed)
    lambd = 1.0 / MEAN

    def draw():
        return rng.expovariate(lambd)

    count = [0]
    for _ in range(pending):
        env.process(holder(env, draw, count))
    span = events * MEAN / pending
    # Warm-up: every process has started and the heap is in its steady state.
    env.run(until=env.now + max(span / 2, 4 * MEAN))
    best = None
    for _ in range(reps):
        before = count[0]
        t0 = time.perf_counter()
        env.run(until=env.now + span)
        seconds = time.perf_counter() - t0
        n = count[0] - before
        rate = n / seconds
        if best is None or rate > best['events_per_s']:
            best = {'events': n, 'seconds': seconds, 'events_per_s': rate}
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pending', default='10,1000,100000')
    ap.add_argument('--events', type=int, default=300000)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    results = {}
    for n in (int(x) for x in a.pending.split(',')):
        results[str(n)] = measure(n, a.events, a.reps, a.seed)
    print(json.dumps({
        'simpy': simpy.__version__,
        'python': '%s %s' % (platform.python_implementation(), platform.python_version()),
        'executable': sys.executable,
        'results': results,
    }))


main()
