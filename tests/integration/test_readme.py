#!/usr/bin/env python3
"""The original README's requests, verbatim (only the port differs)."""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import (ORDER_ID_RE, STATUSES, check_all_completed,  # noqa: E402
                           check_metrics_consistent, check_order_shape)

# README "Create Order (cURL)": body exactly as written there.
CURL_BODY = '{"user_id": 99, "item_ids": [101, 102], "total_amount": 250.75}'
# README "Create an Order" request body, with its layout.
README_BODY = '''{
  "user_id": 1,
  "item_ids": [101, 102],
  "total_amount": 250.75
}'''


def check_created(r, what):
    assert r.status == 201, "%s: expected 201, got %s %r" % (what, r.status, r.raw)
    assert isinstance(r.body, dict), "%s: body %r" % (what, r.raw)
    assert r.body.get("message") == "Order received.", \
        "%s: message %r, expected 'Order received.'" % (what, r.body.get("message"))
    oid = r.body.get("order_id")
    assert isinstance(oid, str) and ORDER_ID_RE.match(oid), "%s: order_id %r" % (what, oid)
    assert set(r.body) >= {"message", "order_id"}, r.body
    loc = r.headers.get("location")
    assert loc, "%s: no Location header (%r)" % (what, r.headers)
    assert oid in loc or ORDER_ID_RE.match(oid).group(1) in loc, \
        "%s: Location %r does not name %s" % (what, loc, oid)
    return oid


def check_location(s, r):
    loc = r.headers["location"]
    path = loc.split("://", 1)[-1]
    if not path.startswith("/"):
        path = "/" + path.split("/", 1)[1]
    g = s.request("GET", path)
    assert g.status == 200 and g.body.get("order_id") == r.body["order_id"], \
        "GET Location %r: %s %r" % (loc, g.status, g.raw)


def check_metrics_body(m, where):
    for k in ("total_orders_processed", "average_processing_time",
              "average_processing_time_seconds", "total_orders", "order_status_count"):
        assert k in m, "%s: key %r missing in %r" % (where, k, m)
    assert isinstance(m["total_orders_processed"], int), m
    assert isinstance(m["total_orders"], int), m
    apt = m["average_processing_time"]
    assert isinstance(apt, str) and apt.endswith("s"), \
        "%s: average_processing_time %r is not a string ending in 's'" % (where, apt)
    float(apt[:-1])  # a number before the "s"
    assert isinstance(m["average_processing_time_seconds"], (int, float)) and \
        not isinstance(m["average_processing_time_seconds"], bool), m
    c = m["order_status_count"]
    for s in ("Pending", "Processing", "Completed", "Cancelled"):
        assert s in c and isinstance(c[s], int), "%s: order_status_count %r lacks %s" % (where, c, s)
    check_metrics_consistent(m)


def run_curl(args):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    p = subprocess.run(["curl", "--noproxy", "*", "-sS", "-w", "\n%{http_code}"] + args,
                       capture_output=True, timeout=30, env=env)
    assert p.returncode == 0, "curl %r failed: %s" % (args, p.stderr.decode())
    out = p.stdout.decode()
    body, _, code = out.rpartition("\n")
    return int(code), json.loads(body)


def main():
    with System("readme") as s:
        s.start_api()
        s.start_worker(pickup_ms=100, processing_ms=200, lease_ms=2000)
        ids = []

        # curl example: POST http://127.0.0.1:8000/orders/ (no /api)
        r = s.request("POST", "/orders/", CURL_BODY, {"Content-Type": "application/json"})
        ids.append(check_created(r, "POST /orders/ (README curl body)"))
        check_location(s, r)

        # "Create an Order": POST /api/orders/
        r = s.request("POST", "/api/orders/", README_BODY, {"Content-Type": "application/json"})
        ids.append(check_created(r, "POST /api/orders/ (README body)"))
        check_location(s, r)
        assert ids[0] != ids[1], ids

        # "Check Order Status": /api/orders/{order_id}/status/ with ORD form
        for oid in ids:
            r = s.request("GET", "/api/orders/%s/status/" % oid)
            assert r.status == 200, (r.status, r.raw)
            assert r.body.get("order_id") == oid, r.body
            assert r.body.get("status") in STATUSES, r.body

        # Postman: GET http://127.0.0.1:8000/orders/123/status/ (numeric id)
        for oid in ids:
            n = ORDER_ID_RE.match(oid).group(1)
            r = s.request("GET", "/orders/%s/status/" % n)
            assert r.status == 200, "GET /orders/%s/status/: %s %r" % (n, r.status, r.raw)
            assert r.body.get("order_id") == oid, r.body
            assert r.body.get("status") in STATUSES, r.body

        # Metrics, both forms
        for path in ("/orders/metrics/", "/api/orders/metrics/"):
            r = s.request("GET", path)
            assert r.status == 200, (path, r.status, r.raw)
            check_metrics_body(r.body, path)

        # The real curl binary, README command (port substituted)
        if shutil.which("curl"):
            url = "http://127.0.0.1:%d/orders/" % s.port
            code, body = run_curl(["-X", "POST", url, "-H", "Content-Type: application/json",
                                   "-d", CURL_BODY])
            assert code == 201, "curl POST: %s %r" % (code, body)
            assert body.get("message") == "Order received.", body
            assert ORDER_ID_RE.match(body.get("order_id", "")), body
            ids.append(body["order_id"])
            n = ORDER_ID_RE.match(body["order_id"]).group(1)
            code, body = run_curl(["http://127.0.0.1:%d/orders/%s/status/" % (s.port, n)])
            assert code == 200 and body.get("order_id") == ids[-1], (code, body)
            code, body = run_curl(["http://127.0.0.1:%d/orders/metrics/" % s.port])
            assert code == 200, (code, body)
            check_metrics_body(body, "curl metrics")
        else:
            print("note: curl not installed, skipping the curl binary check")

        m = check_all_completed(s, ids, timeout=30, expected_total=len(ids))
        check_metrics_body(m, "final metrics")
        assert m["total_orders_processed"] == len(ids), m
        # creation to completion: at least pickup (100 ms) + processing (200 ms)
        secs = m["average_processing_time_seconds"]
        assert 0.29 <= secs < 30, "average_processing_time_seconds %r (pickup 100 + processing 200 ms)" % secs
        assert abs(float(m["average_processing_time"][:-1]) - secs) <= 0.051, \
            "average_processing_time %r disagrees with %r" % (m["average_processing_time"], secs)
        for oid in ids:
            o = s.order(oid)
            check_order_shape(o, "order %s" % oid)
            assert o["total_amount"] == "250.75", o
            assert o["item_ids"] == [101, 102], o
        assert s.order(ids[0])["user_id"] == 99
        assert s.order(ids[1])["user_id"] == 1

        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
