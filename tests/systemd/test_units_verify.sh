#!/bin/bash
# The installed units pass `systemd-analyze verify --recursive-errors=no`
# with the installed daemons, and `systemd-analyze security --offline=true`
# prints each service's exposure (shown, not a gate).
#
# How: `meson install --destdir DEST` of $BUILD_DIR, then verify runs with
# --root=DEST on the units exactly as installed (DEST/PREFIX/lib/systemd/
# system), so ExecStart= is checked against the installed DEST/PREFIX/sbin
# daemons, whatever the prefix. Two things the units use come from outside
# the project and are put beside them: /bin/kill (ExecReload=) is copied
# into DEST/bin, and MANPATH points at the installed man pages, which
# verify looks up for each Documentation=man:... entry. Any line verify
# prints (error or warning) fails the test, as does a non-zero exit.
#
# Environment: BUILD_DIR (meson sets it; default build/ beside this tree).
# Exit: 0 pass, 1 fail, 77 skip (no systemd-analyze, or no build).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze is not installed (apt-get install systemd)"
	exit 77
fi
if [ ! -f "$BUILD_DIR/meson-info/intro-buildoptions.json" ]; then
	echo "SKIP: $BUILD_DIR is not a configured meson build directory"
	exit 77
fi
systemd-analyze --version | head -n 1

TMP=$(mktemp -d /tmp/op-verify-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
DEST=$TMP/dest

prefix=$(meson_option "$BUILD_DIR" prefix)
mandir=$(meson_dir "$BUILD_DIR" mandir)
unitdir=$prefix/lib/systemd/system
units="order-api.service order-worker.service order-processing.target"

meson_install "$BUILD_DIR" "$DEST" || exit 1
for u in $units; do
	if [ ! -f "$DEST$unitdir/$u" ]; then
		echo "FAIL: $unitdir/$u is not installed"
		exit 1
	fi
done
mkdir -p "$DEST/bin"
if [ -x /bin/kill ]; then
	cp /bin/kill "$DEST/bin/kill"
else
	echo "FAIL: /bin/kill (the units' ExecReload=) is missing on this host"
	exit 1
fi

failed=0
echo "== systemd-analyze verify --recursive-errors=no --root=$DEST" \
    "(MANPATH=$DEST$mandir)"
for u in $units; do
	out=$(MANPATH=$DEST$mandir SYSTEMD_PAGER='' SYSTEMD_COLORS=0 \
	    systemd-analyze verify --recursive-errors=no --root="$DEST" \
	    "$unitdir/$u" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		echo "FAIL: $u: verify exited $rc and said:"
		printf '%s\n' "$out" | sed 's/^/  | /'
		failed=1
	else
		echo "ok: $u verifies cleanly"
	fi
done
# All three at once, as systemd loads them together.
paths=""
for u in $units; do
	paths="$paths $unitdir/$u"
done
# shellcheck disable=SC2086
out=$(MANPATH=$DEST$mandir SYSTEMD_PAGER='' SYSTEMD_COLORS=0 \
    systemd-analyze verify --recursive-errors=no --root="$DEST" $paths 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
	echo "FAIL: the three units together: verify exited $rc and said:"
	printf '%s\n' "$out" | sed 's/^/  | /'
	failed=1
else
	echo "ok: the three units verify cleanly together"
fi

# Not a gate: the closing note quotes these.
for u in order-api.service order-worker.service; do
	echo "== systemd-analyze security --offline=true $u"
	SYSTEMD_PAGER='' SYSTEMD_COLORS=0 systemd-analyze security \
	    --offline=true --root="$DEST" --no-pager "$unitdir/$u" 2>&1 |
	    grep -v '^✓'
done
echo "(✓ lines left out; the exposure scores above are informational)"

[ $failed -eq 0 ] || exit 1
exit 0
