#!/usr/bin/env python3
"""A stopping worker waits out its grace without spinning.

On SIGTERM a worker holding Processing orders waits up to 2 s for those
due by then, and hands the rest back to Pending. It writes no heartbeats
while stopping, and once its event loop still counted the next heartbeat
(every 2 s) as a deadline: poll() got a timeout of 0 and the worker burned
a core from that deadline to the end of the grace. Here one worker holds
an order due 4 s after its claim, so it waits the whole grace, and the
SIGTERM comes just before its next heartbeat (read from the age in
/metrics), so that the old loop would spin for nearly all of the grace. Its
CPU time over the wait must stay small, it must exit 0, and the order must
be Pending again, handed back.
"""

import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "check")]
import harness as h  # noqa: E402
import faultlib as f  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def expect(ok, msg):
    if not ok:
        h.fail(msg)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main():
    with h.System("worker_stop") as s:
        s.start_api()
        s.start_worker(workers=1, pickup_ms=0, processing_ms=4000, lease_ms=30000)
        kids = h.children_of(s.worker.pid)
        expect(len(kids) == 1, "expected 1 worker child, found %r" % kids)
        oid = s.create_order()
        h.wait_until(lambda: s.status(oid) == "Processing", 5, "%s Processing" % oid)
        # a heartbeat every 2 s: wait for a fresh one, then stop 1.8 s after it
        def age():
            return f.prometheus(s, "worker_heartbeat_age_seconds")
        h.wait_until(lambda: (age() or 9) < 0.3, 5, "a fresh worker heartbeat")
        beat = time.monotonic() - age()
        time.sleep(max(0.0, beat + 1.8 - time.monotonic()))
        before = cpu_seconds(kids[0])
        os.kill(s.worker.pid, signal.SIGTERM)
        time.sleep(1.8)
        expect(h.pid_alive(kids[0]), "the worker left before the end of its grace")
        spent = cpu_seconds(kids[0]) - before
        print("worker CPU while stopping: %.2f s" % spent)
        expect(spent < 0.4,
               "the stopping worker used %.2f s of CPU in 1.8 s of waiting "
               "(a busy loop?)" % spent)
        rc = s.worker.proc.wait(10)
        expect(rc == 0, "order-worker exited with %s after SIGTERM" % rc)
        st = s.status(oid)
        expect(st == "Pending", "%s is %s after the stop, expected Pending "
               "(handed back)" % (oid, st))


if __name__ == "__main__":
    h.run(main)
