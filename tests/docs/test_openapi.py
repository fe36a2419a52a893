#!/usr/bin/env python3
"""docs/openapi.yaml: it parses, it is OpenAPI 3.1, it is whole (every
$ref resolves, every error status in CONTRACT_ERRORS is described), and the
(METHOD, path) pairs it lists are exactly those the daemon routes, as the
program route-list prints them ("GET /api/orders/{order_id}/status/", one
a line; HEAD is not listed). The route lists of the man pages
(order-api(8) and order-processing(7): their ".It Li METHOD /path" items,
"{id}" standing for "{order_id}") name exactly the same routes.

Python 3 standard library only. PyYAML is used when it is importable, and
then the small reader below must read the file to the very same data, so
the file keeps to the subset that reader knows (see its docstring).

Environment: ROUTE_LIST (default build/tests/route-list beside this tree),
OPENAPI (default docs/openapi.yaml of this tree).
Exit: 0 pass, 1 fail, 77 skip (route-list is not built; the other checks
still run and a failure among them still fails).
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import Soft  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
OPENAPI = os.environ.get("OPENAPI", os.path.join(TOP, "docs", "openapi.yaml"))
ROUTE_LIST = os.environ.get("ROUTE_LIST",
                            os.path.join(TOP, "build", "tests", "route-list"))

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch",
                "trace")
# The error statuses docs/openapi.yaml must describe somewhere: 400, 401,
# 404, 405, 413, 415 and 503; 409 (a cancel of an order that is not
# Pending, or an Idempotency-Key whose first request is still being
# handled); 411 (a body sent without a Content-Length); and 422 (an
# Idempotency-Key reused with another body). order-processing(7) lists
# 408 and 500 too, which the file describes without this set asking.
CONTRACT_ERRORS = {"400", "401", "404", "405", "409", "411", "413", "415",
                   "422", "503"}


class YamlSubsetError(ValueError):
    pass


def parse_yaml_subset(text):
    """Read the YAML subset docs/openapi.yaml is written in:

    - block mappings ("key: value", "key:" then a deeper block), keys plain
      or quoted; block sequences ("- item", "- key: value" starting a
      mapping); indentation by spaces only;
    - scalars: plain (null, ~, true/false/yes/no/on/off, integers and
      floats resolved as PyYAML does, else strings), 'single' and
      "double" quoted;
    - literal blocks "|", "|-", "|+";
    - flow sequences of scalars or flow sequences ("[a, 'b', [1, 2]]"),
      and the empty mapping "{}";
    - "#" comments on their own line, or after a value past a space.
    Anything else is an error, never a guess.
    """
    lines = text.split("\n")
    if any("\t" in l[:len(l) - len(l.lstrip(" \t"))] for l in lines):
        raise YamlSubsetError("tab in indentation")

    def skippable(l):
        s = l.strip()
        return s == "" or s.startswith("#")

    def indent_of(l):
        return len(l) - len(l.lstrip(" "))

    def next_content(i):
        while i < len(lines) and skippable(lines[i]):
            i += 1
        return i

    def where(i):
        return "line %d: %r" % (i + 1, lines[i] if i < len(lines) else "")

    def strip_comment(s):
        """Drop a " #..." comment outside quotes."""
        quote = None
        for k, ch in enumerate(s):
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "'\"":
                quote = ch
            elif ch == "#" and (k == 0 or s[k - 1] == " "):
                return s[:k].rstrip()
        return s.rstrip()

    def quoted(s, i):
        """s starts with a quote: returns (value, rest after it)."""
        q = s[0]
        out = []
        k = 1
        while k < len(s):
            ch = s[k]
            if q == "'" and ch == "'":
                if s[k + 1:k + 2] == "'":
                    out.append("'")
                    k += 2
                    continue
                return "".join(out), s[k + 1:]
            if q == '"' and ch == "\\":
                esc = s[k + 1:k + 2]
                simple = {"n": "\n", "t": "\t", "\\": "\\", '"': '"',
                          "/": "/", "0": "\0", " ": " "}
                if esc in simple:
                    out.append(simple[esc])
                    k += 2
                    continue
                width = {"x": 2, "u": 4, "U": 8}.get(esc)
                if width is None:
                    raise YamlSubsetError("bad escape, " + where(i))
                out.append(chr(int(s[k + 2:k + 2 + width], 16)))
                k += 2 + width
                continue
            if q == '"' and ch == '"':
                return "".join(out), s[k + 1:]
            out.append(ch)
            k += 1
        raise YamlSubsetError("unterminated quote, " + where(i))

    def plain(s, i):
        if s in ("", "~", "null", "Null", "NULL"):
            return None
        if s in ("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
                 "ON"):
            return True
        if s in ("false", "False", "FALSE", "no", "No", "NO", "off", "Off",
                 "OFF"):
            return False
        if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", s):
            return int(s)
        if re.fullmatch(r"[-+]?([0-9][0-9]*)?\.[0-9]*([eE][-+][0-9]+)?", s) \
                and s not in (".", "+.", "-."):
            return float(s)
        if re.match(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", s) or \
                re.fullmatch(r"[-+]?(0[0-7]+|0x[0-9a-fA-F]+|[0-9][0-9_:]+)",
                             s) or s.startswith((".", "<<", "=")):
            raise YamlSubsetError("quote this scalar, " + where(i))
        if s[0] in "&*!|>%@`{}[],?:-" and not re.match(r"-[^ ]", s):
            raise YamlSubsetError("unsupported plain scalar, " + where(i))
        if ": " in s or s.endswith(":"):
            raise YamlSubsetError("': ' in a plain scalar, " + where(i))
        return s

    def flow_sequence(s, i):
        """s starts with '['; returns (list, rest)."""
        items = []
        k = 1
        while True:
            while k < len(s) and s[k] == " ":
                k += 1
            if k >= len(s):
                raise YamlSubsetError("unterminated [, " + where(i))
            if s[k] == "]":
                return items, s[k + 1:]
            if s[k] == "[":
                value, rest = flow_sequence(s[k:], i)
                k = len(s) - len(rest)
            elif s[k] in "'\"":
                value, rest = quoted(s[k:], i)
                k = len(s) - len(rest)
            else:
                m = re.match(r"[^,\[\]{}]*", s[k:])
                value = plain(m.group(0).strip(), i)
                k += m.end()
            items.append(value)
            while k < len(s) and s[k] == " ":
                k += 1
            if s[k:k + 1] == ",":
                k += 1
            elif s[k:k + 1] != "]":
                raise YamlSubsetError("bad flow sequence, " + where(i))

    def scalar(s, i):
        s = s.strip()
        if s.startswith("["):
            value, rest = flow_sequence(s, i)
        elif s.startswith("{"):
            if not re.match(r"\{\s*\}", s):
                raise YamlSubsetError("only {} is supported, " + where(i))
            value, rest = {}, s[s.index("}") + 1:]
        elif s[:1] in ("'", '"'):
            value, rest = quoted(s, i)
        else:
            return plain(strip_comment(s), i)
        if strip_comment(rest) != "":
            raise YamlSubsetError("text after a value, " + where(i))
        return value

    def literal(header, i, parent_indent):
        """A | block whose header line is i - 1; returns (text, next)."""
        m = re.fullmatch(r"\|([-+]?)", strip_comment(header))
        if not m:
            raise YamlSubsetError("unsupported block scalar, " + where(i - 1))
        chomp = m.group(1)
        body = []
        block_indent = None
        while i < len(lines):
            l = lines[i]
            if l.strip() == "":
                body.append("")
                i += 1
                continue
            ind = indent_of(l)
            if ind <= parent_indent:
                break
            if block_indent is None:
                block_indent = ind
            if ind < block_indent:
                raise YamlSubsetError("less indented block line, " + where(i))
            body.append(l[block_indent:])
            i += 1
        # Lines after the block's end that were blank belong to no one.
        while body and body[-1] == "" and chomp != "+":
            body.pop()
        text = "\n".join(body)
        if chomp == "" and text:
            text += "\n"
        elif chomp == "+":
            text += "\n"
        return text, i

    def split_key(content, i):
        if content[:1] in ("'", '"'):
            key, rest = quoted(content, i)
            if not (rest.startswith(": ") or rest.rstrip() == ":"):
                raise YamlSubsetError("expected ':' after key, " + where(i))
            return key, rest[1:]
        m = re.match(r"([^#'\"\[\]{},][^#]*?):( |$)", content)
        if not m:
            raise YamlSubsetError("expected 'key: value', " + where(i))
        key = m.group(1)
        if key.strip() != key:
            raise YamlSubsetError("space around a key, " + where(i))
        return plain(key, i), content[m.end():]

    def block(i, indent):
        """Parse the block whose first line is i, at exactly indent."""
        content = lines[i][indent:]
        if content == "-" or content.startswith("- "):
            return sequence(i, indent)
        return mapping(i, indent)

    def value_after(rest, i, indent):
        """The value of "key:" or "-" whose text after it is rest."""
        if strip_comment(rest) == "":
            j = next_content(i + 1)
            if j < len(lines) and indent_of(lines[j]) > indent:
                return block(j, indent_of(lines[j]))
            return None, i + 1
        if rest.lstrip().startswith("|"):
            return literal(rest.strip(), i + 1, indent)
        return scalar(rest, i), i + 1

    def mapping(i, indent):
        out = {}
        while True:
            i = next_content(i)
            if i >= len(lines) or indent_of(lines[i]) < indent:
                return out, i
            if indent_of(lines[i]) > indent:
                raise YamlSubsetError("unexpected indent, " + where(i))
            content = lines[i][indent:]
            if content.startswith("- ") or content == "-":
                raise YamlSubsetError("sequence in a mapping, " + where(i))
            key, rest = split_key(content, i)
            if key in out:
                raise YamlSubsetError("duplicate key %r, %s" % (key, where(i)))
            out[key], i = value_after(rest, i, indent)

    def sequence(i, indent):
        out = []
        while True:
            i = next_content(i)
            if i >= len(lines) or indent_of(lines[i]) < indent:
                return out, i
            content = lines[i][indent:]
            if indent_of(lines[i]) > indent or not (
                    content == "-" or content.startswith("- ")):
                raise YamlSubsetError("expected '- item', " + where(i))
            rest = content[2:] if content.startswith("- ") else ""
            item = rest.lstrip(" ")
            if item and item[0] not in "['\"{|" and re.match(
                    r"[^#'\"\[\]{},][^#]*?:( |$)", item):
                # "- key: value": a mapping whose lines sit past the "- ".
                inner = indent + 2 + (len(rest) - len(item))
                lines[i] = " " * inner + item
                value, i = mapping(i, inner)
            else:
                value, i = value_after(rest, i, indent)
            out.append(value)

    i = next_content(0)
    if i >= len(lines):
        return None
    if indent_of(lines[i]) != 0:
        raise YamlSubsetError("the document must start at column 0")
    value, i = block(i, 0)
    i = next_content(i)
    if i < len(lines):
        raise YamlSubsetError("trailing text, " + where(i))
    return value


def resolve(doc, ref):
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def walk(node, path=""):
    """Yield (json-pointer-ish path, dict) for every mapping in node."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, "%s/%s" % (path, k))
    elif isinstance(node, list):
        for n, v in enumerate(node):
            yield from walk(v, "%s/%d" % (path, n))


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def spec_routes(doc):
    routes = set()
    for path, item in (doc.get("paths") or {}).items():
        for method in item:
            if method in HTTP_METHODS and method != "head":
                routes.add((method.upper(), path))
    return routes


def man_routes(path):
    """The (METHOD, path) pairs of a man page's ".It Li METHOD /path"
    items, with "{id}" read as "{order_id}"."""
    item = re.compile(r"^\.It Li (GET|POST|PUT|PATCH|DELETE) (/\S*)")
    found = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = item.match(line)
            if m:
                found.add((m.group(1), m.group(2).replace("{id}",
                                                          "{order_id}")))
    return found


def main():
    c = Soft(verbose=True, prefix="FAIL: ", stream=sys.stdout)
    try:
        with open(OPENAPI, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        c.check(False, "read " + OPENAPI, str(e))
        return 1

    doc = None
    try:
        doc = parse_yaml_subset(text)
        c.check(isinstance(doc, dict), "the subset reader reads it")
    except YamlSubsetError as e:
        c.check(False, "the subset reader reads it", str(e))
    try:
        import yaml
    except ImportError:
        print("note: PyYAML is not importable; the subset reader alone "
              "read the file")
    else:
        full = yaml.safe_load(text)
        c.check(full == doc, "PyYAML reads the same data as the subset "
                "reader", "the file left the subset the test's reader knows")
        doc = full
    if not isinstance(doc, dict):
        print("%d passed, %d failed" % (c.passed, c.failed + 1))
        return 1

    version = doc.get("openapi")
    c.check(isinstance(version, str) and version.startswith("3.1"),
            "openapi is 3.1", repr(version))
    for key in ("info", "paths", "servers", "components"):
        c.check(key in doc, "top-level '%s'" % key)
    c.check(any(s.get("url") == "http://127.0.0.1:8000"
                for s in doc.get("servers") or []),
            "server http://127.0.0.1:8000")

    bad_refs = sorted({n["$ref"] for _, n in walk(doc)
                       if isinstance(n.get("$ref"), str)
                       and resolve(doc, n["$ref"]) is None})
    c.check(not bad_refs, "every $ref resolves", ", ".join(bad_refs))

    statuses = set()
    problems = []
    for path, item in (doc.get("paths") or {}).items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        shared = [deref(doc, p) for p in item.get("parameters", [])]
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            params = shared + [deref(doc, p) for p in op.get("parameters", [])]
            declared = {p.get("name") for p in params
                        if isinstance(p, dict) and p.get("in") == "path"}
            if declared != names:
                problems.append("%s %s: path parameters %s, declared %s" % (
                    method.upper(), path, sorted(names), sorted(declared)))
            responses = op.get("responses") or {}
            if not responses:
                problems.append("%s %s: no responses" % (method.upper(), path))
            for code, resp in responses.items():
                if not isinstance(code, str):
                    problems.append("%s %s: status %r is not a string" % (
                        method.upper(), path, code))
                statuses.add(str(code))
                if not isinstance(deref(doc, resp), dict) or \
                        "description" not in deref(doc, resp):
                    problems.append("%s %s %s: no description" % (
                        method.upper(), path, code))
    c.check(not problems, "operations are well formed", "; ".join(problems))
    c.check(CONTRACT_ERRORS <= statuses, "every error status of the contract "
            "is described", "missing %s" % sorted(CONTRACT_ERRORS - statuses))
    c.check(all(p.startswith("/api/") or p in ("/healthz", "/readyz",
                                                 "/metrics", "/",
                                                 "/dashboard/")
                for p in doc.get("paths") or {}),
            "paths are /api/... or /healthz, /readyz, /metrics, and the "
            "dashboard's / and /dashboard/")
    c.check(all(p.endswith("/") for p in doc.get("paths") or {}
                if p.startswith("/api/")),
            "/api paths end with a slash")

    create = ((doc.get("paths") or {}).get("/api/orders/") or {}).get("post")
    if c.check(isinstance(create, dict), "POST /api/orders/ is described"):
        created = deref(doc, create["responses"].get("201")) or {}
        c.check("Location" in (created.get("headers") or {}),
                "201 of POST /api/orders/ has a Location header")
        c.check(any((deref(doc, p) or {}).get("name") == "Idempotency-Key"
                    for p in create.get("parameters", [])),
                "POST /api/orders/ takes an Idempotency-Key header")
    not_allowed = [deref(doc, r) for _, n in walk(doc.get("paths"))
                   for code, r in n.items() if code == "405"]
    c.check(bool(not_allowed) and all(
        "Allow" in ((r or {}).get("headers") or {}) for r in not_allowed),
        "every 405 has an Allow header")
    schemes = (doc.get("components") or {}).get("securitySchemes") or {}
    c.check(any(s.get("type") == "http" and s.get("scheme") == "bearer"
                for s in schemes.values()), "a bearer security scheme")
    prom = (((doc.get("paths") or {}).get("/metrics") or {}).get("get") or {})
    c.check("text/plain" in ((deref(doc, (prom.get("responses") or {})
                                   .get("200")) or {}).get("content") or {}),
            "/metrics answers text/plain")

    # The routes the daemon serves, from route-list.
    listed = spec_routes(doc)
    skip = False
    if not (os.path.isfile(ROUTE_LIST) and os.access(ROUTE_LIST, os.X_OK)):
        print("SKIP: %s is not built; the routes were not compared"
              % ROUTE_LIST)
        skip = True
    else:
        run = subprocess.run([ROUTE_LIST], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=30)
        served = set()
        bad = []
        for line in run.stdout.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].startswith("/"):
                bad.append(line)
                continue
            if parts[0].upper() != "HEAD":
                served.add((parts[0].upper(), parts[1]))
        c.check(run.returncode == 0 and not bad and served,
                "route-list runs and prints 'METHOD /path' lines",
                "exit %d, bad lines %r, stderr %r" % (
                    run.returncode, bad,
                    run.stderr.decode("utf-8", "replace")))
        c.check(listed == served, "openapi.yaml lists exactly the routes "
                "route-list prints",
                "only in openapi.yaml: %s; only in route-list: %s" % (
                    sorted(listed - served), sorted(served - listed)))
        for page in ("order-api.8", "order-processing.7"):
            named = man_routes(os.path.join(TOP, "man", page))
            c.check(named == served, "%s lists exactly the routes "
                    "route-list prints" % page,
                    "only in %s: %s; only in route-list: %s" % (
                        page, sorted(named - served),
                        sorted(served - named)))

    print("%d passed, %d failed" % (c.passed, len(c.failures)))
    if c.failures:
        return 1
    return 77 if skip else 0


if __name__ == "__main__":
    sys.exit(main())
