# scripts/lib.sh - shared by demo.sh and bench.sh: start a keibifsd on a
# directory, mount it, and stop everything by PID on exit.
# shellcheck shell=bash

KB_BUILD=${KB_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
KB_PIDS=()
KB_MOUNTS=()

kb_cleanup() {
	local m p
	for m in "${KB_MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in "${KB_PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	KB_MOUNTS=()
	KB_PIDS=()
}

kb_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# kb_keys DIR: server and client identities, each trusting the other.
kb_keys() {
	local d=$1
	mkdir -p "$d" && chmod 700 "$d"
	"$KB_BUILD/keibifs-keygen" -f "$d/server" -C server >/dev/null
	"$KB_BUILD/keibifs-keygen" -f "$d/client" -C client >/dev/null
	cp "$d/client.pub" "$d/authorized" && chmod 600 "$d/authorized"
	cp "$d/server.pub" "$d/known_peers" && chmod 600 "$d/known_peers"
}

# kb_serve KEYDIR SHARE PORT [args...]: starts keibifsd, waits until ready.
kb_serve() {
	local d=$1 share=$2 port=$3
	shift 3
	"$KB_BUILD/keibifsd" --share "$share" --key "$d/server" --authorized "$d/authorized" \
		--listen "127.0.0.1:$port" --foreground "$@" >"$d/server.log" 2>&1 &
	KB_PIDS+=($!)
	for _ in $(seq 100); do
		grep -q "keibifsd: ready" "$d/server.log" && return 0
		sleep 0.05
	done
	echo "keibifsd did not start:" >&2
	cat "$d/server.log" >&2
	return 1
}

# kb_mount KEYDIR PORT MNT [opts]: mounts in the foreground process (tracked).
kb_mount() {
	local d=$1 port=$2 mnt=$3 opts=${4:-}
	mkdir -p "$mnt"
	"$KB_BUILD/keibifs" "127.0.0.1:/" "$mnt" -f -o "port=$port,identity=$d/client,known_peers=$d/known_peers${opts:+,$opts}" \
		>>"$d/client.log" 2>&1 &
	local pid=$!
	KB_PIDS+=($pid)
	KB_MOUNTS+=("$mnt")
	for _ in $(seq 200); do
		mountpoint -q "$mnt" && { echo "$pid"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "keibifs did not mount:" >&2
	cat "$d/client.log" >&2
	return 1
}

# kb_sshd DIR: a throw-away sshd on 127.0.0.1 for the sshfs and rclone
# contenders (root logs in with the key DIR/id; sftp inside). Sets
# SSH_PORT and SSHD_PID (the caller stops it).
kb_sshd() {
	local d=$1
	mkdir -p "$d" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$d/host" >/dev/null
	ssh-keygen -q -t ed25519 -N '' -f "$d/id" >/dev/null
	cp "$d/id.pub" "$d/authorized_keys"
	SSH_PORT=$(kb_free_port)
	cat >"$d/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $d/host
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin yes
StrictModes no
UsePAM no
PidFile $d/sshd.pid
Subsystem sftp internal-sftp
EOF
	/usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/sshd.log" &
	SSHD_PID=$!
}

# kb_make_repo DIR FILES BASE SPREAD: a git repository of FILES C-like
# files in 60 directories, file i of BASE + i % SPREAD lines (seeded).
kb_make_repo() {
	git init -q "$1"
	python3 - "$1" "$2" "$3" "$4" <<'PY'
import os, sys, random
d, n = sys.argv[1], int(sys.argv[2])
random.seed(3)
words = [f"w{i}" for i in range(5000)]
for i in range(n):
    sub = f"{d}/src/m{i % 60:02d}"
    os.makedirs(sub, exist_ok=True)
    with open(f"{sub}/f{i:05d}.c", "w") as f:
        f.write("\n".join(" ".join(random.choices(words, k=12)) for _ in range(int(sys.argv[3]) + i % int(sys.argv[4]))))
PY
	git -C "$1" add -A
	git -C "$1" -c user.name=b -c user.email=b@b commit -qm "bench repo"
}
