#!/usr/bin/env python3
"""Idempotent creates, including concurrent retries racing on one key.

POST /api/orders/ with an Idempotency-Key:

- first use -> 201; the same key and the same body again -> 201 with the
  same order_id and `Idempotent-Replayed: true`, and no new order
  (metrics total_orders unchanged);
- the same key with another body -> 422 JSON;
- an invalid key (empty, 256 characters, a control character) -> 400 JSON;
- 50 concurrent POSTs (one thread and one connection each) with one new key
  and one body -> exactly one order; every answer is 201 with that one id,
  or 409 (the first is still in flight); at least one 201;
- after a restart of the API on the same data directory the key still
  replays the same order;
- the same race with two bodies: still one order, the other body 422/409;
- 500 different keys create 500 distinct orders;
- a retry sent the instant the first 201 has been read (on a second
  keep-alive connection, two such clients at once, 1,000 keys) replays the
  first order: the key's in-flight mark is gone before the answer is sent,
  so such a retry never gets 409.

Keys are bound to the body *bytes*, not to the decoded order: the daemon
stores a SHA-256 of the raw body with the key.  The same JSON object
serialised with other whitespace (or another key order) is therefore
"another body" and gets 422, not a replay.  Clients that retry must resend
the exact bytes of the first attempt.
"""

import http.client
import json
import os
import re
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import TestFailure, run  # noqa: E402
from optest.client import check_response, expect_status, raw_request  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import ORDER_ID_RE  # noqa: E402

BODY = {"user_id": 7, "item_ids": [1, 2, 3], "total_amount": "12.50"}
BODY_BYTES = json.dumps(BODY).encode()          # '{"user_id": 7, ...}'
OTHER_BYTES = json.dumps(dict(BODY, user_id=8)).encode()
# the same object, other whitespace: another body as far as the key goes
COMPACT_BYTES = json.dumps(BODY, separators=(",", ":")).encode()
JSON_CT = {"Content-Type": "application/json"}


def post(s, key, body=BODY_BYTES):
    hdrs = dict(JSON_CT)
    if key is not None:
        hdrs["Idempotency-Key"] = key
    return s.request("POST", "/api/orders/", body, hdrs, retry=False)


def order_id(r, what):
    oid = r.body.get("order_id") if isinstance(r.body, dict) else None
    assert isinstance(oid, str) and ORDER_ID_RE.match(oid), \
        "%s: bad order_id in %r" % (what, r.raw)
    return oid


def total(s):
    return s.metrics()["total_orders"]


def replayed(r):
    return r.headers.get("idempotent-replayed", "").lower() == "true"


def basics(s):
    before = total(s)
    r = expect_status(post(s, "k1"), 201, "first POST with key k1")
    oid = order_id(r, "first POST with k1")
    assert not replayed(r), "first POST with k1 says it was replayed: %r" % (r.headers,)
    assert total(s) == before + 1, "first POST with k1 did not add one order"

    for i in range(3):
        r = expect_status(post(s, "k1"), 201, "retry %d of k1, same body" % i)
        assert order_id(r, "retry of k1") == oid, \
            "retry of k1 gave %s, first was %s" % (order_id(r, "retry"), oid)
        assert replayed(r), "retry of k1 lacks Idempotent-Replayed: true: headers %r" % (r.headers,)
    assert total(s) == before + 1, "retries of k1 created orders: total %d, expected %d" % (
        total(s), before + 1)
    o = s.order(oid)
    assert o["user_id"] == 7 and o["item_ids"] == [1, 2, 3] and o["total_amount"] == "12.50", o

    # another body with the same key
    r = expect_status(post(s, "k1", OTHER_BYTES), 422, "k1 with another body")
    assert isinstance(r.body, dict) and isinstance(r.body.get("detail"), str), \
        "422 body is not {detail: ...}: %r" % r.raw
    # the same JSON object with other whitespace is another body too
    r = expect_status(post(s, "k1", COMPACT_BYTES),
                      422, "k1 with the same object, other whitespace")
    assert isinstance(r.body, dict) and r.body.get("detail"), r.raw
    assert total(s) == before + 1, "422s created orders"
    # and the original body still replays after the mismatches
    r = expect_status(post(s, "k1"), 201, "k1 again after the 422s")
    assert order_id(r, "k1 again") == oid and replayed(r), r

    # /orders/ (no /api) shares the keys
    r = expect_status(s.request("POST", "/orders/", BODY_BYTES,
                                dict(JSON_CT, **{"Idempotency-Key": "k1"})), 201, "k1 via /orders/")
    assert order_id(r, "k1 via /orders/") == oid and replayed(r), r

    # a body that fails validation stores no key: the key stays free
    r = post(s, "k-invalid-body", b'{"user_id": "x"}')
    expect_status(r, 400, "invalid body with a key")
    r = expect_status(post(s, "k-invalid-body"), 201, "key reused after a 400")
    assert not replayed(r), "key of a rejected body replayed an order: %r" % (r.headers,)

    # keys are case-sensitive and distinct keys give distinct orders
    r = expect_status(post(s, "K1"), 201, "key K1")
    assert order_id(r, "K1") != oid and not replayed(r), "K1 replayed k1's order"
    # no key: a new order each time
    a = order_id(expect_status(post(s, None), 201, "no key 1"), "no key")
    b = order_id(expect_status(post(s, None), 201, "no key 2"), "no key")
    assert a != b, "two POSTs without a key gave one id %s" % a
    return oid


def invalid_keys(s):
    before = total(s)
    cases = [
        ("empty key", b"Idempotency-Key: \r\n"),
        ("256 characters", b"Idempotency-Key: " + b"a" * 256 + b"\r\n"),
        ("control character", b"Idempotency-Key: ab\x01cd\r\n"),
        ("DEL character", b"Idempotency-Key: ab\x7fcd\r\n"),
        ("non-ASCII", b"Idempotency-Key: ab\xc3\xa9cd\r\n"),
    ]
    problems = []
    for what, line in cases:
        req = (b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + line + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY_BYTES)
               + BODY_BYTES)
        r = raw_request(s.port, req)
        try:
            check_response("POST", what, r.status, r.headers, r.raw)
        except TestFailure as e:
            problems.append(str(e))
        if r.status != 400:
            problems.append("%s: expected 400, got %s %r" % (what, r.status, r.raw[:200]))
    # 255 characters is the longest valid key
    r = expect_status(post(s, "b" * 255), 201, "255-character key")
    r2 = expect_status(post(s, "b" * 255), 201, "255-character key again")
    assert replayed(r2) and order_id(r2, "255") == order_id(r, "255"), r2
    # a printable key with spaces and punctuation is fine
    expect_status(post(s, "a key ~!@#$%^&*()"), 201, "key with spaces and punctuation")
    assert not problems, "invalid keys:\n  " + "\n  ".join(problems)
    assert total(s) == before + 2, "invalid keys created orders: %d -> %d" % (before, total(s))


def concurrent(s, n=50):
    """n threads, each its own connection, one new key, one body."""
    before = total(s)
    key = "race-" + os.urandom(6).hex()
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        try:
            c.connect()
            barrier.wait(10)
            c.request("POST", "/api/orders/", BODY_BYTES,
                      {"Content-Type": "application/json", "Idempotency-Key": key})
            resp = c.getresponse()
            raw = resp.read()
            hl = {k.lower(): v for k, v in resp.getheaders()}
            results[i] = (resp.status, hl, raw)
        except Exception as e:  # noqa: BLE001
            results[i] = ("error", {}, repr(e).encode())
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = set()
    statuses = {}
    for st, hl, raw in results:
        statuses[st] = statuses.get(st, 0) + 1
        assert st in (201, 409), "concurrent POST with one key: got %s %r (all: %r)" % (
            st, raw[:200], statuses)
        check_response("POST", "/api/orders/ (concurrent)", st, hl, raw)
        body = json.loads(raw)
        if st == 201:
            ids.add(body["order_id"])
        else:
            assert isinstance(body.get("detail"), str), raw
    assert statuses.get(201, 0) >= 1, "no 201 among %d concurrent POSTs: %r" % (n, statuses)
    assert len(ids) == 1, "concurrent POSTs with one key gave %d ids: %r" % (len(ids), ids)
    after = total(s)
    assert after == before + 1, "%d concurrent POSTs with one key created %d orders (%r)" % (
        n, after - before, statuses)
    oid = ids.pop()
    # and afterwards the key replays
    r = expect_status(post(s, key), 201, "the raced key afterwards")
    assert order_id(r, "raced key") == oid and replayed(r), r
    print("concurrent: %r, one order %s" % (statuses, oid))
    return key, oid


def concurrent_two_bodies(s, n=40):
    """n threads race one new key, half with BODY and half with another
    body: one order; 201s all carry its id and come from the winning body;
    the other body gets 422 (or 409 while the first is in flight)."""
    before = total(s)
    key = "race2-" + os.urandom(6).hex()
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        body = BODY_BYTES if i % 2 == 0 else OTHER_BYTES
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        try:
            c.connect()
            barrier.wait(10)
            c.request("POST", "/api/orders/", body,
                      {"Content-Type": "application/json", "Idempotency-Key": key})
            resp = c.getresponse()
            results[i] = (body, resp.status, resp.read())
        except Exception as e:  # noqa: BLE001
            results[i] = (body, "error", repr(e).encode())
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = {body for body, st, _ in results if st == 201}
    ids = {json.loads(raw)["order_id"] for _, st, raw in results if st == 201}
    summary = {}
    for body, st, raw in results:
        k = ("A" if body == BODY_BYTES else "B", st)
        summary[k] = summary.get(k, 0) + 1
    assert len(winners) == 1 and len(ids) == 1, \
        "one key raced with two bodies: 201s for %d bodies, %d ids (%r)" % (
            len(winners), len(ids), summary)
    win = winners.pop()
    for body, st, raw in results:
        allowed = (201, 409) if body == win else (422, 409)
        assert st in allowed, "race with two bodies: %s for the %s body: %r (%r)" % (
            st, "winning" if body == win else "losing", raw[:200], summary)
    assert total(s) == before + 1, "race with two bodies created %d orders (%r)" % (
        total(s) - before, summary)
    print("concurrent, two bodies: %r" % summary)


def many_keys(s, n=500):
    before = total(s)
    ids = set()
    for i in range(n):
        r = expect_status(post(s, "many-%d" % i), 201, "key many-%d" % i)
        assert not replayed(r), "new key many-%d replayed: %r" % (i, r.headers)
        ids.add(order_id(r, "many-%d" % i))
    assert len(ids) == n, "%d different keys gave %d distinct ids" % (n, len(ids))
    assert total(s) == before + n, "total_orders %d, expected %d" % (total(s), before + n)
    # spot-check replays
    for i in (0, n // 2, n - 1):
        r = expect_status(post(s, "many-%d" % i), 201, "replay of many-%d" % i)
        assert replayed(r) and order_id(r, "replay") in ids, r


# The races below open 50 connections at once from one address: more than
# the default share of order-api's 64 threads that one address may hold.
API = ["--max-connections-per-address", "64"]


class KeepAlive:
    """One raw keep-alive connection: send a request, read its answer."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read(self):
        """(status, headers lowercased, JSON body) of the next answer."""
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buf[:end].decode("iso-8859-1")
                m = re.search(r"(?im)^content-length:\s*([0-9]+)\s*$", head)
                assert m, "answer without Content-Length: %r" % head
                stop = end + 4 + int(m.group(1))
                if len(self.buf) >= stop:
                    body = self.buf[end + 4:stop]
                    self.buf = self.buf[stop:]
                    lines = head.split("\r\n")
                    hdrs = dict((k.strip().lower(), v.strip()) for k, _, v in
                                (line.partition(":") for line in lines[1:]))
                    return int(lines[0].split(" ")[1]), hdrs, json.loads(body)
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed a keep-alive connection"
            self.buf += chunk

    def close(self):
        self.sock.close()


def immediate_retries(s, clients=2, keys=500):
    """Each client sends a create on one connection and, the instant its
    201 has been read, the same request on another: a replay, never 409."""
    before = total(s)
    results = []
    lock = threading.Lock()

    def client(c):
        first, retry = KeepAlive(s.port), KeepAlive(s.port)
        got = []
        for i in range(keys):
            req = (b"POST /api/orders/ HTTP/1.1\r\nHost: test\r\n"
                   b"Content-Type: application/json\r\n"
                   b"Idempotency-Key: instant-%d-%d\r\n"
                   b"Content-Length: %d\r\n\r\n" % (c, i, len(BODY_BYTES))
                   + BODY_BYTES)
            first.send(req)
            a = first.read()
            retry.send(req)
            got.append((i, a, retry.read()))
        first.close()
        retry.close()
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == clients * keys, "a client did not finish"
    conflicts = [i for i, _, b in results if b[0] == 409]
    assert not conflicts, "%d of %d retries sent the moment the first 201 " \
        "arrived got 409 (still in flight)" % (len(conflicts), len(results))
    for i, (st, hd, body), (st2, hd2, body2) in results:
        assert st == 201 and hd.get("idempotent-replayed") is None, \
            "first create of key %d: %s %r %r" % (i, st, hd, body)
        assert st2 == 201 and hd2.get("idempotent-replayed") == "true" and \
            body2.get("order_id") == body.get("order_id"), \
            "retry of key %d: %s %r %r, first was %r" % (i, st2, hd2, body2, body)
    assert total(s) == before + clients * keys, \
        "total_orders %d, expected %d" % (total(s), before + clients * keys)


def main():
    with System("idem") as s:
        s.start_api(extra=API)
        oid = basics(s)
        invalid_keys(s)
        race_key, race_oid = concurrent(s)
        concurrent_two_bodies(s)
        many_keys(s)
        immediate_retries(s)

        before = total(s)
        s.stop_api()
        s.start_api(extra=API)
        for key, want in (("k1", oid), (race_key, race_oid)):
            r = expect_status(post(s, key), 201, "%s after a restart" % key)
            assert order_id(r, "after restart") == want, \
                "%s after a restart gave %s, before it was %s" % (key, r.body, want)
            assert replayed(r), "%s after a restart lacks Idempotent-Replayed: %r" % (key, r.headers)
        expect_status(post(s, "k1", OTHER_BYTES), 422, "k1 with another body after a restart")
        assert total(s) == before, "replays after the restart created orders"
        s.stop_api()


if __name__ == "__main__":
    run(main)
