# keibifs - hand-written Makefile (wireguard-tools / redis habits).
#
#   make                 build everything into build/
#   make test            install missing deps, build, run every test (Check)
#   make check           the tests again under ASan+UBSan (build/san/)
#   make restart-loop    the restart tests 20 times in a row (RUNS=N);
#                        restart-loop-san: the same under ASan+UBSan
#   make fuzz            libFuzzer targets (clang) into build/fuzz/
#   make bench           benchmarks, one table beside sshfs and local limits
#                        (then make bench-remote and make bench-write)
#   make bench-remote    browsing at +2/+20/+50 ms RTT beside sshfs, rclone
#   make bench-write     writing into the mount at +2/+20/+50 ms RTT beside
#                        sshfs, rclone (timed until it is on the server's disk)
#   make demo            serve a sample directory on 127.0.0.1 and mount it
#   make install         PREFIX=/usr/local DESTDIR=
#   make CRYPTO=mbedtls  force the mbedTLS reference AEAD for bulk frames

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
CRYPTO ?= openssl
SANITIZER ?=
BUILD ?= build
CC ?= cc
PKG_CONFIG ?= pkg-config

# Each kind of build has its own directory, so switching never mixes objects:
# build/ (OpenSSL bulk AEAD), build/mbedtls, build/san (make check:
# address,undefined), build/san-SANITIZER for any other, [-mbedtls], build/fuzz.
comma := ,
ifeq ($(CRYPTO),openssl)
CRYPTO_DIR :=
else
CRYPTO_DIR := $(CRYPTO)
endif
ifneq ($(SANITIZER),)
SAN_DIR := $(if $(filter address$(comma)undefined,$(SANITIZER)),san,san-$(subst $(comma),+,$(SANITIZER)))
BUILD := build/$(SAN_DIR)$(if $(CRYPTO_DIR),-$(CRYPTO_DIR))
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifneq ($(CRYPTO_DIR),)
BUILD := build/$(CRYPTO_DIR)
endif
ifneq ($(FUZZ),)
BUILD := build/fuzz
CC := clang
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -DKB_FUZZ=1
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Wno-format-nonliteral
# _FORTIFY_SOURCE needs an optimising build; CFLAGS=-O0 leaves it out.
HARDEN := $(if $(filter -O0,$(CFLAGS)),,-D_FORTIFY_SOURCE=2) -fstack-protector-strong -fPIE
CFLAGS ?= -O2 -g
# Include paths follow the dependency graph (ARCHITECTURE.md): the core sees
# only itself; the client and the server each see the core and themselves.
INC_CORE := -Isrc/core -I$(BUILD)/gen
INC_CLIENT := $(INC_CORE) -Isrc/client
INC_SERVER := $(INC_CORE) -Isrc/server
INC_ALL := $(INC_CORE) -Isrc/client -Isrc/server
KB_CFLAGS := -std=gnu11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE -pthread -MMD -MP
ifeq ($(SANITIZER)$(FUZZ),)
KB_CFLAGS += $(HARDEN)
endif
override CFLAGS += $(KB_CFLAGS)
LDFLAGS += $(SANFLAGS) -pthread -pie -Wl,-z,relro,-z,now

FUSE_CFLAGS := $(shell $(PKG_CONFIG) --cflags fuse3 2>/dev/null)
FUSE_LIBS := $(shell $(PKG_CONFIG) --libs fuse3 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
# Test-only: the Noise vector runner reads JSON with jansson.
JSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
JSON_LIBS := $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)
CRYPTO_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto
ifeq ($(CRYPTO),openssl)
override CFLAGS += -DKB_HAVE_OPENSSL=1
CRYPTO_LIBS += $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)
endif
NANOPB_LIBS := -lprotobuf-nanopb
AVAHI_LIBS := $(shell $(PKG_CONFIG) --libs avahi-client 2>/dev/null || echo -lavahi-client -lavahi-common)
LIBS := $(CRYPTO_LIBS) $(NANOPB_LIBS) -lzstd $(AVAHI_LIBS)

# Product libraries, one per folder of src/ (ARCHITECTURE.md):
#   src/core   -> libkeibifs-core.a    channel, Noise, AEAD, wire, buffers, keys
#   src/client -> libkeibifs-client.a  rpc session, block cache
#   src/server -> libkeibifs-server.a  keibifsd's engine
PROTO_SRC := $(wildcard proto/*.proto)
GEN_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb.c,$(PROTO_SRC))
GEN_H := $(GEN_C:.c=.h)
CORE_OBJ := $(patsubst src/core/%.c,$(BUILD)/obj/core/%.o,$(wildcard src/core/*.c)) \
	$(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(GEN_C))
CLIENT_OBJ := $(patsubst src/client/%.c,$(BUILD)/obj/client/%.o,$(wildcard src/client/*.c))
SERVER_OBJ := $(patsubst src/server/%.c,$(BUILD)/obj/server/%.o,$(wildcard src/server/*.c))
CORE_LIB := $(BUILD)/libkeibifs-core.a
CLIENT_LIB := $(BUILD)/libkeibifs-client.a
SERVER_LIB := $(BUILD)/libkeibifs-server.a

# Programs. Product: keibifsd, keibifs-keygen (src/cmd), keibifs (fuse/).
# Benchmarks (bench/) and test tools (tests/tools/) are built but never installed.
PROD_BIN := $(BUILD)/keibifsd $(BUILD)/keibifs-keygen $(BUILD)/keibifs
BENCH_BIN := $(BUILD)/bench-channel $(BUILD)/bench-server
FUSE_SRC := $(wildcard fuse/*.c)
FUSE_OBJ := $(patsubst fuse/%.c,$(BUILD)/obj/fuse/%.o,$(FUSE_SRC))

# Tests: tests/test_NAME.c defines `Suite *suite_NAME(void)`; one Check runner.
# tests/lib/ holds test-only code (JSON reader, Noise vector runner, raw channel).
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_NAMES := $(patsubst tests/test_%.c,%,$(TEST_SRC))
TEST_OBJ := $(patsubst tests/%.c,$(BUILD)/obj/tests/%.o,$(TEST_SRC) tests/runner.c \
	$(wildcard tests/th_*.c))
TESTLIB_OBJ := $(patsubst tests/lib/%.c,$(BUILD)/obj/testlib/%.o,$(wildcard tests/lib/*.c))
TEST_BIN := $(BUILD)/tests/runner
# fuse/ objects other than main are linked into the runner for unit tests.
FUSE_LIB_OBJ := $(filter-out $(BUILD)/obj/fuse/main.o,$(FUSE_OBJ))

# Test tools: tests/tools/kbproxy.c stands alone; kb-soak, kb-hostile (rpc client) and
# noise-vectors (vector runner) link the libraries.
TOOL_BIN := $(BUILD)/tests/kbproxy $(BUILD)/kb-soak $(BUILD)/kb-hostile $(BUILD)/noise-vectors

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

.SECONDARY: $(GEN_C) $(GEN_H)
.PHONY: all product test check restart-loop restart-loop-san fuzz fuzz-run fuzz-bins bench bench-remote bench-write demo install uninstall clean \
	format format-check deps
all: product $(BENCH_BIN) $(TEST_BIN) $(TOOL_BIN)
product: $(PROD_BIN)

deps:
	@sh scripts/install-deps.sh

$(BUILD)/gen/%.pb.c $(BUILD)/gen/%.pb.h: proto/%.proto proto/%.options
	@mkdir -p $(@D)
	cd proto && /usr/bin/python3 /usr/bin/nanopb_generator.py -q -D ../$(BUILD)/gen $*.proto

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_CORE) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/obj/core/%.o: src/core/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_CORE) -c -o $@ $<

$(BUILD)/obj/client/%.o: src/client/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_CLIENT) -c -o $@ $<

$(BUILD)/obj/server/%.o: src/server/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_SERVER) -c -o $@ $<

$(BUILD)/obj/fuse/%.o: fuse/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_CLIENT) $(FUSE_CFLAGS) -Ifuse -c -o $@ $<

$(BUILD)/obj/testlib/%.o: tests/lib/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_CORE) $(JSON_CFLAGS) -Itests/lib -c -o $@ $<

$(CORE_LIB): $(CORE_OBJ)
$(CLIENT_LIB): $(CLIENT_OBJ)
$(SERVER_LIB): $(SERVER_OBJ)
$(CORE_LIB) $(CLIENT_LIB) $(SERVER_LIB):
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/cmd/%.o: src/cmd/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_SERVER) -c -o $@ $<

$(BUILD)/obj/bench/%.o: bench/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_ALL) -c -o $@ $<

$(BUILD)/obj/tools/%.o: tests/tools/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_CLIENT) -Itests/lib -c -o $@ $<

$(BUILD)/keibifsd: $(BUILD)/obj/cmd/keibifsd.o $(SERVER_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/keibifs-keygen: $(BUILD)/obj/cmd/keibifs-keygen.o $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/keibifs: $(FUSE_OBJ) $(CLIENT_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(LIBS)

$(BUILD)/bench-channel: $(BUILD)/obj/bench/bench-channel.o $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bench-server: $(BUILD)/obj/bench/bench-server.o $(CLIENT_LIB) $(SERVER_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/kb-soak: $(BUILD)/obj/tools/kb-soak.o $(CLIENT_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/kb-hostile: $(BUILD)/obj/tools/kb-hostile.o $(BUILD)/obj/testlib/raw_chan.o $(CLIENT_LIB) \
		$(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/noise-vectors: $(BUILD)/obj/tools/noise-vectors.o $(TESTLIB_OBJ) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(JSON_LIBS) $(LIBS)

$(BUILD)/gen/suites.h: $(TEST_SRC)
	@mkdir -p $(@D)
	@{ for n in $(TEST_NAMES); do echo "KB_SUITE($$n)"; done; } > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp

$(BUILD)/obj/tests/%.o: tests/%.c $(GEN_H) $(BUILD)/gen/suites.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_ALL) $(CHECK_CFLAGS) $(FUSE_CFLAGS) -Ifuse -Itests -Itests/lib -c -o $@ $<

$(TEST_BIN): $(TEST_OBJ) $(FUSE_LIB_OBJ) $(TESTLIB_OBJ) $(CLIENT_LIB) $(SERVER_LIB) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(FUSE_LIBS) $(JSON_LIBS) $(LIBS)

$(BUILD)/tests/kbproxy: tests/tools/kbproxy.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# `make test` installs what is missing, builds, and runs the whole suite.
# KB_TESTS=name,name runs a subset.
test: deps
	@$(MAKE) --no-print-directory all
	KB_BUILD=$(abspath $(BUILD)) KB_SRCDIR=$(CURDIR) $(TEST_BIN)

check:
	@$(MAKE) --no-print-directory SANITIZER=address,undefined test

# The restart tests (suites restart, remount) RUNS times in a row (20 by
# default), with the normal build and with make check's.
RUNS ?= 20
restart-loop: deps
	scripts/restart-loop.sh $(RUNS)

restart-loop-san: deps
	SANITIZER=address,undefined scripts/restart-loop.sh $(RUNS)

# Fuzzers: tests/fuzz/fuzz_NAME.c -> build/fuzz/fuzz_NAME (clang libFuzzer).
# Run one: build/fuzz/fuzz_frame -max_total_time=60 tests/fuzz/corpus-frame
fuzz: deps
	@$(MAKE) --no-print-directory FUZZ=1 CFLAGS="-O1 -g" fuzz-bins

fuzz-bins: $(FUZZ_BIN)

# Run every fuzzer for FUZZ_SECONDS (default 60) on its own corpus directory.
FUZZ_SECONDS ?= 60
fuzz-run: fuzz
	@for f in $(FUZZ_BIN); do n=$${f##*/fuzz_}; mkdir -p tests/fuzz/corpus-$$n; \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 tests/fuzz/corpus-$$n \
			2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || exit 1; done

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CLIENT_LIB) $(SERVER_LIB) $(CORE_LIB)
	$(CC) $(CFLAGS) $(INC_ALL) -fsanitize=fuzzer -o $@ $^ $(LIBS)

bench: all
	bash scripts/bench.sh
	bash scripts/bench-remote.sh
	bash scripts/bench-write.sh

# Browsing a remote peer: keibifs, sshfs and rclone through kbproxy at
# +2, +20 and +50 ms RTT (scripts/bench-remote.sh; a few minutes).
bench-remote: all
	bash scripts/bench-remote.sh

# Writing into a remote peer: rsync, git clone, tar x, rm -rf, cp -r and
# make -j2 on keibifs, sshfs and rclone through kbproxy at +2, +20 and
# +50 ms RTT, each timed until its result is on the server's disk
# (scripts/bench-write.sh; about 25 minutes, BENCH_ROW_TIMEOUT cuts rows).
bench-write: all
	bash scripts/bench-write.sh

demo: deps
	@$(MAKE) --no-print-directory all
	bash scripts/demo.sh

UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d

# install needs only the product (no Check, no benchmarks).
install: product
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/keibifs $(BUILD)/keibifs-keygen $(DESTDIR)$(BINDIR)/
	install -m 755 $(BUILD)/keibifsd $(DESTDIR)$(SBINDIR)/
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	if [ -d /lib/systemd/system ] || [ -d /usr/lib/systemd/system ]; then \
		install -d $(DESTDIR)$(UNITDIR) && \
		sed 's|/usr/local/sbin|$(SBINDIR)|' contrib/keibifsd.service \
			> $(DESTDIR)$(UNITDIR)/keibifsd.service && \
		install -d $(DESTDIR)$(SYSUSERSDIR) && \
		install -m 644 contrib/keibifs.sysusers $(DESTDIR)$(SYSUSERSDIR)/keibifs.conf && \
		if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
			systemd-sysusers $(SYSUSERSDIR)/keibifs.conf; fi; fi
	@echo "man pages installed; run mandb for apropos/whatis to find them"

# uninstall removes exactly what install put.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/keibifs $(DESTDIR)$(BINDIR)/keibifs-keygen \
		$(DESTDIR)$(SBINDIR)/keibifsd $(DESTDIR)$(UNITDIR)/keibifsd.service \
		$(DESTDIR)$(SYSUSERSDIR)/keibifs.conf \
		$(patsubst man/%,$(DESTDIR)$(MANDIR)/man1/%,$(wildcard man/*.1)) \
		$(patsubst man/%,$(DESTDIR)$(MANDIR)/man8/%,$(wildcard man/*.8))

FORMAT_SRC = $(wildcard src/*/*.c src/*/*.h fuse/*.c fuse/*.h tests/*.c tests/*.h \
	tests/lib/*.c tests/lib/*.h tests/tools/*.c tests/fuzz/*.c bench/*.c)
format:
	clang-format -i $(FORMAT_SRC)

# Fails (and names the files) when any source drifts from .clang-format.
format-check:
	@bad=$$(for f in $(FORMAT_SRC); do clang-format "$$f" | cmp -s - "$$f" || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "format-check: not formatted (run make format):"; \
		echo "$$bad" | sed 's/^/  /'; exit 1; fi

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
