"""The Prometheus text format (0.0.4) of GET /metrics.

parse(text) is strict: it fails the test (optest.checks.fail) on anything
Prometheus would reject or a histogram that does not add up, and returns
(families {name: {"type", "help"}}, samples {(name, frozenset(labels)): value})
in the order of the text.  value(samples, name, **labels) is one series;
first(samples, name) the first series of a name whatever its labels.
fetch(port) reads /metrics on a new connection.
"""

import http.client
import re

from optest.checks import fail

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
PREFIX = "order_processing_"
FLOAT_RE = re.compile(r"^(NaN|[+-]Inf|[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?)$")


def parse_float(s, where):
    if not FLOAT_RE.match(s):
        fail("%s: value %r is not a Prometheus float" % (where, s))
    return float(s)


def parse_labels(s, where):
    """'a="x",b="y\\"z"' -> dict; strict."""
    labels = {}
    i = 0
    while i < len(s):
        m = re.compile(LABEL_NAME + r'="').match(s, i)
        if not m:
            fail("%s: bad label at %r" % (where, s[i:]))
        name = s[i:m.end() - 2]
        i = m.end()
        val = []
        while True:
            if i >= len(s):
                fail("%s: unterminated label value" % where)
            ch = s[i]
            if ch == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    fail("%s: bad escape \\%s in label value" % (where, nxt))
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif ch == '"':
                i += 1
                break
            elif ch == "\n":
                fail("%s: newline in label value" % where)
            else:
                val.append(ch)
                i += 1
        if name in labels:
            fail("%s: label %s twice" % (where, name))
        labels[name] = "".join(val)
        if i < len(s):
            if s[i] != ",":
                fail("%s: expected ',' between labels at %r" % (where, s[i:]))
            i += 1
    return labels


def parse(text):
    """Strict parse of the text format 0.0.4.  Returns
    (families {name: {'type','help'}}, samples {(name, frozenset(labels)): value})."""
    if not text.endswith("\n"):
        fail("/metrics: body does not end with a newline")
    families = {}
    samples = {}
    order = []           # family of each sample line, in order
    sample_re = re.compile(r"^(" + METRIC_NAME + r")(\{(.*)\})? (\S+)( -?[0-9]+)?$")
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "/metrics line %d %r" % (n, line)
        if line == "":
            fail("%s: empty line" % where)
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (" + METRIC_NAME + r") (.*)$", line)
            if not m:
                if re.match(r"^#\s*(HELP|TYPE)\b", line):
                    fail("%s: malformed HELP/TYPE" % where)
                continue  # a plain comment
            kind, name, rest = m.groups()
            fam = families.setdefault(name, {})
            if any(f == name for f in order):
                fail("%s: %s after samples of %s" % (where, kind, name))
            key = kind.lower()
            if key in fam:
                fail("%s: second %s line for %s" % (where, kind, name))
            if kind == "TYPE":
                if rest not in ("gauge", "counter", "histogram"):
                    fail("%s: type %r" % (where, rest))
                if "help" not in fam:
                    fail("%s: TYPE before HELP for %s" % (where, name))
            fam[key] = rest
            continue
        m = sample_re.match(line)
        if not m:
            fail("%s: not 'name{labels} value'" % where)
        name, _, labels_s, value_s, _ts = m.groups()
        labels = parse_labels(labels_s, where) if labels_s else {}
        value = parse_float(value_s, where)
        fam_name = name
        if name not in families:
            for suffix in ("_bucket", "_sum", "_count"):
                base = name[:-len(suffix)]
                if name.endswith(suffix) and families.get(base, {}).get("type") == "histogram":
                    fam_name = base
                    break
        fam = families.get(fam_name)
        if fam is None or "type" not in fam or "help" not in fam:
            fail("%s: sample of %s without # HELP and # TYPE before it"
                 % (where, fam_name))
        if fam["type"] != "histogram" and fam_name != name:
            fail("%s: suffixed sample of a %s" % (where, fam["type"]))
        if fam["type"] == "histogram" and name == fam_name:
            fail("%s: histogram sample without _bucket/_sum/_count" % where)
        if fam["type"] == "histogram" and name.endswith("_bucket") and "le" not in labels:
            fail("%s: bucket without le" % where)
        if order and order[-1] != fam_name and fam_name in order:
            fail("%s: samples of %s not grouped together" % (where, fam_name))
        order.append(fam_name)
        key = (name, frozenset(labels.items()))
        if key in samples:
            fail("%s: duplicate series" % where)
        if fam["type"] == "counter" and not (value >= 0):
            fail("%s: counter value %r" % (where, value))
        samples[key] = value
    for name, fam in families.items():
        if "type" not in fam or "help" not in fam:
            fail("/metrics: family %s lacks HELP or TYPE" % name)
    # histograms: buckets cumulative, +Inf == _count, _sum present
    for name, fam in families.items():
        if fam["type"] != "histogram":
            continue
        groups = {}
        for (sname, lbls), v in samples.items():
            if sname == name + "_bucket":
                d = dict(lbls)
                le = d.pop("le")
                groups.setdefault(frozenset(d.items()), []).append((le, v))
        if not groups:
            fail("/metrics: histogram %s has no buckets" % name)
        for rest, buckets in groups.items():
            les = []
            for le, v in buckets:
                les.append((parse_float(le, "%s le" % name), v, le))
            les.sort()
            if les[-1][2] != "+Inf":
                fail("/metrics: histogram %s has no le=\"+Inf\" bucket" % name)
            for (a, va, _), (b, vb, _) in zip(les, les[1:]):
                if vb < va:
                    fail("/metrics: %s buckets not cumulative: le=%g %g > le=%g %g"
                         % (name, a, va, b, vb))
            cnt = samples.get((name + "_count", rest))
            if cnt is None or (name + "_sum", rest) not in samples:
                fail("/metrics: histogram %s lacks _count or _sum" % name)
            if les[-1][1] != cnt:
                fail("/metrics: %s le=\"+Inf\" %g != _count %g" % (name, les[-1][1], cnt))
    return families, samples


def value(samples, name, **labels):
    """The value of the series name{labels} (exactly those labels), or None."""
    return samples.get((name, frozenset(labels.items())))


def first(samples, name):
    """The value of the first series of name (with or without the
    order_processing_ prefix), whatever its labels, or None."""
    for n in (name, PREFIX + name):
        for (sname, _labels), v in samples.items():
            if sname == n:
                return v
    return None


def fetch(port, host="127.0.0.1", token=None, timeout=10.0):
    """GET /metrics on a new connection (with a bearer token if given);
    fails unless it answers 200.  Returns (headers, lowercased names; body
    text).  parse() the text."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", "/metrics",
                  headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        body = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()
    if r.status != 200:
        fail("GET /metrics: %s %r" % (r.status, body[:200]))
    return headers, body.decode("utf-8")
