#!/usr/bin/env python3
"""No worker running: 500 orders, far more than the 10-message queue holds
when sent one by one.  A worker started afterwards completes all of them.
Then the queue is unlinked under both daemons: new orders still complete."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run  # noqa: E402
from optest.daemons import System, unlink_queue  # noqa: E402
from optest.orders import check_all_completed, check_metrics_consistent  # noqa: E402

N = 500


def main():
    with System("backlog") as s:
        s.start_api()
        ids = [s.create_order(user_id=1 + i % 7, item_ids=[i + 1], total_amount=i)
               for i in range(N)]
        assert len(set(ids)) == N, "duplicate ids"
        m = s.metrics()
        check_metrics_consistent(m)
        assert m["total_orders"] == N and m["order_status_count"]["Pending"] == N, \
            "without a worker all %d orders should be Pending: %r" % (N, m)
        r = s.request("GET", "/readyz")
        assert r.status == 503, "readyz %s with no worker ever started" % r.status
        s.start_worker(workers=2, pickup_ms=0, processing_ms=0, lease_ms=1000)
        m = check_all_completed(s, ids, timeout=60, expected_total=N)
        assert m["order_status_count"]["Completed"] == N == m["total_orders_processed"], m
        s.wait_ready()

        # The queue is only a doorbell: unlink it under both daemons; new
        # orders still complete (the worker's sweep finds them in LMDB).
        unlink_queue(s.queue)
        more = [s.create_order(user_id=8, item_ids=[i + 1]) for i in range(50)]
        m = check_all_completed(s, ids + more, timeout=60, expected_total=N + 50)
        assert m["order_status_count"]["Completed"] == N + 50 == m["total_orders_processed"], m
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
