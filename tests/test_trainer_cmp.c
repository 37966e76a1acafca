/* test_trainer_cmp.c: helper of tests/cli_train*.sh (not a test by itself).
 *   test_trainer_cmp pairs ORACLE          print the oracle's pairs as TRL JSONL (texts)
 *   test_trainer_cmp ids ORACLE            print them pre-tokenized (prompt_ids, ...)
 *   test_trainer_cmp log ORACLE LOG        compare the --log-json losses and grad norms of
 *                                          an 8-step run with adamw_run (loss 1e-4 relative,
 *                                          grad norm 1e-3 relative)
 *   test_trainer_cmp params REF OUT        every tensor of safetensors REF within 1e-3
 *                                          relative (norm of difference over norm) in OUT
 *   test_trainer_cmp same LOG1 LOG2        the losses of LOG2's steps equal those of
 *                                          the same steps in LOG1 (exactly)
 * Prints one line per check; exits 0 when all pass, 1 otherwise, 2 on usage. */
#include "config.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/safetensors.h"
#include "util/file.h"

static char *slurp(const char *path)
{
	char *text = util_read_file(path, NULL);
	if (!text) {
		fprintf(stderr, "test_trainer_cmp: cannot read %s\n", path);
		exit(1);
	}
	return text;
}

static cJSON *load_json(const char *path)
{
	char *t = slurp(path);
	cJSON *o = cJSON_Parse(t);
	free(t);
	if (!o) {
		fprintf(stderr, "test_trainer_cmp: %s: bad JSON\n", path);
		exit(1);
	}
	return o;
}

static void print_pairs(const char *oracle, int ids)
{
	cJSON *o = load_json(oracle);
	const cJSON *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(o, "pairs"))
	{
		cJSON *x = cJSON_CreateObject();
		const char *keys[3] = {"prompt", "chosen", "rejected"};
		for (int i = 0; i < 3; i++) {
			char k[32];
			snprintf(k, sizeof k, "%s%s", keys[i], ids ? "_ids" : "");
			cJSON_AddItemToObject(x, k, cJSON_Duplicate(cJSON_GetObjectItem(p, k), 1));
		}
		char *s = cJSON_PrintUnformatted(x);
		printf("%s\n", s);
		free(s);
		cJSON_Delete(x);
	}
	cJSON_Delete(o);
}

/* Per-step numbers of a --log-json file: losses[k] of step k+1. */
static int read_log(const char *path, double *loss, double *gn, long *stepno, int max)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "test_trainer_cmp: cannot read %s\n", path);
		exit(1);
	}
	char line[8192];
	int n = 0;
	while (fgets(line, sizeof line, f) && n < max) {
		cJSON *o = cJSON_Parse(line);
		const cJSON *l = cJSON_GetObjectItem(o, "loss");
		if (cJSON_IsNumber(l)) {
			loss[n] = l->valuedouble;
			gn[n] = cJSON_GetObjectItem(o, "grad_norm")->valuedouble;
			stepno[n] = (long)cJSON_GetObjectItem(o, "step")->valuedouble;
			n++;
		}
		cJSON_Delete(o);
	}
	fclose(f);
	return n;
}

static double rel(double a, double b)
{
	return fabs(a - b) / (fabs(b) > 0 ? fabs(b) : 1);
}

static int cmp_log(const char *oracle, const char *log)
{
	cJSON *o = load_json(oracle);
	const cJSON *steps = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "adamw_run"), "steps");
	double loss[64], gn[64];
	long sn[64];
	int n = read_log(log, loss, gn, sn, 64), want = cJSON_GetArraySize(steps);
	double wl = 0, wg = 0;
	for (int i = 0; i < n && i < want; i++) {
		const cJSON *s = cJSON_GetArrayItem(steps, i);
		wl = fmax(wl, rel(loss[i], cJSON_GetObjectItem(s, "loss")->valuedouble));
		wg = fmax(wg, rel(gn[i], cJSON_GetObjectItem(s, "grad_norm_before_clip")->valuedouble));
	}
	cJSON_Delete(o);
	int ok = n == want && wl <= 1e-4 && wg <= 1e-3;
	printf("%d steps logged (want %d); loss max rel err %.3g (<= 1e-4), grad_norm max rel err %.3g (<= 1e-3): %s\n",
	       n, want, wl, wg, ok ? "ok" : "MISMATCH");
	return ok ? 0 : 1;
}

static int cmp_params(const char *refp, const char *outp)
{
	char *err = NULL;
	train_st_file *a = train_st_open(refp, &err), *b = a ? train_st_open(outp, &err) : NULL;
	if (!a || !b) {
		printf("%s\n", err);
		return 1;
	}
	double worst = 0;
	const char *wname = "";
	int bad = 0;
	for (int i = 0; i < train_st_count(a); i++) {
		const train_st_tensor *t = train_st_get(a, i), *u = train_st_find(b, t->name);
		if (!u || u->numel != t->numel || u->ndim != t->ndim ||
		    memcmp(u->shape, t->shape, sizeof(int64_t) * t->ndim)) {
			printf("tensor %s missing from %s or of another shape\n", t->name, outp);
			bad++;
			continue;
		}
		float *x = malloc(sizeof(float) * t->numel), *y = malloc(sizeof(float) * t->numel);
		train_st_read_f32(a, t, x, &err);
		train_st_read_f32(b, u, y, &err);
		double dn = 0, rn = 0;
		for (size_t j = 0; j < t->numel; j++) {
			dn += ((double)y[j] - x[j]) * ((double)y[j] - x[j]);
			rn += (double)x[j] * x[j];
		}
		double r = sqrt(dn) / (rn > 0 ? sqrt(rn) : 1);
		if (r > worst) {
			worst = r;
			wname = t->name;
		}
		free(x);
		free(y);
	}
	int ok = !bad && worst <= 1e-3;
	printf("%d tensors; max rel err %.3g (%s) (<= 1e-3): %s\n", train_st_count(a), worst, wname,
	       ok ? "ok" : "MISMATCH");
	train_st_close(a);
	train_st_close(b);
	return ok ? 0 : 1;
}

static int cmp_same(const char *l1, const char *l2)
{
	double a[1024], b[1024], g1[1024], g2[1024];
	long s1[1024], s2[1024];
	int n1 = read_log(l1, a, g1, s1, 1024), n2 = read_log(l2, b, g2, s2, 1024), bad = 0;
	for (int j = 0; j < n2; j++) {
		int found = 0;
		for (int i = 0; i < n1; i++)
			if (s1[i] == s2[j]) {
				found = 1;
				if (a[i] != b[j] || g1[i] != g2[j]) {
					printf("step %ld: loss %.17g vs %.17g, grad_norm %.17g vs %.17g\n", s2[j],
					       a[i], b[j], g1[i], g2[j]);
					bad++;
				}
			}
		if (!found) {
			printf("step %ld of %s is not in %s\n", s2[j], l2, l1);
			bad++;
		}
	}
	printf("%d steps compared: %s\n", n2, bad || n2 == 0 ? "MISMATCH" : "identical");
	return bad || n2 == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "pairs"))
		print_pairs(argv[2], 0);
	else if (argc == 3 && !strcmp(argv[1], "ids"))
		print_pairs(argv[2], 1);
	else if (argc == 4 && !strcmp(argv[1], "log"))
		return cmp_log(argv[2], argv[3]);
	else if (argc == 4 && !strcmp(argv[1], "params"))
		return cmp_params(argv[2], argv[3]);
	else if (argc == 4 && !strcmp(argv[1], "same"))
		return cmp_same(argv[2], argv[3]);
	else {
		fprintf(stderr, "usage: test_trainer_cmp pairs|ids ORACLE | log ORACLE LOG | "
				"params REF OUT | same LOG1 LOG2\n");
		return 2;
	}
	return 0;
}
