# benefits — PGXS build.  `make demo` and `make test` are the two entry points
# of the README; both install missing Debian packages first (see test/deps.sh).

EXTENSION = benefits
EXTVERSION = 0.2.0

MODULE_big = benefits
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The current version's install script is assembled from one part per
# subsystem, in order.  Released versions keep their install script exactly as
# released (sql/benefits--0.1.0.sql), and each release after them adds a
# one-step upgrade script (sql/benefits--OLD--NEW.sql).
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

REGRESS = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)
ISOLATION = $(sort $(patsubst test/isolation/specs/%.spec,%,$(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=$(EXTENSION)

# test/tools/sanitizer.sh links the sanitizers' runtimes through SANITIZE_LDFLAGS.
SHLIB_LINK = -lsodium -lcurl -lpq $(SANITIZE_LDFLAGS)
PG_CPPFLAGS = -Isrc -I$(libpq_srcdir) -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers

EXTRA_CLEAN = tmp_install tmp_check tmp_cluster tmp_fuzz tmp_sanitize tmp_soak output_iso results regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all install installcheck:
	@echo "PGXS not found: run 'make deps' (or install postgresql-server-dev-15) first" >&2; exit 1
endif

# PGXS tracks no header dependencies: every object is rebuilt when a header
# changes (a struct that grows a member must not leave stale objects behind).
$(OBJS) $(OBJS:.o=.bc): $(wildcard src/*.h)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_PARTS)
	cat $^ > $@

.PHONY: deps demo test bench fuzz soak
deps:
	@bash test/deps.sh

demo: deps
	@$(MAKE) --no-print-directory -s all
	@bash test/demo.sh

# make test SANITIZE=1: every suite against an ASan + UBSan build (test/run_tests.sh).
test: deps
	@$(MAKE) --no-print-directory -s all
	@bash test/run_tests.sh

bench: deps
	@$(MAKE) --no-print-directory -s all
	@bash test/bench/run.sh

fuzz: deps
	@bash test/fuzz/fuzz.sh

# SOAK_MINUTES (default 30) of mixed load with chaos; tmp_soak/soak.png.
soak: deps
	@$(MAKE) --no-print-directory -s all
	@bash test/soak/run.sh
