#!/usr/bin/env python3
"""SIGTERM finishes the requests in hand: each gets its answer.

civetweb writes nothing once it is told to stop, so order-api answers the
requests it is handling before it stops civetweb, and answers new ones
503 meanwhile.  To have requests in hand at the moment of the SIGTERM, 12
creates wait on LMDB's writer lock, held by another process (the
writer-hold tool); the SIGTERM comes, then the lock is released:

- every one of the 12 gets 201, and its order is stored and completes
  once both daemons run again;
- a request sent meanwhile on a new connection gets 503 with
  Retry-After, not a reset;
- order-api exits 0.
"""

import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "check")]
import harness as h  # noqa: E402
import faultlib as f  # noqa: E402

CREATES = 12
BODY = {"user_id": 4, "item_ids": [7], "total_amount": "3.00"}


def expect(ok, msg):
    if not ok:
        h.fail(msg)


def main():
    f.require_op_check()
    with h.System("stop_drain") as s:
        s.start_api()
        first = s.create_order()  # the environment exists before the lock
        answers = []
        lock = threading.Lock()

        def create():
            c = h.Client(s.port, timeout=30)
            try:
                r = c.request("POST", "/orders/", BODY, check=False, retry=False)
                got = (r.status, r.body)
            except Exception as e:  # noqa: BLE001
                got = ("error", repr(e))
            with lock:
                answers.append(got)
            c.close()

        with f.WriterHold(s.datadir) as hold:
            ts = [threading.Thread(target=create) for _ in range(CREATES)]
            for t in ts:
                t.start()
            # Each create has been read and waits for its commit (the
            # gauge counts the /metrics request that reads it too).
            h.wait_until(lambda: f.prometheus(s, "http_requests_in_flight")
                         == CREATES + 1, 10, "%d creates in hand" % CREATES)
            expect(not answers, "creates answered while the lock was held: %r" % answers)
            os.kill(s.api.pid, signal.SIGTERM)
            time.sleep(0.3)
            late = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = late.recv(4096)
            late.close()
            expect(reply.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in reply,
                   "a request during the stop got %r" % reply[:200])
            hold.release()
            for t in ts:
                t.join(30)
        rc = s.api.proc.wait(30)
        expect(rc == 0, "order-api exited %s after SIGTERM" % rc)
        created = [b["order_id"] for st, b in answers if st == 201]
        expect(len(created) == CREATES,
               "of %d creates in hand at the SIGTERM, %d got 201: %r"
               % (CREATES, len(created), [a for a in answers if a[0] != 201][:3]))
        # Every one is stored and, with both daemons up, completes.
        s.api = None
        s.start_api()
        s.start_worker()
        f.jepsen_check(s, created + [first])
        print("%d creates in hand at the SIGTERM: all answered 201 and stored; "
              "a new request got 503" % CREATES)


if __name__ == "__main__":
    h.run(main)
