#!/usr/bin/env python3
"""The HTTP API as order-processing(7) documents it: lifecycle, bodies, paths, errors,
validation, cancel, list and pagination (both orders), health and readiness, and the
dashboard's page (its headers, and a Content-Security-Policy naming the hashes of its
inline script and style)."""

import datetime
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import run, wait_until  # noqa: E402
from optest.client import check_response, expect_status, raw_request  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.dashboard import check_page  # noqa: E402
from optest.orders import (ORDER_ID_RE, STATUS_RANK, check_metrics_consistent,  # noqa: E402
                           check_order_shape)

GOOD = {"user_id": 1, "item_ids": [101, 102], "total_amount": 250.75}
REQUIRED = "This field is required."


def body_with(**kw):
    b = dict(GOOD)
    for k, v in kw.items():
        if v is DROP:
            b.pop(k)
        else:
            b[k] = v
    return b


DROP = object()


def num(oid):
    return ORDER_ID_RE.match(oid).group(1)


def num_key(oid):
    return int(num(oid))


def expect_field_error(r, field, what, message=None):
    expect_status(r, 400, what)
    b = r.body
    assert isinstance(b, dict), "%s: body %r" % (what, r.raw)
    assert field in b, "%s: no %r key in error %r" % (what, field, b)
    msgs = b[field]
    assert isinstance(msgs, list) and msgs and all(isinstance(m, str) and m for m in msgs), \
        "%s: %r should be a non-empty list of messages: %r" % (what, field, b)
    if message is not None:
        assert message in msgs, "%s: expected %r in %r" % (what, message, msgs)


def expect_not_found(r, what):
    expect_status(r, 404, what)
    assert r.body == {"detail": "Not found."}, "%s: body %r" % (what, r.raw)


def expect_detail_error(r, status, what):
    expect_status(r, status, what)
    assert isinstance(r.body, dict) and r.body, "%s: body %r" % (what, r.raw)


# ------------------------------------------------------------------ sections

def lifecycle(s):
    oid = s.create_order(user_id=5, item_ids=[7], total_amount=250.75)
    seen = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = s.status(oid)
        if not seen or seen[-1] != st:
            seen.append(st)
        if st == "Completed":
            break
        time.sleep(0.02)
    assert seen and seen[-1] == "Completed", "order %s never Completed; saw %r" % (oid, seen)
    assert seen[0] == "Pending", "first status seen was %r, expected Pending (%r)" % (seen[0], seen)
    ranks = [STATUS_RANK[x] for x in seen]
    assert ranks == sorted(ranks), "statuses went backwards: %r" % seen
    if "Processing" not in seen:
        print("note: Processing not observed for %s (saw %r)" % (oid, seen))
    o = s.order(oid)
    check_order_shape(o, "completed order")
    # UTC whatever the daemons' local time zone (they run with TZ=IST-5:30)
    created = datetime.datetime.strptime(o["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    completed = datetime.datetime.strptime(o["completed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    # pickup 300 ms + processing 300 ms: not done sooner (a lower bound only)
    assert completed - created >= 0.59, \
        "completed %.3f s after creation, pickup + processing is 0.6 s (%r)" % (
            completed - created, o)
    assert abs(created - time.time()) < 120, \
        "created_at %s is not the current UTC time (now %s)" % (
            o["created_at"], datetime.datetime.now(datetime.timezone.utc).isoformat())
    assert o["status"] == "Completed" and o["completed_at"], o
    assert o["order_id"] == oid and o["user_id"] == 5 and o["item_ids"] == [7], o
    assert o["total_amount"] == "250.75", o
    assert o["updated_at"] >= o["created_at"], o
    return oid


def amounts(s):
    cases = [
        (250.75, "250.75"),
        (0.1, "0.10"),
        ("250.75", "250.75"),
        (1e2, "100.00"),
        (99999999.99, "99999999.99"),
        (0, "0.00"),
        (7, "7.00"),
        ("0.5", "0.50"),
        # doubles that sit just below their decimal value
        (0.29, "0.29"), (1.15, "1.15"), (4.35, "4.35"), (0.07, "0.07"), (8.675, None),
        (1234567.89, "1234567.89"), ("99999999.99", "99999999.99"), ("00000001.50", "1.50"),
    ]
    for amount, text in cases:
        if text is None:  # 3 decimals
            r = s.request("POST", "/api/orders/", body_with(total_amount=amount))
            expect_field_error(r, "total_amount", "total_amount %r" % amount)
            continue
        oid = s.create_order(user_id=2, item_ids=[1, 2, 3], total_amount=amount)
        o = s.order(oid)
        check_order_shape(o, "order with amount %r" % (amount,))
        assert o["total_amount"] == text, \
            "total_amount %r stored as %r, expected %r" % (amount, o["total_amount"], text)
        assert o["status"] in ("Pending", "Processing"), o
        assert o["completed_at"] is None, o
    # the literal JSON text 1e2 (json.dumps(1e2) gives 100.0)
    r = expect_status(s.request("POST", "/api/orders/",
                                '{"user_id": 3, "item_ids": [1], "total_amount": 1e2}',
                                {"Content-Type": "application/json"}), 201, "total_amount 1e2")
    assert s.order(r.body["order_id"])["total_amount"] == "100.00"
    for literal, text in (("1E2", "100.00"), ("1.0e-2", "0.01"), ("9.999999999e7", "99999999.99"),
                          ("2.50", "2.50"), ("-0", "0.00"), ('"1e2"', "100.00")):
        r = expect_status(s.request("POST", "/api/orders/",
                                    '{"user_id": 3, "item_ids": [1], "total_amount": %s}' % literal,
                                    {"Content-Type": "application/json"}),
                          201, "total_amount %s" % literal)
        got = s.order(r.body["order_id"])["total_amount"]
        assert got == text, "total_amount %s stored as %r, expected %r" % (literal, got, text)


def paths(s, done_oid):
    n = num(done_oid)
    for p in ("/orders/", "/orders", "/api/orders/", "/api/orders"):
        r = expect_status(s.request("POST", p, GOOD), 201, "POST %s" % p)
        assert r.body.get("message") == "Order received.", r.body
        assert ORDER_ID_RE.match(r.body.get("order_id", "")), r.body
        assert r.headers.get("location"), "POST %s: no Location" % p
    for ident in (done_oid, n):
        for prefix in ("/orders", "/api/orders"):
            for slash in ("/", ""):
                p = "%s/%s/status%s" % (prefix, ident, slash)
                r = expect_status(s.request("GET", p), 200, "GET %s" % p)
                assert r.body == {"order_id": done_oid, "status": "Completed"}, (p, r.body)
                p = "%s/%s%s" % (prefix, ident, slash)
                r = expect_status(s.request("GET", p), 200, "GET %s" % p)
                assert r.body.get("order_id") == done_oid, (p, r.body)
                check_order_shape(r.body, p)
    for p in ("/orders/metrics/", "/orders/metrics", "/api/orders/metrics/", "/api/orders/metrics"):
        r = expect_status(s.request("GET", p), 200, "GET %s" % p)
        assert "order_status_count" in r.body, r.body
    for p in ("/orders/", "/orders", "/api/orders/", "/api/orders"):
        r = expect_status(s.request("GET", p), 200, "GET %s" % p)
        assert isinstance(r.body.get("results"), list) and "next" in r.body, r.body


def not_found(s):
    for ident in ("999999999", "ORD999999999", "ORD", "ORD-1", "abc", "ORD99999999999999999999",
                  "99999999999999999999", "ORD1x", "-1"):
        for prefix in ("/orders", "/api/orders"):
            for suffix in ("/", "/status/"):
                p = "%s/%s%s" % (prefix, ident, suffix)
                expect_not_found(s.request("GET", p), "GET %s" % p)
        p = "/orders/%s/cancel/" % ident
        expect_not_found(s.request("POST", p), "POST %s" % p)
    r = s.request("GET", "/api/nothing-here")
    expect_status(r, 404, "GET /api/nothing-here")


def methods(s, oid):
    def allow(r, must, what):
        expect_status(r, 405, what)
        a = r.headers.get("allow")
        assert a, "%s: 405 without Allow header (%r)" % (what, r.headers)
        got = {x.strip().upper() for x in a.split(",")}
        assert set(must) <= got, "%s: Allow %r lacks %r" % (what, a, must)
    allow(s.request("DELETE", "/orders/%s/" % oid), ["GET"], "DELETE /orders/<id>/")
    allow(s.request("DELETE", "/api/orders/%s/" % oid), ["GET"], "DELETE /api/orders/<id>/")
    allow(s.request("PUT", "/orders/", GOOD), ["GET", "POST"], "PUT /orders/")
    allow(s.request("PATCH", "/api/orders/", GOOD), ["GET", "POST"], "PATCH /api/orders/")
    allow(s.request("GET", "/orders/%s/cancel/" % oid), ["POST"], "GET /orders/<id>/cancel/")
    allow(s.request("POST", "/orders/%s/status/" % oid, GOOD), ["GET"], "POST /orders/<id>/status/")
    allow(s.request("POST", "/orders/metrics/", GOOD), ["GET"], "POST /orders/metrics/")


def validation(s):
    for field in ("user_id", "item_ids", "total_amount"):
        r = s.request("POST", "/api/orders/", body_with(**{field: DROP}))
        expect_field_error(r, field, "missing %s" % field, REQUIRED)
        others = set(r.body) - {field}
        assert not others, "missing %s: unexpected error keys %r" % (field, r.body)
    r = s.request("POST", "/api/orders/", {})
    for field in ("user_id", "item_ids", "total_amount"):
        expect_field_error(r, field, "empty object", REQUIRED)

    bad = [
        ("user_id", 0), ("user_id", -1), ("user_id", "x"), ("user_id", 1.5),
        ("user_id", None), ("user_id", [1]), ("user_id", 2 ** 64),
        ("item_ids", []), ("item_ids", "x"), ("item_ids", [0]), ("item_ids", ["a"]),
        ("item_ids", [-5]), ("item_ids", [1.5]), ("item_ids", None), ("item_ids", 5),
        ("total_amount", -1), ("total_amount", 1.005), ("total_amount", 123456789.00),
        ("total_amount", "abc"), ("total_amount", True), ("total_amount", None),
        ("total_amount", "-0.01"), ("total_amount", "1.234"), ("total_amount", [1]),
        ("total_amount", 100000000), ("total_amount", ""),
    ]
    for field, value in bad:
        r = s.request("POST", "/api/orders/", body_with(**{field: value}))
        expect_field_error(r, field, "%s=%r" % (field, value))

    # a literal that cannot be a double exactly: 3 decimals in the text
    r = s.request("POST", "/api/orders/", '{"user_id": 1, "item_ids": [1], "total_amount": 0.125}',
                  {"Content-Type": "application/json"})
    expect_field_error(r, "total_amount", "total_amount 0.125")

    ct = {"Content-Type": "application/json"}
    for what, raw in [
        ("malformed JSON", '{"user_id": 1, "item_ids": [1], "total_amount": '),
        ("not JSON at all", "hello"),
        ("trailing garbage", '{"user_id": 1, "item_ids": [1], "total_amount": 1} xyz'),
        ("two objects", '{"user_id": 1, "item_ids": [1], "total_amount": 1}{}'),
        ("JSON array", '[{"user_id": 1, "item_ids": [1], "total_amount": 1}]'),
        ("JSON string", '"x"'),
        ("JSON null", "null"),
        ("empty body", ""),
    ]:
        r = s.request("POST", "/api/orders/", raw, ct)
        expect_detail_error(r, 400, what)

    # Content types
    r = s.request("POST", "/api/orders/", json.dumps(GOOD), {"Content-Type": "text/plain"})
    expect_detail_error(r, 415, "Content-Type text/plain")
    r = s.request("POST", "/orders/", json.dumps(GOOD),
                  {"Content-Type": "application/x-www-form-urlencoded"})
    expect_detail_error(r, 415, "Content-Type form-urlencoded")
    r = s.request("POST", "/api/orders/", json.dumps(GOOD),
                  {"Content-Type": "application/json; charset=utf-8"})
    expect_status(r, 201, "Content-Type application/json; charset=utf-8")
    r = s.request("POST", "/api/orders/", json.dumps(GOOD).encode())  # no Content-Type
    expect_status(r, 201, "POST without Content-Type")

    # 413 for a body over 64 KiB (valid JSON, 70 KiB)
    items = ",".join(["1"] * (70 * 1024 // 2))
    big = '{"user_id": 1, "item_ids": [%s], "total_amount": 1}' % items
    assert len(big) > 70 * 1024 - 100
    data = ("POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n"
            "Connection: close\r\n\r\n" % len(big)).encode() + big.encode()
    r = raw_request(s.port, data)
    expect_detail_error(r, 413, "70 KiB body")
    check_response("POST", "/api/orders/ (70 KiB)", r.status, r.headers, r.raw)
    # still serving afterwards
    expect_status(s.request("GET", "/healthz"), 200, "healthz after 413")
    # just under the limit is not 413 (64 KiB of valid JSON)
    items = ",".join(["1"] * (60 * 1024 // 2))
    ok = '{"user_id": 1, "item_ids": [%s], "total_amount": 1}' % items
    r = s.request("POST", "/api/orders/", ok, ct)
    assert r.status != 413, "a %d byte body was refused with 413" % len(ok)


def cancel(s):
    # A Pending order (pickup delay 300 ms) is cancelled at once.
    oid = s.create_order(user_id=11)
    r = s.request("POST", "/orders/%s/cancel/" % oid)
    expect_status(r, 200, "cancel of a Pending order")
    check_order_shape(r.body, "cancel response")
    assert r.body["order_id"] == oid and r.body["status"] == "Cancelled", r.body
    assert r.body["completed_at"] is None, r.body
    r = s.request("POST", "/orders/%s/cancel/" % oid)
    expect_detail_error(r, 409, "second cancel")
    r = s.request("POST", "/api/orders/%s/cancel" % num(oid))
    expect_detail_error(r, 409, "third cancel (numeric id, /api, no slash)")
    # The worker must leave it alone.
    time.sleep(1.5)
    assert s.status(oid) == "Cancelled", "cancelled order %s became %s" % (oid, s.status(oid))
    o = s.order(oid)
    assert o["status"] == "Cancelled" and o["completed_at"] is None, o
    return oid


def cancel_completed(s, done_oid):
    r = s.request("POST", "/api/orders/%s/cancel/" % done_oid)
    expect_detail_error(r, 409, "cancel of a Completed order")
    assert s.status(done_oid) == "Completed"


def listing(s):
    user = random.randint(10 ** 6, 10 ** 9)
    ids = [s.create_order(user_id=user, item_ids=[i + 1], total_amount=i) for i in range(7)]
    other = s.create_order(user_id=user + 1)
    # cancel two while still Pending (pickup 300 ms)
    cancelled = []
    for oid in (ids[1], ids[4]):
        r = s.request("POST", "/api/orders/%s/cancel/" % oid)
        if r.status == 200:
            cancelled.append(oid)
    assert cancelled, "could not cancel any order while Pending (pickup delay 300 ms)"

    r = expect_status(s.request("GET", "/api/orders/?user_id=%d" % user), 200, "list by user")
    got = [o["order_id"] for o in r.body["results"]]
    assert got == ids, "list user_id=%d: got %r, expected %r (oldest first)" % (user, got, ids)
    assert r.body["next"] is None, r.body["next"]
    for o in r.body["results"]:
        check_order_shape(o, "list item")
        assert o["user_id"] == user, o
    created = [o["created_at"] for o in r.body["results"]]
    assert created == sorted(created), created

    # limits
    r = expect_status(s.request("GET", "/orders/?user_id=%d&limit=1" % user), 200, "limit=1")
    assert [o["order_id"] for o in r.body["results"]] == ids[:1], r.body
    assert r.body["next"] == ids[0], "limit=1: next %r, expected %r" % (r.body["next"], ids[0])
    expect_status(s.request("GET", "/orders/?limit=1000"), 200, "limit=1000")
    for bad in ("0", "1001", "x", "-1", "1.5"):
        r = s.request("GET", "/orders/?limit=%s" % bad)
        expect_detail_error(r, 400, "limit=%r" % bad)
    for q in ("status=Foo", "status=pending", "user_id=x", "user_id=0", "user_id=-3", "after=abc"):
        r = s.request("GET", "/api/orders/?%s" % q)
        expect_detail_error(r, 400, "list ?%s" % q)

    # the list's order: asc (the default) or desc, nothing else
    for bad in ("DESC", "up", "1", "desc "):
        r = s.request("GET", "/api/orders/?order=%s" % bad.replace(" ", "%20"))
        expect_field_error(r, "order", "order=%r" % bad, "Select one of asc, desc.")

    def walk(query, limit, order=None):
        """Every page of the list ?query, following next; the ids."""
        walked = []
        after = None
        for _ in range(200):
            q = "/api/orders/?%slimit=%d" % (query + "&" if query else "", limit)
            if order:
                q += "&order=%s" % order
            if after:
                q += "&after=%s" % after
            r = expect_status(s.request("GET", q), 200, q)
            page = [o["order_id"] for o in r.body["results"]]
            assert len(page) <= limit, (q, page)
            walked += page
            after = r.body["next"]
            if after is None:
                break
            assert page and after == page[-1], "%s: next %r, last on page %r" % (q, after, page)
        return walked

    # pagination walks every order of the user once, oldest first (newest
    # first with order=desc), whatever their statuses (Pending, Cancelled,
    # maybe Processing now)
    def walk_user(limit):
        q = "user_id=%d" % user
        walked = walk(q, limit)
        assert walked == ids, "pagination limit=%d walked %r, expected %r" % (limit, walked, ids)
        assert walk(q, limit, "asc") == ids, "order=asc limit=%d" % limit
        back = walk(q, limit, "desc")
        assert back == ids[::-1], "order=desc limit=%d walked %r, expected %r" % (
            limit, back, ids[::-1])

    for limit in (1, 2, 3, 7, 100):
        walk_user(limit)
    # newest first, after an id: the ids below it
    r = expect_status(s.request("GET", "/api/orders/?user_id=%d&order=desc&after=%s&limit=2"
                                % (user, ids[4])), 200, "order=desc&after")
    assert [o["order_id"] for o in r.body["results"]] == [ids[3], ids[2]], r.body
    assert r.body["next"] == ids[2], r.body
    r = expect_status(s.request("GET", "/api/orders/?order=desc&after=ORD0"), 200,
                      "order=desc&after=ORD0")
    assert r.body == {"results": [], "next": None}, r.body
    r = expect_status(s.request("GET", "/api/orders/?order=desc&limit=1"), 200,
                      "order=desc, the newest")
    assert [o["order_id"] for o in r.body["results"]] == [other], r.body
    # after accepts the numeric form too
    r = expect_status(s.request("GET", "/api/orders/?user_id=%d&after=%s" % (user, num(ids[2]))),
                      200,
                      "after=<n>")
    assert [o["order_id"] for o in r.body["results"]] == ids[3:], r.body

    # status filters
    r = expect_status(s.request("GET", "/api/orders/?user_id=%d&status=Cancelled" % user), 200,
                      "status=Cancelled")
    assert [o["order_id"] for o in r.body["results"]] == cancelled, (r.body, cancelled)
    r = expect_status(s.request("GET", "/api/orders/?status=Cancelled&limit=1000"),
                      200, "all Cancelled")
    for o in r.body["results"]:
        assert o["status"] == "Cancelled", o
    rest = [i for i in ids if i not in cancelled]
    wait_until(lambda: all(s.status(i) == "Completed" for i in rest + [other]), 20,
               "listing orders to complete")
    r = expect_status(s.request("GET", "/orders?user_id=%d&status=Completed" % user), 200,
                      "status=Completed")
    assert [o["order_id"] for o in r.body["results"]] == rest, (r.body, rest)
    r = expect_status(s.request("GET", "/orders/?user_id=%d&status=Pending" % user),
                      200, "status=Pending")
    assert r.body["results"] == [] and r.body["next"] is None, r.body
    # Completed and Cancelled interleaved by id: the user's list still in id order
    for limit in (1, 2, 100):
        walk_user(limit)
    # every order, and every Completed one, both ways, in pages
    for q in ("", "status=Completed"):
        fwd = walk(q, 3)
        assert fwd and fwd == sorted(fwd, key=num_key), "%s: not oldest first: %r" % (q, fwd)
        back = walk(q, 3, "desc")
        assert back == fwd[::-1], "%s order=desc walked %r, expected %r" % (q, back, fwd[::-1])
    r = expect_status(s.request("GET", "/orders/?status=Completed&limit=5"),
                      200, "status=Completed all")
    assert 1 <= len(r.body["results"]) <= 5, r.body
    for o in r.body["results"]:
        assert o["status"] == "Completed", o
    r = expect_status(s.request("GET", "/orders/?user_id=%d" % (user + 1)), 200, "other user")
    assert [o["order_id"] for o in r.body["results"]] == [other], r.body
    r = expect_status(s.request("GET", "/orders/?user_id=%d" % (user + 2)), 200, "no orders user")
    assert r.body == {"results": [], "next": None}, r.body
    return cancelled


def dashboard(s):
    """/ and /dashboard/ serve the page, its policy naming its hashes."""
    html = check_page(s)
    assert "<title>order-processing</title>" in html, html[:300]
    # the JSON routes are not disturbed by the page's rows
    expect_status(s.request("GET", "/healthz"), 200, "healthz beside the page")
    expect_not_found(s.request("GET", "/index.html"), "/index.html")


def health(s):
    r = expect_status(s.request("GET", "/healthz"), 200, "healthz")
    assert r.body == {"status": "ok"}, r.body


def main():
    with System("api") as s:
        tz = {"TZ": "IST-5:30"}  # timestamps must still be UTC
        s.start_api(env=tz)
        health(s)
        dashboard(s)
        s.start_worker(workers=2, pickup_ms=300, processing_ms=300, lease_ms=2000, env=tz)
        s.wait_ready()
        done = lifecycle(s)
        amounts(s)
        paths(s, done)
        not_found(s)
        methods(s, done)
        validation(s)
        cancel(s)
        cancel_completed(s, done)
        listing(s)

        # Nothing left behind: every order Completed or Cancelled, metrics add up.
        def settled():
            m = s.metrics()
            c = m["order_status_count"]
            return m if c["Pending"] == 0 and c["Processing"] == 0 else None
        m = wait_until(settled, 20, "all orders to finish")
        check_metrics_consistent(m)
        assert m["order_status_count"]["Cancelled"] >= 2, m

        # readiness follows the worker heartbeat
        r = s.request("GET", "/readyz")
        expect_status(r, 200, "readyz with the worker running")
        s.stop_worker()
        wait_until(lambda: s.request("GET", "/readyz").status == 503, 20,
                   "/readyz to answer 503 once the worker stopped")
        r = s.request("GET", "/readyz")
        assert isinstance(r.body, dict), r.raw
        health(s)  # still alive
        s.stop_api()


if __name__ == "__main__":
    run(main)
