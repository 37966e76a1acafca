# store/import.mk: the dataset importers (part of the store library), their
# tests, fuzz target and benchmark. `dpo-db import` (store/dpo-db-import.c)
# is program code: it is one of dpo_db_SOURCES in store/Makefile.inc.
noinst_HEADERS += store/import.h store/import_int.h store/import_stream.h
store_libstore_a_SOURCES += store/import_parse.c store/import_file.c store/import_judgments.c store/import_stream.c \
	store/import_csv.c store/import_map.c

check_PROGRAMS += tests/test_import
tests_test_import_SOURCES = tests/test_import.c
tests_test_import_LDADD = $(STORE_LIBS)
TESTS += tests/test_import

# the JSON array splitter, the CSV reader, field paths and --map
check_PROGRAMS += tests/test_import_stream
tests_test_import_stream_SOURCES = tests/test_import_stream.c
tests_test_import_stream_LDADD = $(STORE_LIBS)
TESTS += tests/test_import_stream

# libFuzzer target over the parser layer; without --enable-fuzzing it replays
# the seeds in fuzz/seeds/import as a test.
FUZZ_TARGETS += fuzz/fuzz_import
check_PROGRAMS += fuzz/fuzz_import
fuzz_fuzz_import_SOURCES = fuzz/fuzz_import.c $(FUZZ_MAIN)
fuzz_fuzz_import_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) -DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/import"'
fuzz_fuzz_import_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_import_LDADD = $(STORE_LIBS)
if !FUZZING
TESTS += fuzz/fuzz_import
endif
EXTRA_DIST += fuzz/seeds/import

# libFuzzer targets over the JSON array splitter, the CSV/TSV reader and
# field paths / --map (seeds in fuzz/seeds/import_split, import_csv,
# import_path; replayed as tests without --enable-fuzzing)
FUZZ_TARGETS += fuzz/fuzz_import_split fuzz/fuzz_import_csv fuzz/fuzz_import_path
check_PROGRAMS += fuzz/fuzz_import_split fuzz/fuzz_import_csv fuzz/fuzz_import_path
fuzz_fuzz_import_split_SOURCES = fuzz/fuzz_import_split.c $(FUZZ_MAIN)
fuzz_fuzz_import_split_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) -DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/import_split"'
fuzz_fuzz_import_split_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_import_split_LDADD = $(STORE_LIBS)
fuzz_fuzz_import_csv_SOURCES = fuzz/fuzz_import_csv.c $(FUZZ_MAIN)
fuzz_fuzz_import_csv_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) -DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/import_csv"'
fuzz_fuzz_import_csv_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_import_csv_LDADD = $(STORE_LIBS)
fuzz_fuzz_import_path_SOURCES = fuzz/fuzz_import_path.c $(FUZZ_MAIN)
fuzz_fuzz_import_path_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) -DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/import_path"'
fuzz_fuzz_import_path_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_import_path_LDADD = $(STORE_LIBS)
if !FUZZING
TESTS += fuzz/fuzz_import_split fuzz/fuzz_import_csv fuzz/fuzz_import_path
endif
EXTRA_DIST += fuzz/seeds/import_split fuzz/seeds/import_csv fuzz/seeds/import_path

CLI_TESTS += tests/cli_db_import.sh tests/cli_db_import_files.sh
EXTRA_DIST += tests/cli_db_import.sh tests/cli_db_import_files.sh tests/data/import

# `make bench`: dpo-db import vs a Python json + sqlite3 import, peak RSS.
BENCH_RUN += bench/bench_import.sh
EXTRA_DIST += bench/bench_import.sh bench/bench_import.py
