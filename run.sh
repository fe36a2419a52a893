#!/bin/sh
# Install what is missing, build, and run both daemons in the foreground
# on ./data, serving http://127.0.0.1:8000/. Ctrl-C stops both cleanly.
set -eu
cd "$(dirname "$0")"
. scripts/deps.sh
install_deps
build build

data=${DATA_DIR:-./data}
queue=${QUEUE:-/order-processing}
listen=${LISTEN:-127.0.0.1:8000}

# Background jobs of a script ignore SIGINT, so Ctrl-C reaches the
# daemons through this trap, as SIGTERM.
api="" worker=""
stop() {
	trap '' INT TERM
	kill -TERM $api $worker 2>/dev/null || true
}
trap stop INT TERM

build/worker-daemon/order-worker -D "$data" -q "$queue" &
worker=$!
build/api-daemon/order-api -D "$data" -q "$queue" -l "$listen" &
api=$!
echo "order-processing: serving http://$listen/ (data in $data); Ctrl-C stops" >&2

# Wait while both run; when one ends (Ctrl-C, or a failure), stop the other.
while kill -0 "$api" 2>/dev/null && kill -0 "$worker" 2>/dev/null; do
	sleep 0.5 &
	wait $! || true
done
stop
status=0
wait "$api" || status=$?
wait "$worker" || [ "$status" -ne 0 ] || status=$?
exit $status
