#!/bin/sh
# tests/fuzz/run.sh [SECONDS]: build the libFuzzer targets (fuzz_order,
# fuzz_router, fuzz_money) with clang and ASan+UBSan, fuzz each for SECONDS
# (default 60) on a copy of its seed corpus in tests/fuzz/corpus/<target>/,
# then run every input in tests/fuzz/regressions/<target>/ once. Prints one
# line per target; exits 1 on any crash, leak, UBSan report or timeout, 0
# when all are clean, 77 (skip) if clang cannot build a fuzzer and cannot
# be installed.
#
# Environment: FUZZ_BUILD_DIR (default <top>/build-fuzz) gets the binaries,
# the logs and the work copies; FUZZ_CC picks the compiler (CC is ignored:
# it is often gcc, which has no libFuzzer). The repository is not written.
#
# A crash leaves its input in $FUZZ_BUILD_DIR/run/artifacts/<target>/;
# copy it to tests/fuzz/regressions/<target>/ to keep it as a regression.
set -u

seconds=${1:-60}
case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${FUZZ_BUILD_DIR:-$top/build-fuzz}
targets="order router money"

# The project's sources each target links, and the libraries beyond
# cJSON. fuzz_order and fuzz_money link a few files of common/ and build
# in a second. fuzz_router reads the route table, whose rows name the
# handlers: like test_router and route-list it links order-api's modules
# but main.c, and common/ but the plumbing they do not call (config,
# proc, notify: these want the build's defines and libraries), with
# civetweb, LMDB and libmd; it builds in ten seconds or so.
sources() {
	case $1 in
	order) echo common/order.c common/jsoncheck.c common/money.c \
	    common/decimal.c common/strbuf.c ;;
	router)
		for f in "$top"/api-daemon/*.c "$top"/common/*.c; do
			case ${f#"$top"/} in
			api-daemon/main.c | common/config.c | common/proc.c | \
			    common/notify.c) ;;
			*) echo "${f#"$top"/}" ;;
			esac
		done ;;
	money) echo common/money.c common/decimal.c ;;
	esac
}
libs() {
	case $1 in
	router) echo -lcivetweb -llmdb -lmd -lpthread -lrt ;;
	esac
}

sanitize="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
cflags="-std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
-Wall -Wextra -Wno-unused-parameter"

mkdir -p "$out" || exit 1

# A compiler that links a libFuzzer+ASan+UBSan binary: Debian 12 needs the
# packages clang and libclang-rt-14-dev (libclang_rt.fuzzer, asan, ubsan).
probe() {
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)' \
	    '{ (void)d; (void)n; return 0; }' >"$out/probe.c"
	# shellcheck disable=SC2086
	"$1" $sanitize "$out/probe.c" -o "$out/probe" >"$out/probe.log" 2>&1
}
find_cc() {
	for c in ${FUZZ_CC:-} clang clang-14 clang-15 clang-16; do
		command -v "$c" >/dev/null 2>&1 && probe "$c" && {
			cc=$c
			return 0
		}
	done
	return 1
}
if ! find_cc; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "fuzz: SKIP: no clang that links -fsanitize=fuzzer" \
		    "(install clang libclang-rt-14-dev)" >&2
		exit 77
	fi
	echo "fuzz: installing clang libclang-rt-14-dev" >&2
	apt-get update -qq >/dev/null &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends clang libclang-rt-14-dev >/dev/null
	if ! find_cc; then
		echo "fuzz: FAIL: clang cannot link a fuzzer:" >&2
		cat "$out/probe.log" >&2
		exit 1
	fi
fi

if pkg-config --exists libcjson 2>/dev/null; then
	cjson_cflags=$(pkg-config --cflags libcjson)
	cjson_libs=$(pkg-config --libs libcjson)
else
	cjson_cflags="" cjson_libs="-lcjson"
fi

# fuzz_router's route table names the dashboard's handler, which serves a
# page assembled from api-daemon/dashboard/ at build time: made here as
# api-daemon/meson.build makes it.
dashboard=$top/api-daemon/dashboard
if ! python3 "$dashboard/embed.py" "$dashboard/index.html" \
    "$dashboard/dashboard.css" "$dashboard/dashboard.js" \
    "$out/dashboard_page.c"; then
	echo "fuzz_router: FAIL: the dashboard's page could not be made" >&2
	exit 1
fi

# Build each target to a temporary name and rename it, so a concurrent run
# never executes a half-written binary.
status=0
for t in $targets; do
	set --
	for s in $(sources "$t"); do
		set -- "$@" "$top/$s"
	done
	[ "$t" = router ] && set -- "$@" "$out/dashboard_page.c"
	# shellcheck disable=SC2046,SC2086
	if ! "$cc" $cflags $sanitize -I"$top/common" -I"$top/api-daemon" \
	    $cjson_cflags "$here/fuzz_$t.c" "$@" -o "$out/fuzz_$t.$$" \
	    $cjson_libs $(libs "$t") -lm >"$out/build_$t.log" 2>&1; then
		cat "$out/build_$t.log" >&2
		echo "fuzz_$t: FAIL: the build failed" >&2
		rm -f "$out/fuzz_$t.$$"
		status=1
		continue
	fi
	mv -f "$out/fuzz_$t.$$" "$out/fuzz_$t" || status=1
done
[ $status -eq 0 ] || exit 1

# Sanitizers: halt on the first report of any kind, leaks included; the
# caller's ASAN_OPTIONS (test.sh sets its own) would not apply here.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:symbolize=1
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:symbolize=1
export ASAN_OPTIONS UBSAN_OPTIONS

work=$out/run
rm -rf "$work"
mkdir -p "$work" || exit 1
for t in $targets; do
	bin=$out/fuzz_$t
	log=$work/$t.log
	mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
	if [ -d "$here/corpus/$t" ]; then
		cp -R "$here/corpus/$t/." "$work/corpus/$t/"
	fi
	dict=""
	[ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 $dict \
	    -artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t" \
	    >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1)
	crash=$(find "$work/artifacts/$t" -type f | head -n 1)
	crash=${crash##*/}

	# Every kept regression input, once each, so one failure does not
	# hide the next.
	nreg=0 regfail=""
	if [ -d "$here/regressions/$t" ]; then
		for f in "$here/regressions/$t"/*; do
			[ -f "$f" ] || continue
			case ${f##*/} in README* | .*) continue ;; esac
			nreg=$((nreg + 1))
			if ! "$bin" -timeout=10 -rss_limit_mb=2048 \
			    -artifact_prefix="$work/artifacts/$t/regression-" \
			    "$f" >>"$work/$t.regressions.log" 2>&1; then
				regfail="$regfail ${f##*/}"
			fi
		done
	fi

	if [ $rc -ne 0 ] || [ -n "$crash" ]; then
		echo "fuzz_$t: FAIL after ${runs:-?} runs (exit $rc);" \
		    "input: $work/artifacts/$t/${crash:-?}; log: $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_[a-z]+: invariant)' \
		    "$log" | head -n 5 | sed 's/^/    /'
		status=1
	elif [ -n "$regfail" ]; then
		echo "fuzz_$t: FAIL: regressions that still crash:$regfail;" \
		    "log: $work/$t.regressions.log"
		status=1
	else
		echo "fuzz_$t: OK: ${runs:-?} runs in ${seconds}s," \
		    "${speed:-?} exec/s, ${cov:-cov: ?}," \
		    "$(find "$work/corpus/$t" -type f | wc -l) corpus files," \
		    "$nreg regressions"
	fi
	if [ -n "$regfail" ] && [ $rc -ne 0 ]; then
		echo "fuzz_$t: also failing regressions:$regfail" \
		    "(log: $work/$t.regressions.log)"
	fi
done
exit $status
