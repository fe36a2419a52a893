#!/usr/bin/env python3
"""Access control with --api-token-file: bearer tokens on every route but
the probes.

- Token file mode 0600 holding "tok-1\\n" (the trailing newline is not part
  of the token): every /orders/ and /api/orders/ route without an
  Authorization header -> 401, `WWW-Authenticate: Bearer ...`, a JSON
  {"detail": ...}; a wrong token -> 401 with error="invalid_token" in
  WWW-Authenticate; the right token works; the scheme name is
  case-insensitive ("bearer", "BEARER"); /healthz, /readyz and /metrics
  answer without a token, and so does the dashboard's page (/, /dashboard/).
- A file with two tokens (and comments, blank lines, CRLF): both work.
- Refusals at start, exit status 2 and one stderr line naming the file:
  mode 0644 (the line also gives the mode), an empty file, a file of only
  comments, a missing file.  Mode 0640 (group-readable, not others) is
  accepted.
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run  # noqa: E402
from optest.client import expect_status  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.dashboard import check_page  # noqa: E402

GOOD = {"user_id": 1, "item_ids": [101, 102], "total_amount": 250.75}


def write_token_file(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def bearer(tok, scheme="Bearer"):
    return {"Authorization": "%s %s" % (scheme, tok)}


def protected_requests(oid):
    """(method, path, body) for every route that needs a token."""
    reqs = []
    for prefix in ("/orders/", "/api/orders/"):
        reqs += [
            ("POST", prefix, GOOD),
            ("GET", prefix, None),
            ("GET", prefix + "?limit=1", None),
            ("GET", prefix + "metrics/", None),
            ("GET", prefix + "%s/" % oid, None),
            ("GET", prefix + "%s/status/" % oid, None),
            ("POST", prefix + "%s/cancel/" % oid, None),
            ("HEAD", prefix, None),
        ]
    return reqs


def expect_401(r, what, invalid_token):
    expect_status(r, 401, what)
    www = r.headers.get("www-authenticate", "")
    assert www.lower().startswith("bearer"), \
        "%s: WWW-Authenticate %r, expected Bearer" % (what, www)
    if invalid_token:
        assert 'error="invalid_token"' in www, \
            "%s: WWW-Authenticate %r lacks error=\"invalid_token\"" % (what, www)
    else:
        assert "error=" not in www, \
            "%s: no credentials, but WWW-Authenticate %r carries an error" % (what, www)
    if not what.startswith("HEAD "):
        assert isinstance(r.body, dict) and isinstance(r.body.get("detail"), str), \
            "%s: body is not {\"detail\": ...}: %r" % (what, r.raw)


def with_token(s, tok_ok):
    # an order to point the routes at (created with the token)
    r = expect_status(s.request("POST", "/api/orders/", GOOD, bearer(tok_ok)),
                      201, "POST with the token")
    oid = r.body["order_id"]
    before = s.request("GET", "/api/orders/metrics/", headers=bearer(tok_ok)).body["total_orders"]

    for method, path, body in protected_requests(oid):
        what = "%s %s" % (method, path)
        for label, hdrs, invalid in (
                ("no Authorization", {}, False),
                ("empty Authorization", {"Authorization": ""}, False),
                ("Basic scheme", {"Authorization": "Basic dG9rLTE6"}, False),
                ("Bearer without token", {"Authorization": "Bearer "}, False),
                ("wrong token", bearer("tok-2"), True),
                ("token prefix", bearer(tok_ok[:-1]), True),
                ("token plus a byte", bearer(tok_ok + "x"), True),
                ("token with the newline", bearer(tok_ok + "%0A"), True),
        ):
            r = s.request(method, path, body, hdrs)
            expect_401(r, "%s, %s" % (what, label), invalid)
    # nothing was created or cancelled by the refused requests
    m = expect_status(s.request("GET", "/api/orders/metrics/", headers=bearer(tok_ok)),
                      200, "metrics")
    assert m.body["total_orders"] == before, "refused POSTs created orders: %r" % m.body
    st = expect_status(s.request("GET", "/api/orders/%s/" % oid, headers=bearer(tok_ok)),
                       200, "get")
    assert st.body["status"] != "Cancelled", "an unauthenticated cancel took effect: %r" % st.body

    # the right token, any case of the scheme, extra spaces
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        expect_status(s.request("GET", "/orders/%s/status/" % oid, headers=bearer(tok_ok, scheme)),
                      200, "GET with scheme %r" % scheme)
    expect_status(s.request("GET", "/api/orders/", headers={"Authorization": "Bearer   " + tok_ok}),
                  200, "Bearer followed by several spaces")
    r = expect_status(s.request("POST", "/orders/", GOOD, bearer(tok_ok, "bearer")),
                      201, "POST, bearer")
    expect_status(s.request("POST", "/api/orders/%s/cancel/" % r.body["order_id"], None,
                            bearer(tok_ok)), 200, "cancel with the token")
    expect_status(s.request("GET", "/api/orders/metrics/", headers=bearer(tok_ok)), 200, "metrics")

    # open routes
    for path in ("/healthz", "/readyz", "/metrics"):
        r = s.request("GET", path, check=(path != "/metrics"))
        assert r.status in ((200, 503) if path == "/readyz" else (200,)), \
            "GET %s without a token: %s %r" % (path, r.status, r.raw)
        assert r.status != 401, "GET %s needs a token" % path
        r = s.request("GET", path, headers=bearer("wrong"), check=(path != "/metrics"))
        assert r.status != 401, "GET %s with a wrong token: 401" % path
    # the dashboard's page is open (its API calls take the token)
    check_page(s)
    check_page(s, headers=bearer("wrong"))
    # unknown paths stay 404
    expect_status(s.request("GET", "/nothing/here/"), 404, "unknown path without a token")

    # a refused POST with a body keeps the keep-alive connection usable
    for _ in range(3):
        expect_401(s.request("POST", "/orders/", GOOD, retry=False), "POST on keep-alive", False)
    expect_status(s.request("GET", "/orders/", headers=bearer(tok_ok), retry=False), 200,
                  "GET on the same connection after 401s with bodies")
    return oid


def start_refused(s, path, what):
    """The API started with this token file must exit 2 at once, one line."""
    argv = s.api_argv(["--api-token-file", path])
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        # it started serving: stop it (subprocess.run killed it already)
        fail("%s: order-api did not refuse to start" % what)
    err = p.stderr.decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert p.returncode == 2, "%s: exit status %s, expected 2; stderr %r" % (
        what, p.returncode, err)
    assert len(lines) == 1, "%s: expected one stderr line, got %r" % (what, lines)
    assert path in lines[0], "%s: stderr line does not name %s: %r" % (what, path, lines[0])
    return lines[0]


def main():
    with System("auth") as s:
        d = tempfile.mkdtemp(prefix="tok-", dir=s.tmp)
        one = write_token_file(os.path.join(d, "one"), "tok-1\n")
        s.start_api(extra=["--api-token-file", one])
        s.start_worker()
        s.wait_ready()
        with_token(s, "tok-1")
        s.stop_api()

        # two tokens, comments, a blank line, CRLF line ends
        two = write_token_file(os.path.join(d, "two"),
                               "# tokens for the order API\n\ntok-A\r\n# old one:\ntok-B\n")
        s.start_api(extra=["--api-token-file", two])
        for tok in ("tok-A", "tok-B"):
            expect_status(s.request("POST", "/api/orders/", GOOD, bearer(tok)),
                          201, "POST with %s" % tok)
            expect_status(s.request("GET", "/orders/", headers=bearer(tok)),
                          200, "GET with %s" % tok)
        for tok in ("tok-1", "# tokens for the order API", "#", "tok-AB", "tok-"):
            expect_401(s.request("GET", "/orders/", headers=bearer(tok)),
                       "GET with %r" % tok, True)
        s.stop_api()

        # group-readable is allowed (not readable by others)
        grp = write_token_file(os.path.join(d, "grp"), "tok-g\n", 0o640)
        s.start_api(extra=["--api-token-file", grp])
        expect_status(s.request("GET", "/orders/", headers=bearer("tok-g")), 200, "mode 0640 token")
        s.stop_api()

        # refusals
        wide = write_token_file(os.path.join(d, "wide"), "tok-1\n", 0o644)
        line = start_refused(s, wide, "mode 0644")
        assert "0644" in line, "mode 0644: the stderr line does not give the mode: %r" % line
        other_w = write_token_file(os.path.join(d, "otherw"), "tok-1\n", 0o602)
        start_refused(s, other_w, "mode 0602 (writable by others)")
        empty = write_token_file(os.path.join(d, "empty"), "")
        start_refused(s, empty, "an empty file")
        comments = write_token_file(os.path.join(d, "comments"), "# nothing\n\n#tok-1\n")
        start_refused(s, comments, "only comments")
        start_refused(s, os.path.join(d, "missing"), "a missing file")
        start_refused(s, d, "a directory")
        link = os.path.join(d, "link")
        os.symlink(one, link)
        start_refused(s, link, "a symlink")
        spaced = write_token_file(os.path.join(d, "spaced"), "tok 1\n")
        start_refused(s, spaced, "a token with a space")

        # and the original file still works afterwards
        s.start_api(extra=["--api-token-file", one])
        expect_status(s.request("GET", "/orders/", headers=bearer("tok-1")), 200, "tok-1 again")
        s.stop_api()
        s.stop_worker()


if __name__ == "__main__":
    run(main)
