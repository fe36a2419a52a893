#!/usr/bin/env python3
"""SIGKILL the worker master and its children while orders are Processing;
a restarted worker completes every order, each counted once."""

import http.client
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import TestFailure, run, wait_until  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import (check_all_completed, check_metrics_consistent,  # noqa: E402
                           check_order_shape)

N = 200
WORKER = dict(workers=2, pickup_ms=0, processing_ms=1000, lease_ms=1500)


def main():
    with System("worker-kill") as s:
        s.start_api()
        s.start_worker(**WORKER)
        ids = [s.create_order(user_id=3, item_ids=[i + 1], total_amount=1) for i in range(N)]

        def processing():
            return s.metrics()["order_status_count"]["Processing"] > 0
        wait_until(processing, 15, "some orders to be Processing")
        kids = procs.descendants(s.worker.pid)
        assert kids, "order-worker has no child processes"
        s.kill_worker()
        for p in kids:
            assert not procs.alive(p), "worker child %d survived SIGKILL" % p
        m = s.metrics()
        check_metrics_consistent(m)
        print("at kill: %r" % m["order_status_count"])
        assert m["total_orders"] == N, m
        stuck = m["order_status_count"]["Processing"]
        before_done = m["order_status_count"]["Completed"]

        time.sleep(0.5)
        s.start_worker(**WORKER)
        m = check_all_completed(s, ids, timeout=60, expected_total=N)
        assert m["order_status_count"]["Completed"] == N == m["total_orders_processed"], m
        print("recovered %d orders left Processing by the killed worker (%d were done)"
              % (stuck, before_done))
        for oid in ids[:10]:
            check_order_shape(s.order(oid), oid)

        # SIGKILL one worker child while it holds orders: the master starts a
        # new child, the orders complete after the lease, counted once.
        ids2 = [s.create_order(user_id=4, item_ids=[i + 1], total_amount=2) for i in range(50)]
        wait_until(processing, 15, "some orders to be Processing")
        kids = procs.children(s.worker.pid)
        assert len(kids) == WORKER["workers"], "expected %d children, found %r" % (
            WORKER["workers"], kids)
        os.kill(kids[0], signal.SIGKILL)
        wait_until(lambda: not procs.alive(kids[0]), 5, "the killed child to die")

        def replaced():
            now = procs.children(s.worker.pid)
            s.worker_kids.update(now)
            return len(now) == WORKER["workers"] and kids[0] not in now
        wait_until(replaced, 15, "order-worker to replace the killed child")
        m = check_all_completed(s, ids + ids2, timeout=60, expected_total=N + 50)
        assert m["order_status_count"]["Completed"] == N + 50 == m["total_orders_processed"], m

        # SIGSTOP a child holding orders past its lease, then SIGCONT: the
        # other child takes the orders over, and the late finish of the
        # stopped one is a no-op (each order counted once).
        ids_s = [s.create_order(user_id=6, item_ids=[i + 1], total_amount=4) for i in range(50)]
        wait_until(processing, 15, "some orders to be Processing")
        kids = procs.children(s.worker.pid)
        unacked = 0  # POSTs that timed out behind the stopped child's write lock
        for attempt in range(5):
            time.sleep(0.3)  # let the claim transactions end
            os.kill(kids[0], signal.SIGSTOP)
            # A process stopped inside an LMDB write transaction blocks every
            # writer (LMDB's one writer lock): that is not what this tests,
            # so make sure writes still go through, else resume and retry.
            try:
                c = Client(s.port, timeout=3)
                r = c.request("POST", "/orders/", {"user_id": 6, "item_ids": [1],
                                                   "total_amount": 4}, retry=False)
                c.close()
                assert r.status == 201, r
                ids_s.append(r.body["order_id"])
                break
            except (OSError, http.client.HTTPException):
                print("note: stopped a worker child inside a write transaction; retrying")
                unacked += 1
                os.kill(kids[0], signal.SIGCONT)
        else:
            raise AssertionError("could not SIGSTOP a worker child outside a write transaction")
        try:
            m = check_all_completed(s, ids + ids2 + ids_s, timeout=30)
        finally:
            os.kill(kids[0], signal.SIGCONT)
        time.sleep(WORKER["processing_ms"] / 1000 + 1.0)  # the resumed child's late finishes
        m = s.metrics()
        check_metrics_consistent(m)
        total = N + 50 + len(ids_s) + unacked
        assert m["total_orders"] == total, (total, m)
        assert m["order_status_count"]["Completed"] == total == m["total_orders_processed"], \
            "after SIGCONT of a child whose leases expired: %r" % m
        assert sorted(procs.children(s.worker.pid)) == sorted(kids), \
            "the worker children changed across SIGSTOP/SIGCONT"
        ids2 += ids_s

        # SIGKILL the master alone: its children must not live on as
        # orphans: each child asks for SIGTERM when its parent dies
        # (PR_SET_PDEATHSIG).
        ids3 = [s.create_order(user_id=5, item_ids=[i + 1], total_amount=3) for i in range(50)]
        wait_until(processing, 15, "some orders to be Processing")
        kids = procs.children(s.worker.pid)
        s.worker_kids.update(kids)
        os.kill(s.worker.pid, signal.SIGKILL)
        s.worker.proc.wait(10)
        orphans = []
        try:
            wait_until(lambda: not any(procs.alive(p) for p in kids), 5,
                       "worker children to exit after their master was SIGKILLed")
        except TestFailure:
            orphans = [p for p in kids if procs.alive(p)]
            for p in orphans:
                if procs.is_daemon_process(p):
                    os.kill(p, signal.SIGKILL)
        s.start_worker(**WORKER)
        m = check_all_completed(s, ids + ids2 + ids3, timeout=60, expected_total=N + 50 + len(ids2) + unacked)
        assert m["order_status_count"]["Completed"] == N + 50 + len(ids2) + unacked == m["total_orders_processed"], m
        s.stop_worker()
        s.stop_api()
        assert not orphans, ("worker children %r kept running for 5 s after their master "
                             "was SIGKILLed (no parent-death signal)" % orphans)


if __name__ == "__main__":
    run(main)
