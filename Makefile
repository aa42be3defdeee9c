# ser — build, run, test, install.  Logic lives in Rust and scripts/, not here.
PREFIX ?= /usr/local
CARGO  ?= cargo
SER    := target/release/ser

.PHONY: all build run test test-deps lint install bench clean fuzz

all: build

build:
	$(CARGO) build --release --workspace --bins

# Foreground, logging to stderr, on 127.0.0.1:5060 with /tmp/ser_fifo.
run: build
	$(SER) -f ser.cfg.example -DD -E

# Installs the SIP test peers (sipp, sipsak) when missing, then runs every test.
test: test-deps build
	$(CARGO) test --release --workspace
	scripts/bench --smoke --no-build

# Formatting and clippy, warnings as errors (CI runs this before the tests).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# Each cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_TIME seconds, one at
# a time, on nightly. New inputs grow fuzz/work/<target> (the seeds in
# fuzz/corpus/ stay as they are); findings land in fuzz/artifacts/<target>/.
# FUZZ_TARGETS narrows the list; FUZZ_ARGS passes more libFuzzer flags.
FUZZ_TIME    ?= 600
FUZZ_TARGETS ?= $(basename $(notdir $(wildcard fuzz/fuzz_targets/*.rs)))
FUZZ_ARGS    ?=
fuzz:
	@$(CARGO) +nightly fuzz --version >/dev/null 2>&1 || \
	  { echo "make fuzz needs nightly Rust and cargo-fuzz (cargo install cargo-fuzz)"; exit 1; }
	$(CARGO) +nightly fuzz build -O
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/work/$$t fuzz/artifacts/$$t; \
	  echo "== fuzz $$t for $(FUZZ_TIME) s"; \
	  $(CARGO) +nightly fuzz run -O $$t fuzz/work/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_TIME) -artifact_prefix=fuzz/artifacts/$$t/ $(FUZZ_ARGS); \
	done

test-deps:
	@scripts/ensure-test-deps

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/etc/ser
	install -m 755 $(SER) $(DESTDIR)$(PREFIX)/bin/ser
	[ -e $(DESTDIR)$(PREFIX)/etc/ser/ser.cfg ] || install -m 644 ser.cfg.example $(DESTDIR)$(PREFIX)/etc/ser/ser.cfg

bench: build
	scripts/bench

clean:
	$(CARGO) clean
