#!/usr/bin/env python3
"""order-ctl against the real daemons on a temporary data directory.

- status: its numbers equal the API's /api/orders/metrics/ once orders
  complete; the worker's heartbeat, map use, order-api running.
- show and list: the same JSON as the API's order and list (filters,
  limit, after, next, newest first), an order by ORD123 and by 123; an unknown id is
  exit 1.
- cancel: a Pending order (no worker running) becomes Cancelled and the
  API agrees; a Completed or Cancelled one is refused, exit 1.
- requeue: an order held in Processing by a live worker (a long
  processing time, a long lease) goes back to Pending, the note says the
  lease had not lapsed, released_total moves by one; the live worker's
  finish of its old claim is a no-op, the order is claimed again and
  completes once (attempts 2, completed_total counts it once). Requeue of
  a Completed order: exit 1.
- journaled orders: with LMDB's writer lock held (writer-hold), creates
  are answered from the journal; status counts them and says order-api
  runs, show marks them "accepted, not yet applied", cancel waits about
  2 s and gives up (exit 1). With order-api killed (SIGKILL) the journal
  keeps them: status says order-api is not running, cancel refuses
  ("start order-api ..."); once order-api starts they are applied and
  cancel works.
- check: consistent while the daemons run under load; with orders in the
  journal only, it says how many it could not see; --expect-total N
  passes for the right N and is a mismatch (exit 1) for another.
- errors: a missing data directory, a lock.mdb the user cannot write (as
  nobody), an older schema read only, bad usage (exit 2 each).
- backup under load (a client creating orders), an existing FILE refused
  without --force; restored into a new directory: order-ctl check passes, it
  holds every order applied before the backup began, order-api starts on
  it with no journal file, every order in it completes, new creates get
  ids above the backup's.
Ends with order-ctl check on the data directory.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest import procs  # noqa: E402
from optest.checks import expect, fail, run, wait_until  # noqa: E402
from optest.daemons import ORDER_CTL, System, require_built  # noqa: E402
from optest.faults import (Poster, WriterHold, metric, ctl_check,  # noqa: E402
                           require_order_ctl, require_writer_hold)


def ctl(datadir, *args, expect_rc=0, user=None):
    """Run order-ctl -D datadir args; check its exit status; returns the
    CompletedProcess."""
    argv = [ORDER_CTL, "-c", "/dev/null", "-D", datadir] + list(args)
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user,
                "--clear-groups"] + argv
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    if expect_rc is not None and r.returncode != expect_rc:
        fail("order-ctl %s: exit %d, expected %d\nstdout: %s\nstderr: %s"
             % (" ".join(args), r.returncode, expect_rc, r.stdout, r.stderr))
    return r


def ctl_json(datadir, *args):
    return json.loads(ctl(datadir, *args).stdout)


def meta_value(datadir, key):
    """A number of meta (journal_lsn, schema_version) of the environment
    in datadir, read with mdb_dump (lmdb-utils), apart from the store; 0
    if absent."""
    mdb_dump = shutil.which("mdb_dump")
    if mdb_dump is None:
        fail("mdb_dump (lmdb-utils) is not installed")
    out = subprocess.run([mdb_dump, "-s", "meta", datadir], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.splitlines()
    body = [line.strip() for line in out if line.startswith(" ")]
    for k, value in zip(body[0::2], body[1::2]):
        if bytes.fromhex(k) == key.encode():
            return int.from_bytes(bytes.fromhex(value), "little")
    return 0


def part_status_show_list(s):
    ids = [s.create_order(user_id=10 + i % 3, item_ids=(i + 1, 500),
                          total_amount="%d.25" % (i + 1)) for i in range(12)]
    wait_until(lambda: all(s.status(o) == "Completed" for o in ids), 30,
               "12 orders to complete")
    m = s.metrics()
    st = ctl_json(s.datadir, "status", "--json")
    print("status --json: %r" % st)
    for k in ("total_orders", "order_status_count", "average_processing_time_seconds"):
        expect(st[k] == m[k], "status %s %r, API %r" % (k, st[k], m[k]))
    expect(st["completed_total"] == m["total_orders_processed"] == 12, (st, m))
    expect(st["created_total"] == 12 and st["next_id"] == 13, st)
    expect(st["oldest_pending"] is None and st["oldest_processing"] is None, st)
    expect(st["worker_heartbeat_age_seconds"] is not None and
           0 <= st["worker_heartbeat_age_seconds"] < 10, st)
    expect(0 < st["map_used_bytes"] < st["map_size_bytes"], st)
    expect(st["journaled_not_applied"] == 0 and st["order_api_running"] is True, st)
    text = ctl(s.datadir, "status").stdout
    print(text)
    for want in ("orders: 12 (created 12, completed 12)", "Completed   12",
                 "worker: last seen", "order-api: running"):
        expect(want in text, "status lacks %r:\n%s" % (want, text))

    for oid in (ids[0], ids[7]):
        api = s.order(oid)
        mine = ctl_json(s.datadir, "show", "--json", oid)
        expect(mine == api, "show %s: %r, API %r" % (oid, mine, api))
        expect(ctl_json(s.datadir, "show", "--json", oid[3:]) == api, oid)
    text = ctl(s.datadir, "show", ids[0]).stdout
    expect(text.startswith(ids[0] + "\n") and "status     Completed" in text, text)
    r = ctl(s.datadir, "show", "ORD999", expect_rc=1)
    expect("no order ORD999" in r.stderr, r.stderr)

    queries = [([], ""), (["--limit", "5"], "limit=5"),
               (["--status", "Completed", "--limit", "4", "--after", ids[2]],
                "status=Completed&limit=4&after=" + ids[2]),
               (["--user", "11"], "user_id=11"),
               (["--user", "12", "--status", "Completed", "--limit", "2"],
                "user_id=12&status=Completed&limit=2"),
               (["--status", "Pending"], "status=Pending"),
               (["--order", "desc", "--limit", "5"], "order=desc&limit=5"),
               (["--order", "desc", "--status", "Completed", "--limit", "3", "--after",
                 ids[9]], "order=desc&status=Completed&limit=3&after=" + ids[9]),
               (["--order", "desc", "--user", "12", "--after", ids[9]],
                "order=desc&user_id=12&after=" + ids[9]),
               (["--order", "asc", "--limit", "2"], "order=asc&limit=2")]
    for args, query in queries:
        api = s.request("GET", "/api/orders/?" + query).body
        mine = ctl_json(s.datadir, "list", "--json", *args)
        expect(mine == api, "list %r: %r\nAPI: %r" % (args, mine, api))
    text = ctl(s.datadir, "list", "--limit", "3").stdout
    lines = text.splitlines()
    expect(lines[0].split()[:3] == ["ID", "USER", "STATUS"] and len(lines) == 5 and
           lines[1].split()[:3] == [ids[0], "10", "Completed"] and "--after ORD3" in lines[4],
           text)
    print("show and list agree with the API on %d orders" % len(ids))
    return ids


def part_cancel(s, done):
    s.stop_worker()
    pend = [s.create_order(user_id=20) for _ in range(3)]
    r = ctl(s.datadir, "cancel", pend[1])
    expect(r.stdout.strip() == "%s cancelled (was Pending)" % pend[1], r.stdout)
    expect(s.status(pend[1]) == "Cancelled", s.status(pend[1]))
    expect(s.metrics()["order_status_count"]["Cancelled"] == 1, s.metrics())
    r = ctl(s.datadir, "cancel", done[0], expect_rc=1)
    expect("%s is Completed; only a Pending order can be cancelled" % done[0] in r.stderr,
           r.stderr)
    r = ctl(s.datadir, "cancel", pend[1], expect_rc=1)
    expect("is Cancelled" in r.stderr, r.stderr)
    expect(s.status(done[0]) == "Completed", done[0])
    st = ctl_json(s.datadir, "status", "--json")
    expect(st["oldest_pending"]["order_id"] == pend[0], st)
    print("cancel: %s Cancelled, the API agrees; Completed and Cancelled refused" % pend[1])
    return [pend[0], pend[2]]


def part_requeue(s, pending):
    released = metric(s, "released_total")
    s.start_worker(workers=1, pickup_ms=0, processing_ms=3000, lease_ms=60000)
    wait_until(lambda: all(s.status(o) == "Processing" for o in pending), 10,
               "%r to be Processing" % pending)
    oid = pending[0]
    st = ctl_json(s.datadir, "status", "--json")
    expect(st["oldest_processing"]["order_id"] == oid, st)
    r = ctl(s.datadir, "requeue", oid)
    print(r.stdout.strip(), "/", r.stderr.strip())
    expect(r.stdout.strip() == "%s requeued: Processing (attempt 1) -> Pending" % oid,
           r.stdout)
    expect("lease had not lapsed" in r.stderr, r.stderr)
    expect(metric(s, "released_total") == released + 1, "released_total")
    # The live worker's finish of attempt 1 is a no-op; the next claim
    # (attempt 2) completes it.
    wait_until(lambda: s.status(oid) == "Completed", 20, "%s to complete" % oid)
    wait_until(lambda: s.status(pending[1]) == "Completed", 20, "%s" % pending[1])
    o = ctl_json(s.datadir, "show", "--json", oid)
    expect(o["status"] == "Completed", o)
    text = ctl(s.datadir, "show", oid).stdout
    expect("attempts   2" in text, text)
    r = ctl(s.datadir, "requeue", oid, expect_rc=1)
    expect("%s is Completed; only a Processing order can be requeued" % oid in r.stderr,
           r.stderr)
    m = s.metrics()
    expect(m["total_orders_processed"] == m["order_status_count"]["Completed"] == 14, m)
    s.stop_worker()
    print("requeue: %s back to Pending under a live lease, completed once "
          "(attempt 2); metrics %r" % (oid, m))


def part_journaled(s):
    with WriterHold(s.datadir):
        jids = [s.create_order(user_id=30) for _ in range(3)]
        st = ctl_json(s.datadir, "status", "--json")
        expect(st["journaled_not_applied"] == 3 and st["order_api_running"], st)
        expect(st["oldest_pending"]["order_id"] == jids[0] and
               st["order_status_count"]["Pending"] == 3, st)
        expect(st["total_orders"] == s.metrics()["total_orders"], (st, s.metrics()))
        text = ctl(s.datadir, "show", jids[1]).stdout
        expect("Pending (accepted, not yet applied: order-api applies it within "
               "a moment)" in text, text)
        r = ctl(s.datadir, "show", "--json", jids[1])
        o = json.loads(r.stdout)
        expect(o["order_id"] == jids[1] and o["status"] == "Pending" and
               o["user_id"] == 30, o)
        # check reads LMDB: consistent, and it names what it could not see.
        r = ctl(s.datadir, "check")
        expect("check: 3 orders from %s on are in order-api's journal and not yet "
               "in LMDB, so not checked" % jids[0] in r.stdout, r.stdout)
        s.kill_api()
    # The journal holds them; nobody applies them.
    text = ctl(s.datadir, "status").stdout
    expect("journal: 3 orders accepted" in text and "when it starts" in text and
           "order-api: not running" in text, text)
    r = ctl(s.datadir, "cancel", jids[0], expect_rc=1)
    expect(r.stderr.strip() == "order-ctl: %s is accepted but not yet applied; start "
           "order-api, which applies it, then retry" % jids[0], r.stderr)
    text = ctl(s.datadir, "show", jids[0]).stdout
    expect("applies it at start" in text, text)
    s.start_api()
    expect(ctl_json(s.datadir, "status", "--json")["journaled_not_applied"] == 0, "applied")
    r = ctl(s.datadir, "cancel", jids[0])
    expect(s.status(jids[0]) == "Cancelled", jids[0])
    print("journaled: 3 orders shown from the journal, cancel refused while "
          "order-api was down, applied and cancelled after its start")

    # A running order-api that cannot apply: cancel waits, then gives up
    # and changes nothing.
    with WriterHold(s.datadir):
        jid = s.create_order(user_id=31)
        r = ctl(s.datadir, "cancel", jid, expect_rc=1)
        expect("order-ctl: %s is accepted but order-api did not apply it within 2000 ms"
               % jid in r.stderr, r.stderr)
    wait_until(lambda: s.status(jid) == "Pending", 10, "%s applied, still Pending" % jid)
    return jids[1:] + [jid]


def part_errors(s):
    missing = os.path.join(s.tmp, "nothing-here")
    r = ctl(missing, "status", expect_rc=1)
    expect(r.stderr.startswith("order-ctl: no LMDB environment in %s: %s/data.mdb: No such "
                               "file or directory" % (missing, missing)), r.stderr)
    expect(not os.path.exists(missing), "order-ctl created %s" % missing)
    # A copy the user nobody may read but not lock (lock.mdb 0660 root).
    ro = os.path.join(s.tmp, "perm")
    os.mkdir(ro)
    ctl(s.datadir, "backup", os.path.join(ro, "data.mdb"))
    ctl(ro, "status")
    os.chmod(s.tmp, 0o755)
    os.chmod(ro, 0o755)
    os.chmod(os.path.join(ro, "data.mdb"), 0o644)
    os.chmod(os.path.join(ro, "lock.mdb"), 0o660)
    r = ctl(ro, "status", expect_rc=1, user=65534)
    expect("Permission denied" in r.stderr and "lock.mdb" in r.stderr and
           "sudo -u order-processing order-ctl status" in r.stderr, r.stderr)
    print("permission: %s" % r.stderr.strip())
    # An older schema (3, marked with mdb_load on a copy): refused read
    # only, left as it is.
    old = os.path.join(s.tmp, "old")
    os.mkdir(old)
    ctl(s.datadir, "backup", os.path.join(old, "data.mdb"))
    dump = os.path.join(s.tmp, "meta.dump")
    with open(dump, "w") as f:
        f.write("VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n %s\n 03000000\n"
                "DATA=END\n" % b"schema_version".hex())
    subprocess.run([shutil.which("mdb_load"), "-s", "meta", "-f", dump, old], check=True)
    r = ctl(old, "status", expect_rc=1)
    expect(r.stderr.strip() == "order-ctl: could not open the LMDB environment in %s: its "
           "schema is older than version 5, and order-ctl does not upgrade it: start "
           "order-api once, which does" % old, r.stderr)
    r = ctl(old, "cancel", "1", expect_rc=1)
    expect("start order-api once" in r.stderr, r.stderr)
    expect(meta_value(old, "schema_version") == 3, "order-ctl changed the schema")
    for args in ([], ["frob"], ["--bogus", "status"], ["status", "extra"],
                 ["show"], ["show", "ABC"], ["show", "ORD0"], ["list", "--limit", "0"],
                 ["list", "--limit", "1001"], ["list", "--status", "Done"],
                 ["list", "--user", "x"], ["list", "--after", "X1"], ["list", "--nope"],
                 ["list", "--order", "newest"], ["list", "--after", "ORD0"],
                 ["cancel"], ["cancel", "1", "2"], ["requeue", "--force", "1"],
                 ["backup"], ["backup", "--nope", "f"], ["check", "extra"],
                 ["check", "--expect-total", "x"], ["check", "--expect-total"],
                 ["check", "--expect-ids", missing]):
        r = ctl(s.datadir, *args, expect_rc=2)
        expect(r.stderr.startswith("order-ctl") and r.stdout == "", (args, r.stderr))
    r = ctl(s.datadir, "--help")
    for cmd in ("status", "show", "list", "cancel", "requeue", "check", "backup"):
        expect("\n  %s " % cmd in r.stdout, r.stdout)
    # check's expectations: the right total passes, another is a mismatch.
    total = s.metrics()["total_orders"]
    ctl(s.datadir, "check", "--expect-total", str(total))
    r = ctl(s.datadir, "check", "--expect-total", str(total + 1), expect_rc=1)
    expect("check: %d orders, expected %d" % (total, total + 1) in r.stdout, r.stdout)
    print("errors: missing data dir, permission, older schema and 24 bad usages; "
          "check's --expect-total")


def part_backup(s, done):
    s.start_worker(workers=2, pickup_ms=0, processing_ms=20, lease_ms=5000)
    poster = Poster(s, threads=2, user_id=40).start()
    poster.wait_for(100)
    # Applied, not only journaled: LMDB's next_id past 100.
    before = wait_until(lambda: (lambda n: n if n > 100 else None)(
        ctl_json(s.datadir, "status", "--json")["next_id"]), 10, "100 orders applied")
    path = os.path.join(s.tmp, "backup.mdb")
    r = ctl(s.datadir, "backup", path)
    print(r.stdout.strip())
    # check while both daemons work: one snapshot, consistent.
    ctl_check(s.datadir)
    poster.wait_for(poster.count() + 50)
    poster.stop()
    r = ctl(s.datadir, "backup", path, expect_rc=1)
    expect("it exists (--force replaces it)" in r.stderr, r.stderr)
    expect(not os.path.exists(path + ".tmp"), "a .tmp left behind")
    jepsen = [o for o in poster.acked]
    wait_until(lambda: all(s.status(o) == "Completed" for o in jepsen), 60,
               "the load's orders to complete")

    with System("ctl-restore") as t:
        os.makedirs(t.datadir)
        shutil.copyfile(path, os.path.join(t.datadir, "data.mdb"))
        expect(not os.path.exists(os.path.join(t.datadir, "journal")), "journal")
        ctl_check(t.datadir)
        lsn = meta_value(t.datadir, "journal_lsn")
        expect(lsn > 0, "the backup records journal_lsn %d" % lsn)
        st = ctl_json(t.datadir, "status", "--json")
        last = st["next_id"] - 1
        expect(last >= before - 1, "backup ends at ORD%d, but ORD%d was applied "
               "before it began" % (last, before - 1))
        have, after = [], None
        while True:
            page = ctl_json(t.datadir, "list", "--json", "--limit", "1000",
                            *(["--after", after] if after else []))
            have += page["results"]
            after = page["next"]
            if after is None:
                break
        ids = [int(o["order_id"][3:]) for o in have]
        expect(ids == list(range(1, last + 1)), "the backup holds ORD1..ORD%d: %d orders"
               % (last, len(ids)))
        t.start_api()
        t.start_worker(workers=2, pickup_ms=0, processing_ms=20, lease_ms=5000)
        cancelled = {o["order_id"] for o in have if o["status"] == "Cancelled"}
        left = [o["order_id"] for o in have if o["order_id"] not in cancelled]
        wait_until(lambda: all(t.status(o) == "Completed" for o in left), 60,
                   "every order of the backup to complete")
        new = [t.create_order(user_id=50) for _ in range(5)]
        expect(all(int(o[3:]) > last for o in new), "new ids %r not above ORD%d" % (new, last))
        wait_until(lambda: all(t.status(o) == "Completed" for o in new), 20, "new orders")
        m = t.metrics()
        expect(m["total_orders"] == last + 5 and
               m["order_status_count"]["Cancelled"] == len(cancelled), m)
        t.stop_worker()
        t.stop_api()
        ctl_check(t.datadir)
        print("backup under load (%d creates): ORD1..ORD%d restored (journal_lsn %d, no "
              "journal file), %d Cancelled kept, the rest completed; new creates from ORD%d"
              % (len(poster.acked), last, lsn, len(cancelled), last + 1))
    s.stop_worker()


def main():
    require_built()
    require_built(ORDER_CTL)
    require_order_ctl()
    require_writer_hold()
    with System("ctl") as s:
        s.start_api()
        s.start_worker(workers=1, pickup_ms=0, processing_ms=50, lease_ms=5000)
        done = part_status_show_list(s)
        pending = part_cancel(s, done)
        part_requeue(s, pending)
        part_journaled(s)
        part_errors(s)
        part_backup(s, done)
        s.stop_api()
        ctl_check(s.datadir)


if __name__ == "__main__":
    run(main)
