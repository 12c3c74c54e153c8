#!/usr/bin/env bash
# Concurrent writers to different files and to different ranges of one file.
. "$(dirname "$0")/common.sh"
for i in 1 2 3 4; do
	head -c $((8 << 20)) /dev/urandom >"$WORK/in$i"
	cp "$WORK/in$i" "$MNT/w$i" &
done
wait
drain
for i in 1 2 3 4; do cmp "$WORK/in$i" "$SHARE/w$i" || fail "file w$i differs"; done
python3 - "$MNT/ranges" "$SHARE/ranges" <<'PY'
import os, sys, threading
path, server = sys.argv[1], sys.argv[2]
chunk = 1 << 20
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
def w(i):
    for k in range(8):
        os.pwrite(fd, bytes([i * 8 + k]) * chunk, (i * 8 + k) * chunk)
ts = [threading.Thread(target=w, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
os.fsync(fd); os.close(fd)
data = open(server, "rb").read()
assert len(data) == 32 * chunk, len(data)
for j in range(32):
    assert data[j * chunk:(j + 1) * chunk] == bytes([j]) * chunk, j
PY
echo "concurrent ok"
