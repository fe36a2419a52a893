#!/usr/bin/env python3
"""The data directory on a full disk (a 4 MiB tmpfs, so it fills in
seconds; needs root to mount it, skipped otherwise).

While running: new orders get 503 JSON once the disk is down to the room
the store keeps for the orders in hand, nothing is half-written (the
counts match the orders that got 201), reads keep working, and the
worker still completes every accepted order in that room.  At start: a
fresh data directory on a disk with no room left is a clear refusal, not
a crash or a daemon that half-runs."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run  # noqa: E402
from optest.daemons import ORDER_API, System  # noqa: E402
from optest.orders import check_all_completed, check_metrics_consistent  # noqa: E402


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size,
                        "tmpfs", path], capture_output=True, text=True)
    return r.returncode == 0


def fill(path):
    """Write zeros into path until the disk is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def main():
    if os.geteuid() != 0:
        print("SKIP: mounting a tmpfs needs root")
        sys.exit(77)
    with System("diskfull") as s:
        mnt = os.path.join(s.tmp, "disk")
        if not mount_tmpfs(mnt, "4m"):
            print("SKIP: cannot mount a tmpfs here")
            sys.exit(77)
        try:
            s.datadir = os.path.join(mnt, "data")
            # A map far larger than the disk: the disk, not the map, fills.
            s.start_api(extra=["--map-size", "64M", "--journal-size", "256K"])
            acked = []
            refusal = None
            body = {"user_id": 1, "item_ids": list(range(1, 200)),
                    "total_amount": "1.00"}
            for i in range(100000):
                r = s.request("POST", "/orders/", body, check=False)
                if r.status == 201:
                    acked.append(r.body["order_id"])
                    continue
                refusal = r
                break
            assert refusal is not None, "the 4 MiB disk never filled"
            assert refusal.status == 503, (refusal.status, refusal.raw)
            assert isinstance(refusal.body, dict) and "detail" in refusal.body, \
                refusal.raw
            print("%d orders fit before the disk filled; then %d %s"
                  % (len(acked), refusal.status, refusal.body["detail"]))
            assert len(acked) > 10, len(acked)
            # Nothing half-written: the counts are the acknowledged orders.
            m = s.metrics()
            check_metrics_consistent(m)
            assert m["total_orders"] == len(acked), (m, len(acked))
            # Reads still work.
            r = s.request("GET", "/orders/%s/" % acked[-1])
            assert r.status == 200, r.raw
            # The disk is at its reserve, not past it: the worker still
            # claims and completes every accepted order.
            s.start_worker(workers=1, pickup_ms=0, processing_ms=0,
                           lease_ms=1000, extra=["--map-size", "64M"])
            check_all_completed(s, acked, timeout=60,
                                expected_total=len(acked))
            s.stop_worker()
            s.stop_api()

            # A fresh data directory on the full disk: a clear refusal.
            fill(os.path.join(mnt, "filler"))
            fresh = os.path.join(mnt, "fresh")
            r = subprocess.run([ORDER_API, "-c", "/dev/null", "-D", fresh,
                                "-q", s.queue, "-l", "127.0.0.1:%d" % s.port],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 1, (r.returncode, r.stderr)
            assert "No space left on device" in r.stderr, r.stderr
            print("start on a full disk: exit %d: %s"
                  % (r.returncode, r.stderr.strip().splitlines()[-1]))
        finally:
            s.cleanup()
            subprocess.run(["umount", "-l", mnt], capture_output=True)


if __name__ == "__main__":
    run(main)
