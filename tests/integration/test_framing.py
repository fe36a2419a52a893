#!/usr/bin/env python3
"""No request is read two ways: framing that a proxy in front could read
differently from order-api is refused on every route, the connection is
closed after the answer, and nothing that followed on it is acted on.

Raw sockets throughout.  On each route (create, GET of an order, cancel,
/healthz), each of these gets a JSON 4xx that says "Connection: close",
followed by the close, and a second request hidden after it (a create)
never runs (total_orders unchanged):

- two different Content-Lengths (the first covering the body, the second
  the hidden request too), and two equal ones;
- a Content-Length that is not all digits ("51abc" covering the body);
- Transfer-Encoding: chunked together with a Content-Length;
- more header lines than civetweb keeps (64), the 65th being a
  Transfer-Encoding or an Idempotency-Key: 431, and two creates with one
  key placed there never make two orders;
- a header line civetweb stops at (folded, or starting with ':' or a byte
  >= 0x80), with a Transfer-Encoding or a second Content-Length after it;
- a refused chunked body that the client keeps trickling after asking
  for the close: closed at once;
- an absolute-form target for another host: a JSON 400, not a silent close;
- a 404 for a POST with a small body (the body unread): the close follows.
"""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run  # noqa: E402
from optest.client import exchange  # noqa: E402
from optest.daemons import System  # noqa: E402

BODY = b'{"user_id": 5, "item_ids": [1], "total_amount": 1}'


def create(extra=b"", body=BODY):
    return (b"POST /orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n" + extra +
            b"Content-Length: %d\r\n\r\n" % len(body) + body)


HIDDEN = create()


def responses(buf):
    """Split a byte stream into (status, headers, body) by Content-Length."""
    out = []
    while buf:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if not sep:
            fail("a partial response: %r" % buf[:200])
        lines = head.decode("iso-8859-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hl = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hl[k.strip().lower()] = v.strip()
        n = int(hl.get("content-length", "0"))
        out.append((status, hl, rest[:n]))
        buf = rest[n:]
    return out


def total(s):
    return s.metrics()["total_orders"]


def expect_refused(s, what, data, want):
    before = total(s)
    buf, closed = exchange(s.port, data)
    rs = responses(buf)
    if len(rs) != 1:
        fail("%s: expected one answer, got %d: %r" % (what, len(rs), buf[:400]))
    status, hl, body = rs[0]
    if status != want:
        fail("%s: expected %d, got %d %r" % (what, want, status, body))
    if hl.get("content-type", "").split(";")[0] != "application/json":
        fail("%s: not JSON: %r" % (what, hl))
    if "detail" not in json.loads(body):
        fail("%s: no detail: %r" % (what, body))
    if hl.get("connection", "").lower() != "close":
        fail("%s: the answer does not say Connection: close: %r" % (what, hl))
    if not closed:
        fail("%s: the connection stayed open after Connection: close" % what)
    after = total(s)
    if after != before:
        fail("%s: %d orders were created (a hidden request ran)"
             % (what, after - before))
    print("ok: %s -> %d, closed" % (what, status))


def routes(oid):
    """(name, request line and Host, body) for each route under test."""
    return [
        ("create", b"POST /orders/ HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\n", BODY),
        ("GET order", b"GET /orders/%s/ HTTP/1.1\r\nHost: x\r\n" % oid.encode(), b"xx"),
        ("cancel", b"POST /orders/%s/cancel/ HTTP/1.1\r\nHost: x\r\n" % oid.encode(), b"{}"),
        ("healthz", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"xx"),
    ]


def framing(s, oid):
    for name, head, body in routes(oid):
        smuggled = body + HIDDEN
        expect_refused(s, "%s with two different Content-Lengths" % name,
                       head + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                       % (len(body), len(smuggled)) + smuggled, 400)
        expect_refused(s, "%s with the same Content-Length twice" % name,
                       head + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                       % (len(body), len(body)) + body + HIDDEN, 400)
        expect_refused(s, "%s with Content-Length '%dabc'" % (name, len(body)),
                       head + b"Content-Length: %dabc\r\n\r\n" % len(body)
                       + body + HIDDEN, 400)
        expect_refused(s, "%s with Transfer-Encoding and Content-Length" % name,
                       head + b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n"
                       % len(body) + body + HIDDEN, 400)
        filler = b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(64))
        expect_refused(s, "%s with Transfer-Encoding as the 67th header line" % name,
                       head + filler + b"Content-Length: %d\r\n" % len(body)
                       + b"Transfer-Encoding: chunked\r\n\r\n" + body + HIDDEN, 431)


def unread_lines(s):
    """civetweb stops reading headers, silently, at a line that starts with
    a space (an obsolete folded line), a ':' or a byte >= 0x80, and drops
    it and every line after it: a request with such a line is refused, so
    a Transfer-Encoding or a second Content-Length behind it is never
    overlooked."""
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    for what, line in (("a folded line", b"X-A: a\r\n folded\r\n"),
                       ("a line starting with ':'", b":x: y\r\n"),
                       ("a line starting with 0xff", b"\xffX: y\r\n")):
        expect_refused(s, "Transfer-Encoding after %s" % what,
                       get + line + b"Transfer-Encoding: chunked\r\n"
                       b"Content-Length: 2\r\n\r\n" + b"xx" + HIDDEN, 400)
        expect_refused(s, "a second Content-Length after %s" % what,
                       get + b"Content-Length: 2\r\n" + line +
                       b"Content-Length: %d\r\n\r\n" % (2 + len(HIDDEN))
                       + b"xx" + HIDDEN, 400)


def chunked_trickle_closes(s):
    """A refused chunked body whose client asked to close and keeps
    trickling it: the close follows the answer at once, not when the
    client stops sending."""
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"POST /orders/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"Content-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n40\r\n{")
    t0 = time.monotonic()
    c.settimeout(0.3)
    buf, closed = b"", False
    while time.monotonic() - t0 < 5 and not closed:
        try:
            chunk = c.recv(4096)
            if not chunk:
                closed = True
            buf += chunk
        except socket.timeout:
            try:
                c.sendall(b" ")
            except OSError:
                closed = True
        except ConnectionResetError:
            closed = True
    c.close()
    took = time.monotonic() - t0
    if not buf.startswith(b"HTTP/1.1 400 "):
        fail("a chunked create: expected 400, got %r" % buf[:200])
    if not closed or took > 2.0:
        fail("a chunked create trickled after its 400: closed=%s after %.1f s"
             % (closed, took))
    print("ok: a trickled chunked body is closed %.1f s after its 400" % took)


def key_after_cut(s):
    """Two creates with one Idempotency-Key placed beyond what civetweb
    keeps: never two orders for one key."""
    filler = b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(64))
    before = total(s)
    for attempt in (1, 2):
        buf, closed = exchange(s.port, create(filler + b"Idempotency-Key: cut-key\r\n"))
        status = responses(buf)[0][0]
        if status != 431:
            fail("create %d with its Idempotency-Key beyond 64 header lines: "
                 "expected 431, got %d" % (attempt, status))
    if total(s) != before:
        fail("creates whose Idempotency-Key was cut off made %d orders"
             % (total(s) - before))
    # 63 header lines are all seen: the key works.
    few = b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(57))
    ids = set()
    for attempt in (1, 2):
        buf, _ = exchange(s.port, create(few + b"Idempotency-Key: seen-key\r\n")
                          .replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
        status, _, body = responses(buf)[0]
        if status != 201:
            fail("create with 63 header lines: expected 201, got %d %r" % (status, body))
        ids.add(json.loads(body)["order_id"])
    if len(ids) != 1:
        fail("one Idempotency-Key in 63 header lines made orders %r" % ids)
    print("ok: a key beyond the 64th header line is refused (431); within 63, replayed")


def absolute_target(s):
    before = total(s)
    buf, closed = exchange(s.port, b"POST http://example.com/orders/ HTTP/1.1\r\n"
                           b"Host: example.com\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
    rs = responses(buf) if buf else []
    if len(rs) != 1 or rs[0][0] != 400 or "detail" not in json.loads(rs[0][2]):
        fail("absolute-form target for another host: expected a JSON 400, got %r" % buf[:300])
    if not closed or total(s) != before:
        fail("absolute-form target: closed=%s, orders made %d" % (closed, total(s) - before))
    # The same server's own address and port is a path here: served.
    buf, _ = exchange(s.port, b"GET http://127.0.0.1:%d/healthz HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n" % s.port)
    if responses(buf)[0][0] != 200:
        fail("absolute-form target for this server: %r" % buf[:200])
    print("ok: absolute-form target for another host -> JSON 400 and close")


def unread_body_closes(s):
    """A 404 answered without reading a small body says Connection: close,
    and the close follows (the body is not read as a next request)."""
    before = total(s)
    data = (b"POST /nowhere/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % len(HIDDEN)) + HIDDEN
    buf, closed = exchange(s.port, data)
    rs = responses(buf)
    if len(rs) != 1 or rs[0][0] != 404:
        fail("POST to an unknown path: expected one 404, got %r" % buf[:300])
    if rs[0][1].get("connection", "").lower() == "close" and not closed:
        fail("POST to an unknown path: Connection: close, but the connection stayed open")
    if total(s) != before:
        fail("the body of a 404 ran as a create")
    print("ok: a 404 with an unread body: %s" %
          ("closed" if closed else "kept alive, body skipped"))


def main():
    with System("framing") as s:
        s.start_api()
        oid = s.create_order()
        framing(s, oid)
        unread_lines(s)
        chunked_trickle_closes(s)
        key_after_cut(s)
        absolute_target(s)
        unread_body_closes(s)


if __name__ == "__main__":
    run(main)
