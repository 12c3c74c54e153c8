#!/usr/bin/env bash
# soak-hostile.sh - adversarial soak: honest clients against a keibifsd that
# is being attacked, all at once, bounded in time (not part of make test):
#   - hundreds of silent (half-open) and slow-loris TCP connections from
#     other addresses (a few from the honest clients' own);
#   - authenticated slow-loris connections, clients that never read their
#     replies, and one session looking up nodes until refused, all with an
#     authorized "attacker" key (tests/tools/kb-hostile.c);
#   - 4 honest clients x 4 connections doing mixed work (kb-soak) with
#     another key.
# Reports the honest clients' errors (goal: 0) and request latency (p50,
# p99, max), the server's RSS, fds and threads every 10 s (goal: bounded),
# and how often each limit bit (its log lines).
#
#   bash scripts/soak-hostile.sh [--minutes N] [--halfopen N] [--slowloris N]
#                                (default 2, 300, 100)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

minutes=2 halfopen=300 slowloris=100
kb_opts minutes halfopen slowloris -- "$@"

tmp=$(mktemp -d /tmp/kbhostile.XXXXXX)
trap 'kb_cleanup; [ -n "${KB_KEEP:-}" ] || rm -rf "$tmp"' EXIT
kb_keys "$tmp/keys"
"$KB_BUILD/keibifs-keygen" -f "$tmp/keys/attacker" -C attacker >/dev/null
cat "$tmp/keys/attacker.pub" >>"$tmp/keys/authorized"
mkdir -p "$tmp/share/hog"
head -c $((16 << 20)) /dev/urandom >"$tmp/share/big"
port=$(kb_free_port)
kb_serve "$tmp/keys" "$tmp/share" "$port"
srv=${KB_PIDS[0]}
secs=$((minutes * 60))
# one file more than the attacker key may hold open (the server says)
perkey=$(sed -n 's/.*limits: .*), \([0-9]*\) per key.*/\1/p' "$tmp/keys/server.log" | head -n1)
nfiles=$((${perkey:-10000} + 1000))
(cd "$tmp/share/hog" && seq 1 "$nfiles" | sed 's/^/h/' | xargs touch)

rss() { awk '/VmRSS/ {print $2}' "/proc/$srv/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$srv/fd" 2>/dev/null | wc -l; }
echo "soak-hostile: ${minutes} min, keibifsd pid $srv, $halfopen silent + $slowloris slow-loris" \
	"connections, 4 non-readers, 1 node hog ($nfiles files; $perkey fds per key), 4 honest" \
	"clients x 4 connections"
echo "t=0s rss_kb=$(rss) fds=$(fds)"
"$KB_BUILD/kb-hostile" --port "$port" --key "$tmp/keys/attacker" --peer "$tmp/keys/server.pub" \
	--seconds "$secs" --halfopen "$halfopen" --slowloris "$slowloris" --nonreader 4 \
	--nodehog /hog >"$tmp/hostile.out" 2>"$tmp/hostile.err" &
KB_PIDS+=($!)
sleep 2 # the attack first
"$KB_BUILD/kb-soak" --port "$port" --key "$tmp/keys/client" --peer "$tmp/keys/server.pub" \
	--seconds $((secs - 4)) --clients 4 --conns 4 >"$tmp/soak.out" 2>"$tmp/soak.err" &
load=$!
KB_PIDS+=($load)
max_rss=0 max_fds=0
for ((t = 10; t <= secs; t += 10)); do
	sleep 10
	kill -0 "$srv" 2>/dev/null || { echo "soak-hostile: keibifsd died" >&2; exit 1; }
	r=$(rss) f=$(fds)
	[ "$r" -gt "$max_rss" ] && max_rss=$r
	[ "$f" -gt "$max_fds" ] && max_fds=$f
	echo "t=${t}s rss_kb=$r fds=$f threads=$(awk '/Threads/ {print $2}' /proc/$srv/status)" \
		"honest: $(tail -n1 "$tmp/soak.out" 2>/dev/null)"
	echo "        $(tail -n1 "$tmp/hostile.out" 2>/dev/null | sed 's/^t=[0-9]* //')"
done
rc=0
wait "$load" || rc=$?
echo "honest $(tail -n1 "$tmp/soak.out")"
echo "server: rss_kb(max)=$max_rss rss_kb(end)=$(rss) fds(max)=$max_fds fds(end)=$(fds)"
if [ -s "$tmp/soak.err" ]; then
	echo "honest client errors (first 5):"
	head -n5 "$tmp/soak.err"
fi
[ -s "$tmp/hostile.err" ] && { echo "kb-hostile said:"; head -n3 "$tmp/hostile.err"; }
kill "$srv" && wait "$srv" || true
echo "server log: $(wc -l <"$tmp/keys/server.log") lines; first line of each limit:"
for k in "handshake limit: .* in progress" "handshake limit: .* from" "handshake deadline" \
	"still being cut" "connection limit" "no HELLO" "frame not received" "reply not taken" \
	"idle (" "queued bytes" "fd limit" "dropped"; do
	grep -m1 "$k" "$tmp/keys/server.log" | sed 's/^keibifsd: /  /' || true
done
grep "limits hit since start" "$tmp/keys/server.log" | sed 's/^keibifsd: //' || true
exit $rc
