# dig-relay build. Plain make; every top-level *.c except the entry point is library code
# shared by the binary, the unit tests and the fuzzers, so adding a file needs no edit here.
# Objects, test programs and the binary of each compiler/sanitizer pair live apart under
# build/<cc>[-<sanitizer>][-notls][-nogeoip][-nocluster]/, so switching between builds never needs
# a `make clean`.
#   make                       build ./dig-relay (a copy of build/<cc>/dig-relay)
#   make test                  unit + integration tests, ends with "N passed, N failed"
#   make SANITIZER=address     ASan + UBSan build (in build/<cc>-address/; `make ... test` tests it)
#   make builddir              print this configuration's build directory (for scripts)
#   make windows               cross-compile dig-relay.exe with mingw-w64
#   make test-mips             the linux-mips release artifact and its unit tests under qemu-user
#   make release, test-release static artifacts for every target in dist/, tested (tests/cross.sh)
#   make install               bin/dig-relay and share/man/man1/dig-relay.1 under DESTDIR PREFIX
#   make fuzz FUZZ_SECONDS=N   run every libFuzzer harness (clang)
#   make bench                 benchmarks (bench/README.md); make bench-cluster, the cluster part

CC      ?= cc
VERSION := 0.1.0
WARN    := -Wall -Wextra -Wshadow -Wconversion -Werror
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -DDIG_RELAY_VERSION='"$(VERSION)"' $(WARN) -I. -MMD -MP
LDLIBS  ?=

# Optional libraries are built in when the compiler finds their header and library.
HASH := \#
have_lib = $(shell printf '$(HASH)include <$(1)>\nint main(void){return 0;}\n' | \
	$(CC) -x c - -o /dev/null $(2) >/dev/null 2>&1 && echo 1 || echo 0)

# ---- optional: TLS with BearSSL (tls.c) ------------------------------------------------------
# Built in when BearSSL's header and library are found (Debian: libbearssl-dev); TLS=0 leaves it
# out, TLS=1 fails the build when it is missing. Without it the relay refuses the --tls-* flags.
# Cross builds with their own BearSSL (the release targets build it from Debian's source
# package) pass BEARSSL_CFLAGS (an -isystem include directory) and BEARSSL_LIBS; the Windows
# cross-build takes WINDOWS_TLS (e.g. -DDIG_HAVE_TLS=1 -isystem <bearssl>/inc <libbearssl.a>).
TLS            ?= auto
BEARSSL_CFLAGS ?=
BEARSSL_LIBS   ?= -lbearssl
WINDOWS_TLS    ?=
ifneq ($(TLS),0)
HAVE_BEARSSL := $(call have_lib,bearssl.h,$(BEARSSL_CFLAGS) $(BEARSSL_LIBS))
ifeq ($(HAVE_BEARSSL),1)
CFLAGS += -DDIG_HAVE_TLS=1 $(BEARSSL_CFLAGS)
LDLIBS += $(BEARSSL_LIBS)
else ifeq ($(TLS),1)
$(error TLS=1 but BearSSL was not found with $(CC): install libbearssl-dev)
else
$(warning dig-relay: building without TLS: BearSSL not found (install libbearssl-dev; make TLS=0 silences this))
endif
endif

# ---- optional: geolocation with libmaxminddb (geo.c) ----------------------------------------
# Debian libmaxminddb-dev places peers on the /map peer map; GEOIP=0 leaves it out.
GEOIP ?= $(call have_lib,maxminddb.h,-lmaxminddb)
ifeq ($(GEOIP),1)
CFLAGS  += -DDIG_HAVE_GEOIP=1
LDLIBS  += -lmaxminddb
endif

# ---- optional: clustering through Redis with hiredis (cluster.c, redisloop.c) ----------------
# Debian libhiredis-dev (0.14.1, its async API) lets several instances act as one relay
# (--cluster-redis); CLUSTER=0 leaves it out, CLUSTER=1 fails the build when it is missing.
# Release and Windows builds leave it out (no hiredis for those targets).
CLUSTER ?= auto
ifneq ($(CLUSTER),0)
HAVE_HIREDIS := $(call have_lib,hiredis/async.h,-lhiredis)
ifeq ($(HAVE_HIREDIS),1)
CFLAGS += -DDIG_HAVE_CLUSTER=1
LDLIBS += -lhiredis
else ifeq ($(CLUSTER),1)
$(error CLUSTER=1 but hiredis was not found with $(CC): install libhiredis-dev)
else
$(warning dig-relay: building without cluster support: hiredis not found (install libhiredis-dev; make CLUSTER=0 silences this))
endif
endif

ifeq ($(SANITIZER),address)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

# A build without an optional library lives apart too: the library changes what some objects are.
B        := build/$(notdir $(firstword $(CC)))$(if $(SANITIZER),-$(SANITIZER))$(if $(filter 1,$(HAVE_BEARSSL)),,-notls)$(if $(filter 0,$(GEOIP)),-nogeoip)$(if $(filter 1,$(HAVE_HIREDIS)),,-nocluster)
# The operator pages (web/: HTML, CSS, JavaScript, the land outline) are compiled into the
# binary: build/web/embed, a tool built for the build machine, writes their bytes into
# build/web/assets.c, one file shared by every compiler and target (cross builds included).
WEB_FILES  := $(sort $(wildcard web/*.html web/*.css web/*.js web/*.svg))
WEB_ASSETS := build/web/assets.c
LIB_SRC  := $(filter-out dig-relay.c,$(wildcard *.c)) $(wildcard compat/*.c) $(WEB_ASSETS)
LIB_OBJ  := $(patsubst %.c,$(B)/%.o,$(filter-out $(WEB_ASSETS),$(LIB_SRC))) $(B)/web/assets.o
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst %.c,$(B)/%,$(TEST_SRC))
TEST_SUPPORT := $(patsubst %.c,$(B)/%.o,$(filter-out $(TEST_SRC),$(wildcard tests/*.c)))

all: dig-relay

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

HOST_CC ?= cc
build/web/embed: web/embed.c
	@mkdir -p $(dir $@)
	$(HOST_CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $<
$(WEB_ASSETS): build/web/embed $(WEB_FILES)
	build/web/embed $@ $(WEB_FILES)
$(B)/web/assets.o: $(WEB_ASSETS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/dig-relay: $(B)/dig-relay.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Copied only when it differs, so the top-level binary follows whichever build was made last.
dig-relay: $(B)/dig-relay FORCE
	@cmp -s $< $@ || cp $< $@

builddir:
	@echo $(B)

# The portable poll() backend, also built on Linux so CI runs the integration suite against it.
dig-relay-poll: dig-relay.c $(LIB_SRC) $(wildcard *.h compat/*.h)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -DLOOP_USE_POLL $(LDFLAGS) -o $@ dig-relay.c $(LIB_SRC) $(LDLIBS)

$(B)/tests/test_%: $(B)/tests/test_%.o $(TEST_SUPPORT) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# `make tests/test_relay` builds that one test program of this configuration.
tests/test_%: $(B)/tests/test_% ;

test-bins: $(B)/dig-relay $(TEST_BIN)

test: test-bins
	@DIG_RELAY_BIN=$${DIG_RELAY_BIN:-$(B)/dig-relay} sh tests/run.sh $(TEST_BIN)

# The suite five times in a row while stress-ng keeps every core busy (tests/under-load.sh).
test-under-load: test-bins
	@sh tests/under-load.sh 5

# 32-bit big-endian, as on many home routers: the linux-mips release artifact and its unit tests
# under qemu-user, then the integration suite against it (scripts/release.sh, tests/cross.sh).
test-mips:
	sh scripts/release.sh linux-mips
	bash tests/cross.sh linux-mips

# Windows: compile everything with mingw-w64; compat/ carries every Winsock difference.
MINGW ?= x86_64-w64-mingw32-gcc
windows: dig-relay.exe
dig-relay.exe: dig-relay.c $(LIB_SRC) $(wildcard *.h compat/*.h)
	$(MINGW) -std=c11 -O2 -D__USE_MINGW_ANSI_STDIO=1 -DDIG_RELAY_VERSION='"$(VERSION)"' $(WARN) -I. \
		-o $@ dig-relay.c $(LIB_SRC) $(WINDOWS_TLS) -lws2_32

clean:
	rm -f dig-relay dig-relay-poll dig-relay.exe
	rm -rf build fuzz/bin bench/bin

-include $(wildcard $(B)/*.d $(B)/compat/*.d $(B)/tests/*.d $(B)/web/*.d)

FORCE:

# Keep the objects of test programs between builds (they are intermediates of a pattern chain).
.SECONDARY:

.PHONY: all test test-bins test-mips test-under-load windows clean builddir FORCE

# libFuzzer harnesses: one per decoder, fuzz/fuzz_<name>.c with fuzz/<name>.dict and a seed
# corpus in fuzz/corpus/<name>/. Built with clang; runs each for FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC     := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN     := $(patsubst fuzz/%.c,fuzz/bin/%,$(FUZZ_SRC))
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -DDIG_RELAY_VERSION='"$(VERSION)"'

fuzz/bin/%: fuzz/%.c $(LIB_SRC) $(wildcard *.h)
	@mkdir -p fuzz/bin
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC)

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

.PHONY: fuzz fuzz-build

# Benchmarks (bench/README.md): relay_load drives the relay and redis-server through the same
# pairs; bench/bench.sh runs the matrix and prints the table. The load tool is Linux-only and
# built optimised whatever SANITIZER says: it must never be the bottleneck it measures.
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN)

bench/bin/relay_load: bench/relay_load.c
	@mkdir -p bench/bin
	$(CC) $(BENCH_CFLAGS) $(if $(filter 1,$(HAVE_BEARSSL)),-DDIG_HAVE_TLS=1 $(BEARSSL_CFLAGS)) -o $@ $< \
		$(if $(filter 1,$(HAVE_BEARSSL)),$(BEARSSL_LIBS))

# The storm row's floor: the mandated bytes written by a program that does nothing else.
bench/bin/tcp_floor: bench/tcp_floor.c
	@mkdir -p bench/bin
	$(CC) $(BENCH_CFLAGS) -o $@ $<

# tests/test_bench_smoke.c runs the load tools for a few seconds so they never rot.
test: bench/bin/relay_load bench/bin/tcp_floor

bench: dig-relay dig-relay-poll bench/bin/relay_load bench/bin/tcp_floor
	@bash bench/bench.sh

.PHONY: bench

# STUN benchmark (bench/README.md, "STUN"): bench/bin/stun_load against our relay and coturn,
# side by side in one run. tests/test_stun_udp.c also runs the load tool briefly so it never rots.
bench/bin/stun_load: bench/stun_load.c
	@mkdir -p bench/bin
	$(CC) $(BENCH_CFLAGS) -o $@ $<

test: bench/bin/stun_load

bench-stun: dig-relay bench/bin/stun_load
	@sh bench/bench-stun.sh

bench: bench-stun

.PHONY: bench-stun

# TURN benchmark (bench/README.md, "TURN"): bench/bin/turn_load, built on the relay's own STUN
# codec and hashes, relays ChannelData through our relay and through coturn side by side.
# tests/test_turn_relay.c runs it briefly so it never rots.
bench/bin/turn_load: bench/turn_load.c stun.c hash.c addr.c $(wildcard *.h)
	@mkdir -p bench/bin
	$(CC) $(BENCH_CFLAGS) -I. -o $@ bench/turn_load.c stun.c hash.c addr.c

test: bench/bin/turn_load

bench-turn: dig-relay bench/bin/turn_load bench/bin/stun_load
	@sh bench/bench-turn.sh

bench: bench-turn

.PHONY: bench-turn

# TLS benchmark (bench/README.md, "TLS"): the relay's own TLS against HAProxy terminating TLS in
# front of the plain relay, side by side in one run (needs haproxy and openssl).
bench-tls: dig-relay bench/bin/relay_load
	@bash bench/bench-tls.sh

bench: bench-tls

.PHONY: bench-tls

# Cluster benchmark (bench/README.md, "Cluster"): a relay_message hop across two instances
# sharing Redis against a hop inside one instance, CPU and latency side by side (needs
# redis-server and a relay built with hiredis).
bench-cluster: dig-relay bench/bin/relay_load
	@bash bench/bench-cluster.sh

bench: bench-cluster

.PHONY: bench-cluster

# Release artifacts (scripts/release.sh): static musl binaries for linux-x64, -arm64, -armhf,
# -mips, -mipsel and a static windows-x64.exe in dist/ with SHA256SUMS; test-release runs each
# one's unit tests and the integration suite under qemu-user or wine (tests/cross.sh).
release:
	sh scripts/release.sh

test-release:
	bash tests/cross.sh

version:
	@echo $(VERSION)

.PHONY: release test-release version

# make install PREFIX=/usr/local DESTDIR=: the binary and its man page (dig-relay.1).
PREFIX ?= /usr/local
install: dig-relay
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 dig-relay $(DESTDIR)$(PREFIX)/bin/dig-relay
	install -m 644 dig-relay.1 $(DESTDIR)$(PREFIX)/share/man/man1/dig-relay.1

.PHONY: install

# make docker: the linux-x64 release binary in a scratch image tagged dig-relay:$(VERSION)
# (Dockerfile; needs a running Docker engine). docker-image packs the dist/ binary already built;
# tests/docker.sh runs the image.
docker:
	sh scripts/release.sh linux-x64
	$(MAKE) docker-image

docker-image:
	rm -rf build/docker && mkdir -p build/docker/state
	cp dist/dig-relay-$(VERSION)-linux-x64 build/docker/dig-relay
	docker build -q -t dig-relay:$(VERSION) -f Dockerfile build/docker

.PHONY: install docker docker-image
