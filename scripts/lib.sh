# scripts/lib.sh - shared by demo.sh, the bench and soak scripts: start a
# keibifsd on a directory, mount it, and stop everything by PID on exit.
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

# kb_wait_mount MNT PID TRIES: PID (a FUSE client in the foreground) and
# MNT tracked for kb_cleanup; waits until MNT is mounted (TRIES x 50 ms at
# the most) and sets M=MNT.
kb_wait_mount() {
	KB_PIDS+=("$2")
	KB_MOUNTS+=("$1")
	for _ in $(seq "$3"); do mountpoint -q "$1" && break; sleep 0.05; done
	M=$1
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

# kb_opts NAME... -- ARGS...: each "--NAME VALUE" in ARGS sets the variable
# NAME (the caller gives it its default first); anything else prints the
# usage line ("usage: $0 [--NAME N]...") and exits 2.
kb_opts() {
	local names=() n
	while [ "$1" != -- ]; do
		names+=("$1")
		shift
	done
	shift
	while [ $# -gt 0 ]; do
		for n in "${names[@]}"; do
			if [ "$1" = "--$n" ]; then
				printf -v "$n" '%s' "$2"
				shift 2
				continue 2
			fi
		done
		echo "usage: $0$(printf ' [--%s N]' "${names[@]}")" >&2
		exit 2
	done
}

# --- remote contenders (bench-remote.sh, bench-write.sh) -----------------------
# keibifs, sshfs and rclone mount (sftp backend) of one share on 127.0.0.1;
# mount_C PORT mounts contender C through PORT (a kbproxy in front of
# KB_PORT or SSH_PORT) and sets M, its mount point; umount_C unmounts it.

# kb_contenders_installed WHO LIST: LIST without sshfs and rclone when they
# are not installed (each said on stderr, WHO: the script's name).
kb_contenders_installed() {
	local who=$1 list=$2 c
	for c in $2; do
		case $c in
		sshfs | rclone)
			command -v "$c" >/dev/null || {
				echo "$who: SKIP $c (not installed: scripts/install-deps.sh)" >&2
				list=${list/$c/}
			}
			;;
		esac
	done
	echo "$list"
}

# kb_contenders WORK SHARE CONTENDERS KB_OPTS [RCLONE_ARGS...]: keibifsd on
# SHARE (KB_PORT; keys in WORK/keys), and sshd (SSH_PORT, SSHD_PID: the
# caller stops it; WORK/ssh) when sshfs or rclone is among CONTENDERS.
# KB_OPTS: extra keibifs mount options; RCLONE_ARGS: extra rclone mount
# arguments.
kb_contenders() {
	KBC_WORK=$1 KBC_SHARE=$2 KBC_KB_OPTS=$4
	KBC_RCLONE_ARGS=("${@:5}")
	KB_MNT=$1/kbmnt SS_MNT=$1/ssmnt RC_MNT=$1/rcmnt
	kb_keys "$1/keys"
	KB_PORT=$(kb_free_port)
	kb_serve "$1/keys" "$2" "$KB_PORT"
	if [[ $3 == *sshfs* || $3 == *rclone* ]]; then
		kb_sshd "$1/ssh"
		sleep 0.5
	fi
}

mount_keibifs() { # PORT
	KB_CLIENT_PID=$(kb_mount "$KBC_WORK/keys" "$1" "$KB_MNT" "$KBC_KB_OPTS")
	M=$KB_MNT
}
# unmount, retried while a process cut at the row timeout is still leaving
unmount() { # MNT PID
	for _ in $(seq 40); do fusermount3 -u "$1" 2>/dev/null && break; sleep 0.25; done
	mountpoint -q "$1" && fusermount3 -uz "$1"
	wait "$2" 2>/dev/null || true
}
umount_keibifs() { unmount "$KB_MNT" "$KB_CLIENT_PID"; }

mount_sshfs() { # PORT
	mkdir -p "$SS_MNT"
	sshfs "root@127.0.0.1:$KBC_SHARE" "$SS_MNT" -f -p "$1" \
		-o IdentityFile="$KBC_WORK/ssh/id",StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null \
		-o Ciphers=aes256-gcm@openssh.com,LogLevel=ERROR 2>>"$KBC_WORK/ssh/sshfs.log" &
	SS_PID=$!
	kb_wait_mount "$SS_MNT" "$SS_PID" 400
}
umount_sshfs() { unmount "$SS_MNT" "$SS_PID"; }

mount_rclone() { # PORT
	mkdir -p "$RC_MNT"
	rclone mount ":sftp,host=127.0.0.1,port=$1,user=root,key_file=$KBC_WORK/ssh/id:$KBC_SHARE" \
		"$RC_MNT" --config /dev/null "${KBC_RCLONE_ARGS[@]}" --log-level ERROR \
		2>>"$KBC_WORK/ssh/rclone.log" &
	RC_PID=$!
	kb_wait_mount "$RC_MNT" "$RC_PID" 400
}
umount_rclone() { unmount "$RC_MNT" "$RC_PID"; }

# kb_proxies RTT LOG PORT...: a kbproxy adding RTT/2 each way in front of
# each 127.0.0.1:PORT (stderr to LOG); the caller's associative array PORTS
# gets PORT -> the proxy's port, KB_PROXY_PIDS their PIDs.
kb_proxies() {
	local rtt=$1 log=$2 to p
	shift 2
	KB_PROXY_PIDS=()
	for to in "$@"; do
		p=$(kb_free_port)
		"$KB_BUILD/tests/kbproxy" --listen "$p" --to "127.0.0.1:$to" --delay-ms "$((rtt / 2))" \
			2>>"$log" &
		KB_PROXY_PIDS+=($!)
		KB_PIDS+=($!)
		PORTS[$to]=$p
	done
	sleep 0.2
}
# kb_port C: the proxy port contender C mounts through (keibifs: KB_PORT's)
kb_port() {
	if [ "$1" = keibifs ]; then echo "${PORTS[$KB_PORT]}"; else echo "${PORTS[$SSH_PORT]}"; fi
}
# kb_rounds RTT: the caller's run_row CONTENDER RTT ROUND ROW PORT for each
# of REPS rounds, each of ROWS, each of CONTENDERS
kb_rounds() {
	local r row c
	for ((r = 0; r < REPS; r++)); do
		for row in $ROWS; do
			for c in $CONTENDERS; do
				run_row "$c" "$1" "$r" "$row" "$(kb_port "$c")"
			done
		done
	done
}
kb_proxies_stop() {
	local p
	for p in "${KB_PROXY_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
}

# The results table, from the caller's CONTENDERS, RTTS, ROWS, T[C,RTT,ROW]
# (the rounds' seconds), REQS[RTT,ROW] and its median function.
kb_table_head() { # the contenders' column heads
	local c
	for c in $CONTENDERS; do printf ' %10s' "$c"; done
	printf '   rounds\n'
}
kb_table_cells() { # RTT ROW: each contender's median, then every round
	local c rounds=""
	for c in $CONTENDERS; do
		printf ' %10s' "$(median ${T[$c,$1,$2]})"
		rounds+=" $c:${T[$c,$1,$2]# }"
	done
	printf '  %s\n' "$rounds"
}
kb_table_reqs() { # WIDTH: keibifs' requests per row (WIDTH: of the row names)
	local rtt row
	[[ $CONTENDERS == *keibifs* ]] || return 0
	printf '\nkeibifs requests per row (last round):\n'
	for rtt in $RTTS; do
		for row in $ROWS; do
			printf "  +%s ms %-${1}s %s\n" "$rtt" "$row" "${REQS[$rtt,$row]:-}"
		done
	done
}
