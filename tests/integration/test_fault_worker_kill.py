#!/usr/bin/env python3
"""SIGKILL the worker master and its children while orders are Processing;
a restarted worker completes every order, each counted once."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

N = 200
WORKER = dict(workers=2, pickup_ms=0, processing_ms=1000, lease_ms=1500)


def main():
    with h.System("worker-kill") as s:
        s.start_api()
        s.start_worker(**WORKER)
        ids = [s.create_order(user_id=3, item_ids=[i + 1], total_amount=1) for i in range(N)]

        def processing():
            return s.metrics()["order_status_count"]["Processing"] > 0
        h.wait_until(processing, 15, "some orders to be Processing")
        kids = h.descendants_of(s.worker.pid)
        assert kids, "order-worker has no child processes"
        s.kill_worker()
        for p in kids:
            assert not h.pid_alive(p), "worker child %d survived SIGKILL" % p
        m = s.metrics()
        h.check_metrics_consistent(m)
        print("at kill: %r" % m["order_status_count"])
        assert m["total_orders"] == N, m
        stuck = m["order_status_count"]["Processing"]
        before_done = m["order_status_count"]["Completed"]

        time.sleep(0.5)
        s.start_worker(**WORKER)
        m = h.check_all_completed(s, ids, timeout=60, expected_total=N)
        assert m["order_status_count"]["Completed"] == N == m["total_orders_processed"], m
        print("recovered %d orders left Processing by the killed worker (%d were done)"
              % (stuck, before_done))
        for oid in ids[:10]:
            h.check_order_shape(s.order(oid), oid)
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    h.run(main)
