# keibifs - hand-written Makefile (wireguard-tools / redis habits).
#
#   make                 build everything into build/
#   make test            install missing deps, build, run every test (Check)
#   make check           the tests again under ASan+UBSan (build/san/)
#   make fuzz            libFuzzer targets (clang) into build/fuzz/
#   make bench           benchmarks, one table beside sshfs and local limits
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

ifneq ($(SANITIZER),)
BUILD := build/san
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ifneq ($(FUZZ),)
BUILD := build/fuzz
CC := clang
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -DKB_FUZZ=1
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Wno-format-nonliteral
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS ?= -O2 -g
KB_CFLAGS := -std=gnu11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE -pthread \
	-Isrc -I$(BUILD)/gen -MMD -MP
ifeq ($(SANITIZER)$(FUZZ),)
KB_CFLAGS += $(HARDEN)
endif
override CFLAGS += $(KB_CFLAGS)
LDFLAGS += $(SANFLAGS) -pthread -pie -Wl,-z,relro,-z,now

FUSE_CFLAGS := $(shell $(PKG_CONFIG) --cflags fuse3 2>/dev/null)
FUSE_LIBS := $(shell $(PKG_CONFIG) --libs fuse3 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
CRYPTO_LIBS := -lmbedtls -lmbedx509 -lmbedcrypto
ifeq ($(CRYPTO),openssl)
override CFLAGS += -DKB_HAVE_OPENSSL=1
CRYPTO_LIBS += $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null || echo -lcrypto)
endif
NANOPB_LIBS := -lprotobuf-nanopb
LIBS := $(CRYPTO_LIBS) $(NANOPB_LIBS)

# Core library: every src/*.c (no FUSE in it) plus the generated protocol code.
PROTO_SRC := $(wildcard proto/*.proto)
GEN_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb.c,$(PROTO_SRC))
GEN_H := $(GEN_C:.c=.h)
CORE_SRC := $(wildcard src/*.c)
CORE_OBJ := $(patsubst src/%.c,$(BUILD)/obj/src/%.o,$(CORE_SRC)) \
	$(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(GEN_C))
CORE_LIB := $(BUILD)/libkeibifs.a

# Programs: src/cmd/NAME.c -> build/NAME ; fuse/*.c -> build/keibifs
CMD_SRC := $(wildcard src/cmd/*.c)
CMD_BIN := $(patsubst src/cmd/%.c,$(BUILD)/%,$(CMD_SRC))
FUSE_SRC := $(wildcard fuse/*.c)
FUSE_OBJ := $(patsubst fuse/%.c,$(BUILD)/obj/fuse/%.o,$(FUSE_SRC))
FUSE_BIN := $(if $(FUSE_SRC),$(BUILD)/keibifs)

# Tests: tests/test_NAME.c defines `Suite *suite_NAME(void)`; one Check runner.
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_NAMES := $(patsubst tests/test_%.c,%,$(TEST_SRC))
TEST_OBJ := $(patsubst tests/%.c,$(BUILD)/obj/tests/%.o,$(TEST_SRC) tests/runner.c \
	$(wildcard tests/th_*.c))
TEST_BIN := $(BUILD)/tests/runner
# fuse/ objects other than main are linked into the runner for unit tests.
FUSE_LIB_OBJ := $(filter-out $(BUILD)/obj/fuse/main.o,$(FUSE_OBJ))

# Stand-alone test tools (fault proxy...): tests/tools/NAME.c -> build/tests/NAME
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRC))

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

.SECONDARY: $(GEN_C) $(GEN_H)
.PHONY: all test check fuzz fuzz-run fuzz-bins bench demo install uninstall clean format deps
all: $(CORE_LIB) $(CMD_BIN) $(FUSE_BIN) $(TEST_BIN) $(TOOL_BIN)

deps:
	@sh scripts/install-deps.sh

$(BUILD)/gen/%.pb.c $(BUILD)/gen/%.pb.h: proto/%.proto proto/%.options
	@mkdir -p $(@D)
	cd proto && /usr/bin/python3 /usr/bin/nanopb_generator.py -q -D ../$(BUILD)/gen $*.proto

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/obj/src/%.o: src/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/fuse/%.o: fuse/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(FUSE_CFLAGS) -Ifuse -c -o $@ $<

$(CORE_LIB): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/cmd/%.o: src/cmd/%.c $(GEN_H)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/%: $(BUILD)/obj/cmd/%.o $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(CORE_LIB) $(LIBS)

$(BUILD)/keibifs: $(FUSE_OBJ) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $(FUSE_OBJ) $(CORE_LIB) $(FUSE_LIBS) $(LIBS)

$(BUILD)/gen/suites.h: $(TEST_SRC)
	@mkdir -p $(@D)
	@{ for n in $(TEST_NAMES); do echo "KB_SUITE($$n)"; done; } > $@.tmp
	@cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp

$(BUILD)/obj/tests/%.o: tests/%.c $(GEN_H) $(BUILD)/gen/suites.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(FUSE_CFLAGS) -Ifuse -Itests -c -o $@ $<

$(TEST_BIN): $(TEST_OBJ) $(FUSE_LIB_OBJ) $(CORE_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(FUSE_LIB_OBJ) $(CORE_LIB) $(CHECK_LIBS) \
		$(FUSE_LIBS) $(LIBS)

$(BUILD)/tests/%: tests/tools/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# `make test` installs what is missing, builds, and runs the whole suite.
# KB_TESTS=name,name runs a subset.
test: deps
	@$(MAKE) --no-print-directory all
	KB_BUILD=$(abspath $(BUILD)) KB_SRCDIR=$(CURDIR) $(TEST_BIN)

check:
	@$(MAKE) --no-print-directory SANITIZER=address,undefined test

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

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_LIB)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(CORE_LIB) $(LIBS)

bench: all
	bash scripts/bench.sh

demo: deps
	@$(MAKE) --no-print-directory all
	bash scripts/demo.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)/sbin \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/keibifs $(BUILD)/keibifs-keygen $(DESTDIR)$(BINDIR)/
	install -m 755 $(BUILD)/keibifsd $(DESTDIR)$(SBINDIR)/
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	if [ -d /lib/systemd/system ] || [ -d /usr/lib/systemd/system ]; then \
		install -d $(DESTDIR)/lib/systemd/system && \
		sed 's|/usr/local/sbin|$(SBINDIR)|' contrib/keibifsd.service \
			> $(DESTDIR)/lib/systemd/system/keibifsd.service; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/keibifs $(DESTDIR)$(BINDIR)/keibifs-keygen \
		$(DESTDIR)$(SBINDIR)/keibifsd

format:
	clang-format -i src/*.c src/*.h src/cmd/*.c fuse/*.c fuse/*.h tests/*.c tests/*.h

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
