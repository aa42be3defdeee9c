# ser — build, run, test, install.  Logic lives in Rust and scripts/, not here.
PREFIX ?= /usr/local
CARGO  ?= cargo
SER    := target/release/ser

.PHONY: all build run test test-deps lint install bench clean

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
