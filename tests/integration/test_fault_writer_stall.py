#!/usr/bin/env python3
"""A writer that holds LMDB's writer lock and never commits (a stopped or
hung process; here the writer-hold tool, deterministically) must not hold
up order-api: a create that cannot be committed within
--commit-timeout-ms answers 503 with Retry-After, and is not stored.

1. While the lock is held, N concurrent creates (order-api has more
   threads than N) each answer 503 + Retry-After + a JSON detail within the
   deadline and a margin; a GET of an order, /healthz and the metrics
   answer within a second meanwhile; create_timeouts_total counts N;
   total_orders has not moved. Once the lock is released, creates succeed
   again, and the same Idempotency-Keys make new orders (not replays): the
   503'd ones were never stored.
2. The lock is held again under a steady stream of creates and released
   in its midst: every answer is 201 or 503, none is lost to a client
   timeout, and the 503s equal the timeouts counted.
3. The same with --commit-timeout-ms 100 and 40 holds of 50 to 150 ms
   (seeded, printed), so that transactions begin just as waiters reach
   their deadline: a waiter that withdrew is never in a batch, one taken
   is never answered 503.
Every acknowledged order completes, total_orders equals the 201s exactly
(faultlib.jepsen_check with no unknown outcome), op-check agrees."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "check")]
import harness as h  # noqa: E402
import faultlib as f  # noqa: E402

TIMEOUT_MS = 1500     # --commit-timeout-ms
N = 20                # concurrent creates while the lock is held
THREADS = 32          # order-api --threads, above N
MARGIN = 1.0          # s: how late after the deadline a 503 may come
READ_LIMIT = 1.0      # s: a read while the lock is held
# A client gives up later than the 503 is due, so an old order-api, whose
# creates wait for the lock for ever, shows as a client timeout.
CLIENT_TIMEOUT = TIMEOUT_MS / 1000 + MARGIN + 2.0


def body(i):
    return {"user_id": 500 + i, "item_ids": [i + 1], "total_amount": 2.5}


def check_503(what, r, elapsed, says="not stored"):
    if r.status != 503:
        h.fail("%s: expected 503, got %s %r" % (what, r.status, r.raw[:200]))
    ra = r.headers.get("retry-after", "")
    if not ra.isdigit() or int(ra) < 1:
        h.fail("%s: 503 without a Retry-After in seconds: %r" % (what, r.headers))
    detail = r.body.get("detail") if isinstance(r.body, dict) else None
    if not isinstance(detail, str) or says not in detail:
        h.fail("%s: 503 detail does not say %r: %r" % (what, says, r.raw[:200]))
    if not TIMEOUT_MS / 1000 * 0.9 <= elapsed <= TIMEOUT_MS / 1000 + MARGIN:
        h.fail("%s: 503 after %.2f s, expected about %.1f s (at most %.1f)"
               % (what, elapsed, TIMEOUT_MS / 1000, TIMEOUT_MS / 1000 + MARGIN))


def timeouts(s):
    v = f.prometheus(s, "create_timeouts_total")
    if v is None:
        h.fail("GET /metrics has no order_processing_create_timeouts_total")
    return int(v)


def stalled_creates(s, acked):
    """Phase 1: N creates and a cancel while the lock is held, reads
    meanwhile."""
    known = acked[0]
    before = s.metrics()["total_orders"]
    results = [None] * N

    def create(i):
        c = h.Client(s.port, timeout=CLIENT_TIMEOUT)
        hdrs = {"Idempotency-Key": "stall-%d" % i} if i % 2 == 0 else None
        barrier.wait()
        t0 = time.monotonic()
        try:
            r = c.request("POST", "/orders/", body(i), headers=hdrs, retry=False)
        except Exception as e:  # noqa: BLE001
            r = e
        results[i] = (r, time.monotonic() - t0, time.monotonic())
        c.close()

    cancelled = []

    def cancel():
        c = h.Client(s.port, timeout=CLIENT_TIMEOUT)
        barrier.wait()
        t0 = time.monotonic()
        r = c.request("POST", "/orders/%s/cancel/" % known, retry=False)
        cancelled.append((r, time.monotonic() - t0))
        c.close()

    with f.WriterHold(s.datadir):
        barrier = threading.Barrier(N + 2)
        threads = [threading.Thread(target=create, args=(i,)) for i in range(N)]
        threads.append(threading.Thread(target=cancel))
        for t in threads:
            t.start()
        barrier.wait()
        read_done = []
        for path in ("/orders/%s/" % known, "/healthz",
                     "/api/orders/%s/status/" % known):
            t0 = time.monotonic()
            r = s.request("GET", path, retry=False)
            took = time.monotonic() - t0
            if r.status != 200 or took > READ_LIMIT:
                h.fail("GET %s while the writer lock is held: %s after %.2f s"
                       % (path, r.status, took))
            read_done.append(time.monotonic())
        for t in threads:
            t.join(CLIENT_TIMEOUT + 5)
        for i, res in enumerate(results):
            if res is None or isinstance(res[0], Exception):
                h.fail("create %d while the writer lock is held: %r" % (i, res))
            check_503("create %d while the writer lock is held" % i, res[0], res[1])
        # A cancel waits for the writer lock as a create does.
        if len(cancelled) != 1:
            h.fail("the cancel while the writer lock is held: %r" % cancelled)
        check_503("a cancel while the writer lock is held", *cancelled[0],
                  says="not cancelled")
        first_503 = min(res[2] for res in results)
        if max(read_done) >= first_503:
            h.fail("the reads did not answer while the creates were waiting")
        # Still held: the counters are read, and nothing was added.
        if timeouts(s) != N:
            h.fail("create_timeouts_total %d after %d timed-out creates"
                   % (timeouts(s), N))
        total = s.metrics()["total_orders"]
        if total != before:
            h.fail("total_orders went from %d to %d with every create refused"
                   % (before, total))
        r = s.request("GET", "/readyz", check=False, retry=False)
        if r.status != 503 or "creates time out" not in str(r.body):
            h.fail("/readyz while creates time out: %s %r" % (r.status, r.body))
        print("%d creates answered 503 in %.2f-%.2f s while the writer lock "
              "was held; /readyz said %r" % (N, min(x[1] for x in results),
                                             max(x[1] for x in results),
                                             r.body["detail"]))

    # Released, with no create coming: /readyz is 200 again by itself.
    h.wait_until(lambda: s.request("GET", "/readyz", check=False,
                                   retry=False).status == 200,
                 5, "/readyz 200 after the writer lock is released")

    # Released: the cancel changed nothing (the order was Completed; a
    # retry is a 409 now), creates work again, and the keys of the 503'd
    # creates were never stored, so their retries create new orders.
    r = s.request("POST", "/orders/%s/cancel/" % known, check=False, retry=False)
    if r.status != 409 or s.status(known) != "Completed":
        h.fail("the cancel after the release: %s, %s is %s"
               % (r.status, known, s.status(known)))
    c = h.Client(s.port, timeout=CLIENT_TIMEOUT)
    for i in range(N):
        hdrs = {"Idempotency-Key": "stall-%d" % i} if i % 2 == 0 else None
        r = c.request("POST", "/orders/", body(i), headers=hdrs, retry=False)
        if r.status != 201:
            h.fail("retry %d after the release: %s %r" % (i, r.status, r.raw[:200]))
        if "idempotent-replayed" in r.headers:
            h.fail("retry %d with key stall-%d was a replay: the 503'd create "
                   "was stored" % (i, i))
        acked.append(r.body["order_id"])
    c.close()


def release_under_load(s, acked):
    """Phase 2: the lock is held, then released, under steady creates."""
    before = timeouts(s)
    poster = f.Poster(s, threads=6, timeout=CLIENT_TIMEOUT)
    with f.WriterHold(s.datadir) as hold:
        poster.start()
        h.wait_until(lambda: timeouts(s) >= before + 12, 20,
                     "creates to time out while the writer lock is held")
        hold.release()
        n = poster.count()
        poster.wait_for(n + 100, timeout=30)
    poster.stop()
    if poster.uncertain:
        h.fail("%d creates had no answer in %.1f s" % (poster.uncertain,
                                                       CLIENT_TIMEOUT))
    refused = timeouts(s) - before
    if poster.refused != refused:
        h.fail("%d creates answered 503, but %d timeouts were counted"
               % (poster.refused, refused))
    print("under load: %d created, %d answered 503 around the release"
          % (len(poster.acked), poster.refused))
    acked.extend(poster.acked)


def release_at_deadlines(s, acked):
    """Phase 3: holds about as long as a short deadline, under load."""
    s.stop_api()
    s.start_api(extra=["--threads", str(THREADS), "--commit-timeout-ms", "100"])
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    poster = f.Poster(s, threads=8, timeout=CLIENT_TIMEOUT).start()
    # The sleeps are the fault's schedule, not a wait for a result.
    for _ in range(40):
        with f.WriterHold(s.datadir):
            time.sleep(rng.uniform(0.05, 0.15))
        time.sleep(rng.uniform(0, 0.03))
    poster.stop()
    refused = timeouts(s)
    print("deadline races (seed %d): %d created, %d answered 503"
          % (seed, len(poster.acked), poster.refused))
    if poster.uncertain:
        h.fail("%d creates had no answer (seed %d)" % (poster.uncertain, seed))
    if poster.refused != refused:
        h.fail("%d creates answered 503, but %d timeouts were counted (seed %d)"
               % (poster.refused, refused, seed))
    acked.extend(poster.acked)


def stop_while_held(s):
    """SIGTERM while the writer lock is held and not let go, a create in
    hand: the create gets its 503, and order-api does not wait for the
    lock past the commit timeout and a second; it exits 1 with one line
    saying why. Then it starts again as usual."""
    answer = []

    def create():
        c = h.Client(s.port, timeout=CLIENT_TIMEOUT)
        answer.append(c.request("POST", "/orders/", body(0), retry=False).status)
        c.close()

    with f.WriterHold(s.datadir):
        # A create waits, so the committer waits on the lock too.
        t = threading.Thread(target=create)
        t.start()
        h.wait_until(lambda: f.prometheus(s, "http_requests_in_flight") == 2,
                     5, "the create in hand")
        t0 = time.monotonic()
        os.kill(s.api.pid, signal.SIGTERM)
        try:
            rc = s.api.proc.wait(TIMEOUT_MS / 1000 + 1 + 10)
        except subprocess.TimeoutExpired:
            h.fail("order-api did not stop in %.0f s while the writer lock "
                   "was held" % (time.monotonic() - t0))
        took = time.monotonic() - t0
        t.join(CLIENT_TIMEOUT)
    if answer != [503]:
        h.fail("the create in hand at the stop got %r, expected 503" % answer)
    with open(s.api_log) as log:
        said = log.read().count("could not stop cleanly: no LMDB write "
                                "transaction could begin")
    if rc != 1 or said != 1:
        h.fail("stopped while the writer lock was held: exit %s, %d lines "
               "saying why" % (rc, said))
    print("SIGTERM with the writer lock held: exit 1 after %.1f s" % took)
    s.api = None
    s.start_api(extra=["--threads", str(THREADS),
                       "--commit-timeout-ms", str(TIMEOUT_MS)])


def main():
    f.require_op_check()
    f.require_writer_hold()
    with h.System("writer-stall") as s:
        s.start_api(extra=["--threads", str(THREADS),
                           "--commit-timeout-ms", str(TIMEOUT_MS)])
        s.start_worker(workers=2, pickup_ms=0, processing_ms=0, lease_ms=2000)
        acked = [s.create_order(user_id=9) for _ in range(5)]

        stalled_creates(s, acked)
        release_under_load(s, acked)
        with open(s.api_log) as log:
            text = log.read()
        stalls = text.count("no commit began within %d ms" % TIMEOUT_MS)
        if stalls != 2:
            h.fail("expected one log line per stall (2), found %d" % stalls)
        resumed = ("commits resumed; %d creates and cancels timed out "
                   "meanwhile" % (N + 1))
        if resumed not in text:
            h.fail("no 'commits resumed' line after the first stall")
        release_at_deadlines(s, acked)
        stop_while_held(s)

        m = f.jepsen_check(s, acked, uncertain=0)
        if m["total_orders"] != len(acked):
            h.fail("total_orders %d, %d creates acknowledged"
                   % (m["total_orders"], len(acked)))
        f.finish(s, acked, total=len(acked))


if __name__ == "__main__":
    h.run(main)
