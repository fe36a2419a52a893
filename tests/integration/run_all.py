#!/usr/bin/env python3
"""Run every test_*.py here one after another (they share the small per-user
POSIX queue budget, so never in parallel) and print a summary.
Usage: python3 tests/integration/run_all.py [name-substring ...]"""

import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    tests = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    if sys.argv[1:]:
        tests = [t for t in tests if any(a in os.path.basename(t) for a in sys.argv[1:])]
    results = []
    for t in tests:
        name = os.path.basename(t)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, t], capture_output=True, text=True)
        dt = time.monotonic() - t0
        verdict = {0: "PASS", 77: "SKIP"}.get(p.returncode, "FAIL")
        results.append((name, verdict, dt))
        print("%-28s %s  %5.1f s" % (name, verdict, dt), flush=True)
        if verdict == "FAIL":
            lines = [x for x in (p.stdout + p.stderr).splitlines()]
            print("    " + "\n    ".join(lines[-15:]))
    failed = [r for r in results if r[1] == "FAIL"]
    print("%d passed, %d failed, %d skipped" % (
        sum(r[1] == "PASS" for r in results), len(failed), sum(r[1] == "SKIP" for r in results)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
