#!/bin/bash
# The installed tree: `meson install --destdir` of the build in $BUILD_DIR
# puts both daemons in sbin, the two services and the target in
# PREFIX/lib/systemd/system, the sysusers.d and sysctl.d snippets, the
# sample config, the four man pages and the nginx example (site file and
# its two snippets, under the doc directory) where they belong; the units start
# the installed daemons; the sample config lists every key that
# `order-api --help` and `order-worker --help` print, commented out and
# with its default. Works for any prefix (the test build is /usr/local).
#
# Environment: BUILD_DIR (meson sets it; default build/ beside this tree).
# Exit: 0 pass, 1 fail, 77 skip (the build directory is not configured).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

failed=0
checks=0

if [ ! -f "$BUILD_DIR/meson-info/intro-buildoptions.json" ]; then
	echo "SKIP: $BUILD_DIR is not a configured meson build directory"
	exit 77
fi

TMP=$(mktemp -d /tmp/op-install-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
DEST=$TMP/dest

prefix=$(meson_option "$BUILD_DIR" prefix)
sbindir=$(meson_dir "$BUILD_DIR" sbindir)
sysconfdir=$(meson_dir "$BUILD_DIR" sysconfdir)
mandir=$(meson_dir "$BUILD_DIR" mandir)
datadir=$(meson_dir "$BUILD_DIR" datadir)
nginxdir=$datadir/doc/order-processing/examples/nginx
unitdir=$prefix/lib/systemd/system
echo "build $BUILD_DIR: prefix $prefix, sbindir $sbindir," \
    "sysconfdir $sysconfdir, mandir $mandir"

meson_install "$BUILD_DIR" "$DEST" || exit 1

# 1. Every file where it belongs.
for f in \
    "$sbindir/order-api" \
    "$sbindir/order-worker" \
    "$sbindir/order-ctl" \
    "$unitdir/order-api.service" \
    "$unitdir/order-worker.service" \
    "$unitdir/order-processing.target" \
    "$prefix/lib/sysusers.d/order-processing.conf" \
    "$prefix/lib/sysctl.d/60-order-processing.conf" \
    "$sysconfdir/order-processing/order-processing.conf" \
    "$mandir/man8/order-api.8" \
    "$mandir/man8/order-worker.8" \
    "$mandir/man8/order-ctl.8" \
    "$mandir/man5/order-processing.conf.5" \
    "$mandir/man7/order-processing.7" \
    "$nginxdir/order-processing.conf" \
    "$nginxdir/snippets/order-processing-http.conf" \
    "$nginxdir/snippets/order-processing-server.conf" \
    "$datadir/doc/order-processing/examples/haproxy/order-processing.cfg" \
    "$datadir/doc/order-processing/examples/prometheus/prometheus.yml" \
    "$datadir/doc/order-processing/examples/prometheus/order-processing.rules.yml" \
    "$datadir/bash-completion/completions/order-ctl"; do
	checks=$((checks + 1))
	if [ -f "$DEST$f" ] && [ -s "$DEST$f" ]; then
		ok "installed $f"
	else
		fail "$f is not installed (or is empty) under $DEST"
	fi
done
for f in "$sbindir/order-api" "$sbindir/order-worker" "$sbindir/order-ctl"; do
	checks=$((checks + 1))
	[ -x "$DEST$f" ] || fail "$f is not executable"
done
echo "installed files:"
(cd "$DEST" && find . -type f | sort | sed 's/^\./  /')

# 2. The snippets say what they must.
checks=$((checks + 1))
f=$DEST$prefix/lib/sysusers.d/order-processing.conf
if grep -Eq '^u[[:space:]]+order-processing[[:space:]]' "$f" 2>/dev/null; then
	ok "sysusers.d makes the order-processing system user (and its group)"
else
	fail "$f has no 'u order-processing ...' line"
fi
checks=$((checks + 1))
f=$DEST$prefix/lib/sysctl.d/60-order-processing.conf
if grep -Eq '^fs\.mqueue\.msg_max[[:space:]]*=[[:space:]]*[0-9]+' "$f" 2>/dev/null &&
    grep -q '^#' "$f"; then
	ok "sysctl.d raises fs.mqueue.msg_max, with a comment"
else
	fail "$f does not set fs.mqueue.msg_max with a comment saying why"
fi

# 3. The units start the installed daemons, nothing left unsubstituted.
for unit in order-api order-worker; do
	f=$DEST$unitdir/$unit.service
	[ -f "$f" ] || continue
	checks=$((checks + 1))
	exec_start=$(sed -n 's/^ExecStart=//p' "$f")
	# Strip systemd's prefixes (-, @, :, +, !) before the path.
	exec_path=$(printf '%s\n' "$exec_start" | sed 's/^[-@:+!]*//' |
	    awk '{print $1}')
	if [ "$exec_path" = "$sbindir/$unit" ] && [ -x "$DEST$exec_path" ]; then
		ok "$unit.service: ExecStart=$exec_start (installed)"
	else
		fail "$unit.service: ExecStart='$exec_start', expected" \
		    "$sbindir/$unit (installed and executable)"
	fi
	checks=$((checks + 1))
	if grep -n '@[A-Za-z_]*@' "$f"; then
		fail "$unit.service has unsubstituted @variables@ (above)"
	fi
	checks=$((checks + 1))
	if grep -q '^Type=notify' "$f" && grep -q '^WatchdogSec=' "$f" &&
	    grep -q '^User=order-processing' "$f" &&
	    grep -q '^StateDirectory=order-processing' "$f"; then
		ok "$unit.service: Type=notify, WatchdogSec, User, StateDirectory"
	else
		fail "$unit.service lacks one of Type=notify, WatchdogSec=," \
		    "User=order-processing, StateDirectory=order-processing"
	fi
done

# 4. The sample config: every key of --help, commented, with its default.
conf=$DEST$sysconfdir/order-processing/order-processing.conf
if [ -f "$conf" ]; then
	for d in order-api order-worker; do
		bin=$DEST$sbindir/$d
		[ -x "$bin" ] || continue
		checks=$((checks + 1))
		if ! "$bin" --help >"$TMP/$d.help" 2>&1; then
			fail "$d --help failed:"
			sed 's/^/  | /' "$TMP/$d.help"
			continue
		fi
		# One line per key: "key<TAB>default" (default "" when --help
		# gives none). An option's text starts at "  -"; continuation
		# lines are indented further.
		python3 - "$TMP/$d.help" >"$TMP/$d.keys" <<'EOF' || fail "could not parse $d --help"
import re, sys
entries, cur = [], None
for line in open(sys.argv[1]):
    if re.match(r"^  +-", line):
        cur = [line.strip()]
        entries.append(cur)
    elif cur is not None and re.match(r"^ {8,}\S", line):
        cur.append(line.strip())
    else:
        cur = None
for e in entries:
    text = " ".join(e)
    m = re.search(r"--([a-z][a-z0-9-]*)", text)
    if not m or m.group(1) in ("config", "check-config", "help", "version"):
        continue
    d = re.search(r"\(default:\s*(.*?)\)\s*$", text)
    print("%s\t%s" % (m.group(1), d.group(1) if d else ""))
EOF
		if [ ! -s "$TMP/$d.keys" ]; then
			fail "$d --help lists no options"
			continue
		fi
		while IFS=$'\t' read -r key def; do
			checks=$((checks + 1))
			line=$(grep -E "^#[[:space:]]*${key}[[:space:]]*=" "$conf" |
			    head -n 1)
			if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$conf"; then
				fail "sample config sets '$key' (not commented out)"
				continue
			fi
			if [ -z "$line" ]; then
				fail "sample config lacks '#$key = ...'" \
				    "($d --help lists --$key, default: $def)"
				continue
			fi
			value=$(printf '%s\n' "$line" |
			    sed -E 's/^#[[:space:]]*[a-z0-9-]+[[:space:]]*=[[:space:]]*//; s/[[:space:]]+$//')
			case $def in
			none | stderr) want="" ;;
			*' '*) want=$value ;;	# prose: "the number of CPUs"
			*) want=$def ;;
			esac
			if [ "$value" = "$want" ]; then
				ok "sample config: $line  ($d --help default: $def)"
			else
				fail "sample config: '$line' but $d --help says" \
				    "the default of --$key is '$def'"
			fi
		done <"$TMP/$d.keys"
	done
	# No key in the sample that neither daemon knows.
	cat "$TMP"/order-*.keys 2>/dev/null | cut -f1 | sort -u >"$TMP/known"
	for key in $(sed -nE 's/^#[[:space:]]*([a-z][a-z0-9-]*)[[:space:]]*=.*/\1/p' "$conf"); do
		checks=$((checks + 1))
		grep -qx "$key" "$TMP/known" ||
		    fail "sample config has '$key', which neither daemon takes"
	done
	# Uncommented, the sample is a valid config for both daemons (the data
	# dir on the command line, which wins: --check-config creates it).
	sed -nE 's/^#[[:space:]]*([a-z][a-z0-9-]*[[:space:]]*=[[:space:]]*[^[:space:]].*)$/\1/p' \
	    "$conf" >"$TMP/uncommented.conf"
	for d in order-api order-worker; do
		bin=$DEST$sbindir/$d
		[ -x "$bin" ] || continue
		checks=$((checks + 1))
		if out=$("$bin" -c "$TMP/uncommented.conf" -D "$TMP/data" \
		    --check-config 2>&1); then
			ok "$d --check-config accepts the sample's values"
		else
			fail "$d --check-config rejects the sample's values: $out"
		fi
	done
fi

case $sysconfdir in
/etc) ;;
*) echo "note: the daemons read /etc/order-processing/order-processing.conf" \
    "by default; this prefix installs the sample as" \
    "$sysconfdir/order-processing/order-processing.conf" ;;
esac
echo "$checks checks, $failed failed"
[ "$failed" -eq 0 ] || exit 1
exit 0
