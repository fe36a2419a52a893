#!/usr/bin/env python3
"""The worker restarted in a loop while orders flow: a client thread POSTs
continuously while order-worker is stopped with SIGTERM and started again
10 times and SIGKILLed (master and children) 5 times. Every acknowledged
order reaches Completed exactly once; order-ctl check agrees with a recount."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import (Poster, finish, jepsen_check, metric, ctl_check,  # noqa: E402
                           require_order_ctl)

# processing longer than the stop grace (2 s): a SIGTERM hands orders back
WORKER = dict(workers=2, pickup_ms=0, processing_ms=2500, lease_ms=3000)
# the order of the 15 restarts: T = SIGTERM and start, K = SIGKILL and start
PLAN = "TTKTTKTTKTTKTTK"


def main():
    require_order_ctl()
    with System("worker-loop") as s:
        s.start_api()
        s.start_worker(**WORKER)
        poster = Poster(s, threads=1, interval=0.01).start()
        poster.wait_for(20)
        stopped = killed = 0
        for i, how in enumerate(PLAN):
            time.sleep(0.6)
            before = poster.count()
            if how == "T":
                s.stop_worker()  # exit 0, children gone, within 15 s
                stopped += 1
            else:
                s.kill_worker()
                killed += 1
            # orders keep being accepted while no worker runs
            time.sleep(0.2)
            s.start_worker(**WORKER)
            if poster.count() <= before:
                fail("no POST was acknowledged around restart %d" % (i + 1))
        time.sleep(0.5)
        poster.stop()
        assert stopped == 10 and killed == 5
        print("%d orders acknowledged across %d SIGTERM and %d SIGKILL restarts"
              % (len(poster.acked), stopped, killed))
        if poster.uncertain or poster.refused:
            fail("the API (never restarted) left %d POSTs unanswered and "
                 "refused %d" % (poster.uncertain, poster.refused))
        # a live snapshot is consistent too (one transaction per change)
        ctl_check(s.datadir)
        m = jepsen_check(s, poster.acked, timeout=60)
        released = metric(s, "released_total")
        print("metrics: %r, released %s, lease expiries %s"
              % (m["order_status_count"], released,
                 metric(s, "lease_expiries_total")))
        if not released:
            fail("no SIGTERM handed an order back (released_total %r)" % released)
        finish(s, poster.acked, total=len(poster.acked))


if __name__ == "__main__":
    run(main)
