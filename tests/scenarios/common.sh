# tests/scenarios/common.sh - sourced by every scenario.
# Usage of a scenario: SCRIPT MNT SHARE WORK
#   MNT   the keibifs mountpoint (of SHARE's root)
#   SHARE the same directory seen directly on the server side
#   WORK  a scratch directory outside both
# shellcheck shell=bash
set -euo pipefail
MNT=$1 SHARE=$2 WORK=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
# drain: the mount's write-behind queue has reached the server (look at
# SHARE after it: the server is about one round trip behind the mount).
drain() { python3 -c 'import os, sys; os.getxattr(sys.argv[1], "keibifs.drain")' "$MNT" 2>/dev/null || true; }
# make_tree DIR: regular files 0 B .. 50 MiB, a sparse file, symlinks, hard
# links, modes, mtimes and xattrs.
make_tree() {
	local d=$1
	mkdir -p "$d/sub/deeper" "$d/empty"
	: >"$d/zero"
	printf x >"$d/one"
	head -c 4095 /dev/urandom >"$d/sub/page-1"
	head -c 1048576 /dev/urandom >"$d/sub/block"
	head -c 1048577 /dev/urandom >"$d/sub/block+1"
	head -c $((50 << 20)) /dev/urandom >"$d/sub/deeper/big50"
	truncate -s 20M "$d/sparse" && printf data | dd of="$d/sparse" bs=1 seek=10485760 conv=notrunc status=none
	ln -s one "$d/link-rel"
	ln -s /etc/hostname "$d/link-abs"
	ln -s missing "$d/link-dangling"
	ln "$d/one" "$d/hardlink-to-one"
	# (no setuid: an owners=map mount hands out none, keibifsd squashes them)
	chmod 600 "$d/one"; chmod 751 "$d/sub"; chmod 754 "$d/sub/page-1"
	setfattr -n user.color -v blue "$d/zero"
	setfattr -n user.big -v "$(head -c 3000 /dev/zero | tr '\0' z)" "$d/sub/block"
	touch -h -d '2001-02-03 04:05:06.789' "$d/link-rel"
	touch -d '1999-12-31 23:59:59.5' "$d/sub/block" "$d/empty"
}
same_tree() { # A B: identical content, metadata, xattrs
	local out
	drain
	out=$(rsync -a -H -X --checksum --dry-run --itemize-changes --delete "$1/" "$2/")
	[ -z "$out" ] || fail "trees differ ($1 vs $2): $out"
	diff -r --no-dereference "$1" "$2" >/dev/null || fail "diff -r $1 $2"
}
