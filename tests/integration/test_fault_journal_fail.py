#!/usr/bin/env python3
"""order-api's write-ahead journal failing, injected with the fault shim:
the flush (fdatasync) of a record failing with EIO, then the write (pwrite)
of a record failing with EIO, then both again with ENOSPC (a disk that is
full is not a journal that is full of orders not yet in LMDB: its outcome
is just as unknown).

Each time, with the fault armed for good: a burst of creates sent at once
gets no 201; the creates of the batch whose record failed get 500 "may or
may not have been stored" (no order id), the others 503 (or, should
order-api be exiting already, no answer: in doubt as well); every later
create gets 503 "nothing was stored", /healthz and /readyz 503, while
order-api still answers; it exits with status 4 within seconds, with one
log line naming the journal and the error, and no flood. Started again on
the same data directory (fault disarmed), it applies what the journal
holds: every order answered 201 before is there and completes. What
became of the orders in doubt follows from what failed: a record written
but not flushed is in the file, so its orders are applied ("applied N
orders from the journal" with N at least their number) and a retry with
the same Idempotency-Key is a replay of the same order id; a record never
written holds nothing, so none of them exists and a retry creates a new
order. total_orders lies between the 201s and the 201s plus the orders in
doubt (and is exactly the 201s plus those applied); nothing answered 503
exists. order-ctl check agrees at the end."""

import errno
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run  # noqa: E402
from optest.client import Client, Response  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import (FaultShim, finish, jepsen_check, log_lines_since,  # noqa: E402
                           require_order_ctl)
from optest.orders import check_all_completed, check_order_shape  # noqa: E402

EXIT_STORE = 4
DOUBT = ("The order may or may not have been stored: the journal could not "
         "be written. Retry with the same Idempotency-Key, or look the order "
         "up.")
# Creates sent at once when the fault is armed.
BURST = 4
# The most lines order-api may log from the fault to its exit.
MAX_LINES = 8
APPLIED_RE = re.compile(r"applied ([0-9]+) orders from the journal (\S+) to LMDB")


def show(title, lines):
    print("%s (%d lines):" % (title, len(lines)))
    for line in lines:
        print("    " + line)


def body_of(user, item):
    return {"user_id": user, "item_ids": [item], "total_amount": "3.25"}


def post(s, body, key=None):
    """POST a create on its own connection: a Response, or the exception
    if no answer came (order-api exiting)."""
    c = Client(s.port, timeout=10)
    try:
        return c.request("POST", "/api/orders/", body,
                         {"Idempotency-Key": key} if key else None, retry=False)
    except (OSError, http.client.HTTPException) as e:
        return e
    finally:
        c.close()


def list_user(s, user):
    r = s.request("GET", "/api/orders/?user_id=%d&limit=1000" % user)
    assert r.status == 200, "list of user %d: %r" % (user, r)
    assert r.body["next"] is None, r.raw[:200]
    return r.body["results"]


def burst(s, users, round_no):
    """BURST creates sent at once, one per user, each with its own key:
    [(user, key, Response or exception)]."""
    out = [None] * len(users)
    go = threading.Barrier(len(users))

    def one(i):
        go.wait()
        out[i] = post(s, body_of(users[i], 1), "doubt-%d-%d" % (round_no, i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive(), "a create of the burst got no answer in 30 s"
    return [(users[i], "doubt-%d-%d" % (round_no, i), out[i]) for i in range(len(users))]


def fail_journal(s, shim, round_no, what, err, run_acked):
    """Arm the fault, check every answer until order-api exits, restart it,
    check what the journal gave back; returns the orders that were in
    doubt, as [(user, key, order id or None)]: the id if it was found
    after the restart. run_acked: the creates this order-api answered
    201."""
    why = os.strerror(getattr(errno, err))
    journal = os.path.join(s.datadir, "journal")
    api_pid = s.api.pid
    injected_before = len(shim.faults())
    mark = os.path.getsize(s.api_log)
    users = [100 * round_no + i for i in range(BURST)]
    refused_user = 100 * round_no + 50

    shim.arm(what, err, "always")
    t_armed = time.monotonic()
    doubts = []         # answered 500
    unanswered = []     # no answer: order-api was exiting already
    for user, key, r in burst(s, users, round_no):
        if not isinstance(r, Response):
            print("a create sent at the fault got no answer: %r" % (r,))
            unanswered.append((user, key))
            continue
        assert r.status in (500, 503), \
            "%s %s: a create got %s %r, expected 500 or 503" % (what, err, r.status, r.raw)
        if r.status == 500:
            assert r.body == {"detail": DOUBT}, r.raw
            assert "location" not in r.headers, r.headers
            doubts.append((user, key))
        else:
            assert isinstance(r.body, dict) and r.body.get("detail") \
                and r.body["detail"] != DOUBT, r.raw
    assert doubts, "%s %s: no create of the burst got 500" % (what, err)
    print("%s %s: of %d creates sent at once %d answered 500, %d no answer, "
          "the rest 503" % (what, err, BURST, len(doubts), len(unanswered)))

    # Until it exits: creates 503, /healthz and /readyz 503.
    answered = {"create": 0, "/healthz": 0, "/readyz": 0}
    details = set()
    item = 0
    while s.api.proc.poll() is None and time.monotonic() - t_armed < 15:
        item += 1
        r = post(s, body_of(refused_user, item))
        if isinstance(r, Response):
            assert r.status == 503, \
                "create #%d after the journal failed: %s %r" % (item, r.status, r.raw)
            assert isinstance(r.body, dict) and r.body.get("detail") \
                and r.body["detail"] != DOUBT, r.raw
            details.add(r.body["detail"])
            answered["create"] += 1
        for path in ("/healthz", "/readyz"):
            try:
                r = s.request("GET", path, check=False, retry=False)
            except (OSError, http.client.HTTPException):
                s.client.close()
                continue
            assert r.status == 503, \
                "%s %s %r after the journal failed" % (path, r.status, r.raw)
            answered[path] += 1
        time.sleep(0.01)
    s.client.close()
    try:
        rc = s.api.proc.wait(10)
    except subprocess.TimeoutExpired:
        fail("order-api still runs %.0f s after its journal failed"
             % (time.monotonic() - t_armed))
    exited_s = time.monotonic() - t_armed
    print("order-api exited with status %s %.2f s after the fault; meanwhile "
          "%d creates answered 503 %r, /healthz 503 %d times, /readyz 503 %d "
          "times" % (rc, exited_s, answered["create"], sorted(details),
                     answered["/healthz"], answered["/readyz"]))
    assert rc == EXIT_STORE, "order-api exited with %s, expected %d" % (rc, EXIT_STORE)

    injected = shim.faults()[injected_before:]
    assert injected == [(api_pid, what, err)], \
        "expected one %s %s in order-api (pid %d), got %r" % (what, err, api_pid, injected)
    lines = log_lines_since(s.api_log, mark)
    show("order-api's log from the fault to its exit", lines)
    clear = [l for l in lines if journal in l and why in l]
    assert len(clear) == 1, \
        "expected one line naming the journal %s and %r, got %r" % (journal, why, clear)
    assert len(lines) <= MAX_LINES, "a flood of %d lines" % len(lines)

    # Started again on the same data directory, the disk working.
    shim.disarm()
    mark = os.path.getsize(s.api_log)
    s.start_api(env=shim.env())
    s.wait_ready()
    lines = log_lines_since(s.api_log, mark)
    applied = [APPLIED_RE.search(l) for l in lines]
    applied = [(int(m.group(1)), m.group(2)) for m in applied if m]
    print("order-api's start: %r" % [l for l in lines if "journal" in l])

    # The record of a failed flush was written: its orders are in the file.
    written = what == "jsync"
    found = {}
    for user, key in doubts + unanswered:
        got = list_user(s, user)
        if (user, key) in doubts:
            assert len(got) == (1 if written else 0), \
                "user %d (answered 500 after a failed %s): %r" % (user, what, got)
        else:
            assert len(got) <= 1, "user %d: %r" % (user, got)
        if got:
            o = got[0]
            check_order_shape(o)
            assert (o["item_ids"], o["total_amount"]) == ([1], "3.25"), o
            found[user] = o["order_id"]
    for user in users + [refused_user]:
        if all(user != d[0] for d in doubts + unanswered):
            assert list_user(s, user) == [], \
                "user %d was answered 503, yet has orders" % user
    if written:
        # Their batch and any acknowledged orders not yet in LMDB.
        assert len(applied) == 1 and applied[0][1] == journal, \
            "no line 'applied N orders from the journal %s' at the start: %r" % (journal, lines)
        n = applied[0][0]
        assert len(doubts) <= n <= len(found) + run_acked, \
            "applied %d orders from the journal: %d answered 500, %d found, " \
            "%d acknowledged in that run" % (n, len(doubts), len(found), run_acked)
    else:
        # Only acknowledged orders not yet in LMDB, if any.
        assert len(applied) <= 1 and all(p == journal and n <= run_acked
                                         for n, p in applied), \
            "applied %r from the journal, %d acknowledged in that run" % (applied, run_acked)
    print("after the restart: %d of %d orders in doubt exist, %r applied from "
          "the journal" % (len(found), len(doubts) + len(unanswered),
                           [n for n, _ in applied]))
    return [(user, key, found.get(user)) for user, key in doubts + unanswered]


def settle(s, acked, doubts):
    """Every 201 completes, the total is within the doubt and exactly the
    201s plus those found; then each order in doubt is retried with its
    key: a replay of the order found, or a new order. Returns the ids the
    retries acknowledged."""
    found = [oid for _, _, oid in doubts if oid is not None]
    m = jepsen_check(s, acked, uncertain=len(doubts))
    assert m["total_orders"] == len(acked) + len(found), \
        "total_orders %d: %d acknowledged, %d orders in doubt found" \
        % (m["total_orders"], len(acked), len(found))
    for oid in found:
        assert s.status(oid) == "Completed", oid
    retried = []
    for user, key, oid in doubts:
        r = post(s, body_of(user, 1), key)
        assert isinstance(r, Response) and r.status == 201, \
            "retry of key %s: %r" % (key, r)
        replayed = r.headers.get("idempotent-replayed") == "true"
        if oid is not None:
            assert replayed and r.body["order_id"] == oid, \
                "retry of %s, stored as %s: %r %r" % (key, oid, r.headers, r.raw)
        else:
            assert not replayed and r.body["order_id"] not in acked, \
                "retry of %s, never stored: %r %r" % (key, r.headers, r.raw)
        retried.append(r.body["order_id"])
    print("retries with the same keys: %d replays, %d new orders"
          % (len(found), len(doubts) - len(found)))
    return retried


def main():
    require_order_ctl()
    with System("journal-fail") as s:
        shim = FaultShim(s)
        s.start_api(env=shim.env())
        s.start_worker(workers=1, pickup_ms=0, processing_ms=20, lease_ms=2000)
        s.wait_ready()
        acked = []
        started = 0     # len(acked) when order-api last started
        for round_no, (what, err) in enumerate((("jsync", "EIO"), ("jdata", "EIO"),
                                                   ("jsync", "ENOSPC"), ("jdata", "ENOSPC")), 1):
            acked += [s.create_order(user_id=2) for _ in range(10)]
            doubts = fail_journal(s, shim, round_no, what, err, len(acked) - started)
            started = len(acked)
            acked += settle(s, acked, doubts)
            check_all_completed(s, acked)
        m = jepsen_check(s, acked)
        assert m["total_orders"] == len(acked), m
        finish(s, acked, total=len(acked))
        print(json.dumps(m))


if __name__ == "__main__":
    run(main)
