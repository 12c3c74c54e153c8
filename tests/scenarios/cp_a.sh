#!/usr/bin/env bash
# cp -a into the mount and back out.
. "$(dirname "$0")/common.sh"
make_tree "$WORK/src"
cp -a "$WORK/src" "$MNT/cpa"
same_tree "$WORK/src" "$SHARE/cpa"
cp -a "$MNT/cpa" "$WORK/back"
same_tree "$WORK/src" "$WORK/back"
echo "cp -a ok"
