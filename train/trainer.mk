# train/trainer.mk: the DPO trainer (backward passes, losses, AdamW, the training loop) and dpo-train.
noinst_LIBRARIES += train/libtrainer.a
train_libtrainer_a_SOURCES = train/loss.c train/loss.h train/optim.c train/optim.h \
	train/layers_backward.c train/layers_backward.h \
	train/trainer.c train/trainer.h train/trainer_data.c train/trainer_data.h \
	train/trainer_loop.c train/trainer_loop.h
# -fno-math-errno: no code here reads errno after a math call, and errno
# semantics keep GCC from vectorizing loops with sqrtf/expf (AdamW).
train_libtrainer_a_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS) $(CJSON_CFLAGS) -fno-math-errno

check_PROGRAMS += tests/test_loss
tests_test_loss_SOURCES = tests/test_loss.c
tests_test_loss_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_loss_LDADD = train/libtrainer.a $(CJSON_LIBS) $(UTIL_LIBS) -lm
TESTS += tests/test_loss

check_PROGRAMS += tests/test_optim
tests_test_optim_SOURCES = tests/test_optim.c
tests_test_optim_LDADD = train/libtrainer.a $(UTIL_LIBS) -lm
TESTS += tests/test_optim

check_PROGRAMS += tests/test_layers_grad
tests_test_layers_grad_SOURCES = tests/test_layers_grad.c
tests_test_layers_grad_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS)
tests_test_layers_grad_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_layers_grad

check_PROGRAMS += tests/test_trainer
tests_test_trainer_SOURCES = tests/test_trainer.c
tests_test_trainer_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_trainer_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_trainer

check_PROGRAMS += tests/test_lora
tests_test_lora_SOURCES = tests/test_lora.c
tests_test_lora_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_lora

check_PROGRAMS += tests/test_trainer_loop
tests_test_trainer_loop_SOURCES = tests/test_trainer_loop.c
tests_test_trainer_loop_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_trainer_loop_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS) $(TOK_LIBS)
TESTS += tests/test_trainer_loop

bin_PROGRAMS += dpo-train
dpo_train_SOURCES = train/dpo-train.c
dpo_train_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS) $(BLAS_CFLAGS)
dpo_train_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS) $(TOK_LIBS) $(STORE_LIBS)

check_PROGRAMS += tests/test_trainer_cmp
tests_test_trainer_cmp_SOURCES = tests/test_trainer_cmp.c
tests_test_trainer_cmp_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_trainer_cmp_LDADD = $(TRAIN_MODEL_LIBS)
TESTS += tests/cli_train_parity.sh tests/cli_train.sh tests/cli_train_opts.sh
EXTRA_DIST += tests/cli_train_parity.sh tests/cli_train.sh tests/cli_train_opts.sh
TESTS += tests/cli_lora.sh
EXTRA_DIST += tests/cli_lora.sh

# fuzz target of the JSONL pairs reader; `make check` replays its seeds
FUZZ_TARGETS += fuzz/fuzz_train_jsonl
check_PROGRAMS += fuzz/fuzz_train_jsonl
fuzz_fuzz_train_jsonl_SOURCES = fuzz/fuzz_train_jsonl.c $(FUZZ_MAIN)
fuzz_fuzz_train_jsonl_CFLAGS = $(AM_CFLAGS) $(FUZZ_CFLAGS) $(CJSON_CFLAGS) \
	-DFUZZ_SEEDS='"$(abs_top_srcdir)/fuzz/seeds/train_jsonl"'
fuzz_fuzz_train_jsonl_LDFLAGS = $(AM_LDFLAGS) $(FUZZ_CFLAGS)
fuzz_fuzz_train_jsonl_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS) $(TOK_LIBS)
if !FUZZING
TESTS += fuzz/fuzz_train_jsonl
endif
EXTRA_DIST += $(wildcard $(srcdir)/fuzz/seeds/train_jsonl/*)

dist_man1_MANS += man/dpo-train.1

# benchmark: one DPO step vs PyTorch (make bench)
noinst_PROGRAMS += bench/bench_train
bench_bench_train_SOURCES = bench/bench_train.c
bench_bench_train_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS)
bench_bench_train_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
BENCH_RUN += bench/bench_train.sh
EXTRA_DIST += bench/bench_train.sh

# benchmark: full fine-tuning vs LoRA (tokens/s, peak RSS), and LoRA on the
# Qwen3-0.6B shape vs ../shared/bench/torch_lora_dpo_bench.py (make bench)
noinst_PROGRAMS += bench/bench_lora
bench_bench_lora_SOURCES = bench/bench_lora.c
bench_bench_lora_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS)
bench_bench_lora_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
BENCH_RUN += bench/bench_lora.sh
EXTRA_DIST += bench/bench_lora.sh
