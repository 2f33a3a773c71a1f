# polygate - protocol gateway with an embedded MQTT broker core.
#
#   make          build build/polygate and build/libpolygate.a
#   make run      install missing packages, build, start with config/polygate.conf
#   make test     install, build, run unit + end-to-end tests, then again under ASan+UBSan
#   make bench    side-by-side benchmark against mosquitto
#   make fuzz     libFuzzer targets (clang)
#   make format   clang-format every C file

BUILD    ?= build
CC       ?= cc
OPT      ?= -O2 -g
SAN      ?=
PKGS     := libwebsockets libconfig
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS_ALL = -std=gnu11 $(OPT) $(SAN) $(WARN) -I. $(shell pkg-config --cflags $(PKGS)) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(shell pkg-config --libs $(PKGS)) -lev -lssl -lcrypto -lpthread -lm
PY       := /usr/bin/python3

LIB_SRCS  := $(sort $(wildcard broker/*.c adapters/*.c adapters/*/*.c gateway/*.c))
LIB_SRCS  := $(filter-out gateway/main.c,$(LIB_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
EXAMPLES  := $(BUILD)/examples/embed $(BUILD)/examples/mqttsn-sensor

# npm packages, never committed: MQTT.js for the browser example (served by the
# WebSocket listener from examples/web) and the browser test's driver.
WEB_MODULES  := examples/web/node_modules/.package-lock.json
TEST_MODULES := tests/browser/node_modules/.package-lock.json
NPM_CI       := npm ci --no-audit --no-fund --loglevel=error

.PHONY: all run test unit e2e asan-test bench fuzz fuzz-build format clean deps deps-test examples
all: $(BUILD)/polygate $(BUILD)/libpolygate.a examples $(WEB_MODULES)

$(WEB_MODULES): examples/web/package.json examples/web/package-lock.json
	$(NPM_CI) --prefix examples/web
	@touch $@

$(TEST_MODULES): tests/browser/package.json tests/browser/package-lock.json
	$(NPM_CI) --prefix tests/browser
	@touch $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libpolygate.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/polygate: $(BUILD)/gateway/main.o $(BUILD)/libpolygate.a
	$(CC) $(OPT) $(SAN) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libpolygate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libpolygate.a $(LDLIBS_ALL) -lcmocka

$(BUILD)/examples/embed: examples/embed/embed.c $(BUILD)/libpolygate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libpolygate.a $(LDLIBS_ALL)

# A device's program: libc and POSIX sockets only, none of polygate's code or flags.
$(BUILD)/examples/mqttsn-sensor: examples/mqttsn-sensor/sensor.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) $(SAN) -Wall -Wextra -Werror -Wshadow -o $@ $<

examples: $(EXAMPLES)

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/polygate -c config/polygate.conf

# cmocka prints its summary on stderr and exits with the failure count.
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

e2e: $(BUILD)/polygate $(EXAMPLES) $(WEB_MODULES) $(TEST_MODULES)
	POLYGATE_BIN=$(abspath $(BUILD)/polygate) POLYGATE_EXAMPLES=$(abspath $(BUILD)/examples) \
	  $(PY) -m pytest -q -p no:cacheprovider tests/e2e

# The sanitizer stage: the same suites against an ASan+UBSan build.
asan-test:
	$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g" CC=clang \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  unit e2e

test: deps-test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory asan-test
	@$(MAKE) --no-print-directory fuzz FUZZ_SECS=15

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C tests/bench BUILD=$(abspath $(BUILD))/bench
	tests/bench/run.sh $(abspath $(BUILD))

# libFuzzer targets: each tests/fuzz/fuzz_X.c links the library objects it needs.
FUZZ_SECS ?= 60
FUZZ_CFLAGS = -std=gnu11 -g -O1 -I. -fsanitize=fuzzer,address,undefined
FUZZ_BINS := build-fuzz/fuzz_codec build-fuzz/fuzz_trie build-fuzz/fuzz_mqtt_conn build-fuzz/fuzz_files \
             build-fuzz/fuzz_sn_gw build-fuzz/fuzz_sn_codec
build-fuzz/fuzz_codec: tests/fuzz/fuzz_codec.c $(wildcard adapters/mqtt/codec*.c)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^
build-fuzz/fuzz_trie: tests/fuzz/fuzz_trie.c broker/topic_tree.c broker/trie.c broker/retain.c
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^
FUZZ_LIB_SRCS := $(filter-out gateway/polygate.c gateway/auth_http.c gateway/http_post.c adapters/mqtt/mqtt_lws.c adapters/mqtt/mqtt_ws.c adapters/mqttsn/sn_lws.c gateway/sn_group.c gateway/config.c,$(LIB_SRCS))
build-fuzz/fuzz_mqtt_conn: tests/fuzz/fuzz_mqtt_conn.c $(FUZZ_LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^ -lssl -lcrypto
build-fuzz/fuzz_sn_codec: tests/fuzz/fuzz_sn_codec.c adapters/mqttsn/sn_codec.c
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^
build-fuzz/fuzz_sn_gw: tests/fuzz/fuzz_sn_gw.c $(FUZZ_LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^ -lssl -lcrypto
build-fuzz/fuzz_files: tests/fuzz/fuzz_files.c broker/passwd.c broker/acl.c broker/trie.c broker/topic_tree.c gateway/config.c
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $^ -lconfig -lcrypto
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); echo "== $$f ($(FUZZ_SECS) s)"; \
	  mkdir -p build-fuzz/corpus-$$n; \
	  if ! LSAN_OPTIONS=suppressions=tests/fuzz/lsan.supp $$f -max_total_time=$(FUZZ_SECS) \
	       -print_final_stats=0 build-fuzz/corpus-$$n $$(ls -d tests/fuzz/corpus/$${n#fuzz_} 2>/dev/null) \
	       > build-fuzz/$$n.log 2>&1; then tail -40 build-fuzz/$$n.log; exit 1; fi; \
	  grep -E "^Done" build-fuzz/$$n.log; done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz examples/web/node_modules tests/browser/node_modules

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
