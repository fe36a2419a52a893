#!/usr/bin/env python3
"""Idle and slow clients cannot starve the others.

civetweb serves a connection on one thread from accept to close, first
come first served.  order-api runs with its default 64 threads; one client
address may hold at most three quarters of them (48).

- 300, then 1,000, idle connections from 127.0.0.2 (they send nothing):
  a GET /healthz and a create from 127.0.0.1 are answered within a second;
  48 of the idle ones hold a thread, the rest are answered 503 (JSON,
  Retry-After) and closed at once, and /metrics counts them.
- Once the idle ones are gone, their address holds threads again: 48
  keep-alive clients from 127.0.0.2 are all served.
- With --request-timeout-ms 1000: a connection that sends nothing is
  closed within about two request timeouts, and one that sent part of its
  headers gets a JSON 400 in that time.
"""

import json
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import expect, fail, run, wait_until  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.faults import metric  # noqa: E402

SHARE = 48  # three quarters of the default 64 threads


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def open_idle(port, n, src="127.0.0.2"):
    socks = []
    for _ in range(n):
        c = socket.socket()
        c.bind((src, 0))
        c.settimeout(5)
        c.connect(("127.0.0.1", port))
        socks.append(c)
    return socks


def timed(fn):
    t = time.monotonic()
    r = fn()
    return r, time.monotonic() - t


def answered_within_a_second(s, what):
    c = Client(s.port, timeout=10)
    r, took = timed(lambda: c.request("GET", "/healthz", check=False, retry=False))
    expect(r.status == 200, "%s: /healthz got %d" % (what, r.status))
    expect(took < 1.0, "%s: /healthz took %.2f s" % (what, took))
    body = {"user_id": 3, "item_ids": [1, 2], "total_amount": "9.99"}
    r2, took2 = timed(lambda: c.request("POST", "/orders/", body, check=False, retry=False))
    expect(r2.status == 201, "%s: a create got %d %r" % (what, r2.status, r2.body))
    expect(took2 < 1.0, "%s: a create took %.2f s" % (what, took2))
    c.close()
    print("%s: /healthz in %.0f ms, a create in %.0f ms" % (what, took * 1000, took2 * 1000))
    return max(took, took2)


def refused_count(s):
    """order-api's count of connections refused over the share."""
    return metric(s, "http_connections_refused_total") or 0


def refused_ones(socks, wait=3.0):
    """How many of socks got a 503 JSON with Retry-After and were closed;
    how many are still open with nothing said."""
    refused = silent = 0
    deadline = time.monotonic() + wait
    for c in socks:
        c.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = c.recv(4096)
        except socket.timeout:
            silent += 1
            continue
        except ConnectionResetError:
            data = b""
        if data.startswith(b"HTTP/1.1 503 "):
            head, _, body = data.partition(b"\r\n\r\n")
            expect(b"Retry-After: 1" in head and b"Connection: close" in head,
                   "a refused connection's answer lacks Retry-After or "
                   "Connection: close: %r" % head)
            expect("detail" in json.loads(body), "not a JSON detail: %r" % body)
            refused += 1
    return refused, silent


def idle_from_one_address(s, n):
    before = refused_count(s)
    socks = open_idle(s.port, n)
    try:
        took = answered_within_a_second(s, "%d idle connections from 127.0.0.2" % n)
        refused, silent = refused_ones(socks, wait=1.0)
        expect(silent == SHARE and refused == n - SHARE,
               "%d idle connections from one address: %d hold a thread, %d "
               "were refused; expected %d and %d" % (n, silent, refused, SHARE, n - SHARE))
        counted = refused_count(s) - before
        expect(counted == n - SHARE,
               "/metrics counts %d refused connections, expected %d" % (counted, n - SHARE))
    finally:
        for c in socks:
            c.close()
    return took


def share_comes_back(s):
    """The idle connections are gone: 127.0.0.2 may hold 48 threads again."""
    results = []
    barrier = threading.Barrier(SHARE)

    def client():
        c = socket.socket()
        c.bind(("127.0.0.2", 0))
        c.settimeout(10)
        c.connect(("127.0.0.1", s.port))
        barrier.wait(10)  # all connected at once
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        results.append(c.recv(4096)[:12])
        c.close()

    # civetweb notices the closed idle sockets when it next reads them.
    wait_until(lambda: _served_from(s, "127.0.0.2"), 5, "127.0.0.2 served again")
    before = refused_count(s)
    ts = [threading.Thread(target=client) for _ in range(SHARE)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    ok = sum(1 for r in results if r == b"HTTP/1.1 200")
    expect(ok == SHARE, "%d keep-alive clients from 127.0.0.2: %d served (%r)"
           % (SHARE, ok, results[:5]))
    expect(refused_count(s) == before, "connections were refused with the share free")
    print("the idle connections gone: %d clients from 127.0.0.2 served" % ok)


def _served_from(s, src):
    c = socket.socket()
    c.bind((src, 0))
    c.settimeout(5)
    try:
        c.connect(("127.0.0.1", s.port))
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return c.recv(4096).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        c.close()


def header_deadline(s):
    """--request-timeout-ms 1000: the silent one is closed, the partial one
    gets 400, both within about two timeouts."""
    silent = open_idle(s.port, 1, src="127.0.0.3")[0]
    partial = open_idle(s.port, 1, src="127.0.0.3")[0]
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    t0 = time.monotonic()
    for c, what in ((silent, "a connection that sends nothing"),
                    (partial, "a connection that sent part of its headers")):
        c.settimeout(5)
        try:
            data = c.recv(4096)
            while data and b"\r\n\r\n" not in data:
                more = c.recv(4096)
                if not more:
                    break
                data += more
        except socket.timeout:
            fail("%s was still open after %.1f s" % (what, time.monotonic() - t0))
        except ConnectionResetError:
            data = b""
        took = time.monotonic() - t0
        expect(took < 2.5, "%s was closed after %.1f s, want < 2.5" % (what, took))
        if c is silent:
            expect(data == b"", "%s got %r" % (what, data[:100]))
        else:
            expect(data.startswith(b"HTTP/1.1 400 ") and b'"detail"' in data,
                   "%s got %r" % (what, data[:200]))
        print("%s: closed after %.1f s" % (what, took))
        c.close()


def main():
    raise_fd_limit(4096)
    with System("slow_clients") as s:
        s.start_api()
        took300 = idle_from_one_address(s, 300)
        share_comes_back(s)
        took1000 = idle_from_one_address(s, 1000)
        print("fresh requests answered in %.0f ms (300 idle) and %.0f ms (1,000 idle)"
              % (took300 * 1000, took1000 * 1000))
        s.stop_api()
        s.start_api(extra=["--request-timeout-ms", "1000"])
        header_deadline(s)


if __name__ == "__main__":
    run(main)
