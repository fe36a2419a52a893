#!/usr/bin/env python3
"""SIGTERM finishes the requests in hand: each gets its answer.

civetweb writes nothing once it is told to stop, so order-api answers the
requests it is handling before it stops civetweb, and answers new ones
503 meanwhile. Two kinds of request wait in order-api, and 12 are in hand
at the moment of the SIGTERM, half of each:

- 6 reads (GETs of an order and of its status) of orders answered 201
  but not yet in LMDB, which wait for their LMDB commit: another process
  (the writer-hold tool) holds LMDB's writer lock;
- 6 creates whose body is still arriving: their headers and half of the
  body were sent before the SIGTERM, the rest after it.

Then:

- a request sent after the SIGTERM on a new connection gets 503 with
  Retry-After, not a reset;
- every create in hand gets 201 (its order journaled), though the lock is
  still held; no read has answered yet;
- once the lock is released, every read gets 200 with its order;
- order-api exits 0, with every accepted order in LMDB: the next start
  has nothing to apply from its journal;
- every order answered 201 is stored and completes once both daemons run
  again.
"""

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import expect, run, wait_until  # noqa: E402
from optest.client import Client, check_response  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import (WriterHold, jepsen_check, log_lines_since, metric,  # noqa: E402
                           require_order_ctl, require_writer_hold)
from optest.orders import STATUSES  # noqa: E402

READS = 6
CREATES = 6
TIMEOUT_MS = 5000     # --commit-timeout-ms: how long a read may wait
BODY = {"user_id": 4, "item_ids": [7], "total_amount": "3.00"}


class SlowCreate:
    """A POST /orders/ whose headers and first half of the body are sent
    now, the rest by finish(), which returns the answer."""

    def __init__(self, port, data):
        raw = json.dumps(data).encode()
        head = ("POST /orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % len(raw))
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(head.encode() + raw[:len(raw) // 2])
        self.rest = raw[len(raw) // 2:]

    def finish(self):
        try:
            self.sock.sendall(self.rest)
            resp = http.client.HTTPResponse(self.sock, method="POST")
            resp.begin()
            raw = resp.read()
        except Exception as e:  # noqa: BLE001
            return ("error", repr(e))
        finally:
            self.sock.close()
        hl = {k.lower(): v for k, v in resp.getheaders()}
        check_response("POST", "/orders/", resp.status, hl, raw)
        return (resp.status, json.loads(raw))


def late_request(port):
    """GET /healthz on a new connection: the raw answer."""
    late = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return late.recv(4096)
    finally:
        late.close()


def main():
    require_order_ctl()
    require_writer_hold()
    with System("stop_drain") as s:
        api_args = ["--commit-timeout-ms", str(TIMEOUT_MS)]
        s.start_api(extra=api_args)
        first = s.create_order()  # the environment exists before the lock
        s.status(first)           # and the order is in LMDB
        answers = []
        lock = threading.Lock()

        def read(path, oid):
            c = Client(s.port, timeout=30)
            try:
                r = c.request("GET", path, check=True, retry=False)
                got = (r.status, r.body, oid)
            except Exception as e:  # noqa: BLE001
                got = ("error", repr(e), oid)
            with lock:
                answers.append(got)
            c.close()

        with WriterHold(s.datadir) as hold:
            # Journaled, answered 201 at once, not in LMDB while held.
            journaled = [s.create_order(user_id=4) for _ in range(READS)]
            paths = [("/orders/%s/" if i % 2 else "/api/orders/%s/status/")
                     % oid for i, oid in enumerate(journaled)]
            ts = [threading.Thread(target=read, args=(p, oid))
                  for p, oid in zip(paths, journaled)]
            for t in ts:
                t.start()
            slow = [SlowCreate(s.port, BODY) for _ in range(CREATES)]
            # Each has been read as far as it was sent and waits (the
            # gauge counts the /metrics request that reads it too).
            wait_until(lambda: metric(s, "http_requests_in_flight")
                       == READS + CREATES + 1, 10,
                       "%d requests in hand" % (READS + CREATES))
            expect(not answers, "reads answered while the lock was held: %r"
                   % answers)
            offset = os.path.getsize(s.api_log)
            os.kill(s.api.pid, signal.SIGTERM)
            # order-api logs the SIGTERM just before it answers new
            # requests 503: one sent before that may still get 200, never
            # a reset.
            wait_until(lambda: any("stopping on SIGTERM" in line for line in
                                   log_lines_since(s.api_log, offset)),
                       10, "order-api to log the SIGTERM")
            early, deadline = 0, time.monotonic() + 10
            while True:
                reply = late_request(s.port)
                if (not reply.startswith(b"HTTP/1.1 200 ")
                        or time.monotonic() > deadline):
                    break
                early += 1
            expect(reply.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in reply,
                   "a request during the stop got %r" % reply[:200])
            # The creates in hand are finished and journaled while the
            # lock is still held; the reads still wait for it.
            created = []
            for c in slow:
                st, b = c.finish()
                expect(st == 201, "a create in hand at the SIGTERM got %s %r"
                       % (st, b))
                created.append(b["order_id"])
            with lock:
                expect(not answers, "reads answered while the lock was held: "
                       "%r" % answers)
            hold.release()
            for t in ts:
                t.join(30)
        rc = s.api.proc.wait(30)
        expect(rc == 0, "order-api exited %s after SIGTERM" % rc)
        expect(len(answers) == READS, "of %d reads in hand at the SIGTERM, %d "
               "got an answer" % (READS, len(answers)))
        for st, b, oid in answers:
            expect(st == 200 and b.get("order_id") == oid
                   and b.get("status") in STATUSES,
                   "a read of %s in hand at the SIGTERM got %s %r" % (oid, st, b))
        with open(s.api_log) as log:
            text = log.read()
        expect("requests still in hand" not in text,
               "order-api stopped with requests unanswered")
        # Every one is stored and, with both daemons up, completes; the
        # clean stop left nothing in the journal to apply.
        s.api = None
        offset = os.path.getsize(s.api_log)
        s.start_api(extra=api_args)
        applied = [l for l in log_lines_since(s.api_log, offset)
                   if "from the journal" in l]
        expect(not applied, "orders left in the journal by a clean stop: %r"
               % applied)
        s.start_worker()
        jepsen_check(s, created + journaled + [first])
        print("%d reads and %d creates in hand at the SIGTERM: all answered "
              "(200, 201) and stored; a new request got 503 (%d before it "
              "200)" % (READS, CREATES, early))


if __name__ == "__main__":
    run(main)
