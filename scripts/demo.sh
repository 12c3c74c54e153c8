#!/usr/bin/env bash
# make demo: serve a sample directory on 127.0.0.1, mount it with keibifs,
# show it, and unmount / stop the server on exit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
trap kb_cleanup EXIT

work=$(mktemp -d /tmp/keibifs-demo.XXXXXX)
trap 'kb_cleanup; rm -rf "$work"' EXIT
share=$work/share mnt=$work/mnt
mkdir -p "$share/docs" "$share/src"
echo "Hello from the keibifs demo share." >"$share/README.txt"
printf 'int main(void) { return 0; }\n' >"$share/src/main.c"
seq 1 100000 >"$share/docs/numbers.txt"
head -c $((8 << 20)) /dev/urandom >"$share/random.bin"
ln -s README.txt "$share/link-to-readme"

kb_keys "$work/keys"
port=$(kb_free_port)
kb_serve "$work/keys" "$share" "$port"
echo "== server: $(head -1 "$work/keys/server.log")"
kb_mount "$work/keys" "$port" "$mnt" >/dev/null
echo "== mounted 127.0.0.1:/ on $mnt"
grep " $mnt " /proc/mounts
echo "== ls -lR $mnt"
ls -lR "$mnt"
echo "== cat $mnt/README.txt"
cat "$mnt/README.txt"
echo "== checksums: share vs mount"
(cd "$share" && sha256sum random.bin docs/numbers.txt)
(cd "$mnt" && sha256sum random.bin docs/numbers.txt)
echo "== df -h $mnt"
df -h "$mnt"
if [ -t 0 ]; then
	read -r -p "Browse $mnt in another shell; press Enter to unmount. " _
fi
echo "== unmounting"
