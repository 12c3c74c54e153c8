#!/usr/bin/env bash
# scripts/filemanager.sh - a file manager (pcmanfm under Xvfb) opens a
# folder of a keibifs mount through the fault proxy, as a user would.
#
#   scripts/filemanager.sh [--rtt MS] [--files N] [--images N] [--out DIR]
#                          [--max SECONDS] [-o OPTS]
#
# Two folders on a fresh mount each time: N small files, and N images
# (thumbnails). Screenshots are taken 1, 2, 3 and 5 s after pcmanfm starts
# (DIR/<folder>-<t>s.png) and when it is done (-end.png); the time until
# the client went quiet (no request for 0.5 s, from `keibifs --status`; at
# most --max s, default 30) is printed with the requests it took, by op. Needs root (mount, bdi), Xvfb, pcmanfm, imagemagick:
# missing ones are installed by apt. Not part of `make test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

RTT=20 FILES=2000 IMAGES=200 OUT=$PWD/filemanager-shots OPTS="" MAX=30
while [ $# -gt 0 ]; do
	case $1 in
	--rtt) RTT=$2; shift 2 ;;
	--files) FILES=$2; shift 2 ;;
	--images) IMAGES=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-o) OPTS=$2; shift 2 ;;
	--max) MAX=$2; shift 2 ;;
	*) echo "usage: $0 [--rtt MS] [--files N] [--images N] [--out DIR] [--max S] [-o OPTS]" >&2; exit 2 ;;
	esac
done
need=""
command -v Xvfb >/dev/null || need="$need xvfb"
command -v pcmanfm >/dev/null || need="$need pcmanfm"
command -v convert >/dev/null || need="$need imagemagick"
command -v dbus-launch >/dev/null || need="$need dbus-x11"
if [ -n "$need" ]; then
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

work=$(mktemp -d /tmp/kbfm.XXXXXX)
XPID="" FMPID=""
cleanup() {
	[ -n "$FMPID" ] && kill "$FMPID" 2>/dev/null
	[ -n "$XPID" ] && kill "$XPID" 2>/dev/null
	kb_cleanup
	rm -rf "$work"
}
trap cleanup EXIT

share=$work/share
mkdir -p "$share/files" "$share/images" "$OUT"
for i in $(seq -w 1 "$FILES"); do printf 'file %s\n' "$i" >"$share/files/f$i.txt"; done
convert -size 640x480 plasma:fractal "$work/seed.png"
for i in $(seq -w 1 "$IMAGES"); do
	# distinct files (a thumbnail cache keyed by content must not share them)
	cp "$work/seed.png" "$share/images/img$i.png"
	printf '%s' "$i" >>"$share/images/img$i.png"
done

kb_keys "$work/keys"
port=$(kb_free_port)
kb_serve "$work/keys" "$share" "$port"
pport=$(kb_free_port)
"$KB_BUILD/tests/kbproxy" --listen "$pport" --to "127.0.0.1:$port" --delay-ms $((RTT / 2)) \
	2>>"$work/proxy.log" &
KB_PIDS+=($!)
sleep 0.2

display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1280x900x24 -nolisten tcp >/dev/null 2>&1 &
XPID=$!
sleep 1
export DISPLAY=$display HOME=$work/home XDG_CACHE_HOME=$work/home/.cache
mkdir -p "$HOME"

# total MNT: requests the mount sent so far, keepalive PINGs aside
# ("requests by op: LOOKUP 12 GETATTR 3 ...")
total() {
	"$KB_BUILD/keibifs" --status "$1" 2>/dev/null |
		awk '/requests by op:/ {sub(/.*requests by op:/, ""); for (i = 2; i <= NF; i += 2) if ($(i - 1) != "PING") s += $i} END {print s + 0}'
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

open_folder() { # NAME
	local name=$1 mnt=$work/mnt t0 last=-1 now n same=0 quiet="" shots="1 2 3 5"
	kb_mount "$work/keys" "$pport" "$mnt" "$OPTS" >/dev/null
	t0=$(date +%s%N)
	dbus-launch --exit-with-session pcmanfm --no-desktop "$mnt/$name" >/dev/null 2>&1 &
	FMPID=$!
	while :; do
		now=$(ms_since "$t0")
		for t in $shots; do
			if [ "$now" -ge $((t * 1000)) ]; then
				import -window root "$OUT/$name-${t}s.png"
				shots=${shots#"$t"}; shots=${shots# }
			fi
		done
		n=$(total "$mnt")
		if [ "$n" = "$last" ]; then
			same=$((same + 1))
		else
			same=0 quiet=""
		fi
		# quiet: no request for 0.5 s (5 polls of 0.1 s)
		[ "$same" -eq 5 ] && [ -z "$quiet" ] && quiet=$((now - 500))
		[ -n "$quiet" ] && [ -z "$shots" ] && break
		[ "$now" -ge $((MAX * 1000)) ] && break
		last=$n
		sleep 0.1
	done
	import -window root "$OUT/$name-end.png"
	if [ -n "$quiet" ]; then
		quiet="$((quiet / 1000)).$(printf '%03d' $((quiet % 1000))) s"
	else
		quiet="(still busy at $MAX s)"
	fi
	printf '%-8s +%s ms: quiet after %s, %s requests\n' "$name" "$RTT" "$quiet" "$(total "$mnt")"
	"$KB_BUILD/keibifs" --status "$mnt" | grep 'requests by op' | sed 's/^ */    /'
	kill "$FMPID" 2>/dev/null; wait "$FMPID" 2>/dev/null || true
	FMPID=""
	fusermount3 -u "$mnt"
}
open_folder files
open_folder images
echo "screenshots: $OUT"
