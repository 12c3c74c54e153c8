#!/usr/bin/env bash
# git clone a local repository onto the mount; fsck and status clean.
. "$(dirname "$0")/common.sh"
git init -q "$WORK/repo"
cd "$WORK/repo"
for i in $(seq 1 30); do
	mkdir -p "d$((i % 5))"
	seq 1 $((i * 100)) >"d$((i % 5))/f$i.txt"
	git add -A && git -c user.name=t -c user.email=t@t commit -qm "c$i"
done
cd /
git clone -q "$WORK/repo" "$MNT/clone"
git -C "$MNT/clone" fsck --full --strict >/dev/null 2>&1 || fail "git fsck"
[ -z "$(git -C "$MNT/clone" status --porcelain)" ] || fail "git status not clean"
git -C "$MNT/clone" -c user.name=t -c user.email=t@t commit -q --allow-empty -m more
git -C "$MNT/clone" gc -q
git -C "$MNT/clone" fsck --strict >/dev/null 2>&1 || fail "git fsck after gc"
echo "git clone ok"
