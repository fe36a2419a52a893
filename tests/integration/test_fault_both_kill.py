#!/usr/bin/env python3
"""Both daemons SIGKILLed during a burst of POSTs from 8 threads (the API
and the whole worker tree), then restarted on the same data, queue and
port: the environment left by the kill is consistent (order-ctl check), every
acknowledged id completes exactly once, ids are never reused, and the
requests cut by the kill were either stored whole or not at all. Ends
with order-ctl check's self-test on a copy of the data."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run, wait_until  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import (Poster, finish, jepsen_check, metric, ctl_check,  # noqa: E402
                           check_self_test, require_order_ctl)

WORKER = dict(workers=2, pickup_ms=0, processing_ms=500, lease_ms=1000)
THREADS = 8


def main():
    require_order_ctl()
    with System("both-kill") as s:
        s.start_api()
        s.start_worker(**WORKER)
        # one order with an Idempotency-Key, so that idem is checked too
        key = {"Idempotency-Key": "both-kill-%d" % os.getpid()}
        body = {"user_id": 5, "item_ids": [1, 2], "total_amount": 3.5}
        r = s.request("POST", "/api/orders/", body, headers=key)
        if r.status != 201:
            fail("POST with an Idempotency-Key: %s %r" % (r.status, r.raw))
        keyed = r.body["order_id"]

        poster = Poster(s, threads=THREADS, interval=0.0, timeout=5).start()
        poster.wait_for(300, timeout=30)
        wait_until(lambda: s.metrics()["order_status_count"]["Processing"] > 0,
                   10, "orders to be Processing")
        s.kill_worker()
        s.kill_api()
        at_kill = poster.count()
        time.sleep(0.5)  # the burst hits a dead port for a while
        # the environment as the kill left it: consistent, nothing half-written
        r = ctl_check(s.datadir)
        print("killed both after %d acknowledged POSTs" % at_kill)

        s.start_api()
        s.start_worker(**WORKER)
        poster.wait_for(at_kill + 100, timeout=30)
        poster.stop()
        print("%d acknowledged, %d unknown outcome, %d refused"
              % (len(poster.acked), poster.uncertain, poster.refused))
        acked = [keyed] + poster.acked
        m = jepsen_check(s, acked, poster.uncertain, timeout=60)
        # the keyed order survived the crash: a retry still finds it
        r = s.request("POST", "/api/orders/", body, headers=key)
        if r.status not in (200, 201) or r.body.get("order_id") != keyed:
            fail("Idempotency-Key retry after the crash: %s %r, expected %s"
                 % (r.status, r.raw, keyed))
        m2 = s.metrics()
        if m2["total_orders"] != m["total_orders"]:
            fail("the retry created an order: %r -> %r" % (m, m2))
        print("%r, lease expiries %s" % (m["order_status_count"],
                                         metric(s, "lease_expiries_total")))
        finish(s, acked, total=None if poster.uncertain else len(acked))
        check_self_test(s.datadir, s.tmp)


if __name__ == "__main__":
    run(main)
