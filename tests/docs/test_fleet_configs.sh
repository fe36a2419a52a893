#!/bin/sh
# The fleet's shipped configurations check clean with their own tools:
# contrib/haproxy/order-processing.cfg with `haproxy -c` (alone, and after
# Debian's /etc/haproxy/haproxy.cfg as order-processing(7) installs it,
# with no warning then), contrib/prometheus with `promtool check config`
# and `check rules`, and the recording rules against the values worked out
# by hand in order-processing.rules.test.yml (`promtool test rules`).
# Both name the same instance addresses.
# Exit: 0 pass, 1 fail, 77 skip (haproxy or promtool is not installed;
# scripts/deps.sh installs both).

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cfg=$top/contrib/haproxy/order-processing.cfg
prom=$top/contrib/prometheus/prometheus.yml
rules=$top/contrib/prometheus/order-processing.rules.yml
rtest=$here/order-processing.rules.test.yml

haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)
promtool=$(command -v promtool || echo /usr/bin/promtool)
for t in "$haproxy" "$promtool"; do
	if [ ! -x "$t" ]; then
		echo "SKIP: $(basename "$t") is not installed" \
		    "(apt-get install haproxy prometheus)"
		exit 77
	fi
done

failed=0
fail() {
	echo "FAIL: $*"
	failed=1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if "$haproxy" -c -f "$cfg" >"$tmp/out" 2>&1; then
	echo "ok: haproxy -c -f $cfg"
else
	cat "$tmp/out"
	fail "haproxy -c -f $cfg"
fi
debian=/etc/haproxy/haproxy.cfg
if [ -r "$debian" ]; then
	if "$haproxy" -c -f "$debian" -f "$cfg" >"$tmp/out" 2>&1 &&
	    ! grep -q WARNING "$tmp/out"; then
		echo "ok: haproxy -c -f $debian -f $cfg, no warning"
	else
		cat "$tmp/out"
		fail "haproxy -c -f $debian -f $cfg"
	fi
fi

for cmd in "check config $prom" "check rules $rules" "test rules $rtest"; do
	# shellcheck disable=SC2086
	if "$promtool" $cmd >"$tmp/out" 2>&1; then
		echo "ok: promtool $cmd"
	else
		cat "$tmp/out"
		fail "promtool $cmd"
	fi
done

# The same addresses in both: HAProxy's setenv lines and the targets.
sed -n 's/^[[:space:]]*setenv ORDER_INSTANCE_[0-9]* //p' "$cfg" | sort >"$tmp/h"
sed -n 's/^[[:space:]]*- \([0-9.]*:[0-9]*\)$/\1/p' "$prom" | sort >"$tmp/p"
if [ -s "$tmp/h" ] && cmp -s "$tmp/h" "$tmp/p"; then
	echo "ok: both name the instances $(tr '\n' ' ' <"$tmp/h")"
else
	fail "instance addresses differ: haproxy: $(tr '\n' ' ' <"$tmp/h")," \
	    "prometheus: $(tr '\n' ' ' <"$tmp/p")"
fi

exit $failed
