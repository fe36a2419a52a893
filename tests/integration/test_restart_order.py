#!/usr/bin/env python3
"""Start order: worker first then API, then API first then worker, with
clean SIGTERM stops (exit 0) in between; a worker stopped with SIGTERM while
orders are Processing leaves none Processing, and a restart completes them."""

import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run, wait_until  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import (check_all_completed, check_metrics_consistent,  # noqa: E402
                           check_order_shape)


def main():
    with System("restart") as s:
        # 1. worker first, then the API
        s.start_worker(workers=2, pickup_ms=500, processing_ms=200, lease_ms=2000)
        s.start_api()
        s.wait_ready()
        ids = [s.create_order(user_id=21, item_ids=[i + 1]) for i in range(20)]
        # stop both while (most) orders are still Pending; SIGINT works as SIGTERM
        s.stop_api(sig=signal.SIGINT)
        s.stop_worker(sig=signal.SIGINT)

        # 2. API first, then the worker
        s.start_api()
        m = s.metrics()
        check_metrics_consistent(m)
        assert m["total_orders"] == 20, m
        assert m["order_status_count"]["Processing"] == 0, \
            "orders left Processing after a clean stop: %r" % m
        for oid in ids:
            assert s.status(oid) in ("Pending", "Completed"), (oid, s.status(oid))
        s.start_worker(workers=2, pickup_ms=100, processing_ms=200, lease_ms=2000)
        check_all_completed(s, ids, timeout=30, expected_total=20)

        # 3. SIGTERM the worker while orders are Processing: processing 2000 ms
        # (about the worker's stop grace period), then 8000 ms (well past it,
        # so the worker must hand its orders back to Pending).
        s.stop_worker()
        more = []
        for processing_ms, user in ((2000, 22), (8000, 23)):
            s.start_worker(workers=2, pickup_ms=0, processing_ms=processing_ms,
                           lease_ms=processing_ms * 3)
            batch = [s.create_order(user_id=user, item_ids=[i + 1]) for i in range(10)]
            more += batch
            wait_until(lambda: s.metrics()["order_status_count"]["Processing"] > 0, 10,
                       "orders to be Processing")
            s.stop_worker()
            m = s.metrics()
            check_metrics_consistent(m)
            print("after SIGTERM while Processing (processing %d ms): %r"
                  % (processing_ms, m["order_status_count"]))
            assert m["order_status_count"]["Processing"] == 0, \
                "orders left Processing after a clean worker stop: %r" % m
            sts = []
            for oid in batch:
                st = s.status(oid)
                sts.append(st)
                assert st in ("Pending", "Completed"), "%s is %s after the worker stopped" % (oid, st)
                o = s.order(oid)
                check_order_shape(o, oid)
            if processing_ms == 8000:
                assert "Pending" in sts, \
                    "processing 8000 ms, yet every order Completed within the stop: %r" % sts
        s.start_worker(workers=2, pickup_ms=0, processing_ms=200, lease_ms=2000)
        m = check_all_completed(s, ids + more, timeout=30, expected_total=40)
        assert m["order_status_count"]["Completed"] == 40 == m["total_orders_processed"], m
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
