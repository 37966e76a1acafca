# store/report.mk: owned by the demo/eval/report work (issue 7): the HTML
# report (part of the store library). `dpo-db report` (store/dpo-db-report.c)
# is program code: it is one of dpo_db_SOURCES in store/Makefile.inc.
noinst_HEADERS += store/report.h
store_libstore_a_SOURCES += store/report.c

CLI_TESTS += tests/cli_report.sh
EXTRA_DIST += tests/cli_report.sh
