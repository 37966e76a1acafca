# store/provenance.mk: import runs, provenance, remove, runs (provenance.h).
noinst_HEADERS += store/provenance.h
store_libstore_a_SOURCES += store/store_provenance.c store/store_remove.c
dpo_db_SOURCES += store/dpo-db-remove.c store/dpo-db-runs.c

TESTS += tests/cli_db_provenance.sh
EXTRA_DIST += tests/cli_db_provenance.sh
