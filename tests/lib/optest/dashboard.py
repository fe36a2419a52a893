"""The dashboard's page as order-api serves it at / and /dashboard/.

check_page(system) fetches it (GET and HEAD, every path form), checks its
headers and that its Content-Security-Policy allows exactly the page's
inline script and style, by hashes recomputed here from the bytes served;
returns the page's text.
"""

import base64
import hashlib
import re

from optest.checks import expect

PATHS = ("/", "/dashboard/", "/dashboard", "/api/dashboard/", "/api/dashboard")
# The policy, the hashes aside (api-daemon/dashboard/embed.py).
CSP_RE = re.compile(
    r"default-src 'none'; script-src 'sha256-([A-Za-z0-9+/=]{44})'; "
    r"style-src 'sha256-([A-Za-z0-9+/=]{44})'; connect-src 'self'; "
    r"img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    r"frame-ancestors 'none'$")


def sha256_b64(text):
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def inline(html, tag):
    """The contents of the page's only <tag> element."""
    found = re.findall(r"<%s\b[^>]*>(.*?)</%s>" % (tag, tag), html, re.S | re.I)
    expect(len(found) == 1, "the page has %d <%s> elements, want 1" % (len(found), tag))
    return found[0]


def check_headers(r, what):
    h = r.headers
    expect(r.status == 200, "%s: status %s" % (what, r.status))
    expect(h.get("content-type") == "text/html; charset=utf-8",
           "%s: Content-Type %r" % (what, h.get("content-type")))
    expect(h.get("x-content-type-options") == "nosniff",
           "%s: X-Content-Type-Options %r" % (what, h.get("x-content-type-options")))
    expect(h.get("referrer-policy") == "no-referrer",
           "%s: Referrer-Policy %r" % (what, h.get("referrer-policy")))
    expect(h.get("cache-control") == "no-cache",
           "%s: Cache-Control %r" % (what, h.get("cache-control")))
    m = CSP_RE.match(h.get("content-security-policy", ""))
    expect(m is not None, "%s: Content-Security-Policy %r" % (
        what, h.get("content-security-policy")))
    return m


def check_page(s, headers=None):
    """GET and HEAD of every path form; the text of the page."""
    page = None
    for path in PATHS:
        r = s.request("GET", path, headers=headers, check=False)
        m = check_headers(r, "GET " + path)
        raw = r.raw
        expect(int(r.headers.get("content-length", -1)) == len(raw),
               "GET %s: Content-Length %r, body %d bytes" % (
                   path, r.headers.get("content-length"), len(raw)))
        if page is None:
            page = raw
            html = raw.decode("utf-8")
            script, style = inline(html, "script"), inline(html, "style")
            expect(m.group(1) == sha256_b64(script),
                   "script-src hash %s is not the inline script's %s" % (
                       m.group(1), sha256_b64(script)))
            expect(m.group(2) == sha256_b64(style),
                   "style-src hash %s is not the inline style's %s" % (
                       m.group(2), sha256_b64(style)))
            # Nothing the policy would block, nothing from elsewhere, in
            # the markup (the script and the style taken out).
            markup = html.replace(script, "").replace(style, "")
            expect(not re.search(r"\sstyle\s*=", markup, re.I),
                   "the page has a style attribute")
            expect(not re.search(r"\son[a-z]+\s*=\s*[\"']", markup, re.I),
                   "the page has an inline event handler")
            expect(not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", markup, re.I),
                   "the page loads something from another origin")
            expect('name="viewport"' in markup, "the page has no viewport meta")
        else:
            expect(raw == page, "GET %s: another page than GET /" % path)
        h = s.request("HEAD", path, headers=headers, check=False)
        check_headers(h, "HEAD " + path)
        expect(h.raw == b"" and int(h.headers.get("content-length", -1)) == len(page),
               "HEAD %s: body %d bytes, Content-Length %r" % (
                   path, len(h.raw), h.headers.get("content-length")))
    r = s.request("POST", "/", b"", check=False)
    expect(r.status == 405 and r.headers.get("allow") == "GET, HEAD",
           "POST /: %s, Allow %r" % (r.status, r.headers.get("allow")))
    return page.decode("utf-8")
