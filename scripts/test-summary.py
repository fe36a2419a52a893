#!/usr/bin/env python3
"""Sum the results of `meson test` runs: one line per build, then the
total as 'N passed, N failed' (a skipped test counts as neither)."""
import json
import sys

passed = failed = skipped = 0
for build in sys.argv[1:]:
    p = f = s = 0
    try:
        with open(f"{build}/meson-logs/testlog.json") as log:
            for line in log:
                result = json.loads(line)["result"]
                if result in ("OK", "EXPECTEDFAIL"):
                    p += 1
                elif result == "SKIP":
                    s += 1
                else:
                    f += 1
    except FileNotFoundError:
        f += 1
        print(f"{build}: no test log (the build or the test run failed)")
    print(f"{build}: {p} passed, {f} failed, {s} skipped")
    passed, failed, skipped = passed + p, failed + f, skipped + s
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
