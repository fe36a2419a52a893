#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python 3 standard library only; the frequent
small HTTP requests are made by run.sh itself, Python being slow to start on
a loaded machine).

  util.py mq-unlink NAME...             mq_unlink each queue (missing is fine)
  util.py rss OUT PID...                every 0.2 s, sum VmRSS and RssAnon over
                                        each PID and its descendants; keep the
                                        maxima in OUT as "vmrss_kib anon_kib nproc";
                                        stops on SIGTERM or when every PID is gone
  util.py table RESULTS                 print the table; exit 1 if any case broke
"""

import ctypes
import errno
import os
import signal
import sys
import time


def die(msg, code=2):
    sys.stderr.write("util.py: %s\n" % msg)
    sys.exit(code)


# ------------------------------------------------------------------ queues

def mq_unlink(names):
    librt = ctypes.CDLL("librt.so.1", use_errno=True)
    librt.mq_unlink.argtypes = [ctypes.c_char_p]
    librt.mq_unlink.restype = ctypes.c_int
    rc = 0
    for name in names:
        if librt.mq_unlink(name.encode()) != 0:
            e = ctypes.get_errno()
            if e != errno.ENOENT:
                sys.stderr.write("util.py: mq_unlink(%s): %s\n" % (name, os.strerror(e)))
                rc = 1
    sys.exit(rc)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return False
    return data[data.rfind(")") + 2:].split()[0] not in ("Z", "X")


# ------------------------------------------------------------------ RSS

def children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        if len(rest) >= 2:
            kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def tree(pids):
    kids = children_map()
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def status_kib(pid):
    vm = anon = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    vm = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return vm, anon


def rss(out, pids):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    best = [0, 0, 0]
    while not stop:
        live = [p for p in pids if alive(p)]
        if not live:
            break
        procs = tree(live)
        vm = anon = 0
        for p in procs:
            v, a = status_kib(p)
            vm += v
            anon += a
        if vm > best[0]:
            best = [vm, max(best[1], anon), len(procs)]
        best[1] = max(best[1], anon)
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d %d\n" % tuple(best))
        os.replace(tmp, out)
        time.sleep(0.2)


# ------------------------------------------------------------------ report

def table(results_path):
    rows = []
    with open(results_path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            fields = line.split("\t")
            fields += [""] * (9 - len(fields))
            rows.append(dict(zip(("case", "conns", "state", "rps", "p50", "p99",
                                  "ref", "target", "note"), fields)))

    def ceiling(ref, conns):
        vals = [float(r["rps"]) for r in rows
                if r["ref"] == "ceiling:" + ref and r["conns"] == conns and r["state"] == "OK"]
        broken = [r for r in rows
                  if r["ref"] == "ceiling:" + ref and r["conns"] == conns and r["state"] != "OK"]
        if broken or not vals:
            return None
        return sum(vals) / len(vals)

    broken = 0
    out = []
    header = ("case", "conns", "req/s", "p50 ms", "p99 ms", "ratio", "target", "note")
    ratios = {}
    for r in rows:
        if r["state"] != "OK":
            broken += 1
            out.append((r["case"], r["conns"], "BROKEN", "", "", "", "", r["state"][len("BROKEN"):].strip(": ") or r["note"]))
            continue
        rps = float(r["rps"])
        ratio = ""
        verdict = ""
        if r["ref"] in ("get", "post"):
            c = ceiling(r["ref"], r["conns"])
            if c:
                ratio_v = rps / c
                ratios[r["case"]] = ratio_v
                ratio = "%.2f" % ratio_v
                if r["target"]:
                    verdict = "%s %s" % (r["target"], "ok" if ratio_v >= float(r["target"].lstrip(">=")) else "MISS")
            else:
                ratio = "-"
        elif r["ref"].startswith("ceiling:"):
            ratio = "(ceiling)"
        else:
            verdict = r["target"]
        p50 = "%.2f" % (float(r["p50"]) / 1000.0) if r["p50"] not in ("", "-") else "-"
        p99 = "%.2f" % (float(r["p99"]) / 1000.0) if r["p99"] not in ("", "-") else "-"
        out.append((r["case"], r["conns"], "%.0f" % rps, p50, p99, ratio, verdict, r["note"]))

    widths = [max(len(str(x[i])) for x in [header] + out) for i in range(len(header))]
    def fmt(x):
        return "  ".join(str(v).ljust(widths[i]) if i in (0, 6, 7) else str(v).rjust(widths[i])
                         for i, v in enumerate(x)).rstrip()
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for x in out:
        print(fmt(x))

    few, many = ratios.get("metrics, ~1k orders"), None
    for k, v in ratios.items():
        if k.startswith("metrics,") and k != "metrics, ~1k orders":
            many = v
    if few and many:
        q = many / few
        print("\nmetrics many/1k: %.2f (target >= 0.9: %s)" % (q, "ok" if q >= 0.9 else "MISS"))

    # ceiling drift between the opening and closing measurements
    for ref in ("get", "post"):
        for conns in sorted({r["conns"] for r in rows if r["ref"] == "ceiling:" + ref}):
            vals = [float(r["rps"]) for r in rows
                    if r["ref"] == "ceiling:" + ref and r["conns"] == conns and r["state"] == "OK"]
            if len(vals) == 2 and min(vals) > 0 and max(vals) / min(vals) > 1.3:
                print("warning: the ceiling %s at %s connections moved %.0f -> %.0f req/s during the "
                      "run: the machine is busy, ratios are rough" % (ref.upper(), conns, vals[0], vals[1]))

    if broken:
        sys.exit(1)


def main(argv):
    if len(argv) < 2:
        die(__doc__.strip())
    cmd, args = argv[1], argv[2:]
    if cmd == "mq-unlink":
        mq_unlink(args)
    elif cmd == "rss" and len(args) >= 2:
        rss(args[0], [int(p) for p in args[1:]])
    elif cmd == "table" and len(args) == 1:
        table(args[0])
    else:
        die("bad command line: %r" % argv[1:])


if __name__ == "__main__":
    main(sys.argv)
