# judge/batch.mk: dpo-judge --batch (provider batch APIs).
noinst_HEADERS += judge/judge_batch.h
judge_libjudge_a_SOURCES += judge/judge_batch.c
# the batch driver is a part of dpo-judge.c (it #includes it: it drives the
# same requests, answers and comparisons)
EXTRA_DIST += judge/dpo-judge-batch.c

CLI_TESTS += tests/cli_judge_batch.sh
EXTRA_DIST += tests/cli_judge_batch.sh tests/fake_batch_server.py

FUZZ_TARGETS += fuzz/fuzz_judge_batch
check_PROGRAMS += fuzz/fuzz_judge_batch
fuzz_fuzz_judge_batch_SOURCES = fuzz/fuzz_judge_batch.c $(FUZZ_MAIN)
fuzz_fuzz_judge_batch_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) $(CJSON_CFLAGS) $(CURL_CFLAGS) \
	-DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/judge_batch"'
fuzz_fuzz_judge_batch_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_judge_batch_LDADD = $(JUDGE_LIBS)
if !FUZZING
TESTS += fuzz/fuzz_judge_batch
endif
EXTRA_DIST += fuzz/seeds/judge_batch

check_PROGRAMS += tests/test_judge_batch
tests_test_judge_batch_SOURCES = tests/test_judge_batch.c
tests_test_judge_batch_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_judge_batch_LDADD = judge/libjudge.a $(STORE_LIBS) $(CJSON_LIBS) $(CURL_LIBS)
TESTS += tests/test_judge_batch
