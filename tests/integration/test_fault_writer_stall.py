#!/usr/bin/env python3
"""A writer that holds LMDB's writer lock and never commits (a stopped or
hung process; here the writer-hold tool, deterministically) must not hold
up order-api. New orders go to its write-ahead journal and are answered
201 at once; they reach LMDB once the lock is free. While journaled orders
have waited more than --commit-timeout-ms for their LMDB commit, a create
answers 503 with Retry-After at once and is not stored; a read of an order
not yet in LMDB, a list and a cancel wait for that commit up to the
timeout, then answer 503 with Retry-After.

1. While the lock is held: N concurrent creates (order-api has more
   threads than N) each answer 201 at once (well before the deadline), and
   a retry of one with its Idempotency-Key is a replay of the same order.
   A GET and a status GET of one of those orders, a list of its user's
   orders, a cancel of one of them and a cancel of an order in LMDB each
   answer 503 + Retry-After + a JSON detail at about the deadline; reads
   of an order in LMDB, /healthz and both metrics answer within a second
   meanwhile, and the metrics count the N journaled orders as created and
   Pending. Then N more concurrent creates each answer 503 + Retry-After +
   a JSON detail at once; create_timeouts_total counts N; total_orders
   has not moved; /readyz says why. Once the lock is released /readyz is
   200 by itself, the first N orders are stored (each readable, a retry of
   each key a replay of the same order), neither cancel changed anything,
   and the Idempotency-Keys of the refused creates make new orders (not
   replays): they were never stored. Each stall logs one line when it
   begins and one when it ends.
2. The lock is held again under a steady stream of creates and released
   in its midst: creates got 201 while it was held, every answer is 201
   or 503, none is lost to a client timeout, and the 503s equal the
   timeouts counted.
3. SIGTERM while the lock is held and not let go, with orders journaled
   and two requests in hand (a GET of a journaled order waiting for its
   commit, and a create whose body is still arriving): the create gets
   201 and the GET its 503 at its deadline; order-api then tries to apply
   the journal for the commit timeout and a second, no longer, and exits
   1 with one line saying why. Once the lock is released, the next start
   applies every journaled order (and says how many); each is readable
   and its key a replay.
4. --commit-timeout-ms 100 and 40 holds of 50 to 150 ms (seeded, printed)
   under creates, so that journaled orders reach the deadline just as
   the lock is released: every answer is 201 or 503, the 503s equal the
   timeouts counted, and a status GET of the newest acknowledged order,
   polled meanwhile, answers 200 with that order or 503 (never 404).
Every acknowledged order completes, total_orders equals the 201s exactly
(optest.faults.jepsen_check with no unknown outcome): no 503'd create was
stored. order-ctl check agrees."""

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run, wait_until  # noqa: E402
from optest.client import Client, Response, check_response  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import (Poster, WriterHold, finish, jepsen_check, log_lines_since,  # noqa: E402
                           metric, require_order_ctl, require_writer_hold)

TIMEOUT_MS = 1500     # --commit-timeout-ms
T = TIMEOUT_MS / 1000
N = 20                # concurrent creates while the lock is held
THREADS = 32          # order-api --threads, above N and the reads
MARGIN = 1.0          # s: how late after the deadline a 503 may come
FAST = 1.0            # s: an answer "at once" (well before the deadline)
# A client gives up later than any answer is due, so a create or read
# that waits for the lock for ever shows as a client timeout.
CLIENT_TIMEOUT = T + MARGIN + 2.0
HELD = 8              # orders journaled before the SIGTERM in phase 3
NOT_STORED = "not stored"
NOT_READABLE = "not readable yet"
NOT_CANCELLED = "not cancelled"


def body(i):
    return {"user_id": 500 + i, "item_ids": [i + 1], "total_amount": 2.5}


def key_of(wave, i):
    return "stall-%s-%d" % (wave, i) if i % 2 == 0 else None


def wave_creates(wave):
    """N creates of one wave for concurrent(): even ones carry a key."""
    return [("POST", "/orders/", body(i),
             {"Idempotency-Key": key_of(wave, i)} if key_of(wave, i) else None)
            for i in range(N)]


def num(oid):
    return int(oid[3:])


def check_503(what, r, says):
    if r.status != 503:
        fail("%s: expected 503, got %s %r" % (what, r.status, r.raw[:200]))
    if r.headers.get("retry-after") != "1":
        fail("%s: 503 without Retry-After: 1: %r" % (what, r.headers))
    detail = r.body.get("detail") if isinstance(r.body, dict) else None
    if not isinstance(detail, str) or says not in detail:
        fail("%s: 503 detail does not say %r: %r" % (what, says, r.raw[:200]))


def check_at_deadline(what, elapsed):
    if not T * 0.9 <= elapsed <= T + MARGIN:
        fail("%s: answered after %.2f s, expected about %.1f s (at most %.1f)"
             % (what, elapsed, T, T + MARGIN))


def check_at_once(what, elapsed):
    if elapsed > FAST:
        fail("%s: answered after %.2f s, expected at once (under %.1f s; "
             "the deadline is %.1f s)" % (what, elapsed, FAST, T))


def timeouts(s):
    v = metric(s, "create_timeouts_total")
    if v is None:
        fail("GET /metrics has no order_processing_create_timeouts_total")
    return int(v)


def concurrent(port, requests):
    """Send requests [(method, path, body, headers)] at once, one thread
    and connection each. Returns start, join: start() lets them go (the
    caller may send requests of its own right after); join() waits for
    every answer and returns [(Response, seconds taken, monotonic time of
    the answer)], failing on a request with no answer."""
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests) + 1)

    def one(i, method, path, data, hdrs):
        c = Client(port, timeout=CLIENT_TIMEOUT)
        barrier.wait()
        t0 = time.monotonic()
        try:
            r = c.request(method, path, data, headers=hdrs, retry=False)
        except Exception as e:  # noqa: BLE001
            r = e
        results[i] = (r, time.monotonic() - t0, time.monotonic())
        c.close()

    threads = [threading.Thread(target=one, args=(i,) + tuple(req))
               for i, req in enumerate(requests)]
    for t in threads:
        t.start()

    def join():
        for t in threads:
            t.join(CLIENT_TIMEOUT + 5)
        for i, res in enumerate(results):
            if res is None or isinstance(res[0], Exception):
                fail("%s %s: no answer: %r" % (requests[i][0],
                                               requests[i][1], res))
        return results

    return barrier.wait, join


def stalled_creates(s, acked):
    """Phase 1: creates, reads and cancels while the lock is held."""
    known = acked[0]
    # Every order so far is in LMDB and Completed before the hold.
    wait_until(lambda: all(s.status(o) == "Completed" for o in acked), 20,
               "the first orders to complete")
    before = s.metrics()["total_orders"]
    t_before = timeouts(s)

    with WriterHold(s.datadir):
        # Creates within the deadline: journaled, 201 at once.
        start, join = concurrent(s.port, wave_creates("a"))
        start()
        accepted = join()
        first = []
        for i, (r, took, _) in enumerate(accepted):
            if r.status != 201:
                fail("create %d while the writer lock is held: %s %r"
                     % (i, r.status, r.raw[:200]))
            check_at_once("create %d while the writer lock is held" % i, took)
            first.append(r.body["order_id"])
        slowest = max(x[1] for x in accepted)
        # A retry of a journaled order (not in LMDB yet) is a replay.
        t0 = time.monotonic()
        r = s.request("POST", "/orders/", body(0),
                      headers={"Idempotency-Key": key_of("a", 0)}, retry=False)
        check_at_once("a retry of a journaled create", time.monotonic() - t0)
        if (r.status != 201 or "idempotent-replayed" not in r.headers
                or r.body["order_id"] != first[0]):
            fail("a retry of journaled order %s with its key: %s %r %r"
                 % (first[0], r.status, r.headers, r.raw[:200]))

        # Reads of journaled orders, a list and cancels wait for the
        # commit; reads of an order in LMDB and the metrics do not.
        waits = [
            ("a GET of journaled order %s" % first[1],
             ("GET", "/orders/%s/" % first[1], None, None), NOT_READABLE),
            ("a status GET of journaled order %s" % first[3],
             ("GET", "/api/orders/%s/status/" % first[3], None, None),
             NOT_READABLE),
            ("a list of user %d, who has a journaled order" % body(5)["user_id"],
             ("GET", "/api/orders/?user_id=%d" % body(5)["user_id"], None,
              None), NOT_READABLE),
            ("a cancel of journaled order %s" % first[7],
             ("POST", "/orders/%s/cancel/" % first[7], None, None),
             NOT_CANCELLED),
            ("a cancel of %s, in LMDB" % known,
             ("POST", "/orders/%s/cancel/" % known, None, None),
             NOT_CANCELLED),
        ]
        start, join = concurrent(s.port, [w[1] for w in waits])
        start()
        read_done, m = [], None
        for path in ("/orders/%s/" % known, "/api/orders/%s/status/" % known,
                     "/healthz", "/metrics", "/api/orders/metrics/"):
            t0 = time.monotonic()
            r = s.request("GET", path, check=path != "/metrics", retry=False)
            took = time.monotonic() - t0
            if r.status != 200 or took > FAST:
                fail("GET %s while the writer lock is held: %s after %.2f s"
                     % (path, r.status, took))
            read_done.append(time.monotonic())
            if path == "/api/orders/metrics/":
                m = r.body
        # The journaled orders count as created and Pending.
        if (m["total_orders"] != before + N
                or m["order_status_count"]["Pending"] != N):
            fail("metrics with %d orders journaled, %d before: %r"
                 % (N, before, m))
        done = join()
        for (what, _, says), (r, took, _) in zip(waits, done):
            check_503(what + " while the writer lock is held", r, says)
            check_at_deadline(what + " while the writer lock is held", took)
        if max(read_done) >= min(x[2] for x in done):
            fail("the reads did not answer while the others were waiting")

        # The journaled orders have waited longer than the deadline now:
        # creates are refused at once, and not stored.
        if timeouts(s) != t_before:
            fail("creates timed out before the deadline: %d"
                 % (timeouts(s) - t_before))
        start, join = concurrent(s.port, wave_creates("b"))
        start()
        refused = join()
        for i, (r, took, _) in enumerate(refused):
            what = "create %d after the deadline" % i
            check_503(what, r, NOT_STORED)
            check_at_once(what, took)
        if timeouts(s) != t_before + N:
            fail("create_timeouts_total went up by %d after %d refused creates"
                 % (timeouts(s) - t_before, N))
        total = s.metrics()["total_orders"]
        if total != before + N:
            fail("total_orders %d, expected %d: the %d refused creates "
                 "were counted" % (total, before + N, N))
        # Still a replay while new creates are refused: that order is stored.
        r = s.request("POST", "/orders/", body(0),
                      headers={"Idempotency-Key": key_of("a", 0)}, retry=False)
        if (r.status != 201 or "idempotent-replayed" not in r.headers
                or r.body["order_id"] != first[0]):
            fail("a retry of journaled order %s while creates time out: %s %r %r"
                 % (first[0], r.status, r.headers, r.raw[:200]))
        if timeouts(s) != t_before + N:
            fail("a replay while creates time out was counted as a timeout")
        r = s.request("GET", "/readyz", check=False, retry=False)
        if r.status != 503 or "creates time out" not in str(r.body):
            fail("/readyz while creates time out: %s %r" % (r.status, r.body))
        print("held: %d creates 201 in at most %.2f s, reads and cancels of "
              "journaled orders 503 in %.2f-%.2f s, then %d creates 503 in at "
              "most %.2f s; /readyz said %r"
              % (N, slowest, min(x[1] for x in done), max(x[1] for x in done),
                 N, max(x[1] for x in refused), r.body["detail"]))

    # Released, with no create coming: /readyz is 200 again by itself.
    wait_until(lambda: s.request("GET", "/readyz", check=False,
                                 retry=False).status == 200,
               5, "/readyz 200 after the writer lock is released")

    # The first orders are stored, once each: each is readable, and a
    # retry of its key is a replay of it. The cancels changed nothing:
    # the journaled order is not Cancelled, known is still Completed
    # (and a cancel of it now is a 409).
    for i, oid in enumerate(first):
        st = s.status(oid)
        if st == "Cancelled":
            fail("order %s was cancelled by a cancel answered 503" % oid)
        if key_of("a", i):
            r = s.request("POST", "/orders/", body(i),
                          headers={"Idempotency-Key": key_of("a", i)},
                          retry=False)
            if (r.status != 201 or "idempotent-replayed" not in r.headers
                    or r.body["order_id"] != oid):
                fail("retry of %s (key %s) after the release: %s %r %r"
                     % (oid, key_of("a", i), r.status, r.headers,
                        r.raw[:200]))
    acked.extend(first)
    r = s.request("POST", "/orders/%s/cancel/" % known, check=False, retry=False)
    if r.status != 409 or s.status(known) != "Completed":
        fail("the cancel after the release: %s, %s is %s"
             % (r.status, known, s.status(known)))
    # The refused creates were never stored: their keys make new orders.
    c = Client(s.port, timeout=CLIENT_TIMEOUT)
    for i in range(N):
        hdrs = {"Idempotency-Key": key_of("b", i)} if key_of("b", i) else None
        r = c.request("POST", "/orders/", body(i), headers=hdrs, retry=False)
        if r.status != 201:
            fail("retry %d after the release: %s %r" % (i, r.status, r.raw[:200]))
        if "idempotent-replayed" in r.headers:
            fail("retry %d with key %s was a replay: the 503'd create "
                 "was stored" % (i, key_of("b", i)))
        acked.append(r.body["order_id"])
    c.close()
    total = s.metrics()["total_orders"]
    if total != before + 2 * N:
        fail("total_orders %d after the release, expected %d"
             % (total, before + 2 * N))


def release_under_load(s, acked):
    """Phase 2: the lock is held, then released, under steady creates."""
    before = timeouts(s)
    poster = Poster(s, threads=6, timeout=CLIENT_TIMEOUT)
    with WriterHold(s.datadir) as hold:
        poster.start()
        wait_until(lambda: timeouts(s) >= before + 12, 20,
                   "creates to time out while the writer lock is held")
        held = poster.count()
        if held == 0:
            fail("no create got 201 while the writer lock was held")
        hold.release()
        poster.wait_for(poster.count() + 100, timeout=30)
    poster.stop()
    if poster.uncertain:
        fail("%d creates had no answer in %.1f s" % (poster.uncertain,
                                                     CLIENT_TIMEOUT))
    refused = timeouts(s) - before
    if poster.refused != refused:
        fail("%d creates answered 503, but %d timeouts were counted"
             % (poster.refused, refused))
    print("under load: %d created (%d while held), %d answered 503 around "
          "the release" % (len(poster.acked), held, poster.refused))
    acked.extend(poster.acked)


class SlowCreate:
    """A POST /orders/ whose headers and first half of the body are sent
    now, the rest by finish(), which returns the answer."""

    def __init__(self, port, data, headers):
        raw = json.dumps(data).encode()
        head = ("POST /orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n"
                % len(raw))
        head += "".join("%s: %s\r\n" % kv for kv in headers.items())
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=CLIENT_TIMEOUT)
        self.sock.sendall(head.encode() + b"\r\n" + raw[:len(raw) // 2])
        self.rest = raw[len(raw) // 2:]

    def finish(self):
        self.sock.sendall(self.rest)
        resp = http.client.HTTPResponse(self.sock, method="POST")
        resp.begin()
        raw = resp.read()
        hl = {k.lower(): v for k, v in resp.getheaders()}
        check_response("POST", "/orders/", resp.status, hl, raw)
        self.sock.close()
        return Response(resp.status, hl, json.loads(raw), raw)


def log_size(s):
    return os.path.getsize(s.api_log)


def stop_while_held(s, acked):
    """Phase 3: SIGTERM while the lock is held and not let go."""
    # Every order so far in LMDB (ids are applied in order), so that
    # what the journal keeps is exactly what the hold journals.
    s.status(max(acked, key=num))
    api_args = ["--threads", str(THREADS), "--commit-timeout-ms",
                str(TIMEOUT_MS)]
    held, keys = [], {}
    get = []

    def get_status(oid):
        c = Client(s.port, timeout=CLIENT_TIMEOUT)
        t0 = time.monotonic()
        r = c.request("GET", "/api/orders/%s/status/" % oid, retry=False)
        get.append((r, t0, time.monotonic()))
        c.close()

    with WriterHold(s.datadir):
        for i in range(HELD):
            hdrs = {"Idempotency-Key": "held-%d" % i} if i % 2 == 0 else None
            t0 = time.monotonic()
            r = s.request("POST", "/orders/", body(i), headers=hdrs,
                          retry=False)
            check_at_once("create %d while the writer lock is held" % i,
                          time.monotonic() - t0)
            if r.status != 201:
                fail("create %d while the writer lock is held: %s %r"
                     % (i, r.status, r.raw[:200]))
            held.append(r.body["order_id"])
            if hdrs:
                keys[held[-1]] = (i, hdrs)
        slow = SlowCreate(s.port, body(HELD), {"Idempotency-Key": "held-slow"})
        t = threading.Thread(target=get_status, args=(held[-1],))
        t.start()
        # Both are in hand (the gauge counts the /metrics request too).
        wait_until(lambda: metric(s, "http_requests_in_flight") == 3,
                   5, "the GET and the create in hand")
        # No idle keep-alive connection of ours: civetweb's stop would
        # wait for its poll (about half a second), not order-api's.
        s.client.close()
        offset = log_size(s)
        t_term = time.monotonic()
        os.kill(s.api.pid, signal.SIGTERM)
        wait_until(lambda: any("stopping on SIGTERM" in line for line in
                               log_lines_since(s.api_log, offset)),
                   5, "order-api to log the SIGTERM")
        r = slow.finish()
        if r.status != 201:
            fail("the create in hand at the SIGTERM: %s %r"
                 % (r.status, r.raw[:200]))
        held.append(r.body["order_id"])
        keys[held[-1]] = (HELD, {"Idempotency-Key": "held-slow"})
        try:
            rc = s.api.proc.wait(2 * T + 1 + MARGIN + 10)
        except subprocess.TimeoutExpired:
            fail("order-api did not stop in %.0f s while the writer lock "
                 "was held" % (time.monotonic() - t_term))
        t_exit = time.monotonic()
        t.join(CLIENT_TIMEOUT)
        if len(get) != 1:
            fail("the GET in hand at the SIGTERM got no answer")
        r, t_get, t_answer = get[0]
        check_503("the GET in hand at the SIGTERM", r, NOT_READABLE)
        check_at_deadline("the GET in hand at the SIGTERM", t_answer - t_get)
        # It answered at its deadline; then order-api waited for the
        # apply for the commit timeout and a second: no less (both
        # deadlines count from after t_get; 10 ms for their clocks' ms),
        # not much more.
        if (t_exit - t_get < 2 * T + 1 - 0.01
                or t_exit - t_answer > T + 1 + MARGIN):
            fail("order-api exited %.2f s after the last answer in hand "
                 "(%.2f s after that request), expected %.1f s (at most "
                 "%.1f)" % (t_exit - t_answer, t_exit - t_get, T + 1,
                            T + 1 + MARGIN))
    with open(s.api_log) as log:
        text = log.read()
    said = text.count("could not stop cleanly: no LMDB write transaction "
                      "could begin")
    if rc != 1 or said != 1:
        fail("stopped while the writer lock was held: exit %s, %d lines "
             "saying why" % (rc, said))
    if "requests still in hand" in text:
        fail("order-api stopped with requests unanswered")
    print("SIGTERM with the writer lock held: exit 1 %.1f s after the last "
          "answer in hand" % (t_exit - t_answer))

    # Released: the next start applies what the journal kept.
    s.api = None
    offset = log_size(s)
    s.start_api(extra=api_args)
    applied = [int(m.group(1)) for m in
               (re.search(r"applied ([0-9]+) orders from the journal", line)
                for line in log_lines_since(s.api_log, offset)) if m]
    if applied != [HELD + 1]:
        fail("the start after the SIGTERM applied %r orders from the "
             "journal, expected [%d]" % (applied, HELD + 1))
    for oid in held:
        s.status(oid)
        if oid in keys:
            i, hdrs = keys[oid]
            r = s.request("POST", "/orders/", body(i), headers=hdrs, retry=False)
            if (r.status != 201 or "idempotent-replayed" not in r.headers
                    or r.body["order_id"] != oid):
                fail("retry of %s (key %s) after the restart: %s %r %r"
                     % (oid, hdrs["Idempotency-Key"], r.status, r.headers,
                        r.raw[:200]))
    print("the start after it applied the %d journaled orders" % len(held))
    acked.extend(held)


def release_at_deadlines(s, acked):
    """Phase 4: holds about as long as a short deadline, under load."""
    s.stop_api()
    s.start_api(extra=["--threads", str(THREADS), "--commit-timeout-ms", "100"])
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    poster = Poster(s, threads=8, timeout=CLIENT_TIMEOUT).start()
    stop = threading.Event()
    reads = {200: 0, 503: 0}
    bad = []

    def reader():
        c = Client(s.port, timeout=CLIENT_TIMEOUT)
        while not stop.is_set():
            with poster.lock:
                oid = poster.acked[-1]
            try:
                r = c.request("GET", "/api/orders/%s/status/" % oid,
                              retry=False)
            except Exception as e:  # noqa: BLE001
                bad.append((oid, repr(e)))
                break
            if r.status == 200 and r.body.get("order_id") == oid:
                reads[200] += 1
            elif (r.status == 503 and r.headers.get("retry-after") == "1"
                  and NOT_READABLE in str(r.body)):
                reads[503] += 1
            else:
                bad.append((oid, r.status, r.raw[:200]))
                break
        c.close()

    poster.wait_for(1)
    rt = threading.Thread(target=reader)
    rt.start()
    # The sleeps are the fault's schedule, not a wait for a result.
    for _ in range(40):
        with WriterHold(s.datadir):
            time.sleep(rng.uniform(0.05, 0.15))
        time.sleep(rng.uniform(0, 0.03))
    stop.set()
    rt.join(CLIENT_TIMEOUT + 5)
    poster.stop()
    refused = timeouts(s)
    print("deadline races (seed %d): %d created, %d answered 503; reads of "
          "the newest: %d 200, %d 503" % (seed, len(poster.acked),
                                          poster.refused, reads[200],
                                          reads[503]))
    if bad:
        fail("a status GET of an acknowledged order (seed %d): %r"
             % (seed, bad))
    if poster.uncertain:
        fail("%d creates had no answer (seed %d)" % (poster.uncertain, seed))
    if poster.refused != refused:
        fail("%d creates answered 503, but %d timeouts were counted (seed %d)"
             % (poster.refused, refused, seed))
    acked.extend(poster.acked)


def main():
    require_order_ctl()
    require_writer_hold()
    with System("writer-stall") as s:
        s.start_api(extra=["--threads", str(THREADS),
                           "--commit-timeout-ms", str(TIMEOUT_MS)])
        s.start_worker(workers=2, pickup_ms=0, processing_ms=0, lease_ms=2000)
        acked = [s.create_order(user_id=9) for _ in range(5)]

        stalled_creates(s, acked)
        release_under_load(s, acked)
        with open(s.api_log) as log:
            text = log.read()
        began = text.count("journaled orders waited more than %d ms for "
                           "their LMDB commit" % TIMEOUT_MS)
        ended = text.count("journaled orders reach LMDB again; creates are "
                           "accepted")
        if began != 2 or ended != 2:
            fail("expected one log line as each of 2 stalls began and one "
                 "as it ended, found %d and %d" % (began, ended))
        stop_while_held(s, acked)
        release_at_deadlines(s, acked)

        m = jepsen_check(s, acked, uncertain=0)
        if m["total_orders"] != len(acked):
            fail("total_orders %d, %d creates acknowledged"
                 % (m["total_orders"], len(acked)))
        finish(s, acked, total=len(acked))


if __name__ == "__main__":
    run(main)
