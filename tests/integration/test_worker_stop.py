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

The grace is a duration, timed on the monotonic clock: a step of the wall
clock must not cut it short. So the same stop again, with the worker run
under the clock shim (tests/check/clockshim.c): once the worker child has
logged that it is stopping (its grace's end is set), the test steps the
worker's wall clock forward by 1.5 s. The worker must still wait its whole
grace, by the test's monotonic clock, exit 0 and hand the order back. A
grace timed on the wall clock ends 0.5 s after the signal then (or at the
worker's next wake-up after, a sweep within a second).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import expect, fail, run, wait_until  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import ClockShim, log_lines_since, metric  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
GRACE = 2.0             # WORKER_STOP_GRACE_MS
HEARTBEAT = 2.0         # the worker's heartbeat interval
PROCESSING_MS = 3600 * 1000
LEASE_MS = 2 * PROCESSING_MS
# Both the worker and the test time the grace on the monotonic clock (a
# step of the wall clock must not cut it short); the worker counts whole
# milliseconds, so it may leave up to 1 ms before the full grace: 10 ms.
CLOCKS = 0.01
STEP = 1.5              # the step of the worker's wall clock, forward


def sample(pid):
    """(state, CPU seconds) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def start(s, env=None):
    """Both daemons, one worker child holding one order Processing for an
    hour: (the child's pid, the order's id)."""
    s.start_api()
    s.start_worker(workers=1, pickup_ms=0, processing_ms=PROCESSING_MS,
                   lease_ms=LEASE_MS, env=env)
    kids = procs.children(s.worker.pid)
    expect(len(kids) == 1, "expected 1 worker child, found %r" % kids)
    oid = s.create_order()
    wait_until(lambda: s.status(oid) == "Processing", 5, "%s Processing" % oid)
    return kids[0], oid


def watch(kid, sent, cpu):
    """Watch the child until it is gone: (the last time it was seen
    running, its CPU time then, the first time it was not), cpu and sent
    being its CPU time and the time just before the SIGTERM."""
    last_seen, last_cpu = sent, cpu
    while True:
        now = sample(kid)
        t = time.monotonic()
        if now is None or now[0] in "ZX":
            return last_seen, last_cpu, t
        last_seen, last_cpu = t, now[1]
        expect(t < sent + GRACE + 10, "the worker still runs %.1f s after "
               "SIGTERM" % (t - sent))
        time.sleep(0.01)


def handed_back(s, oid, waited, why=""):
    """The worker waited its whole grace, exited 0, the order is Pending."""
    expect(waited >= GRACE - CLOCKS,
           "the worker left %.2f s after SIGTERM, before the end of its "
           "%.0f s grace, while its order is not due for an hour%s"
           % (waited, GRACE, why))
    rc = s.worker.proc.wait(10)
    expect(rc == 0, "order-worker exited with %s after SIGTERM" % rc)
    st = s.status(oid)
    expect(st == "Pending", "%s is %s after the stop, expected Pending "
           "(handed back)" % (oid, st))


def stop_before_heartbeat():
    with System("worker_stop") as s:
        kid, oid = start(s)

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

        last_seen, last_cpu, gone = watch(kid, sent, before[1])
        waited = gone - sent
        spent = last_cpu - before[1]
        print("SIGTERM %.2f s after a heartbeat; worker seen running until "
              "%.2f s after it, gone at %.2f s; CPU %.2f s while stopping"
              % (sent - beat, last_seen - sent, waited, spent))
        expect(spent < 0.4,
               "the stopping worker used %.2f s of CPU in %.2f s of waiting "
               "(a busy loop?)" % (spent, last_seen - sent))
        handed_back(s, oid, waited)


def stop_with_clock_step():
    with System("worker_stop_step") as s:
        clock = ClockShim(s)
        kid, oid = start(s, env=clock.env())
        mark = os.path.getsize(s.worker_log)
        before = sample(kid)
        expect(before is not None and before[0] not in "ZX",
               "the worker child %d is gone before the stop" % kid)
        sent = time.monotonic()
        os.kill(s.worker.pid, signal.SIGTERM)

        # Step only once the child has set its grace's end: a step before
        # that would move the start of a wall-clock grace with its end.
        def stopping():
            return any("order-worker[1]:" in line and "stopping on signal" in line
                       for line in log_lines_since(s.worker_log, mark))
        wait_until(stopping, GRACE, "the worker child to log its stop",
                   interval=0.005)
        clock.step(STEP)
        stepped = time.monotonic() - sent
        # A precondition of the measurement: stepped later than this, a
        # grace on the wall clock would not visibly end early.
        expect(stepped < GRACE - STEP, "the wall clock was stepped only "
               "%.2f s after SIGTERM (the worker child was slow to log its "
               "stop)" % stepped)

        last_seen, _, gone = watch(kid, sent, before[1])
        waited = gone - sent
        print("SIGTERM, then the worker's wall clock stepped %+.1f s at "
              "%.3f s; worker seen running until %.2f s after SIGTERM, gone "
              "at %.2f s" % (STEP, stepped, last_seen - sent, waited))
        handed_back(s, oid, waited, " (its wall clock stepped %+.1f s %.2f s "
                    "after SIGTERM)" % (STEP, stepped))


def main():
    stop_before_heartbeat()
    stop_with_clock_step()


if __name__ == "__main__":
    run(main)
