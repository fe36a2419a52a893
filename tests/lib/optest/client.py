"""HTTP to order-api: Client, Response, check_response(), expect_status(),
exchange(), raw_request().

Client keeps one keep-alive connection per thread and checks every
response's framing and JSON body (check_response); exchange() and
raw_request() send bytes as they are on a new socket.
"""

import http.client
import json
import re
import socket
import threading
import time

from optest.checks import fail

HTTP_TIMEOUT = 15.0


class Response:
    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def __iter__(self):  # status, headers, body = request(...)
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "<HTTP %s %r>" % (self.status, self.raw[:300])


def decode_body(raw):
    """The body as parsed JSON, or the raw bytes if it is not JSON."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return raw


def expect_status(r, status, what):
    """Fail unless the Response r has this status; returns r."""
    if r.status != status:
        fail("%s: expected %s, got %s %r" % (what, status, r.status, r.raw))
    return r


def check_response(method, path, status, headers, raw):
    """Every response: Content-Length equal to the body (or a list of more
    than 64 KiB in chunks, which http.client joins), JSON content type."""
    where = "%s %s -> %s" % (method, path, status)
    chunked = headers.get("transfer-encoding") == "chunked"
    if chunked:
        if "content-length" in headers:
            fail("%s: chunked with a Content-Length (headers %r)" % (where, headers))
        if method != "HEAD" and len(raw) <= 64 * 1024:
            fail("%s: a body of %d bytes came in chunks" % (where, len(raw)))
    elif "content-length" not in headers:
        fail("%s: no Content-Length header (headers %r)" % (where, headers))
    else:
        try:
            cl = int(headers["content-length"])
        except ValueError:
            fail("%s: bad Content-Length %r" % (where, headers["content-length"]))
        if method != "HEAD" and cl != len(raw):
            fail("%s: Content-Length %d but body has %d bytes" % (where, cl, len(raw)))
    ct = headers.get("content-type", "")
    if not ct.lower().startswith("application/json"):
        fail("%s: Content-Type %r, expected application/json (body %r)"
             % (where, ct, raw[:200]))
    if method != "HEAD":
        try:
            json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            fail("%s: body is not JSON: %r" % (where, raw[:300]))


IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
STALE_ERRORS = (http.client.RemoteDisconnected, http.client.BadStatusLine,
                BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class Client:
    """HTTP client with one keep-alive connection per thread."""

    def __init__(self, port, host="127.0.0.1", timeout=None):
        self.host = host
        self.port = port
        self.timeout = timeout or HTTP_TIMEOUT
        self._local = threading.local()

    def _conn(self, fresh=False):
        c = getattr(self._local, "conn", None)
        if fresh and c is not None:
            c.close()
            c = None
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = c
            self._local.used = False
        return c

    def close(self):
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def request(self, method, path, body=None, headers=None, check=True, retry=True):
        """Returns Response (iterable as status, headers, body).  body may be
        a dict/list (sent as JSON with Content-Type application/json unless
        headers say otherwise), str or bytes (sent as is, no Content-Type
        unless given).  headers of the response are lowercased; the body is
        parsed JSON, or the raw bytes if it is not JSON."""
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                if not any(k.lower() == "content-type" for k in hdrs):
                    hdrs["Content-Type"] = "application/json"
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body
        elif method in ("POST", "PUT", "PATCH"):
            data = b""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            conn = self._conn()
            reused = self._local.used
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                self._local.used = True
                break
            except STALE_ERRORS:
                self._conn(fresh=True)
                # A keep-alive connection the server closed while idle:
                # retry once on a fresh one (POST too, as browsers do,
                # only when the connection had been used before).
                if attempt + 1 < attempts and reused:
                    continue
                raise
            except Exception:
                self._conn(fresh=True)
                raise
        hl = {k.lower(): v for k, v in resp.getheaders()}
        if resp.will_close:
            self._conn(fresh=True)
        if check:
            check_response(method, path, resp.status, hl, raw)
        return Response(resp.status, hl, decode_body(raw), raw)


def exchange(port, data, timeout=5.0, host="127.0.0.1", done=None):
    """Send data on a new connection (ignoring errors while sending, as a
    server may answer and close early) and read until the server closes,
    timeout s pass, or done(bytes read so far) is true.  Returns (bytes
    read, whether the server closed)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        buf = b""
        deadline = time.monotonic() + timeout
        while True:
            if done is not None and done(buf):
                return buf, False
            if time.monotonic() >= deadline:
                return buf, False
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return buf, True
            except socket.timeout:
                return buf, False
            if not chunk:
                return buf, True
            buf += chunk
    finally:
        s.close()


def _whole(buf):
    """A response head and as much body as its Content-Length declares."""
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*([0-9]+)\s*$", head)
    return bool(m) and len(rest) >= int(m.group(1))


def raw_request(port, data, timeout=10.0, host="127.0.0.1"):
    """Send raw bytes on a new connection (exchange), read the response
    until the server closes or the declared Content-Length arrived.
    Returns Response."""
    buf, _closed = exchange(port, data, timeout, host, done=_whole)
    if not buf:
        fail("raw request %r: no response" % (data[:80],))
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    hl = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hl[k.strip().lower()] = v.strip()
    if "content-length" in hl:
        rest = rest[:int(hl["content-length"])]
    return Response(status, hl, decode_body(rest), rest)
