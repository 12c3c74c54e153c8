#!/bin/sh
# restart-loop.sh - run the restart tests many times in a row; stop at the
# first failure and show its output.
#
#   scripts/restart-loop.sh [RUNS]          (default 20)
#   SANITIZER=address,undefined scripts/restart-loop.sh   (make check's build)
#   KB_TESTS=restart scripts/restart-loop.sh              (suites; default
#                                            restart,remount)
#
# `make restart-loop` and `make restart-loop-san` run it. Each run builds
# nothing new: the build is made once, first.
set -eu
runs=${1:-20}
suites=${KB_TESTS:-restart,remount}
san=${SANITIZER:-}
cd "$(dirname "$0")/.."
log=$(mktemp "${TMPDIR:-/tmp}/restart-loop.XXXXXX")
trap 'rm -f "$log"' EXIT
make --no-print-directory ${san:+SANITIZER=$san} all >"$log" 2>&1 || { cat "$log"; exit 1; }
i=1
while [ "$i" -le "$runs" ]; do
	start=$(date +%s)
	if ! KB_TESTS=$suites make --no-print-directory ${san:+SANITIZER=$san} test >"$log" 2>&1; then
		echo "restart-loop: run $i of $runs FAILED${san:+ (SANITIZER=$san)}:"
		cat "$log"
		exit 1
	fi
	echo "restart-loop: run $i/$runs ok ($(($(date +%s) - start)) s): $(tail -n 1 "$log")"
	i=$((i + 1))
done
echo "restart-loop: $runs runs of $suites passed${san:+ (SANITIZER=$san)}"
