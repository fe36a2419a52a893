#!/usr/bin/env python3
"""1,000 orders from 16 concurrent keep-alive clients; every one completes,
ids are distinct and the metrics add up."""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import ORDER_ID_RE, check_all_completed, check_order_shape  # noqa: E402

N = 1000
THREADS = 16


def main():
    with System("load") as s:
        s.start_api()
        s.start_worker(workers=2, pickup_ms=0, processing_ms=0, lease_ms=1000)
        ids = []
        errors = []
        lock = threading.Lock()
        counter = iter(range(N))

        def client(t):
            c = Client(s.port)  # its own keep-alive connection
            try:
                while True:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    body = {"user_id": 1 + i % 50, "item_ids": [i + 1, 7], "total_amount": "%d.%02d" % (i, i % 100)}
                    r = c.request("POST", "/api/orders/" if i % 2 else "/orders/", body)
                    if r.status != 201 or not ORDER_ID_RE.match(str(r.body.get("order_id"))):
                        with lock:
                            errors.append((i, r.status, r.raw[:200]))
                        continue
                    with lock:
                        ids.append(r.body["order_id"])
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(("thread %d" % t, repr(e)))
            finally:
                c.close()

        threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "client threads hung"
        assert not errors, "%d requests failed, e.g. %r" % (len(errors), errors[:5])
        assert len(ids) == N, "%d ids for %d requests" % (len(ids), N)
        assert len(set(ids)) == N, "duplicate order ids: %d distinct of %d" % (len(set(ids)), N)

        m = check_all_completed(s, ids, timeout=60, expected_total=N)
        c = m["order_status_count"]
        assert c["Completed"] == N and m["total_orders_processed"] == N, m
        assert sum(c.values()) == m["total_orders"] == N, m
        # spot-check a few bodies
        for oid in ids[:: N // 10]:
            check_order_shape(s.order(oid), oid)
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
