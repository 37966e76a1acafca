# train/eval.mk: owned by the demo/eval/report work (issue 7): dpo-eval, the
# built-in verifiable task (share/task) and the demo's tests.
bin_PROGRAMS += dpo-eval
dpo_eval_SOURCES = train/dpo-eval.c
dpo_eval_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS) $(BLAS_CFLAGS)
dpo_eval_LDADD = $(TRAIN_GEN_LIBS) $(STORE_LIBS)
dist_man1_MANS += man/dpo-eval.1

# the built-in task: generator (python3, stdlib only), model config and
# tokenizer for `dpo-model init`, and the verifier program
noinst_PROGRAMS += share/task/task-verify
share_task_task_verify_SOURCES = share/task/task-verify.c
share_task_task_verify_CFLAGS = $(AM_CFLAGS) $(CJSON_CFLAGS)
share_task_task_verify_LDADD = $(UTIL_LIBS) $(CJSON_LIBS)
# installed to $(pkgdatadir)/task (usable as `dpo-model init --config
# $(pkgdatadir)/task/config.json --tokenizer $(pkgdatadir)/task`)
taskdir = $(pkgdatadir)/task
dist_task_DATA = share/task/task.py share/task/config.json \
	share/task/tokenizer.json share/task/tokenizer_config.json

CLI_TESTS += tests/cli_eval.sh tests/cli_demo.sh
EXTRA_DIST += tests/cli_eval.sh tests/cli_demo.sh tests/data/task
