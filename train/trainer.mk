# train/trainer.mk: the DPO trainer (backward passes, losses, AdamW, the training loop) and dpo-train.
noinst_LIBRARIES += train/libtrainer.a
train_libtrainer_a_SOURCES = train/loss.c train/loss.h train/optim.c train/optim.h \
	train/layers_backward.c train/layers_backward.h \
	train/matmul_bf16.c train/matmul_bf16.h \
	train/trainer.c train/trainer.h train/trainer_data.c train/trainer_data.h \
	train/trainer_loop.c train/trainer_loop.h
# a frozen LoRA base held in bf16
train_libtrainer_a_SOURCES += train/trainer_bf16.c train/trainer_bf16.h
# attention's products in bf16 (--precision bf16)
train_libtrainer_a_SOURCES += train/attention_bf16.c train/attention_bf16.h
# -fno-math-errno: no code here reads errno after a math call, and errno
# semantics keep GCC from vectorizing loops with sqrtf/expf (AdamW).
train_libtrainer_a_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS) $(CJSON_CFLAGS) -fno-math-errno
# oneDNN's bf16 matmul behind train_gemm_bf16 (./configure --with-dnnl)
if HAVE_DNNL
train_libtrainer_a_SOURCES += train/matmul_dnnl.c train/matmul_dnnl.h
endif

check_PROGRAMS += tests/test_loss
tests_test_loss_SOURCES = tests/test_loss.c
tests_test_loss_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_loss_LDADD = train/libtrainer.a $(CJSON_LIBS) $(UTIL_LIBS) -lm
TESTS += tests/test_loss

check_PROGRAMS += tests/test_optim
tests_test_optim_SOURCES = tests/test_optim.c
tests_test_optim_LDADD = train/libtrainer.a $(UTIL_LIBS) -lm
TESTS += tests/test_optim

check_PROGRAMS += tests/test_matmul_bf16
tests_test_matmul_bf16_SOURCES = tests/test_matmul_bf16.c
tests_test_matmul_bf16_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_matmul_bf16
if HAVE_DNNL
check_PROGRAMS += tests/test_matmul_dnnl
tests_test_matmul_dnnl_SOURCES = tests/test_matmul_dnnl.c
tests_test_matmul_dnnl_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_matmul_dnnl
endif

check_PROGRAMS += tests/test_vecmath_bf16
tests_test_vecmath_bf16_SOURCES = tests/test_vecmath_bf16.c
tests_test_vecmath_bf16_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_vecmath_bf16

check_PROGRAMS += tests/test_attention_bf16
tests_test_attention_bf16_SOURCES = tests/test_attention_bf16.c
tests_test_attention_bf16_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_attention_bf16

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

check_PROGRAMS += tests/test_trainer_bf16
tests_test_trainer_bf16_SOURCES = tests/test_trainer_bf16.c
tests_test_trainer_bf16_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_trainer_bf16_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_trainer_bf16
check_PROGRAMS += tests/test_lora
tests_test_lora_SOURCES = tests/test_lora.c
tests_test_lora_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_lora
check_PROGRAMS += tests/test_lora_bf16
tests_test_lora_bf16_SOURCES = tests/test_lora_bf16.c
tests_test_lora_bf16_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
TESTS += tests/test_lora_bf16

check_PROGRAMS += tests/test_trainer_loop
tests_test_trainer_loop_SOURCES = tests/test_trainer_loop.c
tests_test_trainer_loop_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_trainer_loop_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS) $(TOK_LIBS)
TESTS += tests/test_trainer_loop

bin_PROGRAMS += dpo-train
# trainer_mpi.c: data parallelism over MPI when configure found it (one
# process without; MPI starts only under mpirun)
dpo_train_SOURCES = train/dpo-train.c train/trainer_mpi.c train/trainer_mpi.h
dpo_train_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS) $(BLAS_CFLAGS) $(MPI_CFLAGS)
dpo_train_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS) $(TOK_LIBS) $(STORE_LIBS) $(MPI_LIBS)

check_PROGRAMS += tests/test_trainer_cmp
tests_test_trainer_cmp_SOURCES = tests/test_trainer_cmp.c
tests_test_trainer_cmp_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
tests_test_trainer_cmp_LDADD = $(TRAIN_MODEL_LIBS)
CLI_TESTS += tests/cli_train_parity.sh tests/cli_train.sh tests/cli_train_opts.sh
EXTRA_DIST += tests/cli_train_parity.sh tests/cli_train.sh tests/cli_train_opts.sh
CLI_TESTS += tests/cli_train_bf16.sh tests/cli_ref_bf16.sh
EXTRA_DIST += tests/cli_train_bf16.sh tests/cli_ref_bf16.sh

# data-parallel dpo-train under mpirun (skips with a message without MPI)
CLI_TESTS += tests/cli_train_mpi.sh tests/cli_lora_mpi.sh tests/cli_ref_bf16_mpi.sh
EXTRA_DIST += tests/cli_train_mpi.sh tests/cli_lora_mpi.sh tests/cli_ref_bf16_mpi.sh tests/mpi_lib.sh \
	tests/mpi_compare.py \
	tests/data/lsan_mpi.supp
AM_TESTS_ENVIRONMENT += DPO_HAVE_MPI=$(MPI_TESTS); export DPO_HAVE_MPI;
CLI_TESTS += tests/cli_lora.sh
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
BENCH_RUN += bench/bench_train.sh bench/bench_ckpt.sh
EXTRA_DIST += bench/bench_train.sh bench/bench_ckpt.sh
# data parallelism: 2 MPI ranks vs 1 (skips without MPI)
BENCH_RUN += bench/bench_train_mpi.sh
EXTRA_DIST += bench/bench_train_mpi.sh
noinst_PROGRAMS += bench/bench_gemm_bf16
bench_bench_gemm_bf16_SOURCES = bench/bench_gemm_bf16.c
bench_bench_gemm_bf16_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
# ours vs oneDNN's bf16 matmul (./configure --with-dnnl; the script skips without)
if HAVE_DNNL
noinst_PROGRAMS += bench/bench_gemm_dnnl
bench_bench_gemm_dnnl_SOURCES = bench/bench_gemm_dnnl.c
bench_bench_gemm_dnnl_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
endif
BENCH_RUN += bench/bench_gemm_dnnl.sh
EXTRA_DIST += bench/bench_gemm_dnnl.sh

# benchmark: full fine-tuning vs LoRA (tokens/s, peak RSS), and LoRA on the
# Qwen3-0.6B shape vs ../shared/bench/torch_lora_dpo_bench.py (make bench)
noinst_PROGRAMS += bench/bench_lora
bench_bench_lora_SOURCES = bench/bench_lora.c
bench_bench_lora_CFLAGS = $(AM_CFLAGS) $(BLAS_CFLAGS)
bench_bench_lora_LDADD = train/libtrainer.a $(TRAIN_MODEL_LIBS)
BENCH_RUN += bench/bench_lora.sh
EXTRA_DIST += bench/bench_lora.sh
