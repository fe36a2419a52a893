#!/usr/bin/env python3
"""A worker child stopped inside an LMDB write transaction holds LMDB's one
writer lock; SIGKILL it there: the next writer proceeds (robust mutex), the
master starts a new child, every acknowledged order completes, counts add up.

The child is SIGSTOPped at random moments under load until a POST stalls
(that is the moment it held the lock); if that never happens the test only
checks the load run."""

import http.client
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import run, wait_until  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import check_all_completed  # noqa: E402

BODY = {"user_id": 1, "item_ids": [1], "total_amount": 1}


def main():
    with System("lock-holder") as s:
        s.start_api()
        s.start_worker(workers=2, pickup_ms=0, processing_ms=0, lease_ms=1000)
        stop = threading.Event()
        acked = []
        errors = []

        def load():
            c = Client(s.port, timeout=30)
            while not stop.is_set():
                try:
                    r = c.request("POST", "/orders/", BODY, retry=False)
                    if r.status == 201:
                        acked.append(r.body["order_id"])
                    else:
                        errors.append((r.status, r.raw[:100]))
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
                    c.close()
            c.close()

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            kids = procs.children(s.worker.pid)
            victim = kids[0]
            hit = False
            for attempt in range(300):
                os.kill(victim, signal.SIGSTOP)
                try:
                    c = Client(s.port, timeout=1.5)
                    c.request("POST", "/orders/", BODY, retry=False)
                    c.close()
                except (OSError, http.client.HTTPException):
                    hit = True
                    print("attempt %d: the stopped child held the write lock" % attempt)
                    break
                os.kill(victim, signal.SIGCONT)
                time.sleep(0.005 * (attempt % 7))
            if hit:
                os.kill(victim, signal.SIGKILL)
                t0 = time.monotonic()
                c = Client(s.port, timeout=20)
                r = c.request("POST", "/orders/", BODY, retry=False)
                c.close()
                assert r.status == 201, r
                acked.append(r.body["order_id"])
                print("writes resumed %.2f s after the lock holder was killed"
                      % (time.monotonic() - t0))

                def replaced():
                    now = procs.children(s.worker.pid)
                    s.worker_kids.update(now)
                    return len(now) == 2 and victim not in now
                wait_until(replaced, 10, "order-worker to replace the killed child")
            else:
                os.kill(victim, signal.SIGCONT)
                print("note: never caught the child inside a write transaction")
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        assert not errors, errors[:5]
        m = check_all_completed(s, acked, timeout=60)
        assert m["total_orders"] >= len(acked), m
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
