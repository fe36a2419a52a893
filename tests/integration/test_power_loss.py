#!/usr/bin/env python3
"""Power loss: an order answered 201 survives a power cut at any moment
after the answer. A SIGKILL cannot show this (the page cache outlives a
killed process), so the daemons run under the powertrace library
(tests/check/powertrace.c, LD_PRELOAD), which records every write and
flush they make to data.mdb, lock.mdb and order-api's write-ahead journal
into one trace: order-api's journal records and commits and the two
worker processes' claims and completions (200 ms pickup, so that a cancel
right after a create wins; 100 ms processing) as they interleave. The 8
clients append a record to the same trace for each 201 (and each 200 to a
cancel) right after they get it, so "answered before the cut" is
"recorded before it".

order-api answers 201 once the order's journal record is flushed; it
reaches LMDB in a later commit. So a cut may leave orders that only the
journal holds: order-api's next start applies them (orderlog_recover). The
journal here is 128 KiB, small enough that the run wraps it (the test
checks that it did), so records of an earlier lap and the wrap are covered
too; power-cut takes it as created whole before the trace begins (zeros,
flushed, renamed into place: --sized).

Then power-cut (tests/check/power-cut.c) builds, for hundreds of cuts
(each flush boundary, spread to 300, 100 at random and the end), the data
directory as a power cut there could have left it: everything a finished
flush covered, and of the later writes any versions of their pages, torn at
512-byte sectors; then runs op-recover (tests/check/op-recover.c: the
journal's recovery as order-api runs it at start, the daemon's own code)
on it, and order-ctl check must find every acknowledged order (a cancelled one
Cancelled) and every counter and index consistent. Most cuts hold orders
only in the journal; the test requires that some do.

The same with a disk that lies must lose acknowledged orders at some of
the cuts checked: the checker is shown to catch the defects it is there
for. OP_POWER_LIE=1: flushes do nothing and O_DSYNC is dropped. "dsync":
only O_DSYNC is dropped, so LMDB's meta page waits for the next commit's
flush; the creates are safe in the journal, but a cancel's 200 goes out
before its commit is durable. That window lasts only until some process's
next flush, which cuts placed by flushes or at random seldom hit: so this
run cancels every tenth order and checks the cuts just after each cancel's
200, where the defect shows. "journal": the journal's flushes alone do
nothing: a 201 before the order is durable anywhere.

The seed of the draws is printed; OP_POWER_SEED=N sets it. A run's trace
differs from the next one's, so to replay a failing cut set
OP_POWER_KEEP=DIR: each trace and the directories of the first failing
cuts are copied there, and "power-cut DIR/<run>/trace --seed N --cut K
--order-ctl ... --work ..." rebuilds one cut exactly."""

import os
import random
import re
import shutil
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run  # noqa: E402
from optest.client import Client  # noqa: E402
from optest.daemons import ORDER_CTL, OP_RECOVER, POWER_CUT, POWERTRACE, System  # noqa: E402
from optest.faults import require_order_ctl  # noqa: E402

# struct pt_rec in tests/check/powertrace.h: magic, type, flags, name_len,
# pid, tid, off, len; host byte order, no padding.
PT_REC = struct.Struct("=IBBHIIQQ")
PT_MAGIC = 0x31547750
PT_WRITE, PT_FLUSH_END, PT_ACK, PT_MARK = b"W"[0], b"E"[0], b"A"[0], b"K"[0]
PT_F_SYNC = 1

CLIENTS = 8
# Each run creates orders for this long, or this many.
NORMAL_SECONDS, NORMAL_ORDERS = 3.0, 4000
LYING_SECONDS, LYING_ORDERS = 1.5, 1500
# Cuts at flush boundaries (spread over them) and at random, for the
# honest disk and, to show a defect is caught, for the lying ones.
BOUNDARY_CUTS, RANDOM_CUTS = 300, 100
LYING_BOUNDARY_CUTS, LYING_RANDOM_CUTS = 150, 50
MIN_CUTS = 200
CANCEL_EVERY = 300
# The "dsync" lie: cancel this often, and check the cuts just after the
# cancels' 200s (at most this many, spread over them).
DSYNC_CANCEL_EVERY, DSYNC_CUTS = 10, 100
# order-api's --journal-size here: the honest run writes about 65 bytes
# per order to the journal, so it wraps this one about twice, while the
# orders it holds unapplied at once (a quarter of a second's, about 30
# KiB here; 64 KiB was never full in trials) leave room for a stall of the
# apply thread of about a second.
JOURNAL_SIZE = 128 << 10
TRACED = "data.mdb lock.mdb journal"


class Trace:
    """The test's side of the trace: one record per write(2) on an
    O_APPEND descriptor, so it lands whole among the daemons' records."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                          0o644)

    def _append(self, type_, off, name=b""):
        rec = PT_REC.pack(PT_MAGIC, type_, 0, len(name), os.getpid(),
                          threading.get_native_id(), off, 0) + name
        if os.write(self.fd, rec) != len(rec):
            fail("a short append to the trace")

    def ack(self, order_id, status=""):
        self._append(PT_ACK, int(order_id[3:]), status.encode())

    def mark(self, label):
        self._append(PT_MARK, 0, label.encode())

    def close(self):
        os.close(self.fd)


def trace_stats(path):
    """Counts by record type, the pids that wrote data.mdb, durable writes;
    the journal's writes, bytes, flushes and wraps (a write at a lower
    offset than the one before) apart; the cuts just after each cancel's
    200 (cut K falls between records K - 1 and K)."""
    stats = {"writes": 0, "sync_writes": 0, "flushes": 0, "acks": 0,
             "writer_pids": set(), "journal_writes": 0, "journal_bytes": 0,
             "journal_flushes": 0, "journal_wraps": 0, "cancel_cuts": []}
    journal_at = 0
    with open(path, "rb") as fh:
        data = fh.read()
    pos = index = 0
    while pos < len(data):
        magic, type_, flags, name_len, pid, _tid, off, length = \
            PT_REC.unpack_from(data, pos)
        if magic != PT_MAGIC:
            fail("trace: no record at byte %d" % pos)
        name = data[pos + PT_REC.size:pos + PT_REC.size + name_len]
        if type_ == PT_WRITE and name == b"data.mdb":
            stats["writes"] += 1
            stats["sync_writes"] += bool(flags & PT_F_SYNC)
            stats["writer_pids"].add(pid)
        elif type_ == PT_WRITE and name == b"journal":
            stats["journal_writes"] += 1
            stats["journal_bytes"] += length
            stats["journal_wraps"] += off < journal_at
            journal_at = off
        elif type_ == PT_FLUSH_END and name == b"journal":
            stats["journal_flushes"] += 1
        elif type_ == PT_FLUSH_END:
            stats["flushes"] += 1
        elif type_ == PT_ACK:
            stats["acks"] += 1
            if name == b"Cancelled":
                stats["cancel_cuts"].append(index + 1)
        pos += PT_REC.size + name_len + length
        index += 1
    return stats


def drive(s, trace, seconds, limit, cancel_every):
    """CLIENTS threads create orders for `seconds` or until `limit` were
    answered; every cancel_every-th
    order of a thread is cancelled at once. Each 201 and each cancel's 200
    goes to the trace after the answer. Returns (created ids, cancelled)."""
    created, cancelled, errors = [], [], []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(i):
        c = Client(s.port, timeout=30)
        n = 0
        try:
            while time.monotonic() < deadline and len(created) < limit:
                n += 1
                r = c.request("POST", "/api/orders/",
                              {"user_id": i + 1, "item_ids": [n % 50 + 1],
                               "total_amount": "%d.25" % (n % 90)},
                              retry=False)
                if r.status != 201:
                    fail("create: %s %r" % (r.status, r.raw[:200]))
                oid = r.body["order_id"]
                trace.ack(oid)
                with lock:
                    created.append(oid)
                if n % cancel_every == 1:
                    r = c.request("POST", "/api/orders/%s/cancel/" % oid,
                                  retry=False)
                    if r.status == 200:
                        trace.ack(oid, "Cancelled")
                        with lock:
                            cancelled.append(oid)
                    elif r.status != 409:
                        fail("cancel %s: %s %r" % (oid, r.status, r.raw[:200]))
        except Exception as e:  # reported by the main thread
            with lock:
                errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
        if t.is_alive():
            fail("a client thread did not finish")
    if errors:
        raise errors[0]
    return created, cancelled


def record(name, lie=None, seconds=NORMAL_SECONDS, limit=NORMAL_ORDERS,
           cancel_every=CANCEL_EVERY):
    """Run both daemons under powertrace on a fresh data directory, drive
    them, stop them. Returns (the System, for the caller's with-block, the
    trace's path, the ids created, the ids cancelled)."""
    s = System(name)
    try:
        tmp = os.path.realpath(s.tmp)
        trace_path = os.path.join(tmp, "trace")
        env = {"LD_PRELOAD": POWERTRACE, "OP_POWER_TRACE": trace_path,
               "OP_POWER_DIR": os.path.join(tmp, "data"),
               "OP_POWER_FILES": TRACED}
        if lie:
            env["OP_POWER_LIE"] = lie
        s.start_api(extra=["--journal-size", str(JOURNAL_SIZE)], env=env)
        s.start_worker(workers=2, pickup_ms=200, processing_ms=100,
                       lease_ms=3000, env=env)
        s.wait_ready()
        trace = Trace(trace_path)
        trace.mark("ready")
        t0 = time.monotonic()
        created, cancelled = drive(s, trace, seconds, limit, cancel_every)
        took = time.monotonic() - t0
        trace.close()
        s.stop_worker()
        s.stop_api()
        print("%s: %d orders created in %.1f s by %d clients, %d cancelled"
              % (name, len(created), took, CLIENTS, len(cancelled)))
        return s, trace_path, created, cancelled
    except BaseException:
        s.__exit__(*sys.exc_info())
        raise


def check_acked(s, created, cancelled):
    """order-ctl check on the data the daemons left: every created order exists,
    every cancelled one is Cancelled."""
    path = os.path.join(s.tmp, "acked.ids")
    with open(path, "w") as fh:
        fh.write("".join("%s\n" % oid for oid in created))
        fh.write("".join("%s Cancelled\n" % oid for oid in cancelled))
    r = subprocess.run([ORDER_CTL, "-c", "/dev/null", "-D", s.datadir, "check",
                        "--expect-ids", path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120)
    if r.returncode != 0:
        fail("order-ctl check of the daemons' own data exited %d:\n%s"
             % (r.returncode, r.stdout[-4000:]))
    print(r.stdout.strip().splitlines()[-1])


def keep(s, trace_path, name):
    """Copy the trace and the failing cuts to $OP_POWER_KEEP/name."""
    where = os.environ.get("OP_POWER_KEEP")
    if not where:
        print("set OP_POWER_KEEP=DIR to keep the trace and the failing cuts")
        return
    dest = os.path.join(where, name)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    shutil.copy(trace_path, dest)
    shutil.copytree(os.path.join(s.tmp, "cuts"), os.path.join(dest, "cuts"))
    print("kept the trace and the failing cuts in %s" % dest)


def power_cut(s, trace_path, seed, what, boundary_cuts=BOUNDARY_CUTS,
              random_cuts=RANDOM_CUTS, cuts=None):
    """Run power-cut on the trace: at flush boundaries and at random, or
    at the cuts given only."""
    work = os.path.join(s.tmp, "cuts")
    os.makedirs(work)
    argv = [POWER_CUT, trace_path, "--order-ctl", ORDER_CTL, "--work", work,
            "--recover", OP_RECOVER, "--rebuilt", "lock.mdb",
            "--sized", "journal=%d" % JOURNAL_SIZE, "--from-mark", "ready",
            "--seed", str(seed), "--jobs", "2", "--keep", "2"]
    if cuts:
        for k in cuts:
            argv += ["--cut", str(k)]
    else:
        argv += ["--boundaries", str(boundary_cuts), "--random",
                 str(random_cuts)]
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=300)
    took = time.monotonic() - t0
    out = r.stdout.splitlines()
    m = re.search(r"^power-cut: (seed=.*)$", r.stdout, re.M)
    if m is None or r.returncode not in (0, 1):
        fail("power-cut exited %d:\n%s\n%s" % (r.returncode, r.stdout[-4000:],
                                                   r.stderr[-2000:]))
    kv = {k: int(v) for k, v in (p.split("=") for p in m.group(1).split())}
    summary = [l for l in out if l.startswith("power-cut: ") and "=" not in l
               and not l.startswith("power-cut: FAIL")
               and not l.startswith("power-cut: kept")]
    fails = [l for l in out if not l.startswith("power-cut: ") or
             l.startswith("power-cut: FAIL") or l.startswith("power-cut: kept")]
    print("%s: power-cut took %.1f s" % (what, took))
    for l in summary:
        print("    " + l)
    return r.returncode, kv, fails


def check_honest(seed):
    s, trace_path, created, cancelled = record("power")
    with s:
        # The data as the daemons left it: everything acknowledged is there.
        check_acked(s, created, cancelled)
        st = trace_stats(trace_path)
        print("trace: %d writes to data.mdb (%d durable on return) from %d "
              "processes, %d flushes of LMDB's files; %d journal writes "
              "(%d bytes, %d wraps), %d journal flushes; %d acknowledgements"
              % (st["writes"], st["sync_writes"], len(st["writer_pids"]),
                 st["flushes"], st["journal_writes"], st["journal_bytes"],
                 st["journal_wraps"], st["journal_flushes"], st["acks"]))
        if st["acks"] != len(created) + len(cancelled):
            fail("%d acknowledgements in the trace for %d answers"
                 % (st["acks"], len(created) + len(cancelled)))
        if len(st["writer_pids"]) < 2:
            fail("only %d process wrote data.mdb: the workers' commits "
                 "are missing from the trace" % len(st["writer_pids"]))
        if st["flushes"] == 0 or st["sync_writes"] == 0:
            fail("no flushes or no O_DSYNC writes traced: %r" % st)
        if st["journal_writes"] == 0 or st["journal_flushes"] == 0:
            fail("no journal writes or flushes traced: %r" % st)
        if st["journal_wraps"] == 0:
            fail("the journal did not wrap: %d bytes written to %d, %d "
                 "orders created" % (st["journal_bytes"], JOURNAL_SIZE,
                                     len(created)))
        if not cancelled:
            fail("no cancel succeeded: the trace has no Cancelled order")
        rc, kv, fails = power_cut(s, trace_path, seed, "honest disk")
        for l in fails[:60]:
            print(l)
        print("honest disk: %d cuts checked (%d at flush boundaries), %d "
              "flushes seen, %d writes seen, orders required per cut "
              "min %d / median %d / max %d, %d cuts held orders only in the "
              "journal (%d in all), %d failures"
              % (kv["cuts"], kv["boundary_cuts"], kv["flushes"], kv["writes"],
                 kv["required_min"], kv["required_median"],
                 kv["required_max"], kv["recovered_cuts"],
                 kv["recovered_orders"], kv["failures"]))
        if kv["cuts"] < MIN_CUTS:
            fail("only %d cuts checked, expected at least %d"
                 % (kv["cuts"], MIN_CUTS))
        if kv["required_max"] < len(created) // 2:
            fail("at most %d orders required at a cut, of %d created"
                 % (kv["required_max"], len(created)))
        if rc != 0 or kv["failures"] != 0:
            keep(s, trace_path, "power")
            fail("%d of %d cuts failed (%d lost acknowledged orders); "
                 "replay with OP_POWER_SEED=%d" % (kv["failures"], kv["cuts"],
                                                   kv["lost_orders"], seed))
        if kv["recovered_cuts"] == 0:
            fail("no cut held an order that only the journal had: the "
                 "recovery was never put to the test")


def check_lying(seed, lie, what):
    s, trace_path, _created, cancelled = record(
        "power-lie", lie=lie, seconds=LYING_SECONDS, limit=LYING_ORDERS,
        cancel_every=DSYNC_CANCEL_EVERY if lie == "dsync" else CANCEL_EVERY)
    with s:
        st = trace_stats(trace_path)
        # What each defect leaves in the trace: no flushes nor durable
        # writes; no durable writes; no journal flushes.
        want = {"1": (False, False, False), "dsync": (True, False, True),
                "journal": (True, True, False)}[lie]
        got = (st["flushes"] > 0, st["sync_writes"] > 0,
               st["journal_flushes"] > 0)
        if got != want or st["journal_writes"] == 0:
            fail("OP_POWER_LIE=%s: %d flushes of LMDB's files, %d O_DSYNC "
                 "writes, %d journal writes and %d journal flushes traced"
                 % (lie, st["flushes"], st["sync_writes"],
                    st["journal_writes"], st["journal_flushes"]))
        cuts = None
        if lie == "dsync":
            after = st["cancel_cuts"]
            if len(after) < 20:
                fail("%s: only %d cancels answered 200 (%d orders "
                     "cancelled): too few cuts where the defect shows"
                     % (what, len(after), len(cancelled)))
            step = max(1, len(after) // DSYNC_CUTS)
            cuts = after[::step][:DSYNC_CUTS]
        rc, kv, fails = power_cut(s, trace_path, seed, what,
                                  LYING_BOUNDARY_CUTS, LYING_RANDOM_CUTS,
                                  cuts)
        print("%s: %d cuts checked, %d flushes seen, %d writes seen, "
              "%d failures: %d cuts lost acknowledged orders (%d in all), "
              "%d other" % (what, kv["cuts"], kv["flushes"], kv["writes"],
                            kv["failures"], kv["lost_cuts"], kv["lost_orders"],
                            kv["other_failures"]))
        shown = [l for l in fails if re.search(r" [1-9][0-9]* lost; order-ctl check", l)][:1]
        for l in shown:
            print("    e.g. " + l)
        if rc != 1 or kv["lost_cuts"] == 0:
            keep(s, trace_path, "power-lie-%s" % lie)
            fail("%s: no cut lost an acknowledged order (exit %d): "
                 "power-cut cannot catch the defect; replay with "
                 "OP_POWER_SEED=%d" % (what, rc, seed))


def main():
    require_order_ctl()
    for path in POWERTRACE.split() + [POWER_CUT, OP_RECOVER]:
        if not os.access(path, os.R_OK):
            sys.stderr.write("not built: %s\n" % path)
            sys.exit(77)
    seed = int(os.environ.get("OP_POWER_SEED") or random.randrange(1, 10 ** 12))
    print("seed %d (OP_POWER_SEED sets it)" % seed)
    check_honest(seed)
    check_lying(seed, "1", "lying disk (no flushes)")
    check_lying(seed, "dsync", "lying disk (meta page not synced)")
    check_lying(seed, "journal", "lying disk (journal not flushed)")


if __name__ == "__main__":
    run(main)
