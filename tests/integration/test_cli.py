#!/usr/bin/env python3
"""Command line and config file of both daemons: --help, --version,
--check-config, refusal of bad values (exit 2, one stderr line naming the
program), the command line winning over the config file."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import run, wait_until  # noqa: E402
from optest.daemons import (ORDER_API, ORDER_WORKER, Daemon, System, unique_queue,  # noqa: E402
                            unlink_queue)
from optest.ports import free_port  # noqa: E402

# --daemon/-d, --pidfile/-p and --api-token-file are not in scope yet.
COMMON = ["--config", "--data-dir", "--queue", "--map-size",
          "--log-level", "--check-config", "--help", "--version"]
COMMON_SHORT = ["-c", "-D", "-q", "-n", "-h", "-V"]
COMMON_DEFAULTS = ["/order-processing", "/var/lib/order-processing", "info"]
API_OPTS = ["--listen", "--threads"]
API_SHORT = ["-l", "-t"]
API_DEFAULTS = ["127.0.0.1:8000"]
WORKER_OPTS = ["--workers", "--pickup-delay-ms", "--processing-ms", "--lease-ms"]
WORKER_SHORT = ["-w"]
WORKER_DEFAULTS = ["2000", "3000", "30000"]

queues = []


def run_prog(argv, timeout=10):
    """Run a daemon that is expected to exit by itself."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kids = procs.descendants(p.pid)
        for pid in [p.pid] + kids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        p.communicate()
        raise AssertionError("%r did not exit within %d s (it should have refused to start)"
                             % (argv, timeout))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def check_help(prog, opts, short, defaults):
    name = os.path.basename(prog)
    for flag in ("--help", "-h"):
        rc, out, err = run_prog([prog, flag])
        assert rc == 0, "%s %s: exit %s, stderr %r" % (name, flag, rc, err)
        assert out.strip(), "%s %s printed nothing on stdout" % (name, flag)
        for o in COMMON + opts:
            assert o in out, "%s %s does not mention %s:\n%s" % (name, flag, o, out)
        for o in COMMON_SHORT + short:
            assert re.search(r"(^|[\s,\[])%s\b" % re.escape(o), out), \
                "%s %s does not mention %s:\n%s" % (name, flag, o, out)
        for d in COMMON_DEFAULTS + defaults:
            assert d in out, "%s %s does not mention the default %r:\n%s" % (name, flag, d, out)


def check_version(prog):
    name = os.path.basename(prog)
    for flag in ("--version", "-V"):
        rc, out, err = run_prog([prog, flag])
        assert rc == 0, "%s %s: exit %s, stderr %r" % (name, flag, rc, err)
        assert re.search(r"[0-9]+\.[0-9]+", out), "%s %s: no version in %r" % (name, flag, out)


def check_config_ok(prog, tmp, lines, extra=()):
    name = os.path.basename(prog)
    conf = os.path.join(tmp, "%s-ok.conf" % name)
    with open(conf, "w") as f:
        f.write("# a comment\n\n" + "\n".join(lines) + "\n")
    for flag in ("--check-config", "-n"):
        rc, out, err = run_prog([prog, "-c", conf, flag] + list(extra))
        assert rc == 0, "%s -c %s %s: exit %s, stderr %r (config %r)" % (
            name, conf, flag, rc, err, lines)
        assert "configuration OK" in out, "%s %s: stdout %r" % (name, flag, out)


def refused(prog, args, what, mentions=(), tmp=None, check_only=False, single_line=True):
    """The daemon must exit non-zero at once with one stderr line naming the
    program (and each word of mentions).  Exit code 2 for bad values."""
    name = os.path.basename(prog)
    q = unique_queue()
    queues.append(q)
    base = [prog]
    if "-c" not in args:
        base += ["-c", "/dev/null"]
    if "-D" not in args:
        base += ["-D", os.path.join(tmp, "data-%s" % q.strip("/"))]
    base += ["-q", q]
    if name == "order-api" and "-l" not in args and "--listen" not in args:
        base += ["-l", "127.0.0.1:%d" % free_port()]
    argv = base + list(args) + (["--check-config"] if check_only else [])
    rc, out, err = run_prog(argv)
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc != 0, "%s (%s): exit 0, expected a refusal; argv %r" % (name, what, argv)
    if not single_line:  # a runtime failure: logs may precede the error
        assert lines, "%s (%s): nothing on stderr" % (name, what)
        lines = [x for x in lines if "error" in x] or lines
        lines = lines[-1:]
    assert len(lines) == 1, "%s (%s): expected one stderr line, got %r" % (name, what, err)
    assert name in lines[0], "%s (%s): stderr line does not name the program: %r" % (
        name, what, lines[0])
    for word in mentions:
        assert word in lines[0], "%s (%s): stderr line does not mention %r: %r" % (
            name, what, word, lines[0])
    return rc, lines[0]


def main():
    tmp = tempfile.mkdtemp(prefix="op-it-cli-")
    api, worker = ORDER_API, ORDER_WORKER
    notes = []
    try:
        check_help(api, API_OPTS, API_SHORT, API_DEFAULTS)
        check_help(worker, WORKER_OPTS, WORKER_SHORT, WORKER_DEFAULTS)
        check_version(api)
        check_version(worker)

        data = os.path.join(tmp, "data")
        check_config_ok(api, tmp, ["data-dir = %s" % data, "queue = /op-cli-x",
                                   "listen = 127.0.0.1:%d" % free_port(), "threads = 4",
                                   "log-level = warn", "map-size = 64M"])
        check_config_ok(worker, tmp, ["data-dir = %s" % data, "queue = /op-cli-x",
                                      "workers = 3", "pickup-delay-ms = 10",
                                      "processing-ms = 20", "lease-ms = 5000",
                                      "log-level = debug", "map-size = 1G"])
        # command line wins over the file
        check_config_ok(api, tmp, ["data-dir = %s" % data, "log-level = error"],
                        ["--log-level", "debug"])
        check_config_ok(worker, tmp, ["data-dir = %s" % data, "log-level = error",
                                      "processing-ms = 100", "lease-ms = 200"],
                        ["--processing-ms", "150"])

        # bad values: exit 2, one line on stderr naming the program and the setting
        cases = [
            (worker, ["--workers", "0"], "--workers 0", ["workers"]),
            (worker, ["--workers", "abc"], "--workers abc", ["workers"]),
            (worker, ["-w", "-3"], "-w -3", []),
            (api, ["--listen", "127.0.0.1:70000"], "--listen port 70000", ["listen"]),
            (api, ["--listen", "nonsense:http"], "--listen nonsense", ["listen"]),
            (api, ["--threads", "0"], "--threads 0", ["threads"]),
            (api, ["--map-size", "12Q"], "--map-size 12Q", ["map-size"]),
            (worker, ["--map-size", "12Q"], "--map-size 12Q", ["map-size"]),
            (api, ["--log-level", "loud"], "--log-level loud", ["log-level"]),
            (worker, ["--log-level", "loud"], "--log-level loud", ["log-level"]),
            (worker, ["--lease-ms", "1000", "--processing-ms", "3000"],
             "lease not above processing", ["lease"]),
            (worker, ["--lease-ms", "3000", "--processing-ms", "3000"],
             "lease equal to processing", ["lease"]),
            (worker, ["--pickup-delay-ms", "x"], "--pickup-delay-ms x", ["pickup-delay-ms"]),
            (api, ["--bogus-option"], "unknown option", ["bogus-option"]),
            (worker, ["--bogus-option"], "unknown option", ["bogus-option"]),
            (api, ["-q", "no-slash"], "queue without a leading /", ["queue"]),
            (api, ["--instance", "900"], "--instance 900", ["instance"]),
            (worker, ["--instance", "-1"], "--instance -1", ["instance"]),
        ]
        bad_line = os.path.join(tmp, "bad-line.conf")
        with open(bad_line, "w") as f:
            f.write("log-level = info\nnonsense\n")
        unknown_key = os.path.join(tmp, "unknown-key.conf")
        with open(unknown_key, "w") as f:
            f.write("frobnicate = 1\n")
        bad_value = os.path.join(tmp, "bad-value.conf")
        with open(bad_value, "w") as f:
            f.write("workers = many\n")
        for prog in (api, worker):
            cases.append((prog, ["-c", bad_line], "config line 'nonsense'", []))
            cases.append((prog, ["-c", unknown_key], "config unknown key", ["frobnicate"]))
            cases.append((prog, ["-c", os.path.join(tmp, "missing.conf")],
                          "config file that does not exist", []))
        cases.append((worker, ["-c", bad_value], "config workers = many", ["workers"]))

        for prog, args, what, mentions in cases:
            for check_only in (False, True):
                rc, line = refused(prog, args, what, mentions, tmp, check_only)
                if rc != 2:
                    raise AssertionError("%s (%s%s): exit %s, expected 2 for a bad setting: %r"
                                         % (os.path.basename(prog), what,
                                            ", --check-config" if check_only else "", rc, line))

        # a data directory that cannot be created (under a regular file)
        plain = os.path.join(tmp, "plain-file")
        with open(plain, "w") as f:
            f.write("x")
        for prog in (api, worker):
            rc, line = refused(prog, ["-D", os.path.join(plain, "data")],
                               "data dir under a regular file", [], tmp)
            if rc != 2:
                notes.append("%s: uncreatable data dir exits %s (brief expects 2): %r"
                             % (os.path.basename(prog), rc, line))

        # the command line wins over the file, observably: the file's listen
        # port is not used.
        with System("cli-override") as s:
            conf = os.path.join(s.tmp, "o.conf")
            other = free_port()
            with open(conf, "w") as f:
                f.write("listen = 127.0.0.1:%d\nlog-level = error\n" % other)
            s.api = Daemon("order-api", [api, "-c", conf, "-D", s.datadir, "-q", s.queue,
                                         "-l", "127.0.0.1:%d" % s.port], s.api_log)
            s.api.start()
            s.wait_healthy()
            assert s.request("GET", "/healthz").status == 200
            c = socket.socket()
            try:
                c.settimeout(1)
                assert c.connect_ex(("127.0.0.1", other)) != 0, \
                    "order-api listens on the config file's port too"
            finally:
                c.close()
            s.stop_api()
            # and the worker takes its values from the config file when the
            # command line does not give them
            with open(conf, "w") as f:
                f.write("workers = 3\npickup-delay-ms = 0\nprocessing-ms = 0\nlease-ms = 1000\n")
            s.worker = Daemon("order-worker", [worker, "-c", conf, "-D", s.datadir,
                                               "-q", s.queue], s.worker_log)
            s.worker.start()
            wait_until(lambda: len(procs.children(s.worker.pid)) == 3, 10,
                       "order-worker to fork the 3 workers of the config file")
            s.stop_worker()
            s.worker = Daemon("order-worker", [worker, "-c", conf, "-D", s.datadir,
                                               "-q", s.queue, "-w", "1"], s.worker_log)
            s.worker.start()
            time.sleep(1.0)
            kids = procs.children(s.worker.pid)
            assert len(kids) == 1, "-w 1 over workers = 3: %d children" % len(kids)
            s.stop_worker()

        # a runtime failure (the port is taken) exits 1 with one stderr line
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            rc, line = refused(api, ["-l", "127.0.0.1:%d" % busy.getsockname()[1]],
                               "listen port already in use", [], tmp, single_line=False)
            if rc != 1:
                notes.append("order-api: port in use exits %s (brief: 1 for runtime failures): %r"
                             % (rc, line))
        finally:
            busy.close()

        # --listen PORT (no address) serves on 127.0.0.1
        with System("cli-listen") as s:
            s.api = Daemon("order-api", [api, "-c", "/dev/null", "-D", s.datadir, "-q", s.queue,
                                         "-l", str(s.port)], s.api_log)
            s.api.start()
            s.wait_healthy()
            s.stop_api()
            # the worker's default --workers is the number of CPUs
            s.worker = Daemon("order-worker", [worker, "-c", "/dev/null", "-D", s.datadir,
                                               "-q", s.queue], s.worker_log)
            s.worker.start()
            cpus = {os.cpu_count(), len(os.sched_getaffinity(0))}
            wait_until(lambda: len(procs.children(s.worker.pid)) in cpus, 10,
                       "order-worker without -w to fork one worker per CPU (%s)" % sorted(cpus))
            time.sleep(0.5)
            n = len(procs.children(s.worker.pid))
            assert n in cpus, "order-worker without -w runs %d workers, CPUs %r" % (n, cpus)
            s.stop_worker()
    finally:
        for q in queues:
            unlink_queue(q)
        shutil.rmtree(tmp, ignore_errors=True)
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    run(main)
