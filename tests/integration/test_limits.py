#!/usr/bin/env python3
"""Hostile and broken clients against small limits: slow or idle sockets,
oversized requests, too many connections from one address.

The API runs with --threads 4 (all of them for one address)
--request-timeout-ms 1000
--keepalive-timeout-ms 500 --max-body-size 1K --max-header-size 2K, so
that every limit is reached in about a second.  Raw sockets throughout.

- Content-Length 100000 (and 1K+1) with the headers only: 413 JSON arrives
  without the body being sent; with `Expect: 100-continue` no 100 is sent
  first.  A body of exactly 1K is accepted.
- `Expect: 100-continue` with a small body: 100 Continue at once, then 201,
  no ~1 s stall.
- A 4 KiB header: a 4xx JSON (431, 413 or 400) with a Content-Length.
- Content-Length above the body sent: 408 or 400 within about twice the
  request timeout, then the connection closed; with threads+1 such
  clients at once, a normal request afterwards is served (threads freed).
- Bodies trickled one byte every 300 ms by `threads` clients: each is cut
  off with 408 once the request timeout passes, and other clients are
  served meanwhile.
- `threads` clients that got a 413 (Connection: close) and keep
  trickling the refused body: each is closed within ~2x the request
  timeout (not drained at the client's pace); others are served.
- Slowloris: threads+2 connections sending one header byte a second
  (reconnecting when cut off): a normal client is served in < 5 s.
- `threads` idle keep-alive connections: a new client is served within
  the keep-alive timeout plus a margin, and the idle ones are closed.
- Transfer-Encoding chunked (alone, with a Content-Length, gzip) -> 400
  JSON; Content-Length "abc", negative, 2^64 -> 4xx JSON.
- A client that disconnects mid-body (or right after the headers) leaves
  no order: total_orders unchanged.
- Every response has a JSON body and a correct Content-Length.

Timing assertions are generous upper bounds only.  All the checks run;
the failures are listed together at the end.
"""

import os
import re
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import Soft, TestFailure, run  # noqa: E402
from optest.client import check_response  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.orders import check_metrics_consistent  # noqa: E402

THREADS = 4
REQUEST_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 0.5
MAX_BODY = 1024
# Every client here comes from 127.0.0.1: let it hold every thread, so
# that what is tested is how each timeout frees them (the per-address
# share has its own test, test_slow_clients).
LIMITS = ["--threads", str(THREADS), "--max-connections-per-address", str(THREADS),
          "--request-timeout-ms", str(int(REQUEST_TIMEOUT * 1000)),
          "--keepalive-timeout-ms", str(int(KEEPALIVE_TIMEOUT * 1000)),
          "--max-body-size", "1K", "--max-header-size", "2K"]

BODY = b'{"user_id": 1, "item_ids": [1], "total_amount": 1}'
J = b"Content-Type: application/json\r\n"


def post_head(length, extra=b""):
    return (b"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + J + extra +
            b"Content-Length: " + (length if isinstance(length, bytes) else b"%d" % length)
            + b"\r\n\r\n")


GET_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


# ------------------------------------------------------------------ raw HTTP

def connect(port, timeout=10):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


class Reply:
    """One response read off a socket: status, headers, body, and when
    (seconds since t0) its first byte and its last byte arrived."""

    def __init__(self, status, headers, body, head, first, done):
        self.status, self.headers, self.body = status, headers, body
        self.head, self.first, self.done = head, first, done

    def __repr__(self):
        return "<%s %r after %.2f s>" % (self.status, self.body[:120], self.done)


def read_reply(sock, t0, timeout, buf=b""):
    """Read one response (headers plus Content-Length bytes).  Returns
    (Reply or None, leftover bytes, eof).  None: nothing complete before
    the timeout or EOF."""
    deadline = time.monotonic() + timeout
    first = 0.0 if buf else None
    eof = False
    while True:
        if b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*([0-9]+)\s*$", head)
            need = int(m.group(1)) if m else 0
            if len(rest) >= need or eof:
                break
        if eof:
            return None, buf, True
        left = deadline - time.monotonic()
        if left <= 0:
            return None, buf, False
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError):
            chunk = b""
        if first is None:
            first = time.monotonic() - t0
        if not chunk:
            eof = True
        buf += chunk
    now = time.monotonic() - t0
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    hl = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hl[k.strip().lower()] = v.strip()
    n = int(hl["content-length"]) if "content-length" in hl else len(rest)
    return Reply(status, hl, rest[:n], head, first, now), rest[n:], eof


def wait_eof(sock, timeout):
    """Seconds until the server closes (EOF or reset), or None."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        try:
            if not sock.recv(65536):
                return time.monotonic() - t0
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return time.monotonic() - t0
    return None


def check_json(r, what, failures):
    """A JSON body and a Content-Length equal to it (optest.client.check_response)."""
    try:
        check_response("X", what, r.status, r.headers, r.body)
    except TestFailure as e:
        failures.add(str(e))
        return False
    return True


def timed_get(port, timeout=10):
    """GET /healthz on a new connection; (status or error, seconds)."""
    t0 = time.monotonic()
    try:
        c = connect(port, timeout)
        try:
            c.sendall(GET_HEALTH)
            r, _, _ = read_reply(c, t0, timeout)
        finally:
            c.close()
        return (r.status if r else "no answer"), time.monotonic() - t0
    except OSError as e:
        return repr(e), time.monotonic() - t0


def expect_normal_served(s, what, failures, limit=5.0):
    st, dt = timed_get(s.port, timeout=limit + 5)
    if st != 200 or dt >= limit:
        failures.add("%s: a normal GET /healthz got %s after %.2f s (want 200 in < %.0f s)"
                     % (what, st, dt, limit))
    return dt


def simple(s, what, data, allowed, failures, closes=False):
    """Send data on a new connection, check status, JSON, Content-Length."""
    c = connect(s.port)
    t0 = time.monotonic()
    try:
        try:
            c.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r, _, _ = read_reply(c, t0, 10)
        if r is None:
            failures.add("%s: no answer within 10 s" % what)
            return None
        if r.status not in allowed:
            failures.add("%s: status %s, expected %s; body %r"
                         % (what, r.status, "a 4xx" if len(allowed) > 10
                            else " or ".join(map(str, sorted(allowed))), r.body[:200]))
        check_json(r, what, failures)
        if closes and wait_eof(c, 2 * REQUEST_TIMEOUT + 2) is None:
            failures.add("%s: the connection stayed open after %s" % (what, r.status))
        return r
    finally:
        c.close()


# ------------------------------------------------------------------ cases

def body_too_large(s, failures):
    for length in (100000, MAX_BODY + 1):
        for expect_hdr in (b"", b"Expect: 100-continue\r\n"):
            what = "Content-Length %d%s, headers only" % (
                length, " with Expect: 100-continue" if expect_hdr else "")
            c = connect(s.port)
            t0 = time.monotonic()
            try:
                c.sendall(post_head(length, expect_hdr))   # and no body
                r, rest, _ = read_reply(c, t0, 5)
                if r is None:
                    failures.add("%s: no answer within 5 s without the body" % what)
                    continue
                if r.status == 100:
                    failures.add("%s: 100 Continue for a body over the limit" % what)
                    r, _, _ = read_reply(c, t0, 5, rest)
                    if r is None:
                        continue
                if r.status != 413:
                    failures.add("%s: expected 413, got %s %r" % (what, r.status, r.body[:200]))
                check_json(r, what, failures)
                if r.done > 2 * REQUEST_TIMEOUT:
                    failures.add("%s: 413 only after %.2f s" % (what, r.done))
                if wait_eof(c, 2 * REQUEST_TIMEOUT + 2) is None:
                    failures.add("%s: connection not closed after the 413" % what)
            finally:
                c.close()
    # exactly the limit is fine (padded with JSON whitespace)
    body = BODY[:-1] + b" " * (MAX_BODY - len(BODY)) + b"}"
    assert len(body) == MAX_BODY
    simple(s, "a body of exactly 1K", post_head(len(body)) + body, {201}, failures)


def expect_continue(s, failures):
    what = "Expect: 100-continue with a small body"
    c = connect(s.port)
    t0 = time.monotonic()
    try:
        c.sendall(post_head(len(BODY), b"Expect: 100-continue\r\n"))
        r, rest, _ = read_reply(c, t0, 5)
        if r is None or r.status != 100:
            failures.add("%s: expected 100 Continue first, got %r" % (what, r))
            if r is not None and r.status != 100:
                return
        elif r.done > 0.8:
            failures.add("%s: 100 Continue only after %.2f s" % (what, r.done))
        t1 = time.monotonic()
        c.sendall(BODY)
        r, _, _ = read_reply(c, t1, 5, rest)
        if r is None or r.status != 201:
            failures.add("%s: expected 201 after the body, got %r" % (what, r))
            return
        check_json(r, what, failures)
        if r.done > 0.8:
            failures.add("%s: 201 only %.2f s after the body was sent" % (what, r.done))
    finally:
        c.close()


def big_header(s, failures):
    simple(s, "a 4 KiB header",
           b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n",
           {400, 413, 431}, failures, closes=True)
    simple(s, "a 4 KiB header on a POST",
           b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"X-Big: " + b"a" * 4096 +
           b"\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY,
           {400, 413, 431}, failures, closes=True)
    simple(s, "a 1 KiB header (under the limit)",
           b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1024 +
           b"\r\nConnection: close\r\n\r\n", {200}, failures)


def short_bodies(s, failures):
    """threads+1 clients declare 100 bytes and send fewer: each gets 400/408
    within ~2x the request timeout and is closed; then a normal request is
    served."""
    n = THREADS + 1
    results = [None] * n

    def one(i):
        c = connect(s.port, timeout=15)
        t0 = time.monotonic()
        try:
            c.sendall(post_head(100) + BODY)
            r, _, _ = read_reply(c, t0, 10)
            eof = wait_eof(c, 5) if r is not None else None
            results[i] = (r, None if eof is None else time.monotonic() - t0)
        finally:
            c.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    for i, (r, closed) in enumerate(results):
        what = "Content-Length above the body (client %d of %d)" % (i + 1, n)
        if r is None:
            failures.add("%s: no answer within 10 s" % what)
            continue
        if r.status not in (400, 408):
            failures.add("%s: expected 408 or 400, got %s %r" % (what, r.status, r.body))
        check_json(r, what, failures)
        # one client waits for a thread to be freed: up to 2 timeouts more
        if r.done > 4 * REQUEST_TIMEOUT + 1.0:
            failures.add("%s: answered only after %.2f s" % (what, r.done))
        if closed is None:
            failures.add("%s: connection not closed after the %s" % (what, r.status))
    print("short bodies: answers after %s s, closed after %s s" % (
        ", ".join("%.2f" % r.done for r, _ in results if r),
        ", ".join("%.2f" % c for _, c in results if c is not None)))
    expect_normal_served(s, "after the short bodies", failures, limit=2.0)


def trickled_bodies(s, failures):
    """`threads` clients send a valid body one byte every 300 ms: each must
    be cut off (408) once the request timeout passes; others are served
    meanwhile.  A client gives up after 6 s."""
    n = THREADS
    results = [None] * n
    stop_after = 6.0

    def one(i):
        c = connect(s.port, timeout=15)
        t0 = time.monotonic()
        sent = 0
        buf = b""
        r = None
        try:
            c.sendall(post_head(len(BODY)))
            while sent < len(BODY) and time.monotonic() - t0 < stop_after:
                try:
                    c.sendall(BODY[sent:sent + 1])
                    sent += 1
                except OSError:
                    break
                rd, _, _ = select.select([c], [], [], 0.3)
                if rd:
                    break
            r, _, _ = read_reply(c, t0, 2, buf)
            results[i] = (r, sent, time.monotonic() - t0)
        finally:
            c.close()

    before = s.metrics()["total_orders"]
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    time.sleep(0.2)
    # others are served while the tricklers hold the threads
    worst = 0.0
    t_start = time.monotonic()
    while any(t.is_alive() for t in ts) and time.monotonic() - t_start < 8:
        st, dt = timed_get(s.port, timeout=10)
        worst = max(worst, dt)
        if st != 200:
            failures.add("trickled bodies: a normal GET got %s after %.2f s" % (st, dt))
            break
    for t in ts:
        t.join(30)
    if worst >= REQUEST_TIMEOUT * 2 + 1.0:
        failures.add("trickled bodies: a normal GET /healthz waited %.2f s while %d clients "
                     "trickled bodies (request timeout %.1f s)" % (worst, n, REQUEST_TIMEOUT))
    for i, (r, sent, took) in enumerate(results):
        what = "body of %d bytes trickled at 1 byte/300 ms (client %d)" % (len(BODY), i + 1)
        if r is None:
            failures.add("%s: not cut off: no answer after %d bytes in %.1f s"
                         % (what, sent, took))
            continue
        if r.done > 2 * REQUEST_TIMEOUT + 1.0:
            failures.add("%s: not cut off while the bytes kept coming: %s only after %.2f s "
                         "(%d bytes sent; the client stops trickling at %.0f s; request "
                         "timeout %.1f s)" % (what, r.status, r.done, sent, stop_after,
                                              REQUEST_TIMEOUT))
        elif r.status != 408:
            failures.add("%s: expected 408 once the %.1f s request timeout passed, got %s "
                         "after %.2f s, %d bytes sent: %r"
                         % (what, REQUEST_TIMEOUT, r.status, r.done, sent, r.body[:120]))
        check_json(r, what, failures)
    m = s.metrics()["total_orders"]
    created = sum(1 for r, _, _ in results if r is not None and r.status == 201)
    if m != before + created:
        failures.add("trickled bodies: total_orders %d -> %d with %d 201s" % (before, m, created))


def rejected_then_trickled(s, failures):
    """`threads` clients declare a body over the limit, get their 413
    (Connection: close), and keep trickling the body one byte every 300 ms:
    the server must close each within ~2x the request timeout rather than
    drain the body at the client's pace, and serve others meanwhile.  A
    client gives up after 6 s."""
    n = THREADS
    stop_after = 6.0
    results = [None] * n

    def one(i):
        c = connect(s.port, timeout=15)
        t0 = time.monotonic()
        r, closed = None, None
        try:
            c.sendall(post_head(100000))
            r, rest, eof = read_reply(c, t0, 5)
            if eof:
                closed = time.monotonic() - t0
            while closed is None and time.monotonic() - t0 < stop_after:
                try:
                    c.sendall(b" ")
                except OSError:
                    closed = time.monotonic() - t0
                    break
                rd, _, _ = select.select([c], [], [], 0.3)
                if rd:
                    try:
                        if not c.recv(4096):
                            closed = time.monotonic() - t0
                    except OSError:
                        closed = time.monotonic() - t0
        finally:
            c.close()
        results[i] = (r, closed)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    worst = 0.0
    t_start = time.monotonic()
    while any(t.is_alive() for t in ts) and time.monotonic() - t_start < 8:
        st, dt = timed_get(s.port, timeout=10)
        worst = max(worst, dt)
        if st != 200:
            failures.add("413 then trickle: a normal GET got %s after %.2f s" % (st, dt))
            break
    for t in ts:
        t.join(30)
    if worst >= 2 * REQUEST_TIMEOUT + 1.0:
        failures.add("413 then trickle: a normal GET /healthz waited %.2f s while %d clients "
                     "trickled the bodies of their refused requests" % (worst, n))
    for i, (r, closed) in enumerate(results):
        what = "Content-Length 100000, 413, then the body trickled (client %d)" % (i + 1)
        if r is None or r.status != 413:
            failures.add("%s: expected 413 first, got %r" % (what, r))
        if closed is None or closed > 2 * REQUEST_TIMEOUT + 1.0:
            failures.add("%s: the server kept reading the refused body: connection %s"
                         % (what, "still open after %.0f s" % stop_after if closed is None
                            else "closed only after %.2f s" % closed))


def slowloris(s, failures, duration=4.0):
    """threads+2 connections send a header one byte a second (a new
    connection when cut off); normal clients are served in < 5 s."""
    n = THREADS + 2
    stop = threading.Event()
    stats = {"connections": 0, "cut": 0, "lifetimes": []}
    lock = threading.Lock()
    msg = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200

    def loris():
        while not stop.is_set():
            try:
                c = connect(s.port, timeout=5)
            except OSError:
                time.sleep(0.1)
                continue
            t0 = time.monotonic()
            with lock:
                stats["connections"] += 1
            cut = False
            try:
                for i in range(len(msg)):
                    if stop.is_set():
                        break
                    c.sendall(msg[i:i + 1])
                    rd, _, _ = select.select([c], [], [], 1.0)
                    if rd:
                        data = c.recv(4096)
                        if data.startswith(b"HTTP/"):
                            r, _, _ = read_reply(c, t0, 2, data)
                            if r is not None:
                                check_json(r, "slowloris connection cut with %s" % r.status,
                                           failures)
                        cut = True
                        break
            except OSError:
                cut = True
            finally:
                c.close()
            if cut:
                with lock:
                    stats["cut"] += 1
                    stats["lifetimes"].append(time.monotonic() - t0)

    ts = [threading.Thread(target=loris) for _ in range(n)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    worst = 0.0
    t_end = time.monotonic() + duration
    served = 0
    while time.monotonic() < t_end:
        worst = max(worst, expect_normal_served(s, "during slowloris", failures, limit=5.0))
        served += 1
        time.sleep(0.2)
    stop.set()
    for t in ts:
        t.join(15)
    life = stats["lifetimes"]
    print("slowloris: %d normal GETs, slowest %.2f s; %d loris connections, %d cut, "
          "longest lived %.2f s" % (served, worst, stats["connections"], stats["cut"],
                                    max(life) if life else 0))
    if stats["cut"] == 0:
        failures.add("slowloris: no slow connection was cut off in %.0f s" % duration)


def idle_keepalive(s, failures):
    """`threads` connections make one request each and then stay idle."""
    conns = []
    try:
        for i in range(THREADS):
            c = connect(s.port)
            t0 = time.monotonic()
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            r, _, _ = read_reply(c, t0, 5)
            if r is None or r.status != 200:
                failures.add("idle keep-alive: request %d got %r" % (i, r))
            conns.append((c, time.monotonic()))
        limit = KEEPALIVE_TIMEOUT + 2.0
        expect_normal_served(s, "with %d idle keep-alive connections" % THREADS, failures,
                             limit=limit)
        for c, t_idle in conns:
            left = KEEPALIVE_TIMEOUT + 3.0 - (time.monotonic() - t_idle)
            if wait_eof(c, max(left, 0.1)) is None:
                failures.add("idle keep-alive: a connection idle for %.1f s is still open "
                             "(keep-alive timeout %.1f s)"
                             % (time.monotonic() - t_idle, KEEPALIVE_TIMEOUT))
                break
    finally:
        for c, _ in conns:
            c.close()


def framing(s, failures):
    cases = [
        ("Transfer-Encoding: chunked",
         b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Transfer-Encoding: chunked\r\n\r\n"
         b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n", {400}),
        ("Transfer-Encoding: chunked and a Content-Length",
         b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Transfer-Encoding: chunked\r\n"
         b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY, {400}),
        ("Transfer-Encoding: gzip",
         b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Transfer-Encoding: gzip\r\n"
         b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY, {400}),
        ('Content-Length "abc"', post_head(b"abc") + BODY, None),
        ("Content-Length -1", post_head(b"-1") + BODY, None),
        ("Content-Length 2^64", post_head(b"18446744073709551616") + BODY, None),
        ("Content-Length 2^63-1", post_head(b"9223372036854775807") + BODY, {413}),
        ("two different Content-Lengths",
         b"POST /api/orders/ HTTP/1.1\r\nHost: x\r\n" + J + b"Content-Length: %d\r\n"
         b"Content-Length: 5\r\n\r\n" % len(BODY) + BODY, None),
    ]
    before = s.metrics()["total_orders"]
    for what, data, allowed in cases:
        simple(s, what, data, allowed or set(range(400, 500)), failures)
    after = s.metrics()["total_orders"]
    if after != before:
        failures.add("framing errors created %d orders" % (after - before))


def disconnects(s, failures):
    before = s.metrics()["total_orders"]
    for what, data in (("mid-body", post_head(len(BODY)) + BODY[:20]),
                       ("after the headers", post_head(len(BODY))),
                       ("mid-body with Expect", post_head(len(BODY), b"Expect: 100-continue\r\n")
                        + BODY[:-1])):
        c = connect(s.port)
        c.sendall(data)
        time.sleep(0.2)
        c.close()
    # a reset rather than a FIN
    c = connect(s.port)
    c.sendall(post_head(len(BODY)) + BODY[:30])
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    time.sleep(2 * REQUEST_TIMEOUT + 0.5)
    after = s.metrics()["total_orders"]
    if after != before:
        failures.add("clients that disconnected mid-body created %d orders" % (after - before))
    expect_normal_served(s, "after the disconnects", failures, limit=2.0)


def main():
    failures = Soft()
    with System("limits") as s:
        s.start_api(extra=LIMITS)
        steps = [body_too_large, expect_continue, big_header, short_bodies,
                 trickled_bodies, rejected_then_trickled, slowloris, idle_keepalive, framing, disconnects]
        for step in steps:
            t0 = time.monotonic()
            n = failures.step(step.__name__, step, s, failures)
            print("%-16s %5.1f s  %s" % (step.__name__, time.monotonic() - t0,
                                         "ok" if n == 0 else "%d failures" % n))
            if not s.api.running():
                failures.add("order-api died during %s (exit status %s)"
                             % (step.__name__, s.api.proc.returncode))
                s.start_api(extra=LIMITS)
        # alive, consistent, and stops cleanly
        r = s.request("GET", "/healthz")
        assert r.status == 200, r
        check_metrics_consistent(s.metrics())
        s.stop_api()
        if failures:
            s.dump_logs(20)
    failures.report("of the limit checks failed")


if __name__ == "__main__":
    run(main)
