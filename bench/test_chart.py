#!/usr/bin/env python3
"""bench/test_chart.py: the benchmark's charts drawn from fixed numbers
(run.results_files(), as a run writes them), read back by
check_charts.py and checked where the numbers put them: the bars' ends
and the target lines on one scale, the points' heights in the order of
their req/s, a BROKEN or SKIPPED case said as such and not drawn.  And
check_charts.py must catch a chart whose number is not the table's.
Standard library only; starts no process."""

import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import check_charts  # noqa: E402
import run  # noqa: E402

NS = check_charts.NS
PEER = run.REDIS_CASE


def row(case, conns, state, rps="", ref="", target="", vs=""):
    return dict(case=case, conns=str(conns), state=state, rps=str(rps), p50="120", p99="900",
                ref=ref, target=target, note="a note", vs=vs)


ROWS = [
    row("ceiling GET /hello (start)", 16, "OK", 62000, "ceiling:get"),
    row("ceiling GET /hello (start)", 64, "OK", 58000, "ceiling:get"),
    row("ceiling POST /echo (start)", 16, "OK", 40000, "ceiling:post"),
    row("ceiling POST /echo (start)", 64, "OK", 36000, "ceiling:post"),
    row("status GET, random of ~1k orders", 64, "OK", 51000, "get", ">=0.9"),
    row("detail GET, random of ~1k orders", 64, "OK", 30000, "get", ">=0.9"),
    row("metrics, ~1k orders", 64, "BROKEN: wrk exited with 1: boom", "", "get"),
    row(PEER, 16, "OK", 14000, "post"),
    row("create", 16, "OK", 16000, "post", ">=0.5;redis>=1.0", "1.1429 0.9000 1.2000 3"),
    row(PEER, 64, "SKIPPED: redis-server is not installed", "", ""),
    row("create", 64, "OK", 18000, "post", ">=0.9;redis>=1.0", ""),
    row("end to end, delays 0 (completions/s)", 64, "OK", 14400, "post",
        ">=0.4;backlog flat=ok"),
    row("end to end, 10000 orders, 2 s + 3 s", 62, "OK", 3600, "-", "<= admit+5+2 s ok"),
    row("ceiling GET /hello (end)", 16, "OK", 58000, "ceiling:get"),
    row("ceiling GET /hello (end)", 64, "OK", 62000, "ceiling:get"),
    row("ceiling POST /echo (end)", 16, "OK", 40000, "ceiling:post"),
    row("ceiling POST /echo (end)", 64, "OK", 36000, "ceiling:post"),
]


def curve_rows():
    """Three rounds of create and Redis at 16..128 connections; Redis
    broke at 128 in round 2."""
    out = []
    rps = {"create": {16: (15000, 16000, 17000), 32: (17000, 17500, 16800),
                      64: (16000, 16500, 15500), 128: (16200, 16100, 16300)},
           PEER: {16: (12000, 13000, 14000), 32: (15000, 15500, 16000),
                  64: (19000, 20000, 21000), 128: (24000, 0, 25000)}}
    for rnd in (1, 2, 3):
        for conns in (16, 32, 64, 128):
            for case in ("create", PEER):
                v = rps[case][conns][rnd - 1]
                state = "OK" if v else "BROKEN: redis-benchmark exited with 1"
                out.append(dict(round=str(rnd), case=case, conns=str(conns), state=state,
                                rps=str(v) if v else "", p50="500", p99="2000", ref="post",
                                target="", note="", pair=PEER if case == "create" else ""))
    return out


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def texts(root):
    return ["".join(t.itertext()) for t in root.iter(NS + "text")]


def main():
    o = run.options([])   # the full run's settings: 16 and 64, 16..128
    files = run.results_files(o, ROWS, curve_rows(), "a test run", "the report\n")
    with tempfile.TemporaryDirectory(prefix="op-chart-") as d:
        for name, content in files.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(content)
        print(check_charts.check_dir(d))

        # ratios.svg: the ceiling is the mean of its start and end runs
        root = ET.parse(os.path.join(d, "ratios.svg")).getroot()
        bars = {}
        for r in root.iter(NS + "rect"):
            if r.get("class") == "bar":
                bars[r.find(NS + "title").text] = (float(r.get("x")), float(r.get("width")))
        want = {"status GET, random of ~1k orders, 64 connections: 0.85": 51000 / 60000,
                "detail GET, random of ~1k orders, 64 connections: 0.50": 0.5,
                "create, 16 connections: 0.40": 0.4,
                "create, 16 connections: 0.35": 14000 / 40000,
                "create, 64 connections: 0.50": 0.5,
                "end to end, delays 0 (completions/s), 64 connections: 0.40": 0.4}
        expect(set(bars) == set(want), "bars %s, wanted %s" % (sorted(bars), sorted(want)))
        x0 = {x for x, _ in bars.values()}
        expect(len(x0) == 1, "the bars start at %s" % x0)
        x0 = x0.pop()
        half = bars["detail GET, random of ~1k orders, 64 connections: 0.50"][1]
        for title, v in want.items():
            expect(abs(bars[title][1] - 2 * half * v) < 0.5, "%s: %.1f px wide, wanted %.1f"
                   % (title, bars[title][1], 2 * half * v))
        # the targets on the same scale: 0.9, 0.9, 0.5, 0.9, 0.4
        lines = [(ln.find(NS + "title").text, float(ln.get("x1"))) for ln in root.iter(NS + "line")
                 if ln.get("class") == "target"]
        expect(len(lines) == 5, "target lines %s" % lines)
        for title, x in lines:
            t = float(re.search(r"target ([0-9.]+)", title).group(1))
            expect(abs(x - (x0 + 2 * half * t)) < 0.5, "%s at x %.1f" % (title, x))
        words = texts(root)
        expect("BROKEN (see the table)" in words, "no BROKEN for the metrics: %s" % words)
        expect("%s: SKIPPED" % PEER in words, "no SKIPPED Redis at 64: %s" % words)
        expect(any(w.startswith("0.40 \u00b7 16,000/s \u00b7 1.14 \u00d7 Redis") for w in words),
               "create at 16's number and its ratio to Redis: %s" % words)
        expect("\u22650.5 MISS, Redis \u22651.0 ok" in words, "create at 16's verdict: %s"
               % words)
        expect(not any("10000 orders" in w for w in words),
               "the end-to-end case with delays has no ratio and no bar")

        # create-connections.svg: 4 + 3 points (Redis at 128 broke in a round)
        root = ET.parse(os.path.join(d, "create-connections.svg")).getroot()
        pts = {}
        for c in root.iter(NS + "circle"):
            if c.get("class") == "point":
                m = re.match(r"(.*), ([0-9]+) connections: ([0-9.]+) req/s",
                             c.find(NS + "title").text)
                pts[(m.group(1), int(m.group(2)))] = (float(m.group(3)), float(c.get("cx")),
                                                      float(c.get("cy")))
        expect(len(pts) == 7 and ((PEER, 128) not in pts), "points %s" % sorted(pts))
        expect(pts[("order-api create", 16)][0] == 16000, "create at 16: %s"
               % (pts[("order-api create", 16)],))
        # the higher the req/s, the higher on the page (a smaller y)
        by_v = sorted(pts.values())
        expect(all(a[2] >= b[2] for a, b in zip(by_v, by_v[1:])), "heights %s" % by_v)
        # connections on a log scale: 16, 32, 64, 128 equally apart
        xs = sorted({v[1] for v in pts.values()})
        expect(len(xs) == 4 and max(b - a for a, b in zip(xs, xs[1:]))
               - min(b - a for a, b in zip(xs, xs[1:])) < 0.5, "x %s" % xs)
        words = texts(root)
        expect("BROKEN" in words, "no BROKEN for Redis at 128: %s" % words)
        expect("1.23 x" in words, "create / Redis at 16 (median of 1.25, 1.23, 1.21): %s"
               % words)

        # check_charts.py catches a bar whose number is not the table's
        path = os.path.join(d, "ratios.svg")
        with open(path, encoding="utf-8") as f:
            good = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(good.replace("create, 64 connections: 0.50", "create, 64 connections: 0.60"))
        try:
            check_charts.check_dir(d)
        except AssertionError as e:
            print("a wrong number is caught: %s" % e)
        else:
            raise AssertionError("check_charts.py took a bar that says 0.60 for 0.50")
        with open(path, "w", encoding="utf-8") as f:
            f.write(good.replace("</svg>", ""))
        try:
            check_charts.check_dir(d)
        except AssertionError as e:
            print("a broken SVG is caught: %s" % e)
        else:
            raise AssertionError("check_charts.py took an SVG without its end tag")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
