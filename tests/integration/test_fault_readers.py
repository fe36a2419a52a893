#!/usr/bin/env python3
"""Stale LMDB reader slots of killed processes are cleared: order-worker is
started and SIGKILLed 30 times in a row, each time after its children took
a reader slot (seen in `mdb_stat -r`), while the API keeps accepting
orders. The reader table stays bounded, and once a worker runs again no
slot of a dead process is left after its next sweep (mdb_reader_check at
open and on each sweep). Every acknowledged order completes exactly once;
order-ctl check agrees. Skipped (77) without mdb_stat (lmdb-utils)."""

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import fail, run, wait_until  # noqa: E402
from optest.daemons import Daemon, System  # noqa: E402
from optest.faults import Poster, finish, jepsen_check, metric, require_order_ctl  # noqa: E402

WORKER = dict(workers=2, pickup_ms=0, processing_ms=300, lease_ms=1000)
KILLS = 30
SWEEP_S = 1.0  # the worker's SWEEP_INTERVAL_MS
MAX_SLOTS = 32  # far below maxreaders (1024), far above one worker's need


def readers(datadir):
    """The pids holding reader slots, from mdb_stat -r (which, unlike -rr,
    clears nothing)."""
    r = subprocess.run(["mdb_stat", "-r", datadir], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    # mdb_stat 0.9.24 exits 1 after -r alone (it returns what
    # mdb_reader_list returned): judge by the output
    if r.returncode not in (0, 1) or "Reader Table Status" not in r.stdout:
        fail("mdb_stat -r %s: %s%s" % (datadir, r.stdout, r.stderr))
    return [int(m.group(1)) for m in
            re.finditer(r"(?m)^\s+([0-9]+) [0-9a-f]+ ", r.stdout)]


def stale(pids):
    return [p for p in pids if not procs.alive(p)]


def main():
    if not shutil.which("mdb_stat"):
        sys.stderr.write("mdb_stat (lmdb-utils) not installed\n")
        sys.exit(77)
    require_order_ctl()
    with System("readers") as s:
        s.start_api()
        poster = Poster(s, threads=1, interval=0.02).start()
        poster.wait_for(5)
        most = 0
        seen_stale = 0
        t0 = time.monotonic()
        for i in range(KILLS):
            s.start_worker(**WORKER)
            kids = procs.children(s.worker.pid)
            s.worker_kids.update(kids)
            # the children open LMDB and sweep at once: wait for their slots
            wait_until(lambda: set(kids) & set(readers(s.datadir)), 10,
                       "a worker child %r in the reader table" % kids)
            s.kill_worker()
            pids = readers(s.datadir)
            most = max(most, len(pids))
            seen_stale = max(seen_stale, len(stale(pids)))
            if len(pids) > MAX_SLOTS:
                fail("after %d kills %d reader slots are taken: %r"
                     % (i + 1, len(pids), pids))
        print("%d start/SIGKILL rounds in %.1f s: at most %d reader slots, "
              "at most %d of dead processes"
              % (KILLS, time.monotonic() - t0, most, seen_stale))
        if seen_stale == 0:
            fail("no killed worker ever left a reader slot: nothing was tested")

        s.start_worker(**WORKER)
        time.sleep(2 * SWEEP_S)
        left = stale(readers(s.datadir))
        if left:
            fail("reader slots of dead processes %r left after a worker swept "
                 "(mdb_stat -r: %r)" % (left, readers(s.datadir)))

        # Now slots left behind while a worker keeps running, so that its
        # sweep, not an open, must clear them: a second order-worker on the
        # same data and queue, SIGKILLed once its children read.
        swept = 0
        for i in range(3):
            other = Daemon("order-worker", s.worker_argv(**WORKER),
                           os.path.join(s.tmp, "order-worker-2.log"))
            other.start()
            try:
                wait_until(lambda: procs.children(other.pid), 10,
                           "the second order-worker to fork")
                kids = procs.children(other.pid)
                s.worker_kids.update(kids)
                wait_until(lambda: set(kids) <= set(readers(s.datadir)), 10,
                           "the second worker's children %r in the reader table" % kids)
            finally:
                s._sigkill_tree(other)
            if set(stale(readers(s.datadir))) & set(kids):
                swept += 1
            wait_until(lambda: not set(readers(s.datadir)) & set(kids),
                       2 * SWEEP_S + 1.0,
                       "the running worker's sweep to clear the slots of %r" % kids)
        if swept == 0:
            fail("the killed processes' slots never outlived them: the sweep "
                 "was not tested")
        log = open(s.worker_log, errors="replace").read()
        if "stale LMDB reader slots" not in log:
            fail("the worker's log does not mention clearing reader slots")
        print("a running worker's sweep cleared the slots of a killed second "
              "worker (%d of 3 rounds caught the stale slots)" % swept)
        time.sleep(0.5)
        poster.stop()
        m = jepsen_check(s, poster.acked, timeout=60)
        print("%d orders: %r, lease expiries %s"
              % (len(poster.acked), m["order_status_count"],
                 metric(s, "lease_expiries_total")))
        finish(s, poster.acked, total=len(poster.acked))


if __name__ == "__main__":
    run(main)
