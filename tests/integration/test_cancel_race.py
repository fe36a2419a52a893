#!/usr/bin/env python3
"""Cancel racing the worker's claim: 300 orders with pickup 0 and a thread
pool cancelling every one of them at once.  Each cancel is a 200 (and the
order ends Cancelled, never processed) or a 409 (and the order ends
Completed); the counters balance."""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import check_all_completed  # noqa: E402

N = 300
THREADS = 8


def main():
    with System("cancel-race") as s:
        s.start_api()
        s.start_worker(workers=2, pickup_ms=0, processing_ms=50, lease_ms=1000)
        lock = threading.Lock()
        outcome = {}
        errors = []
        work = iter(range(N))

        def client():
            c = Client(s.port)
            try:
                while True:
                    with lock:
                        i = next(work, None)
                    if i is None:
                        return
                    r = c.request("POST", "/orders/", {"user_id": 5, "item_ids": [i + 1],
                                                       "total_amount": 1})
                    if r.status != 201:
                        errors.append(("create", r.status, r.raw[:100]))
                        continue
                    oid = r.body["order_id"]
                    r = c.request("POST", "/orders/%s/cancel/" % oid)
                    if r.status == 200:
                        if r.body.get("status") != "Cancelled":
                            errors.append(("cancel 200 but", r.body))
                    elif r.status != 409:
                        errors.append(("cancel", r.status, r.raw[:100]))
                    with lock:
                        outcome[oid] = r.status
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
            finally:
                c.close()

        threads = [threading.Thread(target=client) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:5]
        assert len(outcome) == N, len(outcome)
        won = [o for o, st in outcome.items() if st == 200]
        lost = [o for o, st in outcome.items() if st == 409]
        print("%d cancels won, %d lost to the worker" % (len(won), len(lost)))

        m = check_all_completed(s, lost, timeout=60, expected_total=N)
        for oid in won:
            o = s.order(oid)
            assert o["status"] == "Cancelled" and o["completed_at"] is None, \
                "cancel of %s answered 200 but the order is %r" % (oid, o)
        c = m["order_status_count"]
        assert c["Cancelled"] == len(won), "Cancelled count %d, %d cancels won: %r" % (
            c["Cancelled"], len(won), m)
        assert c["Completed"] == len(lost) == m["total_orders_processed"], m
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
