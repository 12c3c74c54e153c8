#!/usr/bin/env bash
# Rename and unlink of open files keep the handles working.
. "$(dirname "$0")/common.sh"
python3 - "$MNT" <<'PY'
import os, sys
m = sys.argv[1]
fd = os.open(f"{m}/of", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"abc")
os.rename(f"{m}/of", f"{m}/of2")
os.write(fd, b"def")
os.fsync(fd)
assert open(f"{m}/of2", "rb").read() == b"abcdef"
os.unlink(f"{m}/of2")
os.write(fd, b"ghi")
os.lseek(fd, 0, 0)
assert os.read(fd, 100) == b"abcdefghi"
os.close(fd)
assert not os.path.exists(f"{m}/of2")
PY
echo "open files ok"
