# Installation and Debian packages.
#   make install      PREFIX=/usr/local DESTDIR= : the binary, libstirgate
#                     (+ header, pkg-config file), the Lua C module, the
#                     LuaJIT binding, systemd units, and the config unless
#                     one exists (SYSCONFDIR: /etc for PREFIX=/usr, else
#                     PREFIX/etc)
#   make install-secsipid  the libsecsipid.so.1 drop-in into LIBDIR (not
#                     part of install: it replaces a system library)
#   make deb          bin/deb/*.deb for this machine's architecture, built
#                     for Debian 12 (bookworm) with debhelper
#   make deb-test     lintian, then the packages installed into a throwaway
#                     root and exercised there (part of make test; root)

STIRGATE_VERSION ?= 0.1.0
BINDIR           ?= $(PREFIX)/bin
INCLUDEDIR       ?= $(PREFIX)/include
SYSCONFDIR       ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMD_UNITDIR  ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
DOCDIR           ?= $(PREFIX)/share/doc/stirgate
MANDIR           ?= $(PREFIX)/share/man

DEB_DIR          := $(BIN)/deb
DEB_STAGE        := $(DEB_DIR)/stirgate-$(STIRGATE_VERSION)
DEB_MULTIARCH     = $(shell dpkg-architecture -qDEB_HOST_MULTIARCH)
# Debian 12's LuaJIT searches here, PUC Lua (app_lua) does not: both
# bindings answer require "stirgate" and each must find its own.
DEB_LUAJIT_DIR   := /usr/share/luajit-2.1.0-beta3

.PHONY: install install-secsipid deb deb-test

install: build lib lua install-lib install-lua install-luajit
	install -D -m 0755 $(BIN)/stirgate $(DESTDIR)$(BINDIR)/stirgate
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(STIRGATE_VERSION)|' packaging/stirgate.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/stirgate.pc
	install -d $(DESTDIR)$(SYSTEMD_UNITDIR)
	for u in stirgate stirgate-agi stirgate-ami; do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
			packaging/systemd/$$u.service.in > $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u.service || exit 1; \
	done
	@# stirgate(1): prose from the script, usage and flags from the binary's
	@# own help, dated by the last commit so that rebuilds are identical.
	install -d $(DESTDIR)$(MANDIR)/man1
	packaging/manpage.sh $(BIN)/stirgate $(STIRGATE_VERSION) "$$(git log -1 --format=%cs 2>/dev/null || date +%F)" \
		> $(DESTDIR)$(MANDIR)/man1/stirgate.1
	@# An existing config is the operator's: never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/stirgate/stirgate.toml || \
		install -D -m 0640 packaging/stirgate.toml $(DESTDIR)$(SYSCONFDIR)/stirgate/stirgate.toml

install-secsipid: secsipid
	install -D -m 0755 $(SECSIPID_LIB) $(DESTDIR)$(LIBDIR)/libsecsipid.so.1.0.0
	ln -sf libsecsipid.so.1.0.0 $(DESTDIR)$(LIBDIR)/libsecsipid.so.1

# The Go toolchain is the project's (go.mod), not Debian's golang-go, so
# the binaries are built here and debhelper only lays them out: it writes
# the maintainer scripts for the units, the shlibs and library
# dependencies, strips, and gives lintian-clean packages.
# amd64 only: libstirgate, the Lua module and the drop-in need cgo, and
# cgo for arm64 needs a cross gcc (gcc-aarch64-linux-gnu) this does not set up.
deb: HARDEN = 1
deb: build lib lua secsipid
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_STAGE)/examples $(DEB_STAGE)/kamailio
	cp -r packaging/debian $(DEB_STAGE)/debian
	cp README.md $(DEB_STAGE)/
	cp examples/stirgate.toml $(DEB_STAGE)/examples/
	cp kamailio/kamailio-lua.cfg kamailio/stirgate.lua $(DEB_STAGE)/kamailio/
	sed -i 's|@MA@|$(DEB_MULTIARCH)|g' $(DEB_STAGE)/debian/stirgate-secsipid.preinst $(DEB_STAGE)/debian/stirgate-secsipid.postrm
	@# The changelog entry carries the version and the last commit's date,
	@# so that two builds of one commit are the same packages.
	printf 'stirgate (%s) bookworm; urgency=medium\n\n  * Built from the stirgate source tree.\n\n -- stirgate maintainers <maintainers@stirgate.invalid>  %s\n' \
		'$(STIRGATE_VERSION)' "$$(git log -1 --format=%aD 2>/dev/null || date -R)" > $(DEB_STAGE)/debian/changelog
	$(MAKE) --no-print-directory install install-secsipid HARDEN=1 DESTDIR=$(abspath $(DEB_DIR))/root PREFIX=/usr \
		LIBDIR=/usr/lib/$(DEB_MULTIARCH) LUA_CMOD_DIR=/usr/lib/$(DEB_MULTIARCH)/lua/5.1 LUAJIT_LMOD_DIR=$(DEB_LUAJIT_DIR)
	cd $(DEB_STAGE) && STIRGATE_STAGED=$(abspath $(DEB_DIR))/root SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		dpkg-buildpackage -b -us -uc -d --no-pre-clean >../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	@ls $(DEB_DIR)/*.deb

deb-test: deb
	packaging/test/deb-test.sh $(DEB_DIR) $(DEB_MULTIARCH)

EXTRA_TESTS += deb-test
