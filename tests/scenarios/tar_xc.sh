#!/usr/bin/env bash
# tar x onto the mount, then tar c from it: same tree.
. "$(dirname "$0")/common.sh"
make_tree "$WORK/src"
tar -C "$WORK/src" --xattrs -cf "$WORK/a.tar" .
mkdir "$MNT/tx"
tar -C "$MNT/tx" --xattrs -xpf "$WORK/a.tar"
same_tree "$WORK/src" "$SHARE/tx"
mkdir "$WORK/back"
tar -C "$MNT/tx" --xattrs -cf - . | tar -C "$WORK/back" --xattrs -xpf -
same_tree "$WORK/src" "$WORK/back"
echo "tar ok"
