#!/usr/bin/env python3
"""Commits of new orders that fail without breaking the store, injected in
order-api with the fault shim: the flush (fdatasync) failing with EIO, then
the data-page writes failing with ENOSPC. Each time: every create is a 503
and stores nothing; /readyz is 503 and says that the last commit failed and
why, /healthz stays 200 (the process is fine); the log gets a line or two,
not one per request. Once the disk works again /readyz is 200: after EIO,
with no create at all (the API checks on its own), after ENOSPC with the
next create, which succeeds. Every acknowledged order completes."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "check")]
import harness as h  # noqa: E402
import faultlib as f  # noqa: E402

REFUSED = 200
# Lines order-api may log while REFUSED creates fail.
MAX_LINES = 4


def readyz(s):
    r = s.request("GET", "/readyz", check=False)
    return r.status, (r.body.get("detail") if isinstance(r.body, dict) else r.raw)


def failing_creates(s, shim, what, err, reason):
    """Arm the fault, check the answers while it lasts, disarm it."""
    total = s.metrics()["total_orders"]
    mark = os.path.getsize(s.api_log)
    shim.arm(what, err, "always")
    for i in range(REFUSED):
        r = s.request("POST", "/api/orders/", {"user_id": 3, "item_ids": [i + 1],
                                                "total_amount": "4.00"}, check=False)
        assert r.status == 503, "create #%d with %s failing: %s %r" % (i, what, r.status, r.raw)
        assert isinstance(r.body, dict) and "detail" in r.body, r.raw
    status, detail = readyz(s)
    print("%s %s: %d creates refused; /readyz %s %r" % (what, err, REFUSED, status, detail))
    assert status == 503, "/readyz %s while every commit fails" % status
    assert detail == "the last commit failed: " + reason, detail
    hz = s.request("GET", "/healthz", check=False)
    assert hz.status == 200, "/healthz %s %r: the store itself is fine" % (hz.status, hz.raw)
    injected = [x for x in shim.faults() if x[1] == what]
    assert injected and all(p == s.api.pid and e == err for p, _, e in injected), injected
    shim.disarm()

    m = s.metrics()
    assert m["total_orders"] == total, \
        "%d orders stored by creates that got 503" % (m["total_orders"] - total)
    lines = f.log_lines_since(s.api_log, mark)
    print("order-api's log meanwhile (%d lines):" % len(lines))
    for line in lines:
        print("    " + line)
    assert 1 <= len(lines) <= MAX_LINES, "%d lines for %d failed creates" % (len(lines), REFUSED)


def main():
    f.require_op_check()
    with h.System("commit-fail") as s:
        shim = f.FaultShim(s)
        s.start_api(env=shim.env())
        s.start_worker(workers=1, pickup_ms=0, processing_ms=20, lease_ms=2000)
        s.wait_ready()
        acked = [s.create_order(user_id=2) for _ in range(10)]

        # The flush fails: LMDB returns EIO from the commit, nothing stored.
        failing_creates(s, shim, "sync", "EIO", "Input/output error")
        # No create needed: the API tries a commit of its own once a second.
        h.wait_until(lambda: readyz(s)[0] == 200, 5,
                     "/readyz to be 200 again once commits work, with no create")
        acked += [s.create_order(user_id=2) for _ in range(10)]

        # The data pages cannot be written: the disk is full.
        failing_creates(s, shim, "data", "ENOSPC",
                        "the disk holding the data directory is full")
        acked.append(s.create_order(user_id=2))
        status, detail = readyz(s)
        assert status == 200, "/readyz %s %r after a create succeeded" % (status, detail)

        f.jepsen_check(s, acked)
        f.finish(s, acked)


if __name__ == "__main__":
    h.run(main)
