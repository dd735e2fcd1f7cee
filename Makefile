# portcullis -- see README.md
#
#   make              build build/portcullis
#   make test         install missing Debian packages, build, run every test
#   make run          the demo: throwaway PostgreSQL, demo upstream, Dify rules
#   make bench        proxy vs nginx vs HAProxy on loopback (figures, not a test)

CC      ?= cc
PKGS    := libevent_core libpq yaml-0.1 openssl libjwt
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wformat=2 -Wno-format-nonliteral -fno-strict-aliasing -pthread \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
BUILD   ?= build

SRC := $(wildcard proxy/*.c rules/*.c policies/*.c)
LIB_SRC := $(filter-out proxy/main.c,$(SRC))
OBJ := $(SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
DEP := $(OBJ:.o=.d)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all clean deps test unit integration run bench check-sanitize fuzz fuzz-run soak image-test

all: $(BUILD)/portcullis

$(BUILD)/portcullis: $(OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libportcullis.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libportcullis.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libportcullis.a $(LDFLAGS) $(LDLIBS) -lcmocka

deps:
	@sh tests/deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(BUILD)/portcullis
	@python3 tests/run_integration.py

test: deps
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory integration

run: deps all
	@python3 deploy/demo/demo.py

clean:
	rm -rf $(BUILD)

-include $(DEP)
