#!/bin/bash
# The Debian package under a real systemd: build it from this tree with
# dpkg-buildpackage (in a copy under /tmp: it writes to the parent
# directory), lintian it (any E: or W: fails), and in a booted Debian 12
# container (lib.sh's machinery; a fresh overlay of the base root each run,
# /var/tmp/op-sdroot-deb) do what an operator does with it:
#   apt-get install ./order-processing_0.1.0-1_amd64.deb: the user exists,
#     order-processing.target and both services are enabled and active, the
#     config file is a conffile, the man pages, order-ctl and its
#     completion are there; an order created over HTTP completes
#   apt-get install ./order-processing_0.1.0-1+test1_amd64.deb (the same
#     tree, a changelog entry on top) while a client on the host keeps
#     creating orders: an edit of the conffile kept, both daemons
#     restarted (new main pids), every order
#     answered 201 completes, the counts add up, order-ctl check passes,
#     the orders of before are still there
#   apt-get remove: the services stopped and their units gone, the data
#     kept; apt-get install again: the orders are back
#   apt-get purge: /var/lib/order-processing and /etc/order-processing gone
# The daemons listen on a free loopback port with quick delays through a
# systemd drop-in written before the install (the conffile stays as
# shipped). nspawn's /proc/sys is read-only: the postinst says it cannot
# apply the queue sysctl and goes on; that note is printed.
#
# Needs root, dpkg-buildpackage, debhelper, lintian, the build's
# libraries, and what test_nspawn.sh needs (scripts/deps.sh installs all).
# Environment: OP_SDROOT, CI (when set, what would be a skip is a
# failure), KEEP_RUNNING=1 (leave the container up).
# Exit: 0 pass, 1 fail, 77 skip (not root; no mirror / debootstrap failed).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

failed=0
timings=""
phase_t=$(date +%s)
phase() {	# phase NAME: the time since the last phase ends there
	local now
	now=$(date +%s)
	timings="$timings$(printf '  %-44s %4s s' "$1" $((now - phase_t)))
"
	phase_t=$now
}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
for t in dpkg-buildpackage dh lintian fakeroot; do
	command -v $t >/dev/null 2>&1 ||
	    skip "$t is missing (scripts/deps.sh test_packages installs it)"
done
sd_tools dpkg-buildpackage lintian
trap sd_cleanup EXIT
trap 'exit 1' INT TERM
TMP=$(mktemp -d /tmp/op-deb-test.XXXXXX)

# ---------------------------------------------------------------- build
# The tree as it is (git's files, tracked or not ignored; without git
# everything but the build directory), copied: dpkg-buildpackage writes
# the .deb beside the source and its build directory inside it.
mkdir "$TMP/src"
if git -C "$SRC_ROOT" rev-parse --show-toplevel >/dev/null 2>&1; then
	(cd "$SRC_ROOT" && git ls-files -z --cached --others --exclude-standard |
	    xargs -0 cp --parents -t "$TMP/src/") ||
	    die "could not copy the tree to $TMP/src"
else
	tar -C "$SRC_ROOT" --exclude=./.git --exclude="./$(basename "$BUILD_DIR")" \
	    -cf - . | tar -C "$TMP/src" -xf - ||
	    die "could not copy the tree to $TMP/src"
fi
# buildpkg VERSION: the .deb of VERSION in $TMP, the log in $TMP/build-VERSION.log
buildpkg() {
	log "dpkg-buildpackage -b (version $1, DEB_BUILD_OPTIONS=nocheck)"
	if ! (cd "$TMP/src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
	    dpkg-buildpackage -b -uc -us) >"$TMP/build-$1.log" 2>&1; then
		tail -n 40 "$TMP/build-$1.log"
		die "dpkg-buildpackage of $1 failed (above)"
	fi
	[ -f "$TMP/order-processing_$1_amd64.deb" ] ||
	    die "no $TMP/order-processing_$1_amd64.deb after the build"
}
V1=$(cd "$TMP/src" && dpkg-parsechangelog -S Version)
V2=$V1+test1
buildpkg "$V1"
phase "build $V1"
# lintian as the package's users would: the .changes (the .deb and its
# dbgsym); pedantic and info tags are shown, E: and W: fail.
lintian --display-level '>=pedantic' "$TMP/order-processing_${V1}_amd64.changes" \
    >"$TMP/lintian.log" 2>&1
grep -v '^running with root privileges' "$TMP/lintian.log" | sed 's/^/  | /'
if grep -Eq '^[EW]: ' "$TMP/lintian.log"; then
	fail "lintian: errors or warnings (above)"
else
	ok "lintian: no error, no warning"
fi
phase "lintian"
mkdir "$TMP/v1"
mv "$TMP"/order-processing*_"${V1}"_* "$TMP/v1/"
{
	printf 'order-processing (%s) unstable; urgency=medium\n\n' "$V2"
	printf '  * A test build, to upgrade to.\n\n'
	printf ' -- %s  %s\n\n' "$(cd "$TMP/src" && dpkg-parsechangelog -S Maintainer)" \
	    "$(date -R)"
	cat "$TMP/src/debian/changelog"
} >"$TMP/changelog" && mv "$TMP/changelog" "$TMP/src/debian/changelog"
buildpkg "$V2"
phase "build $V2"

# ---------------------------------------------------------------- the container
sd_base
sd_root deb fresh
phase "base root, overlay"

# The debs where apt's sandbox user can read them.
pkgdir=/var/cache/op-test
mkdir -p "$ROOTFS$pkgdir"
cp "$TMP/v1/order-processing_${V1}_amd64.deb" \
    "$TMP/order-processing_${V2}_amd64.deb" "$ROOTFS$pkgdir/"
chmod 0755 "$ROOTFS$pkgdir"
chmod 0644 "$ROOTFS$pkgdir"/*.deb

# A free loopback port and quick orders: a drop-in per service, there
# before the package starts them (the command line wins over the file).
PORT=$(PYTHONPATH=$SRC_ROOT/tests/lib python3 -c \
    'from optest.ports import free_port; print(free_port())')
BASE=http://127.0.0.1:$PORT
for u in order-api order-worker; do
	mkdir -p "$ROOTFS/etc/systemd/system/$u.service.d"
done
cat >"$ROOTFS/etc/systemd/system/order-api.service.d/test.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/sbin/order-api --listen 127.0.0.1:$PORT
EOF
cat >"$ROOTFS/etc/systemd/system/order-worker.service.d/test.conf" <<EOF
[Service]
ExecStart=
ExecStart=/usr/sbin/order-worker --workers 2 --pickup-delay-ms 200 --processing-ms 300
EOF

sd_boot
phase "boot"

# apt_get ARGS...: in the container, its output in $TMP/apt.log
apt_get() {
	E env DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@" \
	    >"$TMP/apt.log" 2>&1
}
apt_get update || {
	tail -n 20 "$TMP/apt.log"
	skip "apt-get update in the container failed (no mirror?)"
}
phase "apt-get update"

# ---------------------------------------------------------------- install
if ! apt_get install "$pkgdir/order-processing_${V1}_amd64.deb"; then
	tail -n 30 "$TMP/apt.log"
	grep -q 'Unable to fetch\|Could not resolve\|Failed to fetch' "$TMP/apt.log" &&
	    skip "apt-get could not fetch the dependencies (no mirror?)"
	die "apt-get install ./order-processing_${V1}_amd64.deb failed (above)"
fi
grep -E 'order-processing|sysusers|Created symlink' "$TMP/apt.log" |
    sed 's/^/  | /'
ok "apt-get install ./order-processing_${V1}_amd64.deb"
phase "apt-get install $V1 (with its libraries)"

pw=$(E getent passwd order-processing) &&
    ok "user: $pw" || fail "no user order-processing after the install"
case $pw in
*:/usr/sbin/nologin | *:/sbin/nologin | "") ;;
*) fail "order-processing has a login shell: $pw" ;;
esac
[ "$(E systemctl is-enabled order-processing.target)" = enabled ] ||
    fail "order-processing.target is not enabled"
for u in order-processing.target order-api order-worker; do
	E systemctl is-active --quiet $u ||
	    die "$u is $(E systemctl is-active $u) after the install"
done
ok "order-processing.target enabled; it, order-api and order-worker active"
conf=/etc/order-processing/order-processing.conf
E dpkg-query -W -f='${Conffiles}\n' order-processing | grep -q "^ $conf " &&
    E grep -qx "$conf" /var/lib/dpkg/info/order-processing.conffiles &&
    ok "$conf is a conffile" || fail "$conf is not a conffile"
for f in /usr/sbin/order-api /usr/sbin/order-worker /usr/sbin/order-ctl \
    /usr/share/man/man8/order-api.8.gz /usr/share/man/man8/order-worker.8.gz \
    /usr/share/man/man8/order-ctl.8.gz /usr/share/man/man5/order-processing.conf.5.gz \
    /usr/share/man/man7/order-processing.7.gz \
    /usr/share/bash-completion/completions/order-ctl \
    /usr/lib/sysusers.d/order-processing.conf \
    /usr/lib/sysctl.d/60-order-processing.conf \
    /usr/share/doc/order-processing/examples/nginx/order-processing.conf; do
	E test -f $f || fail "$f is not installed"
done
ok "the daemons, order-ctl, its completion, the man pages and the snippets are installed"
# The queue sysctl: applied, or (nspawn's /proc/sys is read-only) the
# postinst said so and went on.
want_msgmax=$(E sed -n 's/^fs\.mqueue\.msg_max[[:space:]]*=[[:space:]]*//p' \
    /usr/lib/sysctl.d/60-order-processing.conf)
have=$(E cat /proc/sys/fs/mqueue/msg_max)
if [ "$have" = "$want_msgmax" ]; then
	ok "fs.mqueue.msg_max = $have: the postinst applied the sysctl.d snippet"
elif grep -q "fs.mqueue.msg_max is $have, not $want_msgmax" "$TMP/apt.log"; then
	grep 'fs.mqueue.msg_max' "$TMP/apt.log" |
	    sed 's/^/  note, from the postinst: /'
	ok "fs.mqueue.msg_max stays $have (read-only /proc/sys): the postinst said so and went on"
else
	fail "fs.mqueue.msg_max is $have, not $want_msgmax, and the postinst" \
	    "did not say so"
fi

wait_for 15 "GET $BASE/readyz to answer 200" readyz_is 200 ||
    die "the API is not ready on $BASE"
first=$(create_order) || die "could not create an order through the API"
wait_for 20 "$first to complete" all_completed "$first" ||
    die "order $first did not complete ($(status_of "$first"))"
ok "order $first created over HTTP completed"
phase "checks after the install"

# ---------------------------------------------------------------- upgrade under load
# The operator's edit of the conffile survives the upgrade.
E sh -c "echo '# edited by test_deb.sh' >>$conf" || fail "could not edit $conf"
api_pid=$(prop order-api MainPID)
wrk_pid=$(prop order-worker MainPID)
# The client: creates orders one after another until $TMP/stop appears;
# the ids answered 201 go to $TMP/ids; what failed is counted: refused
# connections and 503s stored nothing, anything else (a reset after the
# request went out, a timeout) might have.
cat >"$TMP/client.py" <<'EOF'
import json, os, sys, time, urllib.error, urllib.request
base, out = sys.argv[1], sys.argv[2]
stop = os.path.join(os.path.dirname(out), "stop")
body = json.dumps({"user_id": 8, "item_ids": [1, 2], "total_amount": 9.5}).encode()
counts = {"201": 0, "refused": 0, "503": 0, "other": 0}
with open(out, "w") as f:
    while not os.path.exists(stop):
        req = urllib.request.Request(base + "/api/orders/", data=body,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                j = json.load(r)
                if r.status == 201:
                    counts["201"] += 1
                    f.write(j["order_id"] + "\n")
                    f.flush()
                else:
                    counts["other"] += 1
        except urllib.error.HTTPError as e:
            counts["503" if e.code == 503 else "other"] += 1
            time.sleep(0.05)
        except (ConnectionRefusedError, urllib.error.URLError) as e:
            r = getattr(e, "reason", e)
            counts["refused" if isinstance(r, ConnectionRefusedError) else "other"] += 1
            time.sleep(0.05)
        except OSError:
            counts["other"] += 1
            time.sleep(0.05)
        time.sleep(0.005)
json.dump(counts, open(out + ".counts", "w"))
EOF
python3 "$TMP/client.py" "$BASE" "$TMP/ids" &
client=$!
ids_over() {	# ids_over N: the client got more than N ids
	[ -f "$TMP/ids" ] && [ "$(wc -l <"$TMP/ids")" -gt "$1" ]
}
wait_for 10 "the client's first orders" ids_over 20 ||
    fail "the client got no orders before the upgrade"
before=$(wc -l <"$TMP/ids")
t=$(date +%s%N)
if ! apt_get install "$pkgdir/order-processing_${V2}_amd64.deb"; then
	tail -n 30 "$TMP/apt.log"
	touch "$TMP/stop"
	wait $client
	die "apt-get install ./order-processing_${V2}_amd64.deb failed (above)"
fi
ms=$((($(date +%s%N) - t) / 1000000))
during=$(($(wc -l <"$TMP/ids") - before))
after_upgrade=$(wc -l <"$TMP/ids")
wait_for 20 "the client's orders after the upgrade" ids_over $((after_upgrade + 20)) ||
    fail "the client got no orders after the upgrade"
touch "$TMP/stop"
wait $client
counts=$(cat "$TMP/ids.counts")
n=$(wc -l <"$TMP/ids")
ok "apt-get install ./order-processing_${V2}_amd64.deb in $ms ms while the" \
    "client created orders: $n answered 201 ($before before, $during during" \
    "the upgrade); client: $counts"
[ "$(E dpkg-query -W -f='${Version}' order-processing)" = "$V2" ] ||
    fail "dpkg says order-processing $(E dpkg-query -W -f='${Version}' order-processing), not $V2"
[ "$during" -gt 0 ] ||
    fail "the client got no order answered while apt-get upgraded: not under load"
E grep -qx '# edited by test_deb.sh' "$conf" &&
    ok "the edit of $conf is kept by the upgrade" ||
    fail "the upgrade lost the edit of $conf"
new_api=$(prop order-api MainPID)
new_wrk=$(prop order-worker MainPID)
both_active || die "not both active after the upgrade"
[ "$new_api" != "$api_pid" ] && [ "$new_wrk" != "$wrk_pid" ] &&
    ok "both restarted by the upgrade: api $api_pid -> $new_api," \
        "worker $wrk_pid -> $new_wrk" ||
    fail "the upgrade did not restart both: api $api_pid -> $new_api," \
        "worker $wrk_pid -> $new_wrk"
[ "$(sort "$TMP/ids" | uniq -d | wc -l)" = 0 ] ||
    fail "an order id was answered twice: $(sort "$TMP/ids" | uniq -d | head -n 3)"
# Every id answered 201 completes (one GET each, until a deadline).
if out=$(python3 - "$BASE" "$TMP/ids" "$first" <<'EOF'
import json, sys, time, urllib.request
base, path, first = sys.argv[1], sys.argv[2], sys.argv[3]
ids = [l.strip() for l in open(path) if l.strip()] + [first]
deadline = time.monotonic() + 60
pending = list(ids)
while pending and time.monotonic() < deadline:
    left = []
    for i in pending:
        with urllib.request.urlopen(base + "/api/orders/%s/status/" % i,
                                    timeout=10) as r:
            if json.load(r)["status"] != "Completed":
                left.append(i)
    pending = left
    if pending:
        time.sleep(0.3)
if pending:
    sys.exit("%d of %d orders not Completed after 60 s: %s"
             % (len(pending), len(ids), pending[:5]))
print("%d orders Completed" % len(ids))
EOF
); then
	ok "every order answered 201, and the first one: $out"
else
	fail "$out"
fi
# The counts: the store holds the orders answered 201, the first, and at
# most the requests whose answer was lost ('other'); all Completed.
[ "$(http GET /api/orders/metrics/)" = 200 ] || fail "GET metrics failed"
total=$(json 'sum(j["order_status_count"].values())')
done_n=$(json 'j["order_status_count"]["Completed"]')
other=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["other"])' \
    "$TMP/ids.counts")
want=$((n + 1))
if [ "$total" -ge "$want" ] && [ "$total" -le $((want + other)) ] &&
    [ "$done_n" = "$total" ]; then
	ok "metrics: $total orders, $done_n Completed (answered 201: $n, and the first)"
else
	fail "metrics: $total orders, $done_n Completed; want $want" \
	    "(+ at most $other whose answer was lost), all Completed"
fi
out=$(E runuser -u order-processing -- order-ctl check 2>&1) &&
    ok "order-ctl check: $(echo "$out" | tail -n 1)" ||
    fail "order-ctl check after the upgrade: $out"
phase "upgrade under load, checks"

# ---------------------------------------------------------------- remove
apt_get remove order-processing ||
    { tail -n 20 "$TMP/apt.log"; die "apt-get remove order-processing failed"; }
for u in order-api order-worker order-processing.target; do
	s=$(E systemctl is-active $u)
	case $s in
	inactive | unknown) ;;
	*) fail "$u is $s after apt-get remove" ;;
	esac
	E test -e /lib/systemd/system/$u.service -o -e /lib/systemd/system/$u &&
	    fail "$u's unit file is still there after apt-get remove"
done
E test -f /var/lib/order-processing/data.mdb &&
    ok "apt-get remove: services stopped, units gone," \
        "/var/lib/order-processing kept: $(E ls /var/lib/order-processing | tr '\n' ' ')" ||
    fail "apt-get remove removed the data: $(E ls -la /var/lib/order-processing 2>&1)"
E test -f "$conf" || fail "apt-get remove removed the conffile $conf"
apt_get install "$pkgdir/order-processing_${V2}_amd64.deb" ||
    { tail -n 20 "$TMP/apt.log"; die "apt-get install after the remove failed"; }
wait_for 15 "GET $BASE/readyz to answer 200" readyz_is 200 ||
    die "the API is not ready after installing again"
[ "$(status_of "$first")" = Completed ] &&
    [ "$(http GET /api/orders/metrics/)" = 200 ] &&
    [ "$(json 'sum(j["order_status_count"].values())')" = "$total" ] &&
    ok "installed again: the $total orders of before are there" ||
    fail "installed again: the orders of before are not all there" \
        "($(cat "$TMP/body"))"
phase "remove, install again"

# ---------------------------------------------------------------- purge
apt_get purge order-processing ||
    { tail -n 20 "$TMP/apt.log"; die "apt-get purge order-processing failed"; }
for d in /var/lib/order-processing /etc/order-processing; do
	E test -e $d && fail "$d is still there after apt-get purge: $(E ls -la $d)"
done
both_active && fail "a service still runs after apt-get purge"
E dpkg-query -W -f='${Status}' order-processing 2>/dev/null |
    grep -q 'installed\|config-files' &&
    fail "dpkg still knows order-processing after the purge"
ok "apt-get purge: /var/lib/order-processing and /etc/order-processing gone"
phase "purge"

sd_poweroff
phase "poweroff"
echo "timings:"
printf '%s' "$timings"
log "$failed failed"
[ "$failed" -eq 0 ] || exit 1
exit 0
