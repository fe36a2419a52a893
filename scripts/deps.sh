# Sourced by run.sh and test.sh: install the Debian packages the build,
# the daemons and the tests need, when any is missing.
packages="gcc libc6-dev meson ninja-build pkg-config libcivetweb-dev
liblmdb-dev lmdb-utils libcjson-dev libbsd-dev libsystemd-dev python3 curl"
# What the tests need besides: man-page lint, systemd-analyze, a Debian
# root booted under systemd-nspawn for the unit tests, libFuzzer (clang),
# cppcheck, wrk and Redis (the reference it measures creates against) for
# the benchmark's smoke run, and nginx (with openssl for a throw-away
# certificate) for the test of the shipped reverse proxy,
# bash-completion for the test of order-ctl's completion, and a browser
# (chromium, its WebDriver and Debian's Selenium) for the dashboard's test.
# haproxy and prometheus (with promtool) check and run the fleet's configs.
test_packages="mandoc systemd debootstrap systemd-container util-linux
clang libclang-rt-14-dev cppcheck lmdb-utils wrk redis-server redis-tools
nginx openssl bash-completion chromium chromium-driver python3-selenium
haproxy prometheus"
# The Debian package's test (tests/systemd/test_deb.sh) builds it and
# lints it: dpkg-buildpackage, debhelper, fakeroot, lintian.
test_packages="$test_packages build-essential dpkg-dev debhelper fakeroot lintian"

# install_deps [extra packages...]
install_deps() {
	missing=""
	for p in $packages "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "installing:$missing" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
	    --no-install-recommends $missing >/dev/null
}

# build DIR [meson setup options...]
build() {
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	meson compile -C "$dir"
}
