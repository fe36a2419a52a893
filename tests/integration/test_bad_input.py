#!/usr/bin/env python3
"""Hostile and malformed input (malformed JSON, hostile HTTP framing):
every answer is a JSON 4xx, the API never crashes, and it keeps serving.

Unlike the other scripts this one runs every case and reports all the
failures at the end; an API that dies is restarted so that later cases
still run."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import Soft, TestFailure, run  # noqa: E402
from optest.client import check_response, raw_request  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import check_metrics_consistent  # noqa: E402

J = b"Content-Type: application/json\r\n"
GOOD = b'{"user_id": 1, "item_ids": [1], "total_amount": 1}'


def post(body, extra=b"", path=b"/orders/"):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + J + extra +
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


def order_with(amount=b"1", user=b"1", items=b"[1]", extra=b""):
    return (b'{"user_id": ' + user + b', "item_ids": ' + items +
            b', "total_amount": ' + amount + extra + b'}')


def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"Connection: close\r\n\r\n"


def nested(depth, o=b"[", c=b"]"):
    return o * depth + c * depth


def nested_obj(depth):
    return b'{"a": ' * depth + b"1" + b"}" * depth


CASES = [
    # (what, raw request, allowed statuses)
    ("arrays nested 100 deep", post(nested(100)), {400}),
    ("arrays nested 900 deep", post(nested(900)), {400}),
    ("arrays nested 2000 deep", post(nested(2000)), {400}),
    ("arrays nested 30000 deep", post(nested(30000)), {400}),
    ("objects nested 2000 deep", post(nested_obj(2000)), {400}),
    ("user_id an array nested 900 deep", post(order_with(user=nested(900))), {400}),
    ("item_ids nested 2000 deep", post(order_with(items=nested(2000))), {400}),
    ("invalid UTF-8 in a string", post(order_with(extra=b', "note": "\xff\xfe"')), {400}),
    ("invalid UTF-8 in total_amount", post(order_with(amount=b'"1\xff"')), {400}),
    ("NUL in the body", post(GOOD[:-1] + b"\x00}"), {400}),
    ("total_amount 1e400", post(order_with(amount=b"1e400")), {400}),
    ("total_amount -1e400", post(order_with(amount=b"-1e400")), {400}),
    ("total_amount NaN", post(order_with(amount=b"NaN")), {400}),
    ("total_amount Infinity", post(order_with(amount=b"Infinity")), {400}),
    ('total_amount "NaN"', post(order_with(amount=b'"NaN"')), {400}),
    ('total_amount "inf"', post(order_with(amount=b'"inf"')), {400}),
    ("total_amount 5000 digits", post(order_with(amount=b"1" * 5000)), {400}),
    ("total_amount 11 digits", post(order_with(amount=b"12345678901")), {400}),
    ("total_amount 3 decimals 0.125", post(order_with(amount=b"0.125")), {400}),
    ("user_id 1e400", post(order_with(user=b"1e400")), {400}),
    ("user_id 5000 digits", post(order_with(user=b"9" * 5000)), {400}),
    ("item id 1e30", post(order_with(items=b"[1e30]")), {400}),
    ("malformed number 00.5 (leading zero)", post(order_with(amount=b"00.5")), {400}),
    ("malformed number 1. (no digits after the point)", post(order_with(amount=b"1.")), {400}),
    ("malformed number .5", post(order_with(amount=b".5")), {400}),
    ("malformed number +1", post(order_with(amount=b"+1")), {400}),
    ("unterminated string", post(b'{"user_id": 1, "item_ids": [1], "total_amount": "1.00}'), {400}),
    ("truncated body", post(GOOD[:20]), {400}),
    ("duplicate keys", post(b'{"user_id": 1, "user_id": 2, "item_ids": [1], "total_amount": 1}'),
     {400, 201}),
    ("single quotes", post(b"{'user_id': 1, 'item_ids': [1], 'total_amount': 1}"), {400}),
    ("body only whitespace", post(b"   \r\n "), {400}),
    ("1000 item ids", post(order_with(items=b"[" + b",".join([b"7"] * 1000) + b"]")), {201}),
    # the original API set no limit; this one caps item_ids at 1000
    # (ORDER_MAX_ITEMS, order.h): 201 or a 400 field error
    ("10000 item ids", post(order_with(items=b"[" + b",".join([b"7"] * 10000) + b"]")), {201, 400}),
    # HTTP framing
    ("Content-Length abc",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: abc\r\nConnection: close\r\n\r\n{}",
     {400, 411}),
    ("Content-Length -1",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: -1\r\nConnection: close\r\n\r\n{}",
     {400, 411}),
    ("Content-Length 2^64",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J +
     b"Content-Length: 18446744073709551616\r\nConnection: close\r\n\r\n{}", {400, 413}),
    ("no Content-Length",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Connection: close\r\n\r\n", {400, 411}),
    ("Transfer-Encoding chunked",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J +
     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n", {400, 411}),
    ("Transfer-Encoding chunked and Content-Length",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J +
     b"Transfer-Encoding: chunked\r\nContent-Length: 7\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     {400}),
    ("Transfer-Encoding gzip",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J +
     b"Transfer-Encoding: gzip\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", {400}),
    ("body of 64 KiB + 1", post(GOOD + b" " * (65537 - len(GOOD))), {413}),
    ("body of exactly 64 KiB", post(GOOD + b" " * (65536 - len(GOOD))), {201}),
    ("Content-Length 10 MB (body not sent)",
     b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: 10000000\r\nConnection: close\r\n\r\n",
     {413}),
    # paths
    ("id %00", get(b"/orders/%00/"), {404}),
    ("id ORD1%00", get(b"/orders/ORD1%00/"), {404}),
    ("status of id %00", get(b"/api/orders/%00/status/"), {404}),
    ("id %2e%2e", get(b"/orders/%2e%2e/"), {404}),
    ("id ../", get(b"/orders/../"), {404, 400, 200}),
    ("id with a space", get(b"/orders/1%20/"), {404}),
    ("id 2^64", get(b"/orders/18446744073709551616/"), {404}),
    ("id ORD with 30 digits", get(b"/orders/ORD" + b"9" * 30 + b"/"), {404}),
    ("a 20 KiB header", get(b"/orders/", b"X-Big: " + b"a" * 20480 + b"\r\n"), {400, 413, 431}),
    ("unknown method FOO", b"FOO /orders/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
     {405, 400, 501}),
    ("HTTP/1.0 without Host", b"GET /healthz HTTP/1.0\r\n\r\n", {200}),
    ("HTTP/1.0 GET order list", b"GET /orders/?limit=1 HTTP/1.0\r\n\r\n", {200}),
]


M_DIGITS = "Ensure that there are no more than 10 digits in total."
M_PLACES = "Ensure that there are no more than 2 decimal places."
M_INTEGER = "A valid integer is required."
M_MAX_INTEGER = "Ensure this value is less than or equal to 9007199254740991."

# Numbers are judged by their exact text: each of these only rounds (as a
# double) to a valid value, and is a 400 with the field's error.
INEXACT = [
    ("total_amount 250.750000000000001", order_with(amount=b"250.750000000000001"),
     {"total_amount": [M_DIGITS]}),
    ("total_amount 1e-400", order_with(amount=b"1e-400"), {"total_amount": [M_DIGITS]}),
    ("user_id 9007199254740991.4", order_with(user=b"9007199254740991.4"),
     {"user_id": [M_INTEGER]}),
    ("item id 1.0000000000000001", order_with(items=b"[1.0000000000000001]"),
     {"item_ids": ["Item 0: " + M_INTEGER]}),
    ("total_amount 100.001", order_with(amount=b"100.001"), {"total_amount": [M_PLACES]}),
    ("user_id 1e999999999", order_with(user=b"1e999999999"), {"user_id": [M_MAX_INTEGER]}),
    ("total_amount 1e999999999", order_with(amount=b"1e999999999"),
     {"total_amount": [M_DIGITS]}),
]

# Exact forms of valid values: (what, body, user_id, item_ids, total_amount).
EXACT = [
    ("total_amount 2.5075e2", order_with(amount=b"2.5075e2"), 1, [1], "250.75"),
    ("total_amount 25075e-2", order_with(amount=b"25075e-2"), 1, [1], "250.75"),
    ("total_amount 1.000e2", order_with(amount=b"1.000e2"), 1, [1], "100.00"),
    ("total_amount 100.00", order_with(amount=b"100.00"), 1, [1], "100.00"),
    ("total_amount of 70 characters",
     order_with(amount=b"250.75" + b"0" * 64), 1, [1], "250.75"),
    ("ids 2.0, 1e0 and 9.007199254740991e15",
     order_with(user=b"2.0", items=b"[1e0, 9.007199254740991e15]"), 2,
     [1, 9007199254740991], "1.00"),
]


def exact_numbers(s, failures):
    """Inexact numbers are a JSON 400 with the field error and store
    nothing; exact forms of valid values are stored as they are written.
    Returns how many orders were created."""
    before = s.metrics()["total_orders"]
    for what, body, want in INEXACT:
        r = s.request("POST", "/orders/", body, {"Content-Type": "application/json"})
        if r.status != 400 or r.body != want:
            failures.add("%s: %s %r, expected 400 %r" % (what, r.status, r.raw[:200], want))
    after = s.metrics()["total_orders"]
    if after != before:
        failures.add("inexact numbers: total_orders went from %d to %d" % (before, after))
    created = 0
    for what, body, user, items, amount in EXACT:
        r = s.request("POST", "/orders/", body, {"Content-Type": "application/json"})
        if r.status != 201:
            failures.add("%s: %s %r, expected 201" % (what, r.status, r.raw[:200]))
            continue
        created += 1
        o = s.order(r.body["order_id"])
        got = (o["user_id"], o["item_ids"], o["total_amount"])
        if got != (user, items, amount):
            failures.add("%s: stored as %r, expected %r" % (what, got, (user, items, amount)))
    return created


def run_case(s, what, data, allowed, failures):
    try:
        r = raw_request(s.port, data, timeout=30)
    except Exception as e:  # noqa: BLE001
        alive = s.api.running()
        time.sleep(0.3)
        rc = s.api.proc.poll()
        failures.add("%s: no answer (%r); order-api %s" % (
            what, e, "still running" if rc is None else "DIED with exit status %s" % rc))
        check_alive(s, what, Soft())  # counted once, above
        return None
    problems = []
    if r.status not in allowed:
        problems.append("status %s, expected one of %s" % (r.status, sorted(allowed)))
    try:
        check_response("X", what, r.status, r.headers, r.raw)
    except TestFailure as e:
        problems.append(str(e))
    if r.status == 405 and "allow" not in r.headers:
        problems.append("405 without Allow")
    if problems:
        failures.add("%s: %s; body %r" % (what, "; ".join(problems), r.raw[:160]))
    check_alive(s, what, failures)
    return r


def check_alive(s, what, failures):
    """After each case: the API still answers /healthz (restart it if not)."""
    try:
        ok = s.request("GET", "/healthz", retry=True).status == 200
    except Exception:  # noqa: BLE001
        ok = False
    if not ok or not s.api.running():
        time.sleep(0.2)
        rc = s.api.proc.poll()
        failures.add("%s: order-api no longer serving after the request (exit status %s)"
                     % (what, rc))
        if rc is None:
            s.kill_api()
        s.start_api()


def expect_continue(s, failures):
    """Expect: 100-continue is answered before the client sends its body."""
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        c.sendall(b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J +
                  b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(GOOD))
        c.settimeout(3)
        try:
            first = c.recv(4096)
        except socket.timeout:
            first = b""
        if not first.startswith(b"HTTP/1.1 100"):
            failures.add("Expect: 100-continue: no 100 Continue within 3 s (got %r)" % first[:60])
            if first.startswith(b"HTTP/1.1 4"):
                return
        c.sendall(GOOD)
        c.settimeout(10)
        buf = first.partition(b"\r\n\r\n")[2] if first.startswith(b"HTTP/1.1 100") else first
        while b"\r\n\r\n" not in buf:
            chunk = c.recv(4096)
            if not chunk:
                break
            buf += chunk
        if not buf.startswith(b"HTTP/1.1 201"):
            failures.add("Expect: 100-continue: final answer %r" % buf[:60])
    finally:
        c.close()


def pipelined(s, failures):
    """Two requests in one write on a keep-alive connection: two answers."""
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /orders/metrics/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            buf += chunk
        n = buf.count(b"HTTP/1.1 200")
        if n != 2:
            failures.add("pipelined GETs: %d answers 200, expected 2: %r" % (n, buf[:200]))
    except OSError as e:
        failures.add("pipelined GETs: %r" % e)
    finally:
        c.close()


def short_body(s, failures):
    """Content-Length above the body: a bounded 400/408, not a hung thread."""
    c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    try:
        c.sendall(b"POST /orders/ HTTP/1.1\r\nHost: x\r\n" + J +
                  b"Content-Length: 100\r\n\r\n" + GOOD[:10])
        c.settimeout(60)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = c.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            failures.add("short body: no answer within 60 s")
            return
        if buf and not (buf.startswith(b"HTTP/1.1 400") or buf.startswith(b"HTTP/1.1 408")):
            failures.add("short body: answer %r, expected 400 or 408" % buf[:80])
    finally:
        c.close()


def main():
    failures = Soft()
    with System("bad-input") as s:
        s.start_api()
        before = s.metrics()["total_orders"]
        created = 0
        for what, data, allowed in CASES:
            r = run_case(s, what, data, allowed, failures)
            if r is not None and r.status == 201:
                created += 1
        created += exact_numbers(s, failures)
        expect_continue(s, failures)
        check_alive(s, "Expect: 100-continue", failures)
        created += 1
        pipelined(s, failures)
        check_alive(s, "pipelined GETs", failures)
        short_body(s, failures)
        check_alive(s, "short body", failures)

        # still serving, nothing half-written
        r = s.request("GET", "/healthz")
        assert r.status == 200, r
        m = s.metrics()
        check_metrics_consistent(m)
        if m["total_orders"] > before + created:
            failures.add("%d orders were created, only %d requests got 201"
                         % (m["total_orders"] - before, created))
        # the 1000-item order reads back whole
        r = s.request("GET", "/orders/?limit=1000")
        assert r.status == 200, r
        big = [o for o in r.body["results"] if len(o["item_ids"]) == 1000]
        if not big:
            failures.add("the order with 1000 item ids is not listed whole")
        if s.api.running():
            s.stop_api()
        if failures:
            s.dump_logs(20)
    failures.report("of the bad-input checks failed")


if __name__ == "__main__":
    run(main)
