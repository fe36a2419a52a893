#!/bin/bash
# order-ctl's bash completion (contrib/bash-completion/order-ctl), run with
# bash-completion's own functions: the commands, the options before them
# and each command's, the statuses of list --status, directories for -D.
# Exit: 0 pass, 1 fail, 77 skip (bash-completion is not installed).

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bc=/usr/share/bash-completion/bash_completion
if [ ! -r "$bc" ]; then
	echo "SKIP: bash-completion is not installed (apt-get install bash-completion)"
	exit 77
fi
# shellcheck source=/dev/null
. "$bc"
# shellcheck source=../../contrib/bash-completion/order-ctl
. "$top/contrib/bash-completion/order-ctl"

failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/datadir"
touch "$tmp/datafile"

# What completing the last word offers, sorted, on one line.
offers() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_order_ctl order-ctl "${COMP_WORDS[COMP_CWORD]}" \
	    "${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

check() {	# want words...
	want=$1
	shift
	got=$(offers "$@")
	if [ "$got" = "$want" ]; then
		echo "ok: '$*' -> $got"
	else
		echo "FAIL: '$*' offers '$got', want '$want'"
		failed=$((failed + 1))
	fi
}

check "backup cancel check list requeue show status" order-ctl ""
check "--config --data-dir --help --version -D -V -c -h" order-ctl -
check "list" order-ctl -D /tmp li
check "requeue" order-ctl -c /dev/null -D /tmp re
check "Pending Processing" order-ctl list --status P
check "Cancelled Completed Pending Processing" order-ctl list --limit 5 --status ""
check "--after --json --limit --order --status --user" order-ctl list --
check "asc desc" order-ctl list --order ""
check "--json" order-ctl status -
check "--json" order-ctl show --
check "" order-ctl show ORD
check "--force" order-ctl backup --f
check "--expect-completed-ids" order-ctl check --expect-c
check "--expect-completed-ids --expect-ids --expect-total" order-ctl check -
check "$tmp/datadir $tmp/datafile" order-ctl check --expect-ids "$tmp/data"
check "$tmp/datadir" order-ctl -D "$tmp/data"
check "$tmp/datadir $tmp/datafile" order-ctl backup "$tmp/data"

if [ "$failed" -gt 0 ]; then
	echo "$failed failed"
	exit 1
fi
echo "all passed"
