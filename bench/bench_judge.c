/* bench_judge.c: dpo-judge's engine against a fake judge with a fixed
 * latency. Seeds a database with N prompts of two completions each (N
 * pairs), runs dpo-judge once with --no-swap at the given concurrency, and
 * prints its wall time next to the latency bound N / concurrency * latency
 * from the same run, and its CPU time per request (getrusage of the child).
 *
 *   bench_judge DPO_JUDGE DB URL N CONCURRENCY LATENCY_S [DPO_JUDGE_OPTION...]
 *
 * The options after LATENCY_S (--no-http2, say) are passed on. */
#include "config.h"
#include "store/store.h"
#include "util/progress.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int seed(const char *db, long n)
{
	store *st = store_new();
	int64_t gen, pid;
	store_generator g = {"model", "bench-ref", "fp", "{}"};
	int rc = 1;
	if (store_open(st, db) || store_begin(st) || store_generator_id(st, &g, &gen))
		goto out;
	for (long i = 0; i < n; i++) {
		char p[128], a[256], b[256];
		snprintf(p, sizeof p, "Bench question %ld: name a prime above %ld.", i, i);
		snprintf(a, sizeof a, "A prime above %ld is probably nearby.", i);
		snprintf(b, sizeof b, "Let me check the numbers above %ld one at a time until one is prime.", i);
		if (store_prompt_add(st, p, NULL, 0, "bench", NULL, &pid, NULL) ||
		    store_completion_add(st, pid, a, gen, NULL, NULL) ||
		    store_completion_add(st, pid, b, gen, NULL, NULL))
			goto out;
	}
	if (store_commit(st))
		goto out;
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "bench_judge: %s: %s\n", db, store_errmsg(st));
	store_free(st);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr, "usage: bench_judge DPO_JUDGE DB URL N CONCURRENCY LATENCY_S [OPTION...]\n");
		return 2;
	}
	const char *judge = argv[1], *db = argv[2], *url = argv[3];
	long n = atol(argv[4]), conc = atol(argv[5]);
	double lat = atof(argv[6]);
	int fds[2];
	char cbuf[32];

	unlink(db);
	if (seed(db, n))
		return 1;
	snprintf(cbuf, sizeof cbuf, "%ld", conc);
	if (pipe(fds))
		return 1;
	double t0 = util_now();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		const char *base[] = {judge, "--db", db, "--model", "bench", "--base-url", url, "--no-swap",
				      "--concurrency", cbuf, "--quiet", "--json"};
		size_t nb = sizeof base / sizeof *base, k = 0;
		char **av = calloc(nb + (size_t)(argc - 7) + 1, sizeof *av);
		if (!av)
			_exit(127);
		for (size_t i = 0; i < nb; i++)
			av[k++] = (char *)base[i];
		for (int i = 7; i < argc; i++)
			av[k++] = argv[i];
		execv(judge, av);
		perror(judge);
		_exit(127);
	}
	close(fds[1]);
	char out[8192];
	size_t len = 0;
	ssize_t r;
	while ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(fds[0]);
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) != pid)
		return 1;
	double wall = util_now() - t0;
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
	cJSON *j = cJSON_Parse(out);
	const cJSON *judged = cJSON_GetObjectItemCaseSensitive(j, "judged");
	const cJSON *sent = cJSON_GetObjectItemCaseSensitive(j, "sent");
	const cJSON *loop = cJSON_GetObjectItemCaseSensitive(j, "wall_s");
	const cJSON *retries = cJSON_GetObjectItemCaseSensitive(j, "retries");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !cJSON_IsNumber(judged) || !cJSON_IsNumber(sent)) {
		fprintf(stderr, "bench_judge: dpo-judge failed (status %d): %s\n", status, out);
		cJSON_Delete(j);
		return 1;
	}
	double bound = (double)n / (double)conc * lat;
	double nreq = sent->valuedouble;
	printf("bench_judge: %.0f judgments (%.0f requests, %.0f retries), concurrency %ld, server latency %.0f ms\n",
	       judged->valuedouble, nreq, cJSON_IsNumber(retries) ? retries->valuedouble : 0, conc, lat * 1000);
	printf("wall %.2f s (judging loop %.2f s); latency bound %.2f s; ratio %.3f (goal <= 1.05: %s)\n", wall,
	       cJSON_IsNumber(loop) ? loop->valuedouble : 0, bound, wall / bound, wall / bound <= 1.05 ? "met" : "missed");
	printf("CPU %.3f s user+sys; %.3f ms per request (goal <= 0.25: %s)\n", cpu,
	       nreq > 0 ? cpu / nreq * 1000 : 0, nreq > 0 && cpu / nreq * 1000 <= 0.25 ? "met" : "missed");
	cJSON_Delete(j);
	return judged->valuedouble == (double)n ? 0 : 1;
}
