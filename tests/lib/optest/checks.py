"""Failing a test, waiting, soft checks and the exit convention.

TestFailure, fail(), expect(), wait_until(), tail(), Soft, skip(),
require_executable(), run().
"""

import os
import sys
import time
import traceback


class TestFailure(AssertionError):
    """Raised by the helpers when the system does not behave."""


def fail(msg):
    raise TestFailure(msg)


def expect(ok, msg):
    """A hard check: fail(msg) unless ok."""
    if not ok:
        fail(msg)


def wait_until(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns a true value, which is returned.
    Fails with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
            last_exc = None
        except TestFailure:
            raise
        except Exception as e:  # keep polling through transient errors
            last_exc = e
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            fail("timed out after %.1f s waiting for %s%s" % (timeout, what, extra))
        time.sleep(interval)


def tail(path, n=50):
    """The last n lines of a file (a log), or why it cannot be read."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(lines[-n:])


class Soft:
    """Soft checks: a failed one is recorded (and shown at once) and the
    test goes on; report() fails the test with all of them at the end.

    verbose: print "ok: what" for a check that holds too.
    prefix: what a failure shown at once starts with.
    stream: where it is shown (default stderr)."""

    def __init__(self, verbose=False, prefix="CHECK FAILED: ", stream=None):
        self.verbose = verbose
        self.prefix = prefix
        self.stream = stream
        self.passed = 0
        self.failures = []

    def check(self, ok, what, detail=""):
        """Record what as a failure unless ok; returns bool(ok)."""
        if ok:
            self.passed += 1
            if self.verbose:
                print("ok: " + what)
            return True
        self.add(what + (": " + detail if detail else ""))
        return False

    def add(self, msg):
        """Record a failure."""
        self.failures.append(msg)
        (self.stream or sys.stderr).write("%s%s\n" % (self.prefix, msg))
        (self.stream or sys.stderr).flush()

    def step(self, name, fn, *args):
        """Run fn(*args); an exception there is recorded as a failure of
        name and the test goes on.  Returns the failures it added."""
        n = len(self.failures)
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - recorded, not swallowed
            traceback.print_exc()
            self.add("%s: %s: %s" % (name, type(e).__name__, e))
        return len(self.failures) - n

    def __len__(self):
        return len(self.failures)

    def report(self, what="check(s) failed"):
        """Fail with every recorded failure, if there is any."""
        if self.failures:
            fail("%d %s:\n  - %s" % (len(self.failures), what,
                                     "\n  - ".join(self.failures)))


def skip(why):
    """Exit 77, meson's "skipped"."""
    sys.stderr.write(why + "\n")
    sys.exit(77)


def require_executable(*paths):
    """Skip the test (exit 77) unless every path is an executable."""
    for p in paths:
        if not os.access(p, os.X_OK):
            skip("not built: %s" % p)


def run(test_main, needs=None):
    """Entry point for a test script: exit 0 on success, 1 with a message,
    77 (skipped) when an executable in needs is not built (default: the
    two daemons)."""
    if needs is None:
        from optest import daemons
        needs = (daemons.ORDER_API, daemons.ORDER_WORKER)
    require_executable(*needs)
    t0 = time.monotonic()
    name = os.path.basename(sys.argv[0])
    try:
        test_main()
    except (AssertionError, Exception) as e:
        sys.stderr.write("Traceback (most recent call last):\n")
        traceback.print_tb(e.__traceback__)
        sys.stderr.write("FAIL %s: %s: %s\n" % (name, type(e).__name__, e))
        sys.exit(1)
    print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
    sys.exit(0)
