#!/bin/sh
# The bench suite's bench_smoke: bench/run.sh --smoke must run clean and
# write its report and charts to OUT, which must read back
# (check_charts.py: well-formed SVG with the series and numbers of the
# tables, and index.html).
#     bench/smoke_test.sh OUT [run.sh options]
set -u
bench=$(dirname "$0")
out=$1
shift
rm -f "$out"/report.txt "$out"/results.tsv "$out"/curve.tsv "$out"/ratios.svg \
    "$out"/create-connections.svg "$out"/index.html
"$bench/run.sh" --smoke --out "$out" "$@" || exit 1
exec python3 "$bench/check_charts.py" "$out"
