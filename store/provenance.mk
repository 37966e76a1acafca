# store/provenance.mk: import runs, provenance, remove, runs (provenance.h).
noinst_HEADERS += store/provenance.h
store_libstore_a_SOURCES += store/store_provenance.c store/store_remove.c store/store_defer.c
dpo_db_SOURCES += store/dpo-db-remove.c store/dpo-db-runs.c

CLI_TESTS += tests/cli_db_provenance.sh
EXTRA_DIST += tests/cli_db_provenance.sh

check_PROGRAMS += tests/test_provenance
tests_test_provenance_SOURCES = tests/test_provenance.c
tests_test_provenance_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
tests_test_provenance_LDADD = $(STORE_LIBS)
TESTS += tests/test_provenance
