# juki-gateway: build, test, run.  `make run` and `make test` install what
# a fresh Debian 12 machine is missing first.

SHELL       := /bin/bash
BUILD       := $(CURDIR)/build
NGINX_SRC   := /usr/share/nginx/src
MODULE      := $(BUILD)/ngx_http_juki_module.so
JUKICTL     := $(BUILD)/jukictl
SRCS        := config $(wildcard src/*.c src/*.h)
MODULE_CFLAGS := -O2 -g -Wall -Wextra -Werror -fstack-protector-strong \
                 -D_FORTIFY_SOURCE=2

.PHONY: all deps module jukictl test test-valgrind test-hup run stop \
        bench bench-flood faults invariant fuzz fuzz-ci clean

all: module jukictl

deps:
	@scripts/deps.sh build

module: deps $(MODULE)

$(BUILD)/nginx/objs/Makefile: config Makefile
	@rm -rf $(BUILD)/nginx && mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && source ./conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" \
	       --with-cc-opt="$(MODULE_CFLAGS)" \
	       --add-dynamic-module=$(CURDIR) > $(BUILD)/configure.log 2>&1 \
	    || { tail -20 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/objs/Makefile $(SRCS)
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	@# a new file, renamed over the old: a running nginx keeps its mapping
	install -m 755 $(BUILD)/nginx/objs/ngx_http_juki_module.so $@.tmp
	mv -f $@.tmp $@

jukictl: deps
	$(MAKE) -C jukictl OUT=$(BUILD)

test: all
	@scripts/deps.sh test
	scripts/test.sh

test-valgrind: all
	@scripts/deps.sh test
	TEST_NGINX_USE_VALGRIND=1 TEST_NGINX_TIMEOUT=10 scripts/test.sh

test-hup: all
	@scripts/deps.sh test
	TEST_NGINX_USE_HUP=1 scripts/test.sh

run: all
	@scripts/deps.sh run
	JUKI_MODULE=$(MODULE) JUKICTL=$(JUKICTL) scripts/run.sh

stop:
	scripts/stop.sh

bench: module
	@scripts/deps.sh bench
	JUKI_MODULE=$(MODULE) bench/run.sh

# refusals from an unmapped certificate flood the gateway while an agency's
# traffic runs: the agency's served rate and the records the flood added
bench-flood: module
	@scripts/deps.sh bench
	JUKI_MODULE=$(MODULE) bench/flood.sh

faults: module
	@scripts/deps.sh bench
	JUKI_MODULE=$(MODULE) bench/faults.sh

invariant: module
	@scripts/deps.sh bench
	JUKI_MODULE=$(MODULE) bench/invariant.sh

# libFuzzer targets of every parser that sees outside input (fuzz/); every
# finding so far is fixed in src/, so none is tolerated (KNOWN=)
FUZZ_SECONDS ?= 60

fuzz: deps
	@scripts/deps.sh fuzz
	$(MAKE) -C fuzz regress run KNOWN= FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-ci: deps
	@scripts/deps.sh fuzz
	$(MAKE) -C fuzz ci KNOWN= FUZZ_SECONDS=10

clean:
	rm -rf $(BUILD) t/servroot
	$(MAKE) -C jukictl clean
