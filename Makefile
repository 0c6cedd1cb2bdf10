# hvkvp: build, test, install.
#   make                 release build
#   make test            the whole test suite (what CI runs)
#   make lint            rustfmt check and clippy, warnings are errors
#   make install         binary to $(DESTDIR)$(PREFIX)/bin
#   make uninstall       remove what install put there

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin
CARGO   ?= cargo
EXE     := target/release/hvkvp

.PHONY: all build test lint install uninstall clean

all: build

build:
	$(CARGO) build --release --locked

test:
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

install: build
	install -Dm755 $(EXE) $(BINDIR)/hvkvp

uninstall:
	rm -f $(BINDIR)/hvkvp

clean:
	$(CARGO) clean
