#!/usr/bin/env python3
"""Commits of new orders that fail without breaking the store, injected in
order-api with the fault shim: the flush (fdatasync) of data.mdb failing
with EIO, then the data-page writes failing with ENOSPC. Each time: the
create sent first after the fault is armed is answered 201 (it is durable
in the journal before LMDB sees it); a read of it waits for its LMDB
commit, which fails, and answers 503; from then on every create is a 503
and stores nothing; /readyz is 503 and says that the last commit failed
and why, /healthz stays 200 (the process is fine); the log gets a few
lines, not one per request. Once the disk works again the kept order
reaches LMDB and /readyz is 200 with no create at all (the API tries the
commit again once a second). Every acknowledged order completes, and
total_orders counts exactly the 201s."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run, wait_until  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import (FaultShim, finish, jepsen_check, log_lines_since,  # noqa: E402
                           require_order_ctl)

REFUSED = 200
# Lines order-api may log while REFUSED creates fail.
MAX_LINES = 4


def readyz(s):
    r = s.request("GET", "/readyz", check=False)
    return r.status, (r.body.get("detail") if isinstance(r.body, dict) else r.raw)


def failing_creates(s, shim, what, err, reason):
    """Arm the fault, check the answers while it lasts, disarm it; returns
    the order acknowledged as the fault began."""
    total = s.metrics()["total_orders"]
    mark = os.path.getsize(s.api_log)
    shim.arm(what, err, "always")
    first = s.create_order(user_id=3)
    r = s.request("GET", "/api/orders/%s/status/" % first, check=False)
    assert r.status == 503, "read of %s while its commit fails: %s %r" % (first, r.status, r.raw)
    assert r.headers.get("retry-after", "").isdigit(), r.headers
    for i in range(REFUSED):
        r = s.request("POST", "/api/orders/", {"user_id": 3, "item_ids": [i + 1],
                                                "total_amount": "4.00"}, check=False)
        assert r.status == 503, "create #%d with %s failing: %s %r" % (i, what, r.status, r.raw)
        assert isinstance(r.body, dict) and "detail" in r.body, r.raw
    status, detail = readyz(s)
    print("%s %s: %s accepted first, %d creates refused; /readyz %s %r"
          % (what, err, first, REFUSED, status, detail))
    assert status == 503, "/readyz %s while every commit fails" % status
    assert detail == "the last commit failed: " + reason, detail
    hz = s.request("GET", "/healthz", check=False)
    assert hz.status == 200, "/healthz %s %r: the store itself is fine" % (hz.status, hz.raw)
    injected = [x for x in shim.faults() if x[1] == what]
    assert injected and all(p == s.api.pid and e == err for p, _, e in injected), injected
    m = s.metrics()
    assert m["total_orders"] == total + 1, \
        "%d orders counted while commits fail, expected %d (the first one, kept)" \
        % (m["total_orders"], total + 1)
    shim.disarm()

    lines = log_lines_since(s.api_log, mark)
    print("order-api's log meanwhile (%d lines):" % len(lines))
    for line in lines:
        print("    " + line)
    assert 1 <= len(lines) <= MAX_LINES, "%d lines for %d failed creates" % (len(lines), REFUSED)
    return first


def main():
    require_order_ctl()
    with System("commit-fail") as s:
        shim = FaultShim(s)
        s.start_api(env=shim.env())
        s.start_worker(workers=1, pickup_ms=0, processing_ms=20, lease_ms=2000)
        s.wait_ready()
        acked = [s.create_order(user_id=2) for _ in range(10)]

        # The flush fails: LMDB returns EIO from the commit, nothing stored.
        acked.append(failing_creates(s, shim, "sync", "EIO", "Input/output error"))
        # No create needed: the API tries the commit again once a second.
        wait_until(lambda: readyz(s)[0] == 200, 5,
                   "/readyz to be 200 again once commits work, with no create")
        assert s.status(acked[-1]) in ("Pending", "Processing", "Completed"), acked[-1]
        acked += [s.create_order(user_id=2) for _ in range(10)]

        # The data pages cannot be written: the disk is full.
        acked.append(failing_creates(s, shim, "data", "ENOSPC",
                                     "the disk holding the data directory is full"))
        wait_until(lambda: readyz(s)[0] == 200, 5,
                   "/readyz to be 200 again once the disk has room, with no create")
        acked.append(s.create_order(user_id=2))
        status, detail = readyz(s)
        assert status == 200, "/readyz %s %r after a create succeeded" % (status, detail)

        jepsen_check(s, acked)
        finish(s, acked)


if __name__ == "__main__":
    run(main)
