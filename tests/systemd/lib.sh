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
