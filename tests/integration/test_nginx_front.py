#!/usr/bin/env python3
"""order-api behind the shipped nginx front (contrib/nginx/), for clients
from many addresses.

The real order-api and order-worker run as in every integration test; a
real nginx runs in the foreground as this user, with a minimal nginx.conf
of the test's own (pid, logs and temporary files in the test's directory,
one worker process, 4096 connections) whose http block includes the two
shipped snippets, laid out as in /etc/nginx: snippets/order-processing-http.conf,
copied with its one upstream address (127.0.0.1:8000) pointed at the
test's order-api, and snippets/order-processing-server.conf as shipped,
inside a plain-HTTP server on a free loopback port. Every limit, timeout
and number asserted is read from the shipped files. A second server on
another port serves nginx's stub_status, only to see how many connections
nginx holds.

- The shipped site file (TLS, the redirect) passes `nginx -t` with a
  throw-away certificate in place of its placeholders and free loopback
  ports for 80 and 443, and includes both snippets.
- 1,000 idle connections to nginx from 250 loopback addresses (4 each),
  half sending nothing and half a partial header line, plus one client
  trickling its header one byte a second: a create and a GET of it from
  another address are answered correctly, each within 1 s (printed);
  order-api holds no more established connections than the upstream's
  keepalive; every idle connection and the trickler are closed by nginx
  once client_header_timeout has passed since they connected, not before.
- limit_conn: one address with as many requests in progress as the limit
  (bodies still arriving) gets 429 JSON on the next; another address is
  served meanwhile, and order-api sees none of the unfinished bodies
  (request buffering); the finished bodies are created.
- limit_req: one address creating orders back to back is refused (429 JSON,
  Retry-After) after the burst plus what the rate allowed in the time
  taken; its GETs and another address's creates still pass.
- Errors nginx answers itself are JSON: 400 for a request line that is not
  HTTP, 403 for /metrics from outside the allowed network (200 from
  127.0.0.1), 413 for a body over 64 KiB, 414 and 431 for a request line
  and a header line over the buffer, 502 (with Retry-After) once order-api
  is stopped; order-api's own 404 passes through unchanged.
- Every order created through nginx completes.

Skipped (exit 77) only when nginx is not installed.
"""

import grp
import http.client
import json
import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import fail, run, tail, wait_until  # noqa: E402
from optest.client import Response, check_response, decode_body  # noqa: E402
from optest.daemons import ROOT, System  # noqa: E402
from optest.orders import ORDER_ID_RE, check_all_completed, check_order_shape  # noqa: E402
from optest.ports import free_port  # noqa: E402

NGINX_DIR = os.path.join(ROOT, "contrib", "nginx")
HTTP_SNIPPET = os.path.join(NGINX_DIR, "snippets", "order-processing-http.conf")
SERVER_SNIPPET = os.path.join(NGINX_DIR, "snippets", "order-processing-server.conf")
SITE = os.path.join(NGINX_DIR, "order-processing.conf")
SHIPPED_UPSTREAM = "server 127.0.0.1:8000;"

IDLE_ADDRESSES = 250
IDLE_PER_ADDRESS = 4
FRESH_BOUND = 1.0       # seconds: the requirement for a fresh client
BODY = {"user_id": 7, "item_ids": [101, 102], "total_amount": "250.75"}
BODY_BYTES = json.dumps(BODY).encode()


def find_nginx():
    for p in (os.environ.get("NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.access(p, os.X_OK):
            return p
    return None


def read(path):
    with open(path) as f:
        return f.read()


def directive(path, pattern):
    """The first group of `pattern` on an uncommented line of a shipped file."""
    for line in read(path).splitlines():
        line = line.split("#", 1)[0]
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    fail("%s has no line matching %r" % (path, pattern))


def seconds(value):
    m = re.fullmatch(r"([0-9]+)(s?)", value)
    if not m:
        fail("cannot read %r as seconds" % value)
    return int(m.group(1))


class Shipped:
    """The numbers of the shipped snippets that the test asserts on."""

    def __init__(self):
        srv, htp = SERVER_SNIPPET, HTTP_SNIPPET
        self.header_timeout = seconds(directive(srv, r"^\s*client_header_timeout\s+(\S+);"))
        self.conn_limit = int(directive(
            srv, r"^\s*limit_conn\s+order_processing_conn\s+([0-9]+);"))
        self.burst = int(directive(
            srv, r"^\s*limit_req\s+zone=order_processing_writes\s+burst=([0-9]+)\s+nodelay;"))
        self.rate = int(directive(htp, r"rate=([0-9]+)r/s;"))
        self.keepalive = int(directive(htp, r"^\s*keepalive\s+([0-9]+);"))
        self.max_body = directive(srv, r"^\s*client_max_body_size\s+(\S+);")
        self.header_line = directive(srv, r"^\s*large_client_header_buffers\s+[0-9]+\s+([0-9]+)k;")
        for what, v in (("limit_conn", self.conn_limit), ("burst", self.burst),
                        ("rate", self.rate), ("keepalive", self.keepalive)):
            if v <= 0:
                fail("shipped %s is %d" % (what, v))
        if self.max_body != "64k":
            fail("client_max_body_size is %s, order-api's max-body-size is 64k"
                 % self.max_body)


# ------------------------------------------------------------------ nginx

class Nginx:
    """nginx in the foreground, as this user, on the test's directory."""

    def __init__(self, binary, tmp, api_port):
        self.binary = binary
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "snippets"))
        self.port = free_port()
        self.status_port = free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.proc = None
        self.pids = []
        text = read(HTTP_SNIPPET)
        if text.count(SHIPPED_UPSTREAM) != 1:
            fail("%s: expected exactly one %r" % (HTTP_SNIPPET, SHIPPED_UPSTREAM))
        with open(os.path.join(self.dir, "snippets", "order-processing-http.conf"), "w") as f:
            f.write(text.replace(SHIPPED_UPSTREAM, "server 127.0.0.1:%d;" % api_port))
        os.symlink(SERVER_SNIPPET,
                   os.path.join(self.dir, "snippets", "order-processing-server.conf"))
        d = self.dir
        # As root nginx wants a user for its workers: this one.
        user = ""
        if os.geteuid() == 0:
            user = "user %s %s;\n" % (pwd.getpwuid(os.geteuid()).pw_name,
                                      grp.getgrgid(os.getegid()).gr_name)
        with open(self.conf, "w") as f:
            f.write("""%(user)sworker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events {
    worker_connections 4096;
}
http {
    access_log %(d)s/access.log;
    client_body_temp_path %(d)s/client_body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;

    include snippets/order-processing-http.conf;
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        include snippets/order-processing-server.conf;
    }
    # Not under test: how many connections nginx holds.
    server {
        listen 127.0.0.1:%(status)d;
        location = /status {
            stub_status;
        }
    }
}
""" % {"user": user, "d": d, "port": self.port, "status": self.status_port})

    def start(self):
        log = open(os.path.join(self.dir, "nginx.out"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True)
        log.close()

        def up():
            if self.proc.poll() is not None:
                fail("nginx exited with %s at start-up:\n%s\n%s"
                     % (self.proc.returncode, tail(os.path.join(self.dir, "nginx.out")),
                        tail(self.error_log)))
            return self.status()["active"] >= 1
        wait_until(up, 10, "nginx to serve its status page")
        self.pids = [self.proc.pid] + procs.descendants(self.proc.pid)

    def status(self):
        """stub_status: active, reading, writing, waiting."""
        c = http.client.HTTPConnection("127.0.0.1", self.status_port, timeout=5)
        try:
            c.request("GET", "/status")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        m = re.search(r"Active connections:\s*([0-9]+).*Reading:\s*([0-9]+)\s+"
                      r"Writing:\s*([0-9]+)\s+Waiting:\s*([0-9]+)", text, re.S)
        if not m:
            fail("cannot read nginx's stub_status: %r" % text)
        return dict(zip(("active", "reading", "writing", "waiting"), map(int, m.groups())))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                for p in self.pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                self.proc.wait(5)
        wait_until(lambda: not any(procs.alive(p) for p in self.pids), 10,
                   "nginx processes %r to exit" % self.pids)

    def dump(self):
        sys.stderr.write("---- last lines of nginx's error.log ----\n%s\n"
                         % tail(self.error_log, 40))


# ------------------------------------------------------------------ clients

def connect_from(addr, port, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    return s


def request_from(addr, port, method, path, body=None, headers=None):
    """One request on a new connection from addr: (Response, seconds)."""
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                   source_address=(addr, 0))
    try:
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        raw = r.read()
    finally:
        c.close()
    dt = time.monotonic() - t0
    hl = {k.lower(): v for k, v in r.getheaders()}
    return Response(r.status, hl, decode_body(raw), raw), dt


def expect(resp, status, what, detail=None):
    if resp.status != status:
        fail("%s: expected %d, got %d %r" % (what, status, resp.status, resp.raw[:300]))
    if resp.headers.get("content-type", "").startswith("application/json"):
        check_response("GET", what, resp.status, resp.headers, resp.raw)
    else:
        fail("%s: %d without a JSON body: %r %r" % (what, status, resp.headers, resp.raw[:200]))
    if detail is not None:
        if not isinstance(resp.body, dict) or not isinstance(resp.body.get("detail"), str):
            fail("%s: body is not {\"detail\": ...}: %r" % (what, resp.raw))
        if detail not in resp.body["detail"]:
            fail("%s: detail %r lacks %r" % (what, resp.body["detail"], detail))
    return resp


def recv_response(sock, timeout):
    """One response off a socket: headers, then Content-Length bytes."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?im)^content-length:\s*([0-9]+)\s*$", head)
            if m and len(rest) >= int(m.group(1)):
                break
        chunk = sock.recv(65536)
        if not chunk:
            fail("the connection closed before a whole response: %r" % buf[:300])
        buf += chunk
    lines = head.decode("iso-8859-1").split("\r\n")
    hl = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hl[k.strip().lower()] = v.strip()
    raw = rest[:int(hl["content-length"])]
    return Response(int(lines[0].split(" ", 2)[1]), hl, decode_body(raw), raw)


def api_connections(api_port):
    """Established TCP connections whose local end is order-api's port."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.split(":")[1], 16) == api_port:
                n += 1
    return n


def closed_times(socks, opened, deadline):
    """For each socket, seconds from its connect until the peer closed it
    (EOF or reset), or None if still open at deadline (monotonic)."""
    sel = selectors.DefaultSelector()
    out = [None] * len(socks)
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    left = len(socks)
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            i = key.data
            try:
                data = socks[i].recv(4096)
            except BlockingIOError:
                continue
            except (ConnectionResetError, ConnectionAbortedError):
                data = b""
            if data:
                fail("idle connection %d got an answer: %r" % (i, data[:200]))
            out[i] = time.monotonic() - opened[i]
            sel.unregister(socks[i])
            left -= 1
    sel.close()
    return out


class Trickler(threading.Thread):
    """Sends a request header one byte a second until the server closes."""

    def __init__(self, addr, port, limit):
        super().__init__(daemon=True)
        self.sock = connect_from(addr, port)
        self.opened = time.monotonic()
        self.limit = limit
        self.sent = 0
        self.closed_after = None

    def run(self):
        data = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        while time.monotonic() - self.opened < self.limit:
            try:
                self.sock.send(data[self.sent:self.sent + 1])
                self.sent += 1
                if sel.select(1.0):
                    got = self.sock.recv(4096)
                    if got:
                        self.closed_after = "answered %r" % got[:100]
                        break
                    self.closed_after = time.monotonic() - self.opened
                    break
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                self.closed_after = time.monotonic() - self.opened
                break
        sel.close()
        self.sock.close()


# ------------------------------------------------------------------ checks

def check_site(nginx_bin, tmp):
    """The site file, with a throw-away certificate, passes nginx -t."""
    text = read(SITE)
    for inc in ("include snippets/order-processing-http.conf;",
                "include snippets/order-processing-server.conf;"):
        if inc not in text:
            fail("%s does not %s" % (SITE, inc))
    d = os.path.join(tmp, "nginx-site")
    os.makedirs(os.path.join(d, "snippets"))
    for name in ("order-processing-http.conf", "order-processing-server.conf"):
        os.symlink(os.path.join(NGINX_DIR, "snippets", name), os.path.join(d, "snippets", name))
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=orders.example.com", "-days", "1",
                        "-keyout", key, "-out", cert], capture_output=True)
    if r.returncode != 0:
        fail("openssl could not make a test certificate: %s" % r.stderr.decode())
    placeholders = ("/etc/ssl/certs/orders.example.com.pem",
                    "/etc/ssl/private/orders.example.com.key")
    for p in placeholders:
        if text.count(p) != 1:
            fail("%s: expected the placeholder %s once" % (SITE, p))
    text = text.replace(placeholders[0], cert).replace(placeholders[1], key)
    # nginx -t binds the listening sockets: free loopback ports in place of
    # 80 and 443 (privileged unless root), IPv4 only (the host may have no
    # IPv6).
    listens = {"listen 80;": "listen 127.0.0.1:%d;" % free_port(),
               "listen [::]:80;": "",
               "listen 443 ssl;": "listen 127.0.0.1:%d ssl;" % free_port(),
               "listen [::]:443 ssl;": ""}
    for old, new in listens.items():
        if text.count(old) != 1:
            fail("%s: expected %r once" % (SITE, old))
        text = text.replace(old, new)
    with open(os.path.join(d, "site.conf"), "w") as f:
        f.write(text)
    with open(os.path.join(d, "check.conf"), "w") as f:
        f.write("pid %(d)s/nginx.pid;\nerror_log %(d)s/error.log;\nevents {}\n"
                "http {\n    access_log %(d)s/access.log;\n"
                "    client_body_temp_path %(d)s/client_body;\n"
                "    proxy_temp_path %(d)s/proxy;\n"
                "    fastcgi_temp_path %(d)s/fastcgi;\n"
                "    uwsgi_temp_path %(d)s/uwsgi;\n"
                "    scgi_temp_path %(d)s/scgi;\n"
                "    include site.conf;\n}\n" % {"d": d})
    r = subprocess.run([nginx_bin, "-t", "-p", d + "/", "-c", os.path.join(d, "check.conf"),
                        "-e", os.path.join(d, "error.log")], capture_output=True)
    if r.returncode != 0:
        fail("nginx -t rejects the shipped site file: %s" % r.stderr.decode())
    print("nginx -t accepts the shipped site file (TLS, redirect, both snippets)")


def check_idle(s, ngx, shipped, created):
    """1,000 idle connections from many addresses; a fresh client is served."""
    port = ngx.port
    trickler = Trickler("127.0.4.1", port, shipped.header_timeout + 10)
    trickler.start()
    socks, opened = [], []
    partial = b"GET /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: abc"
    t0 = time.monotonic()
    for a in range(IDLE_ADDRESSES):
        addr = "127.0.1.%d" % (a + 1)
        for k in range(IDLE_PER_ADDRESS):
            c = connect_from(addr, port)
            opened.append(time.monotonic())
            if k % 2:
                c.sendall(partial)
            socks.append(c)
    n_idle = len(socks)
    wait_until(lambda: ngx.status()["active"] >= n_idle + 2, 5,
               "nginx to hold the %d idle connections" % n_idle)
    print("%d idle connections (%d addresses, half with a partial header) open in %.2f s"
          % (n_idle, IDLE_ADDRESSES, time.monotonic() - t0))

    r, dt_create = request_from("127.0.2.1", port, "POST", "/api/orders/", BODY)
    expect(r, 201, "create through nginx with %d idle connections" % n_idle)
    oid = r.body.get("order_id") if isinstance(r.body, dict) else None
    if not isinstance(oid, str) or not ORDER_ID_RE.match(oid):
        fail("create through nginx: bad order_id in %r" % r.raw)
    if r.headers.get("location") != "/api/orders/%s/" % oid:
        fail("create through nginx: Location %r" % r.headers.get("location"))
    created.append(oid)
    r, dt_get = request_from("127.0.2.1", port, "GET", "/api/orders/%s/" % oid)
    expect(r, 200, "GET through nginx with %d idle connections" % n_idle)
    check_order_shape(r.body, "order through nginx")
    if (r.body["order_id"], r.body["user_id"], r.body["item_ids"], r.body["total_amount"]) != \
            (oid, BODY["user_id"], BODY["item_ids"], BODY["total_amount"]):
        fail("GET %s through nginx: %r does not match the create %r" % (oid, r.body, BODY))
    api_conns = api_connections(s.port)
    st = ngx.status()
    print("with %d idle connections held by nginx (active %d): create 201 in %.1f ms, "
          "GET 200 in %.1f ms; order-api holds %d connections"
          % (n_idle, st["active"], dt_create * 1000, dt_get * 1000, api_conns))
    for what, dt in (("create", dt_create), ("GET", dt_get)):
        if dt >= FRESH_BOUND:
            fail("%s from a fresh address took %.3f s with %d idle connections "
                 "(want < %.0f s)" % (what, dt, n_idle, FRESH_BOUND))
    if api_conns > shipped.keepalive:
        fail("order-api holds %d established connections with %d idle clients at "
             "nginx; at most the upstream keepalive (%d) expected"
             % (api_conns, n_idle, shipped.keepalive))
    if st["active"] < n_idle + 2:
        fail("nginx holds %d connections, fewer than the %d idle ones: some closed early"
             % (st["active"], n_idle))

    # nginx closes every one of them at client_header_timeout from its start.
    T = shipped.header_timeout
    closed = closed_times(socks, opened, opened[-1] + T + 5)
    for c in socks:
        c.close()
    still = [i for i, t in enumerate(closed) if t is None]
    if still:
        fail("%d of %d idle connections still open %.0f s after client_header_timeout "
             "(%d s), e.g. #%d" % (len(still), n_idle, 5, T, still[0]))
    early = min(closed)
    late = max(closed)
    print("idle connections closed by nginx %.2f to %.2f s after they opened "
          "(client_header_timeout %d s)" % (early, late, T))
    if early < T - 0.5:
        fail("an idle connection was closed after %.2f s, before client_header_timeout "
             "(%d s)" % (early, T))
    if late > T + 3:
        fail("an idle connection was closed only after %.2f s (client_header_timeout %d s)"
             % (late, T))
    trickler.join(T + 15)
    if not isinstance(trickler.closed_after, float):
        fail("a client sending its header one byte a second was not closed within "
             "%d s (sent %d bytes; %r)" % (T + 10, trickler.sent, trickler.closed_after))
    print("a client sending its header one byte a second was closed after %.2f s "
          "(%d bytes sent)" % (trickler.closed_after, trickler.sent))
    if not T - 0.5 <= trickler.closed_after <= T + 3:
        fail("the one-byte-a-second client was closed after %.2f s, expected about "
             "client_header_timeout (%d s)" % (trickler.closed_after, T))


def check_limit_conn(s, ngx, shipped, created):
    """One address with limit_conn requests in progress is refused the next."""
    port = ngx.port
    head = (b"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY_BYTES))
    half = len(BODY_BYTES) // 2
    base = ngx.status()["writing"]
    slow = []
    for _ in range(shipped.conn_limit):
        c = connect_from("127.0.3.1", port)
        c.sendall(head + BODY_BYTES[:half])
        slow.append(c)
    wait_until(lambda: ngx.status()["writing"] >= base + shipped.conn_limit, 5,
               "nginx to have the %d unfinished requests in progress" % shipped.conn_limit)
    r, dt = request_from("127.0.3.1", port, "GET", "/healthz")
    expect(r, 429, "request %d in progress from one address" % (shipped.conn_limit + 1),
           "Too many requests")
    if r.headers.get("retry-after") != "1":
        fail("429 from limit_conn without Retry-After: 1: %r" % r.headers)
    r2, dt2 = request_from("127.0.3.2", port, "GET", "/healthz")
    expect(r2, 200, "GET from another address while one is at its limit")
    api_conns = api_connections(s.port)
    print("limit_conn %d: request %d from one address got 429 in %.1f ms; another address "
          "200 in %.1f ms; order-api holds %d connections for the %d unfinished bodies"
          % (shipped.conn_limit, shipped.conn_limit + 1, dt * 1000, dt2 * 1000, api_conns,
             shipped.conn_limit))
    if api_conns > shipped.keepalive:
        fail("order-api holds %d connections while nginx reads %d bodies: the bodies "
             "were not buffered by nginx" % (api_conns, shipped.conn_limit))
    for c in slow:
        c.sendall(BODY_BYTES[half:])
    for i, c in enumerate(slow):
        r = recv_response(c, 10)
        c.close()
        expect(r, 201, "slow create %d, once its body was complete" % i)
        created.append(r.body["order_id"])
    r, _ = request_from("127.0.3.1", port, "GET", "/healthz")
    expect(r, 200, "GET from the limited address once its requests finished")


def check_limit_req(ngx, shipped, created):
    """Creates back to back from one address: refused after the burst."""
    port = ngx.port
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                   source_address=("127.0.3.3", 0))
    accepted = 0
    refused = None
    t0 = time.monotonic()
    try:
        for _ in range(500):
            c.request("POST", "/api/orders/", body=BODY_BYTES,
                      headers={"Content-Type": "application/json"})
            resp = c.getresponse()
            raw = resp.read()
            if resp.status == 201:
                accepted += 1
                created.append(json.loads(raw)["order_id"])
                continue
            hl = {k.lower(): v for k, v in resp.getheaders()}
            refused = Response(resp.status, hl, decode_body(raw), raw)
            break
    finally:
        c.close()
    elapsed = time.monotonic() - t0
    if refused is None:
        fail("500 creates from one address in %.2f s, none refused (rate %d/s, burst %d)"
             % (elapsed, shipped.rate, shipped.burst))
    expect(refused, 429, "create over the rate from one address", "Too many requests")
    if refused.headers.get("retry-after") != "1":
        fail("429 from limit_req without Retry-After: 1: %r" % refused.headers)
    most = shipped.burst + 1 + int(shipped.rate * elapsed) + 1
    print("limit_req %d/s burst %d: %d creates accepted from one address in %.2f s, "
          "then 429 (at most %d allowed)" % (shipped.rate, shipped.burst, accepted, elapsed, most))
    if accepted < shipped.burst + 1:
        fail("only %d creates accepted before a 429; the burst is %d"
             % (accepted, shipped.burst))
    if accepted > most:
        fail("%d creates accepted in %.2f s; rate %d/s and burst %d allow %d"
             % (accepted, elapsed, shipped.rate, shipped.burst, most))
    r, _ = request_from("127.0.3.3", port, "GET", "/api/orders/%s/status/" % created[-1])
    expect(r, 200, "a GET from the address whose creates are refused")
    r, _ = request_from("127.0.3.4", port, "POST", "/api/orders/", BODY)
    expect(r, 201, "a create from another address")
    created.append(r.body["order_id"])


def check_errors(s, ngx, shipped):
    """What nginx answers itself is JSON; order-api's own errors pass."""
    port = ngx.port
    r, _ = request_from("127.0.5.1", port, "GET", "/metrics")
    expect(r, 403, "/metrics from outside the allowed network", "permission")
    if "retry-after" in r.headers:
        fail("403 with a Retry-After: %r" % r.headers)
    r, _ = request_from("127.0.0.1", port, "GET", "/metrics")
    if r.status != 200 or b"order_processing_orders" not in r.raw:
        fail("/metrics from 127.0.0.1 through nginx: %s %r" % (r.status, r.raw[:200]))
    big = b'{"user_id": 1, "item_ids": [1], "total_amount": 1, "x": "' + \
        b"a" * 65536 + b'"}'
    r, _ = request_from("127.0.5.2", port, "POST", "/api/orders/", big)
    expect(r, 413, "a body over 64 KiB", "larger than")
    line = int(shipped.header_line) * 1024
    r, _ = request_from("127.0.5.3", port, "GET", "/healthz", headers={"X-Big": "a" * line})
    expect(r, 431, "a header line over %d bytes" % line, "too large")
    c = connect_from("127.0.5.3", port)
    try:
        c.sendall(b"GARBAGE\r\n\r\n")
        r = recv_response(c, 10)
    finally:
        c.close()
    expect(r, 400, "a request line that is not HTTP", "Bad request")
    r, _ = request_from("127.0.5.3", port, "GET", "/api/orders/" + "1" * line + "/")
    expect(r, 414, "a request line over %d bytes" % line, "too long")
    r, _ = request_from("127.0.5.4", port, "GET", "/api/orders/ORD999999999/")
    expect(r, 404, "order-api's own 404 through nginx")
    if r.body != {"detail": "Not found."}:
        fail("order-api's 404 changed on its way through nginx: %r" % r.raw)
    print("nginx's own errors are JSON: 400, 403, 413, 414, 431; order-api's 404 "
          "passes through")


def test_main():
    nginx_bin = find_nginx()
    if nginx_bin is None:
        sys.stderr.write("SKIP: nginx is not installed (apt-get install nginx)\n")
        sys.exit(77)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if want < 4096:
        fail("the open file limit is %d (hard); 1,000 sockets and nginx need 4096" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    shipped = Shipped()
    created = []
    with System("nginx") as s:
        check_site(nginx_bin, s.tmp)
        s.start_api()
        s.start_worker()
        s.wait_ready()
        ngx = Nginx(nginx_bin, s.tmp, s.port)
        try:
            ngx.start()
            check_idle(s, ngx, shipped, created)
            check_limit_conn(s, ngx, shipped, created)
            check_limit_req(ngx, shipped, created)
            check_errors(s, ngx, shipped)
            check_all_completed(s, created, timeout=60)
            s.stop_api()
            r, _ = request_from("127.0.5.5", ngx.port, "GET", "/healthz")
            expect(r, 502, "a request while order-api is down", "unavailable")
            if r.headers.get("retry-after") != "1":
                fail("502 without Retry-After: 1: %r" % r.headers)
            print("with order-api stopped: 502 JSON with Retry-After")
            s.stop_worker()
        except BaseException:
            ngx.dump()
            raise
        finally:
            ngx.stop()


if __name__ == "__main__":
    run(test_main)
