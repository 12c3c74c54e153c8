#!/usr/bin/env bash
# soak.sh - load test: 16 clients x 4 connections of mixed reads, writes and
# metadata against one keibifsd, bounded in time. Reports errors, the
# server's RSS over time and throughput.
#
#   bash scripts/soak.sh [--minutes N] [--clients N] [--conns N]   (default 3, 16, 4)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

minutes=3 clients=16 conns=4
kb_opts minutes clients conns -- "$@"

tmp=$(mktemp -d /tmp/kbsoak.XXXXXX)
trap 'kb_cleanup; rm -rf "$tmp"' EXIT
kb_keys "$tmp/keys"
mkdir -p "$tmp/share"
port=$(kb_free_port)
kb_serve "$tmp/keys" "$tmp/share" "$port"
srv=${KB_PIDS[0]}
secs=$((minutes * 60))

rss() { awk '/VmRSS/ {print $2}' "/proc/$srv/status" 2>/dev/null || echo 0; }
echo "soak: $clients clients x $conns connections, $minutes min, keibifsd pid $srv"
echo "rss_kb(start)=$(rss)"
"$KB_BUILD/kb-soak" --port "$port" --key "$tmp/keys/client" --peer "$tmp/keys/server.pub" \
	--seconds "$secs" --clients "$clients" --conns "$conns" >"$tmp/soak.out" 2>"$tmp/soak.err" &
load=$!
KB_PIDS+=($load)
max=0
for ((t = 10; t <= secs; t += 10)); do
	sleep 10
	kill -0 "$srv" 2>/dev/null || { echo "soak: keibifsd died" >&2; exit 1; }
	r=$(rss)
	[ "$r" -gt "$max" ] && max=$r
	echo "t=${t}s rss_kb=$r threads=$(awk '/Threads/ {print $2}' /proc/$srv/status) fds=$(ls /proc/$srv/fd | wc -l) $(tail -n1 "$tmp/soak.out")"
done
rc=0
wait "$load" || rc=$?
tail -n1 "$tmp/soak.out"
echo "rss_kb(max)=$max rss_kb(end)=$(rss)"
if [ -s "$tmp/soak.err" ]; then
	echo "client errors (first 5):"
	head -n5 "$tmp/soak.err"
fi
grep -c "closing\|failed" "$tmp/keys/server.log" | sed 's/^/server error lines: /' || true
exit $rc
