# Makefile — leakyd and leakyctl, with plain GNU make.
#
#   make                 build build/rel/{leakyd,leakyctl}
#   make run             install missing packages, build, run leakyd with etc/leakyd.conf
#   make test            the whole suite: lint, then unit + fuzz corpus replay + man lint +
#                        integration, then all of it again under ASan/UBSan (what CI runs)
#   make check           the suite once, in the current build flavour
#   make SANITIZE=address,undefined ...   any target, sanitized (build/san)
#   make fuzz-smoke      build the libFuzzer targets with clang and run each briefly
#   make lint            clang-format check, cppcheck, banned functions, mandoc -Tlint
#   make bench           tools/bench/*.sh (prints figures; not part of test)

CC      ?= gcc
PYTHON  ?= /usr/bin/python3
SANITIZE ?=
PKGS     = sqlite3 lmdb libsodium libcjson inih

ifeq ($(SANITIZE),)
B       := build/rel
OPT     := -O2 -D_FORTIFY_SOURCE=2
else
B       := build/san
OPT     := -O1 -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
WARN    := -Wall -Wextra -Werror -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
           -Wold-style-definition -Wno-missing-field-initializers
HARDEN  := -fstack-protector-strong -fPIE -fno-strict-aliasing
CFLAGS  ?= -g
ALL_CFLAGS = -std=c11 -D_DEFAULT_SOURCE $(WARN) $(HARDEN) $(OPT) $(CFLAGS) \
	-Isrc -I$(B)/gen $(shell pkg-config --cflags $(PKGS)) -MMD -MP
LDFLAGS_ALL = -pie -Wl,-z,relro,-z,now $(if $(SANITIZE),-fsanitize=$(SANITIZE)) $(LDFLAGS)
LDLIBS_ALL  = $(shell pkg-config --libs $(PKGS)) -lcivetweb -lbearssl -lpthread -lm $(LDLIBS)

LIB_SRC := $(filter-out src/leakyd.c,$(wildcard src/*.c src/util/*.c src/conf/*.c \
	src/store/*.c src/http/*.c src/api/*.c src/auth/*.c src/provider/*.c src/stubs/*.c src/limit/*.c src/quota/*.c \
	src/events/*.c src/saga/*.c src/analytics/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
GEN_SRC := $(B)/gen/schema_sql.c $(B)/gen/openapi_json.c
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(GEN_SRC:.c=.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)

.PHONY: FORCE all run test check unit integration docs-check fuzz-replay fuzz-smoke lint bench \
	deps deps-test clean

all: $(B)/leakyd $(B)/leakyctl

deps:
	@tools/deps.sh build
deps-test:
	@tools/deps.sh test

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The git revision, rewritten only when it changes so objects rebuild then.
$(B)/gen/rev.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define LT_GIT_REV "$(GIT_REV)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:
$(B)/src/leakyd.o $(B)/src/cli/cmd_store.o $(B)/src/cli/leakyctl.o $(B)/src/api/tokens.o: \
	$(B)/gen/rev.h

$(B)/gen/schema_sql.c: schema.sql tools/embed.sh
	@mkdir -p $(dir $@)
	tools/embed.sh lt_schema_sql $< > $@
$(B)/gen/openapi_json.c: src/api/openapi.json tools/embed.sh
	@mkdir -p $(dir $@)
	tools/embed.sh lt_openapi_json $< > $@
$(B)/gen/%.o: $(B)/gen/%.c
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -c $< -o $@

$(B)/libleaky.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/leakyd: $(B)/src/leakyd.o $(B)/libleaky.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(B)/leakyctl: $(CLI_OBJ) $(B)/libleaky.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(B)/tests/%: tests/unit/%.c $(B)/libleaky.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes $(LDFLAGS_ALL) -o $@ $< $(B)/libleaky.a \
		$(LDLIBS_ALL) -lcmocka

# Fuzz targets built as corpus replayers (gcc, sanitizers as configured).
$(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/replay_main.c $(B)/libleaky.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes $(LDFLAGS_ALL) -o $@ $< tests/fuzz/replay_main.c \
		$(B)/libleaky.a $(LDLIBS_ALL)

run: deps all
	./$(B)/leakyd -c etc/leakyd.conf

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t; done

fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for t in $(FUZZ_REPLAY); do n=$$(basename $$t); \
		./$$t tests/fuzz/corpus/$${n#fuzz_}; done

integration: all
	LEAKYD_BIN=$(CURDIR)/$(B)/leakyd LEAKYCTL_BIN=$(CURDIR)/$(B)/leakyctl \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

docs-check: all
	@for m in man/*.[0-9]; do mandoc -Tlint -W warning $$m || exit 1; done
	@echo "mandoc -Tlint: clean"

check: unit fuzz-replay docs-check integration

test: deps-test
	$(MAKE) lint
	$(MAKE) check
	$(MAKE) check SANITIZE=address,undefined

FUZZ_CC ?= clang
fuzz-smoke: deps-test $(GEN_SRC) $(B)/gen/rev.h
	@mkdir -p build/fuzz
	@set -e; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
		$(FUZZ_CC) -std=c11 -D_DEFAULT_SOURCE -g -O1 -Isrc -I$(B)/gen \
		-fsanitize=fuzzer,address,undefined \
		$$(pkg-config --cflags $(PKGS)) -o build/fuzz/$$n $$f \
		$(LIB_SRC) $(GEN_SRC) \
		$(LDLIBS_ALL); \
		mkdir -p build/fuzz/corpus-$$n; \
		build/fuzz/$$n -max_total_time=$${FUZZ_SECONDS:-20} -max_len=4096 \
			build/fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_}; done

lint:
	@clang-format --dry-run --Werror $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c')
	@cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability \
		--suppress=missingIncludeSystem -Isrc src
	@! grep -nE '\b(strcpy|strcat|sprintf|gets|strtok|atoi|atol|rand)\s*\(' \
		$$(git ls-files 'src/*.c' 'src/*.h') || { echo "banned function used"; exit 1; }
	@for m in man/*.[0-9]; do mandoc -Tlint -W warning $$m || exit 1; done
	@echo lint: clean

bench: all
	@for b in tools/bench/*.sh; do echo "== $$b"; sh $$b; done

clean:
	rm -rf build

-include $(wildcard $(B)/src/*.d $(B)/src/*/*.d $(B)/gen/*.d $(B)/tests/*.d $(B)/fuzz/*.d)
