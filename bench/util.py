#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python 3 standard library only; the frequent
small HTTP requests are made by run.sh itself, Python being slow to start on
a loaded machine).

  util.py mq-unlink NAME...             mq_unlink each queue (missing is fine)
  util.py rss OUT PID...                every 0.2 s, sum VmRSS and RssAnon over
                                        each PID and its descendants; keep the
                                        maxima in OUT as "vmrss_kib anon_kib nproc";
                                        stops on SIGTERM or when every PID is gone
  util.py rounds ROUNDS                 the cases run in rounds, as RESULTS rows:
                                        the medians of the rounds, and for a case
                                        with a pair (create: Redis) the median,
                                        min and max of the per-round ratios
  util.py table RESULTS                 print the table; exit 1 if any case broke
  util.py wrap                          stdin to stdout, wrapped at 100 columns,
                                        "- " items with a hanging indent
"""

import os
import signal
import statistics
import sys
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))

from optest import procs  # noqa: E402


def die(msg, code=2):
    sys.stderr.write("util.py: %s\n" % msg)
    sys.exit(code)


# ------------------------------------------------------------------ queues

def mq_unlink(names):
    from optest.daemons import unlink_queue
    rc = 0
    for name in names:
        if unlink_queue(name) != 0:
            rc = 1
    sys.exit(rc)


# ------------------------------------------------------------------ RSS

def rss(out, pids):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    best = [0, 0, 0]
    while not stop:
        live = [p for p in pids if procs.alive(p)]
        if not live:
            break
        vm, anon, nproc = procs.rss(live)
        if vm > best[0]:
            best = [vm, max(best[1], anon), nproc]
        best[1] = max(best[1], anon)
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d %d\n" % tuple(best))
        os.replace(tmp, out)
        time.sleep(0.2)


# ------------------------------------------------------------------ rounds

ROUND_FIELDS = ("round", "case", "conns", "state", "rps", "p50", "p99", "ref", "target",
                "note", "pair")


def read_tsv(path, fields):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            values = line.split("\t")
            values += [""] * (len(fields) - len(values))
            rows.append(dict(zip(fields, values)))
    return rows


def rounds(path):
    """Print one RESULTS row per (case, conns) of the rounds file: BROKEN if
    any round broke, SKIPPED if skipped, else the medians over the rounds."""
    rows = read_tsv(path, ROUND_FIELDS)
    keys = []
    by_key = {}
    for r in rows:
        k = (r["case"], r["conns"])
        if k not in by_key:
            keys.append(k)
            by_key[k] = []
        by_key[k].append(r)
    cell = {(r["case"], r["conns"], r["round"]): r for r in rows}

    for case, conns in keys:
        rs = by_key[(case, conns)]
        broken = [r for r in rs if r["state"].startswith("BROKEN")]
        skipped = [r for r in rs if r["state"].startswith("SKIPPED")]
        if broken:
            why = broken[0]["state"][len("BROKEN"):].strip(": ")
            more = " (and %d more round(s))" % (len(broken) - 1) if len(broken) > 1 else ""
            state = "BROKEN: round %s: %s%s" % (broken[0]["round"], why, more)
            print("\t".join((case, conns, state) + ("",) * 7))
            continue
        if skipped:
            print("\t".join((case, conns, skipped[0]["state"]) + ("",) * 7))
            continue
        rps = [float(r["rps"]) for r in rs]
        med = statistics.median(rps)
        # the round at the median (the lower middle one of an even count)
        mid = sorted(rs, key=lambda r: float(r["rps"]))[(len(rs) - 1) // 2]
        note = mid["note"]
        if len(rs) > 1:
            note = "median of %d rounds (%s req/s); round %s: %s" % (
                len(rs), ", ".join("%.0f" % v for v in rps), mid["round"], note)
        vs = ""
        if rs[0]["pair"]:
            ratios = []
            for r in rs:
                other = cell.get((rs[0]["pair"], conns, r["round"]))
                if other and other["state"] == "OK" and float(other["rps"]) > 0:
                    ratios.append(float(r["rps"]) / float(other["rps"]))
            if ratios:
                vs = "%.4f %.4f %.4f %d" % (statistics.median(ratios), min(ratios), max(ratios),
                                            len(ratios))
        print("\t".join((case, conns, "OK", "%.1f" % med,
                         "%.0f" % statistics.median(float(r["p50"]) for r in rs),
                         "%.0f" % statistics.median(float(r["p99"]) for r in rs),
                         rs[0]["ref"], rs[0]["target"], note, vs)))


def wrap():
    text = sys.stdin.read()
    if text.endswith("\n"):
        text = text[:-1]
    for line in text.split("\n"):
        if line.startswith("- "):
            print(textwrap.fill(line, 100, subsequent_indent="  ", break_on_hyphens=False))
        else:
            print(textwrap.fill(line, 100, break_on_hyphens=False) if line else "")


# ------------------------------------------------------------------ report

RESULT_FIELDS = ("case", "conns", "state", "rps", "p50", "p99", "ref", "target", "note", "vs")


def verdicts(target, ratio, vs):
    """The target column: TARGET is ';'-separated parts, each ">=X" (the
    ratio to the ceiling), "redis>=X" (the median ratio to Redis) or
    "LABEL=ok|MISS" (decided by run.sh); a part that could not be measured
    says '-'."""
    out = []
    for part in target.split(";"):
        part = part.strip()
        if not part:
            continue
        if part.startswith(">="):
            have, label, want = ratio, part, float(part[2:])
        elif part.startswith("redis>="):
            have, label, want = vs, "Redis " + part[len("redis"):], float(part[len("redis>="):])
        elif "=" in part:
            label, v = part.rsplit("=", 1)
            out.append("%s %s" % (label, v))
            continue
        else:
            out.append(part)
            continue
        out.append("%s %s" % (label, "-" if have is None else "ok" if have >= want else "MISS"))
    return ", ".join(out)


def table(results_path):
    rows = read_tsv(results_path, RESULT_FIELDS)

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
    header = ("case", "conns", "req/s", "p50 ms", "p99 ms", "ratio", "vs Redis", "target", "note")
    ratios = {}
    for r in rows:
        if r["state"] != "OK":
            word = "SKIPPED" if r["state"].startswith("SKIPPED") else "BROKEN"
            if word == "BROKEN":
                broken += 1
            why = r["state"][len(word):].strip(": ") or r["note"]
            out.append((r["case"], r["conns"], word, "", "", "", "", "", why))
            continue
        rps = float(r["rps"])
        ratio = ""
        ratio_v = None
        vs = ""
        vs_v = None
        if r["vs"]:
            med, lo, hi, _n = r["vs"].split()
            vs_v = float(med)
            vs = "%.2f (%.2f..%.2f)" % (vs_v, float(lo), float(hi))
        elif r["target"] and "redis>=" in r["target"]:
            vs = "-"
        if r["ref"] in ("get", "post"):
            c = ceiling(r["ref"], r["conns"])
            if c:
                ratio_v = rps / c
                ratios[r["case"]] = ratio_v
                ratio = "%.2f" % ratio_v
            else:
                ratio = "-"
            verdict = verdicts(r["target"], ratio_v, vs_v)
        elif r["ref"].startswith("ceiling:"):
            ratio = "(ceiling)"
            verdict = ""
        else:
            verdict = r["target"]
        p50 = "%.2f" % (float(r["p50"]) / 1000.0) if r["p50"] not in ("", "-") else "-"
        p99 = "%.2f" % (float(r["p99"]) / 1000.0) if r["p99"] not in ("", "-") else "-"
        out.append((r["case"], r["conns"], "%.0f" % rps, p50, p99, ratio, vs, verdict, r["note"]))

    widths = [max(len(str(x[i])) for x in [header] + out) for i in range(len(header))]
    left = (0, 7, 8)

    def fmt(x):
        return "  ".join(str(v).ljust(widths[i]) if i in left else str(v).rjust(widths[i])
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
        print("\nmetrics with the large store over metrics with ~1k orders: %.2f" % (many / few))

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
    elif cmd == "rounds" and len(args) == 1:
        rounds(args[0])
    elif cmd == "table" and len(args) == 1:
        table(args[0])
    elif cmd == "wrap" and not args:
        wrap()
    else:
        die("bad command line: %r" % argv[1:])


if __name__ == "__main__":
    main(sys.argv)
