#!/bin/sh
# scripts/lint.sh: static analysis of the C sources (common/, api-daemon/,
# worker-daemon/) with cppcheck. Exits 0 only when every finding is fixed or
# listed with its reason in scripts/cppcheck-suppressions.txt (or suppressed
# inline with a "cppcheck-suppress" comment); a listed finding that no
# longer occurs fails too, so that list stays true. Exits 77 (skip) when
# cppcheck is missing and cannot be installed.
set -u
cd "$(dirname "$0")/.." || exit 1

if ! command -v cppcheck >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "lint: SKIP: cppcheck is not installed" >&2
		exit 77
	fi
	echo "lint: installing cppcheck" >&2
	apt-get update -qq >/dev/null &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends cppcheck >/dev/null || exit 1
fi

# No -D: cppcheck then checks every #ifdef configuration (HAVE_LIBSYSTEMD
# on and off). System headers are not read (missingIncludeSystem); the
# posix and gnu libraries tell cppcheck what libc calls do instead.
# "information" is enabled for unmatchedSuppression.
cppcheck --quiet --error-exitcode=1 --inline-suppr \
    --enable=warning,style,performance,portability,information \
    --std=c11 --library=posix --library=gnu \
    --suppress=missingIncludeSystem \
    --suppressions-list=scripts/cppcheck-suppressions.txt \
    -I common -I api-daemon -I worker-daemon \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
    common api-daemon worker-daemon
status=$?
if [ $status -eq 0 ]; then
	echo "lint: cppcheck $(cppcheck --version | sed 's/^Cppcheck //'):" \
	    "no unexplained findings"
else
	echo "lint: cppcheck found the problems above; fix them, or add each" \
	    "to scripts/cppcheck-suppressions.txt with its reason" >&2
fi
exit $status
