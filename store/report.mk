# store/report.mk: owned by the demo/eval/report work (issue 7): the HTML
# report (part of the store library) and `dpo-db report`.
noinst_HEADERS += store/report.h
store_libstore_a_SOURCES += store/report.c store/dpo-db-report.c

TESTS += tests/cli_report.sh
EXTRA_DIST += tests/cli_report.sh
