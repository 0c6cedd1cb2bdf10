# hvkvp: build, test, install, package.
#   make                 release build: target/$(HOST)/release/hvkvp (static)
#   make test            the whole test suite (what CI runs)
#   make lint            rustfmt check and clippy, warnings are errors
#   make interop         hvkvp beside the real hv_kvp_daemon and cloud-init's
#                        KVP handler, with the figures shown (tests/interop.rs;
#                        packages hyperv-daemons and cloud-init; make test runs
#                        it too, quietly)
#   make bench           every verb's time and peak RSS at 1k, 10k and 100k
#                        records, against reading the pool once and against
#                        libazureinit-kvp where it has the verb (benches/cli.rs;
#                        hyperfine when installed; the peer is built in a
#                        throwaway project under target/, from git or from
#                        BENCH_PEER_SRC=<azure-init>/libazureinit-kvp, and
#                        skipped with a message when it cannot be built)
#   make stress          races and kill -9 trials for a bounded time
#                        (STRESS_SECONDS, default 150; tests/stress.rs)
#   make crash           every crash point of every change, on pools
#                        CRASH_RECORDS (default 200) records larger than
#                        make test's (tests/crashpoints.rs)
#   make fuzz            each fuzz target for FUZZ_SECONDS (default 60), on
#                        stable Rust (cargo-fuzz without sanitizer; fuzz/)
#   make assets          man page and bash/zsh/fish completions in target/assets/,
#                        printed by the binary itself (hvkvp generate ...)
#   make install         binary, man page and completions under $(DESTDIR)$(PREFIX)
#   make uninstall       remove exactly the files install put there
#   make deb             target/debian/*.deb (cargo-deb; installed if missing)
#   make rpm             target/$(HOST)/generate-rpm/*.rpm (cargo-generate-rpm; likewise)
#   make clean           cargo clean
#
# The assets are generated afresh by every `assets`, `install`, `deb` and
# `rpm` from the binary being installed, so they cannot be stale.
#
# EXE is that binary. Left alone it is the release build, and install builds
# it first. Given on the command line (make install EXE=target/debug/hvkvp)
# it is used as it is and nothing is built: tests/install.rs does that to
# stay fast. `deb` and `rpm` always package the release build.

PREFIX  ?= /usr/local
DESTDIR ?=
CARGO   ?= cargo
# The release binary links glibc statically (static-pie): it starts about
# 0.4 ms sooner, most of the cost of a call on a small pool, and has no
# library to go missing. The target is named so that the flag does not
# reach build-time crates (proc macros cannot be static).
HOST    := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC  := RUSTFLAGS="$(RUSTFLAGS) -C target-feature=+crt-static"
RELEASE := $(or $(CARGO_TARGET_DIR),target)/$(HOST)/release/hvkvp
EXE     ?= $(RELEASE)
# Fixed: the package metadata in Cargo.toml names these paths.
ASSETS  := target/assets

BINDIR  := $(DESTDIR)$(PREFIX)/bin
MANDIR  := $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR  := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d

# Build the release binary only when it is the one to be installed.
ifeq ($(EXE),$(RELEASE))
BUILD := build
else
BUILD :=
endif

.PHONY: all build test interop lint bench stress crash fuzz assets install uninstall deb rpm clean

all: build

build:
	$(STATIC) $(CARGO) build --release --locked --target $(HOST)

test:
	$(CARGO) test --locked

interop:
	$(CARGO) test --locked --test interop -- --nocapture --test-threads=1

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --lib --no-default-features -- -D warnings

bench: build
	HVKVP_BIN="$(RELEASE)" $(CARGO) bench --locked --bench cli

FUZZ_SECONDS ?= 60
FUZZ_TARGETS := pool command
fuzz:
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz
	sh fuzz/seed.sh
	for t in $(FUZZ_TARGETS); do \
	  (cd fuzz && $(CARGO) fuzz run --sanitizer none --release $$t -- \
	     -max_total_time=$(FUZZ_SECONDS) -max_len=20480 -print_final_stats=1) || exit 1; \
	done

STRESS_SECONDS ?= 150
stress:
	STRESS_SECONDS=$(STRESS_SECONDS) $(CARGO) test --locked --release --test stress -- --ignored --nocapture

CRASH_RECORDS ?= 200
crash:
	HVKVP_CRASH_RECORDS=$(CRASH_RECORDS) $(CARGO) test --locked --release --test crashpoints -- --nocapture

assets: $(BUILD)
	mkdir -p $(ASSETS)
	"$(EXE)" generate man > $(ASSETS)/hvkvp.1
	"$(EXE)" generate bash > $(ASSETS)/hvkvp.bash
	"$(EXE)" generate zsh > $(ASSETS)/_hvkvp
	"$(EXE)" generate fish > $(ASSETS)/hvkvp.fish

install: $(BUILD) assets
	install -Dm755 "$(EXE)" "$(BINDIR)/hvkvp"
	install -Dm644 $(ASSETS)/hvkvp.1 "$(MANDIR)/hvkvp.1"
	install -Dm644 $(ASSETS)/hvkvp.bash "$(BASHDIR)/hvkvp"
	install -Dm644 $(ASSETS)/_hvkvp "$(ZSHDIR)/_hvkvp"
	install -Dm644 $(ASSETS)/hvkvp.fish "$(FISHDIR)/hvkvp.fish"

uninstall:
	rm -f "$(BINDIR)/hvkvp" "$(MANDIR)/hvkvp.1" "$(BASHDIR)/hvkvp" \
	      "$(ZSHDIR)/_hvkvp" "$(FISHDIR)/hvkvp.fish"

# Packages take their file list from Cargo.toml ([package.metadata.deb],
# [package.metadata.generate-rpm]); the binary is the release build.
deb: build
	$(MAKE) assets EXE="$(RELEASE)"
	$(CARGO) deb --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-deb
	$(CARGO) deb --no-build --locked --target $(HOST)

rpm: build
	$(MAKE) assets EXE="$(RELEASE)"
	$(CARGO) generate-rpm --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-generate-rpm
	$(CARGO) generate-rpm --target $(HOST)

clean:
	$(CARGO) clean
