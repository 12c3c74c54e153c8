#!/usr/bin/env bash
# Build a small C project on the mount (make, cc, ar writing object files).
. "$(dirname "$0")/common.sh"
p=$MNT/proj
mkdir -p "$p/src"
for i in 1 2 3 4 5; do
	printf 'int f%d(int x) { return x * %d; }\n' "$i" "$i" >"$p/src/f$i.c"
done
cat >"$p/src/main.c" <<'C'
#include <stdio.h>
int f1(int), f2(int), f3(int), f4(int), f5(int);
int main(void) { printf("%d\n", f1(1) + f2(1) + f3(1) + f4(1) + f5(1)); return 0; }
C
cat >"$p/Makefile" <<'MK'
OBJ := $(patsubst %.c,%.o,$(wildcard src/*.c))
app: libf.a src/main.o
	$(CC) -o $@ src/main.o libf.a
libf.a: $(filter-out src/main.o,$(OBJ))
	ar rcs $@ $^
clean:
	rm -f app libf.a src/*.o
MK
make -s -C "$p" -j2
[ "$("$p/app")" = 15 ] || fail "built program gave wrong output"
out=$(make -s -C "$p")
[ -z "$out" ] || fail "second make rebuilt something: $out"
touch "$p/src/f3.c"
out=$(make -C "$p")
case $out in *f3*) ;; *) fail "make did not rebuild after touch: $out" ;; esac
make -s -C "$p" clean
echo "build ok"
