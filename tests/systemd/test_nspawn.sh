#!/bin/bash
# The units under a real systemd: boot Debian 12 in systemd-nspawn (a
# debootstrap'ed tree booted with systemd as pid 1), install the built tree into
# it, and do what an operator does:
#   systemd-sysusers, sysctl --system; the queue sysctl in effect
#   systemctl enable --now order-processing.target: both active (READY=1)
#   an order created through the API completes (curl from the host: the
#     container shares the host's network; a free loopback port)
#   the queue /dev/mqueue/order-processing is order-processing:order-processing 0660
#   systemctl stop order-worker: the API answers, /readyz turns 503
#   systemctl start order-worker: the backlog completes
#   order-ctl as the service user (runuser): status sees order-api
#     running, show, check consistent, backup
#   systemctl restart order-processing.target: both restart
#   systemctl reload order-api: SIGHUP, still active, the reload logged
#   journalctl -u order-api: the daemon's lines with their levels (PRIORITY
#     6 for info); a SIGKILLed worker child gives a warn line at PRIORITY 4
#   SIGSTOP of each daemon's main pid: the watchdog restarts it (a drop-in
#     sets WatchdogSec=3s; first it proves the daemon feeds it)
#   systemctl stop order-processing.target: both stop within their stop
#     timeout, and (the API started alone) no order is left Processing
#   a reboot of the container: the enabled target brings both up again
# Limits of this host, reported as notes, not failures: nspawn mounts
# /proc/sys read-only, so `sysctl --system` cannot set fs.mqueue.msg_max
# inside; the test applies the snippet from the host in the container's
# IPC namespace. Without CAP_SYS_RESOURCE in the host's bounding set
# systemd cannot raise RLIMIT_MSGQUEUE to LimitMSGQUEUE=, and the daemons
# fall back to a 10-message queue.
#
# The root: debootstrap --variant=minbase --include=systemd,dbus,procps
# bookworm into /var/tmp/op-sdroot (OP_SDROOT overrides; lib.sh's sd_base),
# the base that no test changes; this test boots an overlay of it
# (/var/tmp/op-sdroot-nspawn/root, its changes in .../upper), kept and
# reused; the mirror is read from the host's apt sources at run time. Each
# run resets the project's state in it (the data dir, the user, drop-ins,
# enable links, the journal). The daemons' shared libraries the root lacks
# (ldd inside) are installed in it with apt-get from the packages that hold
# them on the host (dpkg -S).
#
# The install: `meson install --destdir ROOT` of a build with prefix /usr.
# When $BUILD_DIR has prefix /usr it is used as is; otherwise a second build
# dir $BUILD_DIR/nspawn-usr is configured from the same sources with
# --prefix=/usr (and the same 'systemd' feature) and compiled.
#
# Needs root, systemd-nspawn, nsenter, debootstrap, curl, python3; installs
# debootstrap and systemd-container with apt-get when missing.
# Environment: BUILD_DIR (meson sets it), OP_SDROOT, CI (when set, what
# would be a skip is a failure), KEEP_RUNNING=1 (leave the container up).
# Exit: 0 pass, 1 fail, 77 skip (not root; no mirror / debootstrap failed).
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

failed=0

sd_tools
trap sd_cleanup EXIT
trap 'exit 1' INT TERM

TMP=$(mktemp -d /tmp/op-nspawn-test.XXXXXX)

# ---------------------------------------------------------------- the root
# The base root and this test's overlay of it, kept from run to run.
sd_base
sd_root nspawn keep

# Forget what an earlier run left: the state, the user, the enablement,
# drop-ins, the journal.
rm -rf "$ROOTFS/var/lib/order-processing" \
    "$ROOTFS/var/lib/private/order-processing" \
    "$ROOTFS/etc/systemd/system/order-api.service.d" \
    "$ROOTFS/etc/systemd/system/order-worker.service.d" \
    "$ROOTFS/etc/systemd/system/order-processing.target.wants"
rm -f "$ROOTFS/etc/systemd/system/multi-user.target.wants/order-processing.target"
for f in passwd group shadow gshadow; do
	[ -f "$ROOTFS/etc/$f" ] && sed -i '/^order-processing:/d' "$ROOTFS/etc/$f"
done
find "$ROOTFS/var/log/journal" -mindepth 1 -delete 2>/dev/null

# ---------------------------------------------------------------- install
prefix=$(meson_option "$BUILD_DIR" prefix) || {
	echo "FAIL: $BUILD_DIR is not a configured meson build directory"
	exit 1
}
if [ "$prefix" = /usr ]; then
	NB=$BUILD_DIR
else
	NB=$BUILD_DIR/nspawn-usr
	sdfeat=$(meson_option "$BUILD_DIR" systemd || echo auto)
	if [ ! -f "$NB/build.ninja" ]; then
		log "configuring $NB (--prefix=/usr -Dsystemd=$sdfeat)"
		if ! meson setup --prefix=/usr -Dsystemd="$sdfeat" "$NB" \
		    "$SRC_ROOT" >"$TMP/setup.log" 2>&1; then
			cat "$TMP/setup.log"
			echo "FAIL: meson setup of $NB failed"
			exit 1
		fi
	fi
	log "building $NB"
	if ! meson compile -C "$NB" >"$TMP/compile.log" 2>&1; then
		tail -n 40 "$TMP/compile.log"
		echo "FAIL: the /usr build in $NB failed"
		exit 1
	fi
fi
log "meson install -C $NB --destdir $ROOTFS"
meson_install "$NB" "$ROOTFS" || exit 1
rm -f "$ROOTFS.log"
for f in /usr/sbin/order-api /usr/sbin/order-worker \
    /usr/lib/systemd/system/order-api.service \
    /usr/lib/systemd/system/order-worker.service \
    /usr/lib/systemd/system/order-processing.target \
    /usr/lib/sysusers.d/order-processing.conf \
    /usr/lib/sysctl.d/60-order-processing.conf \
    /etc/order-processing/order-processing.conf; do
	[ -f "$ROOTFS$f" ] || {
		echo "FAIL: $f was not installed into the root"
		exit 1
	}
done

# The installed sample, plus quick settings and a free loopback port.
PORT=$(PYTHONPATH=$SRC_ROOT/tests/lib python3 -c \
    'from optest.ports import free_port; print(free_port())')
BASE=http://127.0.0.1:$PORT
cat >>"$ROOTFS/etc/order-processing/order-processing.conf" <<EOF

# Added by tests/systemd/test_nspawn.sh: quick orders, a free port.
listen = 127.0.0.1:$PORT
pickup-delay-ms = 200
processing-ms = 300
workers = 2
EOF

# ---------------------------------------------------------------- helpers
processing_count() {
	[ "$(http GET /api/orders/metrics/)" = 200 ] || return 1
	json 'j["order_status_count"]["Processing"]'
}

sd_boot

# The daemons' shared libraries: what the root lacks, the packages that
# hold them on the host (which built the daemons), installed with apt.
missing=$(E ldd /usr/sbin/order-api /usr/sbin/order-worker |
    awk '/not found/ {print $1}' | sort -u)
if [ -n "$missing" ]; then
	pkgs=""
	for so in $missing; do
		p=$(dpkg -S "*/$so" 2>/dev/null | head -n 1 | cut -d: -f1)
		[ -n "$p" ] || die "no host package holds $so (the daemons need it)"
		pkgs="$pkgs $p"
	done
	log "installing the daemons' libraries in the root:$pkgs"
	if ! E sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $pkgs" \
	    >"$TMP/apt.log" 2>&1; then
		tail -n 20 "$TMP/apt.log"
		skip "apt-get install$pkgs in the root failed (no mirror?)"
	fi
	missing=$(E ldd /usr/sbin/order-api /usr/sbin/order-worker |
	    awk '/not found/ {print $1}')
	[ -z "$missing" ] || die "still missing in the root: $missing"
fi

# ---------------------------------------------------------------- sysusers, sysctl
if out=$(E systemd-sysusers 2>&1); then
	ok "systemd-sysusers${out:+: $out}"
else
	fail "systemd-sysusers failed: $out"
fi
if pw=$(E getent passwd order-processing) &&
    gr=$(E getent group order-processing); then
	ok "user $pw, group $gr"
	case $pw in
	*:/usr/sbin/nologin | *:/sbin/nologin) ;;
	*) fail "order-processing has a login shell: $pw" ;;
	esac
else
	die "systemd-sysusers made no order-processing user and group"
fi

want_msgmax=$(sed -n 's/^fs\.mqueue\.msg_max[[:space:]]*=[[:space:]]*//p' \
    "$ROOTFS/usr/lib/sysctl.d/60-order-processing.conf")
out=$(E sysctl --system 2>&1)
echo "sysctl --system:"
printf '%s\n' "$out" | sed 's/^/  | /'
printf '%s\n' "$out" | grep -q '60-order-processing.conf' ||
    fail "sysctl --system did not read /usr/lib/sysctl.d/60-order-processing.conf"
have=$(E cat /proc/sys/fs/mqueue/msg_max)
if [ "$have" = "$want_msgmax" ]; then
	ok "fs.mqueue.msg_max = $have in the container"
else
	# nspawn mounts /proc/sys read-only; the mqueue limits belong to the
	# container's IPC namespace, which the host can write into.
	echo "note: the container's /proc/sys is read-only under nspawn" \
	    "(msg_max stays $have); applying the snippet from the host in" \
	    "the container's IPC namespace, as sysctl --system does on a host"
	nsenter -t "$SD" --ipc sysctl -q -p \
	    "$ROOTFS/usr/lib/sysctl.d/60-order-processing.conf"
	have=$(E cat /proc/sys/fs/mqueue/msg_max)
	[ "$have" = "$want_msgmax" ] ||
	    fail "fs.mqueue.msg_max is $have in the container, not $want_msgmax"
fi
if ! E findmnt -n /dev/mqueue >/dev/null 2>&1; then
	echo "note: /dev/mqueue was not mounted in the container; mounting it"
	E mount -t mqueue none /dev/mqueue || fail "could not mount /dev/mqueue"
fi

# ---------------------------------------------------------------- enable --now
E systemctl daemon-reload
if out=$(E systemctl enable --now order-processing.target 2>&1); then
	ok "systemctl enable --now order-processing.target"
	printf '%s\n' "$out" | sed 's/^/  | /'
else
	printf '%s\n' "$out" | sed 's/^/  | /'
	die "systemctl enable --now order-processing.target failed"
fi
[ "$(E systemctl is-enabled order-processing.target)" = enabled ] ||
    fail "order-processing.target is not enabled"
for u in order-api order-worker; do
	E systemctl list-dependencies --plain --no-pager \
	    order-processing.target | grep -q " $u.service\$" ||
	    fail "order-processing.target does not pull in $u"
	show=$(E systemctl show -p ActiveState,SubState,Type,NotifyAccess,StatusText,MainPID,User,WatchdogUSec $u |
	    tr '\n' ' ')
	echo "  $u: $show"
	[ "$(prop $u ActiveState)/$(prop $u SubState)" = active/running ] ||
	    die "$u is not active (running) after enable --now"
	[ "$(prop $u Type)" = notify ] || fail "$u is not Type=notify"
	# A Type=notify start job finishes on READY=1; the STATUS= that
	# comes with it shows the message came from the daemon.
	[ -n "$(prop $u StatusText)" ] || fail "$u sent no STATUS= with READY=1"
	pid=$(prop $u MainPID)
	owner=$(E stat -c %U:%G /proc/$pid)
	[ "$owner" = order-processing:order-processing ] ||
	    fail "$u runs as $owner, not order-processing:order-processing"
done
E journalctl --no-pager -u order-api -u order-worker -o cat |
    grep -q 'Started order-api.service' ||
    fail "the journal has no 'Started order-api.service'"
ok "both services active (running), READY=1 received, user order-processing"

st=$(E stat -c '%U:%G %a' /var/lib/order-processing)
[ "$st" = "order-processing:order-processing 750" ] &&
    ok "StateDirectory /var/lib/order-processing: $st" ||
    fail "/var/lib/order-processing is '$st', want order-processing:order-processing 750"
st=$(E stat -c '%U:%G %a' /dev/mqueue/order-processing 2>&1)
if [ "$st" = "order-processing:order-processing 660" ]; then
	ok "queue /dev/mqueue/order-processing: $st"
else
	fail "/dev/mqueue/order-processing is '$st'," \
	    "want order-processing:order-processing 660"
fi
for f in $(E find /var/lib/order-processing -type f); do
	st=$(E stat -c '%U:%G %a' "$f")
	case $st in
	"order-processing:order-processing 660" | \
	"order-processing:order-processing 640" | \
	"order-processing:order-processing 600") ;;
	*) fail "$f is '$st' (open to others?)" ;;
	esac
done
# The queue's depth: fs.mqueue.msg_max (the sysctl.d snippet) and
# RLIMIT_MSGQUEUE (LimitMSGQUEUE=) both must allow it.
qline=$(E journalctl --no-pager -u order-api -o cat | grep 'opened queue /order-processing (' | tail -n 1)
echo "  $qline"
pid=$(prop order-api MainPID)
rlimit=$(E awk '/^Max msgqueue size/ {print $5}' /proc/$pid/limits)
want_rlimit=$(prop order-api LimitMSGQUEUE)
case $qline in
*"($want_msgmax messages"*)
	ok "the API opened the queue with $want_msgmax messages" ;;
*)
	if [ "$rlimit" != "$want_rlimit" ]; then
		# systemd sets the closest limit it can: without CAP_SYS_RESOURCE
		# (not in this host's bounding set) it cannot raise the hard one.
		echo "note: order-api runs with RLIMIT_MSGQUEUE $rlimit, not" \
		    "LimitMSGQUEUE=$want_rlimit: this host cannot raise it (no" \
		    "CAP_SYS_RESOURCE in its capability bounding set), so the" \
		    "daemons fell back to a shallower queue, as designed"
		case $qline in
		*"(10 messages"*) ok "the queue fell back to 10 messages" ;;
		*) fail "the API did not open the queue: $qline" ;;
		esac
	else
		fail "the API opened the queue shallower than fs.mqueue.msg_max" \
		    "= $want_msgmax with RLIMIT_MSGQUEUE $rlimit: $qline"
	fi ;;
esac

# ---------------------------------------------------------------- an order
wait_for 15 "GET $BASE/readyz to answer 200" readyz_is 200 ||
    die "the API is not ready on $BASE"
ok "GET /readyz: 200 $(cat "$TMP/body")"
id=$(create_order) || die "could not create an order through the API"
wait_for 20 "$id to complete" all_completed "$id" ||
    die "order $id did not complete ($(status_of "$id"))"
ok "order $id created through the API completed"

# ---------------------------------------------------------------- stop the worker alone
api_pid=$(prop order-api MainPID)
E systemctl stop order-worker || fail "systemctl stop order-worker failed"
E systemctl is-active --quiet order-worker && fail "order-worker still active"
E systemctl is-active --quiet order-api ||
    die "stopping order-worker stopped order-api"
[ "$(prop order-api MainPID)" = "$api_pid" ] ||
    fail "stopping order-worker restarted order-api"
[ "$(http GET /healthz)" = 200 ] ||
    fail "GET /healthz: not 200 with the worker stopped"
t=$(date +%s)
wait_for 15 "GET /readyz to answer 503" readyz_is 503 ||
    fail "GET /readyz did not turn 503 within 15 s of stopping the worker"
ok "order-worker stopped: the API answers, /readyz 503 after" \
    "$(($(date +%s) - t)) s: $(cat "$TMP/body")"
backlog=""
for _ in 1 2 3 4 5; do
	id=$(create_order) || die "could not create an order with the worker stopped"
	backlog="$backlog $id"
done
sleep 1
for id in $backlog; do
	s=$(status_of "$id")
	[ "$s" = Pending ] || fail "$id is $s with no worker running"
done
ok "5 orders wait Pending:$backlog"

E systemctl start order-worker || die "systemctl start order-worker failed"
wait_for 30 "the backlog to complete" all_completed $backlog ||
    die "the backlog did not complete after starting order-worker"
wait_for 15 "GET /readyz to answer 200" readyz_is 200 ||
    fail "GET /readyz did not return to 200"
ok "order-worker started: the backlog completed, /readyz 200"

# ---------------------------------------------------------------- order-ctl
# As its man page says to run it: as the service user, with the installed
# config file's data-dir, while both daemons run.
ctl() {
	E runuser -u order-processing -- order-ctl "$@"
}
out=$(ctl status 2>&1) || fail "order-ctl status as order-processing: $out"
case $out in
*"order-api: running"*) ;;
*) fail "order-ctl status does not see order-api running: $out" ;;
esac
for id in $backlog; do
	ctl show "$id" | grep -q "Completed" ||
	    fail "order-ctl show $id: not Completed: $(ctl show "$id" 2>&1)"
done
out=$(ctl check 2>&1) || fail "order-ctl check as order-processing: $out"
ctl backup /var/lib/order-processing/ctl-backup.mdb >/dev/null 2>&1 &&
    E rm -f /var/lib/order-processing/ctl-backup.mdb ||
    fail "order-ctl backup as order-processing failed"
ok "order-ctl as the service user: status, show, check ($(echo "$out" |
    tail -n 1 | sed 's/^check: //')), backup"

# ---------------------------------------------------------------- restart the target
api_pid=$(prop order-api MainPID)
wrk_pid=$(prop order-worker MainPID)
E systemctl restart order-processing.target ||
    die "systemctl restart order-processing.target failed"
both_active || die "not both active after restarting the target"
[ "$(prop order-api MainPID)" != "$api_pid" ] ||
    fail "order-api was not restarted with the target (pid $api_pid)"
[ "$(prop order-worker MainPID)" != "$wrk_pid" ] ||
    fail "order-worker was not restarted with the target (pid $wrk_pid)"
wait_for 15 "GET /readyz to answer 200" readyz_is 200 ||
    fail "GET /readyz not 200 after restarting the target"
id=$(create_order) && wait_for 20 "$id to complete" all_completed "$id" ||
    fail "an order did not complete after restarting the target"
ok "systemctl restart order-processing.target: both restarted" \
    "(api $api_pid -> $(prop order-api MainPID)," \
    "worker $wrk_pid -> $(prop order-worker MainPID)); $id completed"

# ---------------------------------------------------------------- reload
api_pid=$(prop order-api MainPID)
inv=$(prop order-api InvocationID)
hup_logged() {
	E journalctl --no-pager _SYSTEMD_INVOCATION_ID="$inv" -o cat |
	    grep -q 'SIGHUP: reopening the log'
}
E systemctl reload order-api || fail "systemctl reload order-api failed"
E systemctl is-active --quiet order-api || fail "order-api not active after reload"
[ "$(prop order-api MainPID)" = "$api_pid" ] ||
    fail "reload restarted order-api"
wait_for 5 "the SIGHUP line in the journal" hup_logged &&
    ok "systemctl reload order-api: still active (pid $api_pid), the" \
        "reload logged" ||
    fail "order-api did not log the reload (SIGHUP)"
E systemctl reload order-worker || fail "systemctl reload order-worker failed"
E systemctl is-active --quiet order-worker || fail "order-worker not active after reload"

# ---------------------------------------------------------------- journal levels
E journalctl --no-pager -u order-api -o json >"$TMP/journal.json"
if python3 - "$TMP/journal.json" <<'EOF'; then
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
daemon = [l for l in lines if l.get("SYSLOG_IDENTIFIER") == "order-api"]
if not daemon:
    sys.exit("no lines from order-api in journalctl -u order-api")
bad = [l["MESSAGE"] for l in daemon
       if isinstance(l.get("MESSAGE"), str) and l["MESSAGE"].startswith("<")]
if bad:
    sys.exit("lines still carry their <N> prefix: %r" % bad[:3])
want = {"info: serving http://": "6", "info: SIGHUP: reopening the log": "6",
        "info: opened queue ": "6", "info: stopping on SIGTERM": "6"}
for prefix, prio in want.items():
    got = [l.get("PRIORITY") for l in daemon
           if prefix in str(l.get("MESSAGE", ""))]
    if not got:
        sys.exit("no %r line from order-api in the journal" % prefix)
    print("  PRIORITY=%s %s" % (prio, [l["MESSAGE"] for l in daemon if prefix in str(l.get("MESSAGE", ""))][0]))
    if set(got) != {prio}:
        sys.exit("%r lines have PRIORITY %r, want %s" % (prefix, got, prio))
prios = sorted({l.get("PRIORITY") for l in daemon})
print("  order-api lines: %d, priorities %s" % (len(daemon), prios))
EOF
	ok "journalctl -u order-api: the daemon's lines with their levels"
else
	fail "journalctl -u order-api: levels wrong (above)"
fi
E journalctl --no-pager -u order-api -n 5 -o verbose --output-fields=PRIORITY,MESSAGE |
    grep -E '^\s*(PRIORITY|MESSAGE)=' | sed 's/^/  | /'

# A warning has its own level: SIGKILL one worker child, the master logs
# a warn line (and forks it again).
wpid=$(prop order-worker MainPID)
child=$(E cat /sys/fs/cgroup/unified/system.slice/order-worker.service/cgroup.procs |
    grep -vx "$wpid" | head -n 1)
if [ -n "$child" ] && E kill -KILL "$child"; then
	warn_logged() {
		E journalctl --no-pager -u order-worker -o json |
		    python3 -c 'import json, sys
ls = [json.loads(l) for l in sys.stdin if l.strip()]
w = [l for l in ls if "warn: worker" in str(l.get("MESSAGE"))
     and "killed by signal 9" in str(l.get("MESSAGE"))]
if not w:
    sys.exit(1)
print("  PRIORITY=%s %s" % (w[-1].get("PRIORITY"), w[-1]["MESSAGE"]))
sys.exit(0 if w[-1].get("PRIORITY") == "4" else 2)'
	}
	wait_for 5 "the master's warn line" warn_logged &&
	    ok "journalctl -u order-worker: $(warn_logged)" ||
	    fail "no warn line at PRIORITY=4 after killing worker pid $child:" \
	        "$(warn_logged)"
	E systemctl is-active --quiet order-worker ||
	    fail "order-worker not active after one of its workers was killed"
	[ "$(prop order-worker MainPID)" = "$wpid" ] ||
	    fail "killing a worker child restarted order-worker"
else
	fail "found no worker child of order-worker to kill"
fi

# ---------------------------------------------------------------- watchdog
mkdir -p "$ROOTFS/etc/systemd/system/order-api.service.d" \
    "$ROOTFS/etc/systemd/system/order-worker.service.d"
for u in order-api order-worker; do
	printf '[Service]\nWatchdogSec=3s\n' \
	    >"$ROOTFS/etc/systemd/system/$u.service.d/test.conf"
done
E systemctl daemon-reload
E systemctl restart order-api order-worker ||
    die "restart with the WatchdogSec=3s drop-ins failed"
for u in order-api order-worker; do
	w=$(prop $u WatchdogUSec)
	[ "$w" = 3s ] || die "$u: WatchdogUSec=$w with the drop-in, want 3s"
done
wait_for 15 "GET /readyz to answer 200" readyz_is 200 ||
    fail "GET /readyz not 200 after the watchdog drop-in"
# Fed: 8 s (more than twice the watchdog) and still the same processes.
api_pid=$(prop order-api MainPID)
wrk_pid=$(prop order-worker MainPID)
sleep 8
both_active && [ "$(prop order-api MainPID)" = "$api_pid" ] &&
    [ "$(prop order-worker MainPID)" = "$wrk_pid" ] &&
    ok "WatchdogSec=3s: both fed it for 8 s (same pids)" ||
    die "a daemon did not feed a 3 s watchdog (pids $api_pid $wrk_pid ->" \
        "$(prop order-api MainPID) $(prop order-worker MainPID))"

watchdog_restart() {	# UNIT
	local u=$1 pid n0 t
	pid=$(prop $u MainPID)
	n0=$(prop $u NRestarts)
	t=$(date +%s)
	E kill -STOP "$pid" || { fail "could not SIGSTOP $u ($pid)"; return; }
	restarted() {
		local p
		p=$(prop $u MainPID)
		[ "$(prop $u NRestarts)" -gt "$n0" ] && [ "$p" != 0 ] &&
		    [ "$p" != "$pid" ] && E systemctl is-active --quiet $u
	}
	if wait_for 60 "$u to be restarted by the watchdog" restarted; then
		ok "SIGSTOP $u (pid $pid): the watchdog restarted it in" \
		    "$(($(date +%s) - t)) s: NRestarts $n0 -> $(prop $u NRestarts)," \
		    "pid $(prop $u MainPID)"
	else
		fail "SIGSTOP $u (pid $pid): not restarted (NRestarts" \
		    "$(prop $u NRestarts), pid $(prop $u MainPID)," \
		    "$(E systemctl is-active $u))"
		E kill -CONT "$pid" 2>/dev/null
		return
	fi
	E journalctl --no-pager -u $u -o cat | grep -q 'Watchdog timeout' ||
	    fail "$u: no 'Watchdog timeout' in its journal"
	E journalctl --no-pager -u $u -o cat | grep -E 'Watchdog timeout|Main process exited|Failed with result|Scheduled restart' |
	    tail -n 4 | sed 's/^/  | /'
}
watchdog_restart order-api
wait_for 15 "GET /readyz to answer 200" readyz_is 200 ||
    fail "GET /readyz not 200 after the watchdog restarted order-api"
watchdog_restart order-worker
wait_for 15 "GET /readyz to answer 200" readyz_is 200 ||
    fail "GET /readyz not 200 after the watchdog restarted order-worker"
# The workers of the killed master went with it.
procs=$(E sh -c 'cat /sys/fs/cgroup/unified/system.slice/order-worker.service/cgroup.procs 2>/dev/null | wc -l')
echo "  order-worker cgroup after the watchdog restart: $procs processes"
[ "$procs" = 3 ] || fail "order-worker's cgroup has $procs processes, want 3 (master + 2 workers)"
id=$(create_order) && wait_for 20 "$id to complete" all_completed "$id" ||
    fail "an order did not complete after the watchdog restarts"
rm -rf "$ROOTFS/etc/systemd/system/order-api.service.d" \
    "$ROOTFS/etc/systemd/system/order-worker.service.d"
E systemctl daemon-reload

# ---------------------------------------------------------------- stop the target
# Orders take 2.5 s to process now, so some are Processing at the stop.
sed -i 's/^processing-ms = 300$/processing-ms = 2500/' \
    "$ROOTFS/etc/order-processing/order-processing.conf"
E systemctl restart order-worker || die "could not restart order-worker"
ids=""
for _ in $(seq 1 8); do
	id=$(create_order) && ids="$ids $id"
done
some_processing() {
	[ "$(processing_count)" -gt 0 ]
}
wait_for 5 "an order to be Processing" some_processing ||
    echo "note: no order was Processing at the stop"
http GET /api/orders/metrics/ >/dev/null
echo "  before stop: $(json 'j["order_status_count"]')"
api_timeout=$(prop order-api TimeoutStopUSec)
wrk_timeout=$(prop order-worker TimeoutStopUSec)
cursor=$(E journalctl --no-pager -n 0 --show-cursor | sed -n 's/^-- cursor: //p')
t=$(date +%s%N)
E systemctl stop order-processing.target ||
    fail "systemctl stop order-processing.target failed"
ms=$((($(date +%s%N) - t) / 1000000))
states="order-api $(E systemctl is-active order-api), order-worker $(E systemctl is-active order-worker)"
log "systemctl stop order-processing.target returned after $ms ms: $states"
settled() {
	for u in order-api order-worker; do
		case $(E systemctl is-active $u) in
		inactive | failed) ;;
		*) return 1 ;;
		esac
	done
}
wait_for 70 "both services to stop" settled ||
    fail "the services did not stop within 70 s"
ms=$((($(date +%s%N) - t) / 1000000))
for u in order-api order-worker; do
	s=$(E systemctl is-active $u)
	r=$(prop $u Result)
	[ "$s" = inactive ] && [ "$r" = success ] ||
	    fail "$u after stopping the target: $s, Result=$r"
done
if E journalctl --no-pager --after-cursor="$cursor" -u order-api \
    -u order-worker -o cat | grep -E "timed out|Killing process|SIGKILL"; then
	fail "a stop timed out or was killed (above)"
fi
case "$states," in
*" deactivating,"* | *" active,"*)
	echo "note: 'systemctl stop order-processing.target' returns once the" \
	    "target is stopped; the services stop after it (the target is" \
	    "ordered after them, so it stops first): $states" ;;
esac
ok "systemctl stop order-processing.target: both inactive, Result=success," \
    "$ms ms after the stop (TimeoutStopSec: api $api_timeout, worker $wrk_timeout)"
E journalctl --no-pager --after-cursor="$cursor" -u order-api \
    -u order-worker -o cat | sed 's/^/  | /'
E systemctl start order-api || die "could not start order-api alone"
E systemctl is-active --quiet order-worker &&
    fail "starting order-api alone started order-worker"
wait_for 15 "the API to answer" sh -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $BASE/healthz)\" = 200 ]" ||
    die "the API did not come back alone"
p=$(processing_count)
echo "  after stop, API alone: $(json 'j["order_status_count"]')"
[ "$p" = 0 ] && ok "nothing left Processing after the stop" ||
    fail "$p orders left Processing after stopping the target"
E systemctl stop order-api

# ---------------------------------------------------------------- enabled: a reboot
sd_poweroff
sd_boot
both_active && ok "after a reboot both services are up (the target is enabled)" ||
    fail "after a reboot: order-api $(E systemctl is-active order-api)," \
        "order-worker $(E systemctl is-active order-worker)"
wait_for 15 "GET /readyz to answer 200" readyz_is 200 ||
    fail "GET /readyz not 200 after the reboot"
wait_for 30 "the orders of before the stop to complete" all_completed $ids ||
    fail "orders of before the stop did not complete:$ids"
p=$(processing_count)
[ "$p" = 0 ] || fail "$p orders Processing after the reboot settled"

echo "---- order-api journal (this run)"
E journalctl --no-pager -u order-api -o short-monotonic | tail -n 25 | sed 's/^/  | /'
log "$failed failed"
if [ "$failed" -ne 0 ]; then
	diagnose
	exit 1
fi
exit 0
