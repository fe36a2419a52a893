#!/usr/bin/env python3
"""SIGKILL of the worker master alone, while its children hold Processing
orders: the children exit on their own within a few seconds (parent-death
signal), so no order-worker process of that master remains; a restarted
worker completes every order exactly once; order-ctl check agrees."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import fail, run, wait_until  # noqa: E402
from optest.daemons import ORDER_WORKER, System  # noqa: E402
from optest.faults import Poster, finish, jepsen_check, metric, require_order_ctl  # noqa: E402

WORKER = dict(workers=3, pickup_ms=0, processing_ms=1000, lease_ms=1500)
EXIT_WITHIN_S = 5.0


def open_files(pid):
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return []
    out = []
    for fd in fds:
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return out


def workers_of(tmp):
    """Live order-worker processes of this test: they hold its log (all)
    or its LMDB files (the children) open. (Their command lines are
    rewritten by setproctitle, so those cannot tell.)"""
    prefix = tmp.rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if procs.is_daemon_process(pid, (ORDER_WORKER,)) and procs.alive(pid) and any(
                p.startswith(prefix) for p in open_files(pid)):
            found.append(pid)
    return found


def main():
    require_order_ctl()
    with System("master-kill") as s:
        s.start_api()
        s.start_worker(**WORKER)
        poster = Poster(s, threads=2, interval=0.01).start()
        poster.wait_for(50)
        wait_until(lambda: s.metrics()["order_status_count"]["Processing"] > 0,
                   10, "orders to be Processing")
        master = s.worker.pid
        kids = procs.descendants(master)
        s.worker_kids.update(kids)
        if len(kids) != WORKER["workers"]:
            fail("expected %d worker children, found %r" % (WORKER["workers"], kids))
        seen = set(workers_of(s.tmp))
        if seen != set(kids) | {master}:
            fail("order-worker processes on this data: %r, expected the master %d "
                 "and its children %r" % (sorted(seen), master, kids))
        t0 = time.monotonic()
        os.kill(master, signal.SIGKILL)
        s.worker.proc.wait(10)
        try:
            wait_until(lambda: not any(procs.alive(p) for p in kids), EXIT_WITHIN_S,
                       "the worker children to exit after their master was SIGKILLed")
        finally:
            left = workers_of(s.tmp)
            for p in left:
                os.kill(p, signal.SIGKILL)
        if left:
            fail("order-worker processes %r of the killed master %d remain" % (left, master))
        print("the %d children exited %.1f s after the master's SIGKILL"
              % (len(kids), time.monotonic() - t0))
        # orders are still accepted with no worker at all
        n = poster.count()
        poster.wait_for(n + 20)
        s.start_worker(**WORKER)
        time.sleep(2.0)
        poster.stop()
        if poster.uncertain or poster.refused:
            fail("the API left %d POSTs unanswered and refused %d"
                 % (poster.uncertain, poster.refused))
        m = jepsen_check(s, poster.acked, timeout=60)
        print("%d orders, %r, lease expiries %s, released %s"
              % (len(poster.acked), m["order_status_count"],
                 metric(s, "lease_expiries_total"),
                 metric(s, "released_total")))
        finish(s, poster.acked, total=len(poster.acked))


if __name__ == "__main__":
    run(main)
