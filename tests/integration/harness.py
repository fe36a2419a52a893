"""Shared helpers for the order-processing integration and fault tests.

Python 3 standard library only.  Each test script imports this module, builds
a System (temporary LMDB directory, free port, private POSIX queue), starts
the real daemons and talks HTTP to them.

Daemon paths come from $ORDER_API and $ORDER_WORKER (meson sets them); the
defaults are the build tree paths.
"""

import ctypes
import errno
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ORDER_API = os.environ.get(
    "ORDER_API", os.path.join(ROOT, "build", "api-daemon", "order-api"))
ORDER_WORKER = os.environ.get(
    "ORDER_WORKER", os.path.join(ROOT, "build", "worker-daemon", "order-worker"))

STATUSES = ("Pending", "Processing", "Completed", "Cancelled")
STATUS_RANK = {s: i for i, s in enumerate(("Pending", "Processing", "Completed"))}
ORDER_ID_RE = re.compile(r"^ORD([0-9]+)$")
TIMESTAMP_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")

HTTP_TIMEOUT = 15.0


class TestFailure(AssertionError):
    """Raised by the helpers when the system does not behave."""


def fail(msg):
    raise TestFailure(msg)


# ---------------------------------------------------------------- ports, queues

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def unique_queue():
    return "/op-test-%d-%s" % (os.getpid(), secrets.token_hex(4))


_librt = None


def unlink_queue(name):
    """mq_unlink(name); a queue that does not exist is fine."""
    global _librt
    if _librt is None:
        _librt = ctypes.CDLL("librt.so.1", use_errno=True)
        _librt.mq_unlink.argtypes = [ctypes.c_char_p]
        _librt.mq_unlink.restype = ctypes.c_int
    if _librt.mq_unlink(name.encode()) != 0:
        e = ctypes.get_errno()
        if e != errno.ENOENT:
            sys.stderr.write("warning: mq_unlink(%s): %s\n" % (name, os.strerror(e)))


# ---------------------------------------------------------------- processes

def children_of(pid):
    """Direct children of pid, read from /proc/*/stat."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # comm may contain spaces and parentheses: split after the last ')'
        rest = data[data.rfind(")") + 2:].split()
        if len(rest) >= 2 and int(rest[1]) == pid:
            kids.append(int(entry))
    return kids


def descendants_of(pid):
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            if c not in out:
                out.append(c)
                todo.append(c)
    return out


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return False
    state = data[data.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def is_daemon_process(pid):
    """True if pid runs one of our daemon binaries (guards against pid reuse)."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    exe = exe.replace(" (deleted)", "")
    return exe in (os.path.realpath(ORDER_API), os.path.realpath(ORDER_WORKER))


def tail(path, n=50):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------- waiting

def wait_until(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns a true value, which is returned.
    Fails with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
            last_exc = None
        except TestFailure:
            raise
        except Exception as e:  # keep polling through transient errors
            last_exc = e
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            fail("timed out after %.1f s waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


# ---------------------------------------------------------------- HTTP

class Response:
    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def __iter__(self):  # status, headers, body = request(...)
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "<HTTP %s %r>" % (self.status, self.raw[:300])


def _decode_body(raw):
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return raw


def check_response(method, path, status, headers, raw):
    """Every response: Content-Length equal to the body (or a list of more
    than 64 KiB in chunks, which http.client joins), JSON content type."""
    where = "%s %s -> %s" % (method, path, status)
    chunked = headers.get("transfer-encoding") == "chunked"
    if chunked:
        if "content-length" in headers:
            fail("%s: chunked with a Content-Length (headers %r)" % (where, headers))
        if method != "HEAD" and len(raw) <= 64 * 1024:
            fail("%s: a body of %d bytes came in chunks" % (where, len(raw)))
    elif "content-length" not in headers:
        fail("%s: no Content-Length header (headers %r)" % (where, headers))
    else:
        try:
            cl = int(headers["content-length"])
        except ValueError:
            fail("%s: bad Content-Length %r" % (where, headers["content-length"]))
        if method != "HEAD" and cl != len(raw):
            fail("%s: Content-Length %d but body has %d bytes" % (where, cl, len(raw)))
    ct = headers.get("content-type", "")
    if not ct.lower().startswith("application/json"):
        fail("%s: Content-Type %r, expected application/json (body %r)"
             % (where, ct, raw[:200]))
    if method != "HEAD":
        try:
            json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            fail("%s: body is not JSON: %r" % (where, raw[:300]))


IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
STALE_ERRORS = (http.client.RemoteDisconnected, http.client.BadStatusLine,
                BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class Client:
    """HTTP client with one keep-alive connection per thread."""

    def __init__(self, port, host="127.0.0.1", timeout=None):
        self.host = host
        self.port = port
        self.timeout = timeout or HTTP_TIMEOUT
        self._local = threading.local()

    def _conn(self, fresh=False):
        c = getattr(self._local, "conn", None)
        if fresh and c is not None:
            c.close()
            c = None
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = c
            self._local.used = False
        return c

    def close(self):
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def request(self, method, path, body=None, headers=None, check=True, retry=True):
        """Returns Response (iterable as status, headers, body).  body may be
        a dict/list (sent as JSON with Content-Type application/json unless
        headers say otherwise), str or bytes (sent as is, no Content-Type
        unless given).  headers of the response are lowercased; the body is
        parsed JSON, or the raw bytes if it is not JSON."""
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                if not any(k.lower() == "content-type" for k in hdrs):
                    hdrs["Content-Type"] = "application/json"
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body
        elif method in ("POST", "PUT", "PATCH"):
            data = b""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            conn = self._conn()
            reused = self._local.used
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                self._local.used = True
                break
            except STALE_ERRORS:
                self._conn(fresh=True)
                # A keep-alive connection the server closed while idle:
                # retry once on a fresh one (POST too, as browsers do,
                # only when the connection had been used before).
                if attempt + 1 < attempts and reused:
                    continue
                raise
            except Exception:
                self._conn(fresh=True)
                raise
        hl = {k.lower(): v for k, v in resp.getheaders()}
        if resp.will_close:
            self._conn(fresh=True)
        if check:
            check_response(method, path, resp.status, hl, raw)
        return Response(resp.status, hl, _decode_body(raw), raw)


def raw_request(port, data, timeout=10.0, host="127.0.0.1"):
    """Send raw bytes on a new connection (ignoring errors while sending, as a
    server may answer and close early), read the response until the server
    closes or the declared Content-Length arrived.  Returns Response."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*([0-9]+)\s*$", head)
                if m and len(rest) >= int(m.group(1)):
                    break
            if time.monotonic() > deadline:
                break
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    if not buf:
        fail("raw request %r: no response" % (data[:80],))
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    hl = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hl[k.strip().lower()] = v.strip()
    if "content-length" in hl:
        rest = rest[:int(hl["content-length"])]
    return Response(status, hl, _decode_body(rest), rest)


# ---------------------------------------------------------------- the system

class Daemon:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.proc = None

    def start(self, env=None):
        log = open(self.log_path, "ab")
        log.write(("==== start %s: %s\n" % (time.strftime("%H:%M:%S"),
                                            " ".join(self.argv))).encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True,
            env=None if env is None else dict(os.environ, **env))
        log.close()
        return self.proc

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class System:
    """One data directory, one queue, one port; order-api and order-worker
    started and stopped on demand.  Use as a context manager."""

    def __init__(self, name="test"):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="op-it-%s-" % name)
        self.datadir = os.path.join(self.tmp, "data")
        self.queue = unique_queue()
        self.port = free_port()
        self.client = Client(self.port)
        self.api = None
        self.worker = None
        self.api_log = os.path.join(self.tmp, "order-api.log")
        self.worker_log = os.path.join(self.tmp, "order-worker.log")
        self.worker_kids = set()

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                self.dump_logs()
            self.cleanup()
        finally:
            unlink_queue(self.queue)
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def dump_logs(self, n=50):
        for path in (self.api_log, self.worker_log):
            if os.path.exists(path):
                sys.stderr.write("---- last %d lines of %s ----\n%s\n"
                                 % (n, os.path.basename(path), tail(path, n)))

    def cleanup(self):
        """Kill whatever is still running (no assertions)."""
        for d in (self.api, self.worker):
            if d is not None and d.running():
                pids = descendants_of(d.pid)
                try:
                    os.kill(d.pid, signal.SIGTERM)
                    d.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._sigkill_tree(d)
                except OSError:
                    pass
                for p in pids:
                    self.worker_kids.add(p)
        for p in list(self.worker_kids):
            if pid_alive(p) and is_daemon_process(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self.client.close()

    # -- command lines
    def api_argv(self, extra=()):
        return [ORDER_API, "-c", "/dev/null", "-D", self.datadir, "-q", self.queue,
                "-l", "127.0.0.1:%d" % self.port, "--log-level", "info"] + list(extra)

    def worker_argv(self, workers=2, pickup_ms=100, processing_ms=200,
                    lease_ms=2000, extra=()):
        return [ORDER_WORKER, "-c", "/dev/null", "-D", self.datadir, "-q", self.queue,
                "-w", str(workers), "--pickup-delay-ms", str(pickup_ms),
                "--processing-ms", str(processing_ms), "--lease-ms", str(lease_ms),
                "--log-level", "info"] + list(extra)

    # -- API
    def start_api(self, extra=(), timeout=10.0, env=None):
        assert self.api is None or not self.api.running(), "API already running"
        self.api = Daemon("order-api", self.api_argv(extra), self.api_log)
        self.api.start(env)
        self.wait_healthy(timeout)
        return self.api

    def wait_healthy(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if not self.api.running():
                fail("order-api exited with %s before serving; log:\n%s"
                     % (self.api.proc.returncode, tail(self.api_log)))
            try:
                r = self.client.request("GET", "/healthz", check=False, retry=False)
                if r.status == 200:
                    return
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
                self.client.close()
            if time.monotonic() > deadline:
                fail("order-api not healthy after %.0f s (last: %r); log:\n%s"
                     % (timeout, last, tail(self.api_log)))
            time.sleep(0.05)

    def stop_api(self, timeout=15.0, sig=signal.SIGTERM):
        self._stop(self.api, timeout, sig)
        self.client.close()

    def kill_api(self):
        self._sigkill_tree(self.api)
        self.client.close()

    # -- worker
    def start_worker(self, workers=2, pickup_ms=100, processing_ms=200,
                     lease_ms=2000, extra=(), env=None):
        assert self.worker is None or not self.worker.running(), "worker already running"
        self.worker = Daemon("order-worker",
                             self.worker_argv(workers, pickup_ms, processing_ms,
                                              lease_ms, extra),
                             self.worker_log)
        self.worker.start(env)
        # The worker has no port: make sure it did not die at start-up and
        # that it forked its children.
        def started():
            if not self.worker.running():
                fail("order-worker exited with %s at start-up; log:\n%s"
                     % (self.worker.proc.returncode, tail(self.worker_log)))
            kids = children_of(self.worker.pid)
            self.worker_kids.update(kids)
            return len(kids) >= 1
        wait_until(started, 10, "order-worker to fork its worker processes")
        time.sleep(0.2)
        if not self.worker.running():
            fail("order-worker exited with %s at start-up; log:\n%s"
                 % (self.worker.proc.returncode, tail(self.worker_log)))
        return self.worker

    def stop_worker(self, timeout=15.0, sig=signal.SIGTERM):
        kids = descendants_of(self.worker.pid) if self.worker.running() else []
        self.worker_kids.update(kids)
        self._stop(self.worker, timeout, sig)
        # a clean stop leaves no worker process behind
        wait_until(lambda: not any(pid_alive(p) for p in kids), 5,
                   "order-worker children %r to exit after the master stopped" % kids)

    def kill_worker(self):
        self._sigkill_tree(self.worker)

    # -- shared stop/kill
    def _stop(self, d, timeout, sig=signal.SIGTERM):
        assert d is not None and d.running(), "%s is not running" % (d and d.name)
        os.kill(d.pid, sig)
        try:
            rc = d.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._sigkill_tree(d)
            fail("%s did not exit within %.0f s of %s (killed); log:\n%s"
                 % (d.name, timeout, signal.Signals(sig).name, tail(d.log_path)))
        if rc != 0:
            fail("%s exited with %s after %s, expected 0; log:\n%s"
                 % (d.name, rc, signal.Signals(sig).name, tail(d.log_path)))

    def _sigkill_tree(self, d):
        """SIGKILL the daemon and every process it forked."""
        if d is None or d.proc is None:
            return
        pids = descendants_of(d.pid)
        self.worker_kids.update(pids)
        for p in [d.pid] + pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(d.pid, signal.SIGKILL)
        except OSError:
            pass
        # children forked in between
        for p in descendants_of(d.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        d.proc.wait(10)
        wait_until(lambda: not any(pid_alive(p) for p in pids), 5,
                   "killed processes %r to go away" % pids)

    # -- HTTP
    def request(self, method, path, body=None, headers=None, check=True, retry=True):
        return self.client.request(method, path, body, headers, check, retry)

    def wait_ready(self, timeout=15.0):
        wait_until(lambda: self.request("GET", "/readyz").status == 200, timeout,
                   "GET /readyz to answer 200")

    def create_order(self, user_id=1, item_ids=(101, 102), total_amount=250.75,
                     path="/api/orders/"):
        r = self.request("POST", path, {"user_id": user_id, "item_ids": list(item_ids),
                                        "total_amount": total_amount})
        if r.status != 201:
            fail("POST %s: expected 201, got %s %r" % (path, r.status, r.raw))
        oid = r.body.get("order_id") if isinstance(r.body, dict) else None
        if not isinstance(oid, str) or not ORDER_ID_RE.match(oid):
            fail("POST %s: bad order_id in %r" % (path, r.raw))
        return oid

    def status(self, oid):
        r = self.request("GET", "/api/orders/%s/status/" % oid)
        if r.status != 200:
            fail("GET status of %s: %s %r" % (oid, r.status, r.raw))
        if r.body.get("order_id") != oid:
            fail("GET status of %s: order_id %r" % (oid, r.body.get("order_id")))
        if r.body.get("status") not in STATUSES:
            fail("GET status of %s: bad status %r" % (oid, r.body.get("status")))
        return r.body["status"]

    def order(self, oid):
        r = self.request("GET", "/api/orders/%s/" % oid)
        if r.status != 200:
            fail("GET order %s: %s %r" % (oid, r.status, r.raw))
        return r.body

    def metrics(self):
        r = self.request("GET", "/api/orders/metrics/")
        if r.status != 200:
            fail("GET metrics: %s %r" % (r.status, r.raw))
        m = r.body
        for k in ("total_orders_processed", "average_processing_time",
                  "average_processing_time_seconds", "total_orders", "order_status_count"):
            if k not in m:
                fail("metrics lack %r: %r" % (k, m))
        for s in STATUSES:
            if s not in m["order_status_count"]:
                fail("metrics order_status_count lacks %r: %r" % (s, m))
        return m


def check_metrics_consistent(m):
    counts = m["order_status_count"]
    total = sum(counts[s] for s in STATUSES)
    if total != m["total_orders"]:
        fail("status counts %r sum to %d, total_orders is %d" % (counts, total, m["total_orders"]))
    if counts["Completed"] != m["total_orders_processed"]:
        fail("Completed count %d != total_orders_processed %d (%r)"
             % (counts["Completed"], m["total_orders_processed"], m))


def check_all_completed(sys_, ids, timeout=60.0, expected_total=None):
    """Poll until every id in ids is Completed, then until no order is
    Pending or Processing; check the metrics add up.  Returns the metrics."""
    deadline = time.monotonic() + timeout
    left = list(dict.fromkeys(ids))
    last = {}
    while left:
        still = []
        for oid in left:
            st = sys_.status(oid)
            last[oid] = st
            if st == "Cancelled":
                fail("order %s became Cancelled, expected Completed" % oid)
            if st != "Completed":
                still.append(oid)
        left = still
        if not left:
            break
        if time.monotonic() > deadline:
            hist = {}
            for oid in left:
                hist[last[oid]] = hist.get(last[oid], 0) + 1
            fail("%d of %d orders not Completed after %.0f s (statuses %r, e.g. %s); metrics %r"
                 % (len(left), len(ids), timeout, hist, left[:5], sys_.metrics()))
        time.sleep(0.2)

    def settled():
        m = sys_.metrics()
        c = m["order_status_count"]
        return m if c["Pending"] == 0 and c["Processing"] == 0 else None
    remaining = max(5.0, deadline - time.monotonic())
    m = wait_until(settled, remaining, "no order left Pending or Processing")
    check_metrics_consistent(m)
    if m["order_status_count"]["Completed"] < len(set(ids)):
        fail("metrics count %d Completed, but %d ids completed"
             % (m["order_status_count"]["Completed"], len(set(ids))))
    if expected_total is not None and m["total_orders"] != expected_total:
        fail("total_orders %d, expected %d (%r)" % (m["total_orders"], expected_total, m))
    return m


# ---------------------------------------------------------------- checks

def check_order_shape(o, where="order"):
    """Fields and types of an order body."""
    if not isinstance(o, dict):
        fail("%s: not an object: %r" % (where, o))
    keys = {"order_id", "user_id", "item_ids", "total_amount", "status",
            "created_at", "updated_at", "completed_at"}
    missing = keys - set(o)
    if missing:
        fail("%s: missing %s in %r" % (where, sorted(missing), o))
    if not isinstance(o["order_id"], str) or not ORDER_ID_RE.match(o["order_id"]):
        fail("%s: order_id %r" % (where, o["order_id"]))
    if not isinstance(o["user_id"], int) or isinstance(o["user_id"], bool):
        fail("%s: user_id %r is not an integer" % (where, o["user_id"]))
    if not isinstance(o["item_ids"], list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in o["item_ids"]):
        fail("%s: item_ids %r" % (where, o["item_ids"]))
    if not isinstance(o["total_amount"], str) or not re.match(r"^[0-9]+\.[0-9]{2}$", o["total_amount"]):
        fail("%s: total_amount %r is not a two-decimal string" % (where, o["total_amount"]))
    if o["status"] not in STATUSES:
        fail("%s: status %r" % (where, o["status"]))
    for k in ("created_at", "updated_at"):
        if not isinstance(o[k], str) or not TIMESTAMP_RE.match(o[k]):
            fail("%s: %s %r is not RFC 3339 UTC with ms" % (where, k, o[k]))
    if o["completed_at"] is not None and (
            not isinstance(o["completed_at"], str) or not TIMESTAMP_RE.match(o["completed_at"])):
        fail("%s: completed_at %r" % (where, o["completed_at"]))
    if o["status"] == "Completed" and o["completed_at"] is None:
        fail("%s: Completed but completed_at is null" % where)
    if o["status"] != "Completed" and o["completed_at"] is not None:
        fail("%s: %s but completed_at is %r" % (where, o["status"], o["completed_at"]))
    if o["updated_at"] < o["created_at"]:
        fail("%s: updated_at before created_at" % where)
    if o["completed_at"] is not None and o["completed_at"] < o["created_at"]:
        fail("%s: completed_at before created_at" % where)


def check_daemons_built():
    for p in (ORDER_API, ORDER_WORKER):
        if not os.access(p, os.X_OK):
            sys.stderr.write("daemon not built: %s\n" % p)
            sys.exit(77)  # meson's "skipped"


def run(test_main):
    """Entry point for a test script: exit 0 on success, 1 with a message."""
    check_daemons_built()
    t0 = time.monotonic()
    name = os.path.basename(sys.argv[0])
    try:
        test_main()
    except (AssertionError, Exception) as e:
        sys.stderr.write("Traceback (most recent call last):\n")
        traceback.print_tb(e.__traceback__)
        sys.stderr.write("FAIL %s: %s: %s\n" % (name, type(e).__name__, e))
        sys.exit(1)
    print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
    sys.exit(0)
