#!/bin/sh
# Install what is missing, build, and run every test in the normal build,
# then again in an ASan+UBSan build all but the suites that need only one
# run (below). Ends with 'N passed, N failed'.
set -u
cd "$(dirname "$0")"
. scripts/deps.sh
install_deps $test_packages || exit 1

status=0
for dir in build build-asan; do
	# The systemd suite installs and boots the normal build, fuzz builds
	# its own sanitized fuzzers, lint reads the source, bench measures the
	# optimized build: once is enough.
	case $dir in
	build) opts="" mult=1 skip="" ;;
	build-asan) opts="-Db_sanitize=address,undefined -Db_lundef=false"
	    mult=3 skip="--no-suite systemd --no-suite fuzz --no-suite lint
	    --no-suite bench" ;;
	esac
	echo "== $dir: build" >&2
	# shellcheck disable=SC2086
	if ! build "$dir" $opts; then
		echo "$dir: the build failed" >&2
		rm -f "$dir/meson-logs/testlog.json"
		status=1
		continue
	fi
	echo "== $dir: test" >&2
	ASAN_OPTIONS=abort_on_error=0:detect_leaks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    meson test -C "$dir" --print-errorlogs --timeout-multiplier "$mult" \
	    $skip "$@" || status=1
done
python3 scripts/test-summary.py build build-asan || status=1
exit $status
