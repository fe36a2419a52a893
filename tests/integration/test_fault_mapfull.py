#!/usr/bin/env python3
"""A tiny LMDB map (--map-size 1M) filled with Pending orders while no worker
runs: the API answers 503 JSON when storage is full, nothing half-written,
/readyz is 503 saying that the last commit failed (map full), reads keep
working; a worker started afterwards still completes every
acknowledged order (claims and completions need fresh pages too); the API
restarted with a larger map accepts orders again and is ready."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import TestFailure, run  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import (check_all_completed, check_metrics_consistent,  # noqa: E402
                           check_order_shape)

CAP = 30000


def main():
    with System("mapfull") as s:
        s.start_api(extra=["--map-size", "1M"])
        acked = []
        refusal = None
        for i in range(CAP):
            r = s.request("POST", "/api/orders/",
                          {"user_id": 1 + i % 13, "item_ids": [i + 1, 2, 3], "total_amount": "9.99"})
            if r.status == 201:
                acked.append(r.body["order_id"])
                continue
            refusal = r
            break
        assert refusal is not None, "%d orders fit in a 1M map?" % CAP
        assert refusal.status == 503, "map full: expected 503, got %s %r" % (refusal.status, refusal.raw)
        assert isinstance(refusal.body, dict) and isinstance(refusal.body.get("detail"), str), \
            refusal.raw
        print("%d orders stored before the 1M map filled up" % len(acked))
        assert len(acked) >= 100, "only %d orders fit" % len(acked)
        # still refusing, still a clean 503
        r = s.request("POST", "/orders/", {"user_id": 1, "item_ids": [1], "total_amount": 1})
        assert r.status == 503, (r.status, r.raw)
        # /readyz says why, before anything else it finds wanting
        r = s.request("GET", "/readyz", check=False)
        assert r.status == 503 and r.body.get("detail") == \
            "the last commit failed: the LMDB map is full (raise --map-size and restart)", \
            (r.status, r.raw)

        # reads work, counts are exact: nothing half-written
        assert s.request("GET", "/healthz").status == 200
        m = s.metrics()
        check_metrics_consistent(m)
        assert m["total_orders"] == len(acked), \
            "total_orders %d, but %d orders were acknowledged" % (m["total_orders"], len(acked))
        assert m["order_status_count"]["Pending"] == len(acked), m
        for oid in (acked[0], acked[len(acked) // 2], acked[-1]):
            check_order_shape(s.order(oid), oid)
        r = s.request("GET", "/orders/?limit=1000")
        assert r.status == 200 and len(r.body["results"]) == 1000, (r.status, r.raw[:200])
        # a cancel is a write too: it either works or is a clean 503
        r = s.request("POST", "/orders/%s/cancel/" % acked[-1])
        assert r.status in (200, 503), (r.status, r.raw)
        cancelled = r.status == 200
        rest = acked[:-1] if cancelled else acked

        # the worker must still be able to claim and complete them all
        # (new orders are refused at a high-water mark of the map so that
        # claims and completions still find pages)
        s.start_worker(workers=2, pickup_ms=0, processing_ms=0, lease_ms=1000,
                       extra=["--map-size", "1M"])
        stuck = None
        try:
            m = check_all_completed(s, rest, timeout=40)
            assert m["total_orders"] == len(acked), m
        except TestFailure as e:
            stuck = str(e)
            print("the worker could not finish the orders of a full map: %s" % stuck)

        # restart the API with a bigger map: orders are accepted again, and
        # the running worker (opened with 1M) copes with the grown map
        # (MDB_MAP_RESIZED), or, if it was stuck, a worker restarted with the
        # bigger map finishes everything.
        s.stop_api()
        s.start_api(extra=["--map-size", "16M"])
        if stuck:
            s.stop_worker()
            s.start_worker(workers=2, pickup_ms=0, processing_ms=0, lease_ms=1000,
                           extra=["--map-size", "16M"])
        more = [s.create_order(user_id=77) for _ in range(200)]
        r = s.request("GET", "/readyz", check=False)
        assert r.status == 200, (r.status, r.raw)
        m = check_all_completed(s, rest + more, timeout=60)
        assert m["total_orders"] == len(acked) + len(more), m
        s.stop_worker()
        s.stop_api()
        assert not stuck, ("with the map full of Pending orders a worker (same --map-size) "
                           "never completes them: %s" % stuck)


if __name__ == "__main__":
    run(main)
