# portcullis -- see README.md
#
#   make              build build/portcullis
#   make test         install missing Debian packages, build, run every test
#   make run          the demo: throwaway PostgreSQL, demo upstream, Dify rules
#   make bench        proxy vs nginx vs HAProxy on loopback (figures, not a test)
#   make image-test   build the container image with podman and check it end to end
#   make flake-hunt   the integration suite RUNS times (5) with every core loaded
#   make deploy-test  the Dify compose drop-in against Dify's own nginx and compose files
#   make observability promtool checks of deploy/observability against the live binary
#   make faults       network faults and database failover in network namespaces (root)

CC      ?= cc
PKGS    := libevent_core libpq libmariadb yaml-0.1 openssl libjwt
# CFLAGS is the optimisation/debug/sanitizer part and may be overridden on
# the command line (make CFLAGS=...); the rest is always added.
CFLAGS  ?= -O2 -g
PC_CFLAGS = $(CFLAGS) -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wformat=2 -Wno-format-nonliteral \
           -fno-strict-aliasing -pthread $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
BUILD   ?= build

SRC := $(wildcard lib/*.c policies/*.c rules/*.c proxy/*.c)
LIB_SRC := $(filter-out proxy/main.c,$(SRC))
OBJ := $(SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
DEP := $(OBJ:.o=.d)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all clean deps deps-bench test test-run unit unit-bins integration run bench check-sanitize fuzz fuzz-run \
        soak image-test flake-hunt tools-test deploy-test check-layers check-tsan observability

all: $(BUILD)/portcullis

$(BUILD)/portcullis: $(OBJ)
	$(CC) $(PC_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(PC_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libportcullis.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libportcullis.a
	@mkdir -p $(dir $@)
	$(CC) $(PC_CFLAGS) -o $@ $< $(BUILD)/libportcullis.a $(LDFLAGS) $(LDLIBS) -lcmocka

deps:
	@sh tests/deps.sh

unit-bins: $(UNIT_BIN)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(BUILD)/portcullis
	@python3 tests/run_integration.py

# deploy/observability: promtool check/test rules, the dashboard's queries,
# promtool check metrics on a live scrape, every queried metric exported
observability: deps
	@$(MAKE) --no-print-directory all
	@python3 tests/observability/test_observability.py

# deps, build, then every test phase (tests/run_tests.py), ending with one
# line for the whole run: "N passed, M failed"
test: deps
	@$(MAKE) --no-print-directory test-run

test-run:
	@echo "== build"
	@$(MAKE) --no-print-directory all unit-bins
	@python3 tests/run_tests.py --build $(BUILD)

# the direction of dependency (lib <- policies <- rules <- proxy), by
# includes and by the symbols each layer's objects use
check-layers: all
	@python3 tests/check_layers.py --self-test
	@python3 tests/check_layers.py --build $(BUILD)

RUNS ?= 5
flake-hunt: all
	@python3 tests/flake_hunt.py --runs $(RUNS)

# tools/dify-routes.py: its Dify-history tests run when the Dify mirror is
# present (DIFY_GIT), and are skipped, saying so, when it is not
tools-test:
	@python3 -m unittest discover -s tests/tools -p 'test_*.py' -v

# Dify's templates and compose files are read from a Dify git repository
# ($$DIFY_REPO); without one every deploy test is skipped and says why.
deploy-test: $(BUILD)/portcullis
	@PORTCULLIS_BIN=$(CURDIR)/$(BUILD)/portcullis python3 tests/deploy/test_dropin.py

run: deps all
	@python3 deploy/demo/demo.py

deps-bench:
	@sh tests/deps.sh bench

bench: deps-bench all
	@python3 tests/bench/bench.py

# The integration suite with the proxy under valgrind's memcheck: every
# proxy is stopped with SIGTERM and its report must show no error and no
# definitely or indirectly lost memory (tests/valgrind.supp: glibc only).
check-valgrind: deps all
	@PC_VALGRIND=1 python3 tests/run_integration.py test_proxy_core test_identity test_policies \
	    test_operations test_dify_pack test_dify_access test_db_hedging test_db_addresses

# One million mixed requests, PostgreSQL and the upstream restarted in the
# middle: no crash, no wrong decision, flat RSS, descriptors back to baseline.
soak: deps all
	@python3 tests/soak/soak.py

# The whole suite against an ASan+UBSan build (build/san). Any sanitizer
# report aborts the proxy (the test that drove it fails) and is also
# collected from build/san/reports, which must stay empty.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
check-sanitize: deps
	@$(MAKE) --no-print-directory BUILD=build/san CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all unit
	@rm -rf build/san/reports && mkdir -p build/san/reports
	@PORTCULLIS_BIN=$(CURDIR)/build/san/portcullis \
	 ASAN_OPTIONS=abort_on_error=1:detect_leaks=0:log_path=$(CURDIR)/build/san/reports/asan \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(CURDIR)/build/san/reports/ubsan \
	 python3 tests/run_integration.py
	@if ls build/san/reports/* >/dev/null 2>&1; then echo "sanitizer reports:"; cat build/san/reports/*; exit 1; fi
	@echo "check-sanitize: no sanitizer reports"

# The integration suite against a ThreadSanitizer build (build/tsan); it
# includes a reload storm with /metrics scraped throughout
# (test_operations.TestReloadStorm). Any report fails the target.
TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
check-tsan: deps
	@$(MAKE) --no-print-directory BUILD=build/tsan CFLAGS="$(TSAN_FLAGS)" LDFLAGS="-fsanitize=thread" all
	@rm -rf build/tsan/reports && mkdir -p build/tsan/reports
	@PORTCULLIS_BIN=$(CURDIR)/build/tsan/portcullis \
	 TSAN_OPTIONS=halt_on_error=0:second_deadlock_stack=1:log_path=$(CURDIR)/build/tsan/reports/tsan \
	 python3 tests/run_integration.py
	@if ls build/tsan/reports/* >/dev/null 2>&1; then echo "ThreadSanitizer reports:"; cat build/tsan/reports/*; exit 1; fi
	@echo "check-tsan: no ThreadSanitizer reports"

clean:
	rm -rf $(BUILD)

-include $(DEP)

# ---- fuzzing (libFuzzer; see tests/fuzz/) ----
#
#   make fuzz                       build build/fuzz/<target> for every target
#   make fuzz-run FUZZ_SECONDS=60   run each target in turn for FUZZ_SECONDS on
#                                   one core; fails when any target finds a crash
#
# The library is compiled again with the fuzzing flags into build/fuzz/obj.
# New corpus entries go to build/fuzz/corpus/<target>; the committed seeds in
# tests/fuzz/corpus/<target> are only read. Crashes land in
# build/fuzz/artifacts/<target>/.

FUZZ_CC       ?= clang
FUZZ_DIR      := $(BUILD)/fuzz
FUZZ_OBJDIR   := $(FUZZ_DIR)/obj
FUZZ_SAN      := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   := -g -O1 $(FUZZ_SAN) -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wformat=2 \
                 -Wno-format-nonliteral -fno-strict-aliasing -pthread \
                 $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
FUZZ_TARGETS  := http_request canonical_path token config
FUZZ_BIN      := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)
FUZZ_LIB_OBJ  := $(LIB_SRC:%.c=$(FUZZ_OBJDIR)/%.o)
FUZZ_SECONDS  ?= 60
# one process, one core: the machine is shared
FUZZ_FLAGS    ?= -workers=1 -jobs=1
# fuzz_config: file reads made deterministic (see fuzz_config.c); loading
# itself never asks DNS
FUZZ_LDFLAGS_config := -Wl,--wrap=fopen

.PHONY: fuzz-build

fuzz:
	@sh tests/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build

fuzz-build: $(FUZZ_BIN)

$(FUZZ_OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/libportcullis.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_DIR)/libportcullis.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_DIR)/libportcullis.a $(FUZZ_LDFLAGS_$*) $(FUZZ_LDLIBS)

# Each target runs alone for FUZZ_SECONDS. With -jobs, libFuzzer writes the
# log to build/fuzz/logs/<target>/fuzz-0.log and prints it when the job ends.
# A run fails when the target exits with an error or leaves a new crash,
# leak, timeout or oom file in build/fuzz/artifacts/<target>/.
fuzz-run: fuzz
	@set -e; fail=""; \
	for t in $(FUZZ_TARGETS); do \
	    corpus=$(abspath $(FUZZ_DIR))/corpus/$$t; art=$(abspath $(FUZZ_DIR))/artifacts/$$t; \
	    logs=$(abspath $(FUZZ_DIR))/logs/$$t; \
	    mkdir -p $$corpus $$art $$logs; rm -f $$logs/fuzz-*.log; touch $$logs/.start; \
	    dict=""; case $$t in http_request|canonical_path) dict="-dict=$(CURDIR)/tests/fuzz/http.dict";; esac; \
	    echo "== fuzz $$t: $(FUZZ_SECONDS)s"; \
	    rc=0; (cd $$logs && $(abspath $(FUZZ_DIR))/$$t $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) \
	        -timeout=25 -print_final_stats=1 -artifact_prefix=$$art/ $$dict \
	        $$corpus $(CURDIR)/tests/fuzz/corpus/$$t) || rc=$$?; \
	    crashes=$$(find $$art -type f -newer $$logs/.start \( -name 'crash-*' -o -name 'leak-*' \
	        -o -name 'timeout-*' -o -name 'oom-*' \) | tr '\n' ' '); \
	    if [ $$rc -ne 0 ] || [ -n "$$crashes" ]; then \
	        echo "== fuzz $$t: FAILED (exit $$rc) $$crashes"; fail="$$fail $$t"; \
	    else echo "== fuzz $$t: ok"; fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz-run: findings in:$$fail (see $(abspath $(FUZZ_DIR))/artifacts)"; exit 1; fi

-include $(FUZZ_LIB_OBJ:.o=.d)

# the container image, built with podman and checked end to end (see tests/image/)
image-test: deps
	@bash tests/image/image_test.sh

# Network faults (tests/faults/): portcullis, PostgreSQL and the upstream in
# their own network namespaces behind a router namespace; black holes,
# resets, latency, stalls, flapping, partitions mid-stream, upstream faults
# and database failover. Needs root. faults-short is the CI version (under
# 5 minutes).
.PHONY: faults faults-short
faults:
	@sh tests/deps.sh faults
	@$(MAKE) --no-print-directory all
	@rc=0; python3 tests/faults/bench.py || rc=1; python3 tests/faults/failover.py || rc=1; exit $$rc

faults-short:
	@sh tests/deps.sh faults
	@$(MAKE) --no-print-directory all
	@rc=0; python3 tests/faults/bench.py --short || rc=1; python3 tests/faults/failover.py --short || rc=1; exit $$rc
