#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium driven by Selenium,
against the real daemons.

- The page (/) comes with its headers and a Content-Security-Policy whose
  hashes are those of its inline script and style (optest.dashboard).
- Readiness reads "Ready" and the heartbeat "worker last seen ... ago".
- Orders created through the API (users A and B, 12 of them, completed by
  the worker) show in the counts and at the top of the table, newest first,
  within seconds; the throughput graph draws points with a non-zero
  creation rate and the histogram counts the 12 completions.
- Rows per page 10: the first page holds the 10 newest, "Older" the rest,
  "Newer" the first page again.
- The worker stopped, 3 orders of user C stay Pending: the Pending filter
  lists exactly them, the user filter exactly A's orders, newest first.
- The order id box, or a row's link, opens one order and shows its fields
  (a Completed one has no Cancel); its Cancel makes
  it Cancelled (the API agrees); an order cancelled through the API behind
  the page's back, then cancelled on the page, shows the 409's message;
  the Cancel button of a table row cancels that order.
- A phone-sized viewport (390x844) has no horizontal overflow; the dark
  theme (prefers-color-scheme emulated) has a dark background.
- order-api stopped under the open page: a banner says it cannot be
  reached. Started again with --api-token-file: the open page asks for a
  token at the first 401, refuses a wrong one
  (asks again, saying so), shows the data with the right one, keeps it in
  sessionStorage (a reload does not ask again), and readiness says why it
  is not ready once no worker heartbeat is recent.
- The browser's log holds no error but the network errors of the answers
  the test provokes (400, 401, 404, 409, 503, a refused connection while
  order-api is stopped): no CSP violation, no script
  error. That the log is read and the policy enforced is shown first: a
  console.error and a refused style attribute both reach it.

Screenshots (desktop, phone, dark, the token prompt) go to $OP_SCREENSHOT_DIR,
else to the directory given as the argument (meson gives
build/tests/integration/dashboard-shots, overwritten by each run), else to a
new directory under /tmp; the test names it at the end.

Needs chromium, chromedriver and Selenium (Debian: chromium,
chromium-driver, python3-selenium); skipped (exit 77) without them. Run by
/usr/bin/python3, which sees Debian's Selenium (meson runs it so); run by
another python3 that lacks Selenium, it runs itself again under
/usr/bin/python3.
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import expect, run, skip, wait_until  # noqa: E402
from optest.daemons import System  # noqa: E402
from optest.dashboard import check_page  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
TOKEN = "tok-dashboard-1"
TOKEN_KEY = "order-processing.token"
# Network errors the test provokes on purpose, as Chromium logs them.
EXPECTED_NETWORK = ("status of 400", "status of 401", "status of 404", "status of 409",
                    "status of 503", "net::ERR_CONNECTION_REFUSED",
                    "net::ERR_CONNECTION_RESET", "net::ERR_EMPTY_RESPONSE")


def import_selenium():
    """Selenium's modules, or a skip. Debian's python3-selenium lives in
    /usr/lib/python3/dist-packages, which only Debian's own python3 sees."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        if (os.access(SYSTEM_PYTHON, os.X_OK) and
                os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON) and
                not os.environ.get("OP_DASHBOARD_REEXEC")):
            os.environ["OP_DASHBOARD_REEXEC"] = "1"
            sys.stdout.flush()
            os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
        skip("SKIP: Selenium is not importable by %s (Debian: apt-get install "
             "python3-selenium)" % sys.executable)


def find_browser():
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or \
        ("/usr/bin/chromedriver" if os.access("/usr/bin/chromedriver", os.X_OK) else None)
    if not chromium or not driver:
        skip("SKIP: chromium and chromedriver are needed (Debian: apt-get install "
             "chromium chromium-driver); found %r and %r" % (chromium, driver))
    return chromium, driver


class Browser:
    """One headless Chromium and the checks made through it."""

    def __init__(self, chromium, chromedriver, shots):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        self.shots = shots
        self.profile = tempfile.mkdtemp(prefix="op-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=1280,1000", "--no-first-run",
                    "--disable-extensions", "--disable-background-networking",
                    "--user-data-dir=" + self.profile):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service(chromedriver), options=opts)
        self.log = []

    def quit(self):
        try:
            self.d.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def el(self, id_):
        from selenium.webdriver.common.by import By
        return self.d.find_element(By.ID, id_)

    def text(self, id_):
        return self.js("const e = document.getElementById(arguments[0]);"
                       "return e ? e.textContent.trim() : null;", id_)

    def visible(self, id_):
        return self.js("const e = document.getElementById(arguments[0]);"
                       "return !!e && !e.hidden && e.getClientRects().length > 0;", id_)

    def rows(self):
        """The table's rows: (order id, status, user) each."""
        return [tuple(r) for r in self.js(
            "return [...document.querySelectorAll('#orders-body tr')]"
            ".map(tr => [tr.dataset.id, tr.dataset.status, tr.dataset.user]);")]

    def field(self, name):
        return self.js("const e = document.querySelector("
                       "'#order-fields dd[data-field=\"' + arguments[0] + '\"]');"
                       "return e ? e.textContent.trim() : null;", name)

    def wait(self, pred, what, timeout=10):
        return wait_until(pred, timeout, what, interval=0.1)

    def type_into(self, id_, text, enter=True):
        from selenium.webdriver.common.keys import Keys
        e = self.el(id_)
        e.clear()
        e.send_keys(text + (Keys.ENTER if enter else ""))

    def select(self, id_, value):
        from selenium.webdriver.support.ui import Select
        Select(self.el(id_)).select_by_value(value)

    def shot(self, name):
        path = os.path.join(self.shots, name + ".png")
        expect(self.d.save_screenshot(path), "could not save " + path)
        print("screenshot: " + path)

    def take_log(self):
        self.log += self.d.get_log("browser")

    def cdp(self, cmd, args):
        return self.d.execute_cdp_cmd(cmd, args)


def counts_show(b, want):
    return all(b.text("count-" + k) == str(v) for k, v in want.items())


def api_counts(s):
    c = s.metrics()
    return dict(c["order_status_count"], total=c["total_orders"])


def check_log_probe(b):
    """The browser log is read at all, and the policy is enforced: a
    console.error of ours shows up, and so does the refusal of a style
    attribute (a hash-based style-src blocks it). Then the log starts
    afresh."""
    b.js("console.error('op-test-probe')")
    b.wait(lambda: (b.take_log() or True) and any("op-test-probe" in e["message"]
                                                   for e in b.log),
           "the probe to reach the browser log", 5)
    blocked = b.js("const p = document.createElement('p');"
                   "p.setAttribute('style', 'color: rgb(1, 2, 3)');"
                   "document.body.append(p);"
                   "const c = getComputedStyle(p).color; p.remove(); return c;")
    expect(blocked != "rgb(1, 2, 3)", "a style attribute was applied: no CSP in force")
    b.wait(lambda: (b.take_log() or True) and any(
        "Content Security Policy" in e["message"] for e in b.log),
        "the CSP refusal of a style attribute to reach the browser log", 5)
    b.log = []


def check_log(b):
    b.take_log()
    bad = [e for e in b.log if "op-test-probe" not in e["message"] and (
        e["level"] in ("SEVERE", "WARNING") and not (
            e.get("source") == "network" and
            any(x in e["message"] for x in EXPECTED_NETWORK)) or
        "Content Security Policy" in e["message"] or
        "Content-Security-Policy" in e["message"])]
    for e in b.log:
        print("browser log: %s %s %s" % (e["level"], e.get("source"), e["message"][:300]))
    expect(not bad, "the browser logged errors: %r" % bad)


def luminance(b):
    rgb = b.js("return getComputedStyle(document.body).backgroundColor;")
    parts = [float(x) for x in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]
    return sum(parts) / (3 * 255.0), rgb


def no_overflow(b):
    """Nothing wider than the viewport, but inside a scrolling box."""
    return b.js("""
        const w = document.documentElement.clientWidth;
        if (document.documentElement.scrollWidth > w) return false;
        for (const e of document.querySelectorAll('body *')) {
            if (e.closest('.table-wrap') || e.closest('dialog')) continue;
            const r = e.getBoundingClientRect();
            if (r.width > 0 && (r.right > w + 1 || r.left < -1)) return false;
        }
        return true;""")


def desktop_part(s, b, url):
    a_user, b_user, c_user = 4101, 4102, 4103
    b.d.get(url)
    check_log_probe(b)
    b.wait(lambda: b.text("ready") == "Ready", "readiness to read Ready")
    b.wait(lambda: (b.text("heartbeat") or "").startswith("worker last seen "),
           "the heartbeat to read 'worker last seen ... ago'")
    expect(b.text("heartbeat").endswith(" ago"), "heartbeat %r" % b.text("heartbeat"))
    b.wait(lambda: counts_show(b, {"total": 0}), "the counts to show 0 orders")

    # orders through the API: the counts and the table follow
    made = []
    for i in range(12):
        made.append(s.create_order(user_id=a_user if i % 2 == 0 else b_user,
                                   item_ids=[100 + i, 7], total_amount=10 + i))
        time.sleep(0.15)  # pacing: creations spread over a few polls
    b.wait(lambda: b.rows() and b.rows()[0][0] == made[-1],
           "the newest order %s to top the table" % made[-1])
    wait_until(lambda: api_counts(s)["Completed"] == 12, 20, "the 12 orders to complete")
    b.wait(lambda: counts_show(b, {"Completed": 12, "total": 12, "Pending": 0}),
           "the counts to show 12 Completed")
    b.wait(lambda: [r[0] for r in b.rows()] == made[::-1] and
           all(r[1] == "Completed" for r in b.rows()),
           "the table to list the 12 orders newest first, Completed")

    # the graph and the histogram draw data
    graph = b.el("rate-graph")
    b.wait(lambda: int(graph.get_attribute("data-points")) >= 3 and
           float(graph.get_attribute("data-max-created")) > 0 and
           float(graph.get_attribute("data-max-completed")) > 0,
           "the throughput graph to draw created and completed rates")
    d = b.el("rate-line-created").get_attribute("d")
    expect(d.startswith("M") and d.count("L") >= 2, "created line %r" % d)
    b.wait(lambda: b.el("hist").get_attribute("data-total") == "12" and
           b.js("return [...document.querySelectorAll('#hist rect.bar')]"
                ".reduce((n, r) => n + Number(r.dataset.count), 0)") == 12,
           "the histogram to count 12 completions in its bars")

    # paging by the list's cursor, 10 rows a page
    b.select("page-size", "10")
    b.wait(lambda: [r[0] for r in b.rows()] == made[::-1][:10], "page 1 of 10 rows")
    b.el("page-older").click()
    b.wait(lambda: [r[0] for r in b.rows()] == made[::-1][10:] and
           b.text("page-info") == "page 2", "page 2: the 2 oldest")
    expect(b.js("return document.getElementById('page-older').disabled"),
           "Older is enabled on the last page")
    b.el("page-newer").click()
    b.wait(lambda: [r[0] for r in b.rows()] == made[::-1][:10], "back to page 1")
    b.select("page-size", "20")
    b.shot("desktop")

    # the worker stopped: new orders stay Pending
    s.stop_worker()
    pend = [s.create_order(user_id=c_user, item_ids=[900 + i], total_amount=1) for i in range(3)]
    b.wait(lambda: counts_show(b, {"Pending": 3, "total": 15}), "3 Pending in the counts")
    b.wait(lambda: [r[0] for r in b.rows()][:3] == pend[::-1], "the Pending orders on top")

    # filters
    b.select("filter-status", "Pending")
    b.wait(lambda: b.rows() == [(o, "Pending", str(c_user)) for o in pend[::-1]],
           "the Pending filter to list exactly the 3 Pending orders")
    b.select("filter-status", "")
    b.type_into("filter-user", str(a_user))
    mine = [o for i, o in enumerate(made) if i % 2 == 0][::-1]
    b.wait(lambda: [r[0] for r in b.rows()] == mine and
           all(r[2] == str(a_user) for r in b.rows()),
           "the user filter to list exactly user %d's orders" % a_user)
    b.type_into("filter-user", "0")
    b.wait(lambda: b.visible("filter-error") and "user_id" in b.text("filter-error"),
           "a bad user id to show the API's field error")
    b.type_into("filter-user", "")
    b.wait(lambda: len(b.rows()) == 15 and not b.visible("filter-error"),
           "no filter: every order again")

    # one order by id, and its cancel
    b.type_into("order-id", pend[1])
    b.wait(lambda: b.visible("order-detail") and b.field("order") == pend[1] and
           b.field("status") == "Pending", "order %s to open, Pending" % pend[1])
    expect(b.field("user") == str(c_user) and b.field("total") == "1.00" and
           b.field("items") == "901", "order fields: user %r total %r items %r" % (
               b.field("user"), b.field("total"), b.field("items")))
    expect(b.visible("order-cancel"), "no Cancel button on a Pending order")
    b.el("order-cancel").click()
    b.wait(lambda: b.field("status") == "Cancelled" and not b.visible("order-cancel"),
           "the cancelled order to show Cancelled")
    expect(s.status(pend[1]) == "Cancelled", "the API does not say Cancelled")
    b.wait(lambda: counts_show(b, {"Cancelled": 1, "Pending": 2}), "the counts after the cancel")

    # a cancel that lost the race: 409 and its message
    b.type_into("order-id", pend[0].replace("ORD", ""))
    b.wait(lambda: b.field("order") == pend[0] and b.visible("order-cancel"),
           "order %s to open by its number, with Cancel" % pend[0])
    s.request("POST", "/api/orders/%s/cancel/" % pend[0])
    b.el("order-cancel").click()
    want = "Only a Pending order can be cancelled; %s is Cancelled." % pend[0]
    b.wait(lambda: b.text("order-message") == want and
           "error" in b.el("order-message").get_attribute("class"),
           "the 409's message %r" % want)
    b.wait(lambda: b.field("status") == "Cancelled", "the order to show its status now")

    # a table row's Cancel
    b.js("document.querySelector('#orders-body button[data-cancel=\"' + arguments[0] + '\"]')"
         ".click()", pend[2])
    b.wait(lambda: (pend[2], "Cancelled", str(c_user)) in b.rows(),
           "the row's Cancel to cancel %s" % pend[2])
    expect(s.status(pend[2]) == "Cancelled", "the API does not say Cancelled")

    # a row's link opens its order
    b.js("document.querySelector('#orders-body tr[data-id=\"' + arguments[0] + '\"] a')"
         ".click()", made[3])
    b.wait(lambda: b.field("order") == made[3] and b.field("status") == "Completed" and
           not b.visible("order-cancel"), "a row's link to open %s" % made[3])

    # an unknown id
    b.type_into("order-id", "ORD999999")
    b.wait(lambda: b.text("order-message") == "No order ORD999999." and
           not b.visible("order-detail"), "an unknown id to say so")
    b.type_into("order-id", pend[1])
    b.wait(lambda: b.field("order") == pend[1], "the order to open again")
    b.shot("desktop-order")


def phone_and_dark(b):
    light, rgb = luminance(b)
    expect(light > 0.8, "the light theme's background is %s" % rgb)
    b.cdp("Emulation.setDeviceMetricsOverride",
          {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    b.d.refresh()
    b.wait(lambda: len(b.rows()) == 15, "the table on a phone")
    b.wait(lambda: b.el("rate-graph").get_attribute("data-points") not in ("0", "1"),
           "the graph on a phone")
    expect(b.js("return window.innerWidth") == 390, "viewport %r" % b.js("return window.innerWidth"))
    expect(no_overflow(b), "the page overflows a 390 px wide viewport")
    b.shot("phone")
    b.js("document.getElementById('orders-title').scrollIntoView()")
    b.shot("phone-orders")
    b.js("window.scrollTo(0, 0)")
    b.cdp("Emulation.setEmulatedMedia",
          {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    b.wait(lambda: luminance(b)[0] < 0.2, "a dark background in the dark theme")
    expect(no_overflow(b), "the dark page overflows a 390 px wide viewport")
    b.shot("phone-dark")
    b.cdp("Emulation.clearDeviceMetricsOverride", {})
    b.d.refresh()
    b.wait(lambda: len(b.rows()) == 15, "the table in the dark theme")
    b.shot("desktop-dark")
    b.cdp("Emulation.setEmulatedMedia", {"features": []})


def token_part(s, b, url, token_file):
    # the API goes away under the open page, and comes back with tokens
    b.wait(lambda: len(b.rows()) == 15 and not b.visible("banner"), "the page, served")
    s.stop_api()
    b.wait(lambda: b.visible("banner") and
           b.text("banner").startswith("Cannot reach order-api"),
           "the banner saying order-api cannot be reached")
    s.start_api(extra=["--api-token-file", token_file])
    check_page(s)   # the page itself needs no token
    dialog_open = "return document.getElementById('token-dialog').open"
    b.wait(lambda: b.js(dialog_open), "the token prompt at the API's first 401")
    b.wait(lambda: not b.visible("banner"), "the banner to go once order-api answers")
    expect(not b.visible("token-error"), "the first prompt says a token was refused")
    b.shot("token-prompt")
    b.type_into("token-input", "not-the-token")
    b.wait(lambda: b.js(dialog_open) and b.visible("token-error") and
           "not accepted" in b.text("token-error"), "the prompt again, the token refused")
    b.type_into("token-input", TOKEN)
    total = s.request("GET", "/api/orders/metrics/",
                      headers={"Authorization": "Bearer " + TOKEN}).body["total_orders"]
    b.wait(lambda: not b.js(dialog_open) and b.text("count-total") == str(total) and
           len(b.rows()) == 15 and not b.visible("banner"), "the data with the right token")
    expect(b.js("return sessionStorage.getItem(arguments[0])", TOKEN_KEY) == TOKEN,
           "the token is not in sessionStorage")
    # no worker since the desktop part: not ready, and why
    b.wait(lambda: b.text("ready") == "Not ready" and
           (b.text("ready-reason") or "").startswith("not ready: no worker heartbeat"),
           "readiness to say there is no worker heartbeat", 20)
    b.d.refresh()
    b.wait(lambda: b.text("count-total") == str(total), "the data after a reload")
    expect(not b.js(dialog_open), "a reload asked for the token again")


def main():
    import_selenium()
    chromium, chromedriver = find_browser()
    shots = os.environ.get("OP_SCREENSHOT_DIR") or (sys.argv[1] if len(sys.argv) > 1 else
                                                    tempfile.mkdtemp(prefix="op-dashboard-shots-"))
    os.makedirs(shots, exist_ok=True)
    with System("dashboard") as s:
        token_file = os.path.join(s.tmp, "tokens")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        s.start_api()
        s.start_worker(workers=2, pickup_ms=100, processing_ms=200)
        s.wait_ready()
        check_page(s)
        url = "http://127.0.0.1:%d/" % s.port
        b = Browser(chromium, chromedriver, shots)
        try:
            desktop_part(s, b, url)
            phone_and_dark(b)
            token_part(s, b, url, token_file)
            check_log(b)
        finally:
            b.quit()
    print("screenshots in " + shots)


if __name__ == "__main__":
    run(main)
