#!/bin/sh
# bench/run.sh: the order-processing benchmark; bench/run.py runs it (see
# bench/README.md and bench/run.sh --help).
exec python3 "$(dirname "$0")/run.py" "$@"
