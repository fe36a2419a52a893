#!/bin/sh
# meson install script: install-config.sh SAMPLE DIR
# A staged install (DESTDIR set: a package or an image being built) gets
# SAMPLE as order-processing.conf, always: there is no operator's file to
# keep there, and a package manager handles upgrades of it (a conffile).
# An install onto the system puts SAMPLE in DIR as order-processing.conf
# unless one is there (an operator's settings survive an upgrade); then the
# new sample goes beside it as order-processing.conf.sample.
set -eu
sample=$1
dir=${DESTDIR:-}$2
mkdir -p "$dir"
if [ -z "${DESTDIR:-}" ] && [ -e "$dir/order-processing.conf" ] &&
    ! cmp -s "$sample" "$dir/order-processing.conf"; then
	install -m 0644 "$sample" "$dir/order-processing.conf.sample"
	echo "kept $dir/order-processing.conf; the new sample is order-processing.conf.sample"
else
	install -m 0644 "$sample" "$dir/order-processing.conf"
fi
