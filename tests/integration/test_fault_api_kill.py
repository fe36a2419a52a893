#!/usr/bin/env python3
"""SIGKILL, then SIGTERM, order-api during a burst of POSTs from 8 threads.
Every order that got a 201 exists after a restart and reaches Completed; no
duplicate ids; the metrics add up; SIGTERM exits 0 and answers only 201 or
503 while draining."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import check_all_completed, check_metrics_consistent  # noqa: E402

THREADS = 8
# processing kept short so that a burst of a few thousand orders drains fast
WORKER = dict(workers=2, pickup_ms=0, processing_ms=20, lease_ms=2000)


def burst(s, stop_how):
    """8 threads POST until the API goes away; stop_how(s) is called after
    about 1 s.  Returns the acknowledged ids and the non-201 answers."""
    acked = []
    bad = []
    conn_errors = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client(t):
        c = Client(s.port)
        i = 0
        while not stop.is_set():
            i += 1
            body = {"user_id": 100 + t, "item_ids": [i], "total_amount": "1.25"}
            try:
                r = c.request("POST", "/api/orders/", body, retry=False, check=False)
            except Exception:  # noqa: BLE001 - the API is going away
                with lock:
                    conn_errors[0] += 1
                c.close()
                time.sleep(0.01)
                continue
            with lock:
                if r.status == 201:
                    acked.append(r.body["order_id"])
                else:
                    bad.append((r.status, r.raw[:200]))
        c.close()

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    stop_how(s)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    assert acked, "no order was acknowledged within 1 s"
    assert len(set(acked)) == len(acked), "the API gave out duplicate ids"
    print("%d orders acknowledged, %d non-201 answers, %d failed connections"
          % (len(acked), len(bad), conn_errors[0]))
    return acked, bad


def main():
    with System("api-kill") as s:
        s.start_api()
        s.start_worker(**WORKER)

        # 1. SIGKILL during the burst
        acked, bad = burst(s, lambda s_: s_.kill_api())
        assert not bad, "non-201 answers before the kill: %r" % bad[:5]
        s.start_api()  # same port, data dir and queue
        m = s.metrics()
        check_metrics_consistent(m)
        assert m["total_orders"] >= len(acked), \
            "total_orders %d < %d acknowledged" % (m["total_orders"], len(acked))
        # new orders still work and get fresh ids
        more = [s.create_order(user_id=99) for _ in range(5)]
        assert not set(more) & set(acked), "ids reused after restart: %r" % (set(more) & set(acked))
        all_ids = acked + more
        m = check_all_completed(s, all_ids, timeout=max(60, len(acked) / 50))
        assert m["total_orders"] >= len(all_ids), m

        # 2. SIGTERM during the burst: exit 0, every acknowledged order kept;
        # while draining the API may refuse with 503 but never half-answers.
        acked2, bad2 = burst(s, lambda s_: s_.stop_api())
        odd = [b for b in bad2 if b[0] != 503]
        assert not odd, "answers other than 201/503 around SIGTERM: %r" % odd[:5]
        s.start_api()
        assert not set(acked2) & set(all_ids), "ids reused after a clean restart"
        all_ids += acked2
        m = check_all_completed(s, all_ids, timeout=max(60, len(all_ids) / 50))
        assert m["total_orders"] >= len(all_ids), m
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
