#!/usr/bin/env python3
"""SIGSTOP of a worker child for longer than its lease: with --lease-ms
1500, --processing-ms 1000 and two workers, one child is stopped while it
holds Processing orders, for 4 s. Its orders complete via the other child
(lease expiries); after SIGCONT its late finishes are no-ops, so nothing is
counted twice: completed_total == the number of orders, and order-ctl check's
recount agrees."""

import http.client
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import fail, run, wait_until  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import finish, jepsen_check, metric, require_order_ctl  # noqa: E402
from optest.orders import check_all_completed  # noqa: E402

WORKER = dict(workers=2, pickup_ms=0, processing_ms=1000, lease_ms=1500)
STOP_S = 4.0


def processing(s):
    return s.metrics()["order_status_count"]["Processing"]


def main():
    require_order_ctl()
    with System("sigstop") as s:
        s.start_api()
        s.start_worker(**WORKER)
        kids = sorted(procs.children(s.worker.pid))
        assert len(kids) == 2, "expected 2 worker children, found %r" % kids
        acked = []
        uncertain = 0
        stopped = None
        for attempt in range(6):
            victim = kids[attempt % 2]
            expiries0 = metric(s, "lease_expiries_total") or 0
            # a burst of orders, claimed at once (pickup 0) by both children:
            # each is read back, which commits it to LMDB at once and sends
            # its id as a message of its own (else the burst would reach
            # the queue as one message, taken by one child)
            batch = []
            for i in range(40):
                batch.append(s.create_order(user_id=11, item_ids=[i + 1], total_amount=2))
                s.status(batch[-1])
            acked += batch
            wait_until(lambda: processing(s) > 0, 10, "orders to be Processing")
            time.sleep(0.3)  # let the claim transactions end
            t_stop = time.monotonic()
            os.kill(victim, signal.SIGSTOP)
            # A child stopped inside a write transaction would hold LMDB's
            # writer lock (another fault, test_fault_lock_holder): make sure
            # writes go through, else resume it and try again.
            c = Client(s.port, timeout=3)
            try:
                r = c.request("POST", "/api/orders/", {"user_id": 11, "item_ids": [1],
                                                       "total_amount": 2}, retry=False)
                if r.status != 201:
                    fail("POST with a child stopped: %s %r" % (r.status, r.raw))
                acked.append(r.body["order_id"])
            except (OSError, http.client.HTTPException):
                uncertain += 1
                os.kill(victim, signal.SIGCONT)
                print("note: stopped a child inside a write transaction; again")
                continue
            finally:
                c.close()
            # The other child finishes its own claims 1000 ms after claiming
            # them; whatever is still Processing then is the stopped one's.
            time.sleep(max(0.0, 1.4 - (time.monotonic() - t_stop)))
            held = processing(s)
            if held > 0:
                stopped = victim
                break
            os.kill(victim, signal.SIGCONT)
            print("note: the stopped child held no order; again")
            check_all_completed(s, acked, timeout=30)
        if stopped is None:
            fail("could not stop a worker child while it held Processing orders")
        print("stopped child %d holding %d Processing orders" % (stopped, held))
        try:
            # its orders complete elsewhere while it stays stopped
            check_all_completed(s, acked, timeout=STOP_S + 10)
            waited = time.monotonic() - t_stop
            if waited < STOP_S:
                time.sleep(STOP_S - waited)
            if not procs.alive(stopped):
                fail("the stopped child %d is gone" % stopped)
            expiries = metric(s, "lease_expiries_total") or 0
        finally:
            os.kill(stopped, signal.SIGCONT)
        if expiries - expiries0 < 1:
            fail("lease_expiries_total %r -> %r: the stopped child's orders were "
                 "not taken over after their lease" % (expiries0, expiries))
        # the resumed child's late finishes (due 1000 ms after its claims)
        time.sleep(WORKER["processing_ms"] / 1000 + 1.5)
        m = jepsen_check(s, acked, uncertain, timeout=30)
        if sorted(procs.children(s.worker.pid)) != kids:
            fail("the worker children changed across SIGSTOP/SIGCONT: %r -> %r"
                 % (kids, procs.children(s.worker.pid)))
        print("after SIGCONT: %r, lease expiries %d -> %d"
              % (m["order_status_count"], expiries0, expiries))
        total = m["total_orders"]
        r = finish(s, acked, total=total)
        if "lease expiries 0," in r.stdout:
            fail("order-ctl check shows no lease expiry: %s" % r.stdout)


if __name__ == "__main__":
    run(main)
