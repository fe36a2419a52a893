#!/usr/bin/env bash
# bench/run.sh: the order-processing benchmark.  See bench/README.md.
#
#   bench/run.sh [--smoke] [--seconds N] [options]
#
# Builds the daemons (meson compile -C build) and the ceiling server
# (bench/ceiling.c), starts them on temporary data directories, private
# queues and free loopback ports, runs wrk for every case and prints a table
# of req/s, p50, p99 and the ratio to the ceiling measured in the same run.
# The creates are also measured against Redis with appendfsync always
# (redis-benchmark LPUSH), in interleaved rounds on the same machine.
# A case whose run was not clean (non-2xx answers, socket errors, too few
# server threads, a daemon that died, orders that never completed, a Redis
# error or a Redis whose durability settings did not take) prints BROKEN and
# its reason instead of numbers, and the script exits 1.

set -uo pipefail
# shellcheck disable=SC2317 # cleanup and friends run from traps

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
UTIL=(python3 "$HERE/util.py")

usage() {
	cat <<EOF
usage: bench/run.sh [--smoke] [--seconds N] [options]

  --smoke             every case once for about 1 s, at 8 connections, with
                      tiny counts and delays (CI, about 20 s); exit 0 only
                      if every case ran clean
  --seconds N         wrk duration of each timed case (default 10, smoke 1)
  --rounds N          rounds of the interleaved create and Redis cases; the
                      table gives their medians (default 3, smoke 1)
  --orders-many N     orders stored for the "many orders" cases (default
                      1000000, smoke 2000)
  --fill-cap S        give up filling after S seconds and measure with what
                      was stored (default 600, smoke 30)
  --default-orders N  orders for the end-to-end case with the default delays
                      (default 10000, smoke 200)
  --threads N         order-api --threads and the ceiling's threads (default
                      64; must be >= every case's connections)
  --workers N         order-worker --workers (default: nproc)
  --wrk-threads N     wrk -t (default: nproc)
  --build-dir DIR     meson build directory (default: build)
  --no-build          use the binaries already built
  --tmp DIR           where the temporary data directories go (default
                      \$BENCH_TMPDIR or /var/tmp; a tmpfs makes fsync free)
  --keep              keep the temporary directory (logs, data) afterwards
  -h, --help          this help
EOF
}

# ------------------------------------------------------------------ options
START_TIME=$(date +%s)
SMOKE=0
SECS=""
ORDERS_MANY=""
ORDERS_FEW=1000
FILL_CAP=""
DEFAULT_ORDERS=""
THREADS=64
NPROC=$(nproc)
WORKERS=$NPROC
WRK_THREADS=$NPROC
BUILD_DIR=build
NO_BUILD=0
KEEP=0
TMP_PARENT=${BENCH_TMPDIR:-/var/tmp}
WRK_TIMEOUT=10
ROUNDS=""

need_num() {
	[[ ${2:-} =~ ^[0-9]+$ && $2 -gt 0 ]] || { echo "run.sh: $1 needs a positive number" >&2; exit 2; }
}
while [[ $# -gt 0 ]]; do
	case $1 in
	--smoke) SMOKE=1 ;;
	--seconds) need_num "$1" "${2:-}"; SECS=$2; shift ;;
	--rounds) need_num "$1" "${2:-}"; ROUNDS=$2; shift ;;
	--orders-many) need_num "$1" "${2:-}"; ORDERS_MANY=$2; shift ;;
	--fill-cap) need_num "$1" "${2:-}"; FILL_CAP=$2; shift ;;
	--default-orders) need_num "$1" "${2:-}"; DEFAULT_ORDERS=$2; shift ;;
	--threads) need_num "$1" "${2:-}"; THREADS=$2; shift ;;
	--workers) need_num "$1" "${2:-}"; WORKERS=$2; shift ;;
	--wrk-threads) need_num "$1" "${2:-}"; WRK_THREADS=$2; shift ;;
	--build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift ;;
	--no-build) NO_BUILD=1 ;;
	--tmp) TMP_PARENT=${2:?--tmp needs a directory}; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
if ((SMOKE)); then
	: "${SECS:=1}" "${ORDERS_MANY:=2000}" "${FILL_CAP:=30}" "${DEFAULT_ORDERS:=200}" "${ROUNDS:=1}"
	ORDERS_FEW=200
else
	: "${SECS:=10}" "${ORDERS_MANY:=1000000}" "${FILL_CAP:=600}" "${DEFAULT_ORDERS:=10000}" "${ROUNDS:=3}"
fi
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
API_BIN="$BUILD_DIR/api-daemon/order-api"
WORKER_BIN="$BUILD_DIR/worker-daemon/order-worker"
CONNS_LOW=16
CONNS_HIGH=64
# The end-to-end case with "the default delays": 2 s + 3 s, as shipped;
# the smoke run shortens them (it checks that the case works, not how long
# it takes).
PICKUP_MS=2000
PROCESSING_MS=3000
if ((SMOKE)); then
	# One connection count, and each case once: wrk runs whole seconds,
	# so the smoke run is about one second per case.
	CONNS_LOW=8
	CONNS_HIGH=8
	PICKUP_MS=200
	PROCESSING_MS=300
fi
if ((THREADS < CONNS_HIGH)); then
	echo "run.sh: --threads $THREADS is fewer than the $CONNS_HIGH connections of the cases (civetweb serves a connection per thread)" >&2
	exit 2
fi
CONNS_EACH=$CONNS_LOW
((CONNS_HIGH != CONNS_LOW)) && CONNS_EACH="$CONNS_LOW $CONNS_HIGH"
# Fills create orders as fast as they can while util.py polls the API; leave
# it a free server thread (civetweb keeps a thread per keep-alive connection).
FILL_CONNS=$((THREADS - 2 < CONNS_HIGH ? THREADS - 2 : CONNS_HIGH))
((FILL_CONNS >= 1)) || FILL_CONNS=1

say() { printf '== [%3d s] %s\n' "$(($(date +%s) - START_TIME))" "$*" >&2; }

# ------------------------------------------------------------------ state
RUN=""
RESULTS=""
EXTRAS=""
SETTINGS=""
CEIL_PID=""
API_PID=""
WORKER_PID=""
WORKER_KIDS=""
WRK_PID=""
REDIS_PID=""
SAMPLER_PIDS=()
QUEUES=()

alive() { # alive PID: running and not a zombie
	local line s
	[[ -n ${1:-} ]] || return 1
	read -r line 2>/dev/null </proc/"$1"/stat || return 1
	s=${line##*) }
	s=${s%% *}
	[[ $s != Z && $s != X ]]
}

kids_of() { ps -o pid= --ppid "$1" 2>/dev/null | tr -s ' \n' ' '; }

warn() {
	printf 'warning: %s\n' "$*" >&2
	[[ -n $EXTRAS ]] && printf 'warning: %s\n' "$*" >>"$EXTRAS"
}

# stop_pid PID NAME [TIMEOUT]: SIGTERM, wait, SIGKILL the process (and the
# children it had) if it does not exit; a non-zero exit status is a warning.
stop_pid() {
	local pid=$1 name=$2 timeout=${3:-20} kids i rc was_alive=1
	[[ -n $pid ]] || return 0
	kids=$(kids_of "$pid")
	alive "$pid" || was_alive=0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < timeout * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		warn "$name (pid $pid) still running $timeout s after SIGTERM: killed"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rc=$?
	if ((!was_alive)); then
		warn "$name (pid $pid) had died before the end of its phase (status $rc)"
	elif ((rc != 0)); then
		warn "$name (pid $pid) exited with status $rc after SIGTERM"
	fi
	for i in $kids; do
		alive "$i" && kill -KILL "$i" 2>/dev/null
	done
	return 0
}

stop_samplers() {
	local p
	for p in "${SAMPLER_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	SAMPLER_PIDS=()
}

stop_api() { stop_pid "$API_PID" order-api 30; API_PID=""; }
stop_worker() {
	local k
	[[ -n $WORKER_PID ]] && WORKER_KIDS="$WORKER_KIDS $(kids_of "$WORKER_PID")"
	stop_pid "$WORKER_PID" order-worker 30
	WORKER_PID=""
	for k in $WORKER_KIDS; do # children that outlived their master
		if alive "$k" && [[ $(readlink "/proc/$k/exe" 2>/dev/null) == "$(readlink -f "$WORKER_BIN")"* ]]; then
			warn "order-worker child $k outlived its master: killed"
			kill -KILL "$k" 2>/dev/null
		fi
	done
	WORKER_KIDS=""
}
stop_ceiling() { stop_pid "$CEIL_PID" ceiling 10; CEIL_PID=""; }
stop_redis() { stop_pid "$REDIS_PID" redis-server 20; REDIS_PID=""; }

cleanup() {
	set +e
	trap - EXIT INT TERM
	if [[ -n $WRK_PID ]]; then
		kill -TERM "$WRK_PID" 2>/dev/null
		wait "$WRK_PID" 2>/dev/null
	fi
	stop_samplers
	stop_worker
	stop_api
	stop_ceiling
	stop_redis
	if ((${#QUEUES[@]})); then
		"${UTIL[@]}" mq-unlink "${QUEUES[@]}"
	fi
	if [[ -n $RUN && -d $RUN ]]; then
		if ((KEEP)); then
			echo "kept $RUN" >&2
		else
			rm -rf "$RUN"
		fi
	fi
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

fatal() { # a broken setup: nothing can be measured
	echo "BROKEN: $*" >&2
	exit 1
}

# ------------------------------------------------------------------ build
# apt_install PACKAGE...: as root, with apt-get (the lists refreshed if the
# first try fails); nothing otherwise.
apt_install() {
	[[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null || return 1
	say "installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1; }
}
if ! command -v wrk >/dev/null 2>&1; then
	apt_install wrk
	command -v wrk >/dev/null 2>&1 || fatal "wrk is not installed (apt-get install wrk)"
fi
# The Redis reference: without it the full run skips only the Redis cases
# (and says so); the smoke run, which CI runs as root, counts it as broken.
have_redis() {
	local b
	for b in redis-server redis-benchmark redis-cli; do
		[[ -x $(type -P "$b") ]] || return 1
	done
}
REDIS_WHY=""
if ! have_redis; then
	apt_install redis-server redis-tools
	have_redis || REDIS_WHY="redis-server and redis-benchmark are not installed and could not be installed here ($( [[ $(id -u) -eq 0 ]] && echo 'apt-get install redis-server redis-tools failed' || echo 'not root: apt-get install redis-server redis-tools'))"
fi
command -v python3 >/dev/null || fatal "python3 is needed"
command -v pkg-config >/dev/null || fatal "pkg-config is needed"

mkdir -p "$TMP_PARENT" || fatal "cannot create $TMP_PARENT"
RUN=$(mktemp -d "$TMP_PARENT/op-bench.XXXXXX") || fatal "mktemp in $TMP_PARENT failed"
RESULTS=$RUN/results.tsv
ROUNDS_TSV=$RUN/rounds.tsv
EXTRAS=$RUN/extras.txt
SETTINGS=$RUN/settings.txt
: >"$RESULTS"
: >"$ROUNDS_TSV"
: >"$EXTRAS"
: >"$SETTINGS"

if ((!NO_BUILD)); then
	say "building the daemons in $BUILD_DIR"
	if [[ ! -f $BUILD_DIR/build.ninja ]]; then
		meson setup "$BUILD_DIR" "$ROOT" >"$RUN/build.log" 2>&1 ||
			{ tail -30 "$RUN/build.log" >&2; fatal "meson setup $BUILD_DIR failed"; }
	fi
	meson compile -C "$BUILD_DIR" >>"$RUN/build.log" 2>&1 ||
		{ tail -30 "$RUN/build.log" >&2; fatal "meson compile -C $BUILD_DIR failed"; }
fi
[[ -x $API_BIN && -x $WORKER_BIN ]] || fatal "no daemons in $BUILD_DIR (build them or drop --no-build)"
say "building the ceiling server"
# shellcheck disable=SC2046 # pkg-config output is meant to split
cc -O2 -std=gnu11 -Wall -Wextra -Werror -o "$RUN/ceiling" "$HERE/ceiling.c" \
	$(pkg-config --cflags --libs libcjson) -lcivetweb -lpthread >"$RUN/ceiling-build.log" 2>&1 ||
	{ cat "$RUN/ceiling-build.log" >&2; fatal "cannot build bench/ceiling.c (needs libcivetweb-dev libcjson-dev)"; }
cc -O2 -std=gnu11 -Wall -Wextra -Werror -o "$RUN/synccommit" "$HERE/synccommit.c" -llmdb \
	>"$RUN/synccommit-build.log" 2>&1 ||
	{ cat "$RUN/synccommit-build.log" >&2; fatal "cannot build bench/synccommit.c (needs liblmdb-dev)"; }
cc -O2 -std=gnu11 -Wall -Wextra -Werror -o "$RUN/pagecost" "$HERE/pagecost.c" \
	>"$RUN/pagecost-build.log" 2>&1 ||
	{ cat "$RUN/pagecost-build.log" >&2; fatal "cannot build bench/pagecost.c"; }
STORECOMMIT_BIN="$BUILD_DIR/bench/storecommit"
[[ -x $STORECOMMIT_BIN ]] || fatal "no $STORECOMMIT_BIN (build it or drop --no-build)"

# ------------------------------------------------------------------ settings
FSTYPE=$(stat -f -c %T "$RUN")
{
	echo "settings:"
	echo "  mode: $( ((SMOKE)) && echo smoke || echo full), $SECS s per timed case, wrk -t $WRK_THREADS --timeout ${WRK_TIMEOUT}s"
	echo "  cores: $NPROC ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
	echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "  threads: order-api --threads $THREADS, ceiling -t $THREADS; order-worker --workers $WORKERS"
	echo "  data: $RUN ($FSTYPE)"
	echo "  versions: $("$API_BIN" -V 2>&1 | head -1); $("$WORKER_BIN" -V 2>&1 | head -1); civetweb $(grep -m1 'define CIVETWEB_VERSION ' /usr/include/civetweb.h | cut -d'"' -f2); cJSON $(pkg-config --modversion libcjson); LMDB $(pkg-config --modversion lmdb 2>/dev/null || echo '?'); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); kernel $(uname -r)"
	echo "  source: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
	if [[ -z $REDIS_WHY ]]; then
		echo "  redis: $(redis-server --version 2>&1 | head -1 | cut -d' ' -f1-3); data in $RUN/redis-r<round> ($FSTYPE, the file system of the daemons' data directories), appendonly yes, appendfsync always, save \"\", no AOF rewrite; $(redis-benchmark --version 2>&1 | head -1 | cut -d' ' -f1-2) -P 1 -t lpush -d 80 --threads $WRK_THREADS (at most one per connection), $ROUNDS round(s)"
	else
		echo "  redis: not measured: $REDIS_WHY"
	fi
} >>"$SETTINGS"
[[ $FSTYPE == tmpfs || $FSTYPE == ramfs ]] &&
	warn "the data directory is on $FSTYPE: fsync costs nothing, so create and end-to-end numbers flatter the daemons"
if [[ -n $REDIS_WHY ]]; then
	if ((SMOKE)); then
		warn "the Redis reference cannot run: $REDIS_WHY; its cases are BROKEN"
	else
		warn "the Redis reference is SKIPPED: $REDIS_WHY; every other case runs"
	fi
fi

# ------------------------------------------------------------------ helpers
# add_row CASE CONNS STATE RPS P50 P99 REF TARGET NOTE
add_row() {
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$RESULTS"
}
broken_row() { # broken_row CASE CONNS REASON
	printf 'BROKEN %s (%s connections): %s\n' "$1" "$2" "$3" >&2
	add_row "$1" "$2" "BROKEN: $3" "" "" "" "" "" ""
}

# The cases run in rounds (ROUND set) go to $ROUNDS_TSV, a row per round,
# and reach the table as their medians (util.py rounds).
ROUND=""
round_row() { # round_row ROUND CASE CONNS STATE RPS P50 P99 REF TARGET NOTE PAIR
	local IFS=$'\t'
	printf '%s\n' "$*" >>"$ROUNDS_TSV"
}
case_ok() { # case_ok CASE CONNS RPS P50 P99 REF TARGET NOTE: a clean case
	if [[ -n $ROUND ]]; then
		round_row "$ROUND" "$1" "$2" OK "$3" "$4" "$5" "$6" "$7" "$8" "${PAIR:-}"
	else
		add_row "$1" "$2" OK "$3" "$4" "$5" "$6" "$7" "$8"
	fi
}
case_broken() { # case_broken CASE CONNS REASON
	if [[ -n $ROUND ]]; then
		printf 'BROKEN %s (%s connections, round %s): %s\n' "$1" "$2" "$ROUND" "$3" >&2
		round_row "$ROUND" "$1" "$2" "BROKEN: $3" "" "" "" "" "" "" ""
	else
		broken_row "$@"
	fi
}

slug() { tr -c 'a-zA-Z0-9\n' '-' <<<"$1" | tr -s '-'; }

# parse_wrk FILE RC: W_REQ W_RPS W_P50 W_P99 from a wrk run, or W_WHY.
parse_wrk() {
	local out=$1 rc=$2 line kv
	local -A v=()
	W_WHY=""
	line=$(grep '^BENCH_RESULT ' "$out" | tail -1)
	if ((rc != 0)); then
		W_WHY="wrk exited with $rc: $(tail -3 "$out" | tr '\n' ' ')"
		return 1
	fi
	if [[ -z $line ]]; then
		W_WHY="wrk printed no result: $(tail -3 "$out" | tr '\n' ' ')"
		return 1
	fi
	for kv in ${line#BENCH_RESULT }; do
		v[${kv%%=*}]=${kv#*=}
	done
	if grep -q 'Non-2xx or 3xx responses' "$out" || ((${v[status]:-1} != 0)); then
		W_WHY="$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$out" || echo "status errors: ${v[status]}")"
		return 1
	fi
	if grep -q 'Socket errors' "$out" ||
		((${v[connect]:-1} + ${v[read]:-1} + ${v[write]:-1} + ${v[timeout]:-1} != 0)); then
		W_WHY="$(grep -o 'Socket errors:.*' "$out" || echo "socket errors")"
		return 1
	fi
	if ((${v[requests]:-0} == 0 || ${v[duration_us]:-0} == 0)); then
		W_WHY="no request completed"
		return 1
	fi
	W_REQ=${v[requests]}
	W_DUR=$(awk -v d="${v[duration_us]}" 'BEGIN { printf "%.3f", d / 1e6 }')
	W_P50=${v[p50_us]}
	W_P99=${v[p99_us]}
	W_RPS=$(awk -v r="$W_REQ" -v d="${v[duration_us]}" 'BEGIN { printf "%.1f", r / (d / 1e6) }')
	return 0
}

# wrk_timed CONNS URL SCRIPT THREADS_SERVING [VAR=VALUE...]: a -d SECS run.
wrk_timed() {
	local conns=$1 url=$2 script=$3 serving=$4 t rc out
	shift 4
	if ((conns > serving)); then
		W_WHY="the server has $serving threads for $conns connections"
		return 1
	fi
	t=$WRK_THREADS
	((t > conns)) && t=$conns
	out="$RUN/wrk-$((++WRK_RUNS)).txt"
	env BENCH_THREADS="$t" "$@" wrk -t "$t" -c "$conns" -d "${SECS}s" --timeout "${WRK_TIMEOUT}s" \
		-s "$script" "$url" >"$out" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID"
	rc=$?
	WRK_PID=""
	parse_wrk "$out" "$rc"
}
WRK_RUNS=0

# fill URL TARGET_TOTAL: create orders with wrk (post.lua with a quota) until
# order-api stores TARGET_TOTAL orders or FILL_CAP seconds pass.  Sets
# F_START (epoch, just before wrk starts), F_SECS (from then until the
# target was seen stored, polling every 50 ms), F_TOTAL, F_REACHED (1/0),
# and the wrk figures.
fill() {
	local url=$1 target=$2 have need t rc out c deadline
	have=$(api_counts "$url" | cut -d' ' -f1) || { W_WHY="cannot read the order counts"; return 1; }
	need=$((target - have))
	F_TOTAL=$have F_SECS=0 F_REACHED=1
	((need > 0)) || return 0
	if ((FILL_CONNS > API_THREADS_REAL)); then
		W_WHY="order-api has $API_THREADS_REAL threads for $FILL_CONNS connections"
		return 1
	fi
	t=$WRK_THREADS
	((t > FILL_CONNS)) && t=$FILL_CONNS
	out="$RUN/wrk-$((++WRK_RUNS)).txt"
	F_START=$EPOCHREALTIME
	deadline=$((SECONDS + FILL_CAP))
	BENCH_THREADS=$t BENCH_QUOTA=$need BENCH_POOL=4096 \
		wrk -t "$t" -c "$FILL_CONNS" -d "$((FILL_CAP + 60))s" --timeout "${WRK_TIMEOUT}s" \
		-s "$HERE/post.lua" "$url/api/orders/" >"$out" 2>&1 &
	WRK_PID=$!
	F_REACHED=0
	while :; do
		if c=$(api_counts "$url"); then
			F_TOTAL=${c%% *}
			if ((F_TOTAL >= target)); then
				F_REACHED=1
				break
			fi
		fi
		alive "$WRK_PID" || break
		((SECONDS < deadline)) || break
		sleep 0.05
	done
	F_SECS=$(elapsed "$F_START")
	kill -INT "$WRK_PID" 2>/dev/null # wrk prints its summary on SIGINT
	wait "$WRK_PID"
	rc=$?
	WRK_PID=""
	parse_wrk "$out" "$rc"
}

# check_api_after BEFORE: W_WHY if order-api died or answered non-2xx since.
check_api_after() {
	local before=$1 after b a
	if ! alive "$API_PID"; then
		W_WHY="order-api died (see its log: $(tail -2 "$API_LOG" | tr '\n' ' '))"
		return 1
	fi
	after=$(api_codes) || { W_WHY="cannot read order-api's /metrics"; return 1; }
	b=${before#* } a=${after#* }
	if ((a > b)); then
		W_WHY="order-api answered $((a - b)) non-2xx responses (its /metrics)"
		return 1
	fi
	return 0
}

# start_sampler OUT PID...: RSS maxima of the PIDs and their children
start_sampler() {
	"${UTIL[@]}" rss "$@" &
	SAMPLER_PIDS+=($!)
}
rss_mib() { # rss_mib FILE: "X MiB (anon Y MiB, N processes)"
	local vm anon n
	read -r vm anon n 2>/dev/null <"$1" || { echo "?"; return; }
	awk -v v="$vm" -v a="$anon" -v n="$n" \
		'BEGIN { printf "%.1f MiB (anonymous %.1f MiB, %d process%s)", v / 1024, a / 1024, n, n == 1 ? "" : "es" }'
}

# ------------------------------------------------------------------ HTTP in bash
# Python starts in about 0.4 s on a loaded 2-core machine, so the frequent
# small requests are made by bash itself over /dev/tcp (HTTP/1.0: the server
# closes the connection, which frees its thread at once).

# http_get URL: sets H_CODE (000 when nothing answered) and H_BODY.
http_get() {
	local url=$1 hostport path line fd
	H_CODE=000 H_BODY=""
	url=${url#http://}
	hostport=${url%%/*}
	path=/${url#*/}
	[[ $url == */* ]] || path=/
	# (the braces keep 2>/dev/null from sticking to the shell with exec)
	{ exec {fd}<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&"$fd"
	if IFS= read -r -t 10 line <&"$fd" && [[ $line =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]]; then
		H_CODE=${BASH_REMATCH[1]}
		IFS= read -r -d '' -t 10 H_BODY <&"$fd"
		H_BODY=${H_BODY#*$'\r\n\r\n'}
	fi
	exec {fd}>&-
	[[ $H_CODE != 000 ]]
}

http_status() { http_get "$1"; echo "$H_CODE"; }

# elapsed EPOCH [EPOCH2]: seconds from EPOCH to EPOCH2 (default now)
elapsed() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.3f", b - a }'; }

# wait_done URL TIMEOUT: wait until every order is Completed (or Cancelled).
# Sets D_EPOCH (when it saw that) and COUNTS; returns 1 on timeout.
wait_done() {
	local deadline=$((SECONDS + $2)) t p pr c ca
	COUNTS="no answer"
	while :; do
		if COUNTS=$(api_counts "$1"); then
			read -r t p pr c ca <<<"$COUNTS"
			if ((p == 0 && pr == 0 && c + ca == t)); then
				D_EPOCH=$EPOCHREALTIME
				return 0
			fi
		fi
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# api_counts URL: "total pending processing completed cancelled" from
# GET /api/orders/metrics/
api_counts() {
	local k out=""
	http_get "$1/api/orders/metrics/" && [[ $H_CODE == 200 ]] || return 1
	for k in total_orders Pending Processing Completed Cancelled; do
		[[ $H_BODY =~ \"$k\":\ *([0-9]+) ]] || return 1
		out="$out${out:+ }${BASH_REMATCH[1]}"
	done
	echo "$out"
}

# api_commits: "journal-flushes lmdb-commits", order-api's journal records
# (one flush each) and LMDB transactions of new orders so far (its /metrics)
api_commits() {
	local journal
	http_get "$API_URL/metrics" && [[ $H_CODE == 200 ]] || return 1
	[[ $H_BODY =~ order_processing_journal_writes_total\ ([0-9]+) ]] || return 1
	journal=${BASH_REMATCH[1]}
	[[ $H_BODY =~ order_processing_commits_total\ ([0-9]+) ]] || return 1
	echo "$journal ${BASH_REMATCH[1]}"
}

# api_codes: "answered non2xx", the HTTP requests order-api's /metrics has
# counted and how many of them were not 2xx.
api_codes() {
	local line total=0 bad=0 n
	http_get "$API_URL/metrics" && [[ $H_CODE == 200 ]] || return 1
	while IFS= read -r line; do
		[[ $line == order_processing_http_requests_total\{* ]] || continue
		n=${line##* }
		n=${n%%.*}
		total=$((total + n))
		[[ $line =~ code=\"2[0-9][0-9]\" ]] || bad=$((bad + n))
	done <<<"$H_BODY"
	echo "$total $bad"
}

# free_port: a loopback port nobody listens on now (a lost race is retried
# by the callers).
free_port() {
	local port used=" " addr st
	while read -r _ addr _ st _; do
		[[ $st == 0A ]] && used="$used$((16#${addr##*:})) "
	done < <(tail -q -n +2 /proc/net/tcp /proc/net/tcp6 2>/dev/null)
	while :; do
		port=$((20000 + RANDOM % 40000))
		[[ $used == *" $port "* ]] || break
	done
	echo "$port"
}

# ------------------------------------------------------------------ daemons
new_queue() { # new_queue PHASE: sets Q (not in a subshell: QUEUES must see it)
	Q="/op-bench-$$-$1-$RANDOM"
	QUEUES+=("$Q")
}

wait_http() { # wait_http URL PID SECONDS
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		alive "$2" || return 1
		http_get "$1" && [[ $H_CODE == 200 ]] && return 0
		sleep 0.1
	done
	return 1
}

# start_api PHASE DATADIR QUEUE [EXTRA ARGS]: sets API_PID API_URL API_LOG
# API_THREADS_REAL, or returns 1 with START_WHY.
start_api() {
	local phase=$1 data=$2 queue=$3 port
	shift 3
	API_LOG="$RUN/order-api-$phase.log"
	for _ in 1 2 3; do
		port=$(free_port)
		# wrk's connections all come from one address: let it hold
		# every thread, as a proxy in front would.
		"$API_BIN" -c /dev/null -D "$data" -q "$queue" -l "127.0.0.1:$port" \
			-t "$THREADS" --max-connections-per-address "$THREADS" \
			"$@" >>"$API_LOG" 2>&1 &
		API_PID=$!
		API_URL="http://127.0.0.1:$port"
		if wait_http "$API_URL/healthz" "$API_PID" 30; then
			API_THREADS_REAL=$(grep -o 'with [0-9]* threads' "$API_LOG" | tail -1 | cut -d' ' -f2)
			if [[ -z $API_THREADS_REAL ]]; then
				warn "order-api's log does not say its thread count; assuming --threads $THREADS"
				API_THREADS_REAL=$THREADS
			fi
			return 0
		fi
		if alive "$API_PID"; then
			stop_api
			START_WHY="order-api did not answer /healthz within 30 s"
			return 1
		fi
		wait "$API_PID" 2>/dev/null
		API_PID=""
		grep -qi 'in use' "$API_LOG" || break # anything but a lost port race is fatal
	done
	START_WHY="order-api did not start: $(tail -3 "$API_LOG" | tr '\n' ' ')"
	return 1
}

# start_worker PHASE DATADIR QUEUE PICKUP_MS PROCESSING_MS: sets WORKER_PID
start_worker() {
	local phase=$1 data=$2 queue=$3 i kids
	WORKER_LOG="$RUN/order-worker-$phase.log"
	"$WORKER_BIN" -c /dev/null -D "$data" -q "$queue" -w "$WORKERS" \
		--pickup-delay-ms "$4" --processing-ms "$5" >>"$WORKER_LOG" 2>&1 &
	WORKER_PID=$!
	for ((i = 0; i < 150; i++)); do
		alive "$WORKER_PID" || break
		kids=$(kids_of "$WORKER_PID")
		if [[ $(wc -w <<<"$kids") -ge $WORKERS ]]; then
			WORKER_KIDS="$WORKER_KIDS $kids"
			sleep 0.2
			alive "$WORKER_PID" && return 0
			break
		fi
		sleep 0.1
	done
	START_WHY="order-worker did not start $WORKERS workers: $(tail -3 "$WORKER_LOG" | tr '\n' ' ')"
	alive "$WORKER_PID" && stop_worker
	wait "$WORKER_PID" 2>/dev/null
	WORKER_PID=""
	return 1
}

# a timed case against order-api: api_case CASE CONNS REF TARGET SCRIPT PATH [VAR=VALUE...]
api_case() {
	local name=$1 conns=$2 ref=$3 target=$4 script=$5 path=$6 before counts0 counts1 created
	local commits0 commits1 note=${NOTE:-}
	shift 6
	say "$name, $conns connections${ROUND:+ (round $ROUND of $ROUNDS)}"
	before=$(api_codes) || { case_broken "$name" "$conns" "cannot read order-api's /metrics"; return 1; }
	counts0=$(api_counts "$API_URL")
	commits0=$(api_commits)
	if ! wrk_timed "$conns" "$API_URL$path" "$script" "$API_THREADS_REAL" "$@" ||
		! check_api_after "$before"; then
		case_broken "$name" "$conns" "$W_WHY"
		return 1
	fi
	if [[ $ref == post ]]; then # every 201 wrk counted must be a stored order
		counts1=$(api_counts "$API_URL")
		created=$((${counts1%% *} - ${counts0%% *}))
		if ((created < W_REQ)); then
			case_broken "$name" "$conns" "wrk counted $W_REQ answers but only $created orders were stored"
			return 1
		fi
		# the group commit: how many orders shared each journal flush,
		# and each LMDB commit behind it
		if commits1=$(api_commits) && [[ -n $commits0 ]] &&
			((${commits1% *} > ${commits0% *} && ${commits1#* } > ${commits0#* })); then
			note="$note${note:+; }$(awk -v o="$created" -v j="$((${commits1% *} - ${commits0% *}))" \
				-v c="$((${commits1#* } - ${commits0#* }))" -v d="$W_DUR" \
				'BEGIN { printf "%.1f orders per journal flush, %.0f flushes/s; %.0f per LMDB commit", o / j, j / d, o / c }')"
		fi
	fi
	case_ok "$name" "$conns" "$W_RPS" "$W_P50" "$W_P99" "$ref" "$target" "$note"
	return 0
}

phase_broken() { # phase_broken REASON CASE:CONNS... (each once)
	local why=$1 c seen=$'\n'
	shift
	for c in "$@"; do
		[[ $seen == *$'\n'"$c"$'\n'* ]] && continue
		seen+="$c"$'\n'
		broken_row "${c%:*}" "${c##*:}" "$why"
	done
}

# ------------------------------------------------------------------ Redis
# The peer a user would pick instead: Redis with its append-only file synced
# before it answers (appendonly yes, appendfsync always).  Redis writes the
# commands of an event-loop turn to the AOF, fdatasyncs it once, and only
# then answers the clients served in that turn: as order-api answers a
# create after the synced commit it shares with the other creates of its
# group.  redis-benchmark counts requests, not seconds: -n is the rate of
# the last run at the same connections times --seconds (the first from a
# short calibration).
REDIS_CASE="Redis LPUSH, AOF always"
REDIS_PORT=""
REDIS_DIR=""
REDIS_LOG=""
REDIS_START_WHY=""
RB_RUNS=0
declare -A REDIS_RATE=()

redis_cli() { # redis_cli ARGS...: one command to our Redis, its answer without CRs
	local out rc
	out=$(timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@" 2>&1)
	rc=$?
	printf '%s\n' "${out//$'\r'/}"
	return $rc
}

# redis_config_ok: read the durability settings back (CONFIG GET); sets
# START_WHY and returns 1 unless they are the ones asked for.
redis_config_ok() {
	local out k v real
	local -A cfg=()
	out=$(redis_cli CONFIG GET appendonly appendfsync save dir) ||
		{ START_WHY="redis-cli CONFIG GET failed: $out"; return 1; }
	# name and value lines in turn, in any order; an empty value last has
	# lost its line to the command substitution
	while IFS= read -r k; do
		IFS= read -r v || v=""
		cfg[$k]=$v
	done <<<"$out"
	real=$(cd "$REDIS_DIR" && pwd -P)
	if [[ ${cfg[appendonly]-} != yes || ${cfg[appendfsync]-} != always ||
		${cfg[save]-x} != "" || ${cfg[dir]-} != "$real" ]]; then
		START_WHY="Redis's settings did not take (CONFIG GET: appendonly '${cfg[appendonly]-?}', appendfsync '${cfg[appendfsync]-?}', save '${cfg[save]-?}', dir '${cfg[dir]-?}'; wanted yes, always, '', $real): refusing to report it"
		return 1
	fi
	return 0
}

# start_redis ROUND: a fresh redis-server on a free loopback port and a new
# data directory under the run's directory; sets REDIS_PID, or returns 1
# with START_WHY.
start_redis() {
	local round=$1 port conf i reply=""
	REDIS_DIR="$RUN/redis-r$round"
	REDIS_LOG="$RUN/redis-server-r$round.log"
	conf="$RUN/redis-r$round.conf"
	rm -rf "$REDIS_DIR"
	mkdir -p "$REDIS_DIR" || { START_WHY="cannot create $REDIS_DIR"; return 1; }
	for _ in 1 2 3; do
		port=$(free_port)
		# No AOF rewrite: it would fork in some rounds and not in others.
		cat >"$conf" <<-CONF
			bind 127.0.0.1
			port $port
			protected-mode no
			daemonize no
			supervised no
			logfile ""
			dir $REDIS_DIR
			save ""
			appendonly yes
			appendfsync always
			auto-aof-rewrite-percentage 0
		CONF
		redis-server "$conf" >>"$REDIS_LOG" 2>&1 &
		REDIS_PID=$!
		REDIS_PORT=$port
		for ((i = 0; i < 100; i++)); do
			alive "$REDIS_PID" || break
			reply=$(redis_cli PING) && [[ $reply == PONG ]] && break
			sleep 0.1
		done
		if alive "$REDIS_PID"; then
			if [[ $reply != PONG ]]; then
				START_WHY="redis-server did not answer PING within 10 s"
			elif redis_config_ok; then
				return 0
			fi
			stop_redis
			return 1
		fi
		wait "$REDIS_PID" 2>/dev/null
		REDIS_PID=""
		grep -qi 'in use' "$REDIS_LOG" || break # anything but a lost port race
	done
	START_WHY="redis-server did not start: $(tail -3 "$REDIS_LOG" | tr '\n' ' ')"
	return 1
}

# redis_state: the list's length, the AOF's size and state, and the error
# replies so far (LLEN, INFO); returns 1 if Redis did not say.
redis_state() {
	local info k v
	RS_LLEN=$(redis_cli LLEN mylist) && [[ $RS_LLEN =~ ^[0-9]+$ ]] || return 1
	info=$(redis_cli INFO) || return 1
	RS_AOF="" RS_AOF_ON="" RS_AOF_STATUS="" RS_ERRORS=""
	while IFS=: read -r k v; do
		case $k in
		aof_enabled) RS_AOF_ON=$v ;;
		aof_current_size) RS_AOF=$v ;;
		aof_last_write_status) RS_AOF_STATUS=$v ;;
		total_error_replies) RS_ERRORS=$v ;;
		esac
	done <<<"$info"
	[[ $RS_AOF =~ ^[0-9]+$ && $RS_ERRORS =~ ^[0-9]+$ && -n $RS_AOF_ON ]]
}

# redis_bench CONNS N: N LPUSH of 80 bytes, no pipelining; sets B_RPS, B_P50
# and B_P99 (us), B_DUR (s), or B_WHY.
redis_bench() {
	local conns=$1 n=$2 t out rc limit hdr row i p50 p99
	local -a h v
	t=$WRK_THREADS
	((t > conns)) && t=$conns
	limit=$((SECS * 5 + 30))
	out="$RUN/redis-benchmark-$((++RB_RUNS)).txt"
	B_WHY=""
	# (timeout: redis-benchmark waits forever for a server that went away)
	timeout -k 5 "$limit" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$conns" -n "$n" \
		-P 1 -t lpush -d 80 --threads "$t" --csv >"$out" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID"
	rc=$?
	WRK_PID=""
	if ((rc == 124 || rc == 137)); then
		B_WHY="redis-benchmark did not finish $n requests within $limit s"
		return 1
	fi
	if grep -qi 'error\|could not' "$out"; then
		B_WHY="redis-benchmark: $(grep -i -m2 'error\|could not' "$out" | tr '\n' ' ')"
		return 1
	fi
	if ((rc != 0)); then
		B_WHY="redis-benchmark exited with $rc: $(tail -3 "$out" | tr '\n' ' ')"
		return 1
	fi
	hdr=$(grep -m1 '^"test",' "$out")
	row=$(grep '^"LPUSH",' "$out" | tail -1)
	if [[ -z $hdr || -z $row ]]; then
		B_WHY="redis-benchmark printed no LPUSH result: $(tail -3 "$out" | tr '\n' ' ')"
		return 1
	fi
	IFS=, read -r -a h <<<"${hdr//\"/}"
	IFS=, read -r -a v <<<"${row//\"/}"
	B_RPS="" p50="" p99=""
	for i in "${!h[@]}"; do
		case ${h[i]} in
		rps) B_RPS=${v[i]-} ;;
		p50_latency_ms) p50=${v[i]-} ;;
		p99_latency_ms) p99=${v[i]-} ;;
		esac
	done
	if ! [[ $B_RPS =~ ^[0-9]+(\.[0-9]+)?$ && $p50 =~ ^[0-9.]+$ && $p99 =~ ^[0-9.]+$ ]] ||
		awk -v r="$B_RPS" 'BEGIN { exit !(r <= 0) }'; then
		B_WHY="redis-benchmark's CSV has no rate or latencies: $row"
		return 1
	fi
	B_P50=$(awk -v m="$p50" 'BEGIN { printf "%.0f", m * 1000 }')
	B_P99=$(awk -v m="$p99" 'BEGIN { printf "%.0f", m * 1000 }')
	B_DUR=$(awk -v n="$n" -v r="$B_RPS" 'BEGIN { printf "%.2f", n / r }')
	return 0
}

# redis_calibrate CONNS: a first rate at CONNS: a warm-up run (a new AOF
# starts slower), then runs of about 0.5 s until one lasts at least 0.3 s
redis_calibrate() {
	local n=2000 i
	for i in 1 2 3 4; do
		redis_bench "$1" "$n" || return 1
		((i >= 2)) && awk -v d="$B_DUR" 'BEGIN { exit !(d >= 0.3) }' && break
		n=$(awk -v r="$B_RPS" 'BEGIN { printf "%d", r * 0.5 + 1 }')
	done
	REDIS_RATE[$1]=$B_RPS
}

# redis_case CONNS: the Redis case of round ROUND, on the Redis started for
# it (or SKIPPED / BROKEN rows when there is none).
redis_case() {
	local conns=$1 n llen0 aof0 err0 created grown
	if [[ -n $REDIS_WHY ]]; then
		if ((SMOKE)); then
			case_broken "$REDIS_CASE" "$conns" "$REDIS_WHY"
		else
			round_row "$ROUND" "$REDIS_CASE" "$conns" "SKIPPED: $REDIS_WHY" "" "" "" "" "" "" ""
		fi
		return 1
	fi
	if [[ -z $REDIS_PID ]]; then
		case_broken "$REDIS_CASE" "$conns" "${REDIS_START_WHY:-redis-server is not running}"
		return 1
	fi
	say "$REDIS_CASE, $conns connections (round $ROUND of $ROUNDS)"
	if [[ -z ${REDIS_RATE[$conns]:-} ]] && ! redis_calibrate "$conns"; then
		case_broken "$REDIS_CASE" "$conns" "calibrating: $B_WHY"
		return 1
	fi
	n=$(awk -v r="${REDIS_RATE[$conns]}" -v s="$SECS" 'BEGIN { n = int(r * s); print n < 1000 ? 1000 : n }')
	if ! redis_state; then
		case_broken "$REDIS_CASE" "$conns" "cannot read Redis's LLEN and INFO"
		return 1
	fi
	llen0=$RS_LLEN aof0=$RS_AOF err0=$RS_ERRORS
	if ! redis_bench "$conns" "$n"; then
		alive "$REDIS_PID" || B_WHY="redis-server died ($(tail -2 "$REDIS_LOG" | tr '\n' ' ')); $B_WHY"
		case_broken "$REDIS_CASE" "$conns" "$B_WHY"
		return 1
	fi
	if ! alive "$REDIS_PID"; then
		case_broken "$REDIS_CASE" "$conns" "redis-server died (its log: $(tail -2 "$REDIS_LOG" | tr '\n' ' '))"
		return 1
	fi
	if ! redis_state; then
		case_broken "$REDIS_CASE" "$conns" "cannot read Redis's LLEN and INFO after the run"
		return 1
	fi
	if ! redis_config_ok; then
		case_broken "$REDIS_CASE" "$conns" "$START_WHY"
		return 1
	fi
	created=$((RS_LLEN - llen0))
	grown=$((RS_AOF - aof0))
	if ((RS_ERRORS > err0)); then
		B_WHY="Redis answered $((RS_ERRORS - err0)) errors (INFO total_error_replies)"
	elif [[ $RS_AOF_ON != 1 || $RS_AOF_STATUS != ok ]]; then
		B_WHY="Redis's AOF is off or failed (INFO aof_enabled $RS_AOF_ON, aof_last_write_status $RS_AOF_STATUS)"
	elif ((created < n)); then
		B_WHY="redis-benchmark sent $n LPUSH but the list grew by $created"
	elif ((grown < n * 80)); then
		B_WHY="the AOF grew by $grown bytes for $n LPUSH of 80 bytes"
	else
		B_WHY=""
	fi
	if [[ -n $B_WHY ]]; then
		case_broken "$REDIS_CASE" "$conns" "$B_WHY"
		return 1
	fi
	REDIS_RATE[$conns]=$B_RPS
	case_ok "$REDIS_CASE" "$conns" "$B_RPS" "$B_P50" "$B_P99" post "" \
		"$n LPUSH in $B_DUR s, $((grown / n)) AOF bytes each"
	return 0
}

# ------------------------------------------------------------------ ceiling
CEIL_THREADS=0
start_ceiling() {
	local port
	for _ in 1 2 3; do
		port=$(free_port)
		"$RUN/ceiling" -l "127.0.0.1:$port" -t "$THREADS" >"$RUN/ceiling.log" 2>&1 &
		CEIL_PID=$!
		CEIL_URL="http://127.0.0.1:$port"
		if wait_http "$CEIL_URL/hello" "$CEIL_PID" 10; then
			CEIL_THREADS=$(grep -o 'with [0-9]* threads' "$RUN/ceiling.log" | cut -d' ' -f2)
			return 0
		fi
		stop_ceiling
	done
	return 1
}

ceiling_case() { # ceiling_case NAME PATH SCRIPT REF CONNS
	say "$1, $5 connections"
	if wrk_timed "$5" "$CEIL_URL$2" "$3" "$CEIL_THREADS" && alive "$CEIL_PID"; then
		add_row "$1" "$5" OK "$W_RPS" "$W_P50" "$W_P99" "$4" "" ""
	else
		broken_row "$1" "$5" "${W_WHY:-the ceiling server died}"
	fi
}

ceiling_cases() { # ceiling_cases LABEL
	local conns
	for conns in $CONNS_EACH; do
		ceiling_case "ceiling GET /hello $1" /hello "$HERE/get.lua" ceiling:get "$conns"
	done
	for conns in $CONNS_EACH; do
		ceiling_case "ceiling POST /echo $1" /echo "$HERE/post.lua" ceiling:post "$conns"
	done
}

say "run directory $RUN"
if start_ceiling; then
	echo "  ceiling: $(head -1 "$RUN/ceiling.log")" >>"$SETTINGS"
	ceiling_cases "(start)"
else
	phase_broken "the ceiling server did not start: $(tail -2 "$RUN/ceiling.log" | tr '\n' ' ')" \
		"ceiling GET /hello (start):$CONNS_LOW" "ceiling GET /hello (start):$CONNS_HIGH" \
		"ceiling POST /echo (start):$CONNS_LOW" "ceiling POST /echo (start):$CONNS_HIGH"
fi

# ------------------------------------------------------------------ the disk
# The second reference: durable LMDB commits a second on the data
# directory's disk (bench/synccommit.c). A client waits for one of those per
# order, so with C connections and every commit shared by all of them,
# create could not pass C times this rate.
say "synced LMDB commits on $FSTYPE ($(( SMOKE ? 1 : 3 )) s)"
mkdir -p "$RUN/synccommit-data"
if SYNC_LINE=$("$RUN/synccommit" "$RUN/synccommit-data" $(( SMOKE ? 1 : 3 )) 2>&1); then
	echo "disk: ${SYNC_LINE#synccommit: } (bench/synccommit.c: one order-sized put per synced commit, nothing else)" >>"$EXTRAS"
else
	broken_row "synced LMDB commits (bench/synccommit.c)" 1 "$SYNC_LINE"
fi
rm -rf "$RUN/synccommit-data"

# What the disk charges by the pages a flush carries (bench/pagecost.c),
# and what the real store's commit of K orders costs (bench/storecommit):
# a commit pays about one device write per scattered page it dirties, so
# these two lines say why create is where it is.
say "flush cost by pages, and the store's commits ($(( SMOKE ? 2 : 10 )) s)"
mkdir -p "$RUN/pagecost-data" "$RUN/storecommit-data"
if PAGE_LINE=$("$RUN/pagecost" "$RUN/pagecost-data" $(( SMOKE ? 1 : 4 )) 2>&1); then
	echo "disk: ${PAGE_LINE#pagecost: } (bench/pagecost.c, 4 KiB pages at random offsets of a 64 MiB file, or in one run)" >>"$EXTRAS"
else
	broken_row "flush cost by pages (bench/pagecost.c)" 1 "$PAGE_LINE"
fi
STORE_SECONDS=2
((SMOKE)) && STORE_SECONDS=0.3
if STORE_OUT=$("$STORECOMMIT_BIN" "$RUN/storecommit-data" $(( SMOKE ? 1000 : 100000 )) \
	"$STORE_SECONDS" 1 8 32 2>&1); then
	printf '%s\n' "$STORE_OUT" | sed -e 's/^storecommit: \(.*\):$/store (bench\/storecommit.c): \1:/' \
		-e 's/^  /store:   /' >>"$EXTRAS"
else
	broken_row "the store's synced commits (bench/storecommit)" 1 "$STORE_OUT"
fi
rm -rf "$RUN/pagecost-data" "$RUN/storecommit-data"

# ------------------------------------------------------------------ GETs, metrics with ~1k orders
human() { # 1000000 -> 1M, 29490 -> 29k, 500 -> 500
	awk -v n="$1" 'BEGIN { if (n >= 1000000) printf "%.3gM", n / 1000000; else if (n >= 1000) printf "%dk", n / 1000; else print n }'
}
get_broken() { # get_broken REASON SIZE: the GET cases on a store that is not there
	phase_broken "$1" "status GET, random of $2 orders:$CONNS_HIGH" \
		"detail GET, random of $2 orders:$CONNS_HIGH" "metrics, $2 orders:$CONNS_HIGH"
}
# get_cases SIZE MAX_ID METRICS_NOTE: status and detail GETs of random
# orders among ORD1..ORD<MAX_ID>, then the metrics, on order-api's store
get_cases() {
	local size=$1 max=$2
	# ids are ORD1..ORD<total>: check both ends before the GET cases
	if [[ $(http_status "$API_URL/api/orders/ORD1/") != 200 ||
		$(http_status "$API_URL/api/orders/ORD$max/") != 200 ]]; then
		get_broken "orders ORD1..ORD$max are not all there (ids not dense?)" "$size"
		return
	fi
	NOTE="random of $max orders"
	api_case "status GET, random of $size orders" $CONNS_HIGH get ">=0.9" "$HERE/get.lua" / \
		BENCH_MAX_ID="$max" BENCH_KIND=status
	api_case "detail GET, random of $size orders" $CONNS_HIGH get ">=0.9" "$HERE/get.lua" / \
		BENCH_MAX_ID="$max" BENCH_KIND=detail
	NOTE="$3"
	api_case "metrics, $size orders" $CONNS_HIGH get ">=0.9" "$HERE/get.lua" /api/orders/metrics/
	NOTE=""
}

new_queue few
if start_api few "$RUN/data-few" "$Q"; then
	if fill "$API_URL" "$ORDERS_FEW"; then
		get_cases "~1k" "$F_TOTAL" "$F_TOTAL orders stored"
	else
		get_broken "filling $ORDERS_FEW orders: $W_WHY" "~1k"
	fi
	stop_api
else
	get_broken "$START_WHY" "~1k"
fi

# ------------------------------------------------------------------ create and Redis, in rounds
create_target() { # create_target CONNS: the ceiling's and Redis's
	if ((CONNS_LOW != CONNS_HIGH && $1 == CONNS_LOW)); then
		echo ">=0.5;redis>=1.0"
	else
		echo ">=0.9;redis>=1.0"
	fi
}

# create_rounds: ROUNDS rounds of the Redis case and the create case at each
# connection count (16 then 64), Redis first in odd rounds and second in
# even ones, so that neither always runs on the machine the other left; a
# fresh Redis with a new data directory each round, and likewise a fresh
# order-api on a new data directory and queue, so that no round runs on
# a store the others grew.  The table gets the medians.
create_rounds() {
	local r conns kind order rss=() f vm best="" best_vm=-1 api_why data
	for ((r = 1; r <= ROUNDS; r++)); do
		ROUND=$r
		REDIS_START_WHY=""
		if [[ -z $REDIS_WHY ]] && ! start_redis "$r"; then
			REDIS_START_WHY=$START_WHY
		fi
		api_why=""
		data="$RUN/data-create-r$r"
		new_queue "create-r$r"
		start_api "create-r$r" "$data" "$Q" || api_why=$START_WHY
		order="redis create"
		((r % 2)) || order="create redis"
		for conns in $CONNS_EACH; do
			for kind in $order; do
				if [[ $kind == redis ]]; then
					redis_case "$conns"
					continue
				fi
				if [[ -n $api_why ]]; then
					case_broken "create" "$conns" "$api_why"
					continue
				fi
				if ((conns == CONNS_HIGH)); then
					rss+=("$RUN/rss-api-create-r$r")
					start_sampler "$RUN/rss-api-create-r$r" "$API_PID"
				fi
				NOTE="order-api alone, no worker" PAIR=$REDIS_CASE \
					api_case "create" "$conns" post "$(create_target "$conns")" "$HERE/post.lua" /api/orders/
				stop_samplers
			done
		done
		stop_redis
		[[ -n $REDIS_DIR ]] && rm -rf "$REDIS_DIR"
		stop_api
		rm -rf "$data"
	done
	ROUND=""
	"${UTIL[@]}" rounds "$ROUNDS_TSV" >>"$RESULTS" || fatal "util.py rounds failed"
	for f in "${rss[@]}"; do # the peak over the rounds
		read -r vm _ 2>/dev/null <"$f" || continue
		((vm > best_vm)) && best_vm=$vm best=$f
	done
	echo "order-api RSS, create at $CONNS_HIGH connections: $(rss_mib "${best:-/nonexistent}") (peak of $ROUNDS round(s); target < 64 MiB)" >>"$EXTRAS"
}

# ------------------------------------------------------------------ create, GETs, metrics with many orders
create_rounds

new_queue many
DATA_MANY="$RUN/data-many"
if start_api many "$DATA_MANY" "$Q" --map-size 16G; then
	echo "  order-api: $(grep -o 'serving .*' "$API_LOG" | tail -1)" >>"$SETTINGS"
	say "filling up to $ORDERS_MANY orders (cap $FILL_CAP s)"
	if fill "$API_URL" "$ORDERS_MANY"; then
		fill_note="$F_TOTAL orders stored"
		if ((!F_REACHED)); then
			fill_note="$fill_note (cut: the fill cap of $FILL_CAP s was reached)"
			warn "the many-orders set was cut to $F_TOTAL orders (the fill cap of $FILL_CAP s)"
		fi
		if [[ $F_SECS != 0 ]]; then
			echo "fill: $F_TOTAL orders stored, the last $(printf '%.0f' "$W_REQ") at $W_RPS/s in $F_SECS s with $FILL_CONNS connections (order-api alone)" >>"$EXTRAS"
		fi
		get_cases "$(human "$F_TOTAL")" "$F_TOTAL" "$fill_note"
		total=$(api_counts "$API_URL" | cut -d' ' -f1)
		size=$(stat -c %s "$DATA_MANY/data.mdb")
		echo "LMDB: $(awk -v s="$size" -v n="$total" 'BEGIN { printf "%.0f bytes per order", s / n }') ($total Pending orders, data.mdb $((size / 1024)) KiB; target <= 300)" >>"$EXTRAS"
	else
		get_broken "filling $ORDERS_MANY orders: $W_WHY" "$(human "$ORDERS_MANY")"
	fi
	stop_api
else
	get_broken "$START_WHY" "$(human "$ORDERS_MANY")"
fi
rm -rf "$DATA_MANY" # it can be gigabytes

# ------------------------------------------------------------------ end to end, delays 0
e2e_label="end to end, delays 0 (completions/s)"
new_queue e2e
DATA_E2E="$RUN/data-e2e"
if start_api e2e "$DATA_E2E" "$Q" && start_worker e2e "$DATA_E2E" "$Q" 0 0; then
	say "$e2e_label, $CONNS_HIGH connections"
	before=$(api_codes)
	c0=$(api_counts "$API_URL")
	start_sampler "$RUN/rss-api-e2e" "$API_PID"
	start_sampler "$RUN/rss-worker-e2e" "$WORKER_PID"
	ok=1
	wrk_timed $CONNS_HIGH "$API_URL/api/orders/" "$HERE/post.lua" "$API_THREADS_REAL" || ok=0
	t1=$EPOCHREALTIME
	c1=$(api_counts "$API_URL")
	if ((ok)) && check_api_after "$before"; then
		read -r _ _ _ done0 _ <<<"$c0"
		read -r tot1 pend1 proc1 done1 _ <<<"$c1"
		backlog=$((pend1 + proc1))
		if wait_done "$API_URL" $((60 + backlog / 200)); then
			stop_samplers
			if ! alive "$WORKER_PID"; then
				broken_row "$e2e_label" $CONNS_HIGH "order-worker died"
			else
				# completions while wrk ran, over wrk's own duration (orders
				# completed in the moment between wrk's end and the count
				# are in, the backlog left is in the note)
				rate=$(awk -v d="$((done1 - done0))" -v w="$W_DUR" 'BEGIN { printf "%.1f", d / w }')
				drain_s=$(awk -v a="$t1" -v b="$D_EPOCH" 'BEGIN { d = b - a; printf "%.2f", d < 0 ? 0 : d }')
				# flat: what was left at the end is at most a second of
				# completions (a backlog growing through the run would be
				# the difference of the rates times the seconds)
				flat=$(awk -v b="$backlog" -v r="$rate" 'BEGIN { print (b <= r) ? "ok" : "MISS" }')
				add_row "$e2e_label" $CONNS_HIGH OK "$rate" "$W_P50" "$W_P99" post ">=0.4;backlog flat=$flat" \
					"created $W_RPS/s; backlog at the end $backlog, drained in ${drain_s} s; p50/p99 are the creates'"
				size=$(stat -c %s "$DATA_E2E/data.mdb")
				echo "LMDB: $(awk -v s="$size" -v n="$tot1" 'BEGIN { printf "%.0f bytes per order", s / n }') ($tot1 Completed orders, data.mdb $((size / 1024)) KiB; target <= 300)" >>"$EXTRAS"
			fi
		else
			broken_row "$e2e_label" $CONNS_HIGH "orders still not all Completed after the wait (total pending processing completed cancelled: $COUNTS)"
		fi
	else
		broken_row "$e2e_label" $CONNS_HIGH "$W_WHY"
	fi
	stop_samplers
	echo "order-api RSS, end to end at $CONNS_HIGH connections: $(rss_mib "$RUN/rss-api-e2e")" >>"$EXTRAS"
	echo "order-worker RSS (master + workers), end to end: $(rss_mib "$RUN/rss-worker-e2e")" >>"$EXTRAS"
	stop_worker
	stop_api
else
	phase_broken "$START_WHY" "$e2e_label:$CONNS_HIGH"
	stop_worker
	stop_api
fi
rm -rf "$DATA_E2E"

# ------------------------------------------------------------------ end to end, default delays
delays="$(awk -v p="$PICKUP_MS" -v c="$PROCESSING_MS" 'BEGIN { printf "%g s + %g s", p / 1000, c / 1000 }')"
DELAY_S=$(awk -v p="$PICKUP_MS" -v c="$PROCESSING_MS" 'BEGIN { printf "%g", (p + c) / 1000 }')
def_label="end to end, $DEFAULT_ORDERS orders, $delays"
new_queue default
if start_api default "$RUN/data-default" "$Q" && start_worker default "$RUN/data-default" "$Q" "$PICKUP_MS" "$PROCESSING_MS"; then
	say "$def_label"
	before=$(api_codes)
	start_sampler "$RUN/rss-worker-default" "$WORKER_PID"
	if fill "$API_URL" "$DEFAULT_ORDERS" && check_api_after "$before"; then
		admit=$F_SECS
		if ((!F_REACHED)); then
			broken_row "$def_label" $CONNS_HIGH "only $F_TOTAL orders admitted within $FILL_CAP s"
		elif wait_done "$API_URL" $((120 + DEFAULT_ORDERS / 100)); then
			total_s=$(elapsed "$F_START" "$D_EPOCH")
			limit=$(awk -v a="$admit" -v d="$DELAY_S" 'BEGIN { printf "%.1f", a + d + 2 }')
			verdict=$(awk -v t="$total_s" -v l="$limit" 'BEGIN { print (t <= l) ? "ok" : "MISS" }')
			rate=$(awk -v n="$F_TOTAL" -v a="$admit" 'BEGIN { printf "%.1f", n / a }')
			add_row "$def_label" $FILL_CONNS OK "$rate" "$W_P50" "$W_P99" - "<= admit+$DELAY_S+2 s $verdict" \
				"$F_TOTAL orders admitted in ${admit} s (req/s = admission), all Completed ${total_s} s after the first POST"
		else
			broken_row "$def_label" $FILL_CONNS "orders still not all Completed after the wait (total pending processing completed cancelled: $COUNTS)"
		fi
	else
		broken_row "$def_label" $FILL_CONNS "$W_WHY"
	fi
	stop_samplers
	echo "order-worker RSS (master + workers), $DEFAULT_ORDERS orders with $delays: $(rss_mib "$RUN/rss-worker-default")" >>"$EXTRAS"
	alive "$WORKER_PID" || broken_row "$def_label (worker)" - "order-worker died"
	stop_worker
	stop_api
else
	phase_broken "$START_WHY" "$def_label:$FILL_CONNS"
	stop_worker
	stop_api
fi

# ------------------------------------------------------------------ the ceiling again
if alive "$CEIL_PID"; then
	((SMOKE)) || ceiling_cases "(end)"
	stop_ceiling
fi

# ------------------------------------------------------------------ report
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - START_TIME)) s in all" >>"$SETTINGS"
if [[ -n $REDIS_WHY ]]; then
	redis_how="NOT MEASURED in this run: $REDIS_WHY."
else
	redis_how="redis-server with appendonly yes and appendfsync always, its data on the daemons' file system, driven by redis-benchmark -P 1 -t lpush -d 80: every LPUSH (an 80-byte value) is answered only after its append to the AOF is fsynced, one fsync per event-loop turn for every client served in that turn (as every 201 of order-api waits for the synced commit it shares with the creates of its group)."
fi
rounds_how="$ROUNDS interleaved round(s) (Redis, create at $CONNS_LOW connections, Redis, create at $CONNS_HIGH, the order in each pair swapped in the even rounds)"
((CONNS_LOW == CONNS_HIGH)) && rounds_how="$ROUNDS interleaved round(s) (Redis, then create, at $CONNS_LOW connections, the order swapped in the even rounds)"
"${UTIL[@]}" wrap <<EOT

order-processing benchmark, how to read it:
- ratio: req/s over the ceiling server's (bench/ceiling.c, a minimal civetweb server) at the same connections, measured in this run (the mean of its start and end runs); GETs over the ceiling GET, creates, completions and Redis over the ceiling POST.
- $REDIS_CASE: $redis_how
- vs Redis: order-api's create over Redis's LPUSH at the same connections: same machine, same run, $rounds_how, the median of the per-round ratios and (min..max). >= 1.0 means order-api creates durable orders at least as fast as Redis appends durable list entries. The create and Redis rows give the medians of the rounds.
- target: ok or MISS against bench/README.md's targets; a miss does not fail the run.

EOT
"${UTIL[@]}" table "$RESULTS"
table_rc=$?
echo
cat "$EXTRAS"
echo
cat "$SETTINGS"
if ((table_rc != 0)); then
	echo
	echo "BROKEN: $(grep -c $'\tBROKEN' "$RESULTS") case(s) did not run clean; their numbers are withheld:"
	grep $'\tBROKEN' "$RESULTS" | awk -F'\t' '{ printf "  %s (%s connections): %s\n", $1, $2, substr($3, 9) }'
	for f in "$RUN"/order-*.log "$RUN"/ceiling.log "$RUN"/redis-server-*.log; do
		[[ -s $f ]] || continue
		echo "---- the last lines of $(basename "$f")"
		tail -8 "$f"
	done
	((KEEP)) || echo "(bench/run.sh --keep keeps the logs, wrk outputs and small data sets)"
	exit 1
fi
echo
echo "every case ran clean"
exit 0
