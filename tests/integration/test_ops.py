#!/usr/bin/env python3
"""Operations features of both daemons:

 * --daemon with --pidfile: the command returns 0 only once the daemon
   serves (order-api) or all its workers started (order-worker); the pidfile
   holds the daemon's pid (a session leader running the binary); a second
   start exits 1 with "already running, pid N" on stderr; a daemonized start
   that fails exits non-zero with the reason on stderr; SIGTERM stops the
   daemon and removes the pidfile.
 * setproctitle: "order-worker: master" and "order-worker: worker N".
 * SIGHUP: the log file is reopened (logrotate's rename), log-level and
   access-log are re-read from the config file (master and children of the
   worker), other changed settings (listen, processing-ms) only warn, a bad
   config file keeps the running settings and logs an error; relative paths
   given at start keep working.
 * A bad config line at start: exit 2, one stderr line naming file:line.
 * GET /metrics: strict Prometheus text format 0.0.4 and exact counters.
 * --access-log is off by default.

Every check runs; the failures are listed together at the end.
"""

import http.client
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs, prom  # noqa: E402
from optest.checks import Soft, TestFailure, fail, run, tail, wait_until  # noqa: E402
from optest.client import raw_request  # noqa: E402
from optest.daemons import ORDER_API, ORDER_WORKER, Daemon, System, unique_queue  # noqa: E402
from optest.orders import check_all_completed  # noqa: E402
from optest.ports import free_port  # noqa: E402

soft = Soft()
expect = soft.check  # a soft check: record the failure and go on


def create_read(s, **kw):
    """Create an order and read it back: the read waits until the order is
    in LMDB, which sends its id to the queue then rather than with the
    next batch."""
    oid = s.create_order(**kw)
    s.status(oid)
    return oid


def section(name, fn, *args):
    """Run one part; an exception there is recorded and the next part runs."""
    t0 = time.monotonic()
    soft.step(name, fn, *args)
    print("%-28s %.1f s" % (name, time.monotonic() - t0))


# ---------------------------------------------------------------- helpers

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def wait_log(path, pattern, timeout=5.0, count=1):
    """Wait until `pattern` (a regex) matches at least `count` lines of the
    file; returns the matching lines, or None (a soft failure) on timeout."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        hits = [ln for ln in read(path).splitlines() if rx.search(ln)]
        if len(hits) >= count:
            return hits
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def expect_log(path, pattern, what, timeout=5.0, count=1):
    hits = wait_log(path, pattern, timeout, count)
    expect(hits is not None,
           "%s: expected %d line(s) matching /%s/ in %s within %.0f s; log "
           "tail:\n%s" % (what, count, pattern, os.path.basename(path), timeout,
                          tail(path, 15)))
    return hits or []


def count_lines(path, pattern):
    rx = re.compile(pattern)
    return sum(1 for ln in read(path).splitlines() if rx.search(ln))


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def cmdline(pid):
    """argv of pid as a list (setproctitle pads with NULs)."""
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        data = f.read().decode("utf-8", "replace")
    return [a for a in data.split("\0") if a]


def run_cmd(argv, cwd=None, timeout=20):
    """Run a (daemonizing) command; returns (rc, stderr, seconds)."""
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stderr.decode("utf-8", "replace"), time.monotonic() - t0


def read_pidfile(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    if not re.match(r"^[0-9]+\s*$", text):
        soft.add("pidfile %s holds %r, not a pid" % (path, text))
        return None
    return int(text)


class Detached:
    """Daemonized processes this test started (by pid, from their pidfiles):
    SIGKILLed at the end if still there, after checking /proc/PID/exe."""

    def __init__(self):
        self.pids = set()

    def add(self, pid):
        if pid:
            self.pids.add(pid)
            for k in procs.descendants(pid):
                self.pids.add(k)

    def kill_all(self):
        for pid in list(self.pids):
            if procs.alive(pid) and procs.is_daemon_process(pid):
                for k in procs.descendants(pid):
                    if procs.is_daemon_process(k):
                        try:
                            os.kill(k, signal.SIGKILL)
                        except OSError:
                            pass
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def stop_detached(pid, pidfile, logfile, name, timeout=15.0):
    """SIGTERM a daemonized pid: it must exit and remove its pidfile."""
    kids = procs.descendants(pid)
    how = procs.stop(pid, signal.SIGTERM, timeout)
    if not expect(how == "exited", "%s: pid %d %s" % (
            name, pid, "not running at the SIGTERM" if how == "gone" else
            "still running %.0f s after SIGTERM (killed)" % timeout)):
        return
    deadline = time.monotonic() + 5
    while any(procs.alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(not any(procs.alive(k) for k in kids),
           "%s: children %r still running after the master exited" % (name, kids))
    expect(not os.path.exists(pidfile),
           "%s: pidfile %s still there after SIGTERM (holds %r)"
           % (name, pidfile, read(pidfile)))
    expect(wait_log(logfile, r"info: stopped$", 1) is not None,
           "%s: no 'stopped' line in %s after SIGTERM" % (name, logfile))


def healthz(port, timeout=3.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def connect_refused(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def check_worker_titles(master, nworkers, where):
    """setproctitle: master 'order-worker: master', children 'worker N'."""
    argv = cmdline(master)
    expect(argv and argv[0].startswith("order-worker") and "master" in argv[0],
           "%s: master pid %d cmdline %r, expected 'order-worker: master'"
           % (where, master, argv))
    expect(argv and argv[0] == "order-worker: master",
           "%s: master cmdline argv[0] %r != 'order-worker: master'" % (where, argv[:1]))
    kids = procs.children(master)
    expect(len(kids) == nworkers, "%s: master has %d children %r, expected %d"
           % (where, len(kids), kids, nworkers))
    titles = []
    for k in kids:
        try:
            a = cmdline(k)
        except OSError:
            continue
        titles.append(a[0] if a else "")
    want = sorted("order-worker: worker %d" % (i + 1) for i in range(nworkers))
    expect(sorted(titles) == want,
           "%s: children's cmdlines %r, expected %r" % (where, sorted(titles), want))


# ---------------------------------------------------------------- Prometheus

def get_prometheus(port):
    headers, text = prom.fetch(port)
    ct = headers.get("content-type", "")
    expect(ct.startswith("text/plain; version=0.0.4"),
           "GET /metrics: Content-Type %r, expected text/plain; version=0.0.4" % ct)
    expect(headers.get("content-length") == str(len(text.encode("utf-8"))),
           "GET /metrics: Content-Length %r, body %d bytes"
           % (headers.get("content-length"), len(text.encode("utf-8"))))
    fams, samples = prom.parse(text)
    return fams, samples, text


P = "order_processing_"


# ---------------------------------------------------------------- parts

def part_bad_config_at_start(tmp):
    """A bad config line: exit 2 and one stderr line naming file:line."""
    conf = os.path.join(tmp, "bad.conf")
    data = os.path.join(tmp, "data-bad")
    cases = [
        ("log-level = loud", "log-level"),
        ("frobnicate = 1", "frobnicate"),
        ("just some words", "just some words"),
    ]
    for prog, extra in ((ORDER_API, ["-l", "127.0.0.1:%d" % free_port()]),
                        (ORDER_WORKER, ["-w", "1"])):
        name = os.path.basename(prog)
        for bad, word in cases:
            write_file(conf, "# test config\nlog-level = info\n%s\n" % bad)
            for mode in ([], ["-d", "-p", os.path.join(tmp, "bad.pid"),
                              "--log-file", os.path.join(tmp, "bad.log")]):
                argv = [prog, "-c", conf, "-D", data, "-q", unique_queue()] + extra + mode
                rc, err, _ = run_cmd(argv)
                lines = err.splitlines()
                what = "%s with config line 3 %r%s" % (name, bad, " and -d" if mode else "")
                expect(rc == 2, "%s: exit %s, expected 2 (stderr %r); command: %s"
                       % (what, rc, err, " ".join(argv)))
                expect(len(lines) == 1, "%s: %d stderr lines, expected 1: %r"
                       % (what, len(lines), err))
                expect(lines and "%s:3" % conf in lines[0] and word in lines[0]
                       and lines[0].startswith(name + ":"),
                       "%s: stderr %r does not name %s:3 and %r" % (what, err, conf, word))
                expect(not os.path.exists(os.path.join(tmp, "bad.pid")),
                       "%s: left a pidfile" % what)


def part_api_daemon(s, detached):
    """order-api -d -p: ready on return, pidfile, second start, port in use,
    SIGTERM removes the pidfile; access log off by default."""
    d = s.tmp
    pidfile = os.path.join(d, "api.pid")
    logfile = os.path.join(d, "api.log")
    argv = [ORDER_API, "-c", "/dev/null", "-D", s.datadir, "-q", s.queue,
            "-l", "127.0.0.1:%d" % s.port, "-d", "-p", pidfile, "--log-file", logfile]
    cmd = " ".join(argv)
    rc, err, secs = run_cmd(argv)
    pid = read_pidfile(pidfile)
    detached.add(pid)
    if not expect(rc == 0, "order-api -d: exit %s (stderr %r); command: %s" % (rc, err, cmd)):
        return
    # serving at once: one attempt, no polling
    try:
        st = healthz(s.port)
    except OSError as e:
        st = repr(e)
    expect(st == 200, "order-api -d returned 0 but GET /healthz right after gave %s; "
           "command: %s" % (st, cmd))
    expect(err == "", "order-api -d: unexpected stderr %r" % err)
    if not expect(pid is not None, "order-api -d: no pid in %s" % pidfile):
        return
    expect(procs.alive(pid) and procs.is_daemon_process(pid),
           "order-api -d: pidfile pid %d is not a running order-api" % pid)
    argv0 = cmdline(pid)[0] if procs.alive(pid) else ""
    expect(os.path.basename(argv0) == "order-api",
           "order-api -d: /proc/%d/cmdline argv[0] %r" % (pid, argv0))
    expect(os.getsid(pid) == pid, "order-api -d: pid %d is not a session leader (sid %d)"
           % (pid, os.getsid(pid)))
    expect(os.getpgid(pid) == pid, "order-api -d: pid %d not a process group leader" % pid)
    expect(os.stat("/proc/%d" % pid) and os.readlink("/proc/%d/cwd" % pid) == "/",
           "order-api -d: working directory %r, expected /"
           % os.readlink("/proc/%d/cwd" % pid))
    expect(wait_log(logfile, r"order-api: info: serving http://127\.0\.0\.1:%d/" % s.port, 2),
           "order-api -d: no 'serving' line in --log-file %s" % logfile)

    # --access-log is off by default
    for path in ("/healthz", "/api/orders/metrics/", "/nope"):
        s.request("GET", path, check=False)
    time.sleep(0.2)
    expect(count_lines(logfile, r"access:") == 0,
           "order-api without --access-log logged access lines:\n%s" % tail(logfile, 5))

    # a second identical start: exit 1, "already running, pid N" on stderr
    before = read(logfile)
    rc2, err2, _ = run_cmd(argv)
    expect(rc2 == 1, "second identical order-api -d: exit %s, expected 1; command: %s"
           % (rc2, cmd))
    expect("already running, pid %d" % pid in err2,
           "second identical order-api -d (command: %s): expected 'already running, "
           "pid %d' on stderr, got stderr %r; the log file got %r"
           % (cmd, pid, err2, read(logfile)[len(before):].strip()))
    expect(read_pidfile(pidfile) == pid, "the failed second start changed the pidfile")
    # the same without --log-file
    argv_nolog = argv[:-2]
    rc3, err3, _ = run_cmd(argv_nolog)
    expect(rc3 == 1 and "already running, pid %d" % pid in err3,
           "second order-api -d without --log-file: exit %s stderr %r, expected 1 and "
           "'already running, pid %d'" % (rc3, err3, pid))

    # a daemonized start that fails (port in use): non-zero and the reason on stderr
    for with_log in (True, False):
        pf2 = os.path.join(d, "api2.pid")
        lf2 = os.path.join(d, "api2.log")
        argv2 = [ORDER_API, "-c", "/dev/null", "-D", os.path.join(d, "data2"),
                 "-q", s.queue, "-l", "127.0.0.1:%d" % s.port, "-d", "-p", pf2]
        if with_log:
            argv2 += ["--log-file", lf2]
        rc4, err4, secs4 = run_cmd(argv2)
        detached.add(read_pidfile(pf2))
        what = "order-api -d on a port in use (%s --log-file)" % ("with" if with_log else "without")
        expect(rc4 != 0, "%s: exit 0; command: %s" % (what, " ".join(argv2)))
        expect(re.search(r"could not listen|in use", err4),
               "%s: exit %s, the reason is not on stderr: got stderr %r (log file: %r); "
               "command: %s" % (what, rc4, err4, read(lf2).strip() if with_log else None,
                                " ".join(argv2)))
        expect(not os.path.exists(pf2), "%s: left its pidfile %s" % (what, pf2))
        expect(secs4 < 10, "%s: took %.1f s" % (what, secs4))
    expect(healthz(s.port) == 200, "the first order-api stopped serving")

    # another order-api on the same data directory (its own port): refused,
    # since both would hand out the same ids from the one journal
    argv5 = [ORDER_API, "-c", "/dev/null", "-D", s.datadir, "-q", s.queue,
             "-l", "127.0.0.1:%d" % free_port()]
    rc5, err5, _ = run_cmd(argv5)
    expect(rc5 == 1 and "another order-api uses this data directory" in err5,
           "a second order-api on the same data directory: exit %s stderr %r, expected 1 "
           "and 'another order-api uses this data directory'" % (rc5, err5))
    expect(healthz(s.port) == 200, "the first order-api stopped serving")

    stop_detached(pid, pidfile, logfile, "order-api -d")


def part_worker_daemon(s, detached):
    """order-worker -d -p: all workers started on return, titles, pidfile,
    second start, failed start, SIGTERM."""
    d = s.tmp
    pidfile = os.path.join(d, "worker.pid")
    logfile = os.path.join(d, "worker.log")
    argv = [ORDER_WORKER, "-c", "/dev/null", "-D", s.datadir, "-q", s.queue,
            "-w", "2", "--pickup-delay-ms", "100", "--processing-ms", "200",
            "--lease-ms", "2000", "-d", "-p", pidfile, "--log-file", logfile]
    cmd = " ".join(argv)
    rc, err, _ = run_cmd(argv)
    pid = read_pidfile(pidfile)
    detached.add(pid)
    if not expect(rc == 0, "order-worker -d: exit %s (stderr %r); command: %s"
                  % (rc, err, cmd)):
        return
    if not expect(pid is not None, "order-worker -d: no pid in %s" % pidfile):
        return
    # on return every worker has started
    kids = procs.children(pid)
    detached.add(pid)
    expect(len(kids) == 2, "order-worker -d returned with %d children %r, expected 2"
           % (len(kids), kids))
    expect(count_lines(logfile, r"\[master\]: info: all 2 workers started") == 1,
           "order-worker -d returned before 'all 2 workers started' was logged:\n%s"
           % tail(logfile, 10))
    expect(procs.is_daemon_process(pid), "order-worker -d: pid %d is not order-worker" % pid)
    expect(os.getsid(pid) == pid, "order-worker -d: pid %d is not a session leader" % pid)
    check_worker_titles(pid, 2, "order-worker -d")

    rc2, err2, _ = run_cmd(argv)
    expect(rc2 == 1, "second identical order-worker -d: exit %s, expected 1" % rc2)
    expect("already running, pid %d" % pid in err2,
           "second identical order-worker -d (command: %s): expected 'already running, "
           "pid %d' on stderr, got %r" % (cmd, pid, err2))
    rc3, err3, _ = run_cmd(argv[:-2])
    expect(rc3 == 1 and "already running, pid %d" % pid in err3,
           "second order-worker -d without --log-file: exit %s stderr %r" % (rc3, err3))
    expect(read_pidfile(pidfile) == pid, "a failed second start changed the pidfile")
    expect(len(procs.children(pid)) == 2, "the second start disturbed the workers")

    # orders still get done by the daemonized worker
    s.start_api()
    s.wait_ready()
    ids = [s.create_order(user_id=7, item_ids=[i + 1]) for i in range(5)]
    check_all_completed(s, ids, timeout=20)
    s.stop_api()

    stop_detached(pid, pidfile, logfile, "order-worker -d")

    # a daemonized start whose workers cannot set up: exit non-zero, reason on stderr
    bad = os.path.join(d, "garbage-data")
    os.makedirs(bad)
    with open(os.path.join(bad, "data.mdb"), "wb") as f:
        f.write(os.urandom(16384))
    for with_log in (True, False):
        pf = os.path.join(d, "bad-worker.pid")
        lf = os.path.join(d, "bad-worker.log")
        argv3 = [ORDER_WORKER, "-c", "/dev/null", "-D", bad, "-q", s.queue, "-w", "2",
                 "-d", "-p", pf] + (["--log-file", lf] if with_log else [])
        rc4, err4, _ = run_cmd(argv3)
        detached.add(read_pidfile(pf))
        what = "order-worker -d on a corrupt data.mdb (%s --log-file)" % (
            "with" if with_log else "without")
        expect(rc4 != 0, "%s: exit 0" % what)
        expect("could not open the LMDB environment" in err4,
               "%s: exit %s, the reason is not on stderr: stderr %r (log file %r); command: %s"
               % (what, rc4, err4, read(lf).strip() if with_log else None, " ".join(argv3)))
        expect(not os.path.exists(pf), "%s: left its pidfile" % what)


def part_relative_paths(s, detached):
    """Daemonized with relative -c, -D, -p and --log-file (it chdirs to /):
    SIGHUP must still read the config file and not warn about them."""
    d = s.tmp
    write_file(os.path.join(d, "rel-api.conf"), "log-level = info\n")
    write_file(os.path.join(d, "rel-worker.conf"),
               "log-level = info\nworkers = 1\nprocessing-ms = 100\nlease-ms = 2000\n")
    for prog, conf, extra in (
            (ORDER_API, "rel-api.conf", ["-l", "127.0.0.1:%d" % s.port]),
            (ORDER_WORKER, "rel-worker.conf", [])):
        name = os.path.basename(prog)
        argv = [prog, "-c", conf, "-D", "data", "-q", s.queue, "-d",
                "-p", name + ".pid", "--log-file", name + ".log"] + extra
        pidfile = os.path.join(d, name + ".pid")
        logfile = os.path.join(d, name + ".log")
        rc, err, _ = run_cmd(argv, cwd=d)
        pid = read_pidfile(pidfile)
        detached.add(pid)
        if not expect(rc == 0 and pid, "%s with relative paths (cd %s; %s): exit %s stderr %r"
                      % (name, d, " ".join(argv), rc, err)):
            continue
        expect(os.path.isdir(os.path.join(d, "data")),
               "%s: relative -D data not created under the start directory" % name)
        os.kill(pid, signal.SIGHUP)
        wait_log(logfile, r"SIGHUP: reopening", 3)
        time.sleep(0.3)
        bad = [ln for ln in read(logfile).splitlines()
               if re.search(r"reload|config file|No such file", ln)]
        expect(not bad, "%s -d started with relative paths (cd %s; %s), then SIGHUP with "
               "the config file unchanged: expected no reload error or warning, got %r"
               % (name, d, " ".join(argv), bad))
        stop_detached(pid, pidfile, logfile, "%s -d (relative paths)" % name)

    # in the foreground (no chdir): the config file is found, but relative
    # paths must not count as changed settings
    argv = [ORDER_WORKER, "-c", "rel-worker.conf", "-D", "data", "-q", s.queue,
            "-p", "fg-worker.pid", "--log-file", "fg-worker.log"]
    logfile = os.path.join(d, "fg-worker.log")
    p = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if expect_log(logfile, r"all 1 workers started", "order-worker (foreground, relative)"):
            p.send_signal(signal.SIGHUP)
            wait_log(logfile, r"SIGHUP: reopening", 3)
            time.sleep(0.3)
            bad = [ln for ln in read(logfile).splitlines()
                   if re.search(r"reload|config file", ln)]
            expect(not bad, "order-worker in the foreground with relative paths (cd %s; %s), "
                   "then SIGHUP with the config file unchanged: expected no reload warning, "
                   "got %r" % (d, " ".join(argv), bad))
        p.send_signal(signal.SIGTERM)
        expect(p.wait(15) == 0, "order-worker (foreground, relative): exit %s" % p.returncode)
        expect(not os.path.exists(os.path.join(d, "fg-worker.pid")),
               "order-worker (foreground): pidfile left after SIGTERM")
    finally:
        if p.poll() is None:
            kids = procs.descendants(p.pid)
            for k in [p.pid] + kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
            p.wait(10)


def part_parser_selftest():
    """The strict parser must reject what Prometheus would."""
    good = ('# HELP a_total A.\n# TYPE a_total counter\na_total{x="{y}",z="q\\"r"} 3\n'
            '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\n'
            'h_sum 0.5\nh_count 2\n# HELP g G.\n# TYPE g gauge\ng NaN\n')
    fams, smp = prom.parse(good)
    assert math.isnan(prom.value(smp, "g")) and prom.value(smp, "a_total", x="{y}", z='q"r') == 3
    bad = [
        good[:-1],                                               # no final newline
        good.replace("# HELP g G.\n", ""),                       # no HELP
        good.replace("# TYPE g gauge\n", ""),                    # no TYPE
        good.replace("g NaN", "g nan"),                           # not a Go float
        good.replace("g NaN", "g 1,5"),
        good.replace('h_bucket{le="1"} 1', 'h_bucket{le="1"} 3'),  # not cumulative
        good.replace("h_count 2", "h_count 5"),                   # +Inf != count
        good.replace('h_bucket{le="+Inf"} 2\n', ""),              # no +Inf
        good.replace("# TYPE g gauge", "# TYPE g summaryish"),
        good.replace("a_total{", "a_total {"),
        good.replace('x="{y}"', "x={y}"),
        good + "a_total 4\n",                                    # regrouped family
        good + "# HELP g again\n",                               # HELP after samples
        good.replace("g NaN", "g NaN\n"),                        # empty line
    ]
    for i, doc in enumerate(bad):
        try:
            prom.parse(doc)
        except TestFailure:
            continue
        fail("parser self-test: malformed document %d accepted" % i)


def part_sighup_and_metrics(s):
    """Foreground daemons with -c FILE and --log-file: rotation, reloads,
    bad reloads, then /metrics after N orders."""
    d = s.tmp
    api_conf = os.path.join(d, "api.conf")
    api_log = os.path.join(d, "api-file.log")
    new_port = free_port()
    listen = "listen = 127.0.0.1:%d\n" % s.port
    write_file(api_conf, "log-level = info\n" + listen)
    # no --log-level or --listen on the command line: they would win over the file
    s.api = Daemon("order-api", [ORDER_API, "-c", api_conf, "-D", s.datadir,
                                 "-q", s.queue, "--log-file", api_log], s.api_log)
    s.api.start()
    s.wait_healthy()
    ids = []

    fams, smp, _ = get_prometheus(s.port)
    hb = prom.value(smp, P + "worker_heartbeat_age_seconds")
    expect(hb is not None and math.isnan(hb),
           "/metrics before any worker ran: heartbeat age %r, expected NaN" % hb)
    expect(prom.value(smp, P + "orders_created_total") == 0, "fresh store: created_total != 0")

    # no worker: the queue (10 messages) fills after a dozen sequential
    # POSTs, each read back (the read makes it reach LMDB at once, and its
    # id goes out as one message)
    ids += [create_read(s, user_id=1, item_ids=[i + 1]) for i in range(12)]
    time.sleep(0.3)
    expect(count_lines(api_log, r"access:") == 0,
           "order-api at info without access-log logged access lines:\n%s" % tail(api_log, 5))
    expect(count_lines(api_log, r": debug: ") == 0,
           "order-api at info logged debug lines:\n%s" % tail(api_log, 5))
    _, smp, _ = get_prometheus(s.port)
    expect((prom.value(smp, P + "queue_full_total") or 0) > 0,
           "12 orders with no worker (10-message queue): queue_full_total %r"
           % prom.value(smp, P + "queue_full_total"))

    # logrotate: rename, SIGHUP -> a new file; the next lines go there
    os.rename(api_log, api_log + ".1")
    os.kill(s.api.pid, signal.SIGHUP)
    wait_until(lambda: os.path.exists(api_log), 5,
               "order-api to create a new --log-file after rename + SIGHUP")
    expect_log(api_log + ".1", r"info: SIGHUP: reopening", "order-api rotation (old file)")
    os.kill(s.api.pid, signal.SIGHUP)
    expect_log(api_log, r"order-api: info: SIGHUP: reopening", "order-api rotation (new file)")
    time.sleep(0.2)
    expect(count_lines(api_log + ".1", r"SIGHUP") == 1,
           "order-api: rotated file got %d SIGHUP lines, expected 1"
           % count_lines(api_log + ".1", r"SIGHUP"))
    old_api_log = read(api_log + ".1")

    # log-level debug and access-log yes from the file
    write_file(api_conf, "log-level = debug\naccess-log = yes\n" + listen)
    os.kill(s.api.pid, signal.SIGHUP)
    expect_log(api_log, r"info: reload: log-level debug", "order-api reload log-level")
    expect_log(api_log, r"info: reload: access-log yes", "order-api reload access-log")
    s.request("GET", "/healthz")
    expect_log(api_log, r'info: access: 127\.0\.0\.1 "GET /healthz" 200 [0-9]+ [0-9.]+ ms$',
               "order-api access line after access-log = yes")
    ids += [create_read(s, user_id=2, item_ids=[i + 1]) for i in range(2)]
    expect_log(api_log, r'access: 127\.0\.0\.1 "POST /api/orders/" 201 ', "access line of POST",
               count=2)
    expect_log(api_log, r"order-api: debug: queue .* is full",
               "order-api debug line (queue full) after log-level = debug")

    # listen changed: a warning, still on the old port
    write_file(api_conf, "log-level = debug\naccess-log = yes\nlisten = 127.0.0.1:%d\n" % new_port)
    os.kill(s.api.pid, signal.SIGHUP)
    expect_log(api_log, r"warn: reload: listen changed; restart to apply it",
               "order-api reload with a new listen")
    expect(healthz(s.port) == 200, "order-api stopped serving the old port after a listen reload")
    expect(connect_refused(new_port), "order-api serves the new port %d without a restart"
           % new_port)
    expect(count_lines(api_log, r"reload: (log-level|access-log)") == 2,
           "order-api: a reload that only changed listen re-applied other settings:\n%s"
           % tail(api_log, 8))

    # a now-bad config: keeps running with the old settings, logs an error
    write_file(api_conf, "access-log = yes\nlog-level = loud\n" + listen)
    n_access = count_lines(api_log, r"access:")
    os.kill(s.api.pid, signal.SIGHUP)
    expect_log(api_log, r"order-api: error: reload: .*bad", "order-api SIGHUP with a bad config")
    expect_log(api_log, re.escape(api_conf) + r":2", "order-api SIGHUP with a bad config "
               "(the file:line in the log)")
    expect(healthz(s.port) == 200, "order-api not serving after a bad reload")
    expect_log(api_log, r"access:", "order-api access log still on after a bad reload",
               count=n_access + 1)
    expect(s.api.running(), "order-api exited after a bad reload")

    # back to info, access-log off
    write_file(api_conf, "log-level = info\naccess-log = no\n" + listen)
    os.kill(s.api.pid, signal.SIGHUP)
    expect_log(api_log, r"info: reload: log-level info", "order-api reload back to info")
    expect_log(api_log, r"info: reload: access-log no", "order-api reload access-log no")
    time.sleep(0.1)
    n_access = count_lines(api_log, r"access:")
    s.request("GET", "/healthz")
    time.sleep(0.2)
    expect(count_lines(api_log, r"access:") == n_access,
           "order-api still logs access lines after access-log = no")

    # ---- the worker, in the foreground, settings in the file
    w_conf = os.path.join(d, "worker.conf")
    w_log = os.path.join(d, "worker-file.log")
    w_settings = "workers = 2\npickup-delay-ms = 50\nlease-ms = 2000\n"
    write_file(w_conf, "log-level = info\nprocessing-ms = 100\n" + w_settings)
    s.worker = Daemon("order-worker", [ORDER_WORKER, "-c", w_conf, "-D", s.datadir,
                                       "-q", s.queue, "--log-file", w_log], s.worker_log)
    s.worker.start()
    wait_until(lambda: s.worker.running() and len(procs.children(s.worker.pid)) == 2, 10,
               "order-worker to fork 2 workers (log %s)" % tail(w_log))
    s.worker_kids.update(procs.children(s.worker.pid))
    expect_log(w_log, r"\[master\]: info: all 2 workers started", "order-worker start")
    check_worker_titles(s.worker.pid, 2, "order-worker (foreground)")
    check_all_completed(s, ids, timeout=20)
    expect(count_lines(w_log, r"debug") == 0,
           "order-worker at info logged debug lines:\n%s" % tail(w_log, 5))

    os.rename(w_log, w_log + ".1")
    os.kill(s.worker.pid, signal.SIGHUP)
    wait_until(lambda: os.path.exists(w_log), 5,
               "order-worker to create a new --log-file after rename + SIGHUP")
    os.kill(s.worker.pid, signal.SIGHUP)
    expect_log(w_log, r"\[master\]: info: SIGHUP: reopening", "order-worker rotation (new file)")
    time.sleep(0.3)
    old_w_log = read(w_log + ".1")

    write_file(w_conf, "log-level = debug\nprocessing-ms = 100\n" + w_settings)
    os.kill(s.worker.pid, signal.SIGHUP)
    for who in ("master", "1", "2"):
        expect_log(w_log, r"order-worker\[%s\]: info: reload: log-level debug" % who,
                   "order-worker[%s] reload to debug" % who)
    more = [s.create_order(user_id=3, item_ids=[i + 1]) for i in range(3)]
    ids += more
    check_all_completed(s, ids, timeout=20)
    for oid in more:
        expect_log(w_log, r"order-worker\[[12]\]: debug: order %s Completed$" % oid,
                   "order-worker debug line for %s after log-level = debug" % oid)

    # a setting read only at start: a warning, the old value stays
    write_file(w_conf, "log-level = debug\nprocessing-ms = 300\n" + w_settings)
    os.kill(s.worker.pid, signal.SIGHUP)
    expect_log(w_log, r"\[master\]: warn: reload: processing-ms changed; restart to apply it",
               "order-worker reload with a new processing-ms")

    # a bad config: keeps running (still debug), logs an error
    write_file(w_conf, "log-level = debug\nprocessing-ms = 300\nbogus = 1\n" + w_settings)
    os.kill(s.worker.pid, signal.SIGHUP)
    expect_log(w_log, r"\[master\]: error: reload: .*bad", "order-worker SIGHUP with a bad config")
    expect_log(w_log, re.escape(w_conf) + r":3", "order-worker bad config (file:line in the log)")
    time.sleep(0.3)
    expect(s.worker.running() and len(procs.children(s.worker.pid)) == 2,
           "order-worker lost workers after a bad reload")
    last = s.create_order(user_id=4)
    ids.append(last)
    check_all_completed(s, ids, timeout=20)
    expect_log(w_log, r"debug: order %s Completed$" % last,
               "order-worker still at debug after a bad reload")
    expect(read(w_log + ".1") == old_w_log,
           "order-worker wrote to the rotated log after SIGHUP:\n%s"
           % read(w_log + ".1")[len(old_w_log):])
    expect(read(api_log + ".1") == old_api_log,
           "order-api wrote to the rotated log after SIGHUP:\n%s"
           % read(api_log + ".1")[len(old_api_log):])

    # ---- GET /metrics after N orders, all Completed
    n = len(ids)
    time.sleep(1.2)  # a fresh heartbeat
    fams, smp, text = get_prometheus(s.port)
    for fam, typ in (("orders", "gauge"), ("orders_created_total", "counter"),
                     ("orders_completed_total", "counter"),
                     ("processing_seconds", "histogram"),
                     ("worker_heartbeat_age_seconds", "gauge"),
                     ("create_timeouts_total", "counter"),
                     ("http_requests_total", "counter")):
        expect(fams.get(P + fam, {}).get("type") == typ,
               "/metrics: %s%s type %r, expected %s" % (P, fam, fams.get(P + fam), typ))
    checks = [
        ("orders{status=Completed}", prom.value(smp, P + "orders", status="Completed"), n),
        ("orders{status=Pending}", prom.value(smp, P + "orders", status="Pending"), 0),
        ("orders{status=Processing}", prom.value(smp, P + "orders", status="Processing"), 0),
        ("orders{status=Cancelled}", prom.value(smp, P + "orders", status="Cancelled"), 0),
        ("orders_created_total", prom.value(smp, P + "orders_created_total"), n),
        ("orders_completed_total", prom.value(smp, P + "orders_completed_total"), n),
        ("processing_seconds_count", prom.value(smp, P + "processing_seconds_count"), n),
        ("create_timeouts_total", prom.value(smp, P + "create_timeouts_total"), 0),
        ('http_requests_total{route="/api/orders/",code="201"}',
         prom.value(smp, P + "http_requests_total", route="/api/orders/", code="201"), n),
    ]
    for what, got, want in checks:
        expect(got == want, "/metrics after %d orders: %s = %r, expected %d" % (n, what, got, want))
    commits = prom.value(smp, P + "commits_total")
    expect(commits is not None and 1 <= commits <= n,
           "/metrics: commits_total %r for %d orders" % (commits, n))
    hb = prom.value(smp, P + "worker_heartbeat_age_seconds")
    expect(hb is not None and 0 <= hb < 10, "/metrics: worker_heartbeat_age_seconds %r" % hb)
    psum = prom.value(smp, P + "processing_seconds_sum")
    expect(psum is not None and psum >= n * 0.1,
           "/metrics: processing_seconds_sum %r for %d orders of >= 150 ms" % (psum, n))
    inf = prom.value(smp, P + "processing_seconds_bucket", le="+Inf")
    expect(inf == n, "/metrics: le=+Inf bucket %r, expected %d" % (inf, n))
    m = s.metrics()
    expect(m["total_orders_processed"] == n and m["total_orders"] == n,
           "JSON metrics disagree with /metrics: %r" % m)
    # HEAD: headers only, same length
    st, hdrs, _ = raw_request(s.port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n")
    expect(st == 200 and hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"),
           "HEAD /metrics: %s %r" % (st, hdrs))
    # the /metrics requests are counted themselves, under their own route
    _, smp2, _ = get_prometheus(s.port)
    got = prom.value(smp2, P + "http_requests_total", route="/metrics", code="200")
    expect(got is not None and got >= 3, "/metrics route counter %r" % got)

    s.stop_worker()
    s.stop_api()


def main():
    detached = Detached()
    section("parser self-test", part_parser_selftest)
    with System("ops-a") as s:
        try:
            section("bad config at start", part_bad_config_at_start, s.tmp)
            section("order-api --daemon", part_api_daemon, s, detached)
            section("order-worker --daemon", part_worker_daemon, s, detached)
            section("relative paths + SIGHUP", part_relative_paths, s, detached)
        finally:
            detached.kill_all()  # before the System removes the queue and files
    with System("ops-b") as s:
        section("SIGHUP and /metrics", part_sighup_and_metrics, s)
    soft.report("problem(s)")


if __name__ == "__main__":
    run(main)
