# Sourced by the tests in tests/systemd/: where the build is, its options,
# and a DESTDIR install of it. Not a test itself.
#
# Environment: BUILD_DIR (meson sets it to the build root; default: build/
# beside this tree).

sd_here=$(cd "$(dirname "$0")" && pwd)
SRC_ROOT=$(cd "$sd_here/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$SRC_ROOT/build}

# A build option's value: meson_option BUILDDIR NAME
meson_option() {
	meson introspect "$1" --buildoptions | python3 -c '
import json, sys
for o in json.load(sys.stdin):
    if o["name"] == sys.argv[1]:
        v = o["value"]
        print(v if not isinstance(v, bool) else str(v).lower())
        break
else:
    sys.exit(1)
' "$2"
}

# Where a directory option lands: absolute as is, relative under prefix.
# meson_dir BUILDDIR NAME
meson_dir() {
	_p=$(meson_option "$1" prefix) || return 1
	_d=$(meson_option "$1" "$2") || return 1
	case $_d in
	/*) echo "$_d" ;;
	*) echo "$_p/$_d" ;;
	esac
}

# meson_install BUILDDIR DESTDIR: install without rebuilding (meson test
# has built already); the output goes to DESTDIR.log, shown on failure.
meson_install() {
	if ! meson install -C "$1" --no-rebuild --destdir "$2" \
	    >"$2.log" 2>&1; then
		echo "meson install -C $1 --destdir $2 failed:"
		sed 's/^/  | /' "$2.log"
		return 1
	fi
}

# ================================================================ containers
# The machinery of the tests that boot a real systemd (test_nspawn.sh,
# test_deb.sh): a Debian 12 root debootstrapped once into $SD_BASE
# (OP_SDROOT, default /var/tmp/op-sdroot) and never changed after; each
# test boots its own overlay of it (sd_root NAME: the changes go to
# $SD_BASE-NAME/upper), so the tests do not see each other's files. The
# caller defines fail, die and diagnose (sd_boot calls die).
#
# Environment: OP_SDROOT, CI (when set, what would be a skip is a failure),
# KEEP_RUNNING=1 (leave the container up at exit).

SD_BASE=${OP_SDROOT:-/var/tmp/op-sdroot}
SD_BASE_MARK="bookworm minbase systemd,dbus,procps v2 (overlay base)"
ROOTFS=""
SD_LAYER=""
NSPAWN=""
SD=""
TMP=""
T0=$(date +%s)

log() {
	printf '[%3ss] %s\n' "$(($(date +%s) - T0))" "$*"
}
skip() {
	if [ -n "${CI:-}" ]; then
		echo "FAIL: this would be a skip, but CI is set: $*"
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}
E() {
	nsenter -t "$SD" -a "$@"
}

# Reporting: fail counts a failed check in $failed (each test sets it to 0)
# and goes on; die also shows the units' state and journal (when a
# container is up) and exits.
fail() {
	echo "FAIL: $*"
	failed=$((failed + 1))
}
die() {
	fail "$@"
	diagnose
	exit 1
}
ok() {
	log "ok: $*"
}
diagnose() {
	[ -n "$SD" ] || return
	echo "---- systemctl status"
	E systemctl status --no-pager -l order-api order-worker \
	    order-processing.target 2>&1 | sed 's/^/  | /'
	echo "---- journalctl -u order-api -u order-worker (last 80)"
	E journalctl --no-pager -n 80 -u order-api -u order-worker 2>&1 |
	    sed 's/^/  | /'
}
prop() {	# prop UNIT PROPERTY
	E systemctl show -p "$2" --value "$1"
}

# sd_tools: root, and the tools; installs debootstrap and systemd-container
# with apt-get when missing (a skip when that fails).
sd_tools() {
	[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
	local need="" t
	command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
	command -v systemd-nspawn >/dev/null 2>&1 || need="$need systemd-container"
	if [ -n "$need" ]; then
		log "installing:$need"
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		    apt-get install -y -qq $need; } >/tmp/op-nspawn-apt.log 2>&1; then
			tail -n 20 /tmp/op-nspawn-apt.log
			skip "could not install$need with apt-get (no mirror?)"
		fi
	fi
	for t in nsenter curl python3 meson flock "$@"; do
		command -v "$t" >/dev/null 2>&1 || {
			echo "FAIL: $t is missing"
			exit 1
		}
	done
}

# The URI the host's apt uses for Debian bookworm (main), from deb822
# .sources files or one-line .list files.
find_mirror() {
	python3 - /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
	    /etc/apt/sources.list.d/*.list <<'EOF'
import sys
found = []
for path in sys.argv[1:]:
    try:
        text = open(path).read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in text.split("\n\n"):
            f = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, v = line.split(":", 1)
                f[k.strip().lower()] = v.split()
            if f.get("enabled", ["yes"])[0].lower() == "no":
                continue
            if "deb" in f.get("types", []) and "bookworm" in f.get("suites", []) \
                    and "main" in f.get("components", []):
                found += f.get("uris", [])
    else:
        for line in text.splitlines():
            w = line.split("#", 1)[0].split()
            if w[:1] != ["deb"]:
                continue
            w = w[1:]
            if w and w[0].startswith("["):
                while w and not w[0].endswith("]"):
                    w = w[1:]
                w = w[1:]
            if len(w) >= 3 and w[1] == "bookworm" and "main" in w[2:]:
                found.append(w[0])
for uri in found:
    if uri.startswith(("http://", "https://")):
        print(uri)
        break
EOF
}

# sd_cleanup: the EXIT trap: the container powered off (or killed, by its
# pid), nspawn's empty cgroup dirs removed, the overlay unmounted, TMP gone.
sd_cleanup() {
	rc=$?
	if [ -n "$NSPAWN" ] && [ "${KEEP_RUNNING:-}" = 1 ]; then
		echo "KEEP_RUNNING=1: container left up: nspawn pid $NSPAWN," \
		    "nsenter -t $SD -a ...; root $ROOTFS (an overlay mount)"
		return
	fi
	if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
		if [ -n "$SD" ]; then
			nsenter -t "$SD" -a systemctl poweroff --no-block \
			    >/dev/null 2>&1
		fi
		for _ in $(seq 1 100); do
			kill -0 "$NSPAWN" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$NSPAWN" 2>/dev/null; then
			kill -TERM "$NSPAWN" 2>/dev/null
			for _ in $(seq 1 50); do
				kill -0 "$NSPAWN" 2>/dev/null || break
				sleep 0.1
			done
		fi
		kill -KILL "$NSPAWN" 2>/dev/null
		wait "$NSPAWN" 2>/dev/null
	fi
	sd_cgroup_tidy
	[ -n "$ROOTFS" ] && mountpoint -q "$ROOTFS" && umount "$ROOTFS"
	[ -n "$TMP" ] && rm -rf "$TMP"
	return $rc
}
# nspawn leaves empty cgroup dirs at the hierarchy roots.
sd_cgroup_tidy() {
	local h
	for h in systemd unified; do
		[ -d /sys/fs/cgroup/$h/payload ] &&
		    find /sys/fs/cgroup/$h/payload -depth -type d \
		    -exec rmdir {} \; 2>/dev/null
		rmdir /sys/fs/cgroup/$h/supervisor 2>/dev/null
	done
	return 0
}

# sd_base: the base root, debootstrapped when missing or of another
# version (a marker file says it is complete); held with a shared lock for
# the rest of the run (fd 8), so that no run rebuilds it under another's
# booted overlay, while the tests' own roots run side by side.
sd_base() {
	exec 8>"$SD_BASE.lock"
	if ! flock -s -w 900 8; then
		echo "FAIL: another run holds $SD_BASE.lock"
		exit 1
	fi
	# To build it, the lock exclusive (flock converts: it lets go of the
	# shared one first), and then look again: another run may have built it.
	if [ "$(head -n 1 "$SD_BASE/.op-sdroot-complete" 2>/dev/null)" != "$SD_BASE_MARK" ] &&
	    ! flock -x -w 900 8; then
		echo "FAIL: another run holds $SD_BASE.lock"
		exit 1
	fi
	if [ "$(head -n 1 "$SD_BASE/.op-sdroot-complete" 2>/dev/null)" != "$SD_BASE_MARK" ]; then
		local mirror
		mirror=$(find_mirror)
		[ -n "$mirror" ] ||
		    skip "no Debian bookworm mirror in /etc/apt/sources.list{,.d/}"
		log "debootstrap bookworm into $SD_BASE from $mirror (about a minute)"
		rm -rf "$SD_BASE" "$SD_BASE.new"
		if ! debootstrap --variant=minbase --include=systemd,dbus,procps \
		    bookworm "$SD_BASE.new" "$mirror" >"$TMP/debootstrap.log" 2>&1; then
			tail -n 30 "$TMP/debootstrap.log"
			rm -rf "$SD_BASE.new"
			skip "debootstrap from $mirror failed (no mirror?)"
		fi
		echo "$SD_BASE_MARK" >"$SD_BASE.new/.op-sdroot-complete"
		date +%s%N >>"$SD_BASE.new/.op-sdroot-complete"
		mv "$SD_BASE.new" "$SD_BASE"
		log "base root ready"
	else
		log "reusing the base root in $SD_BASE"
	fi
	flock -s 8
}

# sd_root NAME fresh|keep: this test's root, $SD_BASE-NAME/root, an overlay
# of the base with its changes in $SD_BASE-NAME/upper: kept from run to
# run, or emptied first (fresh). One run at a time per NAME (fd 9). Sets
# ROOTFS. A container or a mount left by a SIGKILLed run goes first.
sd_root() {
	SD_LAYER=$SD_BASE-$1
	ROOTFS=$SD_LAYER/root
	mkdir -p "$SD_LAYER"
	exec 9>"$SD_LAYER.lock"
	if ! flock -w 900 9; then
		echo "FAIL: another run holds $SD_LAYER.lock"
		exit 1
	fi
	local pid
	for pid in $(pgrep -f "^systemd-nspawn -D $ROOTFS -b -M op-sd"); do
		log "stopping a container left by an earlier run: pid $pid"
		kill -TERM "$pid"
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
	done
	mountpoint -q "$ROOTFS" && umount "$ROOTFS"
	# The changes belong to one base: a new base starts them afresh.
	if [ "$2" = fresh ] ||
	    ! cmp -s "$SD_BASE/.op-sdroot-complete" "$SD_LAYER/base"; then
		rm -rf "$SD_LAYER/upper" "$SD_LAYER/work"
		cp "$SD_BASE/.op-sdroot-complete" "$SD_LAYER/base"
	fi
	mkdir -p "$SD_LAYER/upper" "$SD_LAYER/work" "$ROOTFS"
	if ! mount -t overlay overlay -o "lowerdir=$SD_BASE,upperdir=$SD_LAYER/upper,workdir=$SD_LAYER/work" \
	    "$ROOTFS" 2>"$TMP/mount.err"; then
		cat "$TMP/mount.err"
		skip "cannot mount an overlay of $SD_BASE on $ROOTFS"
	fi
}

# sd_boot: boot ROOTFS under systemd-nspawn; sets NSPAWN (its pid) and SD
# (the container's systemd, as the host sees it); dies unless the boot
# reaches running (degraded is reported).
sd_boot() {
	local state
	log "booting $ROOTFS in systemd-nspawn"
	SD=""
	setsid systemd-nspawn -D "$ROOTFS" -b -M "op-sd$(basename "$SD_LAYER")-$$" \
	    --register=no --keep-unit --console=read-only \
	    >>"$TMP/nspawn.log" 2>&1 </dev/null 8>&- 9>&- &
	NSPAWN=$!
	for _ in $(seq 1 150); do
		SD=$(pgrep -P "$NSPAWN" -x systemd | head -n 1)
		[ -n "$SD" ] && break
		kill -0 "$NSPAWN" 2>/dev/null || break
		sleep 0.2
	done
	if [ -z "$SD" ]; then
		tail -n 40 "$TMP/nspawn.log"
		echo "FAIL: systemd did not start in the container"
		exit 1
	fi
	# Until its private bus socket exists systemctl cannot connect: retry.
	state=""
	for _ in $(seq 1 120); do
		state=$(timeout 60 nsenter -t "$SD" -a systemctl \
		    is-system-running --wait 2>/dev/null)
		case $state in running | degraded | maintenance | stopping) break ;; esac
		sleep 0.25
	done
	log "container systemd (pid $SD on the host): $state"
	case $state in
	running) ;;
	degraded)
		echo "note: the boot is degraded:"
		E systemctl --failed --no-pager | sed 's/^/  | /' ;;
	*)
		tail -n 40 "$TMP/nspawn.log"
		die "the container did not finish booting ($state)" ;;
	esac
}
# sd_poweroff: the container shuts down (stopping what runs), nspawn exits
sd_poweroff() {
	E systemctl poweroff --no-block >/dev/null 2>&1
	for _ in $(seq 1 300); do
		kill -0 "$NSPAWN" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$NSPAWN" 2>/dev/null; then
		fail "the container did not power off within 30 s"
		kill -TERM "$NSPAWN"
	fi
	wait "$NSPAWN"
	NSPAWN=""
	SD=""
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll every 0.2 s
wait_for() {
	local t=$1 what=$2
	shift 2
	local end=$(($(date +%s%N) / 1000000 + t * 1000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ $(($(date +%s%N) / 1000000)) -ge $end ] && break
		sleep 0.2
	done
	echo "timed out after ${t}s waiting for: $what"
	return 1
}

# The API from the host (the container shares its network): $BASE is
# http://127.0.0.1:PORT. http METHOD PATH [BODY] prints the status code,
# the body goes to $TMP/body; json EXPR prints EXPR over j, the last body.
http() {
	if [ $# -ge 3 ]; then
		curl -sS -o "$TMP/body" -w '%{http_code}' --max-time 10 \
		    -X "$1" -H 'Content-Type: application/json' \
		    --data-binary "$3" "$BASE$2" 2>"$TMP/curl.err"
	else
		curl -sS -o "$TMP/body" -w '%{http_code}' --max-time 10 \
		    -X "$1" "$BASE$2" 2>"$TMP/curl.err"
	fi
}
json() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$TMP/body" "$1"
}
readyz_is() {
	[ "$(http GET /readyz)" = "$1" ]
}
create_order() {	# prints the new order id
	local code
	code=$(http POST /api/orders/ \
	    '{"user_id": 7, "item_ids": [101, 102], "total_amount": 250.75}')
	if [ "$code" != 201 ]; then
		echo "POST /api/orders/: $code $(cat "$TMP/body" "$TMP/curl.err")" >&2
		return 1
	fi
	json 'j["order_id"]'
}
status_of() {
	[ "$(http GET "/api/orders/$1/status/")" = 200 ] || return 1
	json 'j["status"]'
}
all_completed() {
	local id
	for id in "$@"; do
		[ "$(status_of "$id")" = Completed ] || return 1
	done
}
both_active() {
	E systemctl is-active --quiet order-api order-worker
}
