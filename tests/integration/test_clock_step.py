#!/usr/bin/env python3
"""A step of a worker's wall clock does not stop its heartbeats.

A worker child writes its heartbeat (the time) to LMDB every 2 s, and
order-api's /readyz and /metrics read its age. The interval, like the
sweep's on the same schedule, is timed on the monotonic clock: timed on
the wall clock, a step back by H (an NTP step, a VM restored) would stop
the heartbeats and the sweeps for H, and /readyz would say that no worker
runs.

The worker runs under the clock shim (tests/check/clockshim.c); order-api
does not. Once a heartbeat is seen, the test steps the worker's wall clock
back 60 s. The heartbeats it writes from then on are 60 s old by
order-api's clock, but they must go on every 2 s: in the next 8 s the age
order-api reports must jump to about 60 s (the shim took effect) and fall
back at least twice (new heartbeats). A worker whose heartbeats wait on
the wall clock writes none for a minute: the age only grows.
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import expect, run, wait_until  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import ClockShim, metric  # noqa: E402

HEARTBEAT = 2.0         # the worker's heartbeat interval
STEP = -60.0            # the step of the worker's wall clock, back
WATCH = 4 * HEARTBEAT   # how long the test watches the heartbeat's age


def age(s):
    """The worker heartbeat's age order-api reports (NaN: none yet)."""
    a = metric(s, "worker_heartbeat_age_seconds")
    return a if a is not None else math.nan


def main():
    with System("clock_step") as s:
        clock = ClockShim(s)
        s.start_api()
        s.start_worker(workers=1, env=clock.env())
        wait_until(lambda: age(s) < HEARTBEAT + 1, 10, "a worker heartbeat")

        clock.step(STEP)
        ages, falls = [], 0
        end = time.monotonic() + WATCH
        while time.monotonic() < end:
            a = age(s)
            if ages and a < ages[-1] - 0.5:
                falls += 1
            ages.append(a)
            time.sleep(0.1)
        oldest = max(ages)
        print("worker wall clock stepped %+.0f s: heartbeat age up to %.1f "
              "s, %d new heartbeats after the first in %.0f s"
              % (STEP, oldest, falls, WATCH))
        expect(falls >= 2, "the worker wrote %d heartbeats in %.0f s after "
               "its wall clock stepped %+.0f s (one every %.0f s expected): "
               "its heartbeats wait on the wall clock? ages %s"
               % (falls, WATCH, STEP, HEARTBEAT,
                  " ".join("%.1f" % a for a in ages[::10])))
        expect(oldest > -STEP - 5, "the heartbeat's age never reached %.0f s "
               "(up to %.1f s): the clock shim did not step the worker's "
               "wall clock" % (-STEP, oldest))
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
