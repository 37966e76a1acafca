# train/tokenizer.mk: tokenizer and chat templates (library train/libtok.a).
noinst_LIBRARIES += train/libtok.a
train_libtok_a_SOURCES = \
	train/tokenizer.c train/tokenizer.h train/chat.c train/chat.h \
	train/jinja.c train/jinja.h train/jinja_int.h train/jinja_eval.h train/jinja_parse.c \
	train/jinja_lib.c
train_libtok_a_CFLAGS = $(AM_CFLAGS) $(PCRE2_CFLAGS) $(UTF8PROC_CFLAGS) $(CJSON_CFLAGS)
TOK_LIBS = train/libtok.a $(UTIL_LIBS) $(PCRE2_LIBS) $(UTF8PROC_LIBS) $(CJSON_LIBS)

check_PROGRAMS += tests/test_tokenizer
tests_test_tokenizer_SOURCES = tests/test_tokenizer.c
tests_test_tokenizer_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_tokenizer_LDADD = $(TOK_LIBS)
TESTS += tests/test_tokenizer
# test data: small tokenizers written for these tests (see each README)
EXTRA_DIST += tests/data/tokenizer

check_PROGRAMS += tests/test_chat
tests_test_chat_SOURCES = tests/test_chat.c
tests_test_chat_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_chat_LDADD = $(TOK_LIBS)
TESTS += tests/test_chat

# fuzz targets (fuzz/Makefile.inc): tokenizer.json parsing and encode/decode
# round trips; in ordinary builds `make check` replays their seeds.
FUZZ_TARGETS += fuzz/fuzz_tokenizer_json fuzz/fuzz_tokenizer_roundtrip
check_PROGRAMS += fuzz/fuzz_tokenizer_json fuzz/fuzz_tokenizer_roundtrip
fuzz_fuzz_tokenizer_json_SOURCES = fuzz/fuzz_tokenizer_json.c $(FUZZ_MAIN)
fuzz_fuzz_tokenizer_json_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) \
	-DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/tokenizer_json"'
fuzz_fuzz_tokenizer_json_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_tokenizer_json_LDADD = $(TOK_LIBS)
fuzz_fuzz_tokenizer_roundtrip_SOURCES = fuzz/fuzz_tokenizer_roundtrip.c $(FUZZ_MAIN)
fuzz_fuzz_tokenizer_roundtrip_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) $(UTF8PROC_CFLAGS) \
	-DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/tokenizer_roundtrip"' \
	-DTOK_DATA='"$(abs_top_srcdir)/tests/data/tokenizer"'
fuzz_fuzz_tokenizer_roundtrip_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_tokenizer_roundtrip_LDADD = $(TOK_LIBS)
if !FUZZING
TESTS += fuzz/fuzz_tokenizer_json fuzz/fuzz_tokenizer_roundtrip
endif
EXTRA_DIST += fuzz/seeds/tokenizer_json fuzz/seeds/tokenizer_roundtrip

# benchmark: encode MB/s of the real GPT-2 tokenizer, cache vs no cache
noinst_PROGRAMS += bench/bench_tokenizer
bench_bench_tokenizer_SOURCES = bench/bench_tokenizer.c
bench_bench_tokenizer_LDADD = $(TOK_LIBS)
BENCH_RUN += bench/bench_tokenizer.sh
EXTRA_DIST += bench/bench_tokenizer.sh

# the Jinja interpreter of chat templates: the transformers oracle of
# $DPO_SHARED/fixtures/chat-templates and the language's cases
check_PROGRAMS += tests/test_jinja
tests_test_jinja_SOURCES = tests/test_jinja.c
tests_test_jinja_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_jinja_LDADD = $(TOK_LIBS)
TESTS += tests/test_jinja

# the model's own chat template through the programs (dpo-model render,
# --chat-var, dpo-train --show-example)
CLI_TESTS += tests/cli_chat_template.sh
EXTRA_DIST += tests/cli_chat_template.sh

# fuzz target (fuzz/Makefile.inc): the Jinja interpreter, random templates
# and data; ordinary builds replay the seeds in `make check`
FUZZ_TARGETS += fuzz/fuzz_jinja
check_PROGRAMS += fuzz/fuzz_jinja
fuzz_fuzz_jinja_SOURCES = fuzz/fuzz_jinja.c train/jinja.c train/jinja_parse.c train/jinja_lib.c \
	$(FUZZ_MAIN)
fuzz_fuzz_jinja_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) $(CJSON_CFLAGS) $(UTF8PROC_CFLAGS) \
	-DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/jinja"'
fuzz_fuzz_jinja_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_jinja_LDADD = $(UTIL_LIBS) $(UTF8PROC_LIBS) $(CJSON_LIBS) -lm
if !FUZZING
TESTS += fuzz/fuzz_jinja
endif
EXTRA_DIST += fuzz/seeds/jinja

# benchmark: rendering 100k conversations with the Qwen3 chat template vs
# tokenizing them (not in make check; `make bench`)
noinst_PROGRAMS += bench/bench_jinja
bench_bench_jinja_SOURCES = bench/bench_jinja.c
bench_bench_jinja_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
bench_bench_jinja_LDADD = $(TOK_LIBS)
BENCH_RUN += bench/bench_jinja.sh
EXTRA_DIST += bench/bench_jinja.sh
