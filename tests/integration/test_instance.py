#!/usr/bin/env python3
"""--instance: the ids an instance hands out, and the data directory that
keeps its instance.

  - both daemons with --instance 2: new orders are ORD20000000000001 on,
    read by ORD id, bare number and with leading zeros, listed, cancelled
    and completed; order-ctl status names the instance, check passes;
  - the same data directory under another number: order-api and
    order-worker refuse to start, each with one error naming both numbers,
    and nothing is changed (the next order under --instance 2 follows on);
  - a data directory that never held an order (the daemons started once
    with the default, as a package's first start does) takes the number
    it is given next: its first order is ORD50000000000001;
  - the config file's 'instance = N' does what --instance does."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import expect, fail, run, tail  # noqa: E402
from optest.daemons import ORDER_CTL, System, require_built  # noqa: E402
from optest.faults import ctl_check, require_order_ctl  # noqa: E402
from optest.orders import check_all_completed  # noqa: E402

SPAN = 10 ** 13


def ctl_status(datadir):
    r = subprocess.run([ORDER_CTL, "-c", "/dev/null", "-D", datadir, "status", "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    if r.returncode != 0:
        fail("order-ctl status --json: exit %d: %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


def refused_start(s, daemon, argv, log, owner, mine):
    """daemon started with argv exits non-zero by itself, its log's error
    naming both instance numbers."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(log, "w"), start_new_session=True)
    try:
        rc = p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        fail("%s on instance %d's data directory as instance %d: still running "
             "after 15 s" % (daemon, owner, mine))
    errors = [line for line in open(log).read().splitlines() if "error" in line]
    expect(rc != 0, "%s as instance %d on instance %d's data: exit 0" % (daemon, mine, owner))
    want = "holds instance %d's orders, and this is instance %d" % (owner, mine)
    expect(any(want in line for line in errors),
           "%s's error does not say %r:\n%s" % (daemon, want, tail(log)))
    return rc


def main():
    require_built()
    require_order_ctl()
    with System("instance") as s:
        two = ["--instance", "2"]
        s.start_api(extra=two)
        s.start_worker(workers=1, pickup_ms=300, processing_ms=50, extra=two)
        ids = [s.create_order(user_id=7) for _ in range(5)]
        want = ["ORD%d" % (2 * SPAN + i) for i in range(1, 6)]
        expect(ids == want, "instance 2's first ids: %r, expected %r" % (ids, want))
        bare = str(2 * SPAN + 1)
        for path in ("/orders/%s/" % bare, "/api/orders/ORD00%s/status/" % bare,
                     "/orders/%s" % bare):
            r = s.request("GET", path)
            expect(r.status == 200 and r.body.get("order_id") == ids[0],
                   "GET %s: %s %r" % (path, r.status, r.raw))
        # An id of another instance is simply not here.
        r = s.request("GET", "/api/orders/ORD1/", check=False)
        expect(r.status == 404, "GET ORD1 on instance 2: %s %r" % (r.status, r.raw))
        r = s.request("POST", "/api/orders/%s/cancel/" % ids[4])
        expect(r.status == 200 and r.body.get("status") == "Cancelled",
               "cancel %s: %s %r" % (ids[4], r.status, r.raw))
        r = s.request("GET", "/api/orders/?user_id=7&limit=3")
        got = [o["order_id"] for o in r.body["results"]]
        expect(got == ids[:3] and r.body["next"] == ids[2],
               "list: %r next %r" % (got, r.body["next"]))
        r = s.request("GET", "/api/orders/?user_id=7&after=%d" % (2 * SPAN))
        got = [o["order_id"] for o in r.body["results"]]
        expect(got == ids, "list after ORD%d: %r" % (2 * SPAN, got))
        check_all_completed(s, ids[:4], timeout=30)
        st = ctl_status(s.datadir)
        expect(st["instance"] == 2 and st["next_id"] == 2 * SPAN + 6,
               "order-ctl status: instance %r next_id %r" % (st["instance"], st["next_id"]))
        s.stop_worker()
        s.stop_api()
        ctl_check(s.datadir, expect_total=5)

        # The same data under another number: both refuse; nothing changes.
        refused_start(s, "order-api", s.api_argv(), os.path.join(s.tmp, "api0.log"), 2, 0)
        refused_start(s, "order-worker", s.worker_argv(workers=1, extra=["--instance", "3"]),
                      os.path.join(s.tmp, "worker3.log"), 2, 3)
        st = ctl_status(s.datadir)
        expect(st["instance"] == 2, "after the refusals: instance %r" % st["instance"])
        s.start_api(extra=two)
        nxt = s.create_order()
        expect(nxt == "ORD%d" % (2 * SPAN + 6), "after the refusals: %s" % nxt)
        s.stop_api()

    with System("instance-adopt") as s:
        # Started once with the default and no order taken, then numbered.
        s.start_api()
        s.start_worker(workers=1)
        s.stop_worker()
        s.stop_api()
        expect(ctl_status(s.datadir)["instance"] == 0, "a new data dir is not instance 0")
        conf = os.path.join(s.tmp, "five.conf")
        with open(conf, "w") as f:
            f.write("instance = 5\n")
        argv = s.api_argv()
        argv[argv.index("/dev/null")] = conf
        s.start_api(argv=argv)
        oid = s.create_order()
        expect(oid == "ORD%d" % (5 * SPAN + 1), "the first order as instance 5: %s" % oid)
        # The worker reads the same file and agrees.
        wargv = s.worker_argv(workers=1, pickup_ms=0, processing_ms=0)
        wargv[wargv.index("/dev/null")] = conf
        s.start_worker(argv=wargv)
        check_all_completed(s, [oid], timeout=30)
        s.stop_worker()
        s.stop_api()
        ctl_check(s.datadir, expect_total=1)
    print("instance 2 handed out ORD%d.., refused as 0 and 3; a new data dir "
          "became instance 5" % (2 * SPAN + 1))


if __name__ == "__main__":
    run(main)
