#!/bin/sh
# Installs every Debian package keibifs needs to build, test and benchmark.
# Idempotent: runs apt-get update (once) only when something is missing.
set -eu
PKGS="build-essential pkg-config libfuse3-dev fuse3 libmbedtls-dev libssl-dev
nanopb libnanopb-dev python3-protobuf check libjansson-dev clang clang-format libclang-rt-14-dev
rsync git attr sshfs rclone openssh-server procps psmisc socat libzstd-dev
libavahi-client-dev avahi-daemon dbus-daemon iproute2 util-linux"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
