#!/usr/bin/env python3
"""A stopping worker waits out its grace without spinning.

On SIGTERM a worker holding Processing orders waits up to its grace (2 s,
WORKER_STOP_GRACE_MS) for those due by then, and hands the rest back to
Pending. It writes no heartbeats while stopping, and once its event loop
still counted the next heartbeat (every 2 s) as a deadline: poll() got a
timeout of 0 and the worker burned a core from that deadline to the end of
the grace.

Here one worker holds an order whose processing takes an hour, so it can
never fall due within the grace however late the SIGTERM comes: the worker
must wait the whole grace and then hand the order back. The SIGTERM is
sent just before the worker's next heartbeat (read from the age in
/metrics), so that the old loop would spin for nearly all of the grace.

The checks are bounded by what the test observed, never by a fixed sleep:
- the worker's grace starts when it receives the signal, after the test
  sent it, so the first time the test sees the worker gone must be at
  least the grace after the send (it waited out its grace);
- its CPU time from just before the send to the last time the test saw it
  running, an interval inside its grace, must stay small;
- it exits 0 and the order is Pending again, handed back.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import expect, fail, run, wait_until  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import metric  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
GRACE = 2.0             # WORKER_STOP_GRACE_MS
HEARTBEAT = 2.0         # the worker's heartbeat interval
PROCESSING_MS = 3600 * 1000
LEASE_MS = 2 * PROCESSING_MS
# Both the worker and the test time the grace on the monotonic clock (a
# step of the wall clock must not cut it short); the worker counts whole
# milliseconds, so it may leave up to 1 ms before the full grace: 10 ms.
CLOCKS = 0.01


def sample(pid):
    """(state, CPU seconds) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main():
    with System("worker_stop") as s:
        s.start_api()
        s.start_worker(workers=1, pickup_ms=0, processing_ms=PROCESSING_MS,
                       lease_ms=LEASE_MS)
        kids = procs.children(s.worker.pid)
        expect(len(kids) == 1, "expected 1 worker child, found %r" % kids)
        kid = kids[0]
        oid = s.create_order()
        wait_until(lambda: s.status(oid) == "Processing", 5, "%s Processing" % oid)

        # Stop the worker 1.8 s after a heartbeat, just before its next one.
        # If the test itself runs late for that, it waits for the next
        # heartbeat (a precondition of the measurement, not a retried check).
        def fresh():
            a = metric(s, "worker_heartbeat_age_seconds")
            return a is not None and a < 0.3 and time.monotonic() - a
        for _ in range(5):
            beat = wait_until(fresh, 2 * HEARTBEAT + 1, "a fresh worker heartbeat")
            time.sleep(max(0.0, beat + 1.8 - time.monotonic()))
            before = sample(kid)
            sent = time.monotonic()
            if sent < beat + 1.9:
                break
        else:
            fail("could not send SIGTERM within 1.9 s of a heartbeat in 5 tries")
        expect(before is not None and before[0] not in "ZX",
               "the worker child %d is gone before the stop" % kid)
        os.kill(s.worker.pid, signal.SIGTERM)

        # Watch the child until it is gone: the last time it was seen
        # running, with its CPU time then, and the first time it was not.
        last_seen, last_cpu = sent, before[1]
        while True:
            now = sample(kid)
            t = time.monotonic()
            if now is None or now[0] in "ZX":
                gone = t
                break
            last_seen, last_cpu = t, now[1]
            expect(t < sent + GRACE + 10, "the worker still runs %.1f s after "
                   "SIGTERM" % (t - sent))
            time.sleep(0.01)
        waited = gone - sent
        spent = last_cpu - before[1]
        print("SIGTERM %.2f s after a heartbeat; worker seen running until "
              "%.2f s after it, gone at %.2f s; CPU %.2f s while stopping"
              % (sent - beat, last_seen - sent, waited, spent))
        expect(waited >= GRACE - CLOCKS,
               "the worker left %.2f s after SIGTERM, before the end of its "
               "%.0f s grace, while its order is not due for an hour"
               % (waited, GRACE))
        expect(spent < 0.4,
               "the stopping worker used %.2f s of CPU in %.2f s of waiting "
               "(a busy loop?)" % (spent, last_seen - sent))
        rc = s.worker.proc.wait(10)
        expect(rc == 0, "order-worker exited with %s after SIGTERM" % rc)
        st = s.status(oid)
        expect(st == "Pending", "%s is %s after the stop, expected Pending "
               "(handed back)" % (oid, st))


if __name__ == "__main__":
    run(main)
