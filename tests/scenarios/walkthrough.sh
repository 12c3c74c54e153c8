#!/usr/bin/env bash
# README walk-through: runs the commands of README.md's "Use it" section as
# written, on two "machines" (network namespaces joined by a veth pair),
# then a few mistakes a user makes, each of which must fail with one line.
#
#   walkthrough.sh BUILD_DIR [README]
#
# The steps come from README.md itself: each "<!-- walkthrough:ROLE -->"
# marker (ROLE: server or client) is followed by a ```sh block that ROLE
# runs; "<!-- walkthrough:copy ROLE:PATH ROLE:PATH -->" copies a file from
# one machine to the other (the README says to, in words). Each block runs
# with `bash -e` in its machine's namespace, as root, with its own HOME and
# build/ first on PATH. Only these words are changed:
#   - /etc/keibifs, /srv/data and /mnt/data become directories of this
#     machine under the test's temp dir (the host's /etc is not ours);
#   - SHA256:... becomes the fingerprint keibifsd printed when it started;
#   - server.example resolves to the server through /etc/netns/NS/hosts (as
#     `ip netns exec` provides), or is replaced by its address when /etc/netns
#     cannot be written.
# Exit 0: every step worked; 77: cannot run here (SKIP); 1: a step failed.
set -u
BUILD=$(cd "${1:?usage: walkthrough.sh BUILD_DIR [README]}" && pwd)
README=${2:-$(dirname "$0")/../../README.md}
ID="kbw$$"
NS_S="$ID-s" NS_C="$ID-c"
IP_S=10.77.$(($$ % 250)).1 IP_C=10.77.$(($$ % 250)).2
T=$(mktemp -d /tmp/kbwalk.XXXXXX)
ETCNS=""

say() { echo "walkthrough: $*"; }
fail() { say "FAIL: $*"; exit 1; }

cleanup() {
	local ns pid
	for ns in "$NS_C" "$NS_S"; do
		ip netns list 2>/dev/null | grep -q "^$ns\b" || continue
		# only processes in our own namespaces, by pid
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
		sleep 0.3
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	[ -n "$ETCNS" ] && rm -rf "/etc/netns/$NS_C"
	rmdir /etc/netns 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ -r "$README" ] || fail "no README at $README"
if ! ip netns add "$NS_S" 2>"$T/err"; then
	echo "SKIP: walkthrough: ip netns unavailable: $(cat "$T/err")"
	exit 77
fi
ip netns add "$NS_C" || fail "ip netns add $NS_C"
ip -n "$NS_S" link add "$ID-vs" type veth peer name "$ID-vc" netns "$NS_C" ||
	{ echo "SKIP: walkthrough: no veth pairs here"; exit 77; }
ip -n "$NS_S" addr add "$IP_S/24" dev "$ID-vs" && ip -n "$NS_C" addr add "$IP_C/24" dev "$ID-vc" &&
	ip -n "$NS_S" link set lo up && ip -n "$NS_C" link set lo up &&
	ip -n "$NS_S" link set "$ID-vs" up && ip -n "$NS_C" link set "$ID-vc" up ||
	fail "cannot set up the veth pair"
if mkdir -p "/etc/netns/$NS_C" 2>/dev/null; then
	ETCNS=1
	printf '127.0.0.1 localhost\n::1 localhost\n%s server.example\n' "$IP_S" \
		>"/etc/netns/$NS_C/hosts"
fi

for role in server client; do
	mkdir -p "$T/$role/home" "$T/$role/work" "$T/$role/etc" "$T/$role/srv" "$T/$role/mnt"
done
chmod 700 "$T/server/home" "$T/client/home"

# ---- the steps, from the README ------------------------------------------
awk '
	/^<!-- walkthrough:(server|client) -->/ { role = $0; sub(/.*walkthrough:/, "", role);
		sub(/ .*/, "", role); want = 1; next }
	/^<!-- walkthrough:copy / { line = $0; sub(/^<!-- walkthrough:copy /, "", line);
		sub(/ -->.*/, "", line); n++; print "copy " line > (dir "/steps"); next }
	want && /^```sh/ { n++; file = sprintf("%s/step%02d.%s", dir, n, role);
		print "run " role " " file > (dir "/steps"); inblock = 1; want = 0; next }
	inblock && /^```/ { inblock = 0; close(file); next }
	inblock { print > file }
' dir="$T" "$README"
[ -s "$T/steps" ] || fail "no <!-- walkthrough:... --> steps in $README"
grep -q '^run server' "$T/steps" && grep -q '^run client' "$T/steps" ||
	fail "README has no server or no client step"

# a path of ROLE: ~ is its HOME, the three system paths its own, else its
# working directory
map_path() {
	local role=$1 p=$2 r="$T/$1"
	case "$p" in
	"~/"*) p="$r/home/${p#\~/}" ;;
	/etc/keibifs*) p="$r/etc/keibifs${p#/etc/keibifs}" ;;
	/srv/data*) p="$r/srv/data${p#/srv/data}" ;;
	/mnt/data*) p="$r/mnt/data${p#/mnt/data}" ;;
	/*) ;;
	*) p="$r/work/$p" ;;
	esac
	echo "$p"
}

FPR=""
run_step() {
	local role=$1 file=$2 ns r="$T/$1" script="$2.run"
	[ "$role" = server ] && ns=$NS_S || ns=$NS_C
	sed -e "s#/etc/keibifs#$r/etc/keibifs#g" -e "s#/srv/data#$r/srv/data#g" \
		-e "s#/mnt/data#$r/mnt/data#g" "$file" >"$script"
	if grep -q 'SHA256:\.\.\.' "$script"; then
		[ -n "$FPR" ] || fail "a step needs the server's fingerprint before keibifsd printed it"
		sed -i "s#SHA256:\.\.\.#$FPR#g" "$script"
	fi
	[ -n "$ETCNS" ] || sed -i "s#server\.example#$IP_S#g" "$script"
	say "== $role: $(basename "$file")"
	sed 's/^/    /' "$file"
	(cd "$r/work" && timeout 60 ip netns exec "$ns" env -i HOME="$r/home" \
		PATH="$BUILD:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		LANG=C bash -e "$script") >"$file.log" 2>&1
	local rc=$?
	sed 's/^/    | /' "$file.log"
	[ $rc -eq 0 ] || fail "$role step $(basename "$file") failed (exit $rc)"
	if [ "$role" = server ] && [ -z "$FPR" ]; then
		FPR=$(grep -o 'key SHA256:[A-Za-z0-9+/]*' "$file.log" | head -1 | cut -d' ' -f2)
	fi
	return 0
}

while read -r kind a b; do
	case "$kind" in
	run) run_step "$a" "$b" ;;
	copy)
		src=$(map_path "${a%%:*}" "${a#*:}") dst=$(map_path "${b%%:*}" "${b#*:}")
		say "== copy $a -> $b"
		cp "$src" "$dst" || fail "copy $a -> $b: the README's file is not there"
		;;
	esac
done <"$T/steps"

# ---- did the README do what it says? ---------------------------------------
[ -n "$FPR" ] || fail "keibifsd printed no fingerprint before detaching"
[ "$(cat "$T/server/srv/data/hello.txt" 2>/dev/null)" = hello ] ||
	fail "the write through the mount did not reach the server"
grep -q '^hello$' "$T"/step*.client.log || fail "the second mount did not read hello.txt"
grep -q '^peer: .*:26431 SHA256:' "$T"/step*.client.log || fail "keibifs --status printed no peer"
# the client ends on its own after fusermount3 -u (it says goodbye to the
# server first): give it a few seconds
no_client_left() {
	for _ in $(seq 50); do
		[ -z "$(ip netns pids "$NS_C")" ] && return 0
		sleep 0.1
	done
	fail "$1: a client process is left: $(ip netns pids "$NS_C")"
}
no_client_left "after the README's unmount"

# ---- mistakes: one line each, non-zero exit, nothing left behind -------------
R="$T/client"
mistake() { # WANT COMMAND...: must fail, with one line containing WANT
	local want=$1
	shift
	(cd "$R/work" && timeout 30 ip netns exec "$NS_C" env -i HOME="$R/home" \
		PATH="$BUILD:/usr/sbin:/usr/bin:/sbin:/bin" "$@") >"$T/m.out" 2>&1
	local rc=$?
	say "mistake: $* -> exit $rc: $(cat "$T/m.out")"
	[ $rc -ne 0 ] || fail "'$*' succeeded"
	grep -qF -- "$want" "$T/m.out" || fail "'$*' did not say '$want'"
	[ "$(wc -l <"$T/m.out")" -eq 1 ] || fail "'$*' printed more than one line"
	no_client_left "'$*'"
}
HOST=server.example
[ -n "$ETCNS" ] || HOST=$IP_S
KP="$R/home/.config/keibifs/known_peers"
cp "$KP" "$T/kp.good"
# a different key pinned for that host: CHANGED, naming the file and line
printf '%s keibifs-x25519 %s\n' "$HOST" "$(head -c32 /dev/urandom | base64)" >"$KP"
mistake "SERVER KEY CHANGED" keibifs "$HOST:/" "$R/mnt/data"
mistake "known_peers:1 pins" keibifs "$HOST:/" "$R/mnt/data"
# the right key, bound to another host: not trusted here
sed "s/^[^ ]*/other.example/" "$T/kp.good" >"$KP"
mistake "unknown server key" keibifs "$HOST:/" "$R/mnt/data"
cp "$T/kp.good" "$KP"
mistake "did you mean 'conns'?" keibifs "$HOST:/" "$R/mnt/data" -o conn=4
mistake "PATH is relative" keibifs "$HOST:/srv/data" "$R/mnt/data"
mistake "is a public key" keibifs "$HOST:/" "$R/mnt/data" \
	-o identity="$R/home/.config/keibifs/id_x25519.pub"
mistake "pre-shared key" keibifs "$HOST:/" "$R/mnt/data" -o psk=/nonexistent
say "ok: the README's steps work as written ($(grep -c '^run' "$T/steps") blocks)"
