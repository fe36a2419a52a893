#!/usr/bin/env python3
"""Two instances behind the shipped HAProxy, watched by the shipped
Prometheus rules (contrib/haproxy/, contrib/prometheus/).

Two full instances run as in every integration test, each on its own data
directory, private queue and order-worker: instance 0 (`--instance 0`) on
127.0.0.1 and instance 1 (`--instance 1`) on 127.0.0.2, free ports, the
worker's pickup delay long enough (4 s) for cancels to find orders
Pending. A real HAProxy runs in the foreground with the shipped
order-processing.cfg, whose two instance addresses (its setenv lines) and
bind address are replaced by the test's and nothing else, after a global
section of the test's own (a stats socket, to read the servers' states).
A real Prometheus (temporary storage) scrapes both order-api /metrics
directly with the shipped prometheus.yml, its targets replaced by the
test's and its intervals set to 1 s, and the shipped recording rules;
the creates wait for its first scrapes of both.

- Creates through HAProxy land on both instances: ids of both owners
  (id / 10^13), as many on each as its own total_orders says. Creates
  with an Idempotency-Key, each sent twice, are replayed (the key's hash
  picks the instance), the keys spread over both.
- Every order is read (detail and status) through HAProxy at its owner,
  in every path form: with and without /api, ORD and the trailing slash,
  with leading zeros; a third are cancelled through HAProxy while Pending
  (200, Cancelled at the owner, unknown to the other), the rest complete.
- The list with after=N*10^13 is instance N's orders; paging by next
  stays there; newest first from after=N*10^13 + 10^13 - 1 too; the
  dashboard sets the OP_INSTANCE cookie, which keeps /api/orders/metrics/
  on that instance.
- Creates/s through HAProxy against straight to one instance (printed).
- Under a create load from 4 clients, instance 1's order-api gets SIGTERM
  (by pid): the creates go on, all to instance 0, with at most one failed
  request per client (those in flight at the stop), none sent after
  order-api exited; printed: the errors, how long after the SIGTERM the
  last create landed on instance 1 and when HAProxy marked it down. Once
  HAProxy marks it down for its orders, they get HAProxy's 503 JSON
  (detail, status and cancel) within a second, instance 0's are still
  read, and Prometheus's job:up:sum counts one instance; once its
  order-api starts again they are read again and creates reach it again.
- Every accepted order ends Completed or Cancelled.
- The recording rules queried from Prometheus's HTTP API equal the sums of
  both instances' own /metrics (created, completed, by status, the
  histogram's buckets, count and sum, and its quantiles recomputed here),
  waited for with a deadline.

Skipped (exit 77) only when haproxy or prometheus is not installed.
"""

import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import prom  # noqa: E402
from optest.checks import fail, run, skip, tail, wait_until  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import ROOT, System  # noqa: E402
from optest.orders import ORDER_ID_RE  # noqa: E402
from optest.ports import free_port  # noqa: E402

HAPROXY_CFG = os.path.join(ROOT, "contrib", "haproxy", "order-processing.cfg")
PROM_YML = os.path.join(ROOT, "contrib", "prometheus", "prometheus.yml")
RULES = os.path.join(ROOT, "contrib", "prometheus", "order-processing.rules.yml")
SHIPPED_ADDR = {0: "10.0.1.10:8000", 1: "10.0.2.10:8000"}
SHIPPED_BIND = "bind 127.0.0.1:8000"
HOSTS = {0: "127.0.0.1", 1: "127.0.0.2"}
SPAN = 10 ** 13           # ids of instance N: N * SPAN + 1, + 2, ...
PICKUP_MS = 4000
LOAD_CLIENTS = 4
BODY = {"user_id": 7, "item_ids": [101, 102], "total_amount": "250.75"}


def find(name, *dirs):
    for p in [shutil.which(name)] + [os.path.join(d, name) for d in dirs]:
        if p and os.access(p, os.X_OK):
            return p
    return None


def read(path):
    with open(path) as f:
        return f.read()


def replace_once(text, old, new, where):
    if text.count(old) != 1:
        fail("%s: expected exactly one %r" % (where, old))
    return text.replace(old, new)


def owner(oid):
    m = ORDER_ID_RE.match(oid)
    if not m:
        fail("bad order id %r" % oid)
    return int(m.group(1)) // SPAN


def number(oid):
    return int(ORDER_ID_RE.match(oid).group(1))


# ------------------------------------------------------------------ servers

class Server:
    """A program the test runs beside the instances: started with its
    output in self.log, waited for until ready() says so (failing at once
    if it exits), stopped with SIGTERM (SIGKILL after stop_timeout s)."""

    name = None
    stop_timeout = 10
    log_lines = 40

    def spawn(self, argv, ready, timeout, what):
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=log, start_new_session=True, close_fds=True)
        log.close()

        def started():
            if self.proc.poll() is not None:
                fail("%s exited with %s at start-up:\n%s"
                     % (self.name, self.proc.returncode, tail(self.log)))
            return ready()
        wait_until(started, timeout, what)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def dump(self):
        sys.stderr.write("---- last lines of %s's log ----\n%s\n"
                         % (self.name, tail(self.log, self.log_lines)))


# ------------------------------------------------------------------ HAProxy

class HAProxy(Server):
    """haproxy -db with a global section of the test's and the shipped
    file, its instance addresses and bind replaced."""

    name = "haproxy"

    def __init__(self, binary, tmp, instances):
        self.binary = binary
        self.dir = os.path.join(tmp, "haproxy")
        os.makedirs(self.dir)
        self.port = free_port()
        self.sock = os.path.join(self.dir, "admin.sock")
        self.log = os.path.join(self.dir, "haproxy.log")
        self.proc = None
        text = read(HAPROXY_CFG)
        for n, s in instances.items():
            text = replace_once(text, "setenv ORDER_INSTANCE_%d %s" % (n, SHIPPED_ADDR[n]),
                                "setenv ORDER_INSTANCE_%d %s:%d" % (n, s.host, s.port),
                                HAPROXY_CFG)
        text = replace_once(text, SHIPPED_BIND, "bind 127.0.0.1:%d" % self.port, HAPROXY_CFG)
        self.cfg = os.path.join(self.dir, "order-processing.cfg")
        with open(self.cfg, "w") as f:
            f.write(text)
        self.global_cfg = os.path.join(self.dir, "global.cfg")
        with open(self.global_cfg, "w") as f:
            f.write("global\n\tstats socket %s mode 600 level admin\n"
                    "\tlog stdout format raw local0 info\n" % self.sock)

    def start(self):
        def up():
            st = self.states()
            return all(v == "UP" for v in st.values()) and st
        self.spawn([self.binary, "-db", "-f", self.global_cfg, "-f", self.cfg],
                   up, 15, "haproxy to see every server UP")

    def states(self):
        """{(backend, server): status} from the stats socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        lines = buf.decode().splitlines()
        if not lines or not lines[0].startswith("# "):
            fail("haproxy's show stat: %r" % buf[:200])
        head = lines[0][2:].split(",")
        out = {}
        for line in lines[1:]:
            if not line:
                continue
            row = dict(zip(head, line.split(",")))
            if row["svname"] not in ("FRONTEND", "BACKEND"):
                out[(row["pxname"], row["svname"])] = row["status"].split(" ")[0]
        return out


# ------------------------------------------------------------------ Prometheus

class Prometheus(Server):
    """prometheus on a temporary storage directory, the shipped scrape job
    pointed at the instances, scrapes and rules every second."""

    name = "prometheus"
    stop_timeout = 20
    log_lines = 30

    def __init__(self, binary, tmp, instances):
        self.binary = binary
        self.dir = os.path.join(tmp, "prometheus")
        os.makedirs(self.dir)
        self.port = free_port()
        self.log = os.path.join(self.dir, "prometheus.log")
        self.proc = None
        text = read(PROM_YML)
        for n, s in instances.items():
            text = replace_once(text, "- %s\n" % SHIPPED_ADDR[n],
                                "- %s:%d\n" % (s.host, s.port), PROM_YML)
        text = replace_once(text, "scrape_interval: 15s", "scrape_interval: 1s", PROM_YML)
        text = replace_once(text, "evaluation_interval: 15s", "evaluation_interval: 1s",
                            PROM_YML)
        text = replace_once(text, "- order-processing.rules.yml", "- " + RULES, PROM_YML)
        self.cfg = os.path.join(self.dir, "prometheus.yml")
        with open(self.cfg, "w") as f:
            f.write(text)

    def start(self):
        self.spawn([self.binary, "--config.file=" + self.cfg,
                    "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                    "--web.listen-address=127.0.0.1:%d" % self.port],
                   lambda: self.get("/-/ready")[0] == 200, 30, "prometheus to be ready")

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def query(self, expr):
        """{frozenset(labels but __name__): float} of an instant query."""
        status, body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if status != 200:
            fail("prometheus query %r: %s %r" % (expr, status, body[:300]))
        data = json.loads(body)
        if data.get("status") != "success" or data["data"]["resultType"] != "vector":
            fail("prometheus query %r: %r" % (expr, body[:300]))
        out = {}
        for r in data["data"]["result"]:
            labels = {k: v for k, v in r["metric"].items() if k != "__name__"}
            out[frozenset(labels.items())] = float(r["value"][1])
        return out


# ------------------------------------------------------------------ checks

def path_forms(oid, i):
    """The i-th of 16 path forms of one order's detail and status: with and
    without /api and the trailing slash; ORD or not, leading zeros or not
    (ids of up to 19 digits, as order-api reads them)."""
    n = number(oid)
    ids = ["ORD%d" % n, "%d" % n, "ORD%019d" % n, "%016d" % n]
    oid_s = ids[i % 4]
    prefix = ["/api/orders/", "/orders/"][(i // 4) % 2]
    slash = ["/", ""][(i // 8) % 2]
    return prefix + oid_s + slash, prefix + oid_s + "/status" + slash


def create(client):
    r = client.request("POST", "/api/orders/", BODY, retry=False)
    if r.status != 201:
        fail("POST /api/orders/ through haproxy: %s %r" % (r.status, r.raw))
    oid = r.body.get("order_id")
    if not isinstance(oid, str) or not ORDER_ID_RE.match(oid):
        fail("POST through haproxy: bad order_id in %r" % r.raw)
    return oid


def check_creates(front, insts, created):
    """Creates through HAProxy land on both instances, round robin."""
    n = 60
    for _ in range(n):
        created.append(create(front))
    per = {k: [o for o in created if owner(o) == k] for k in insts}
    print("%d creates through haproxy: %d on instance 0, %d on instance 1"
          % (n, len(per[0]), len(per[1])))
    for k in insts:
        if len(per[k]) < n // 4:
            fail("only %d of %d creates on instance %d: %r" % (len(per[k]), n, k, created))
    # A create with an Idempotency-Key goes where its key hashes: a retry
    # replays the first at the same instance.
    keyed = {k: 0 for k in insts}
    for i in range(12):
        hdr = {"Idempotency-Key": "fleet-key-%d" % i}
        first = front.request("POST", "/api/orders/", BODY, headers=hdr, retry=False)
        again = front.request("POST", "/orders/", BODY, headers=hdr, retry=False)
        if first.status != 201 or again.status != 201 or \
                again.body.get("order_id") != first.body.get("order_id") or \
                again.headers.get("idempotent-replayed") != "true":
            fail("a create with Idempotency-Key fleet-key-%d sent twice through haproxy: "
                 "%s %r, then %s %r %r" % (i, first.status, first.raw, again.status,
                                           again.headers, again.raw))
        created.append(first.body["order_id"])
        keyed[owner(first.body["order_id"])] += 1
    if not all(keyed.values()):
        fail("12 Idempotency-Keys all hashed to one instance: %r" % keyed)
    print("12 creates with an Idempotency-Key, each sent twice: replayed by the same "
          "instance (%d keys on instance 0, %d on instance 1)" % (keyed[0], keyed[1]))
    per = {k: [o for o in created if owner(o) == k] for k in insts}
    for k, s in insts.items():
        total = s.metrics()["total_orders"]
        if total != len(per[k]):
            fail("instance %d counts %d orders, %d of the creates are its ids"
                 % (k, total, len(per[k])))
        if k == 1 and min(number(o) for o in per[1]) != SPAN + 1:
            fail("instance 1's first id is not ORD%d: %r" % (SPAN + 1, sorted(per[1])[:3]))
    other = [o for o in created if owner(o) not in insts]
    if other:
        fail("ids of no instance: %r" % other)


def check_reads_and_cancels(front, insts, created):
    """Every order read at its owner through HAProxy in every path form;
    a third cancelled while Pending."""
    cancelled = created[::3]
    for i, oid in enumerate(cancelled):
        detail, _status = path_forms(oid, i)
        path = detail.rstrip("/") + "/cancel" + ("/" if i % 3 else "")
        r = front.request("POST", path, retry=False)
        if r.status != 200 or r.body.get("status") != "Cancelled":
            fail("cancel %s through haproxy (%s): %s %r" % (oid, path, r.status, r.raw))
    for i, oid in enumerate(created):
        detail, status = path_forms(oid, i)
        for path in (detail, status):
            r = front.request("GET", path, retry=False)
            if r.status != 200 or r.body.get("order_id") != oid:
                fail("GET %s through haproxy (order %s of instance %d): %s %r"
                     % (path, oid, owner(oid), r.status, r.raw))
        want = "Cancelled" if oid in cancelled else None
        if want and r.body["status"] != want:
            fail("%s cancelled through haproxy reads %r" % (oid, r.body["status"]))
    for oid in cancelled:
        k = owner(oid)
        if insts[k].status(oid) != "Cancelled":
            fail("%s is not Cancelled at its instance %d" % (oid, k))
        r = insts[1 - k].request("GET", "/api/orders/%s/" % oid, check=False, retry=False)
        if r.status != 404:
            fail("%s (instance %d's) on instance %d: %s, expected 404"
                 % (oid, k, 1 - k, r.status))
    print("every order read through haproxy at its owner (detail and status, 16 path "
          "forms); %d cancelled while Pending" % len(cancelled))
    return set(cancelled)


def check_list_and_cookie(front, insts, created):
    """after=N*10^13 lists instance N; next pages stay there; the
    dashboard's cookie keeps the counts on one instance."""
    for k in insts:
        want = sorted((o for o in created if owner(o) == k), key=number)
        got = []
        after = "ORD%d" % (k * SPAN)
        while True:
            r = front.request("GET", "/api/orders/?limit=7&after=%s" % after, retry=False)
            if r.status != 200:
                fail("list after=%s through haproxy: %s %r" % (after, r.status, r.raw))
            got += [o["order_id"] for o in r.body["results"]]
            if r.body["next"] is None:
                break
            after = r.body["next"]
        if got != want:
            fail("list of instance %d through haproxy, pages of 7 from after=ORD%d: "
                 "%r, expected %r" % (k, k * SPAN, got, want))
        after = "ORD%d%013d" % (k, SPAN - 1)
        r = front.request("GET", "/api/orders/?order=desc&limit=1000&after=%s" % after,
                          retry=False)
        got = [o["order_id"] for o in r.body["results"]] if r.status == 200 else r
        if got != want[::-1]:
            fail("list newest first after=%s through haproxy: %r, expected %r"
                 % (after, got, want[::-1]))
    print("the list from after=ORD0 and after=ORD%d pages through each instance's "
          "orders alone, and newest first from after=ORD09999999999999 and "
          "after=ORD19999999999999" % SPAN)
    c = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie") or ""
    finally:
        c.close()
    m = re.match(r"OP_INSTANCE=([01]);", cookie)
    if r.status != 200 or not m:
        fail("the dashboard through haproxy: %s, Set-Cookie %r" % (r.status, cookie))
    for k in insts:
        r = front.request("GET", "/api/orders/metrics/",
                          headers={"Cookie": "OP_INSTANCE=%d" % k}, retry=False)
        direct = insts[k].metrics()
        if r.status != 200 or r.body["total_orders"] != direct["total_orders"]:
            fail("/api/orders/metrics/ with OP_INSTANCE=%d: %s %r, instance %d has %r"
                 % (k, r.status, r.raw, k, direct))
    print("the dashboard sets OP_INSTANCE=%s; the cookie keeps the counts on its instance"
          % m.group(1))


def rate(port, host, seconds, created, clients=4):
    """Creates/s from clients threads for seconds."""
    lock = threading.Lock()
    count = [0]
    errors = []
    stop = time.monotonic() + seconds

    def loop():
        c = Client(port, host)
        n = 0
        try:
            while time.monotonic() < stop:
                r = c.request("POST", "/api/orders/", BODY, retry=False)
                if r.status != 201:
                    errors.append(r)
                    return
                with lock:
                    created.append(r.body["order_id"])
                n += 1
        finally:
            c.close()
        with lock:
            count[0] += n
    t0 = time.monotonic()
    ts = [threading.Thread(target=loop) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fail("creates to %s:%d: %r" % (host, port, errors[0]))
    return count[0] / (time.monotonic() - t0)


class Load:
    """LOAD_CLIENTS threads creating through HAProxy until stopped; every
    request recorded as (start, end, order id or the error)."""

    def __init__(self, port):
        self.port = port
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.threads = [threading.Thread(target=self.loop) for _ in range(LOAD_CLIENTS)]

    def loop(self):
        c = Client(self.port)
        try:
            while not self.done.is_set():
                t0 = time.monotonic()
                try:
                    r = c.request("POST", "/api/orders/", BODY, retry=False)
                    what = r.body["order_id"] if r.status == 201 else r
                except (OSError, http.client.HTTPException, AssertionError) as e:
                    what = e  # a failed request, or an answer that is not JSON
                with self.lock:
                    self.results.append((t0, time.monotonic(), what))
        finally:
            c.close()

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(30)

    def on(self, k):
        with self.lock:
            return sum(1 for _, _, w in self.results if isinstance(w, str) and owner(w) == k)


def check_stop(front, hap, insts, created):
    """SIGTERM to instance 1's order-api under load: creates go on to
    instance 0, at most one error per client."""
    load = Load(hap.port)
    load.start()
    try:
        wait_until(lambda: load.on(0) >= 20 and load.on(1) >= 20, 20,
                   "creates through haproxy to reach both instances")
        marked = []
        watching = threading.Event()

        def watch():
            # when haproxy takes instance 1 out of the creates
            while not watching.is_set():
                if hap.states()[("order_create", "i1")] != "UP":
                    marked.append(time.monotonic())
                    return
                time.sleep(0.002)
        watcher = threading.Thread(target=watch)
        watcher.start()
        t_stop = time.monotonic()
        try:
            insts[1].stop_api()
            t_exit = time.monotonic()
            wait_until(lambda: marked, 15, "haproxy to mark instance 1 down for creates")
        finally:
            watching.set()
            watcher.join()
        down = marked[0]
        wait_until(lambda: time.monotonic() > t_stop + 3, 5, "3 s of creates after the stop")
    finally:
        load.stop()
    errors = [(t0, t1, w) for t0, t1, w in load.results if not isinstance(w, str)]
    ok = [(t0, t1, w) for t0, t1, w in load.results if isinstance(w, str)]
    created.extend(w for _, _, w in ok)
    after = [(t0, t1, w) for t0, t1, w in ok if t0 > t_stop]
    last1 = max((t1 for _, t1, w in ok if owner(w) == 1), default=None)
    print("creates under load from %d clients: %d, %d after the SIGTERM (instance 0: %d, "
          "instance 1: %d); %d errors"
          % (LOAD_CLIENTS, len(load.results), len(after),
             sum(1 for _, _, w in after if owner(w) == 0),
             sum(1 for _, _, w in after if owner(w) == 1), len(errors)))
    print("order-api exited %.0f ms after its SIGTERM; the last create on instance 1 "
          "ended %.0f ms after it; haproxy marked it down for creates after %.0f ms"
          % ((t_exit - t_stop) * 1000, (last1 - t_stop) * 1000, (down - t_stop) * 1000))
    for t0, t1, w in errors:
        print("  error: started %+.0f ms from the SIGTERM, took %.0f ms: %r"
              % ((t0 - t_stop) * 1000, (t1 - t0) * 1000, w))
    if len(errors) > LOAD_CLIENTS:
        fail("%d creates failed around the stop; at most the %d in flight may"
             % (len(errors), LOAD_CLIENTS))
    late = [w for t0, _, w in ok if owner(w) == 1 and t0 > min(down, t_exit)]
    if late:
        fail("creates sent after haproxy marked instance 1 down or its order-api exited "
             "landed on it: %r" % late)
    if len(after) < 20:
        fail("only %d creates in the 3 s after the stop" % len(after))
    for k in insts:
        mine = [w for _, _, w in ok if owner(w) == k]
        if not mine:
            fail("no create of the load reached instance %d" % k)
    return t_stop


def check_stopped_orders(front, hap, insts, created):
    """Instance 1's orders: HAProxy's 503 JSON; instance 0's still read."""
    wait_until(lambda: hap.states()[("order_1", "i1")] != "UP", 10,
               "haproxy to mark instance 1 down for its orders")
    oid1 = next(o for o in created if owner(o) == 1)
    oid0 = next(o for o in created if owner(o) == 0)
    for method, path in (("GET", "/api/orders/%s/" % oid1),
                         ("GET", "/orders/%s/status" % oid1),
                         ("POST", "/api/orders/%s/cancel/" % oid1)):
        t0 = time.monotonic()
        r = front.request(method, path, retry=False)
        dt = time.monotonic() - t0
        if r.status != 503 or "unavailable" not in r.body.get("detail", "") \
                or r.headers.get("retry-after") != "1":
            fail("%s %s of stopped instance 1: %s %r %r, expected haproxy's 503"
                 % (method, path, r.status, r.headers, r.raw))
        if dt > 1:
            fail("%s %s of stopped instance 1 took %.1f s" % (method, path, dt))
    r = front.request("GET", "/api/orders/%s/" % oid0, retry=False)
    if r.status != 200 or r.body["order_id"] != oid0:
        fail("GET %s of instance 0 while instance 1 is down: %s %r" % (oid0, r.status, r.raw))
    print("with instance 1 stopped: its orders' detail, status and cancel 503 JSON with "
          "Retry-After: 1 from haproxy; instance 0's read")
    return oid1


def check_restart(front, insts, oid1, created):
    t0 = time.monotonic()
    insts[1].start_api(extra=["--instance", "1"])
    insts[1].wait_ready()
    wait_until(lambda: front.request("GET", "/api/orders/%s/" % oid1, retry=False).status
               == 200, 15, "instance 1's order %s through haproxy after its restart" % oid1)
    back = time.monotonic() - t0

    def creates_reach_1():
        oid = create(front)
        created.append(oid)
        return owner(oid) == 1
    wait_until(creates_reach_1, 15, "creates through haproxy to reach instance 1 again",
               interval=0.1)
    print("instance 1 restarted: its orders read again through haproxy %.1f s after its "
          "start, creates reach it again after %.1f s" % (back, time.monotonic() - t0))


def check_finished(insts, created, cancelled):
    """Every order Completed, or Cancelled if it was cancelled."""
    per = {k: [o for o in created if owner(o) == k] for k in insts}

    def settled(k):
        m = insts[k].metrics()
        c = m["order_status_count"]
        if m["total_orders"] != len(per[k]):
            fail("instance %d counts %d orders; %d creates got its ids"
                 % (k, m["total_orders"], len(per[k])))
        return c["Pending"] == 0 and c["Processing"] == 0
    wait_until(lambda: all(settled(k) for k in insts), 60,
               "every order of both instances to be Completed or Cancelled", interval=0.5)
    for oid in created:
        st = insts[owner(oid)].status(oid)
        if st != ("Cancelled" if oid in cancelled else "Completed"):
            fail("%s is %s at instance %d" % (oid, st, owner(oid)))
    print("all %d orders Completed (%d Cancelled), each instance counts its own: "
          "%d and %d" % (len(created), len(cancelled), len(per[0]), len(per[1])))


def quantile(q, buckets):
    """The q-quantile of cumulative (upper bound, count) buckets, the last
    +Inf, interpolated linearly within the bucket where the rank falls."""
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            break
    if math.isinf(le):
        return buckets[-2][0]
    lower, below = (0.0, 0.0) if i == 0 else buckets[i - 1]
    return lower + (le - lower) * (rank - below) / (count - below)


def check_rules(promq, insts):
    """The recording rules equal the sums of the instances' /metrics."""
    job = ("job", "order-processing")
    samples = {}
    for k, s in insts.items():
        _, text = prom.fetch(s.port, s.host)
        samples[k] = prom.parse(text)[1]

    def total(name, **labels):
        return sum(prom.value(samples[k], name, **labels) for k in insts)
    want = {
        ("job:order_processing_orders_created_total:sum", frozenset([job])):
            total("order_processing_orders_created_total"),
        ("job:order_processing_orders_completed_total:sum", frozenset([job])):
            total("order_processing_orders_completed_total"),
        ("job:order_processing_processing_seconds_count:sum", frozenset([job])):
            total("order_processing_processing_seconds_count"),
        ("job:order_processing_processing_seconds_sum:sum", frozenset([job])):
            total("order_processing_processing_seconds_sum"),
        ("job:up:sum", frozenset([job])): 2.0,
    }
    for st in ("Pending", "Processing", "Completed", "Cancelled"):
        want[("job_status:order_processing_orders:sum", frozenset([job, ("status", st)]))] = \
            total("order_processing_orders", status=st)
    les = sorted({dict(lbl)["le"] for (name, lbl) in samples[0]
                  if name == "order_processing_processing_seconds_bucket"},
                 key=float)
    buckets = []
    for le in les:
        v = total("order_processing_processing_seconds_bucket", le=le)
        buckets.append((float(le), v))
        want[("job_le:order_processing_processing_seconds_bucket:sum",
               frozenset([job, ("le", le)]))] = v
    for q in ("0.5", "0.9", "0.99"):
        want[("job_quantile:order_processing_processing_seconds:histogram_quantile",
              frozenset([job, ("quantile", q)]))] = quantile(float(q), buckets)
    names = sorted({n for n, _ in want})
    last = {}

    def agree():
        got = {}
        for n in names:
            for lbl, v in promq.query(n).items():
                got[(n, lbl)] = v
        last["got"] = got
        return all((key in got and math.isclose(got[key], v, rel_tol=1e-9, abs_tol=1e-9))
                   for key, v in want.items())
    t0 = time.monotonic()
    try:
        wait_until(agree, 30, "the recording rules to equal the sums of both /metrics",
                   interval=0.25)
    except AssertionError:
        for key, v in sorted(want.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))):
            sys.stderr.write("  %s%s: want %r, prometheus %r\n"
                             % (key[0], dict(key[1]), v, last.get("got", {}).get(key)))
        raise
    rates = promq.query("job:order_processing_orders_created:rate5m")
    if not rates or not all(v > 0 for v in rates.values()):
        fail("job:order_processing_orders_created:rate5m: %r" % rates)
    print("prometheus's recording rules equal the sums of both instances' /metrics "
          "(%d series, %.1f s until they agreed): created %d, completed %d, "
          "processing time p50 %.2f s, p99 %.2f s"
          % (len(want), time.monotonic() - t0,
             want[("job:order_processing_orders_created_total:sum", frozenset([job]))],
             want[("job:order_processing_orders_completed_total:sum", frozenset([job]))],
             quantile(0.5, buckets), quantile(0.99, buckets)))


def test_main():
    haproxy_bin = find("haproxy", "/usr/sbin")
    prometheus_bin = find("prometheus", "/usr/bin")
    if haproxy_bin is None or prometheus_bin is None:
        skip("SKIP: haproxy or prometheus is not installed "
             "(apt-get install haproxy prometheus)")
    created = []
    with System("fleet0", HOSTS[0]) as s0, System("fleet1", HOSTS[1]) as s1:
        insts = {0: s0, 1: s1}
        for k, s in insts.items():
            s.start_api(extra=["--instance", str(k)])
            s.start_worker(workers=2, pickup_ms=PICKUP_MS, processing_ms=100,
                           extra=["--instance", str(k)])
        for s in insts.values():
            s.wait_ready()
        hap = HAProxy(haproxy_bin, s0.tmp, insts)
        promq = Prometheus(prometheus_bin, s0.tmp, insts)
        try:
            promq.start()
            hap.start()
            # Prometheus begins scraping some seconds after it is ready:
            # the rates need it to see the creates.
            wait_until(lambda: len(promq.query('up{job="order-processing"} == 1')) == 2, 30,
                       "prometheus to scrape both instances")
            front = Client(hap.port)
            check_creates(front, insts, created)
            cancelled = check_reads_and_cancels(front, insts, created)
            check_list_and_cookie(front, insts, created)
            direct = rate(s0.port, s0.host, 1.0, created)
            through = rate(hap.port, "127.0.0.1", 1.0, created)
            print("creates/s from 4 clients: %.0f straight to instance 0, %.0f through "
                  "haproxy to both" % (direct, through))
            check_stop(front, hap, insts, created)
            oid1 = check_stopped_orders(front, hap, insts, created)
            wait_until(lambda: list(promq.query("job:up:sum").values()) == [1.0], 10,
                       "job:up:sum to count 1 instance up while instance 1 is stopped")
            check_restart(front, insts, oid1, created)
            front.close()
            check_finished(insts, created, cancelled)
            check_rules(promq, insts)
            s0.stop_api()
            s1.stop_api()
            s0.stop_worker()
            s1.stop_worker()
        except BaseException:
            hap.dump()
            promq.dump()
            s1.dump_logs()
            raise
        finally:
            hap.stop()
            promq.stop()


if __name__ == "__main__":
    run(test_main)
