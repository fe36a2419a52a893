#!/bin/sh
# scripts/lint.sh: static checks of the C sources (common/, api-daemon/,
# worker-daemon/, ctl/). First the layers (common/meson.build): only
# common/store*.c speaks LMDB (and ctl/check.c, order-ctl's checker, which
# reads it apart from the store on purpose), so any other of these files
# that includes <lmdb.h> or the store's private headers (store_impl.h,
# store_record.h), or calls an mdb_ function, fails, named with its line.
# Then cppcheck: it passes only when every finding is fixed or listed with
# its reason in scripts/cppcheck-suppressions.txt (or suppressed inline
# with a "cppcheck-suppress" comment); a listed finding that no longer
# occurs fails too, so that list stays true. Exits 77 (skip) when the
# layers are kept but cppcheck is missing and cannot be installed.
set -u
cd "$(dirname "$0")/.." || exit 1

# The layers (common/meson.build): no C source of these directories but
# common/store*.c may include <lmdb.h> or call an mdb_ function; nor may
# any but ctl/check.c, the checker that restates the format so as not to
# share the store's bugs. Lines that are all comment (KNF's " * " lines)
# may name LMDB's functions.
sources=$(find common api-daemon worker-daemon ctl -name '*.[ch]' \
    ! -path 'common/store*.c' ! -path 'ctl/check.c' | sort)
if [ -z "$sources" ]; then
	echo "lint: found no C sources to check" >&2
	exit 1
fi
# shellcheck disable=SC2086 # the paths have no blanks
lmdb_users=$(grep -EHn \
    -e '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]lmdb\.h[>"]' \
    -e '(^|[^A-Za-z0-9_])mdb_[A-Za-z0-9_]+[[:space:]]*\(' $sources |
    grep -Ev '^[^:]+:[0-9]+:[[:space:]]*(/\*|//|\*([[:space:]]|/|$))')
if [ -n "$lmdb_users" ]; then
	echo "$lmdb_users" | sed 's/^/lint: /' >&2
	echo "lint: only common/store*.c may include <lmdb.h> or call mdb_" \
	    "functions; the files above must go through store.h" >&2
	exit 1
fi
# The store's private headers (store_impl.h, store_record.h) are the
# store's own: only common/store*.c may include them.
# shellcheck disable=SC2086 # the paths have no blanks
private_users=$(grep -EHn \
    '^[[:space:]]*#[[:space:]]*include[[:space:]]*"store_(impl|record)\.h"' \
    $sources)
if [ -n "$private_users" ]; then
	echo "$private_users" | sed 's/^/lint: /' >&2
	echo "lint: only common/store*.c may include the store's private" \
	    "headers; the files above must go through store.h" >&2
	exit 1
fi
echo "lint: layers: only common/store*.c (and the checker, ctl/check.c)" \
    "speaks LMDB"

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
    -I common -I api-daemon -I worker-daemon -I ctl \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
    common api-daemon worker-daemon ctl
status=$?
if [ $status -eq 0 ]; then
	echo "lint: cppcheck $(cppcheck --version | sed 's/^Cppcheck //'):" \
	    "no unexplained findings"
else
	echo "lint: cppcheck found the problems above; fix them, or add each" \
	    "to scripts/cppcheck-suppressions.txt with its reason" >&2
fi
exit $status
