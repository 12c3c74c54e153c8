#!/usr/bin/env bash
# rsync -a a tree into the mount and back out: identical; a second rsync copies nothing.
. "$(dirname "$0")/common.sh"
make_tree "$WORK/src"
rsync -a -H -X "$WORK/src/" "$MNT/rs/"
same_tree "$WORK/src" "$SHARE/rs"
out=$(rsync -a -H -X --itemize-changes "$WORK/src/" "$MNT/rs/")
[ -z "$out" ] || fail "second rsync copied: $out"
rsync -a -H -X "$MNT/rs/" "$WORK/back/"
same_tree "$WORK/src" "$WORK/back"
echo "rsync round trip ok"
