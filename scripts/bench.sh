#!/usr/bin/env bash
# make bench: one table, measured in one run on loopback, for keibifs, sshfs
# (against a throw-away sshd on 127.0.0.1, aes256-gcm) and the local disk,
# plus the machine's own ceilings (raw AEAD, memcpy, a null FUSE filesystem).
#
# "cold" = a fresh mount (client caches empty); the server's page cache is
# warm for every contender alike, so the numbers compare protocols, not disks.
# Env: BENCH_BIG_MB (1024), BENCH_LS_FILES (10000), BENCH_SMALL_FILES (2000),
# BENCH_GIT_FILES (3000). Write rows: dd conv=fsync, rsync -a in, git clone onto the
# mount, each contender into a fresh tmpfs inside the share (see write_suite).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
BIG_MB=${BENCH_BIG_MB:-1024}
LS_FILES=${BENCH_LS_FILES:-10000}
SMALL_FILES=${BENCH_SMALL_FILES:-2000}
RAND_OPS=${BENCH_RAND_OPS:-2000}

work=$(mktemp -d /tmp/keibifs-bench.XXXXXX)
SSHD_PID=""
cleanup() {
	kb_cleanup
	mountpoint -q "$share/w" 2>/dev/null && umount -l "$share/w"
	mountpoint -q "$work/out" 2>/dev/null && umount -l "$work/out"
	[ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
share=$work/share
mkdir -p "$share/many" "$share/small" "$work/out"

echo "bench: preparing data (${BIG_MB} MiB file, $LS_FILES + $SMALL_FILES small files)" >&2
head -c $((BIG_MB << 20)) /dev/urandom >"$share/big"
LAT_MB=${BENCH_LAT_MB:-256}
LAT_RTTS=${BENCH_LAT_RTTS:-20 50}
head -c $((LAT_MB << 20)) /dev/urandom >"$share/mid"
python3 - "$share" "$LS_FILES" "$SMALL_FILES" <<'PY'
import os, sys
share, nls, nsmall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blk = os.urandom(4096)
for i in range(nls):
    open(f"{share}/many/f{i:05d}", "wb").close()
for i in range(nsmall):
    with open(f"{share}/small/s{i:05d}", "wb") as f:
        f.write(blk)
os.makedirs(f"{share}/small100", exist_ok=True)
for i in range(100):
    with open(f"{share}/small100/s{i:03d}", "wb") as f:
        f.write(blk)
PY
# write sources (outside the share): 2,000 x 4 KiB for rsync, a git repository
mkdir -p "$work/wsrc/small"
python3 - "$work/wsrc/small" "$SMALL_FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
blk = os.urandom(4096)
for i in range(n):
    with open(f"{d}/w{i:05d}", "wb") as f:
        f.write(blk)
PY
GIT_FILES=${BENCH_GIT_FILES:-3000}
kb_make_repo "$work/wsrc/repo" "$GIT_FILES" 40 200
sync

# --- measurement helpers -------------------------------------------------
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
mbps() { python3 -c "print(f'{$1 / ($3 - $2):.0f}')"; }

seq_read() { # FILE -> MB/s
	local t0 t1
	t0=$(now)
	dd if="$1" of=/dev/null bs=1M status=none
	t1=$(now)
	mbps "$BIG_MB * 1.048576" "$t0" "$t1"
}

rand_read() { # FILE -> reads/s
	python3 - "$1" "$RAND_OPS" <<'PY'
import os, sys, random, time
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
n = int(sys.argv[2])
random.seed(7)
offs = [random.randrange(0, size // 4096) * 4096 for _ in range(n)]
t = time.monotonic()
for o in offs:
    os.pread(fd, 4096, o)
print(f"{n / (time.monotonic() - t):.0f}")
PY
}

timed() { # CMD... -> seconds
	local t0 t1
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	elapsed "$t0" "$t1"
}

proc_stats() { # PIDS... -> "rss_mib cpu_s" (sum)
	python3 - "$@" <<'PY'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
rss = cpu = 0
for p in sys.argv[1:]:
    try:
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmHWM:"):
                rss += int(line.split()[1])
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        cpu += (int(f[11]) + int(f[12])) / tck
    except OSError:
        pass
print(f"{rss / 1024:.0f} {cpu:.1f}")
PY
}

declare -A R

# --- contenders: mount/unmount ---------------------------------------------
kb_keys "$work/keys"
KB_PORT=$(kb_free_port)
kb_serve "$work/keys" "$share" "$KB_PORT"
KB_MNT=$work/kbmnt
KB_OPTS=""
KB_CONNECT_PORT=$KB_PORT
mount_keibifs() { KB_CLIENT_PID=$(kb_mount "$work/keys" "$KB_CONNECT_PORT" "$KB_MNT" "$KB_OPTS"); M=$KB_MNT; PIDS=$KB_CLIENT_PID; }
umount_keibifs() { fusermount3 -u "$KB_MNT"; wait "$KB_CLIENT_PID" 2>/dev/null || true; }

setup_sshd() { kb_sshd "$work/ssh"; sleep 0.5; }
SS_MNT=$work/ssmnt
mount_sshfs() {
	mkdir -p "$SS_MNT"
	sshfs "root@127.0.0.1:$share" "$SS_MNT" -f -p "${SSH_CONNECT_PORT:-$SSH_PORT}" \
		-o IdentityFile="$work/ssh/id",StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null \
		-o Ciphers=aes256-gcm@openssh.com,LogLevel=ERROR ${SSHFS_EXTRA:-} \
		2>>"$work/ssh/sshfs.log" &
	SS_PID=$!
	kb_wait_mount "$SS_MNT" "$SS_PID" 200
	# sshfs runs ssh as a child process: count both
	PIDS="$SS_PID $( (pgrep -P "$SS_PID" || true) | tr '\n' ' ')"
}
umount_sshfs() { fusermount3 -u "$SS_MNT"; wait "$SS_PID" 2>/dev/null || true; }
mount_local() { M=$share; PIDS=""; }
umount_local() { :; }

# This VM's memory is slow on first touch, and freed pages go back to the
# host (virtio-balloon free page reporting), so the same dd runs at 400 or
# 1,000 MB/s from one minute to the next. The rows that move most (cold
# reads, big writes) are therefore run BENCH_REPS (5) times, the contenders
# taking turns within each round, and the median is shown.
REPS=${BENCH_REPS:-5}
CONTENDERS="local keibifs sshfs"
median() { python3 -c 'import sys, statistics; print(statistics.median_low(sorted(float(x) for x in sys.argv[1:])))' "$@" | sed 's/\.0$//'; }
declare -A SEQS WSEQS

# Writes into the mount land on a fresh tmpfs mounted inside the share, so
# every contender meets the same empty filesystem: on the shared ext4, inode
# allocation right after the previous contender's rm -rf of thousands of
# files costs ~0.36 ms per create (ext4 skips recently deleted inodes), which
# would charge one contender for another's cleanup. What a write row
# measures is the protocol, as the read rows do; the "local" column is then
# the memory's own ceiling for these writes.
WDIR=$share/w
wdir_up() { mkdir -p "$WDIR" && mount -t tmpfs -o size=$((BIG_MB + 1024))m kbbench "$WDIR"; }
wdir_down() { umount "$WDIR" 2>/dev/null || umount -l "$WDIR"; }

seq_round() { # NAME ROUND: one cold read (fresh mount) and one big write
	local n=$1 i=$2 st t0 t1
	cat "$share/big" >/dev/null # the server's page cache: warm for everyone
	"mount_$n"
	SEQS[$n]+=" $(seq_read "$M/big")"
	if [ "$i" -eq 0 ]; then
		R[$n,warm]=$(seq_read "$M/big")
		st=$(proc_stats $PIDS)
		R[$n,rss]=${st% *}
		R[$n,cpu]=${st#* }
	fi
	"umount_$n"
	wdir_up
	"mount_$n"
	t0=$(now)
	dd if=/dev/zero of="$M/w/wbig" bs=1M count="$BIG_MB" conv=fsync status=none
	t1=$(now)
	WSEQS[$n]+=" $(mbps "$BIG_MB * 1.048576" "$t0" "$t1")"
	"umount_$n"
	wdir_down
}

run_suite() { # NAME: the other rows, once
	local n=$1
	echo "bench: $n" >&2
	R[$n,seq]=$(median ${SEQS[$n]})
	R[$n,wseq]=$(median ${WSEQS[$n]})
	"mount_$n"
	R[$n,rand]=$(rand_read "$M/big")
	R[$n,ls]=$(timed ls -l "$M/many")
	"umount_$n"
	"mount_$n"
	mount -t tmpfs -o size=256m kbbench-out "$work/out" # a fresh target (see WDIR)
	R[$n,cp]=$(timed cp -r "$M/small" "$work/out/small")
	umount "$work/out" 2>/dev/null || umount -l "$work/out"
	"umount_$n"
	wdir_up
	"mount_$n"
	R[$n,rsync]=$(timed rsync -a "$work/wsrc/small/" "$M/w/wsmall/")
	R[$n,git]=$(timed git clone -q "$work/wsrc/repo" "$M/w/wclone")
	"umount_$n"
	wdir_down
}

# --- ceilings ---------------------------------------------------------------
echo "bench: ceilings" >&2
CEIL=$("$KB_BUILD/bench-channel" --seconds 1 2>&1 || true)
NULLFS_BIN=$work/fuse-null
cc -O2 $(pkg-config --cflags fuse3) -o "$NULLFS_BIN" "$here/../bench/fuse-null.c" $(pkg-config --libs fuse3)
mkdir -p "$work/nullmnt"
"$NULLFS_BIN" "$work/nullmnt" -f &
NULL_PID=$!
KB_PIDS+=("$NULL_PID")
for _ in $(seq 100); do mountpoint -q "$work/nullmnt" && break; sleep 0.05; done
stat "$work/nullmnt/zero" >/dev/null # INIT is done once this answers
bdi=$(mountpoint -d "$work/nullmnt")
echo 1024 >"/sys/class/bdi/$bdi/read_ahead_kb" 2>/dev/null || true
dd if="$work/nullmnt/zero" of=/dev/null bs=1M count=1024 status=none # warm-up, discarded
t0=$(now); dd if="$work/nullmnt/zero" of=/dev/null bs=1M count=1024 status=none; t1=$(now)
FUSE_CEIL=$(mbps 1073.741824 "$t0" "$t1")
# writes thrown away (writeback cache, 1 MiB writes), fsync at the end: what
# the kernel's page cache and the FUSE path alone allow a writer here
dd if=/dev/zero of="$work/nullmnt/zero" bs=1M count=1024 conv=fsync,notrunc status=none
t0=$(now)
dd if=/dev/zero of="$work/nullmnt/zero" bs=1M count=1024 conv=fsync,notrunc status=none
t1=$(now)
FUSE_WCEIL=$(mbps "1024 * 1.048576" "$t0" "$t1")
fusermount3 -u "$work/nullmnt"

# --- the contenders -----------------------------------------------------------
setup_sshd
mount_keibifs; dd if="$M/big" of=/dev/null bs=1M count=64 status=none; umount_keibifs # warm-up
for ((round = 0; round < REPS; round++)); do
	for n in $CONTENDERS; do
		echo "bench: round $((round + 1))/$REPS: $n cold read, big write" >&2
		seq_round "$n" "$round"
	done
done
for n in $CONTENDERS; do run_suite "$n"; done
KB_OPTS="crypto=mbedtls"
echo "bench: keibifs crypto=mbedtls" >&2
mount_keibifs
R[mbed,seq]=$(seq_read "$M/big")
umount_keibifs

# --- client copies and allocations, counted (bench/kbcount.c) ---------------
# The client runs under an LD_PRELOAD counter of memcpy/memmove bytes and heap
# allocations. Pass 1 reads the file on a fresh mount (the block cache fills);
# pass 2 reads it again after the kernel's page cache of it is dropped (the
# block cache, smaller than the file, has evicted it: every block is pulled
# again), which is the steady state the "per block" figures describe.
count_suite() { # reads $M/${COUNT_FILE:-big} (${COUNT_MB:-$BIG_MB} MiB)
	local pid f=${COUNT_FILE:-big} mb=${COUNT_MB:-$BIG_MB}
	cc -O2 -shared -fPIC -o "$work/kbcount.so" "$here/../bench/kbcount.c" -ldl
	rm -f "$work/count.txt"
	export KBCOUNT_OUT=$work/count.txt LD_PRELOAD=$work/kbcount.so
	mount_keibifs
	unset KBCOUNT_OUT LD_PRELOAD
	pid=$KB_CLIENT_PID
	dd if="$M/$f" of=/dev/null bs=1M status=none
	kill -USR1 "$pid"; sleep 0.3
	dd if="$M/$f" iflag=nocache count=0 status=none
	dd if="$M/$f" of=/dev/null bs=1M status=none
	kill -USR1 "$pid"; sleep 0.3
	umount_keibifs
	COUNTS=$(python3 - "$work/count.txt" "$mb" <<'PY'
import sys
rows = [dict(zip(l.split()[::2], map(int, l.split()[1::2]))) for l in open(sys.argv[1])]
mb = int(sys.argv[2])
a, b = rows[0], rows[1]
d = {k: b[k] - a[k] for k in b}
print(f"{100.0 * d['memcpy_bytes'] / (mb << 20):.3f}% "
      f"{(d['allocs'] - d['fuse_allocs']) / mb:.2f} {d['fuse_allocs'] / mb:.2f} "
      f"{100.0 * a['memcpy_bytes'] / (mb << 20):.3f}% {a['large_allocs']} "
      f"{100.0 * d['zstd_bytes'] / (mb << 20):.1f}%")
PY
)
}
echo "bench: keibifs copies and allocations (LD_PRELOAD counter)" >&2
KB_OPTS="cache_size=$((BIG_MB / 4 < 256 ? BIG_MB / 4 : 256))" # smaller than the file
count_suite
KB_OPTS=""
read -r C_COPY C_OURS C_FUSE C_COPY1 _ C_ZSTD <<<"$COUNTS"

# --- high latency: both through kbproxy adding RTT/2 each way ---------------
latency_suite() { # NAME RTT_MS
	local n=$1 rtt=$2 pport t0 t1
	pport=$(kb_free_port)
	"$KB_BUILD/tests/kbproxy" --listen "$pport" --to "127.0.0.1:$3" --delay-ms $((rtt / 2)) \
		2>>"$work/proxy.log" &
	local ppid=$!
	KB_PIDS+=("$ppid")
	sleep 0.2
	KB_CONNECT_PORT=$pport SSH_CONNECT_PORT=$pport "mount_$n"
	t0=$(now); dd if="$M/mid" of=/dev/null bs=1M status=none; t1=$(now)
	R[$n,lat$rtt,seq]=$(mbps "$LAT_MB * 1.048576" "$t0" "$t1")
	"umount_$n"
	KB_CONNECT_PORT=$pport SSH_CONNECT_PORT=$pport "mount_$n"
	R[$n,lat$rtt,ls]=$(timed ls -l "$M/small")
	"umount_$n"
	KB_CONNECT_PORT=$pport SSH_CONNECT_PORT=$pport "mount_$n"
	mount -t tmpfs -o size=64m kbbench-out "$work/out"
	R[$n,lat$rtt,cp]=$(timed cp -r "$M/small100" "$work/out/small100")
	umount "$work/out" 2>/dev/null || umount -l "$work/out"
	"umount_$n"
	kill "$ppid"; wait "$ppid" 2>/dev/null || true
}
KB_OPTS=""
for rtt in $LAT_RTTS; do
	echo "bench: latency $rtt ms" >&2
	latency_suite keibifs "$rtt" "$KB_PORT"
	latency_suite sshfs "$rtt" "$SSH_PORT"
done
KB_CONNECT_PORT=$KB_PORT

# --- a slow link: compression (keibifs -o compress=, sshfs -C) ---------------
# One shared link of SLOW_MBPS megabits/s each way with +SLOW_RTT ms of round
# trip (kbproxy --link-mbps: every connection of a mount shares it, and a
# sender meets its pace through TCP flow control, as on a real link).
# Source-like text = the system's C headers end to end (repeated to the size,
# further apart than zstd's window); random = /dev/urandom; the tree = 2,000
# headers with their directories.
SLOW_MB=${BENCH_SLOW_MB:-256}
SLOW_MBPS=${BENCH_SLOW_MBPS:-100}
SLOW_RTT=${BENCH_SLOW_RTT:-20}
echo "bench: slow link data (${SLOW_MB} MiB text, ${SLOW_MB} MiB random, 2,000 headers)" >&2
python3 - "$share" "$SLOW_MB" <<'PY'
import os, shutil, sys
share, size = sys.argv[1], int(sys.argv[2]) << 20
hs = sorted(os.path.join(d, f) for d, _, fs in os.walk("/usr/include") for f in fs
            if f.endswith(".h"))
with open(f"{share}/slowtext", "wb") as out:
    left = size
    while left > 0:
        for h in hs:
            b = open(h, "rb").read()[:left]
            out.write(b)
            left -= len(b)
            if not left:
                break
for h in hs[:2000]:
    dst = f"{share}/srctree/{os.path.relpath(h, '/usr/include')}"
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(h, dst)
PY
head -c $((SLOW_MB << 20)) /dev/urandom >"$share/slowrand"
SRC_FILES=$(find "$share/srctree" -type f | wc -l)

# What compression changes in the client's copies: the same counter, reading
# the text with compress=on on loopback (every block goes compressed).
echo "bench: keibifs compress=on copies (LD_PRELOAD counter)" >&2
KB_OPTS="compress=on,cache_size=$((SLOW_MB / 4 < 256 ? SLOW_MB / 4 : 256))"
COUNT_FILE=slowtext COUNT_MB=$SLOW_MB count_suite
read -r Z_COPY _ _ Z_COPY1 _ Z_ZSTD <<<"$COUNTS"
KB_OPTS=""

slow_suite() { # KEY NAME KB_OPTS SSHFS_EXTRA (NAME: keibifs or sshfs)
	local key=$1 n=$2 pport ppid t0 t1
	pport=$(kb_free_port)
	"$KB_BUILD/tests/kbproxy" --listen "$pport" --to "127.0.0.1:$([ "$n" = keibifs ] &&
		echo "$KB_PORT" || echo "$SSH_PORT")" --delay-ms $((SLOW_RTT / 2)) \
		--link-mbps "$SLOW_MBPS" 2>>"$work/proxy.log" &
	ppid=$!
	KB_PIDS+=("$ppid")
	sleep 0.2
	for f in slowtext slowrand; do
		cat "$share/$f" >/dev/null
		KB_OPTS=$3 SSHFS_EXTRA=$4 KB_CONNECT_PORT=$pport \
			SSH_CONNECT_PORT=$pport "mount_$n"
		t0=$(now); dd if="$M/$f" of=/dev/null bs=1M status=none; t1=$(now)
		R[slow,$key,$f]=$(mbps "$SLOW_MB * 1.048576" "$t0" "$t1")
		"umount_$n"
	done
	KB_OPTS=$3 SSHFS_EXTRA=$4 KB_CONNECT_PORT=$pport \
		SSH_CONNECT_PORT=$pport "mount_$n"
	mount -t tmpfs -o size=256m kbbench-out "$work/out"
	R[slow,$key,cp]=$(timed cp -r "$M/srctree" "$work/out/srctree")
	umount "$work/out" 2>/dev/null || umount -l "$work/out"
	"umount_$n"
	kill "$ppid"; wait "$ppid" 2>/dev/null || true
	KB_OPTS=""
}
echo "bench: slow link ${SLOW_MBPS} Mbit/s +${SLOW_RTT} ms: keibifs compress=off" >&2
slow_suite kboff keibifs compress=off ""
echo "bench: slow link: keibifs compress=auto" >&2
slow_suite kbauto keibifs compress=auto ""
echo "bench: slow link: sshfs" >&2
slow_suite ssh sshfs "" ""
echo "bench: slow link: sshfs -C" >&2
slow_suite sshC sshfs "" -C
KB_CONNECT_PORT=$KB_PORT

# --- the table ----------------------------------------------------------------
ratio() { python3 -c "a,b=$1,$2; print(f'{a/b:.1f}x' if b else '-')"; }
printf '\nkeibifs benchmark, loopback, one run (%s)\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-34s %12s %12s %12s %10s\n' "measure" "keibifs" "sshfs" "local" "kb/sshfs"
printf '%-34s %12s %12s %12s %10s\n' "cold seq read ${BIG_MB} MiB (MB/s)*" "${R[keibifs,seq]}" "${R[sshfs,seq]}" "${R[local,seq]}" "$(ratio "${R[keibifs,seq]}" "${R[sshfs,seq]}")"
printf '%-34s %12s %12s %12s %10s\n' "warm re-read (MB/s)" "${R[keibifs,warm]}" "${R[sshfs,warm]}" "${R[local,warm]}" "$(ratio "${R[keibifs,warm]}" "${R[sshfs,warm]}")"
printf '%-34s %12s %12s %12s %10s\n' "4 KiB random reads (reads/s)" "${R[keibifs,rand]}" "${R[sshfs,rand]}" "${R[local,rand]}" "$(ratio "${R[keibifs,rand]}" "${R[sshfs,rand]}")"
printf '%-34s %12s %12s %12s %10s\n' "ls -l of $LS_FILES files (s)" "${R[keibifs,ls]}" "${R[sshfs,ls]}" "${R[local,ls]}" "$(ratio "${R[sshfs,ls]}" "${R[keibifs,ls]}")"
printf '%-34s %12s %12s %12s %10s\n' "cp -r out of $SMALL_FILES x 4 KiB (s)" "${R[keibifs,cp]}" "${R[sshfs,cp]}" "${R[local,cp]}" "$(ratio "${R[sshfs,cp]}" "${R[keibifs,cp]}")"
printf '%-34s %12s %12s %12s %10s\n' "seq write ${BIG_MB} MiB+fsync (MB/s)*" "${R[keibifs,wseq]}" "${R[sshfs,wseq]}" "${R[local,wseq]}" "$(ratio "${R[keibifs,wseq]}" "${R[sshfs,wseq]}")"
printf '%-34s %12s %12s %12s %10s\n' "rsync -a in $SMALL_FILES x 4 KiB (s)" "${R[keibifs,rsync]}" "${R[sshfs,rsync]}" "${R[local,rsync]}" "$(ratio "${R[sshfs,rsync]}" "${R[keibifs,rsync]}")"
printf '%-34s %12s %12s %12s %10s\n' "git clone, $GIT_FILES files (s)" "${R[keibifs,git]}" "${R[sshfs,git]}" "${R[local,git]}" "$(ratio "${R[sshfs,git]}" "${R[keibifs,git]}")"
printf '%-34s %12s %12s %12s\n' "client peak RSS, seq read (MiB)" "${R[keibifs,rss]}" "${R[sshfs,rss]}" "-"
printf '%-34s %12s %12s %12s\n' "client CPU s, 2 reads of ${BIG_MB} MiB" "${R[keibifs,cpu]}" "${R[sshfs,cpu]}" "-"
printf '%-34s %12s\n' "keibifs crypto=mbedtls cold (MB/s)" "${R[mbed,seq]}"
for rtt in $LAT_RTTS; do
	printf '%-34s %12s %12s %12s %10s\n' "+${rtt} ms RTT: cold read ${LAT_MB} MiB (MB/s)" "${R[keibifs,lat$rtt,seq]}" "${R[sshfs,lat$rtt,seq]}" "-" "$(ratio "${R[keibifs,lat$rtt,seq]}" "${R[sshfs,lat$rtt,seq]}")"
	printf '%-34s %12s %12s %12s %10s\n' "+${rtt} ms RTT: ls -l $SMALL_FILES files (s)" "${R[keibifs,lat$rtt,ls]}" "${R[sshfs,lat$rtt,ls]}" "-" "$(ratio "${R[sshfs,lat$rtt,ls]}" "${R[keibifs,lat$rtt,ls]}")"
	printf '%-34s %12s %12s %12s %10s\n' "+${rtt} ms RTT: cp -r 100 x 4 KiB (s)" "${R[keibifs,lat$rtt,cp]}" "${R[sshfs,lat$rtt,cp]}" "-" "$(ratio "${R[sshfs,lat$rtt,cp]}" "${R[keibifs,lat$rtt,cp]}")"
done
printf '(* median of %s rounds, the contenders taking turns in each, every run on a fresh mount.\n   Write rows: into a fresh tmpfs inside the share; local = that tmpfs)\n' "$REPS"
for n in $CONTENDERS; do
	printf '   %-8s cold reads:%s MB/s; writes:%s MB/s\n' "$n" "${SEQS[$n]}" "${WSEQS[$n]}"
done
printf '\nkeibifs client, counted with an LD_PRELOAD counter (bench/kbcount.c), reading %s MiB:\n' "$BIG_MB"
printf '  user-space memcpy/memmove, steady state:   %s of the bytes read (first pass: %s)\n' "$C_COPY" "$C_COPY1"
printf '  heap allocations per 1 MiB block, steady:  %s by keibifs, %s by libfuse (its fuse_req per request)\n' "$C_OURS" "$C_FUSE"
printf '  with compress=on, reading %s MiB of source text: memcpy/memmove %s of the bytes read (first\n' "$SLOW_MB" "$Z_COPY"
printf '    pass: %s); zstd wrote %s of them, once, straight into the receive buffers the block cache keeps\n' "$Z_COPY1" "$Z_ZSTD"
printf '    (compress=off/auto on loopback: zstd wrote %s, as above)\n' "$C_ZSTD"

printf '\nslow link: %s Mbit/s shared each way, +%s ms RTT (kbproxy --link-mbps)\n' "$SLOW_MBPS" "$SLOW_RTT"
printf '%-34s %10s %10s %10s %10s %10s\n' "measure" "kb off" "kb auto" "sshfs" "sshfs -C" "auto/off"
printf '%-34s %10s %10s %10s %10s %10s\n' "cold read ${SLOW_MB} MiB source text (MB/s)" "${R[slow,kboff,slowtext]}" "${R[slow,kbauto,slowtext]}" "${R[slow,ssh,slowtext]}" "${R[slow,sshC,slowtext]}" "$(ratio "${R[slow,kbauto,slowtext]}" "${R[slow,kboff,slowtext]}")"
printf '%-34s %10s %10s %10s %10s %10s\n' "cold read ${SLOW_MB} MiB random (MB/s)" "${R[slow,kboff,slowrand]}" "${R[slow,kbauto,slowrand]}" "${R[slow,ssh,slowrand]}" "${R[slow,sshC,slowrand]}" "$(ratio "${R[slow,kbauto,slowrand]}" "${R[slow,kboff,slowrand]}")"
printf '%-34s %10s %10s %10s %10s %10s\n' "cp -r ${SRC_FILES} headers (s)" "${R[slow,kboff,cp]}" "${R[slow,kbauto,cp]}" "${R[slow,ssh,cp]}" "${R[slow,sshC,cp]}" "$(ratio "${R[slow,kboff,cp]}" "${R[slow,kbauto,cp]}")"

printf '\nceilings measured in this run:\n'
printf '  null FUSE filesystem, 1 MiB reads: %s MB/s; writes (writeback cache, thrown away, fsync): %s MB/s\n' "$FUSE_CEIL" "$FUSE_WCEIL"
printf '%s\n' "$CEIL" | sed 's/^/  /'
if [ -x "$KB_BUILD/bench-server" ]; then
	printf '\nserver, protocol-level client (no FUSE):\n'
	"$KB_BUILD/bench-server" 2>&1 | sed 's/^/  /' || true
fi
