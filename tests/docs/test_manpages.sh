#!/bin/sh
# The man pages: each is clean under mandoc -Tlint -Wwarning, each option
# that order-api --help / order-worker --help / order-ctl --help prints is
# documented in that program's page (an item tagged "-X, --name", or "--name" when it has no
# short flag), and every
# config-file key (every option but -c, -n, -h, -V) has its entry in
# order-processing.conf(5).
#
# Environment: ORDER_API, ORDER_WORKER, ORDER_CTL (the built programs;
# default build/api-daemon/order-api, build/worker-daemon/order-worker and
# build/ctl/order-ctl beside this tree), MANDIR (default man/ of this
# tree).
# Exit: 0 pass, 1 fail, 77 skip (no mandoc, or the daemons are not built;
# the lint still runs and fails the test when it finds anything).

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
MANDIR=${MANDIR:-$top/man}
ORDER_API=${ORDER_API:-$top/build/api-daemon/order-api}
ORDER_WORKER=${ORDER_WORKER:-$top/build/worker-daemon/order-worker}
ORDER_CTL=${ORDER_CTL:-$top/build/ctl/order-ctl}

pages="order-api.8 order-worker.8 order-ctl.8 order-processing.conf.5 order-processing.7"
failed=0
skipped=0
checks=0

fail() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}

if ! command -v mandoc >/dev/null 2>&1; then
	echo "SKIP: mandoc is not installed (apt-get install mandoc)"
	exit 77
fi

# 1. Lint. -Wwarning shows warnings and worse; any line is a failure.
for page in $pages; do
	checks=$((checks + 1))
	if [ ! -f "$MANDIR/$page" ]; then
		fail "$MANDIR/$page is missing"
		continue
	fi
	out=$(mandoc -Tlint -Wwarning "$MANDIR/$page" 2>&1)
	if [ -n "$out" ]; then
		fail "mandoc -Tlint -Wwarning $page:"
		printf '%s\n' "$out" | sed 's/^/    /'
	else
		echo "ok: mandoc -Tlint $page"
	fi
done

# The page as text, bold and underline (backspace overstrikes) removed.
render() {
	mandoc -Tascii -Owidth=200 "$1" | sed 's/.\x08//g'
}

# Prints "SHORT LONG" for each option in a --help text ("-" when there is
# no short flag). Option lines look like
#   "  -D, --data-dir DIR    ..." or "      --map-size SIZE   ...".
help_options() {
	sed -n 's/^  *\(-[A-Za-z0-9]\), \(--[a-z0-9-]*\).*/\1 \2/p
		s/^  *\(--[a-z0-9-]*\).*/- \1/p'
}

keys_seen=""

# 2. Each option of a daemon's --help is in that daemon's page.
check_daemon() {	# binary page
	bin=$1
	page=$2
	if [ ! -x "$bin" ]; then
		echo "SKIP: $bin is not built; its options were not checked"
		skipped=$((skipped + 1))
		return
	fi
	help=$("$bin" --help) || {
		fail "$bin --help exited non-zero"
		return
	}
	opts=$(printf '%s\n' "$help" | help_options)
	if [ -z "$opts" ]; then
		fail "$bin --help: no options found in its output"
		return
	fi
	text=$(render "$MANDIR/$page")
	printf '%s\n' "$opts" | {
		n=0
		while read -r short long; do
			n=$((n + 1))
			if [ "$short" = "-" ]; then
				want="$long"
			else
				want="$short, $long"
			fi
			# As an item's tag: at the start of a line.
			if ! printf '%s\n' "$text" |
				grep -q -E -e "^ *$want( |\$)"; then
				echo "FAIL: $page does not document '$want' (from $(basename "$bin") --help)"
				exit 1
			fi
		done
		echo "ok: $page documents the $n options of $(basename "$bin") --help"
	} || failed=$((failed + 1))
	checks=$((checks + 1))
	keys_seen="$keys_seen $(printf '%s\n' "$opts" | sed 's/.* --//')"
}

check_daemon "$ORDER_API" order-api.8
check_daemon "$ORDER_WORKER" order-worker.8
check_daemon "$ORDER_CTL" order-ctl.8

# 2b. order-ctl's commands and their options (its --help after
# "commands:") are in its page: each command as an item's tag, each
# option somewhere.
if [ -x "$ORDER_CTL" ]; then
	checks=$((checks + 1))
	cmds=$("$ORDER_CTL" --help | sed -n '/^commands:/,/^$/p')
	text=$(render "$MANDIR/order-ctl.8")
	missing=""
	for cmd in $(printf '%s\n' "$cmds" | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p'); do
		printf '%s\n' "$text" | grep -q -E "^ +$cmd( |\$)" ||
			missing="$missing $cmd"
	done
	for opt in $(printf '%s\n' "$cmds" | grep -o -E -e '--[a-z-]+' | sort -u); do
		printf '%s\n' "$text" | grep -q -e "$opt" || missing="$missing $opt"
	done
	if [ -n "$missing" ]; then
		fail "order-ctl.8 does not document:$missing (from order-ctl --help)"
	else
		echo "ok: order-ctl.8 documents every command of order-ctl --help and its options"
	fi
fi

# 3. Every config key of any of them is an entry of order-processing.conf(5).
if [ -n "$keys_seen" ]; then
	checks=$((checks + 1))
	missing=""
	# shellcheck disable=SC2086 # one word per key, split on purpose
	for key in $(printf '%s\n' $keys_seen | sort -u); do
		case $key in
		config | check-config | help | version) continue ;;
		esac
		grep -q "^\.It Cm $key\( \|\$\)" "$MANDIR/order-processing.conf.5" ||
			missing="$missing $key"
	done
	if [ -n "$missing" ]; then
		fail "order-processing.conf.5 has no entry for:$missing"
	else
		echo "ok: order-processing.conf.5 has an entry for every key"
	fi
fi

passed=$((checks - failed))
echo "$passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
	exit 1
fi
if [ "$skipped" -gt 0 ]; then
	exit 77
fi
exit 0
