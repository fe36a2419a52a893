"""bench/chart.py: the benchmark's charts, as standalone SVG, and the
index.html that shows them with the table (bench/run.py writes them next
to its report).  Python 3 standard library only: no plotting library, no
fonts to install (the SVG names the generic sans-serif); nothing here
starts a process or measures.

- ratios_svg(bars): report.ratio_bars() as horizontal bars, a case a
  group: its ratio to the ceiling, the peer's (Redis's) beside it where
  the case has one, its target as a dashed line across the group.
- connections_svg(series, vs): report.by_connections() as lines of req/s
  by connections (a log scale: 16, 32, 64, 128 equally spaced), the
  median of the rounds with whiskers from the lowest to the highest.
- index_html(...): both charts, the table and the report's text.

Every series drawn is a <g class="series"> whose <title> names it, and
every bar and point has a <title> with its case, connections and number
("create, 16 connections: 0.27"), so that a browser shows it on hover
and bench/check_charts.py can read the charts back.
"""

import html
import math
import re
import textwrap
from xml.sax.saxutils import escape, quoteattr

SVG_NS = "http://www.w3.org/2000/svg"
FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"
OURS = "#2f6db3"      # order-processing
PEER = "#e08a1e"      # the peer (Redis)
TARGET = "#c62828"    # the targets
INK = "#222222"
GREY = "#666666"
GRID = "#dddddd"

OURS_NAME = "order-processing"


def text_width(s, size):
    """About how wide s is in a sans-serif face of size px (for layout
    only: a glyph of DejaVu Sans, the widest of the faces named, is about
    0.6 of the size on average)."""
    return len(s) * size * 0.6


def thousands(v):
    return "{:,.0f}".format(v)


def short(v):
    """13630 -> 13.6k, 1250000 -> 1.25M, 950 -> 950."""
    if v >= 1e6:
        return "%.3gM" % (v / 1e6)
    if v >= 1e3:
        return "%.3gk" % (v / 1e3)
    return "%.0f" % v


def nice_step(span, ticks):
    """A step of 1, 2 or 5 times a power of ten that cuts span into about
    ticks parts."""
    raw = span / max(1, ticks)
    p = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if raw <= m * p:
            return m * p
    return 10 * p


class Svg:
    """An SVG document built element by element."""

    def __init__(self, width, height, title):
        self.width = width
        self.height = height
        self.parts = []
        self.title = title

    def add(self, s):
        self.parts.append(s)

    def open_group(self, cls, title=None):
        self.add("<g class=%s>" % quoteattr(cls))
        if title is not None:
            self.add("<title>%s</title>" % escape(title))

    def close_group(self):
        self.add("</g>")

    def rect(self, x, y, w, h, fill, title=None, cls=None, **attrs):
        a = "".join(' %s="%s"' % (k.replace("_", "-"), v) for k, v in attrs.items())
        c = " class=%s" % quoteattr(cls) if cls else ""
        t = "<title>%s</title>" % escape(title) if title else ""
        self.add('<rect%s x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s>%s</rect>'
                 % (c, x, y, max(0.0, w), max(0.0, h), fill, a, t))

    def line(self, x1, y1, x2, y2, stroke, width=1, dash=None, cls=None, title=None):
        d = ' stroke-dasharray="%s"' % dash if dash else ""
        c = " class=%s" % quoteattr(cls) if cls else ""
        t = "<title>%s</title>" % escape(title) if title else ""
        self.add('<line%s x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" '
                 'stroke-width="%g"%s>%s</line>' % (c, x1, y1, x2, y2, stroke, width, d, t))

    def text(self, x, y, s, size=12, anchor="start", fill=INK, weight=None, rotate=None,
             halo=False):
        """Text at baseline y; halo: on a white ground, so that a line it
        crosses does not hide it."""
        w = ' font-weight="%s"' % weight if weight else ""
        r = ' transform="rotate(%d %.1f %.1f)"' % (rotate, x, y) if rotate else ""
        if halo:
            tw = text_width(s, size) + 4
            left = x - 2 - {"start": 0, "middle": tw / 2, "end": tw - 4}[anchor]
            self.add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#ffffff" '
                     'fill-opacity="0.85"/>' % (left, y - size, tw, size + 4))
        self.add('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" fill="%s"%s%s>%s'
                 '</text>' % (x, y, size, anchor, fill, w, r, escape(s)))

    def render(self):
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<svg xmlns="%s" version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" '
                'font-family="%s">\n<title>%s</title>\n'
                '<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>\n%s\n</svg>\n'
                % (SVG_NS, self.width, self.height, self.width, self.height, FONT,
                   escape(self.title), self.width, self.height, "\n".join(self.parts)))


def heading(svg, title, subtitle, items):
    """The title, the subtitle wrapped to the width, and the legend's row
    of items (legend()); returns the y below them."""
    svg.text(16, 26, title, 16, weight="bold")
    y = 46
    for line in wrapped(subtitle, svg.width - 32, 12):
        svg.text(16, y, line, 12, fill=GREY)
        y += 16
    legend(svg, 16, y + 14, items)
    return y + 36


def wrapped(s, width, size):
    """s in lines of at most width px of text of size px."""
    return textwrap.wrap(s, max(20, int(width / (size * 0.6)))) if s else []


def legend(svg, x, y, items):
    """A row of legend entries from x at baseline y: (kind, colour,
    label), kind "box", "dash" (a dashed upright), "rule" (an upright),
    "whisker" or "line" (a line with a point)."""
    for kind, colour, label in items:
        if kind == "box":
            svg.rect(x, y - 10, 14, 12, colour)
        elif kind == "dash":
            svg.line(x + 7, y - 13, x + 7, y + 3, colour, 2.5, dash="5,3")
        elif kind == "rule":
            svg.line(x + 7, y - 13, x + 7, y + 3, colour, 2)
        elif kind == "whisker":
            svg.line(x + 9, y - 13, x + 9, y + 3, colour, 1.2)
            svg.line(x + 4, y - 13, x + 14, y - 13, colour, 1.2)
            svg.line(x + 4, y + 3, x + 14, y + 3, colour, 1.2)
        else:
            svg.line(x, y - 4, x + 18, y - 4, colour, 2.5)
            svg.add('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (x + 9, y - 4, colour))
        svg.text(x + 22, y, label, 12)
        x += 22 + text_width(label, 12) + 22


# ------------------------------------------------------------------ ratios

def ratios_svg(bars, peer_name, subtitle=""):
    """The ratio chart of report.ratio_bars() rows, as SVG text."""
    width = 1120
    x0 = 312                 # the cases' names end at x0 - 12
    x1 = 790                 # the scale's end; the bars' numbers follow them
    xv = 930                 # the verdicts' column
    bar_h, gap, pad = 18, 4, 16
    top = 66 + 16 * len(wrapped(subtitle, width - 32, 12)) + 30

    top_v = [1.0] + [b["ratio"] or 0 for b in bars] + [b["target"] or 0 for b in bars]
    top_v += [b["peer"]["ratio"] or 0 for b in bars if b["peer"]]
    vmax = math.ceil(max(top_v) * 10 + 0.5) / 10
    step = nice_step(vmax, 8)

    def x(v):
        return x0 + (x1 - x0) * v / vmax

    heights = [(2 if b["peer"] else 1) * bar_h + (gap if b["peer"] else 0) for b in bars]
    plot_h = sum(h + pad for h in heights) + pad
    height = top + plot_h + 64
    peer_short = peer_name.split()[0]
    svg = Svg(width, height, "order-processing: ratio to the ceiling by case")
    heading(svg, "Each case's req/s as a ratio of the ceiling's (a minimal civetweb server's) at "
            "the same connections", subtitle,
            [("box", OURS, OURS_NAME), ("box", PEER, peer_name),
             ("dash", TARGET, "its target (a ratio to the ceiling)"),
             ("rule", GREY, "the ceiling = 1.0")])

    y_end = top + plot_h
    t = 0.0
    while t <= vmax + 1e-9:
        svg.line(x(t), top, x(t), y_end, GRID if t else INK, 1)
        svg.text(x(t), y_end + 18, "%.1f" % t, 12, "middle")
        t += step
    svg.line(x0, y_end, x1, y_end, INK, 1)
    svg.line(x(1.0), top - 6, x(1.0), y_end, GREY, 2)
    svg.text(x(1.0), top - 10, "ceiling", 11, "middle", GREY)
    svg.text(xv, top - 10, "target", 12, weight="bold")
    svg.text((x0 + x1) / 2, y_end + 44,
             "ratio to the ceiling (req/s over the ceiling's req/s at the same connections)",
             13, "middle")

    ours, peers, targets = [], [], []
    y = top + pad
    for b, h in zip(bars, heights):
        name = "%s, %s connections" % (b["case"], b["conns"])
        mid = y + h / 2
        svg.text(x0 - 12, mid - 2, b["case"], 12, "end")
        svg.text(x0 - 12, mid + 12, "%s connections" % b["conns"], 11, "end", GREY)
        if b.get("verdict"):
            v = b["verdict"].replace(">=", "\u2265")
            svg.text(xv, mid + 4, v, 12, fill=TARGET if "MISS" in v else INK)
        ours.append((b, y, name))
        if b["peer"]:
            peers.append((b, y + bar_h + gap, name))
        if b["target"] is not None:
            targets.append((b, y, h, name))
        y += h + pad

    labels = []              # drawn last, over the target lines
    svg.open_group("series ours", OURS_NAME)
    for b, by, name in ours:
        if b["ratio"] is None:
            why = b["state"] if b["state"] != "OK" else "no ceiling to compare with"
            labels.append((x0 + 6, by + 13, "%s (see the table)" % why, TARGET))
            continue
        svg.rect(x0, by, x(b["ratio"]) - x0, bar_h, OURS, cls="bar",
                 title="%s: %.2f" % (name, b["ratio"]))
        label = "%.2f \u00b7 %s/s" % (b["ratio"], thousands(b["rps"]))
        if b["vs"] is not None:
            label += " \u00b7 %.2f \u00d7 %s" % (b["vs"], peer_short)
        labels.append((x(b["ratio"]) + 6, by + 13, label, INK))
    svg.close_group()

    svg.open_group("series peer", peer_name)
    for b, by, name in peers:
        p = b["peer"]
        if p["ratio"] is None:
            why = p["state"] if p["state"] != "OK" else "no ceiling to compare with"
            labels.append((x0 + 6, by + 13, "%s: %s" % (peer_name, why), TARGET))
            continue
        svg.rect(x0, by, x(p["ratio"]) - x0, bar_h, PEER, cls="bar",
                 title="%s: %.2f" % (name, p["ratio"]))
        labels.append((x(p["ratio"]) + 6, by + 13,
                       "%.2f \u00b7 %s/s" % (p["ratio"], thousands(p["rps"])), INK))
    svg.close_group()

    svg.open_group("series target", "target")
    for b, by, h, name in targets:
        svg.line(x(b["target"]), by - 5, x(b["target"]), by + h + 5, TARGET, 2.5, dash="5,3",
                 cls="target", title="%s: target %.2f" % (name, b["target"]))
    svg.close_group()
    for lx, ly, s, colour in labels:
        svg.text(lx, ly, s, 12, fill=colour, halo=True,
                 weight="bold" if colour == TARGET else None)
    return svg.render()


# ------------------------------------------------------------------ by connections

def connections_svg(series, vs, names, colours, title, subtitle=""):
    """The req/s-by-connections chart of report.by_connections() series,
    as SVG text.  vs: {connections: the median ratio of the first series
    to the second}, printed under the axis; names and colours: the label
    and colour of each series' case."""
    width = 820
    x0, x1 = 112, width - 40
    y0 = 66 + 16 * len(wrapped(subtitle, width - 32, 12)) + 30
    y1 = y0 + 300
    height = y1 + 104
    conns = sorted({p["conns"] for s in series for p in s["points"]})
    values = [v for s in series for p in s["points"] for v in (p["hi"], p["median"])
              if v is not None]
    step = nice_step(max(values) * 1.12 if values else 1, 6)
    vmax = step * math.ceil((max(values) * 1.12 if values else 1) / step)

    lo_l = math.log2(conns[0]) if conns else 0
    hi_l = math.log2(conns[-1]) if conns else 1
    span = max(hi_l - lo_l, 1e-9)

    def x(c):
        if len(conns) < 2:
            return (x0 + x1) / 2
        # half a doubling of room at each end
        return x0 + (x1 - x0) * (math.log2(c) - lo_l + 0.5) / (span + 1)

    def y(v):
        return y1 - (y1 - y0) * v / vmax

    rounds = max((p["rounds"] for s in series for p in s["points"]), default=0)
    svg = Svg(width, height, title)
    heading(svg, title, subtitle,
            [("line", c, n) for n, c in zip(names, colours)]
            + [("whisker", GREY, "min..max of %d round%s" % (rounds, "" if rounds == 1 else "s"))])

    v = 0.0
    while v <= vmax + 1e-9:
        svg.line(x0, y(v), x1, y(v), GRID if v else INK, 1)
        svg.text(x0 - 8, y(v) + 4, thousands(v), 12, "end")
        v += step
    svg.line(x0, y0, x0, y1, INK, 1)
    for c in conns:
        svg.line(x(c), y1, x(c), y1 + 5, INK, 1)
        svg.text(x(c), y1 + 20, str(c), 12, "middle")
        if c in vs:
            svg.text(x(c), y1 + 38, "%.2f x" % vs[c], 12, "middle", GREY)
    svg.text(16, y1 + 38, "%s / %s:" % (names[0].split()[0], names[-1].split()[0]), 12,
             fill=GREY)
    svg.text((x0 + x1) / 2, y1 + 64, "connections (concurrent clients, each waiting for its "
             "answer; log scale)", 13, "middle")
    svg.text(22, (y0 + y1) / 2, "requests per second (median of the rounds)", 13, "middle",
             rotate=-90)

    # which series is higher at each connection count: its number goes
    # above its point, the other's below, so that they do not collide
    top_at = {}
    for c in conns:
        best = None
        for i, s in enumerate(series):
            p = next((p for p in s["points"] if p["conns"] == c), None)
            if p and p["median"] is not None and (best is None or p["median"] > best[1]):
                best = (i, p["median"])
        top_at[c] = best[0] if best else 0

    for i, (s, name, colour) in enumerate(zip(series, names, colours)):
        svg.open_group("series", name)
        pts = [p for p in s["points"] if p["median"] is not None]
        if len(pts) > 1:
            svg.add('<polyline fill="none" stroke="%s" stroke-width="2.5" points="%s"/>' % (
                colour, " ".join("%.1f,%.1f" % (x(p["conns"]), y(p["median"])) for p in pts)))
        if not pts and s["points"]:
            svg.text((x0 + x1) / 2, y1 - 12 - 18 * i, "%s: %s (see the report)" % (
                name, "/".join(dict.fromkeys(p["state"] for p in s["points"]))), 12, "middle",
                colour, weight="bold", halo=True)
        for p in s["points"]:
            cx = x(p["conns"])
            if p["median"] is None:
                if pts:   # the point's state, in the series' colour
                    svg.text(cx, y1 - 12 - 18 * i, p["state"], 12, "middle", colour,
                             weight="bold", halo=True)
                continue
            if p["hi"] > p["lo"]:
                # each series' whiskers a little apart, so that two at one
                # connection count do not hide each other
                wx = cx + 7 * (i - (len(series) - 1) / 2)
                svg.line(wx, y(p["lo"]), wx, y(p["hi"]), colour, 1.4)
                svg.line(wx - 4, y(p["lo"]), wx + 4, y(p["lo"]), colour, 1.4)
                svg.line(wx - 4, y(p["hi"]), wx + 4, y(p["hi"]), colour, 1.4)
            svg.add('<circle class="point" cx="%.1f" cy="%.1f" r="4.5" fill="%s"><title>%s'
                    '</title></circle>' % (cx, y(p["median"]), colour, escape(
                        "%s, %d connections: %.1f req/s (%s..%s over %d round%s)" % (
                            name, p["conns"], p["median"], thousands(p["lo"]),
                            thousands(p["hi"]), p["rounds"], "" if p["rounds"] == 1 else "s"))))
            above = top_at.get(p["conns"]) == i
            ty = (min(y(p["hi"]), y(p["median"]) - 4) - 8 if above
                  else max(y(p["lo"]), y(p["median"]) + 4) + 17)
            svg.text(cx + 8, ty, short(p["median"]), 12, "start", colour, weight="bold",
                     halo=True)
        svg.close_group()
    return svg.render()


# ------------------------------------------------------------------ index.html

def html_table(header, cells):
    out = ["<table>", "<tr>%s</tr>" % "".join("<th>%s</th>" % html.escape(h) for h in header)]
    for row in cells:
        tds = []
        for i, c in enumerate(row):
            c = str(c)
            cls = ""
            if c == "BROKEN" or "MISS" in c:
                cls = ' class="bad"'
            elif i > 0 and re.fullmatch(r"[0-9.,]+( \([0-9.]+\.\.[0-9.]+\))?|-|\(ceiling\)", c):
                cls = ' class="num"'
            tds.append("<td%s>%s</td>" % (cls, html.escape(c)))
        out.append("<tr>%s</tr>" % "".join(tds))
    out.append("</table>")
    return "\n".join(out)


def index_html(title, intro, charts, tables, text):
    """A page that shows charts ((file, alt text) pairs, next to it), then
    tables ((heading, header, cells)), then text (preformatted)."""
    imgs = "\n".join('<figure><img src="%s" alt="%s"></figure>'
                     % (html.escape(f), html.escape(alt)) for f, alt in charts)
    tabs = "\n".join("<h2>%s</h2>\n%s" % (html.escape(h), html_table(hd, cells))
                     for h, hd, cells in tables)
    return """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>%s</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
figure { margin: 1em 0; }
img { max-width: 100%%; height: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; white-space: nowrap; }
td:first-child { white-space: nowrap; }
td.bad { color: #c62828; font-weight: bold; }
pre { font-size: 12px; background: #f8f8f8; padding: 1em; overflow-x: auto; }
</style>
</head>
<body>
<h1>%s</h1>
<p>%s</p>
%s
%s
<h2>The report</h2>
<pre>%s</pre>
</body>
</html>
""" % (html.escape(title), html.escape(title), html.escape(intro), imgs, tabs, html.escape(text))
