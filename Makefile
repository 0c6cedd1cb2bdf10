# hvkvp: build, test, install, package.
#   make                 release build: target/release/hvkvp
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
#   make assets          in target/assets/: man page and bash/zsh/fish
#                        completions, printed by the binary itself (hvkvp
#                        generate ...); the packages' copyright, changelog
#                        and rpm spec (.packaging/files.sh)
#   make install         binary, man page and completions under $(DESTDIR)$(PREFIX);
#                        builds only if there is no binary yet, so that
#                        `sudo make install` after `make` needs no cargo
#   make uninstall       remove the files install put there, and the
#                        directories it created, once empty
#   make deb             target/debian/*.deb (cargo-deb; installed if missing)
#   make rpm             target/rpmbuild/RPMS/*/*.rpm (rpmbuild)
#   make package-check   make deb and rpm, then lintian and rpmlint on them
#   make clean           cargo clean
#
# The man page and completions are generated afresh by every `assets`,
# `install`, `deb` and `rpm` from the binary being installed, so they
# cannot be stale.
#
# EXE is that binary. Left alone it is the release build, built first if it
# is not there. Given on the command line (make install
# EXE=target/debug/hvkvp) it is used as it is and nothing is built:
# tests/install.rs does that to stay fast. `deb` and `rpm` always build and
# package the release build.

PREFIX  ?= /usr/local
DESTDIR ?=
CARGO   ?= cargo
# Where `make` leaves the release binary. No --target and no `rustc -vV`:
# `sudo make install` runs with sudo's PATH (secure_path), which has
# neither cargo nor rustc.
RELEASE := $(or $(CARGO_TARGET_DIR),target)/release/hvkvp
EXE     ?= $(RELEASE)
# Fixed: the package metadata in Cargo.toml names these paths.
ASSETS  := target/assets

BINDIR  := $(DESTDIR)$(PREFIX)/bin
MANDIR  := $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR  := $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
# Every directory install may create under $(DESTDIR)$(PREFIX), each
# before the one holding it ("." is PREFIX itself), and the file in which
# install lists those it did create: uninstall removes them, once empty,
# and never one that was there before.
DIRS    := share/hvkvp share/fish/vendor_completions.d share/fish \
           share/zsh/site-functions share/zsh \
           share/bash-completion/completions share/bash-completion \
           share/man/man1 share/man share bin .
CREATED := share/hvkvp/created-dirs

# $(call generate,DIR): the man page and the completions, printed by $(EXE).
generate = mkdir -p $(1) && \
	"$(EXE)" generate man > $(1)/hvkvp.1 && \
	"$(EXE)" generate bash > $(1)/hvkvp.bash && \
	"$(EXE)" generate zsh > $(1)/_hvkvp && \
	"$(EXE)" generate fish > $(1)/hvkvp.fish

.PHONY: all build test interop lint bench stress crash fuzz assets install uninstall deb rpm package-check clean

all: build

build:
	$(CARGO) build --release --locked

# install builds only when there is no binary yet: after `make`, `sudo make
# install` needs neither cargo nor rustc.
$(RELEASE):
	@command -v $(CARGO) >/dev/null || { \
	  echo "make: no $@ to install, and no $(CARGO) on PATH to build it:" \
	       "run \`make\` first (as the user who has Rust), or name the" \
	       "binary built with EXE=FILE or its CARGO_TARGET_DIR=DIR" >&2; \
	  exit 2; }
	$(CARGO) build --release --locked

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

# What the packages ship besides the binary: the man page and completions,
# and the copyright, changelog and rpm spec (.packaging/files.sh).
assets: $(EXE)
	$(call generate,$(ASSETS))
	sh .packaging/files.sh $(ASSETS)

# Generated into a temporary directory: `sudo make install` leaves nothing
# owned by root in the build tree.
install: $(EXE)
	@set -e; root='$(DESTDIR)$(PREFIX)'; \
	made=$$(for d in $(DIRS); do [ -d "$$root/$$d" ] || echo "$$d"; done); \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call generate,$$tmp); \
	run() { echo "$$*"; "$$@"; }; \
	run install -Dm755 "$(EXE)" "$(BINDIR)/hvkvp"; \
	run install -Dm644 "$$tmp/hvkvp.1" "$(MANDIR)/hvkvp.1"; \
	run install -Dm644 "$$tmp/hvkvp.bash" "$(BASHDIR)/hvkvp"; \
	run install -Dm644 "$$tmp/_hvkvp" "$(ZSHDIR)/_hvkvp"; \
	run install -Dm644 "$$tmp/hvkvp.fish" "$(FISHDIR)/hvkvp.fish"; \
	{ cat "$$root/$(CREATED)" 2>/dev/null || true; \
	  for d in $$made; do echo "$$d"; done; } | sort -u > "$$tmp/created"; \
	run install -Dm644 "$$tmp/created" "$$root/$(CREATED)"

uninstall:
	rm -f "$(BINDIR)/hvkvp" "$(MANDIR)/hvkvp.1" "$(BASHDIR)/hvkvp" \
	      "$(ZSHDIR)/_hvkvp" "$(FISHDIR)/hvkvp.fish"
	@root='$(DESTDIR)$(PREFIX)'; record="$$root/$(CREATED)"; \
	if [ -f "$$record" ]; then \
	  made=$$(cat "$$record"); rm -f "$$record"; echo "rm -f $$record"; \
	  for d in $(DIRS); do \
	    p="$$root/$$d"; p="$${p%/.}"; \
	    if echo "$$made" | grep -qxF "$$d" && rmdir "$$p" 2>/dev/null; then \
	      echo "rmdir $$p"; fi; \
	  done; \
	fi

# The packages hold the release binary linked dynamically, as Debian and
# Fedora require; their files are listed in Cargo.toml
# ([package.metadata.deb]) and the spec .packaging/files.sh writes.
deb: build
	$(MAKE) assets EXE="$(RELEASE)"
	$(CARGO) deb --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-deb
	$(CARGO) deb --no-build --locked

RPMTOP := $(abspath $(or $(CARGO_TARGET_DIR),target))/rpmbuild
rpm: build
	$(MAKE) assets EXE="$(RELEASE)"
	@command -v rpmbuild >/dev/null || { \
	  echo "make: rpm needs rpmbuild (package rpm on Debian, rpm-build on Fedora)" >&2; \
	  exit 2; }
	rpmbuild -bb --quiet --define "_topdir $(RPMTOP)" \
	  --define "hvkvp_bin $(abspath $(RELEASE))" --define "hvkvp_src $(CURDIR)" \
	  --define "hvkvp_assets $(abspath $(ASSETS))" \
	  $(ASSETS)/hvkvp.spec
	@ls "$(RPMTOP)"/RPMS/*/hvkvp-*.rpm

# Distribution policy, as a packager checks it: lintian on the .deb and
# rpmlint on the .rpm (Debian packages lintian and rpmlint), no errors.
# It also checks what a packager would look for by hand: LICENSE in both,
# the binary linked dynamically, the rpm owning its doc directory.
DEB = $(wildcard $(or $(CARGO_TARGET_DIR),target)/debian/hvkvp_*.deb)
RPM = $(wildcard $(RPMTOP)/RPMS/*/hvkvp-*.rpm)
package-check: deb rpm
	lintian --fail-on error $(DEB)
	rpmlint -c .packaging/rpmlint.toml $(RPM)
	dpkg-deb -c $(DEB) | grep ' ./usr/share/doc/hvkvp/LICENSE$$' >/dev/null
	rpm -qlp $(RPM) | grep -x /usr/share/licenses/hvkvp/LICENSE >/dev/null
	rpm -qlp $(RPM) | grep -x /usr/share/doc/hvkvp >/dev/null
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  dpkg-deb -x $(DEB) "$$tmp" && \
	  file -L "$$tmp/usr/bin/hvkvp" | grep 'dynamically linked'
	@echo "package-check: lintian and rpmlint found no errors"

clean:
	$(CARGO) clean
