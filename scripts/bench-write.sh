#!/usr/bin/env bash
# make bench-write: writing INTO a remote peer. keibifs, sshfs and rclone
# mount (sftp backend, --vfs-cache-mode writes) each reach a server on
# 127.0.0.1 through kbproxy, which adds RTT/2 in each direction; every row
# runs on a fresh mount, and the local disk is measured beside them as the
# machine's limit.
#
# Rows (each contender, each RTT): rsync -a of 200 x 4 KiB files in; git
# clone of a 300-file repository (from a local path) onto the mount; tar x
# of 200 x 4 KiB files; rm -rf of 200 files (put on the server side before
# the row); cp -r in of 200 files; make -j2 of a 30-file C project (put on
# the server side before the row; objects and binary written on the mount).
#
# A row's clock runs from the command's start until its result is complete
# ON THE SERVER'S DISK: after the command returns, keibifs --sync MOUNT
# (when the binary has it), then the share directory is polled on the
# server side (every 10 ms) until every expected file is there with its
# final size (for rm -rf: until the directory is gone or empty). rclone
# has no drain: it is only polled (it uploads a file once it is closed and
# its --vfs-write-back delay, 5 s by default, has passed). Once per round
# the server's tree is compared with the source (diff -r; git fsck for
# the clone): a difference prints FAIL and marks the time with "!"; the
# exit status is 1 when a keibifs (or local) row did. Every round is
# printed; the table shows the median. For keibifs the requests it sent
# per row are printed too (--status).
#
# Env: BENCH_RTTS ("2 20 50"), BENCH_WRITE_CONTENDERS ("keibifs sshfs
# rclone"), BENCH_WRITE_REPS (1), BENCH_WRITE_ROWS (all: rsync git tar rm
# cp make), BENCH_ROW_TIMEOUT (60 s, command and poll together: a row cut
# there shows as ">60"), BENCH_KB_OPTS (extra keibifs mount options).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
RTTS=${BENCH_RTTS:-2 20 50}
CONTENDERS=${BENCH_WRITE_CONTENDERS:-keibifs sshfs rclone}
REPS=${BENCH_WRITE_REPS:-1}
ROWS=${BENCH_WRITE_ROWS:-rsync git tar rm cp make}
ROW_TIMEOUT=${BENCH_ROW_TIMEOUT:-60}
KB_EXTRA=${BENCH_KB_OPTS:-}
NFILES=200 FSIZE=4096 GIT_FILES=300 CFILES=30

work=$(mktemp -d /tmp/keibifs-bwrite.XXXXXX)
SSHD_PID=""
cleanup() {
	set +e # stop everything even when one step fails
	kb_cleanup
	[ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
share=$work/share
mkdir -p "$share" "$work/local" "$work/man"

CONTENDERS=$(kb_contenders_installed bench-write "$CONTENDERS")
KB_SYNC=""
if [[ $CONTENDERS == *keibifs* ]]; then
	if "$KB_BUILD/keibifs" --help 2>&1 | grep -q -- --sync; then
		KB_SYNC=yes
	else
		echo "bench-write: keibifs has no --sync: its rows are polled only" >&2
	fi
fi

# --- data, all on the client's local disk -----------------------------------------
echo "bench-write: preparing data" >&2
python3 - "$work" "$NFILES" "$FSIZE" "$CFILES" <<'PY'
import os, sys, random
w, n, size, nc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(f"{w}/src")
for i in range(n):                                  # rsync, tar, rm, cp
    with open(f"{w}/src/f{i:05d}", "wb") as f:
        f.write(os.urandom(size))
c = f"{w}/cproj"                                    # make -j2
os.makedirs(f"{c}/src"); os.makedirs(f"{c}/include")
random.seed(5)
with open(f"{c}/include/common.h", "w") as f:
    f.write("#ifndef COMMON_H\n#define COMMON_H\n#include <stdint.h>\n"
            "static inline uint32_t mix(uint32_t x) { x ^= x >> 13; return x * 2654435761u; }\n#endif\n")
mods = [f"m{i:02d}" for i in range(nc - 1)]
for m in mods:
    with open(f"{c}/src/{m}.h", "w") as f:
        f.write(f"#include <stdint.h>\nuint32_t {m}(uint32_t x);\n")
    with open(f"{c}/src/{m}.c", "w") as f:
        f.write(f'#include "common.h"\n#include "{m}.h"\n')
        for k in range(20):
            f.write(f"static uint32_t {m}_s{k}(uint32_t x) {{ return mix(x + {random.randrange(1 << 30)}u); }}\n")
        f.write(f"uint32_t {m}(uint32_t x)\n{{\n")
        f.write("".join(f"\tx = {m}_s{k}(x);\n" for k in range(20)) + "\treturn x;\n}\n")
with open(f"{c}/src/main.c", "w") as f:
    f.write("#include <stdio.h>\n" + "".join(f'#include "{m}.h"\n' for m in mods))
    f.write("int main(void)\n{\n\tuint32_t x = 1;\n")
    f.write("".join(f"\tx = {m}(x);\n" for m in mods) + '\tprintf("%u\\n", x);\n\treturn 0;\n}\n')
objs = " ".join(f"src/{m}.o" for m in mods + ["main"])
with open(f"{c}/Makefile", "w") as f:
    f.write(f"OBJS = {objs}\nall: prog\nprog: $(OBJS)\n\tcc -o $@ $^\n"
            "src/%.o: src/%.c $(wildcard src/*.h) include/common.h\n\tcc -O1 -Iinclude -c -o $@ $<\n")
PY
tar -C "$work/src" -cf "$work/src.tar" .
kb_make_repo "$work/repo" "$GIT_FILES" 10 50 # git clone (from this path)

# expected trees: a manifest (relative path -> size) of every regular file
manifest() { # DIR OUT
	python3 - "$1" "$2" <<'PY'
import json, os, sys
d = sys.argv[1]
m = {}
for root, _, files in os.walk(d):
    for f in files:
        p = os.path.join(root, f)
        m[os.path.relpath(p, d)] = os.lstat(p).st_size
json.dump(m, open(sys.argv[2], "w"))
PY
}
git clone -q "$work/repo" "$work/ref-git"
cp -r "$work/cproj" "$work/ref-make" && make -s -j2 -C "$work/ref-make" >/dev/null
manifest "$work/src" "$work/man/files"
manifest "$work/ref-git" "$work/man/git"
manifest "$work/ref-make" "$work/man/make"

# --- rows: MOUNTDIR NAME (the row's directory inside the mount) -------------------
row_rsync() { rsync -a "$W/src/" "$1/$2/"; }
row_git() { git clone -q "$W/repo" "$1/$2"; }
row_tar() { mkdir "$1/$2" && tar -C "$1/$2" -xf "$W/src.tar"; }
row_rm() { rm -rf "${1:?}/${2:?}"; }
row_cp() { cp -r "$W/src" "$1/$2"; }
row_make() { make -s -j2 -C "$1/$2" >/dev/null; }
export -f row_rsync row_git row_tar row_rm row_cp row_make
export W=$work

# server-side preparation before the mount (SRV NAME ROW)
prepare() {
	case $3 in
	rm) cp -r "$work/src" "$1/$2" ;;
	make) cp -r "$work/cproj" "$1/$2" ;;
	esac
}
expected() { # ROW: manifest the server must end with ("gone" for rm)
	case $1 in
	rm) echo gone ;;
	git) echo "$work/man/git" ;;
	make) echo "$work/man/make" ;;
	*) echo "$work/man/files" ;;
	esac
}
# once per round, after the clock: the server's tree against the source
verify() { # SRV NAME ROW -> "" or a reason
	local d=$1/$2
	case $3 in
	rm) [ ! -e "$d" ] || [ -z "$(ls -A "$d")" ] || echo "$d still holds $(find "$d" | wc -l) entries" ;;
	git)
		diff -r -q -x .git "$work/repo" "$d" >/dev/null 2>&1 || echo "worktree differs from the repository"
		git -c safe.directory='*' -C "$d" fsck --full >"$work/fsck.out" 2>&1 ||
			echo "git fsck: $(grep -v '^Checking' "$work/fsck.out" | head -3 | paste -sd ' ' -)"
		[ "$(git -c safe.directory='*' -C "$d" rev-parse HEAD 2>/dev/null)" = "$(git -C "$work/repo" rev-parse HEAD)" ] ||
			echo "HEAD differs"
		;;
	make)
		diff -r -q "$work/ref-make" "$d" >/dev/null 2>&1 || echo "tree differs from a local build"
		if [ ! -x "$d/prog" ]; then
			echo "prog is not executable (mode $(stat -c %a "$d/prog" 2>/dev/null))"
		elif [ "$("$d/prog")" != "$("$work/ref-make/prog")" ]; then
			echo "prog prints another result"
		fi
		;;
	*) diff -r -q "$work/src" "$d" >/dev/null 2>&1 || echo "tree differs from the source" ;;
	esac
}

# drive ROW MOUNTDIR NAME SRVDIR EXPECTED SYNCMNT: runs the row in its own
# process group, cut at ROW_TIMEOUT (the group is killed), then keibifs
# --sync SYNCMNT (if given), then polls SRVDIR/NAME every 10 ms until it
# matches EXPECTED. Prints "SECONDS CMD_SECONDS RC" or ">TIMEOUT CMD RC".
drive() {
	python3 - "$ROW_TIMEOUT" "$KB_BUILD/keibifs" "$@" <<'PY'
import json, os, signal, subprocess, sys, time
tmo, kb, row, mnt, name, srv, exp, syncmnt = sys.argv[1:9]
tmo = float(tmo)
want = None if exp == "gone" else json.load(open(exp))
d = os.path.join(srv, name)
def scan():
    m = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            try:
                m[os.path.relpath(p, d)] = os.lstat(p).st_size
            except FileNotFoundError:
                pass
    return m
def done():
    if want is None:
        try:
            return not os.listdir(d)
        except FileNotFoundError:
            return True
    return os.path.isdir(d) and scan() == want
def out(t, cmd, rc):
    left = ""
    if t.startswith(">"):  # what the server still lacks when the row is cut
        if want is None:
            left = f"{len(scan())}-files-left"
        else:
            got = scan()
            left = f"{sum(got.get(k) == v for k, v in want.items())}/{len(want)}-files"
    print(t, cmd, rc, left)
    sys.exit(0)
t0 = time.monotonic()
p = subprocess.Popen(["bash", "-c", f'row_{row} "$1" "$2"', "_", mnt, name],
                     start_new_session=True)
try:
    rc = p.wait(timeout=tmo)
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    out(f">{tmo:g}", f">{tmo:g}", "cut")
cmd = f"{time.monotonic() - t0:.3f}"
if syncmnt != "-":
    left = tmo - (time.monotonic() - t0)
    try:
        subprocess.run([kb, "--sync", syncmnt], timeout=max(left, 0.1),
                       stdout=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        out(f">{tmo:g}", cmd, rc)
while True:
    ok = done()
    t = time.monotonic() - t0
    if ok:
        out(f"{t:.3f}", cmd, rc)
    if t > tmo:
        out(f">{tmo:g}", cmd, rc)
    time.sleep(0.01)
PY
}

median() { # rounds cut at the row timeout count as the largest; "!" marks
	# a row where any round left a wrong tree
	python3 -c 'import sys, statistics
a = sys.argv[1:]
v = sorted(float(x.strip(">!")) + (1e9 if x.startswith(">") else 0) for x in a)
m = statistics.median_low(v)
bad = "!" if any(x.endswith("!") for x in a) else ""
print((f">{m - 1e9:g}" if m >= 1e9 else f"{m:g}") + bad)' "$@"
}

# --- contenders --------------------------------------------------------------------
# rclone with a local write cache: uploads after close (no drain)
kb_contenders "$work" "$share" "$CONTENDERS" "$KB_EXTRA" \
	--vfs-cache-mode writes --cache-dir "$work/rclone-cache"

declare -A T REQS
FAILS=0   # keibifs and local rows with a wrong tree: the exit status
OTHER_FAILS=0 # sshfs and rclone rows with one: printed, marked "!"
run_row() { # CONTENDER RTT ROUND ROW PORT
	local c=$1 rtt=$2 r=$3 row=$4 port=$5 name srv res t cmd rc left why sync=-
	name=$row-$c-$rtt-$r
	srv=$share
	[ "$c" = local ] && srv=$work/local
	prepare "$srv" "$name" "$row"
	if [ "$c" = local ]; then
		M=$work/local
	else
		"mount_$c" "$port"
	fi
	[ "$c" = keibifs ] && [ -n "$KB_SYNC" ] && sync=$M
	res=$(drive "$row" "$M" "$name" "$srv" "$(expected "$row")" "$sync")
	read -r t cmd rc left <<<"$res"
	if [ "$c" = keibifs ]; then
		REQS[$rtt,$row]=$("$KB_BUILD/keibifs" --status "$M" 2>/dev/null |
			sed -n 's/^ *requests by op: *//p' | head -1)
	fi
	[ "$c" = local ] || "umount_$c"
	why=""
	if [[ $t == '>'* ]]; then
		why="(cut: not verified; the server has ${left//-/ })"
	else
		why=$(verify "$srv" "$name" "$row" | paste -sd ';' -)
		if [ -n "$why" ]; then
			case $c in
			keibifs | local) FAILS=$((FAILS + 1)) ;;
			*) OTHER_FAILS=$((OTHER_FAILS + 1)) ;;
			esac
			why="FAIL: $why"
			t+="!"
		fi
	fi
	T[$c,$rtt,$row]+=" $t"
	[ "$rc" = 0 ] || why="exit $rc $why"
	printf 'bench-write: +%s ms %-8s %-6s %8s s (command %s s) %s\n' "$rtt" "$c" "$row" "$t" "$cmd" "$why" >&2
	[[ $why != *FAIL* ]] || echo "bench-write: FAIL $c +$rtt ms $row: the server's tree is wrong" >&2
}

for ((r = 0; r < REPS; r++)); do
	for row in $ROWS; do run_row local 0 "$r" "$row" ""; done
done
for rtt in $RTTS; do
	declare -A PORTS=()
	kb_proxies "$rtt" "$work/proxy.log" "$KB_PORT" ${SSH_PORT:+"$SSH_PORT"}
	kb_rounds "$rtt"
	kb_proxies_stop
done

# --- the table ---------------------------------------------------------------------
label() {
	case $1 in
	rsync) echo "rsync -a in, $NFILES x 4 KiB" ;;
	git) echo "git clone, $GIT_FILES files" ;;
	tar) echo "tar x, $NFILES x 4 KiB" ;;
	rm) echo "rm -rf of $NFILES files" ;;
	cp) echo "cp -r in, $NFILES x 4 KiB" ;;
	make) echo "make -j2, $CFILES-file C project" ;;
	esac
}
printf '\nkeibifs remote writing, fresh mounts, seconds until the result is on the server'"'"'s disk\n'
printf '(median of %s; %s; keibifs %s; rclone: no drain, polled only; local: the machine'"'"'s limit)\n' \
	"$REPS" "$(date -u +%Y-%m-%dT%H:%MZ)" "$([ -n "$KB_SYNC" ] && echo "--sync then polled" || echo "polled only")"
printf '%-8s %-32s %10s' "RTT" "measure" "local"
kb_table_head
for rtt in $RTTS; do
	for row in $ROWS; do
		printf '%-8s %-32s %10s' "+$rtt ms" "$(label "$row")" "$(median ${T[local,0,$row]})"
		kb_table_cells "$rtt" "$row"
	done
done
kb_table_reqs 6
[ "$OTHER_FAILS" -eq 0 ] ||
	printf '\nbench-write: FAIL: %s sshfs/rclone rows (marked !) left a wrong tree on the server (see above)\n' "$OTHER_FAILS"
if [ "$FAILS" -gt 0 ]; then
	printf '\nbench-write: FAIL: %s keibifs/local rows (marked !) left a wrong tree on the server (see above)\n' "$FAILS"
	exit 1
fi
