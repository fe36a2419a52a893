"""The daemons under test: where they are, and starting and stopping them.

Paths come from the environment (meson sets them) or default to the build
tree: ORDER_API, ORDER_WORKER, ORDER_CTL, and the tests/check tools
WRITER_HOLD, FAULTSHIM ($OP_FAULTSHIM), CLOCKSHIM ($OP_CLOCKSHIM),
POWERTRACE ($OP_POWERTRACE), POWER_CUT ($OP_POWER_CUT), OP_RECOVER.

require_built() skips the test (exit 77) unless the daemons are built.
unique_queue() and unlink_queue() name and remove a private POSIX queue.
Daemon starts one program with any argv (the benchmark's own flags too);
System runs order-api and order-worker on a temporary data directory, a
unique queue and a free port, and stops or kills them by pid.
"""

import ctypes
import errno
import http.client
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from optest import orders, procs
from optest.checks import fail, tail, wait_until
from optest.client import Client
from optest.ports import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BUILD = os.path.join(ROOT, "build")


def _path(var, *rel):
    return os.environ.get(var, os.path.join(BUILD, *rel))


ORDER_API = _path("ORDER_API", "api-daemon", "order-api")
ORDER_WORKER = _path("ORDER_WORKER", "worker-daemon", "order-worker")
ORDER_CTL = _path("ORDER_CTL", "ctl", "order-ctl")
WRITER_HOLD = _path("WRITER_HOLD", "tests", "check", "writer-hold")
# LD_PRELOAD values: the library, after the ASan runtime in a sanitized build.
FAULTSHIM = _path("OP_FAULTSHIM", "tests", "check", "faultshim.so")
CLOCKSHIM = _path("OP_CLOCKSHIM", "tests", "check", "clockshim.so")
POWERTRACE = _path("OP_POWERTRACE", "tests", "check", "powertrace.so")
POWER_CUT = _path("OP_POWER_CUT", "tests", "check", "power-cut")
OP_RECOVER = _path("OP_RECOVER", "tests", "check", "op-recover")


def unique_queue():
    return "/op-test-%d-%s" % (os.getpid(), secrets.token_hex(4))


_librt = None


def unlink_queue(name):
    """mq_unlink(name); a queue that does not exist is fine.  Returns 0,
    or the errno of a failure (also written to stderr)."""
    global _librt
    if _librt is None:
        _librt = ctypes.CDLL("librt.so.1", use_errno=True)
        _librt.mq_unlink.argtypes = [ctypes.c_char_p]
        _librt.mq_unlink.restype = ctypes.c_int
    if _librt.mq_unlink(name.encode()) != 0:
        e = ctypes.get_errno()
        if e != errno.ENOENT:
            sys.stderr.write("warning: mq_unlink(%s): %s\n" % (name, os.strerror(e)))
            return e
    return 0


def require_built(*paths):
    """Skip the test (exit 77) unless each path (default: both daemons)
    is an executable."""
    from optest.checks import require_executable
    require_executable(*(paths or (ORDER_API, ORDER_WORKER)))


class Daemon:
    """One daemon started with any argv (its own session, stdout and
    stderr appended to log_path); stop it by its pid."""

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
    """One data directory, one queue, one port (on host, a loopback
    address); order-api and order-worker started and stopped on demand.
    Use as a context manager."""

    def __init__(self, name="test", host="127.0.0.1"):
        self.name = name
        self.host = host
        self.tmp = tempfile.mkdtemp(prefix="op-it-%s-" % name)
        self.datadir = os.path.join(self.tmp, "data")
        self.queue = unique_queue()
        self.port = free_port(host)
        self.client = Client(self.port, host)
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
                pids = procs.descendants(d.pid)
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
            if procs.alive(p) and procs.is_daemon_process(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self.client.close()

    # -- command lines
    def api_argv(self, extra=()):
        return [ORDER_API, "-c", "/dev/null", "-D", self.datadir, "-q", self.queue,
                "-l", "%s:%d" % (self.host, self.port), "--log-level", "info"] + list(extra)

    def worker_argv(self, workers=2, pickup_ms=100, processing_ms=200,
                    lease_ms=2000, extra=()):
        return [ORDER_WORKER, "-c", "/dev/null", "-D", self.datadir, "-q", self.queue,
                "-w", str(workers), "--pickup-delay-ms", str(pickup_ms),
                "--processing-ms", str(processing_ms), "--lease-ms", str(lease_ms),
                "--log-level", "info"] + list(extra)

    # -- API
    def start_api(self, extra=(), timeout=10.0, env=None, argv=None):
        """Start order-api with api_argv(extra), or with argv as given
        (which must listen on self.port), and wait for GET /healthz."""
        assert self.api is None or not self.api.running(), "API already running"
        self.api = Daemon("order-api", argv or self.api_argv(extra), self.api_log)
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
                     lease_ms=2000, extra=(), env=None, argv=None):
        """Start order-worker with worker_argv(...), or with argv as given,
        and wait until it forked its worker processes."""
        assert self.worker is None or not self.worker.running(), "worker already running"
        self.worker = Daemon("order-worker",
                             argv or self.worker_argv(workers, pickup_ms, processing_ms,
                                                      lease_ms, extra),
                             self.worker_log)
        self.worker.start(env)
        # The worker has no port: make sure it did not die at start-up and
        # that it forked its children.
        def started():
            if not self.worker.running():
                fail("order-worker exited with %s at start-up; log:\n%s"
                     % (self.worker.proc.returncode, tail(self.worker_log)))
            kids = procs.children(self.worker.pid)
            self.worker_kids.update(kids)
            return len(kids) >= 1
        wait_until(started, 10, "order-worker to fork its worker processes")
        time.sleep(0.2)
        if not self.worker.running():
            fail("order-worker exited with %s at start-up; log:\n%s"
                 % (self.worker.proc.returncode, tail(self.worker_log)))
        return self.worker

    def stop_worker(self, timeout=15.0, sig=signal.SIGTERM):
        kids = procs.descendants(self.worker.pid) if self.worker.running() else []
        self.worker_kids.update(kids)
        self._stop(self.worker, timeout, sig)
        # a clean stop leaves no worker process behind
        wait_until(lambda: not any(procs.alive(p) for p in kids), 5,
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
        pids = procs.descendants(d.pid)
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
        for p in procs.descendants(d.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        d.proc.wait(10)
        wait_until(lambda: not any(procs.alive(p) for p in pids), 5,
                   "killed processes %r to go away" % pids)

    # -- HTTP
    def request(self, method, path, body=None, headers=None, check=True, retry=True):
        return self.client.request(method, path, body, headers, check, retry)

    def wait_ready(self, timeout=15.0):
        wait_until(lambda: self.request("GET", "/readyz").status == 200, timeout,
                   "GET /readyz to answer 200")

    def create_order(self, user_id=1, item_ids=(101, 102), total_amount=250.75,
                     path="/api/orders/"):
        return orders.create_order(self, user_id, item_ids, total_amount, path)

    def status(self, oid):
        return orders.status(self, oid)

    def order(self, oid):
        return orders.order(self, oid)

    def metrics(self):
        return orders.metrics(self)
