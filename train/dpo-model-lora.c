/* dpo-model-lora.c: dpo-model merge-lora and --adapter (see
 * dpo-model-lora.h). */
#include "config.h"
#include "train/dpo-model-lora.h"
#include "train/model.h"
#include "train/tokenizer.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct merge_opts {
	const char *out;
} merge_opts;

static const util_opt merge_table[] = {
	{"out", 0, UTIL_OPT_PATH, offsetof(merge_opts, out), .arg = "DIR",
	 .help = "the merged model's folder (required; not BASE)"},
	UTIL_OPT_TABLE_END,
};

util_cli train_cli_merge_lora_cli = {
	.name = "dpo-model merge-lora",
	.synopsis = "BASE ADAPTER --out DIR",
	.summary = "Write BASE with the LoRA adapter ADAPTER merged into its weights\n"
		   "(W + alpha/r B A; F32), with BASE's tokenizer files.",
	.opts = merge_table,
	.min_args = 2,
	.max_args = 2,
};

train_lora *train_cli_attach_adapter(train_model *m, const char *dir)
{
	char *err = NULL;
	if (!dir)
		return NULL;
	train_lora *lo = train_lora_load(train_model_config(m), dir, &err);
	if (!lo)
		util_die("%s", err);
	train_model_set_lora(m, lo);
	return lo;
}

int train_cli_merge_lora(int argc, char **argv)
{
	merge_opts o = {0};
	util_cli *cli = &train_cli_merge_lora_cli;
	util_cli_parse(cli, &o, argc, argv);
	if (!o.out)
		util_cli_usage_error(cli, "--out DIR is required");
	const char *base = cli->args[0], *adapter = cli->args[1];
	const char *inputs[] = {base, adapter};
	char why[512];
	if (util_check_output(o.out, NULL, inputs, 2, why, sizeof why))
		util_die("%s: %s", o.out, why);
	char *err = NULL;
	train_model *m = train_model_load(base, &err);
	if (!m)
		util_die("%s", err);
	train_lora *lo = train_cli_attach_adapter(m, adapter);
	train_model_set_lora(m, NULL);
	train_lora_merge(lo, m);
	/* written next to OUT and renamed into place: never half a model */
	char *tmp = xasprintf("%s.tmp.%ld", o.out, (long)getpid());
	int rc = 1;
	if (mkdir(tmp, 0755) != 0) {
		util_warn("%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (train_model_save(m, tmp, &err) || train_tokenizer_copy_files(base, tmp, &err) < 0) {
		util_warn("%s", err);
		goto out;
	}
	util_fsync_dir(tmp);
	if (rename(tmp, o.out) != 0) {
		util_warn("%s: %s%s", o.out, strerror(errno),
			  errno == ENOTEMPTY || errno == EEXIST ? " (remove it or choose another --out)" : "");
		goto out;
	}
	util_fsync_parent(o.out);
	fprintf(stderr, "%s: wrote %s (%s merged: %d modules)\n", util_progname(), o.out, adapter,
		train_lora_nmodules(lo));
	rc = 0;
out:
	if (rc)
		util_remove_flat_dir(tmp);
	free(err);
	free(tmp);
	train_lora_free(lo);
	train_model_free(m);
	util_cli_free(cli);
	return rc;
}
