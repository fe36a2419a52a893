"""The fault tests' tools (tests/check): order-ctl check, the fault shim,
writer-hold, and the checks of what a fault left behind.

- require_order_ctl(), require_writer_hold(): exit 77 (skip) unless the
  tool is built; require_preload(): the same for an LD_PRELOAD list.
- ctl_check(): run `order-ctl check` on a data directory (daemons stopped,
  or live: it reads one snapshot) and fail the test on a discrepancy.
- Poster: threads POSTing orders until stopped, recording the ids that got
  a 201 and how many requests had an unknown outcome.
- jepsen_check(): every acknowledged id exists and is Completed exactly
  once, status counts sum to total_orders, the total lies between the
  acknowledged and the acknowledged plus the unknown.
- finish(): stop both daemons, then order-ctl check with the acknowledged ids.
- WriterHold: a context in which the writer-hold tool holds LMDB's writer
  lock (a write transaction that never commits), released on leaving it.
- check_self_test(): mutate a copy of an environment (mdb_dump, edit,
  mdb_load) and make sure order-ctl check notices each mutation.
- metric(): one value of GET /metrics (optest.prom) of a System.
- log_lines_since(): the lines a daemon's log got after a byte offset.
- FaultShim: the faultshim.so LD_PRELOAD library (faultshim.c): the env
  for a daemon, arm() and disarm() at run time (writes and flushes of
  data.mdb or of the journal), and the faults it injected.
- ClockShim: the clockshim.so LD_PRELOAD library (clockshim.c): the env
  for a daemon, and step() of its wall clock at run time.
"""

import http.client
import os
import shutil
import subprocess
import sys
import threading
import time

from optest import prom
from optest.checks import fail, wait_until
from optest.client import Client
from optest.daemons import CLOCKSHIM, FAULTSHIM, ORDER_CTL, WRITER_HOLD
from optest.orders import check_all_completed, check_metrics_consistent


def require_order_ctl():
    if not os.access(ORDER_CTL, os.X_OK):
        sys.stderr.write("order-ctl not built: %s\n" % ORDER_CTL)
        sys.exit(77)


def require_writer_hold():
    if not os.access(WRITER_HOLD, os.X_OK):
        sys.stderr.write("writer-hold not built: %s\n" % WRITER_HOLD)
        sys.exit(77)


def ctl_check(datadir, acked=None, expect_total=None, expect_ok=True,
              tmpdir=None, quiet=False):
    """Run order-ctl check; fail unless it exits 0 (or 1 with
    expect_ok=False). Returns the CompletedProcess."""
    argv = [ORDER_CTL, "-c", "/dev/null", "-D", datadir, "check"]
    if expect_total is not None:
        argv += ["--expect-total", str(expect_total)]
    if acked is not None:
        path = os.path.join(tmpdir or os.path.dirname(datadir),
                            "acked-ids-%d.txt" % os.getpid())
        with open(path, "w") as f:
            f.write("".join("%s\n" % oid for oid in acked))
        argv += ["--expect-completed-ids", path]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    out = r.stdout.strip()
    if expect_ok and r.returncode != 0:
        lines = out.splitlines()
        shown = "\n".join(lines[:40] + (["... %d more" % (len(lines) - 41)]
                                        if len(lines) > 41 else []) + lines[-1:])
        fail("order-ctl check %s exited %d:\n%s\n%s"
             % (datadir, r.returncode, shown, r.stderr.strip()))
    if not expect_ok and r.returncode != 1:
        fail("order-ctl check %s exited %d, expected 1 (a discrepancy):\n%s\n%s"
             % (datadir, r.returncode, out, r.stderr.strip()))
    if not quiet and out:
        print(out.splitlines()[-1])
    return r


def metric(s, name):
    """The value of the first series of one metric in GET /metrics of the
    System s (over its client's connection), with or without the
    order_processing_ prefix, or None."""
    r = s.request("GET", "/metrics", check=False)
    if r.status != 200:
        fail("GET /metrics: %s %r" % (r.status, r.raw[:200]))
    return prom.first(prom.parse(r.raw.decode("utf-8", "replace"))[1], name)


def require_preload(preload, what):
    """Skip the test (exit 77) unless every library of the LD_PRELOAD
    list preload is there to read."""
    for path in preload.split():
        if not os.access(path, os.R_OK):
            sys.stderr.write("%s not built: %s\n" % (what, path))
            sys.exit(77)


class FaultShim:
    """The fault shim for one test: its control file lives in the test's
    temporary directory. env() goes to start_api/start_worker; arm() makes
    the next matching calls on data.mdb or on the journal fail, in any
    process started with that env; faults() lists what it injected:
    [(pid, what, errno name)]."""

    def __init__(self, s):
        require_preload(FAULTSHIM, "fault shim")
        self.control = os.path.join(s.tmp, "fault")

    def env(self):
        return {"LD_PRELOAD": FAULTSHIM, "OP_FAULT_FILE": self.control}

    def arm(self, what, err="EIO", count=1):
        """what: meta, data or sync (data.mdb), jdata or jsync (the
        journal); err: EIO or ENOSPC; count: a number of calls, or
        "always" (until disarm)."""
        tmp = self.control + ".new"
        with open(tmp, "w") as f:
            f.write("%s %s %s\n" % (what, err, count))
        os.rename(tmp, self.control)

    def disarm(self):
        try:
            os.unlink(self.control)
        except FileNotFoundError:
            pass

    def armed(self):
        return os.path.exists(self.control)

    def faults(self):
        try:
            with open(self.control + ".log") as f:
                return [(int(p), w, e) for p, w, e in
                        (line.split() for line in f if line.strip())]
        except FileNotFoundError:
            return []


class ClockShim:
    """The clock shim for one test: its control file lives in the test's
    temporary directory. env() goes to start_api/start_worker; step()
    moves the wall clock (CLOCK_REALTIME, CLOCK_REALTIME_COARSE, time())
    of every process started with that env, as an NTP step would, from its
    next read of that clock at most 10 ms on; the monotonic clock stays.
    The kernel's own waits on CLOCK_REALTIME do not move (clockshim.c)."""

    def __init__(self, s):
        require_preload(CLOCKSHIM, "clock shim")
        self.control = os.path.join(s.tmp, "clock")
        self.offset = 0.0

    def env(self):
        return {"LD_PRELOAD": CLOCKSHIM, "OP_CLOCK_FILE": self.control}

    def step(self, seconds):
        """Step the wall clock by seconds (back if negative) from where
        the shim has it now; the offset from the real clock is returned."""
        self.offset += seconds
        tmp = self.control + ".new"
        with open(tmp, "w") as f:
            f.write("%+.9f\n" % self.offset)
        os.rename(tmp, self.control)
        return self.offset

    def reset(self):
        """The real wall clock again."""
        self.offset = 0.0
        try:
            os.unlink(self.control)
        except FileNotFoundError:
            pass


def log_lines_since(path, offset):
    """The lines a daemon's log got after byte offset (its size earlier)."""
    with open(path, "rb") as f:
        f.seek(offset)
        return [l for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]


class Poster:
    """threads threads each POSTing orders one after another (sleeping
    interval s in between) until stop(). acked: ids answered 201, in
    order; uncertain: requests whose outcome is unknown (a connection
    broken after the request was sent, a timeout); refused: connection
    refused (nothing sent) or 503 (nothing stored)."""

    def __init__(self, s, threads=1, interval=0.0, timeout=5.0, user_id=7,
                 limit=None):
        self.s = s
        self.nthreads = threads
        self.interval = interval
        self.timeout = timeout
        self.user_id = user_id
        self.limit = limit
        self.acked = []
        self.uncertain = 0
        self.refused = 0
        self.unexpected = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _run(self, index):
        c = Client(self.s.port, timeout=self.timeout)
        n = 0
        while not self.stopping.is_set():
            if self.limit is not None and n >= self.limit:
                break
            n += 1
            body = {"user_id": self.user_id + index, "item_ids": [n % 97 + 1],
                    "total_amount": 1.25}
            try:
                r = c.request("POST", "/api/orders/", body, retry=False)
            except ConnectionRefusedError:
                with self.lock:
                    self.refused += 1
                c.close()
                time.sleep(0.05)
                continue
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.uncertain += 1
                c.close()
                time.sleep(0.02)
                continue
            with self.lock:
                if r.status == 201:
                    self.acked.append(r.body["order_id"])
                elif r.status == 503:
                    self.refused += 1
                else:
                    self.unexpected.append((r.status, r.raw[:200]))
            if self.interval:
                time.sleep(self.interval)
        c.close()

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_for(self, n, timeout=15.0):
        wait_until(lambda: self.count() >= n, timeout,
                   "%d acknowledged POSTs" % n)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(self.timeout + 10)
            if t.is_alive():
                fail("a POSTing thread did not stop")
        if self.unexpected:
            fail("unexpected answers to POST: %r" % self.unexpected[:5])
        return self


def jepsen_check(s, acked, uncertain=0, timeout=60.0):
    """Every acknowledged id exists and reaches Completed; once nothing is
    Pending or Processing, status counts sum to total_orders, everything
    is Completed and counted once. Returns the metrics."""
    dups = len(acked) - len(set(acked))
    if dups:
        fail("%d order ids were acknowledged twice" % dups)
    m = check_all_completed(s, acked, timeout=timeout)
    check_metrics_consistent(m)
    c = m["order_status_count"]
    total = m["total_orders"]
    if not len(acked) <= total <= len(acked) + uncertain:
        fail("total_orders %d, but %d POSTs acknowledged and %d unknown (%r)"
             % (total, len(acked), uncertain, m))
    if c["Completed"] != total or c["Cancelled"] != 0:
        fail("not every order Completed: %r" % m)
    if m["total_orders_processed"] != total:
        fail("total_orders_processed %d for %d orders: counted twice? %r"
             % (m["total_orders_processed"], total, m))
    return m


def finish(s, acked, total=None):
    """Stop both daemons (SIGTERM, exit 0), then order-ctl check the data with
    every acknowledged id expected Completed."""
    if s.worker is not None and s.worker.running():
        s.stop_worker()
    if s.api is not None and s.api.running():
        s.stop_api()
    return ctl_check(s.datadir, acked=acked, expect_total=total, tmpdir=s.tmp)


class WriterHold:
    """with WriterHold(datadir): LMDB's writer lock is held by the
    writer-hold tool from the moment the with-block starts (it has said
    "held") until release() or the block's end; leaving waits for the tool
    to abort its transaction and exit 0."""

    def __init__(self, datadir, timeout=10.0):
        self.datadir = datadir
        self.timeout = timeout
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [WRITER_HOLD, self.datadir], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line != b"held\n":
            self.proc.stdin.close()
            err = self.proc.stderr.read()
            self.proc.wait(self.timeout)
            fail("writer-hold %s: %r, exit %s, %s"
                 % (self.datadir, line, self.proc.returncode,
                    err.decode(errors="replace").strip()))
        return self

    def release(self):
        if self.proc.stdin.closed:
            return
        self.proc.stdin.close()
        try:
            rc = self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("writer-hold did not exit within %.0f s of its release"
                 % self.timeout)
        if rc != 0:
            fail("writer-hold exited %d: %s" % (
                rc, self.proc.stderr.read().decode(errors="replace").strip()))

    def __exit__(self, exc_type, exc, tb):
        self.release()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return False


# ---------------------------------------------------------------- self-test

def _parse_dump(text):
    """mdb_dump -a output -> [(header lines, [[key hex, value hex], ...])]"""
    dbs = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("VERSION="):
            i += 1
            continue
        header = []
        while lines[i] != "HEADER=END":
            header.append(lines[i])
            i += 1
        header.append(lines[i])
        i += 1
        pairs = []
        while lines[i] != "DATA=END":
            pairs.append([lines[i][1:], lines[i + 1][1:]])
            i += 2
        i += 1
        dbs.append((header, pairs))
    return dbs


def _db(dbs, name):
    for header, pairs in dbs:
        if "database=%s" % name in header:
            return pairs
    fail("mdb_dump has no database %s" % name)


def _write_dump(dbs, path):
    with open(path, "w") as f:
        for header, pairs in dbs:
            f.write("\n".join(header) + "\n")
            for k, v in pairs:
                f.write(" %s\n %s\n" % (k, v))
            f.write("DATA=END\n")


def _u64(hexs, slot):
    return int.from_bytes(bytes.fromhex(hexs[slot * 16:slot * 16 + 16]), "little")


def _set_u64(hexs, slot, value):
    return hexs[:slot * 16] + value.to_bytes(8, "little").hex() + hexs[slot * 16 + 16:]


def check_self_test(datadir, tmp):
    """order-ctl check must pass a faithful copy and fail each mutated one.
    Needs mdb_dump and mdb_load (lmdb-utils); skipped without them."""
    if not (shutil.which("mdb_dump") and shutil.which("mdb_load")):
        print("note: mdb_dump/mdb_load missing, order-ctl check self-test skipped")
        return
    dump = subprocess.run(["mdb_dump", "-a", datadir], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout

    def meta_key(name):
        return name.encode().hex()

    def edit_meta(dbs, name, fn):
        for pair in _db(dbs, "meta"):
            if pair[0] == meta_key(name):
                pair[1] = fn(pair[1])
                return
        fail("meta has no %s" % name)

    def first(dbs, name):
        pairs = _db(dbs, name)
        if not pairs:
            fail("database %s is empty" % name)
        return pairs[0]

    def counters_completed_plus_one(dbs):
        edit_meta(dbs, "counters", lambda v: _set_u64(v, 2, _u64(v, 2) + 1))

    def by_user_left(dbs):
        # the index schema 3 dropped, as an upgrade that failed would leave it
        header, pairs = next(d for d in dbs if "database=by_user_status" in d[0])
        key = pairs[0][0]
        dbs.append(([line.replace("database=by_user_status", "database=by_user")
                     for line in header], [[key[:16] + key[18:], ""]]))

    def extra_by_status(dbs):
        key = first(dbs, "by_status")[0]
        _db(dbs, "by_status").insert(0, ["00" + key[2:], "00" * 8])

    def drop_by_user_status(dbs):
        del _db(dbs, "by_user_status")[0]

    def extra_by_user_status(dbs):
        # the first order's entry again, under the next status
        key = first(dbs, "by_user_status")[0]
        status = (int(key[16:18], 16) + 1) % 4
        pairs = _db(dbs, "by_user_status")
        pairs.append([key[:16] + "%02x" % status + key[18:], ""])
        pairs.sort()

    def status_to_cancelled(dbs):
        rec = first(dbs, "orders")
        rec[1] = rec[1][:2] + "03" + rec[1][4:]

    def truncated_record(dbs):
        rec = first(dbs, "orders")
        rec[1] = rec[1][:-2]

    def next_id_one(dbs):
        edit_meta(dbs, "next_id", lambda v: _set_u64(v, 0, 1))

    def instance_one(dbs):
        edit_meta(dbs, "instance", lambda v: _set_u64(v, 0, 1))

    def hist_moved(dbs):
        def move(v):
            for b in range(11):
                if _u64(v, b):
                    v = _set_u64(v, b, _u64(v, b) - 1)
                    return _set_u64(v, (b + 1) % 11, _u64(v, (b + 1) % 11) + 1)
            fail("processing_hist is all zeros")
        edit_meta(dbs, "processing_hist", move)

    def order_dropped(dbs):
        del _db(dbs, "orders")[-1]

    def idem_dangling(dbs):
        pair = first(dbs, "idem")
        pair[1] = (10 ** 9).to_bytes(8, "little").hex() + pair[1][16:]

    cases = [
        ("counters Completed + 1", counters_completed_plus_one, "counters: Completed is"),
        ("a by_user database left over", by_user_left, "by_user is left over"),
        ("an extra Pending entry in by_status", extra_by_status, "extra Pending entry"),
        ("a by_user_status entry dropped", drop_by_user_status, "no by_user_status entry"),
        ("an extra by_user_status entry", extra_by_user_status,
         "by_user_status: extra entry"),
        ("a Completed record turned Cancelled", status_to_cancelled, "counters: Cancelled is"),
        ("a record one byte short", truncated_record, "record of"),
        ("next_id set to 1", next_id_one, "next_id 1 is not above"),
        ("instance set to 1", instance_one, "is outside instance 1's ids"),
        ("a processing_hist count moved", hist_moved, "processing_hist bucket"),
        ("the last order dropped", order_dropped, "created_total is"),
    ]
    if _db(_parse_dump(dump), "idem"):
        cases.append(("an idem entry naming no order", idem_dangling, "which does not exist"))
    base = os.path.join(tmp, "selftest")
    os.makedirs(base, exist_ok=True)

    def load(name, dbs):
        d = os.path.join(base, name)
        os.makedirs(d)
        path = d + ".dump"
        _write_dump(dbs, path)
        subprocess.run(["mdb_load", "-f", path, d], check=True,
                       stderr=subprocess.DEVNULL)
        return d

    d = load("faithful", _parse_dump(dump))
    ctl_check(d, quiet=True)
    r = ctl_check(d, acked=["ORD999999999"], expect_ok=False, tmpdir=base, quiet=True)
    if "does not exist" not in r.stdout:
        fail("order-ctl check did not name the missing acknowledged order:\n%s" % r.stdout)
    for i, (what, edit, expect) in enumerate(cases):
        dbs = _parse_dump(dump)
        edit(dbs)
        d = load("case%d" % i, dbs)
        r = ctl_check(d, expect_ok=False, quiet=True)
        if expect not in r.stdout:
            fail("order-ctl check on a copy with %s: no %r in its report:\n%s"
                 % (what, expect, r.stdout))
        shutil.rmtree(d, ignore_errors=True)
    print("order-ctl check self-test: a faithful copy passes, %d mutated copies fail"
          % len(cases))
