# ser — build, run, test, install.  Logic lives in Rust and scripts/, not here.
PREFIX ?= /usr/local
CARGO  ?= cargo
SER    ?= target/release/ser
SERCTL ?= target/release/serctl

# Install layout (SER 0.9's: binaries in sbin, the config in etc/ser).
# `make install DESTDIR=/tmp/pkg PREFIX=/usr` stages a package tree.
SBINDIR     ?= $(PREFIX)/sbin
SYSCONFDIR  ?= $(PREFIX)/etc
CFGDIR      ?= $(SYSCONFDIR)/ser
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SER_USER    ?= ser
SER_GROUP   ?= ser
STRIP       ?= strip
INSTALL     ?= install

.PHONY: all build run test test-deps lint install install-files install-user \
	uninstall bench clean fuzz

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

# Builds, then installs. install-files installs what is built (SER=,
# SERCTL= name other binaries) without running cargo.
install: build
	$(MAKE) install-files

# ser and serctl stripped (release builds carry debug info: 15 MB to
# 4 MB); ser.cfg only when there is none, so an edited one survives an
# upgrade; the man pages; the systemd unit, with this layout's paths.
install-files:
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(CFGDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $(SER) $(DESTDIR)$(SBINDIR)/ser
	$(INSTALL) -m 755 $(SERCTL) $(DESTDIR)$(SBINDIR)/serctl
	$(STRIP) $(DESTDIR)$(SBINDIR)/ser $(DESTDIR)$(SBINDIR)/serctl
	[ -e $(DESTDIR)$(CFGDIR)/ser.cfg ] || \
		$(INSTALL) -m 644 ser.cfg.example $(DESTDIR)$(CFGDIR)/ser.cfg
	$(INSTALL) -m 644 man/ser.8 man/serctl.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 man/ser.cfg.5 $(DESTDIR)$(MANDIR)/man5/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@CFGDIR@|$(CFGDIR)|g' \
		-e 's|@SER_USER@|$(SER_USER)|g' \
		-e 's|@SER_GROUP@|$(SER_GROUP)|g' dist/ser.service.in \
		> $(DESTDIR)$(UNITDIR)/ser.service
	chmod 644 $(DESTDIR)$(UNITDIR)/ser.service

# Removes what install-files put in place. ser.cfg goes only while it is
# still the example unchanged; an edited one stays (and so does its
# directory). The ser user stays too: files may still belong to it.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/ser $(DESTDIR)$(SBINDIR)/serctl
	rm -f $(DESTDIR)$(MANDIR)/man8/ser.8 $(DESTDIR)$(MANDIR)/man8/serctl.8
	rm -f $(DESTDIR)$(MANDIR)/man5/ser.cfg.5
	rm -f $(DESTDIR)$(UNITDIR)/ser.service
	if cmp -s ser.cfg.example $(DESTDIR)$(CFGDIR)/ser.cfg; then \
		rm -f $(DESTDIR)$(CFGDIR)/ser.cfg; fi
	rmdir $(DESTDIR)$(CFGDIR) 2>/dev/null || true

# The system user the unit runs ser as (once, as root; not part of
# install, which may run unprivileged into a DESTDIR).
install-user:
	@if getent passwd $(SER_USER) >/dev/null; then \
		echo "user $(SER_USER) exists"; \
	elif command -v useradd >/dev/null; then \
		useradd --system --user-group --no-create-home --home-dir / \
			--shell /usr/sbin/nologin --comment "SIP Express Router" $(SER_USER); \
	else \
		adduser --system --group --no-create-home --home / \
			--shell /usr/sbin/nologin $(SER_USER); \
	fi

bench: build
	scripts/bench

clean:
	$(CARGO) clean
