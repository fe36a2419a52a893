"""Checks about the API's data rather than plumbing.

s is anything with request(method, path, body) -> optest.client.Response
(an optest.daemons.System): create_order(), status(), order(), metrics()
(each failing the test on a wrong answer); check_order_shape(),
check_metrics_consistent(), check_all_completed().
"""

import re
import time

from optest.checks import fail, wait_until

STATUSES = ("Pending", "Processing", "Completed", "Cancelled")
STATUS_RANK = {s: i for i, s in enumerate(("Pending", "Processing", "Completed"))}
ORDER_ID_RE = re.compile(r"^ORD([0-9]+)$")
TIMESTAMP_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")


def create_order(s, user_id=1, item_ids=(101, 102), total_amount=250.75,
                 path="/api/orders/"):
    r = s.request("POST", path, {"user_id": user_id, "item_ids": list(item_ids),
                                 "total_amount": total_amount})
    if r.status != 201:
        fail("POST %s: expected 201, got %s %r" % (path, r.status, r.raw))
    oid = r.body.get("order_id") if isinstance(r.body, dict) else None
    if not isinstance(oid, str) or not ORDER_ID_RE.match(oid):
        fail("POST %s: bad order_id in %r" % (path, r.raw))
    return oid


def status(s, oid):
    r = s.request("GET", "/api/orders/%s/status/" % oid)
    if r.status != 200:
        fail("GET status of %s: %s %r" % (oid, r.status, r.raw))
    if r.body.get("order_id") != oid:
        fail("GET status of %s: order_id %r" % (oid, r.body.get("order_id")))
    if r.body.get("status") not in STATUSES:
        fail("GET status of %s: bad status %r" % (oid, r.body.get("status")))
    return r.body["status"]


def order(s, oid):
    r = s.request("GET", "/api/orders/%s/" % oid)
    if r.status != 200:
        fail("GET order %s: %s %r" % (oid, r.status, r.raw))
    return r.body


def metrics(s):
    r = s.request("GET", "/api/orders/metrics/")
    if r.status != 200:
        fail("GET metrics: %s %r" % (r.status, r.raw))
    m = r.body
    for k in ("total_orders_processed", "average_processing_time",
              "average_processing_time_seconds", "total_orders", "order_status_count"):
        if k not in m:
            fail("metrics lack %r: %r" % (k, m))
    for s in STATUSES:
        if s not in m["order_status_count"]:
            fail("metrics order_status_count lacks %r: %r" % (s, m))
    return m


def check_metrics_consistent(m):
    counts = m["order_status_count"]
    total = sum(counts[s] for s in STATUSES)
    if total != m["total_orders"]:
        fail("status counts %r sum to %d, total_orders is %d" % (counts, total, m["total_orders"]))
    if counts["Completed"] != m["total_orders_processed"]:
        fail("Completed count %d != total_orders_processed %d (%r)"
             % (counts["Completed"], m["total_orders_processed"], m))


def check_all_completed(sys_, ids, timeout=60.0, expected_total=None):
    """Poll until every id in ids is Completed, then until no order is
    Pending or Processing; check the metrics add up.  Returns the metrics."""
    deadline = time.monotonic() + timeout
    left = list(dict.fromkeys(ids))
    last = {}
    while left:
        still = []
        for oid in left:
            st = sys_.status(oid)
            last[oid] = st
            if st == "Cancelled":
                fail("order %s became Cancelled, expected Completed" % oid)
            if st != "Completed":
                still.append(oid)
        left = still
        if not left:
            break
        if time.monotonic() > deadline:
            hist = {}
            for oid in left:
                hist[last[oid]] = hist.get(last[oid], 0) + 1
            fail("%d of %d orders not Completed after %.0f s (statuses %r, e.g. %s); metrics %r"
                 % (len(left), len(ids), timeout, hist, left[:5], sys_.metrics()))
        time.sleep(0.2)

    def settled():
        m = sys_.metrics()
        c = m["order_status_count"]
        return m if c["Pending"] == 0 and c["Processing"] == 0 else None
    remaining = max(5.0, deadline - time.monotonic())
    m = wait_until(settled, remaining, "no order left Pending or Processing")
    check_metrics_consistent(m)
    if m["order_status_count"]["Completed"] < len(set(ids)):
        fail("metrics count %d Completed, but %d ids completed"
             % (m["order_status_count"]["Completed"], len(set(ids))))
    if expected_total is not None and m["total_orders"] != expected_total:
        fail("total_orders %d, expected %d (%r)" % (m["total_orders"], expected_total, m))
    return m


def check_order_shape(o, where="order"):
    """Fields and types of an order body."""
    if not isinstance(o, dict):
        fail("%s: not an object: %r" % (where, o))
    keys = {"order_id", "user_id", "item_ids", "total_amount", "status",
            "created_at", "updated_at", "completed_at"}
    missing = keys - set(o)
    if missing:
        fail("%s: missing %s in %r" % (where, sorted(missing), o))
    if not isinstance(o["order_id"], str) or not ORDER_ID_RE.match(o["order_id"]):
        fail("%s: order_id %r" % (where, o["order_id"]))
    if not isinstance(o["user_id"], int) or isinstance(o["user_id"], bool):
        fail("%s: user_id %r is not an integer" % (where, o["user_id"]))
    if not isinstance(o["item_ids"], list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in o["item_ids"]):
        fail("%s: item_ids %r" % (where, o["item_ids"]))
    if not isinstance(o["total_amount"], str) or not re.match(r"^[0-9]+\.[0-9]{2}$", o["total_amount"]):
        fail("%s: total_amount %r is not a two-decimal string" % (where, o["total_amount"]))
    if o["status"] not in STATUSES:
        fail("%s: status %r" % (where, o["status"]))
    for k in ("created_at", "updated_at"):
        if not isinstance(o[k], str) or not TIMESTAMP_RE.match(o[k]):
            fail("%s: %s %r is not RFC 3339 UTC with ms" % (where, k, o[k]))
    if o["completed_at"] is not None and (
            not isinstance(o["completed_at"], str) or not TIMESTAMP_RE.match(o["completed_at"])):
        fail("%s: completed_at %r" % (where, o["completed_at"]))
    if o["status"] == "Completed" and o["completed_at"] is None:
        fail("%s: Completed but completed_at is null" % where)
    if o["status"] != "Completed" and o["completed_at"] is not None:
        fail("%s: %s but completed_at is %r" % (where, o["status"], o["completed_at"]))
    if o["updated_at"] < o["created_at"]:
        fail("%s: updated_at before created_at" % where)
    if o["completed_at"] is not None and o["completed_at"] < o["created_at"]:
        fail("%s: completed_at before created_at" % where)
