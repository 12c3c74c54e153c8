#!/usr/bin/env bash
# Editor-style save: write temp, fsync, rename over the original; readers
# never see a partial file.
. "$(dirname "$0")/common.sh"
echo "version 1" >"$MNT/doc.txt"
for i in 2 3 4 5; do
	python3 - "$MNT" "$i" <<'PY'
import os, sys
mnt, i = sys.argv[1], sys.argv[2]
tmp = f"{mnt}/.doc.txt.swp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, f"version {i}\n".encode() * 1000)
os.fsync(fd)
os.close(fd)
os.rename(tmp, f"{mnt}/doc.txt")
PY
	[ "$(head -1 "$MNT/doc.txt")" = "version $i" ] || fail "mount shows stale doc after save $i"
	drain
	[ "$(head -1 "$SHARE/doc.txt")" = "version $i" ] || fail "server has stale doc after save $i"
	[ "$(wc -l <"$MNT/doc.txt")" = 1000 ] || fail "partial file"
done
[ ! -e "$MNT/.doc.txt.swp" ] || fail "temp file left"
echo "atomic save ok"
