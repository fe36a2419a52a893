#!/usr/bin/env python3
"""bench/run.py: the order-processing benchmark.  See bench/README.md.

    bench/run.sh [--smoke] [--seconds N] [options]    (run.sh runs this)

Builds the daemons (meson compile -C build) and the ceiling server
(bench/ceiling.c), starts them on temporary data directories, private
queues and free loopback ports, runs wrk for every case and prints a table
of req/s, p50, p99 and the ratio to the ceiling measured in the same run.
The creates are also measured against Redis with appendfsync always
(redis-benchmark LPUSH), in interleaved rounds on the same machine.
A case whose run was not clean (non-2xx answers, socket errors, too few
server threads, a daemon that died, orders that never completed, a Redis
error or a Redis whose durability settings did not take) prints BROKEN and
its reason instead of numbers, and the run exits 1.

main() is the plan: one function per phase, in the order they run.
Python 3.11 standard library, and the tests' library (tests/lib/optest)
for ports, processes, HTTP and /metrics.
"""

import argparse
import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from optest import checks, client, daemons, ports, procs, prom  # noqa: E402

import chart  # noqa: E402  (bench/chart.py)
import report  # noqa: E402  (bench/report.py)

WRK_TIMEOUT = 10
REDIS_CASE = "Redis LPUSH, AOF always"
PAIRED = {"create"}        # the cases run against Redis, in interleaved rounds
# create and Redis by connections: (case, the name of its line in the chart)
CURVE_SERIES = (("create", "order-api create"), (REDIS_CASE, REDIS_CASE))


class Fatal(Exception):
    """A broken setup: nothing can be measured."""


class Broken(Exception):
    """A case that did not run clean; its message is the reason."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM."""


# ------------------------------------------------------------------ options

def positive(s):
    if not re.fullmatch(r"[0-9]+", s) or int(s) <= 0:
        raise argparse.ArgumentTypeError("needs a positive number")
    return int(s)


def options(argv):
    nproc = len(os.sched_getaffinity(0))  # as nproc(1)
    p = argparse.ArgumentParser(
        prog="bench/run.sh", usage="bench/run.sh [--smoke] [--seconds N] [options]",
        description="The order-processing benchmark (bench/README.md).")
    a = p.add_argument
    a("--smoke", action="store_true",
      help="every case once for about 1 s, at 8 connections, with tiny counts and delays "
      "(CI, about 20 s); exit 0 only if every case ran clean")
    a("--seconds", type=positive, metavar="N",
      help="wrk duration of each timed case (default 10, smoke 1)")
    a("--rounds", type=positive, metavar="N",
      help="rounds of the interleaved create and Redis cases; the table gives their "
      "medians (default 3, smoke 1)")
    a("--orders-many", type=positive, metavar="N",
      help='orders stored for the "many orders" cases (default 1000000, smoke 2000)')
    a("--fill-cap", type=positive, metavar="S",
      help="give up filling after S seconds and measure with what was stored "
      "(default 600, smoke 30)")
    a("--default-orders", type=positive, metavar="N",
      help="orders for the end-to-end case with the default delays (default 10000, smoke 200)")
    a("--threads", type=positive, metavar="N", default=64,
      help="order-api --threads and the ceiling's threads (default 64; must be >= every "
      "case's connections)")
    a("--workers", type=positive, metavar="N", default=nproc,
      help="order-worker --workers (default: nproc)")
    a("--wrk-threads", type=positive, metavar="N", default=nproc,
      help="wrk -t (default: nproc)")
    a("--build-dir", metavar="DIR", default="build",
      help="meson build directory (default: build)")
    a("--no-build", action="store_true", help="use the binaries already built")
    a("--tmp", metavar="DIR", default=os.environ.get("BENCH_TMPDIR") or "/var/tmp",
      help="where the temporary data directories go (default $BENCH_TMPDIR or /var/tmp; "
      "a tmpfs makes fsync free)")
    a("--keep", action="store_true",
      help="keep the temporary directory (logs, data) afterwards")
    a("--out", metavar="DIR",
      help="where the report, its charts and index.html go (default bench/results, smoke "
      "bench/results/smoke)")
    o = p.parse_args(argv)

    smoke = o.smoke
    for name, full, small in (("seconds", 10, 1), ("orders_many", 1000000, 2000),
                              ("fill_cap", 600, 30), ("default_orders", 10000, 200),
                              ("rounds", 3, 1)):
        if getattr(o, name) is None:
            setattr(o, name, small if smoke else full)
    o.nproc = nproc
    o.orders_few = 200 if smoke else 1000
    if not os.path.isabs(o.build_dir):
        o.build_dir = os.path.join(ROOT, o.build_dir)
    o.api_bin = os.path.join(o.build_dir, "api-daemon", "order-api")
    o.worker_bin = os.path.join(o.build_dir, "worker-daemon", "order-worker")
    o.storecommit_bin = os.path.join(o.build_dir, "bench", "storecommit")
    # One connection count and each case once in the smoke run (wrk runs
    # whole seconds); the end-to-end case with "the default delays", 2 s
    # + 3 s as shipped, shortened there (it checks that the case works,
    # not how long it takes).
    o.conns_low, o.conns_high = (8, 8) if smoke else (16, 64)
    o.pickup_ms, o.processing_ms = (200, 300) if smoke else (2000, 3000)
    if o.threads < o.conns_high:
        p.exit(2, "%s: --threads %d is fewer than the %d connections of the cases (civetweb "
               "serves a connection per thread)\n" % (p.prog, o.threads, o.conns_high))
    o.conns_each = sorted({o.conns_low, o.conns_high})
    # create and Redis by connections: the curve's points, each for half
    # of --seconds (whole seconds, as wrk runs), on an order-api with a
    # thread for each connection of the last point
    o.curve_conns = (8, 16) if smoke else (16, 32, 64, 128)
    o.curve_seconds = max(1, o.seconds // 2)
    o.curve_threads = max(o.threads, *o.curve_conns)
    if o.out is None:
        o.out = os.path.join(HERE, "results", "smoke") if smoke else os.path.join(HERE, "results")
    o.out = os.path.abspath(o.out)
    # The fills create orders as fast as they can while the run polls the
    # API; leave it a free server thread (civetweb keeps a thread per
    # keep-alive connection).
    o.fill_conns = max(1, min(o.threads - 2, o.conns_high))
    return o


# ------------------------------------------------------------------ the run's state

class Server:
    """A daemon this run started (optest Daemon), its port and log."""

    def __init__(self, name, argv, log, port=None):
        self.name = name
        self.daemon = daemons.Daemon(name, argv, log)
        self.log = log
        self.port = port
        self.url = "http://127.0.0.1:%d" % port if port else ""
        self.threads = 0
        self.kids = []       # order-worker's children, seen while it ran
        self.dir = None      # redis-server's data directory

    @property
    def pid(self):
        return self.daemon.pid

    def alive(self):
        return self.pid is not None and procs.alive(self.pid)

    def tail(self, n=3):
        return report.one_line(checks.tail(self.log, n), n)

    def threads_from_log(self):
        """The thread count the server's own "serving ... with N threads"
        line says, or None."""
        m = re.findall(r"with ([0-9]+) threads", checks.tail(self.log, 1000))
        return int(m[-1]) if m else None


class Bench:
    """What the run holds: options, its directory, the rows, and every
    process it started (stopped by pid in cleanup(), whatever happens)."""

    def __init__(self, o):
        self.o = o
        self.t0 = time.time()
        self.run = None
        self.results = []          # table rows (report.RESULT_FIELDS)
        self.rounds = []           # rows of the cases run in rounds
        self.rounds_file = "rounds.tsv"
        self.curve = []            # rows of the rounds of create and Redis by connections
        self.extras = []           # the report's lines after the table
        self.settings = []
        self.ceiling = self.api = self.worker = self.redis = None
        self.client_proc = None    # the wrk or redis-benchmark running
        self.samplers = []
        self.queues = []
        self.wrk_runs = self.rb_runs = 0
        self.redis_why = ""        # why the Redis reference cannot run
        self.redis_rate = {}       # redis-benchmark's last req/s by connections
        self.fstype = "?"
        self.source = "?"          # the git commit
        self._held = 0
        self._pending = None

    # -- signals: an interrupt is held while a process starts, so that
    # every process started is one cleanup() knows about
    def on_signal(self, sig, _frame):
        if self._held:
            self._pending = sig
            return
        raise Interrupted(sig)

    @contextlib.contextmanager
    def hold(self):
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held and self._pending is not None:
                sig, self._pending = self._pending, None
                raise Interrupted(sig)

    def path(self, name):
        return os.path.join(self.run, name)

    def say(self, msg):
        sys.stderr.write("== [%3d s] %s\n" % (time.time() - self.t0, msg))
        sys.stderr.flush()

    def warn(self, msg):
        sys.stderr.write("warning: %s\n" % msg)
        if self.run:
            self.extra("warning: " + msg)

    def extra(self, line):
        self.extras.append(line)
        self._append("extras.txt", line)

    def setting(self, line):
        self.settings.append(line)
        self._append("settings.txt", line)

    def _append(self, name, line):
        with open(self.path(name), "a") as f:
            f.write(line + "\n")

    # -- rows
    def add(self, r):
        """A row of the table (report.RESULT_FIELDS)."""
        self.results.append(r)
        self._append("results.tsv", report.tsv_line(r, report.RESULT_FIELDS))

    def row(self, case, conns, state, rps="", p50="", p99="", ref="", target="", note=""):
        self.add(dict(case=case, conns=str(conns), state=state, rps=rps, p50=str(p50),
                      p99=str(p99), ref=ref, target=target, note=note, vs=""))

    def broken_row(self, case, conns, why, ref=""):
        """A BROKEN row; ref as the case's (the ratio chart shows a case
        measured against the ceiling, "get" or "post", as BROKEN)."""
        sys.stderr.write("BROKEN %s (%s connections): %s\n" % (case, conns, why))
        self.row(case, conns, "BROKEN: " + why, ref=ref)

    def phase_broken(self, why, cases, ref=""):
        """Every case of a phase that could not run, each once."""
        for case, conns in dict.fromkeys(cases):
            self.broken_row(case, conns, why, ref)

    def round_row(self, rnd, case, conns, state, rps="", p50="", p99="", ref="", target="",
                  note="", pair=""):
        r = dict(round=str(rnd), case=case, conns=str(conns), state=state, rps=rps,
                 p50=str(p50), p99=str(p99), ref=ref, target=target, note=note, pair=pair)
        self.rounds.append(r)
        self._append(self.rounds_file, report.tsv_line(r, report.ROUND_FIELDS))

    def round_broken(self, rnd, case, conns, why, ref=""):
        sys.stderr.write("BROKEN %s (%s connections, round %s): %s\n" % (case, conns, rnd, why))
        self.round_row(rnd, case, conns, "BROKEN: " + why, ref=ref)

    @contextlib.contextmanager
    def rounds_to(self, rows, name):
        """The rounds' rows go into the list rows and the file name (in
        the run's directory) instead of the table's rounds while in it."""
        saved = self.rounds, self.rounds_file
        self.rounds, self.rounds_file = rows, name
        try:
            yield
        finally:
            self.rounds, self.rounds_file = saved

    # -- processes
    def start(self, attr, server):
        """Start server as self.<attr> (set first: cleanup() stops it)."""
        with self.hold():
            setattr(self, attr, server)
            server.daemon.start()
        return server

    def stop(self, server, timeout):
        """SIGTERM, wait, SIGKILL the process (and the children it had)
        if it does not exit; a non-zero exit status is a warning."""
        if server is None or server.daemon.proc is None:
            return
        pid = server.pid
        kids = procs.children(pid)
        how = procs.stop(pid, signal.SIGTERM, timeout)
        if how == "killed":
            self.warn("%s (pid %d) still running %g s after SIGTERM: killed"
                      % (server.name, pid, timeout))
        rc = server.daemon.proc.wait()
        rc = 128 - rc if rc < 0 else rc
        if how == "gone":
            self.warn("%s (pid %d) had died before the end of its phase (status %d)"
                      % (server.name, pid, rc))
        elif rc != 0:
            self.warn("%s (pid %d) exited with status %d after SIGTERM" % (server.name, pid, rc))
        for k in kids:
            if procs.alive(k):
                with contextlib.suppress(OSError):
                    os.kill(k, signal.SIGKILL)

    def stop_api(self):
        self.stop(self.api, 30)
        self.api = None

    def stop_worker(self):
        w = self.worker
        if w is None:
            return
        if w.alive():
            w.kids += procs.children(w.pid)
        self.stop(w, 30)
        for k in w.kids:  # children that outlived their master
            if procs.alive(k) and procs.is_daemon_process(k, [self.o.worker_bin]):
                self.warn("order-worker child %d outlived its master: killed" % k)
                with contextlib.suppress(OSError):
                    os.kill(k, signal.SIGKILL)
        self.worker = None

    def stop_ceiling(self):
        self.stop(self.ceiling, 10)
        self.ceiling = None

    def stop_redis(self):
        self.stop(self.redis, 20)
        self.redis = None

    def sample(self, name, *pids):
        """The peak RSS of pids and their children from now until
        stop_samplers(), which writes it to the file name as "vmrss_kib
        anon_kib nproc"."""
        s = procs.RssPeak(pids)
        self.samplers.append((name, s))
        s.start()
        return s

    def stop_samplers(self):
        for name, s in self.samplers:
            if s.stop():
                with open(self.path(name), "w") as f:
                    f.write("%d %d %d\n" % s.peak)
        self.samplers = []

    def end_phase(self):
        """Stop the phase's order-worker and order-api; unlink its queue."""
        self.stop_worker()
        self.stop_api()
        for q in self.queues:
            daemons.unlink_queue(q)
        self.queues = []

    def new_queue(self, phase):
        q = "%s-bench-%s" % (daemons.unique_queue(), phase)
        self.queues.append(q)
        return q

    def run_client(self, argv, out, env=None, timeout=None, stop_when=None):
        """Run wrk or redis-benchmark, its output to the file out; returns
        (exit status, output).  stop_when(proc): polled every 50 ms; once
        true, the client gets SIGINT (wrk prints its summary on it).
        A client past timeout s is killed: status None."""
        with open(out, "wb") as f, self.hold():
            self.client_proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                env=None if env is None else dict(os.environ, **env))
        p = self.client_proc
        try:
            if stop_when is not None:
                while not stop_when(p) and p.poll() is None:
                    time.sleep(0.05)
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            rc = None
        self.client_proc = None
        with open(out, errors="replace") as f:
            return rc, f.read()

    def cleanup(self):
        """Stop every process the run started, by pid; remove the queues
        and (without --keep) the run's directory."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        p = self.client_proc
        if p is not None:
            p.terminate()
            p.wait()
            self.client_proc = None
        self.stop_samplers()
        self.end_phase()
        self.stop_ceiling()
        self.stop_redis()
        if self.run and os.path.isdir(self.run):
            if self.o.keep:
                sys.stderr.write("kept %s\n" % self.run)
            else:
                shutil.rmtree(self.run, ignore_errors=True)


# ------------------------------------------------------------------ HTTP

def http_get(port, path):
    """(status, body) of GET path on a new connection (HTTP/1.0: the
    server closes it, which frees its thread at once); (0, None) when
    nothing answered."""
    req = ("GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode()
    try:
        r = client.raw_request(port, req, timeout=10)
    except (OSError, ValueError, IndexError, checks.TestFailure):
        return 0, None
    return r.status, r.body


def wait_http(server, path, seconds):
    """Until GET path answers 200 (True), the server dies or seconds pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        if http_get(server.port, path)[0] == 200:
            return True
        time.sleep(0.1)
    return False


def api_counts(api):
    """(total, pending, processing, completed, cancelled) from GET
    /api/orders/metrics/, or None."""
    status, body = http_get(api.port, "/api/orders/metrics/")
    if status != 200 or not isinstance(body, dict):
        return None
    try:
        by = body["order_status_count"]
        return tuple(int(v) for v in (body["total_orders"], by["Pending"], by["Processing"],
                                      by["Completed"], by["Cancelled"]))
    except (KeyError, TypeError, ValueError):
        return None


def api_metrics(api):
    """order-api's /metrics samples, or None."""
    try:
        return prom.parse(prom.fetch(api.port)[1])[1]
    except (OSError, ValueError, checks.TestFailure):
        return None


def api_commits(api):
    """(journal flushes, LMDB commits) so far: order-api's journal records
    (one flush each) and LMDB transactions of new orders, or None."""
    s = api_metrics(api)
    if s is None:
        return None
    j = prom.first(s, "order_processing_journal_writes_total")
    c = prom.first(s, "order_processing_commits_total")
    return None if j is None or c is None else (j, c)


def api_codes(api):
    """(answered, not 2xx): the HTTP requests order-api's /metrics has
    counted and how many of them were not 2xx, or None."""
    s = api_metrics(api)
    if s is None:
        return None
    total = bad = 0
    for (name, labels), v in s.items():
        if name != "order_processing_http_requests_total":
            continue
        total += v
        if not re.fullmatch(r"2[0-9][0-9]", dict(labels).get("code", "")):
            bad += v
    return total, bad


def check_api_after(b, before):
    """Broken if order-api died or answered non-2xx since before."""
    if not b.api.alive():
        raise Broken("order-api died (see its log: %s)" % b.api.tail(2))
    after = api_codes(b.api)
    if after is None or before is None:
        raise Broken("cannot read order-api's /metrics")
    if after[1] > before[1]:
        raise Broken("order-api answered %d non-2xx responses (its /metrics)"
                     % (after[1] - before[1]))


def wait_done(api, timeout):
    """Until every order is Completed (or Cancelled): when (epoch) it saw
    that, or Broken with the last counts after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        c = api_counts(api)
        if c is not None:
            t, p, pr, done, ca = c
            if p == 0 and pr == 0 and done + ca == t:
                return time.time()
        if time.monotonic() >= deadline:
            raise Broken("orders still not all Completed after the wait (total pending "
                         "processing completed cancelled: %s)"
                         % (" ".join(map(str, c)) if c else "no answer"))
        time.sleep(0.05)


# ------------------------------------------------------------------ wrk

def wrk_timed(b, conns, url, script, serving, env=None, seconds=None):
    """A -d seconds (default --seconds) wrk run; its WrkResult, or Broken."""
    if conns > serving:
        raise Broken("the server has %d threads for %d connections" % (serving, conns))
    t = min(b.o.wrk_threads, conns)
    b.wrk_runs += 1
    rc, out = b.run_client(
        ["wrk", "-t", str(t), "-c", str(conns), "-d", "%ds" % (seconds or b.o.seconds),
         "--timeout", "%ds" % WRK_TIMEOUT, "-s", script, url],
        b.path("wrk-%d.txt" % b.wrk_runs), env=dict(env or {}, BENCH_THREADS=str(t)))
    w, why = report.parse_wrk(out, rc)
    if w is None:
        raise Broken(why)
    return w


class Fill:
    """What fill() did: the orders stored, whether the target was reached,
    when wrk started (epoch) and the seconds until the target was seen
    stored, and wrk's figures (None when nothing had to be created)."""

    def __init__(self, total):
        self.total = total
        self.reached = True
        self.start = time.time()
        self.secs = 0.0
        self.wrk = None


def fill(b, target):
    """Create orders with wrk (post.lua with a quota) until order-api
    stores target orders or --fill-cap seconds pass, polling every 50 ms."""
    c = api_counts(b.api)
    if c is None:
        raise Broken("cannot read the order counts")
    f = Fill(c[0])
    need = target - f.total
    if need <= 0:
        return f
    if b.o.fill_conns > b.api.threads:
        raise Broken("order-api has %d threads for %d connections"
                     % (b.api.threads, b.o.fill_conns))
    t = min(b.o.wrk_threads, b.o.fill_conns)
    f.reached = False
    deadline = time.monotonic() + b.o.fill_cap

    def enough(_p):
        c = api_counts(b.api)
        f.secs = time.time() - f.start
        if c is not None:
            f.total = c[0]
            if f.total >= target:
                f.reached = True
                return True
        return time.monotonic() >= deadline

    b.wrk_runs += 1
    f.start = time.time()
    rc, out = b.run_client(
        ["wrk", "-t", str(t), "-c", str(b.o.fill_conns), "-d", "%ds" % (b.o.fill_cap + 60),
         "--timeout", "%ds" % WRK_TIMEOUT, "-s", os.path.join(HERE, "post.lua"),
         b.api.url + "/api/orders/"],
        b.path("wrk-%d.txt" % b.wrk_runs),
        env={"BENCH_THREADS": str(t), "BENCH_QUOTA": str(need), "BENCH_POOL": "4096"},
        stop_when=enough)
    f.wrk, why = report.parse_wrk(out, rc)
    if f.wrk is None:
        raise Broken(why)
    return f


# ------------------------------------------------------------------ daemons

def start_api(b, phase, data, queue, extra=(), threads=None):
    """order-api with threads (default --threads) HTTP threads on a free
    port (a lost port race is retried), into b.api; Broken if it does not
    start."""
    threads = threads or b.o.threads
    log = b.path("order-api-%s.log" % phase)
    for _ in range(3):
        port = ports.free_port()
        # wrk's connections all come from one address: let it hold every
        # thread, as a proxy in front would.
        argv = [b.o.api_bin, "-c", "/dev/null", "-D", data, "-q", queue,
                "-l", "127.0.0.1:%d" % port, "-t", str(threads),
                "--max-connections-per-address", str(threads), *extra]
        b.start("api", Server("order-api", argv, log, port))
        if wait_http(b.api, "/healthz", 30):
            n = b.api.threads_from_log()
            if n is None:
                b.warn("order-api's log does not say its thread count; assuming --threads %d"
                       % threads)
                n = threads
            b.api.threads = n
            return b.api
        if b.api.alive():
            b.stop_api()
            raise Broken("order-api did not answer /healthz within 30 s")
        b.api.daemon.proc.wait()
        b.api = None
        if "in use" not in checks.tail(log, 1000).lower():
            break  # anything but a lost port race is fatal
    raise Broken("order-api did not start: %s" % report.one_line(checks.tail(log, 3)))


def start_worker(b, phase, data, queue, pickup_ms, processing_ms):
    """order-worker with --workers children, into b.worker; Broken if they
    do not all start."""
    log = b.path("order-worker-%s.log" % phase)
    argv = [b.o.worker_bin, "-c", "/dev/null", "-D", data, "-q", queue,
            "-w", str(b.o.workers), "--pickup-delay-ms", str(pickup_ms),
            "--processing-ms", str(processing_ms)]
    w = b.start("worker", Server("order-worker", argv, log))
    for _ in range(150):
        if not w.alive():
            break
        kids = procs.children(w.pid)
        if len(kids) >= b.o.workers:
            w.kids += kids
            time.sleep(0.2)
            if w.alive():
                return w
            break
        time.sleep(0.1)
    why = "order-worker did not start %d workers: %s" % (b.o.workers,
                                                         report.one_line(checks.tail(log, 3)))
    b.stop_worker()
    raise Broken(why)


def start_ceiling(b):
    """The ceiling server (bench/ceiling.c) on a free port, into b.ceiling."""
    log = b.path("ceiling.log")
    for _ in range(3):
        port = ports.free_port()
        b.start("ceiling", Server("ceiling", [b.path("ceiling"), "-l", "127.0.0.1:%d" % port,
                                              "-t", str(b.o.threads)], log, port))
        if wait_http(b.ceiling, "/hello", 10):
            b.ceiling.threads = b.ceiling.threads_from_log() or 0
            return True
        b.stop_ceiling()
    return False


def api_case(b, name, conns, ref, target, script, path, env=None, note="", rnd=None, pair="",
             seconds=None):
    """A timed case against order-api (wrk for seconds, default
    --seconds): a row, or a round's row with rnd."""
    b.say("%s, %d connections%s"
          % (name, conns, " (round %d of %d)" % (rnd, b.o.rounds) if rnd else ""))
    try:
        before = api_codes(b.api)
        if before is None:
            raise Broken("cannot read order-api's /metrics")
        counts0 = api_counts(b.api)
        commits0 = api_commits(b.api)
        w = wrk_timed(b, conns, b.api.url + path, script, b.api.threads, env, seconds)
        check_api_after(b, before)
        if ref == "post":  # every 201 wrk counted must be a stored order
            counts1 = api_counts(b.api)
            if counts0 is None or counts1 is None:
                raise Broken("cannot read the order counts")
            created = counts1[0] - counts0[0]
            if created < w.requests:
                raise Broken("wrk counted %d answers but only %d orders were stored"
                             % (w.requests, created))
            # the group commit: how many orders shared each journal flush,
            # and each LMDB commit behind it
            commits1 = api_commits(b.api)
            if commits0 and commits1 and commits1[0] > commits0[0] and commits1[1] > commits0[1]:
                j, c = commits1[0] - commits0[0], commits1[1] - commits0[1]
                note += "%s%.1f orders per journal flush, %.0f flushes/s; %.0f per LMDB commit" % (
                    "; " if note else "", created / j, j / w.duration, created / c)
    except Broken as e:
        if rnd:
            b.round_broken(rnd, name, conns, str(e), ref)
        else:
            b.broken_row(name, conns, str(e), ref)
        return
    figures = ("%.1f" % w.rps, w.p50, w.p99, ref, target, note)
    if rnd:
        b.round_row(rnd, name, conns, "OK", *figures, pair=pair)
    else:
        b.row(name, conns, "OK", *figures)


def get_cases(b, size, max_id, metrics_note):
    """Status and detail GETs of random orders among ORD1..ORD<max_id>,
    then the metrics, on order-api's store."""
    # ids are ORD1..ORD<total>: check both ends before the GET cases
    if (http_get(b.api.port, "/api/orders/ORD1/")[0] != 200
            or http_get(b.api.port, "/api/orders/ORD%d/" % max_id)[0] != 200):
        get_broken(b, "orders ORD1..ORD%d are not all there (ids not dense?)" % max_id, size)
        return
    get = os.path.join(HERE, "get.lua")
    hi = b.o.conns_high
    for kind in ("status", "detail"):
        api_case(b, "%s GET, random of %s orders" % (kind, size), hi, "get", ">=0.9", get, "/",
                 env={"BENCH_MAX_ID": str(max_id), "BENCH_KIND": kind},
                 note="random of %d orders" % max_id)
    api_case(b, "metrics, %s orders" % size, hi, "get", ">=0.9", get, "/api/orders/metrics/",
             note=metrics_note)


def get_broken(b, why, size):
    """The GET cases on a store that is not there."""
    hi = b.o.conns_high
    b.phase_broken(why, [("status GET, random of %s orders" % size, hi),
                         ("detail GET, random of %s orders" % size, hi),
                         ("metrics, %s orders" % size, hi)], "get")


def lmdb_bytes(datadir, orders, what):
    size = os.stat(os.path.join(datadir, "data.mdb")).st_size
    return ("LMDB: %.0f bytes per order (%d %s orders, data.mdb %d KiB; target <= 300)"
            % (size / orders if orders else 0, orders, what, size // 1024))


# ------------------------------------------------------------------ Redis
# The peer a user would pick instead: Redis with its append-only file
# synced before it answers (appendonly yes, appendfsync always).  Redis
# writes the commands of an event-loop turn to the AOF, fdatasyncs it once,
# and only then answers the clients served in that turn: as order-api
# answers a create after the journal flush it shares with the other creates
# of its batch.  redis-benchmark counts requests, not seconds: -n is the
# rate of the last run at the same connections times --seconds (the first
# from a short calibration).

def redis_cli(b, *args):
    """One command to our Redis: its answer without CRs, or Broken."""
    try:
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(b.redis.port), *args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        raise Broken("redis-cli %s: no answer within 10 s" % args[0]) from None
    out = (p.stdout + p.stderr).decode(errors="replace").replace("\r", "")
    if p.returncode != 0:
        raise Broken("redis-cli %s failed: %s" % (args[0], out.strip()))
    return out


def redis_config_ok(b):
    """Read the durability settings back (CONFIG GET); Broken unless they
    are the ones asked for."""
    out = redis_cli(b, "CONFIG", "GET", "appendonly", "appendfsync", "save", "dir")
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # name and value lines in turn, in any order
    cfg = {lines[i]: (lines[i + 1] if i + 1 < len(lines) else "")
           for i in range(0, len(lines), 2)}
    real = os.path.realpath(b.redis.dir)
    if (cfg.get("appendonly") != "yes" or cfg.get("appendfsync") != "always"
            or cfg.get("save", "x") != "" or cfg.get("dir") != real):
        raise Broken("Redis's settings did not take (CONFIG GET: appendonly '%s', appendfsync "
                     "'%s', save '%s', dir '%s'; wanted yes, always, '', %s): refusing to "
                     "report it" % tuple([cfg.get(k, "?") for k in
                                          ("appendonly", "appendfsync", "save", "dir")] + [real]))


def start_redis(b, tag):
    """A fresh redis-server on a free loopback port and a new data
    directory under the run's directory (redis-TAG), into b.redis; Broken
    if it does not start, answer PING or read its settings back."""
    rdir = b.path("redis-%s" % tag)
    log = b.path("redis-server-%s.log" % tag)
    conf = b.path("redis-%s.conf" % tag)
    shutil.rmtree(rdir, ignore_errors=True)
    os.makedirs(rdir)
    for _ in range(3):
        port = ports.free_port()
        # No AOF rewrite: it would fork in some rounds and not in others.
        with open(conf, "w") as f:
            f.write("bind 127.0.0.1\nport %d\nprotected-mode no\ndaemonize no\n"
                    "supervised no\nlogfile \"\"\ndir %s\nsave \"\"\nappendonly yes\n"
                    "appendfsync always\nauto-aof-rewrite-percentage 0\n" % (port, rdir))
        b.start("redis", Server("redis-server", ["redis-server", conf], log, port))
        b.redis.dir = rdir
        reply = ""
        for _ in range(100):
            if not b.redis.alive():
                break
            try:
                reply = redis_cli(b, "PING").strip()
            except Broken:
                reply = ""
            if reply == "PONG":
                break
            time.sleep(0.1)
        if b.redis.alive():
            try:
                if reply != "PONG":
                    raise Broken("redis-server did not answer PING within 10 s")
                redis_config_ok(b)
                return
            except Broken:
                b.stop_redis()
                raise
        b.redis.daemon.proc.wait()
        b.redis = None
        if "in use" not in checks.tail(log, 1000).lower():
            break  # anything but a lost port race
    raise Broken("redis-server did not start: %s" % report.one_line(checks.tail(log, 3)))


def redis_state(b, when=""):
    """The list's length, the AOF's size and state, and the error replies
    so far (LLEN, INFO)."""
    try:
        llen = redis_cli(b, "LLEN", "mylist").strip()
        info = dict(line.split(":", 1) for line in redis_cli(b, "INFO").split("\n")
                    if ":" in line)
        st = dict(llen=int(llen), aof=int(info["aof_current_size"]),
                  errors=int(info["total_error_replies"]), aof_on=info["aof_enabled"],
                  aof_status=info.get("aof_last_write_status", ""))
    except (Broken, KeyError, ValueError):
        raise Broken("cannot read Redis's LLEN and INFO" + when) from None
    return st


def redis_bench(b, conns, n):
    """n LPUSH of 80 bytes, no pipelining: (rps, p50_us, p99_us, seconds)."""
    t = min(b.o.wrk_threads, conns)
    limit = b.o.seconds * 5 + 30
    b.rb_runs += 1
    # (a limit: redis-benchmark waits forever for a server that went away)
    rc, out = b.run_client(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(b.redis.port), "-c", str(conns),
         "-n", str(n), "-P", "1", "-t", "lpush", "-d", "80", "--threads", str(t), "--csv"],
        b.path("redis-benchmark-%d.txt" % b.rb_runs), timeout=limit)
    if rc is None:
        raise Broken("redis-benchmark did not finish %d requests within %d s" % (n, limit))
    errors = [line for line in out.splitlines() if re.search("error|could not", line, re.I)]
    if errors:
        raise Broken("redis-benchmark: %s" % " ".join(errors[:2]))
    if rc != 0:
        raise Broken("redis-benchmark exited with %d: %s" % (rc, report.one_line(out)))
    r = report.parse_redis_benchmark(out)
    if isinstance(r, str):
        raise Broken(r)
    rps, p50, p99 = r
    return rps, p50, p99, n / rps


def redis_calibrate(b, conns):
    """A first rate at conns: a warm-up run (a new AOF starts slower),
    then runs of about 0.5 s until one lasts at least 0.3 s."""
    n = 2000
    for i in range(1, 5):
        rps, _, _, dur = redis_bench(b, conns, n)
        if i >= 2 and round(dur, 2) >= 0.3:
            break
        n = int(rps * 0.5 + 1)
    b.redis_rate[conns] = rps


def redis_case(b, rnd, conns, redis_start_why, seconds=None):
    """The Redis case of round rnd, on the Redis started for it, for
    about seconds (default --seconds) (or SKIPPED / BROKEN rows when
    there is none)."""
    if b.redis_why:
        if b.o.smoke:
            b.round_broken(rnd, REDIS_CASE, conns, b.redis_why)
        else:
            b.round_row(rnd, REDIS_CASE, conns, "SKIPPED: " + b.redis_why)
        return
    if b.redis is None:
        b.round_broken(rnd, REDIS_CASE, conns, redis_start_why or "redis-server is not running")
        return
    b.say("%s, %d connections (round %d of %d)" % (REDIS_CASE, conns, rnd, b.o.rounds))
    try:
        if conns not in b.redis_rate:
            try:
                redis_calibrate(b, conns)
            except Broken as e:
                raise Broken("calibrating: %s" % e) from None
        n = max(1000, int(b.redis_rate[conns] * (seconds or b.o.seconds)))
        st0 = redis_state(b)
        try:
            rps, p50, p99, dur = redis_bench(b, conns, n)
        except Broken as e:
            if not b.redis.alive():
                raise Broken("redis-server died (%s); %s" % (b.redis.tail(2), e)) from None
            raise
        if not b.redis.alive():
            raise Broken("redis-server died (its log: %s)" % b.redis.tail(2))
        st1 = redis_state(b, " after the run")
        redis_config_ok(b)
        created = st1["llen"] - st0["llen"]
        grown = st1["aof"] - st0["aof"]
        if st1["errors"] > st0["errors"]:
            raise Broken("Redis answered %d errors (INFO total_error_replies)"
                         % (st1["errors"] - st0["errors"]))
        if st1["aof_on"] != "1" or st1["aof_status"] != "ok":
            raise Broken("Redis's AOF is off or failed (INFO aof_enabled %s, "
                         "aof_last_write_status %s)" % (st1["aof_on"], st1["aof_status"]))
        if created < n:
            raise Broken("redis-benchmark sent %d LPUSH but the list grew by %d" % (n, created))
        if grown < n * 80:
            raise Broken("the AOF grew by %d bytes for %d LPUSH of 80 bytes" % (grown, n))
    except Broken as e:
        b.round_broken(rnd, REDIS_CASE, conns, str(e))
        return
    b.redis_rate[conns] = rps
    b.round_row(rnd, REDIS_CASE, conns, "OK", repr(rps), p50, p99, "post", "",
                "%d LPUSH in %.2f s, %d AOF bytes each" % (n, dur, grown // n))


# ------------------------------------------------------------------ the phases

def install_tools(b):
    """wrk, and the Redis reference's redis-server, redis-benchmark and
    redis-cli, installed with apt-get when missing and root; without
    Redis the full run skips only its cases (and says so), the smoke run
    (which CI runs as root) counts them as broken."""
    root = os.geteuid() == 0

    def apt_install(*pkgs):
        if not root or not shutil.which("apt-get"):
            return
        b.say("installing %s" % " ".join(pkgs))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", *pkgs]
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if subprocess.run(cmd, **quiet).returncode != 0:
            if subprocess.run(["apt-get", "update", "-q"], **quiet).returncode == 0:
                subprocess.run(cmd, **quiet)

    if not shutil.which("wrk"):
        apt_install("wrk")
        if not shutil.which("wrk"):
            raise Fatal("wrk is not installed (apt-get install wrk)")

    def have_redis():
        return all(shutil.which(p) for p in ("redis-server", "redis-benchmark", "redis-cli"))
    if not have_redis():
        apt_install("redis-server", "redis-tools")
        if not have_redis():
            b.redis_why = ("redis-server and redis-benchmark are not installed and could not be "
                           "installed here (%s)" % (
                               "apt-get install redis-server redis-tools failed" if root else
                               "not root: apt-get install redis-server redis-tools"))
    if not shutil.which("pkg-config"):
        raise Fatal("pkg-config is needed")


def make_run_dir(b):
    try:
        os.makedirs(b.o.tmp, exist_ok=True)
    except OSError:
        raise Fatal("cannot create %s" % b.o.tmp) from None
    try:
        b.run = tempfile.mkdtemp(prefix="op-bench.", dir=b.o.tmp)
    except OSError:
        raise Fatal("mktemp in %s failed" % b.o.tmp) from None
    for name in ("results.tsv", "rounds.tsv", "extras.txt", "settings.txt"):
        open(b.path(name), "w").close()
    b.fstype = subprocess.run(["stat", "-f", "-c", "%T", b.run], capture_output=True,
                              text=True).stdout.strip() or "?"


def build(b):
    """The daemons (meson, unless --no-build), the ceiling server and the
    disk references (cc into the run's directory); storecommit is built
    by meson."""
    o = b.o

    def must(argv, log, why, mode="w", lines=1000):
        """Run argv, its output to log; Fatal(why) after the log's last
        lines if it fails."""
        with open(log, mode) as f:
            ok = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT).returncode == 0
        if not ok:
            sys.stderr.write(checks.tail(log, lines) + "\n")
            raise Fatal(why)

    if not o.no_build:
        b.say("building the daemons in %s" % o.build_dir)
        log = b.path("build.log")
        if not os.path.isfile(os.path.join(o.build_dir, "build.ninja")):
            must(["meson", "setup", o.build_dir, ROOT], log,
                 "meson setup %s failed" % o.build_dir, lines=30)
        must(["meson", "compile", "-C", o.build_dir], log,
             "meson compile -C %s failed" % o.build_dir, mode="a", lines=30)
    if not (os.access(o.api_bin, os.X_OK) and os.access(o.worker_bin, os.X_OK)):
        raise Fatal("no daemons in %s (build them or drop --no-build)" % o.build_dir)
    b.say("building the ceiling server")
    cc = ["cc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"]
    cjson = subprocess.run(["pkg-config", "--cflags", "--libs", "libcjson"],
                           capture_output=True, text=True).stdout.split()
    must(cc + ["-o", b.path("ceiling"), os.path.join(HERE, "ceiling.c"), *cjson,
               "-lcivetweb", "-lpthread"], b.path("ceiling-build.log"),
         "cannot build bench/ceiling.c (needs libcivetweb-dev libcjson-dev)")
    must(cc + ["-o", b.path("synccommit"), os.path.join(HERE, "synccommit.c"), "-llmdb"],
         b.path("synccommit-build.log"), "cannot build bench/synccommit.c (needs liblmdb-dev)")
    must(cc + ["-o", b.path("pagecost"), os.path.join(HERE, "pagecost.c")],
         b.path("pagecost-build.log"), "cannot build bench/pagecost.c")
    if not os.access(o.storecommit_bin, os.X_OK):
        raise Fatal("no %s (build it or drop --no-build)" % o.storecommit_bin)


def write_settings(b):
    o = b.o

    def first_line(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, errors="replace")
        except OSError:
            return "?"
        return ((p.stdout + p.stderr).splitlines() or ["?"])[0]

    def words(s, n):
        return " ".join(s.split(" ")[:n])

    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    civetweb = "?"
    with contextlib.suppress(OSError), open("/usr/include/civetweb.h") as f:
        m = re.search(r'#define CIVETWEB_VERSION "([^"]*)"', f.read())
        civetweb = m.group(1) if m else "?"
    git = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"],
                           capture_output=True).returncode != 0
    lmdb = first_line(["pkg-config", "--modversion", "lmdb"])
    if not re.match(r"[0-9]", lmdb):
        lmdb = "?"
    b.setting("settings:")
    b.setting("  mode: %s, %d s per timed case, wrk -t %d --timeout %ds"
              % ("smoke" if o.smoke else "full", o.seconds, o.wrk_threads, WRK_TIMEOUT))
    b.setting("  cores: %d (%s)" % (o.nproc, model))
    b.setting("  load average at start: %s" % " ".join(load_average()))
    b.setting("  threads: order-api --threads %d, ceiling -t %d; order-worker --workers %d"
              % (o.threads, o.threads, o.workers))
    b.setting("  data: %s (%s)" % (b.run, b.fstype))
    b.setting("  versions: %s; %s; civetweb %s; cJSON %s; LMDB %s; %s; kernel %s" % (
        first_line([o.api_bin, "-V"]), first_line([o.worker_bin, "-V"]), civetweb,
        first_line(["pkg-config", "--modversion", "libcjson"]), lmdb,
        words(first_line(["wrk", "-v"]), 2), os.uname().release))
    b.source = git + (" (with local changes)" if dirty else "")
    b.setting("  source: %s" % b.source)
    if not b.redis_why:
        b.setting(
            '  redis: %s; data in %s/redis-[conns-]r<round> (%s, the file system of the '
            'daemons\' data directories), appendonly yes, appendfsync always, save "", no AOF '
            'rewrite; %s -P 1 -t lpush -d 80 --threads %d (at most one per connection), '
            '%d round(s)' % (
                words(first_line(["redis-server", "--version"]), 3), b.run, b.fstype,
                words(first_line(["redis-benchmark", "--version"]), 2), o.wrk_threads,
                o.rounds))
    else:
        b.setting("  redis: not measured: %s" % b.redis_why)
    if b.fstype in ("tmpfs", "ramfs"):
        b.warn("the data directory is on %s: fsync costs nothing, so create and end-to-end "
               "numbers flatter the daemons" % b.fstype)
    if b.redis_why:
        if o.smoke:
            b.warn("the Redis reference cannot run: %s; its cases are BROKEN" % b.redis_why)
        else:
            b.warn("the Redis reference is SKIPPED: %s; every other case runs" % b.redis_why)


def load_average():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def ceiling_cases(b, label):
    """The ceiling's GET /hello and POST /echo at each connection count."""
    for name, path, script, ref in (("ceiling GET /hello", "/hello", "get.lua", "ceiling:get"),
                                    ("ceiling POST /echo", "/echo", "post.lua", "ceiling:post")):
        for conns in b.o.conns_each:
            case = "%s %s" % (name, label)
            b.say("%s, %d connections" % (case, conns))
            try:
                w = wrk_timed(b, conns, b.ceiling.url + path, os.path.join(HERE, script),
                              b.ceiling.threads)
                if not b.ceiling.alive():
                    raise Broken("the ceiling server died")
            except Broken as e:
                b.broken_row(case, conns, str(e))
                continue
            b.row(case, conns, "OK", "%.1f" % w.rps, w.p50, w.p99, ref)


def ceiling_start(b):
    """The ceiling server and its cases at the start of the run."""
    b.say("run directory %s" % b.run)
    if start_ceiling(b):
        serving = [line for line in checks.tail(b.ceiling.log, 1000).splitlines()
                   if line.startswith("ceiling: serving")]
        b.setting("  ceiling: %s" % (serving[-1] if serving else "?"))
        ceiling_cases(b, "(start)")
    else:
        lo, hi = b.o.conns_low, b.o.conns_high
        b.phase_broken("the ceiling server did not start: %s"
                       % report.one_line(checks.tail(b.path("ceiling.log"), 2), 2),
                       [("ceiling GET /hello (start)", lo), ("ceiling GET /hello (start)", hi),
                        ("ceiling POST /echo (start)", lo), ("ceiling POST /echo (start)", hi)])


def disk(b):
    """The second reference: durable LMDB commits a second on the data
    directory's disk (bench/synccommit.c): a client waits for a journal
    flush per order, so with C connections create cannot pass C times
    the rate of flushes.  Then what the disk charges by the pages a flush
    carries (bench/pagecost.c), and what the real store's commit of K
    orders costs (bench/storecommit): a commit pays about one device
    write per scattered page it dirties."""
    smoke = b.o.smoke
    b.say("synced LMDB commits on %s (%d s)" % (b.fstype, 1 if smoke else 3))
    out = disk_reference(b, b.path("synccommit"), ["1" if smoke else "3"],
                         "synced LMDB commits (bench/synccommit.c)")
    if out is not None:
        b.extra("disk: %s (bench/synccommit.c: one order-sized put per synced commit, nothing "
                "else)" % out.removeprefix("synccommit: "))
    b.say("flush cost by pages, and the store's commits (%d s)" % (2 if smoke else 10))
    out = disk_reference(b, b.path("pagecost"), ["1" if smoke else "4"],
                         "flush cost by pages (bench/pagecost.c)")
    if out is not None:
        b.extra("disk: %s (bench/pagecost.c, 4 KiB pages at random offsets of a 64 MiB file, "
                "or in one run)" % out.removeprefix("pagecost: "))
    out = disk_reference(b, b.o.storecommit_bin, ["1000" if smoke else "100000",
                                                  "0.3" if smoke else "2", "1", "8", "32"],
                         "the store's synced commits (bench/storecommit)")
    for line in out.split("\n") if out is not None else ():
        m = re.fullmatch(r"storecommit: (.*):", line)
        if m:
            line = "store (bench/storecommit.c): %s:" % m.group(1)
        elif line.startswith("  "):
            line = "store:   " + line[2:]
        b.extra(line)


def disk_reference(b, exe, args, case):
    """exe DIR ARGS... on a data directory of its own under the run's
    directory: its output, or None after a BROKEN row for case."""
    data = b.path(os.path.basename(exe) + "-data")
    os.makedirs(data)
    try:
        p = subprocess.run([exe, data, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, errors="replace")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    out = (p.stdout + p.stderr).rstrip("\n")
    if p.returncode != 0:
        b.broken_row(case, 1, out)
        return None
    return out


def gets_few(b):
    """Status, detail and metrics GETs with about 1,000 orders stored."""
    queue = b.new_queue("few")
    try:
        start_api(b, "few", b.path("data-few"), queue)
        try:
            f = fill(b, b.o.orders_few)
        except Broken as e:
            raise Broken("filling %d orders: %s" % (b.o.orders_few, e)) from None
        get_cases(b, "~1k", f.total, "%d orders stored" % f.total)
    except Broken as e:
        get_broken(b, str(e), "~1k")
    b.end_phase()


def create_target(b, conns):
    """The ceiling's and Redis's targets of create at conns."""
    if b.o.conns_low != b.o.conns_high and conns == b.o.conns_low:
        return ">=0.5;redis>=1.0"
    return ">=0.9;redis>=1.0"


def create_rounds(b):
    """--rounds rounds of the Redis case and the create case at each
    connection count (16, then 64), interleaved (interleaved_rounds());
    the table gets the medians."""
    o = b.o
    peaks = []

    def create(rnd, conns):
        if conns == o.conns_high:
            peaks.append(b.sample("rss-api-create-r%d" % rnd, b.api.pid))
        api_case(b, "create", conns, "post", create_target(b, conns),
                 os.path.join(HERE, "post.lua"), "/api/orders/",
                 note="order-api alone, no worker", rnd=rnd, pair=REDIS_CASE)
        b.stop_samplers()
    interleaved_rounds(b, "", o.conns_each, create)
    for r in report.rounds(b.rounds):
        b.add(r)
    best = max((s.peak for s in peaks if s.peak), default=None)  # the peak over the rounds
    b.extra("order-api RSS, create at %d connections: %s (peak of %d round(s); target < 64 MiB)"
            % (o.conns_high, report.rss_mib(best), o.rounds))


def interleaved_rounds(b, tag, conns_each, create, seconds=None, threads=None):
    """--rounds rounds of the Redis case (for seconds, default --seconds)
    and create(rnd, conns) at each connection count of conns_each in turn,
    Redis first in odd rounds and second in even ones, so that neither
    always runs on the machine the other left; a fresh Redis with a new
    data directory each round, and likewise a fresh order-api (with
    threads HTTP threads, default --threads) on a new data directory and
    queue, so that no round runs on a store the others grew.  tag names
    the rounds' directories, logs and queues."""
    for rnd in range(1, b.o.rounds + 1):
        name = "%sr%d" % (tag, rnd)
        redis_start_why = ""
        if not b.redis_why:
            try:
                start_redis(b, name)
            except Broken as e:
                redis_start_why = str(e)
        api_why = ""
        data = b.path("data-create-%s" % name)
        try:
            start_api(b, "create-%s" % name, data, b.new_queue("create-%s" % name),
                      threads=threads)
        except Broken as e:
            api_why = str(e)
        order = ("redis", "create") if rnd % 2 else ("create", "redis")
        for conns in conns_each:
            for kind in order:
                if kind == "redis":
                    redis_case(b, rnd, conns, redis_start_why, seconds)
                elif api_why:
                    b.round_broken(rnd, "create", conns, api_why, "post")
                else:
                    create(rnd, conns)
        b.stop_redis()
        shutil.rmtree(b.path("redis-%s" % name), ignore_errors=True)
        b.end_phase()
        shutil.rmtree(data, ignore_errors=True)


def create_connections(b):
    """create and the Redis case by connections (16, 32, 64 and 128; 8
    and 16 in the smoke run), each point for half of --seconds, in
    --rounds interleaved rounds as create_rounds(), on an order-api with a
    thread for each connection of the last point: the connections chart
    draws the medians, the report gives them in a table of their own
    (b.curve, not the table's rows)."""
    o = b.o
    b.say("create and %s by connections: %s, %d s each, order-api --threads %d"
          % (REDIS_CASE, ", ".join(map(str, o.curve_conns)), o.curve_seconds, o.curve_threads))
    peaks = []

    def create(rnd, conns):
        if conns == o.curve_conns[-1]:
            peaks.append(b.sample("rss-api-conns-r%d" % rnd, b.api.pid))
        api_case(b, "create", conns, "post", "", os.path.join(HERE, "post.lua"),
                 "/api/orders/", note="order-api alone, no worker, --threads %d"
                 % o.curve_threads, rnd=rnd, pair=REDIS_CASE, seconds=o.curve_seconds)
        b.stop_samplers()
    with b.rounds_to(b.curve, "curve.tsv"):
        interleaved_rounds(b, "conns-", o.curve_conns, create, o.curve_seconds, o.curve_threads)
    best = max((s.peak for s in peaks if s.peak), default=None)
    b.extra("order-api RSS, create at %d connections (--threads %d): %s (peak of %d round(s))"
            % (o.curve_conns[-1], o.curve_threads, report.rss_mib(best), o.rounds))


def many_orders(b):
    """Filling the large store (order-api alone, Pending orders), then the
    GETs and the metrics on it."""
    o = b.o
    data = b.path("data-many")
    try:
        start_api(b, "many", data, b.new_queue("many"), ["--map-size", "16G"])
        serving = re.findall(r"serving .*", checks.tail(b.api.log, 1000))
        b.setting("  order-api: %s" % (serving[-1] if serving else "?"))
        b.say("filling up to %d orders (cap %d s)" % (o.orders_many, o.fill_cap))
        try:
            f = fill(b, o.orders_many)
        except Broken as e:
            raise Broken("filling %d orders: %s" % (o.orders_many, e)) from None
        note = "%d orders stored" % f.total
        if not f.reached:
            note += " (cut: the fill cap of %d s was reached)" % o.fill_cap
            b.warn("the many-orders set was cut to %d orders (the fill cap of %d s)"
                   % (f.total, o.fill_cap))
        if f.wrk is not None:
            b.extra("fill: %d orders stored, the last %d at %.1f/s in %.3f s with %d connections "
                    "(order-api alone)" % (f.total, f.wrk.requests, f.wrk.rps, f.secs,
                                           o.fill_conns))
        get_cases(b, report.human(f.total), f.total, note)
        c = api_counts(b.api)
        if c is not None:
            b.extra(lmdb_bytes(data, c[0], "Pending"))
    except Broken as e:
        get_broken(b, str(e), report.human(o.orders_many))
    b.end_phase()
    shutil.rmtree(data, ignore_errors=True)  # it can be gigabytes


def end_to_end_zero(b):
    """order-api and order-worker with delays 0, wrk creating orders:
    completions per second while wrk ran, and the backlog left."""
    hi = b.o.conns_high
    label = "end to end, delays 0 (completions/s)"
    data = b.path("data-e2e")
    queue = b.new_queue("e2e")
    try:
        start_api(b, "e2e", data, queue)
        start_worker(b, "e2e", data, queue, 0, 0)
    except Broken as e:
        b.phase_broken(str(e), [(label, hi)], "post")
        b.end_phase()
        return
    b.say("%s, %d connections" % (label, hi))
    rss_api = b.sample("rss-api-e2e", b.api.pid)
    rss_worker = b.sample("rss-worker-e2e", b.worker.pid)
    try:
        before = api_codes(b.api)
        c0 = api_counts(b.api)
        w = wrk_timed(b, hi, b.api.url + "/api/orders/", os.path.join(HERE, "post.lua"),
                      b.api.threads)
        t1 = time.time()
        c1 = api_counts(b.api)
        check_api_after(b, before)
        if c0 is None or c1 is None:
            raise Broken("cannot read the order counts")
        backlog = c1[1] + c1[2]
        done_at = wait_done(b.api, 60 + backlog // 200)
        b.stop_samplers()
        if not b.worker.alive():
            raise Broken("order-worker died")
        # completions while wrk ran, over wrk's own duration (orders
        # completed in the moment between wrk's end and the count are in,
        # the backlog left is in the note)
        rate = (c1[3] - c0[3]) / w.duration
        # flat: what was left at the end is at most a second of
        # completions (a backlog growing through the run would be the
        # difference of the rates times the seconds)
        flat = "ok" if backlog <= rate else "MISS"
        b.row(label, hi, "OK", "%.1f" % rate, w.p50, w.p99, "post",
              ">=0.4;backlog flat=%s" % flat,
              "created %.1f/s; backlog at the end %d, drained in %.2f s; p50/p99 are the creates'"
              % (w.rps, backlog, max(0.0, done_at - t1)))
        b.extra(lmdb_bytes(data, c1[0], "Completed"))
    except Broken as e:
        b.broken_row(label, hi, str(e), "post")
    b.stop_samplers()
    b.extra("order-api RSS, end to end at %d connections: %s" % (hi, report.rss_mib(rss_api.peak)))
    b.extra("order-worker RSS (master + workers), end to end: %s"
            % report.rss_mib(rss_worker.peak))
    b.end_phase()
    shutil.rmtree(data, ignore_errors=True)


def end_to_end_default(b):
    """The default delays: --default-orders orders created as fast as
    possible, then the time until every one is Completed, from the first
    POST."""
    o = b.o
    delays = "%g s + %g s" % (o.pickup_ms / 1000, o.processing_ms / 1000)
    delay_s = "%g" % ((o.pickup_ms + o.processing_ms) / 1000)
    label = "end to end, %d orders, %s" % (o.default_orders, delays)
    data = b.path("data-default")
    queue = b.new_queue("default")
    try:
        start_api(b, "default", data, queue)
        start_worker(b, "default", data, queue, o.pickup_ms, o.processing_ms)
    except Broken as e:
        b.phase_broken(str(e), [(label, o.fill_conns)])
        b.end_phase()
        return
    b.say(label)
    rss_worker = b.sample("rss-worker-default", b.worker.pid)
    try:
        before = api_codes(b.api)
        f = fill(b, o.default_orders)
        check_api_after(b, before)
        if not f.reached:
            raise Broken("only %d orders admitted within %d s" % (f.total, o.fill_cap))
        done_at = wait_done(b.api, 120 + o.default_orders // 100)
        total_s = done_at - f.start
        limit = float("%.1f" % (f.secs + float(delay_s) + 2))
        verdict = "ok" if round(total_s, 3) <= limit else "MISS"
        p50, p99 = (f.wrk.p50, f.wrk.p99) if f.wrk else ("", "")
        b.row(label, o.fill_conns, "OK", "%.1f" % (f.total / f.secs if f.secs else 0), p50, p99,
              "-", "<= admit+%s+2 s %s" % (delay_s, verdict),
              "%d orders admitted in %.3f s (req/s = admission), all Completed %.3f s after the "
              "first POST" % (f.total, f.secs, total_s))
    except Broken as e:
        b.broken_row(label, o.fill_conns, str(e))
    b.stop_samplers()
    b.extra("order-worker RSS (master + workers), %d orders with %s: %s"
            % (o.default_orders, delays, report.rss_mib(rss_worker.peak)))
    if not b.worker.alive():
        b.broken_row(label + " (worker)", "-", "order-worker died")
    b.end_phase()


def ceiling_end(b):
    """The ceiling again (not in the smoke run): the table warns when it
    moved by more than 30 % since the start."""
    if b.ceiling is not None and b.ceiling.alive():
        if not b.o.smoke:
            ceiling_cases(b, "(end)")
    b.stop_ceiling()


def print_report(b):
    """The table, the table by connections, the extras and the settings,
    printed and written to --out with the charts (write_results()); 1 if
    any case broke or the results could not be written."""
    o = b.o
    b.setting("  load average at the end: %s; %d s in all"
              % (" ".join(load_average()), time.time() - b.t0))
    if b.redis_why:
        redis_how = "NOT MEASURED in this run: %s." % b.redis_why
    else:
        redis_how = (
            "redis-server with appendonly yes and appendfsync always, its data on the daemons' "
            "file system, driven by redis-benchmark -P 1 -t lpush -d 80: every LPUSH (an 80-byte "
            "value) is answered only after its append to the AOF is fsynced, one fsync per "
            "event-loop turn for every client served in that turn (as every 201 of order-api "
            "waits for the one journal write and flush it shares with the creates waiting "
            "with it).")
    if o.conns_low == o.conns_high:
        rounds_how = ("%d interleaved round(s) (Redis, then create, at %d connections, the order "
                      "swapped in the even rounds)" % (o.rounds, o.conns_low))
    else:
        rounds_how = ("%d interleaved round(s) (Redis, create at %d connections, Redis, create at "
                      "%d, the order in each pair swapped in the even rounds)"
                      % (o.rounds, o.conns_low, o.conns_high))
    out = [report.wrap(
        "\norder-processing benchmark, how to read it:\n"
        "- ratio: req/s over the ceiling server's (bench/ceiling.c, a minimal civetweb server) "
        "at the same connections, measured in this run (the mean of its start and end runs); "
        "GETs over the ceiling GET, creates, completions and Redis over the ceiling POST.\n"
        "- %s: %s\n"
        "- vs Redis: order-api's create over Redis's LPUSH at the same connections: same "
        "machine, same run, %s, the median of the per-round ratios and (min..max). >= 1.0 "
        "means order-api creates durable orders at least as fast as Redis appends durable list "
        "entries. The create and Redis rows give the medians of the rounds.\n"
        "- target: ok or MISS against bench/README.md's targets; a miss does not fail the run.\n"
        % (REDIS_CASE, redis_how, rounds_how))]
    text, broken = report.table(b.results)
    out.append(text)
    header, cells, curve_broken = report.connections_cells(b.curve, "create", REDIS_CASE)
    out.append("")
    out.append(report.wrap("create and %s by connections (%s): order-api with --threads %d, "
                           "%d s a point, the medians of %d interleaved round(s):"
                           % (REDIS_CASE, ", ".join(map(str, o.curve_conns)), o.curve_threads,
                              o.curve_seconds, o.rounds)))
    out.append(report.text_table(header, cells))
    out += ["", "\n".join(b.extras), "", "\n".join(b.settings)]
    rows = [r for r in b.results if r["state"].startswith("BROKEN")]
    rows += [dict(r, case="%s (by connections)" % r["case"]) for r in curve_broken]
    out.append("")
    if not rows:
        out.append("every case ran clean")
    else:
        out.append("BROKEN: %d case(s) did not run clean; their numbers are withheld:" % len(rows))
        for r in rows:
            out.append("  %s (%s connections): %s"
                       % (r["case"], r["conns"], r["state"][len("BROKEN: "):]))
        for log in (sorted(glob.glob(b.path("order-*.log"))) + [b.path("ceiling.log")]
                    + sorted(glob.glob(b.path("redis-server-*.log")))):
            if os.path.isfile(log) and os.path.getsize(log):
                out.append("---- the last lines of %s" % os.path.basename(log))
                out.append(checks.tail(log, 8))
        if not o.keep:
            out.append("(bench/run.sh --keep keeps the logs, wrk outputs and small data sets)")
    report_text = "\n".join(out)
    print(report_text)
    wrote = write_results(b, report_text)
    return 1 if rows or not wrote else 0


def write_results(b, report_text):
    """The report, its rows, the charts and index.html (results_files())
    into --out; False (and why, on stderr) if they could not be
    written."""
    o = b.o
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(b.t0))
    files = results_files(o, b.results, b.curve, "%s run of %s, source %s" % (
        "smoke" if o.smoke else "full", when, b.source), report_text)
    try:
        os.makedirs(o.out, exist_ok=True)
        for name, content in files.items():
            tmp = os.path.join(o.out, "." + name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(content)
            os.replace(tmp, os.path.join(o.out, name))
    except OSError as e:
        sys.stderr.write("BROKEN: cannot write the results to %s: %s\n" % (o.out, e))
        return False
    print("\nthe charts and this report: %s (open it in a browser)"
          % os.path.join(o.out, "index.html"))
    return True


def results_files(o, results, curve_rows, run, report_text):
    """{file name: content} of what a run writes to --out: report.txt
    (report_text), results.tsv (the table's rows, results), curve.tsv
    (the rounds of create and Redis by connections, curve_rows), the
    charts (bench/chart.py) ratios.svg and create-connections.svg, and
    index.html, which shows them with the tables; run says which run
    (the charts' subtitles, the page's title)."""
    ceil = []
    for conns in o.conns_each:
        for ref in ("get", "post"):
            c = report.ceiling_rps(results, ref, str(conns))
            ceil.append("%s %s" % (ref.upper(), chart.thousands(c) + "/s" if c else "none"))
    ceil_note = "; ".join("%d connections: %s" % (c, ", ".join(ceil[2 * i:2 * i + 2]))
                          for i, c in enumerate(o.conns_each))
    bars = report.ratio_bars(results, REDIS_CASE, PAIRED)
    ratios = chart.ratios_svg(bars, REDIS_CASE, "%s, %d\u00a0s a case; the ceiling's req/s at %s"
                              % (run, o.seconds, ceil_note))
    curve = report.by_connections(curve_rows, [case for case, _ in CURVE_SERIES])
    vs = {}
    for r in report.rounds(curve_rows):
        if r["case"] == "create" and r["vs"]:
            vs[int(r["conns"])] = float(r["vs"].split()[0])
    conns = chart.connections_svg(
        curve, vs, [name for _, name in CURVE_SERIES], (chart.OURS, chart.PEER),
        "create vs %s, by connections" % REDIS_CASE,
        "%s; order-api --threads %d (a 201 after its journal flush); %d\u00a0s a point, the median "
        "of %d interleaved round(s)" % (run, o.curve_threads, o.curve_seconds, o.rounds))
    header, cells, _ = report.table_cells(results)
    curve_table = report.connections_cells(curve_rows, "create", REDIS_CASE)[:2]
    page = chart.index_html(
        "order-processing benchmark: %s" % run,
        "Ratios to the ceiling (bench/ceiling.c, a minimal civetweb server) and to Redis with "
        "appendfsync always, measured in the same run; bench/README.md explains each case and "
        "its target. The charts alone: ratios.svg, create-connections.svg; the report as "
        "printed: report.txt.",
        [("ratios.svg", "each case's ratio to the ceiling, with its target and Redis's"),
         ("create-connections.svg", "create and Redis req/s at %s connections"
          % ", ".join(map(str, o.curve_conns)))],
        [("The table", header, cells),
         ("create and %s by connections" % REDIS_CASE, *curve_table)],
        report_text.strip("\n"))
    return {"report.txt": report_text.strip("\n") + "\n",
            "results.tsv": "".join(report.tsv_line(r, report.RESULT_FIELDS) + "\n"
                                   for r in results),
            "curve.tsv": "".join(report.tsv_line(r, report.ROUND_FIELDS) + "\n"
                                 for r in curve_rows),
            "ratios.svg": ratios, "create-connections.svg": conns, "index.html": page}


# ------------------------------------------------------------------ the plan

def main(argv=None):
    o = options(argv)
    b = Bench(o)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, b.on_signal)
    try:
        install_tools(b)        # wrk and Redis, with apt-get as root
        make_run_dir(b)
        build(b)                # the daemons, the ceiling, the disk references
        write_settings(b)
        ceiling_start(b)        # the ceiling's GET and POST
        disk(b)                 # synced commits, flushes by pages, the store's commits
        gets_few(b)             # status, detail, metrics GETs with ~1k orders
        create_rounds(b)        # create against Redis, in interleaved rounds
        create_connections(b)   # the same at 16, 32, 64 and 128 connections
        many_orders(b)          # the GETs again with 1M orders stored
        end_to_end_zero(b)      # order-api + order-worker, delays 0
        end_to_end_default(b)   # 10,000 orders with the default delays
        ceiling_end(b)          # the ceiling again: did the machine stay put?
        return print_report(b)
    except Fatal as e:
        sys.stderr.write("BROKEN: %s\n" % e)
        return 1
    except Interrupted:
        sys.stderr.write("run.sh: interrupted\n")
        return 130
    finally:
        sys.stdout.flush()
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
