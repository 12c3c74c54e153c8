#!/usr/bin/env bash
# make bench-remote: browsing a remote peer. keibifs, sshfs and rclone mount
# (sftp backend) each reach a server on 127.0.0.1 through kbproxy, which
# adds RTT/2 in each direction; every row runs on a fresh mount, so the
# client's caches are empty and every round trip it needs is paid.
#
# Rows (each contender, each RTT): find+stat of 1,000 files in 20 dirs;
# git status in a fresh clone (3,000 files; BENCH_GIT_FILES_SLOW at the
# slowest RTT); ls -l of 2,000 files; access() R/W/X over 2,000 files;
# du -s of a 5,000-file tree; cp -r out of 200 small files; make -n of a
# 200-file C tree. Every round is printed; the table shows the median.
# For keibifs the requests it sent per row are printed too (--status).
#
# Env: BENCH_RTTS ("2 20 50"), BENCH_REMOTE_CONTENDERS ("keibifs sshfs
# rclone"), BENCH_REMOTE_REPS (1), BENCH_ROWS (all), BENCH_GIT_FILES (3000),
# BENCH_GIT_FILES_SLOW (300: used at RTTs of 20 ms and more),
# BENCH_ROW_TIMEOUT (30 s: a row cut there shows as ">30"),
# BENCH_KB_OPTS (extra keibifs mount options).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
RTTS=${BENCH_RTTS:-2 20 50}
CONTENDERS=${BENCH_REMOTE_CONTENDERS:-keibifs sshfs rclone}
REPS=${BENCH_REMOTE_REPS:-1}
ROWS=${BENCH_ROWS:-find git ls access du cp make}
GIT_FILES=${BENCH_GIT_FILES:-3000}
GIT_FILES_SLOW=${BENCH_GIT_FILES_SLOW:-300}
ROW_TIMEOUT=${BENCH_ROW_TIMEOUT:-30}  # a row taking longer is cut and shown as >N
KB_EXTRA=${BENCH_KB_OPTS:-}

work=$(mktemp -d /tmp/keibifs-bremote.XXXXXX)
SSHD_PID=""
cleanup() {
	set +e # stop everything even when one step fails
	kb_cleanup
	while mountpoint -q "$work/out" 2>/dev/null; do umount -l "$work/out"; done
	[ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
share=$work/share
mkdir -p "$share" "$work/out"

CONTENDERS=$(kb_contenders_installed bench-remote "$CONTENDERS")

echo "bench-remote: preparing data" >&2
python3 - "$share" <<'PY'
import os, sys
s = sys.argv[1]
def files(d, n, size=0, fmt="f{:05d}", ext=""):
    os.makedirs(d, exist_ok=True)
    blk = os.urandom(size) if size else b""
    for i in range(n):
        with open(os.path.join(d, fmt.format(i) + ext), "wb") as f:
            f.write(blk)
for j in range(20):                       # find+stat: 1,000 files in 20 dirs
    files(f"{s}/tree/d{j:02d}", 50, 100)
files(f"{s}/flat", 2000, 100)             # ls -l, access()
for j in range(50):                       # du -s: 5,000 files
    files(f"{s}/du/d{j:02d}", 100, 1000)
files(f"{s}/small", 200, 2048)            # cp -r
os.makedirs(f"{s}/ctree/src", exist_ok=True)   # make -n: 200 .c -> .o
objs = []
for i in range(200):
    with open(f"{s}/ctree/src/m{i:03d}.c", "w") as f:
        f.write(f"int m{i}(void) {{ return {i}; }}\n")
    with open(f"{s}/ctree/src/m{i:03d}.h", "w") as f:
        f.write(f"int m{i}(void);\n")
    objs.append(f"src/m{i:03d}.o")
with open(f"{s}/ctree/Makefile", "w") as f:
    f.write("OBJS = " + " ".join(objs) + "\nall: prog\nprog: $(OBJS)\n\tcc -o $@ $^\n"
            "src/%.o: src/%.c src/%.h\n\tcc -c -o $@ $<\n")
PY
make_repo() { kb_make_repo "$1" "$2" 10 50; } # DIR FILES
make_repo "$work/repo$GIT_FILES" "$GIT_FILES"
[ "$GIT_FILES_SLOW" = "$GIT_FILES" ] || make_repo "$work/repo$GIT_FILES_SLOW" "$GIT_FILES_SLOW"
# one clone per contender and size: each contender's git rewrites its own
# index (its inode numbers), which must not charge the next one
for c in $CONTENDERS; do
	for n in $GIT_FILES $GIT_FILES_SLOW; do
		[ -d "$share/git-$c-$n" ] || git clone -q "$work/repo$n" "$share/git-$c-$n"
	done
done
sync

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
median() { # rounds cut at the row timeout count as the largest
	python3 -c 'import sys, statistics
v = sorted(float(x.lstrip(">")) + (1e9 if x.startswith(">") else 0) for x in sys.argv[1:])
m = statistics.median_low(v)
print(f">{m - 1e9:g}" if m >= 1e9 else m)' "$@"
}

# --- contenders ---------------------------------------------------------------
# rclone with its defaults (no VFS file cache, 5 min dir cache)
kb_contenders "$work" "$share" "$CONTENDERS" "$KB_EXTRA"

# --- rows: each takes the mount point, prints nothing ---------------------------
row_find() { find "$1/tree" -type f -print0 | xargs -0 stat >/dev/null; }
row_git() { git -c safe.directory='*' -C "$1/git-$C-$GITN" status >/dev/null; }
row_ls() { ls -l "$1/flat" >/dev/null; }
row_access() {
	python3 - "$1/flat" <<'PY'
import os, sys
d = sys.argv[1]
for n in os.listdir(d):
    p = os.path.join(d, n)
    os.access(p, os.R_OK); os.access(p, os.W_OK); os.access(p, os.X_OK)
PY
}
row_du() { du -s "$1/du" >/dev/null; }
row_cp() {
	while mountpoint -q "$work/out"; do umount -l "$work/out"; done # a row cut before
	mount -t tmpfs -o size=64m kbbench-out "$work/out"
	cp -r "$1/small" "$work/out/small"
	umount "$work/out" 2>/dev/null || umount -l "$work/out"
}
row_make() { make -n -C "$1/ctree" >/dev/null; }

kill_tree() { # PID: it and its descendants, by PID (children first)
	local c
	for c in $(pgrep -P "$1"); do kill_tree "$c"; done
	kill "$1" 2>/dev/null || true
}

# FUNC ARGS... in the background, cut at ROW_TIMEOUT: prints its seconds,
# or ">ROW_TIMEOUT" (its processes are stopped by PID).
bounded() {
	local t0 t1 rp waited=0 tf=$work/row-end
	rm -f "$tf"
	t0=$(now)
	{ "$@" >/dev/null || true; now >"$tf"; } &
	rp=$!
	while kill -0 "$rp" 2>/dev/null && [ "$waited" -lt $((ROW_TIMEOUT * 10)) ]; do
		sleep 0.1
		waited=$((waited + 1))
	done
	if kill -0 "$rp" 2>/dev/null; then
		kill_tree "$rp"
		wait "$rp" 2>/dev/null || true
		echo ">$ROW_TIMEOUT"
		return
	fi
	wait "$rp" || true
	t1=$(cat "$tf" 2>/dev/null || now) # when it ended, not when we looked
	elapsed "$t0" "$t1"
}

declare -A T REQS
run_row() { # CONTENDER RTT ROUND ROW PORT
	local c=$1 rtt=$2 row=$4 port=$5 t
	C=$c
	"mount_$c" "$port"
	t=$(bounded "row_$row" "$M")
	if [ "$c" = keibifs ]; then
		REQS[$rtt,$row]=$("$KB_BUILD/keibifs" --status "$M" 2>/dev/null |
			sed -n 's/^ *requests by op: *//p' | head -1)
	fi
	"umount_$c"
	T[$c,$rtt,$row]+=" $t"
	printf 'bench-remote: +%s ms %-8s %-7s %s s\n' "$rtt" "$c" "$row" "$t" >&2
}

for rtt in $RTTS; do
	GITN=$GIT_FILES
	[ "$rtt" -ge 20 ] && GITN=$GIT_FILES_SLOW
	declare -A PORTS=()
	kb_proxies "$rtt" "$work/proxy.log" "$KB_PORT" "$SSH_PORT"
	# settle each clone's index once (git rewrites it on a new mount)
	for c in $CONTENDERS; do
		C=$c
		"mount_$c" "$(kb_port "$c")"; bounded row_git "$M" >/dev/null; "umount_$c"
	done
	kb_rounds "$rtt"
	kb_proxies_stop
done

# --- the table ------------------------------------------------------------------
label() {
	case $1 in
	find) echo "find+stat 1,000 files/20 dirs" ;;
	git) echo "git status, $2-file clone" ;;
	ls) echo "ls -l of 2,000 files" ;;
	access) echo "access() R/W/X over 2,000" ;;
	du) echo "du -s of 5,000 files" ;;
	cp) echo "cp -r out of 200 x 2 KiB" ;;
	make) echo "make -n, 200-file C tree" ;;
	esac
}
printf '\nkeibifs remote browsing, fresh mounts, seconds (median of %s; %s)\n' "$REPS" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-8s %-32s' "RTT" "measure"
kb_table_head
for rtt in $RTTS; do
	GITN=$GIT_FILES
	[ "$rtt" -ge 20 ] && GITN=$GIT_FILES_SLOW
	for row in $ROWS; do
		printf '%-8s %-32s' "+$rtt ms" "$(label "$row" "$GITN")"
		kb_table_cells "$rtt" "$row"
	done
done
kb_table_reqs 7
