"""The benchmark's own arithmetic (bench/run.py): wrk's result line, the
rows of the cases, the medians of the rounds, the target verdicts and the
table.  Python 3 standard library only; nothing here starts a process.

A row is a dict of strings, as results.tsv and rounds.tsv hold them:
RESULT_FIELDS for the table's rows, ROUND_FIELDS for one round of a case
run in rounds (rounds() turns those into table rows).
"""

import statistics
import textwrap

RESULT_FIELDS = ("case", "conns", "state", "rps", "p50", "p99", "ref", "target", "note", "vs")
ROUND_FIELDS = ("round", "case", "conns", "state", "rps", "p50", "p99", "ref", "target",
                "note", "pair")


def tsv_line(row, fields):
    return "\t".join(str(row.get(f, "")) for f in fields)


def human(n):
    """1000000 -> 1M, 29490 -> 29k, 500 -> 500"""
    if n >= 1000000:
        return "%.3gM" % (n / 1000000)
    if n >= 1000:
        return "%dk" % (n // 1000)
    return str(n)


def one_line(text, n=3):
    """The last n lines of text on one line (a reason in a row)."""
    return " ".join(text.splitlines()[-n:])


# ------------------------------------------------------------------ wrk

class WrkResult:
    """One wrk run: requests, duration (s), rps, p50 and p99 (us)."""

    def __init__(self, requests, duration_us, p50_us, p99_us):
        self.requests = requests
        self.duration = duration_us / 1e6
        self.rps = requests / self.duration
        self.p50 = p50_us
        self.p99 = p99_us


def parse_wrk(out, rc):
    """wrk's output (its report.lua BENCH_RESULT line) and exit status:
    (WrkResult, "") for a clean run, (None, why) otherwise: a non-zero
    exit, no result, any non-2xx/3xx answer, any socket error, or no
    request completed."""
    lines = [line for line in out.splitlines() if line.startswith("BENCH_RESULT ")]
    if rc != 0:
        return None, "wrk exited with %d: %s" % (rc, one_line(out))
    if not lines:
        return None, "wrk printed no result: %s" % one_line(out)
    v = {}
    for kv in lines[-1].split()[1:]:
        k, _, val = kv.partition("=")
        try:
            v[k] = int(val)
        except ValueError:
            pass
    non2xx = [line for line in out.splitlines() if "Non-2xx or 3xx responses" in line]
    if non2xx or v.get("status", 1) != 0:
        return None, (non2xx[0].strip() if non2xx else "status errors: %s" % v.get("status"))
    sock = [line for line in out.splitlines() if "Socket errors" in line]
    if sock or sum(v.get(k, 1) for k in ("connect", "read", "write", "timeout")) != 0:
        return None, (sock[0].strip() if sock else "socket errors")
    if not v.get("requests") or not v.get("duration_us"):
        return None, "no request completed"
    return WrkResult(v["requests"], v["duration_us"], v.get("p50_us", 0), v.get("p99_us", 0)), ""


# ------------------------------------------------------------------ redis-benchmark

def parse_redis_benchmark(out):
    """redis-benchmark --csv's LPUSH line: (rps, p50_us, p99_us), or a
    string saying why there is none."""
    lines = out.splitlines()
    hdr = next((line for line in lines if line.startswith('"test",')), None)
    rows = [line for line in lines if line.startswith('"LPUSH",')]
    if hdr is None or not rows:
        return "redis-benchmark printed no LPUSH result: %s" % one_line(out)
    h = hdr.replace('"', "").split(",")
    v = rows[-1].replace('"', "").split(",")
    cell = dict(zip(h, v))
    try:
        rps = float(cell["rps"])
        p50 = float(cell["p50_latency_ms"])
        p99 = float(cell["p99_latency_ms"])
    except (KeyError, ValueError):
        return "redis-benchmark's CSV has no rate or latencies: %s" % rows[-1]
    if rps <= 0:
        return "redis-benchmark's CSV has no rate or latencies: %s" % rows[-1]
    return rps, round(p50 * 1000), round(p99 * 1000)


# ------------------------------------------------------------------ RSS

def rss_mib(best):
    """(vmrss_kib, anon_kib, nproc) as the report says it, "?" for None."""
    if not best:
        return "?"
    vm, anon, n = best
    return "%.1f MiB (anonymous %.1f MiB, %d process%s)" % (
        vm / 1024, anon / 1024, n, "" if n == 1 else "es")


# ------------------------------------------------------------------ rounds

def rounds(rows):
    """One table row per (case, conns) of the rounds' rows: BROKEN if any
    round broke, SKIPPED if skipped, else the medians over the rounds, and
    for a case with a pair (create: Redis) the median, min and max of the
    per-round ratios in its vs field."""
    keys = []
    by_key = {}
    for r in rows:
        k = (r["case"], r["conns"])
        if k not in by_key:
            keys.append(k)
            by_key[k] = []
        by_key[k].append(r)
    cell = {(r["case"], r["conns"], r["round"]): r for r in rows}

    out = []
    for case, conns in keys:
        rs = by_key[(case, conns)]
        row = dict.fromkeys(RESULT_FIELDS, "")
        row.update(case=case, conns=conns, ref=rs[0]["ref"])
        broken = [r for r in rs if r["state"].startswith("BROKEN")]
        skipped = [r for r in rs if r["state"].startswith("SKIPPED")]
        if broken:
            why = broken[0]["state"][len("BROKEN"):].strip(": ")
            more = " (and %d more round(s))" % (len(broken) - 1) if len(broken) > 1 else ""
            row["state"] = "BROKEN: round %s: %s%s" % (broken[0]["round"], why, more)
            out.append(row)
            continue
        if skipped:
            row["state"] = skipped[0]["state"]
            out.append(row)
            continue
        rps = [float(r["rps"]) for r in rs]
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
        row.update(state="OK", rps="%.1f" % statistics.median(rps),
                   p50="%.0f" % statistics.median(float(r["p50"]) for r in rs),
                   p99="%.0f" % statistics.median(float(r["p99"]) for r in rs),
                   ref=rs[0]["ref"], target=rs[0]["target"], note=note, vs=vs)
        out.append(row)
    return out


# ------------------------------------------------------------------ the report

def wrap(text):
    """text wrapped at 100 columns, "- " items with a hanging indent."""
    out = []
    for line in text.split("\n"):
        if line.startswith("- "):
            out.append(textwrap.fill(line, 100, subsequent_indent="  ", break_on_hyphens=False))
        else:
            out.append(textwrap.fill(line, 100, break_on_hyphens=False) if line else "")
    return "\n".join(out)


def verdicts(target, ratio, vs):
    """The target column: TARGET is ';'-separated parts, each ">=X" (the
    ratio to the ceiling), "redis>=X" (the median ratio to Redis) or
    "LABEL=ok|MISS" (decided by run.py); a part that could not be measured
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


def ceiling_rps(rows, ref, conns):
    """The ceiling's req/s for ref ("get" or "post") at conns: the mean of
    its start and end runs, or None when one broke or none ran."""
    mine = [r for r in rows if r["ref"] == "ceiling:" + ref and r["conns"] == conns]
    if not mine or any(r["state"] != "OK" for r in mine):
        return None
    return sum(float(r["rps"]) for r in mine) / len(mine)


def ratio(rows, r):
    """Row r's req/s over the ceiling's at its connections (None when r
    is not measured against the ceiling, or it or the ceiling broke)."""
    if r["state"] != "OK" or r["ref"] not in ("get", "post"):
        return None
    c = ceiling_rps(rows, r["ref"], r["conns"])
    return float(r["rps"]) / c if c else None


def ceiling_target(target):
    """The ">=X" part of a target (the ratio to the ceiling it asks), or
    None."""
    for part in target.split(";"):
        part = part.strip()
        if part.startswith(">="):
            return float(part[2:])
    return None


def table_cells(rows):
    """(header, one tuple of cells per row, the number of BROKEN rows)."""
    broken = 0
    out = []
    header = ("case", "conns", "req/s", "p50 ms", "p99 ms", "ratio", "vs Redis", "target", "note")
    for r in rows:
        if r["state"] != "OK":
            word = "SKIPPED" if r["state"].startswith("SKIPPED") else "BROKEN"
            if word == "BROKEN":
                broken += 1
            why = r["state"][len(word):].strip(": ") or r["note"]
            out.append((r["case"], r["conns"], word, "", "", "", "", "", why))
            continue
        rps = float(r["rps"])
        ratio_s = ""
        vs = ""
        vs_v = None
        if r["vs"]:
            med, lo, hi, _n = r["vs"].split()
            vs_v = float(med)
            vs = "%.2f (%.2f..%.2f)" % (vs_v, float(lo), float(hi))
        elif r["target"] and "redis>=" in r["target"]:
            vs = "-"
        if r["ref"] in ("get", "post"):
            ratio_v = ratio(rows, r)
            ratio_s = "-" if ratio_v is None else "%.2f" % ratio_v
            verdict = verdicts(r["target"], ratio_v, vs_v)
        elif r["ref"].startswith("ceiling:"):
            ratio_s = "(ceiling)"
            verdict = ""
        else:
            verdict = r["target"]
        p50 = "%.2f" % (float(r["p50"]) / 1000.0) if r["p50"] not in ("", "-") else "-"
        p99 = "%.2f" % (float(r["p99"]) / 1000.0) if r["p99"] not in ("", "-") else "-"
        out.append((r["case"], r["conns"], "%.0f" % rps, p50, p99, ratio_s, vs, verdict,
                    r["note"]))
    return header, out, broken


def table(rows):
    """(the table and what follows it, as text; the number of BROKEN rows)."""
    header, out, broken = table_cells(rows)
    ratios = {}
    for r in rows:
        v = ratio(rows, r)
        if v is not None:
            ratios[r["case"]] = v
    lines = [text_table(header, out, (0, 7, 8))]

    few, many = ratios.get("metrics, ~1k orders"), None
    for k, v in ratios.items():
        if k.startswith("metrics,") and k != "metrics, ~1k orders":
            many = v
    if few and many:
        lines.append("\nmetrics with the large store over metrics with ~1k orders: %.2f"
                     % (many / few))

    # ceiling drift between the opening and closing measurements
    for ref in ("get", "post"):
        for conns in sorted({r["conns"] for r in rows if r["ref"] == "ceiling:" + ref}):
            vals = [float(r["rps"]) for r in rows
                    if r["ref"] == "ceiling:" + ref and r["conns"] == conns and r["state"] == "OK"]
            if len(vals) == 2 and min(vals) > 0 and max(vals) / min(vals) > 1.3:
                lines.append("warning: the ceiling %s at %s connections moved %.0f -> %.0f req/s "
                             "during the run: the machine is busy, ratios are rough"
                             % (ref.upper(), conns, vals[0], vals[1]))
    return "\n".join(lines), broken


# ------------------------------------------------------------------ what the charts draw

def ratio_bars(rows, peer, paired):
    """The ratio chart's bars (bench/chart.py): one per row measured
    against the ceiling (ref "get" or "post"; run.py gives a BROKEN row
    its ref too) in the table's order, but for the peer's (Redis's) rows:
    dict(case, conns, state ("OK", "BROKEN" or "SKIPPED"), ratio, rps,
    target (the ratio to the ceiling its target asks, or None), vs (the
    median of the per-round ratios to the peer, or None), verdict (the
    table's target column), peer).  peer is
    None but for the cases in paired (run against the peer), where it is
    dict(state, ratio, rps) of the peer's row at the same connections."""
    def state(r):
        return r["state"].split(":")[0] if r else "BROKEN"

    bars = []
    for r in rows:
        if r["case"] == peer or r["ref"] not in ("get", "post"):
            continue
        ok = r["state"] == "OK"
        bar = dict(case=r["case"], conns=r["conns"], state=state(r), ratio=ratio(rows, r),
                   rps=float(r["rps"]) if ok else None, target=ceiling_target(r["target"]),
                   vs=float(r["vs"].split()[0]) if ok and r["vs"] else None, peer=None)
        bar["verdict"] = verdicts(r["target"], bar["ratio"], bar["vs"]) if ok else ""
        if r["case"] in paired:
            p = next((x for x in rows if x["case"] == peer and x["conns"] == r["conns"]), None)
            bar["peer"] = dict(state=state(p), ratio=ratio(rows, p) if p else None,
                               rps=float(p["rps"]) if p and p["state"] == "OK" else None)
        bars.append(bar)
    return bars


def by_connections(round_rows, cases):
    """The connections chart's series (bench/chart.py) from the rounds'
    rows of its phase: for each case of cases, dict(case, points), a
    point per connection count in the order run: dict(conns, state,
    median, lo, hi, rounds) (req/s over the rounds; state "OK" only if
    every round was; median, lo and hi are None otherwise)."""
    series = []
    for case in cases:
        points = []
        mine = [r for r in round_rows if r["case"] == case]
        for conns in dict.fromkeys(r["conns"] for r in mine):
            rs = [r for r in mine if r["conns"] == conns]
            bad = [r for r in rs if r["state"] != "OK"]
            p = dict(conns=int(conns), state="OK", median=None, lo=None, hi=None, rounds=len(rs))
            if bad:
                p["state"] = bad[0]["state"].split(":")[0]
            else:
                v = [float(r["rps"]) for r in rs]
                p.update(median=statistics.median(v), lo=min(v), hi=max(v))
            points.append(p)
        series.append(dict(case=case, points=points))
    return series


def connections_cells(curve_rows, case, peer):
    """The table of case and its peer by connections, from the rounds'
    rows of their phase: (header, one tuple of cells per connection
    count, the BROKEN rows (report rows, as rounds() makes them))."""
    med = rounds(curve_rows)
    by = {(r["case"], r["conns"]): r for r in med}
    header = ("conns", "%s req/s" % case, "%s req/s" % peer.split()[0],
              "%s / %s (rounds)" % (case, peer.split()[0]))

    def cell(r):
        if r is None:
            return "-"
        if r["state"] != "OK":
            return r["state"].split(":")[0]
        return "%.0f" % float(r["rps"])
    cells = []
    for conns in dict.fromkeys(r["conns"] for r in med):
        mine, theirs = by.get((case, conns)), by.get((peer, conns))
        vs = "-"
        if mine and mine["vs"]:
            v, lo, hi, _n = mine["vs"].split()
            vs = "%.2f (%.2f..%.2f)" % (float(v), float(lo), float(hi))
        cells.append((conns, cell(mine), cell(theirs), vs))
    return header, cells, [r for r in med if r["state"].startswith("BROKEN")]


def text_table(header, cells, left=(0,)):
    """Columns padded to their widest cell: those in left to the left,
    the rest to the right."""
    widths = [max(len(str(x[i])) for x in [header] + list(cells)) for i in range(len(header))]

    def fmt(x):
        return "  ".join(str(v).ljust(widths[i]) if i in left else str(v).rjust(widths[i])
                         for i, v in enumerate(x)).rstrip()
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(x) for x in cells])
