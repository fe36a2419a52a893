#!/usr/bin/env python3
"""bench/check_charts.py: read back what bench/run.sh wrote to its --out
directory, so that the charts cannot rot unseen.

    python3 bench/check_charts.py DIR

DIR must hold report.txt, results.tsv, curve.tsv, ratios.svg,
create-connections.svg and index.html.  Each SVG must be well-formed XML
with an <svg> root in the SVG namespace and a size; ratios.svg must draw
a bar for every case of the table measured against the ceiling (with the
ratio the table gives it, as its <title> says, and a width in proportion),
the peer's (Redis's) bar beside create where Redis ran, and a target line
for each case that has one; create-connections.svg a point for create and
for Redis at every connection count of the phase, at the median of its
rounds; index.html must show both charts and the table.  Exit 0, or 1
with what is wrong.  The bench suite's bench_smoke runs it after the
smoke run (bench/smoke_test.sh); test_chart.py runs the same checks on
charts drawn from fixed numbers.
"""

import os
import re
import statistics
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import chart  # noqa: E402  (bench/chart.py)
import report  # noqa: E402
import run  # noqa: E402  (bench/run.py: the names of the cases and series)

NS = "{http://www.w3.org/2000/svg}"
PEER = run.REDIS_CASE


def fail(msg):
    raise AssertionError(msg)


def parse_svg(path):
    """The root of a standalone SVG file, or AssertionError."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        fail("%s: not well-formed XML: %s" % (path, e))
    if root.tag != NS + "svg":
        fail("%s: the root is %s, not an <svg> in the SVG namespace" % (path, root.tag))
    for a in ("width", "height", "viewBox"):
        if not root.get(a):
            fail("%s: <svg> has no %s" % (path, a))
    return root


def series(root, path):
    """{the <title> of each <g class="series ...">: the element}."""
    out = {}
    for g in root.iter(NS + "g"):
        if "series" in (g.get("class") or "").split():
            t = g.find(NS + "title")
            if t is None or not t.text:
                fail("%s: a series without a <title>" % path)
            out[t.text] = g
    return out


def titled(g, tag, cls):
    """{title: element} of g's tag elements of class cls."""
    out = {}
    for e in g.iter(NS + tag):
        if e.get("class") == cls:
            t = e.find(NS + "title")
            if t is None or not t.text:
                fail("a %s %s without a <title>" % (cls, tag))
            out[t.text] = e
    return out


def by_name(items, path, what):
    """{name: number} from titles "NAME: NUMBER ..."."""
    out = {}
    for title in items:
        m = re.fullmatch(r"(.*): (?:target )?([0-9.]+)(?: .*)?", title)
        if not m:
            fail("%s: a %s titled %r (wanted 'CASE, N connections: NUMBER')" % (path, what, title))
        out[m.group(1)] = float(m.group(2))
    return out


def check_ratios(path, rows):
    """ratios.svg against the table's rows."""
    root = parse_svg(path)
    s = series(root, path)
    for name in (chart.OURS_NAME, PEER, "target"):
        if name not in s:
            fail("%s: no series %r (has %s)" % (path, name, sorted(s)))
    ours = titled(s[chart.OURS_NAME], "rect", "bar")
    bars = by_name(ours, path, "bar")
    peer = by_name(titled(s[PEER], "rect", "bar"), path, "bar")
    targets = by_name(titled(s["target"], "line", "target"), path, "target line")
    want_bars, want_peer, want_targets = {}, {}, {}
    for r in rows:
        if r["case"] == PEER or r["ref"] not in ("get", "post"):
            continue
        name = "%s, %s connections" % (r["case"], r["conns"])
        v = report.ratio(rows, r)
        if v is not None:
            want_bars[name] = v
        t = report.ceiling_target(r["target"])
        if t is not None and r["state"] == "OK":
            want_targets[name] = t
        if r["case"] in run.PAIRED:
            p = next((x for x in rows if x["case"] == PEER and x["conns"] == r["conns"]), None)
            if p and report.ratio(rows, p) is not None:
                want_peer[name] = report.ratio(rows, p)
    for what, have, want in (("bars", bars, want_bars), ("Redis's bars", peer, want_peer),
                             ("target lines", targets, want_targets)):
        if set(have) != set(want):
            fail("%s: %s for %s, wanted for %s" % (path, what, sorted(have), sorted(want)))
        for k, v in want.items():
            if abs(have[k] - v) > 0.006:
                fail("%s: %s: %s says %.2f, the table %.4f" % (path, k, what, have[k], v))
    # the bars' widths are in proportion to their ratios
    # (their titles round the ratios to 0.01)
    drawn = [(list(by_name([t], path, "bar").values())[0], float(e.get("width")))
             for t, e in list(ours.items()) + list(titled(s[PEER], "rect", "bar").items())]
    if drawn:
        scale = statistics.median(w / v for v, w in drawn if v > 0)
        for v, w in drawn:
            if abs(w - scale * v) > 0.006 * scale + 1:
                fail("%s: the bars' widths are not in proportion to their ratios (%.2f is %.1f "
                     "px wide, %.1f px per 1.0)" % (path, v, w, scale))
    if not want_bars:
        fail("%s: the table has no case measured against the ceiling" % path)
    return len(bars), len(peer), len(targets)


def check_connections(path, curve_rows):
    """create-connections.svg against the rounds of create and Redis by
    connections."""
    root = parse_svg(path)
    s = series(root, path)
    n = 0
    for case, name in run.CURVE_SERIES:
        if name not in s:
            fail("%s: no series %r (has %s)" % (path, name, sorted(s)))
        points = {}
        for title in titled(s[name], "circle", "point"):
            m = re.fullmatch(re.escape(name) + r", ([0-9]+) connections: ([0-9.]+) req/s .*",
                             title)
            if not m:
                fail("%s: a point titled %r" % (path, title))
            points[int(m.group(1))] = float(m.group(2))
        want = {}
        mine = [r for r in curve_rows if r["case"] == case]
        for conns in dict.fromkeys(int(r["conns"]) for r in mine):
            rs = [r for r in mine if int(r["conns"]) == conns]
            if all(r["state"] == "OK" for r in rs):
                want[conns] = statistics.median(float(r["rps"]) for r in rs)
        if not mine:
            fail("%s: curve.tsv has no rounds of %s" % (path, case))
        if set(points) != set(want):
            fail("%s: %s has points at %s connections, wanted %s"
                 % (path, name, sorted(points), sorted(want)))
        for c, v in want.items():
            if abs(points[c] - v) > 0.051:
                fail("%s: %s at %d connections: %.1f, the rounds' median %.1f"
                     % (path, name, c, points[c], v))
        n += len(points)
    return n


def check_index(path):
    try:
        with open(path, encoding="utf-8") as f:
            page = f.read()
    except OSError as e:
        fail("%s: %s" % (path, e))
    for want in ('<img src="ratios.svg"', '<img src="create-connections.svg"', "<table>",
                 "<th>case</th>", "</html>"):
        if want not in page:
            fail("%s: no %s" % (path, want))


def read_tsv(path, fields):
    with open(path, encoding="utf-8") as f:
        return [dict(zip(fields, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def check_dir(d):
    """Every check on an --out directory; a line saying what was found."""
    for name in ("report.txt", "results.tsv", "curve.tsv", "ratios.svg",
                 "create-connections.svg", "index.html"):
        if not os.path.isfile(os.path.join(d, name)):
            fail("%s: no %s" % (d, name))
    rows = read_tsv(os.path.join(d, "results.tsv"), report.RESULT_FIELDS)
    curve = read_tsv(os.path.join(d, "curve.tsv"), report.ROUND_FIELDS)
    bars, peer, targets = check_ratios(os.path.join(d, "ratios.svg"), rows)
    points = check_connections(os.path.join(d, "create-connections.svg"), curve)
    check_index(os.path.join(d, "index.html"))
    return ("charts ok: ratios.svg %d bars, %d of Redis, %d target lines; "
            "create-connections.svg %d points; index.html" % (bars, peer, targets, points))


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: check_charts.py DIR\n")
        return 2
    try:
        print(check_dir(argv[1]))
    except AssertionError as e:
        print("check_charts: FAIL: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
