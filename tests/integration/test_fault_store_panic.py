#!/usr/bin/env python3
"""One failed write of LMDB's meta page, injected with the fault shim: LMDB
then marks the environment fatal and fails every later call (MDB_PANIC)
until it is opened again.

order-api, under a stream of POSTs: no 201 for an order that was not
stored; once a create was refused, /healthz no longer says 200; the process
exits with status 4 within seconds, with one log line that names the error
and no flood; started again (as systemd's Restart=on-failure does) it takes
orders within seconds, and every acknowledged order completes, counted
once (order-ctl check agrees).

order-worker, one worker process: the process that meets it exits with
status 4, the master starts another, orders keep completing, and the log
gets a few lines, not hundreds a second."""

import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import run, wait_until  # noqa: E402
from optest.client import Response  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import (FaultShim, Poster, finish, jepsen_check, log_lines_since,  # noqa: E402
                           require_order_ctl)
from optest.orders import check_all_completed  # noqa: E402

EXIT_STORE = 4
# The most lines a daemon may log from the fault until the end of a case.
MAX_LINES = 12


def show(title, lines):
    print("%s (%d lines):" % (title, len(lines)))
    for line in lines:
        print("    " + line)


def api_case():
    with System("panic-api") as s:
        shim = FaultShim(s)
        s.start_api(env=shim.env())
        s.start_worker(workers=2, pickup_ms=0, processing_ms=20, lease_ms=2000)
        acked = [s.create_order(user_id=5) for _ in range(20)]
        poster = Poster(s, threads=4).start()
        poster.wait_for(50)
        api_pid = s.api.pid
        mark = os.path.getsize(s.api_log)

        shim.arm("meta", "EIO", 1)
        t_armed = time.monotonic()
        # POST until one is not a 201: after that answer the store is
        # known broken, and /healthz must not call the process healthy.
        refused = None
        for i in range(100000):
            try:
                r = s.request("POST", "/api/orders/", {"user_id": 6, "item_ids": [i + 1],
                                                        "total_amount": "2.50"},
                              check=False, retry=False)
            except (OSError, http.client.HTTPException) as e:  # it exited already
                refused = e
                break
            if r.status == 201:
                acked.append(r.body["order_id"])
                continue
            refused = r
            break
        print("after the fault: %r" % (refused,))
        if isinstance(refused, Response):
            assert refused.status == 503, refused
            try:
                hz = s.request("GET", "/healthz", check=False, retry=False)
                assert hz.status != 200, \
                    "/healthz answers 200 while every create fails: %r" % hz
                print("/healthz meanwhile: %s %r" % (hz.status, hz.raw))
            except (OSError, http.client.HTTPException) as e:
                print("/healthz meanwhile: %r (exited)" % e)
        s.client.close()

        wait_until(lambda: not s.api.running(), 10,
                   "order-api to exit once its LMDB environment is unusable")
        exited_s = time.monotonic() - t_armed
        rc = s.api.proc.returncode
        print("order-api exited with status %s %.2f s after the fault was armed" % (rc, exited_s))
        assert rc == EXIT_STORE, "order-api exited with %s, expected %d" % (rc, EXIT_STORE)
        assert shim.faults() == [(api_pid, "meta", "EIO")], shim.faults()
        assert not shim.armed(), "the fault was never taken"

        lines = log_lines_since(s.api_log, mark)
        show("order-api's log from the fault to its exit", lines)
        clear = [l for l in lines if "unusable" in l]
        assert len(clear) == 1 and "MDB_PANIC" in clear[0], \
            "expected one line naming the error, got %r" % clear
        assert len(lines) <= MAX_LINES, "a flood of %d lines" % len(lines)

        # Started again, as systemd would: creates succeed within seconds.
        before = poster.count()
        t_restart = time.monotonic()
        s.start_api(env=shim.env())
        poster.wait_for(before + 50, timeout=10)
        print("50 creates acknowledged %.2f s after the restart"
              % (time.monotonic() - t_restart))
        poster.stop()
        print("posts: %d acknowledged, %d refused, %d unknown"
              % (len(poster.acked), poster.refused, poster.uncertain))
        acked += poster.acked
        jepsen_check(s, acked, uncertain=poster.uncertain)
        finish(s, acked)


def worker_case():
    with System("panic-worker") as s:
        shim = FaultShim(s)
        s.start_api()
        s.start_worker(workers=1, pickup_ms=0, processing_ms=20, lease_ms=1000,
                       env=shim.env())
        s.wait_ready()
        acked = [s.create_order(user_id=8) for _ in range(20)]
        check_all_completed(s, acked, timeout=30)
        (child,) = procs.children(s.worker.pid)
        mark = os.path.getsize(s.worker_log)
        poster = Poster(s, threads=2, interval=0.01).start()

        shim.arm("meta", "EIO", 1)
        t_armed = time.monotonic()
        faults = wait_until(shim.faults, 10, "the worker to take the fault")
        assert faults == [(child, "meta", "EIO")], (faults, child)
        wait_until(lambda: not procs.alive(child), 10,
                   "the worker process (pid %d) to exit once its LMDB environment "
                   "is unusable" % child)
        print("worker process %d exited %.2f s after the fault was armed"
              % (child, time.monotonic() - t_armed))
        new = wait_until(lambda: [p for p in procs.children(s.worker.pid) if p != child],
                         10, "the master to start a new worker process")
        print("the master started pid %d" % new[0])
        s.worker_kids.update(new)

        # Orders keep completing through the new process.
        poster.wait_for(poster.count() + 300, timeout=20)
        poster.stop()
        acked += poster.acked
        jepsen_check(s, acked, uncertain=poster.uncertain)
        window = time.monotonic() - t_armed
        assert s.worker.running(), "the master exited"

        lines = log_lines_since(s.worker_log, mark)
        show("order-worker's log over the %.1f s since the fault" % window, lines)
        clear = [l for l in lines if "unusable" in l and "MDB_PANIC" in l]
        assert len(clear) == 1, "expected one line naming the error, got %r" % clear
        assert any("exited with status %d" % EXIT_STORE in l and "restarting" in l
                   for l in lines), "no line of the master restarting the worker"
        assert len(lines) <= MAX_LINES, \
            "%d lines in %.1f s (%.0f a second)" % (len(lines), window, len(lines) / window)
        finish(s, acked)


def main():
    require_order_ctl()
    api_case()
    worker_case()


if __name__ == "__main__":
    run(main)
