# Installing the C library, the same layout uninstalled in build/ for builds inside the checkout,
# and the test that every language builds, serves and drains from outside the repository (issue 12).
#
#   make install [PREFIX=/usr/local] [DESTDIR=]   installs what `make lib` built:
#       $(PREFIX)/lib/libgraceserve.so.X.Y.Z   SONAME libgraceserve.so.X
#       $(PREFIX)/lib/libgraceserve.so.X       -> libgraceserve.so.X.Y.Z  (what programs load)
#       $(PREFIX)/lib/libgraceserve.so         -> libgraceserve.so.X      (what -lgraceserve finds)
#       $(PREFIX)/lib/libgraceserve.a
#       $(PREFIX)/include/graceserve.h
#       $(PREFIX)/lib/pkgconfig/graceserve.pc
#   make uninstall [PREFIX=...] [DESTDIR=]        removes exactly those files
#   make test-install   install into a temporary prefix, then from outside the repository: a C
#                       program via pkg-config (shared and --static), a Go module, and a fresh
#                       venv with `pip install` / `pip wheel` from a clean copy of the sources;
#                       plus `cargo package` (part of `make test`)
#
# Versions: X is SERVER_ABI_VERSION, decided in src/ffi/abi.rs alone (build.rs reads it for the
# SONAME, cbindgen puts it in the header); Y.Z are the minor and patch of the crate version.
#
# `make lib` also writes build/graceserve.pc and build/lib/ (links to target/release) with the
# installed names, and the Makefile points PKG_CONFIG_PATH at build/: every in-repo consumer (C
# hosts and tests, the README check, cgo, benches) finds the library through pkg-config exactly
# as an outside program finds the installed one. The uninstalled .pc adds an rpath to build/lib.

PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

GS_ABI := $(shell sed -n 's/^pub const SERVER_ABI_VERSION: u32 = \([0-9][0-9]*\);$$/\1/p' $(ROOT)/src/ffi/abi.rs)
GS_VERSION := $(shell sed -n 's/^version = "\([^"]*\)"$$/\1/p' $(ROOT)/Cargo.toml | head -n 1)
ifeq ($(GS_ABI),)
$(error mk/install.mk: cannot read SERVER_ABI_VERSION from src/ffi/abi.rs)
endif
GS_VERSION_WORDS := $(subst ., ,$(GS_VERSION))
GS_SO_VERSION := $(GS_ABI).$(word 2,$(GS_VERSION_WORDS)).$(word 3,$(GS_VERSION_WORDS))
GS_SO_REAL := libgraceserve.so.$(GS_SO_VERSION)
GS_SO_MAJOR := libgraceserve.so.$(GS_ABI)
# What a program linking libgraceserve.a needs besides it: `cargo rustc --release --lib
# --crate-type staticlib -- --print native-static-libs` reports -lgcc_s -lutil -lrt -lpthread
# -lm -ldl -lc. -lgcc_s (the unwinder) is left out: the C compiler links it itself (libgcc_s, or
# libgcc_eh with -static), and naming it breaks `cc -static`, which has no libgcc_s.a.
GS_LIBS_PRIVATE := -lutil -lrt -lpthread -lm -ldl -lc

GS_UNINSTALLED_LIB := $(ROOT)/build/lib
GS_PC_IN := $(ROOT)/mk/graceserve.pc.in
# Sources whose change always makes cargo rebuild the library: one newer than the built library
# means `make lib` was not run since, and `make install` refuses. (Not Cargo.toml or Cargo.lock:
# many edits there leave the library as it is, and cargo does not relink it.) Installing does not
# build: `sudo make install` must not run cargo as root in the user's target/.
GS_LIB_SOURCES := src build.rs cbindgen.toml

# gs_pc PREFIX,LIBDIR,INCLUDEDIR,EXTRA_LIBS > file
gs_pc = sed -e 's|@prefix@|$(1)|' -e 's|@libdir@|$(2)|' -e 's|@includedir@|$(3)|' \
	-e 's|@rpath@|$(4)|' -e 's|@abi@|$(GS_ABI)|' -e 's|@version@|$(GS_VERSION)|' \
	-e 's|@libs_private@|$(GS_LIBS_PRIVATE)|' $(GS_PC_IN)

# Run by `make lib` after cargo: the installed names, uninstalled (links into target/release).
define gs_stage_uninstalled
@command -v $(PKG_CONFIG) >/dev/null || { echo "make: $(PKG_CONFIG) not found; builds in this repository link through it (apt-get install pkg-config)" >&2; exit 1; }
@mkdir -p $(GS_UNINSTALLED_LIB)
@rm -f $(GS_UNINSTALLED_LIB)/libgraceserve.so* $(GS_UNINSTALLED_LIB)/libgraceserve.a
@ln -s $(PROFILE_DIR)/libgraceserve.so $(GS_UNINSTALLED_LIB)/$(GS_SO_REAL)
@ln -s $(GS_SO_REAL) $(GS_UNINSTALLED_LIB)/$(GS_SO_MAJOR)
@ln -s $(GS_SO_MAJOR) $(GS_UNINSTALLED_LIB)/libgraceserve.so
@ln -s $(PROFILE_DIR)/libgraceserve.a $(GS_UNINSTALLED_LIB)/libgraceserve.a
@$(call gs_pc,$(ROOT),$(GS_UNINSTALLED_LIB),$(ROOT)/include, -Wl$(comma)-rpath$(comma)$${libdir}) > $(ROOT)/build/graceserve.pc.tmp
@mv $(ROOT)/build/graceserve.pc.tmp $(ROOT)/build/graceserve.pc
endef
comma := ,

.PHONY: install uninstall test-install

install:
	@case "$(PREFIX)" in /*) ;; *) echo "make install: PREFIX must be an absolute path (got '$(PREFIX)')" >&2; exit 1;; esac
	@for f in libgraceserve.so libgraceserve.a; do \
	  [ -f $(PROFILE_DIR)/$$f ] || { echo "make install: $(PROFILE_DIR)/$$f is missing: run 'make lib' first" >&2; exit 1; }; \
	done
	@stale=$$(cd $(ROOT) && find $(GS_LIB_SOURCES) -newer $(PROFILE_DIR)/libgraceserve.so -print -quit); \
	  [ -z "$$stale" ] || { echo "make install: $$stale changed after the library was built: run 'make lib' first" >&2; exit 1; }
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(PROFILE_DIR)/libgraceserve.so $(DESTDIR)$(LIBDIR)/$(GS_SO_REAL)
	ln -sfn $(GS_SO_REAL) $(DESTDIR)$(LIBDIR)/$(GS_SO_MAJOR)
	ln -sfn $(GS_SO_MAJOR) $(DESTDIR)$(LIBDIR)/libgraceserve.so
	install -m 644 $(PROFILE_DIR)/libgraceserve.a $(DESTDIR)$(LIBDIR)/libgraceserve.a
	install -m 644 $(ROOT)/include/graceserve.h $(DESTDIR)$(INCLUDEDIR)/graceserve.h
	$(call gs_pc,$(PREFIX),$(LIBDIR),$(INCLUDEDIR),) > $(DESTDIR)$(PKGCONFIGDIR)/graceserve.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/graceserve.pc
	@[ -n "$(DESTDIR)" ] || echo "make install: done; if $(LIBDIR) is a system library directory, run ldconfig (as root) so programs find $(GS_SO_MAJOR)"

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(GS_SO_REAL) $(DESTDIR)$(LIBDIR)/$(GS_SO_MAJOR) \
	  $(DESTDIR)$(LIBDIR)/libgraceserve.so $(DESTDIR)$(LIBDIR)/libgraceserve.a \
	  $(DESTDIR)$(INCLUDEDIR)/graceserve.h $(DESTDIR)$(PKGCONFIGDIR)/graceserve.pc

test-install: lib
	GS_ABI=$(GS_ABI) GS_VERSION=$(GS_VERSION) GS_SO_VERSION=$(GS_SO_VERSION) \
	  CARGO=$(CARGO) GO=$(GO) PYTHON=$(PYTHON) bash $(ROOT)/tests/install/run.sh

TEST_TARGETS += test-install
