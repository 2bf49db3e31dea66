# dupsim — build, test, run, bench.
#
# Every user-facing target first runs tools/bootstrap (installs missing Debian
# packages as root, prints the apt-get line otherwise), then re-enters make so
# that pkg-config is asked only after the libraries are there.

BUILD    ?= build
SANITIZE ?=
CC       ?= cc
CFLAGS   ?= -O2 -g
LDFLAGS  ?=

PKGS := librabbitmq hiredis tokyocabinet inih jansson libmicrohttpd libpq libnetfilter_queue

# Fixed flags live apart from CFLAGS so a user's CFLAGS= can't drop them.
DUPSIM_CFLAGS  = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -MMD -MP -Isim
DUPSIM_LIBS    = -pthread -lm
ifneq ($(SANITIZE),)
DUPSIM_CFLAGS += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
DUPSIM_LIBS   += -fsanitize=$(SANITIZE)
endif

SIM_SRC  := $(filter-out sim/cmd/main.c,$(wildcard sim/*/*.c))
SIM_OBJ  := $(SIM_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/check_*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
BENCH_SRC := $(wildcard tests/bench_*.c)
# `make bench BENCH="proxy dedup"` runs only those (tests/bench_<name>.c); empty: all of them.
BENCH    ?=
BENCHES  := $(if $(BENCH),$(BENCH:%=$(BUILD)/bench_%),$(BENCH_SRC:tests/%.c=$(BUILD)/%))

FUZZ_BUILD   := build-fuzz
FUZZ_TIME    ?= 20
FUZZ_TARGETS := $(patsubst tests/fuzz_%.c,%,$(wildcard tests/fuzz_*.c))

.PHONY: all run test bench asan fuzz soak coverage clean deps \
	_all _run _test _bench _fuzz _soak _coverage

all run test bench fuzz soak coverage: deps
	@$(MAKE) --no-print-directory _$@

deps:
	@tools/bootstrap

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=address,undefined CFLAGS="-O1 -g" _test

_all: $(BUILD)/dupsim

# Filled by the local pkg-config; evaluated only inside the _targets, after
# tools/bootstrap has installed the -dev packages.
_PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
_PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
_CHECK_CFLAGS = $(shell pkg-config --cflags check)
_CHECK_LIBS   = $(shell pkg-config --libs check)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(DUPSIM_CFLAGS) $(_PKG_CFLAGS) $(_CHECK_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libdupsim.a: $(SIM_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/dupsim: $(BUILD)/sim/cmd/main.o $(BUILD)/libdupsim.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(_PKG_LIBS) $(DUPSIM_LIBS)

$(BUILD)/check_dupsim: $(TEST_OBJ) $(BUILD)/libdupsim.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(_CHECK_LIBS) $(_PKG_LIBS) $(DUPSIM_LIBS)

$(BUILD)/bench_%: $(BUILD)/tests/bench_%.o $(BUILD)/libdupsim.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(_PKG_LIBS) $(DUPSIM_LIBS)

# the benchmarks are built (not run) so that an interface change can't leave one broken
_test: $(BUILD)/dupsim $(BUILD)/check_dupsim $(BENCHES)
	tools/test-shards $(abspath $(BUILD)/dupsim) $(BUILD)/check_dupsim
ifeq ($(SANITIZE),)
	@$(MAKE) --no-print-directory _fuzz FUZZ_TIME=$(FUZZ_TIME)
endif

# ten minutes, every fault on: dupsim's memory and open files must stay flat (not in CI)
_soak: $(BUILD)/dupsim
	DUPSIM_BIN=$(BUILD)/dupsim tools/soak

# 25 real runs of two configurations: does the miss-probability interval cover? (not in CI: real runs are random)
_coverage: $(BUILD)/dupsim
	DUPSIM_BIN=$(BUILD)/dupsim tools/coverage

_run: $(BUILD)/dupsim
	$(BUILD)/dupsim run scenarios/default.ini

_bench: $(BUILD)/dupsim $(BENCHES)
	@for b in $(BENCHES); do DUPSIM_BIN=$(abspath $(BUILD)/dupsim) $$b || exit 1; done

# libFuzzer targets: clang, -fsanitize=fuzzer; each runs FUZZ_TIME seconds
# from its seed corpus in tests/corpus/<name>/.
_fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		echo "fuzz $$t: $(FUZZ_TIME)s"; \
		$(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
			$(FUZZ_BUILD)/corpus/$$t tests/corpus/$$t 2>$(FUZZ_BUILD)/fuzz_$$t.log \
			|| { tail -n 40 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

$(FUZZ_BUILD)/fuzz_%: tests/fuzz_%.c $(SIM_SRC)
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Isim $(_PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
		-o $@ $< $(filter $(FUZZ_SRC_$*),$(SIM_SRC)) $(_PKG_LIBS) -lm -pthread

# Which sim/ sources each fuzz target links (keep them I/O-free).
FUZZ_SRC_frame := sim/wire/frame.c
FUZZ_SRC_scenario := sim/core/scenario.c sim/wire/rule.c sim/wire/frame.c sim/core/clock.c sim/core/parse.c sim/core/files.c sim/core/log.c sim/core/rng.c sim/core/net.c

.SECONDARY:

clean:
	rm -rf build build-asan $(FUZZ_BUILD)

-include $(shell find $(sort build build-asan $(BUILD)) -name '*.d' 2>/dev/null)
