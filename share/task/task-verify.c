/* task-verify: the verifier of dpo's built-in task (reverse five digits; see
 * task.py), as a small program so that dpo-judge --provider exec can start
 * one per pair cheaply.
 *
 *   task-verify judge   one JSON object {"prompt", "response_a",
 *                       "response_b", ...} on stdin; prints A when only
 *                       response_a is right, B when only response_b is, C
 *                       otherwise
 *   task-verify check   JSON Lines {"prompt", "response"} on stdin; prints
 *                       1 (right) or 0 (wrong) per line (dpo-eval
 *                       --task-command)
 * A prompt is five digits followed by ">"; the right answer is the digits
 * reversed (surrounding white space in a response is ignored). Exit status:
 * 0 done, 1 bad input (a message names the line), 2 usage error. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xmalloc.h"

enum { DIGITS = 5 };

/* The right answer of prompt into ans (DIGITS + 1 bytes); 0, or -1 when the
 * prompt is not a task prompt. */
static int answer(const char *prompt, char *ans)
{
	if (strlen(prompt) != DIGITS + 1 || prompt[DIGITS] != '>')
		return -1;
	for (int i = 0; i < DIGITS; i++) {
		if (!isdigit((unsigned char)prompt[i]))
			return -1;
		ans[DIGITS - 1 - i] = prompt[i];
	}
	ans[DIGITS] = '\0';
	return 0;
}

static int correct(const char *ans, const char *resp)
{
	while (isspace((unsigned char)*resp))
		resp++;
	size_t n = strlen(resp);
	while (n > 0 && isspace((unsigned char)resp[n - 1]))
		n--;
	return n == DIGITS && !memcmp(resp, ans, DIGITS);
}

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = xmalloc(cap);
	size_t r;
	while ((r = fread(b + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (cap - n < 2)
			b = xrealloc(b, cap *= 2);
	}
	b[n] = '\0';
	*len = n;
	return b;
}

static int cmd_judge(void)
{
	size_t len;
	char *in = read_all(stdin, &len);
	cJSON *o = cJSON_ParseWithLength(in, len);
	free(in);
	const char *p = o ? str_field(o, "prompt") : NULL;
	const char *a = o ? str_field(o, "response_a") : NULL;
	const char *b = o ? str_field(o, "response_b") : NULL;
	char ans[DIGITS + 1];
	int rc = 1;
	if (!cJSON_IsObject(o))
		fprintf(stderr, "task-verify: stdin: not a JSON object\n");
	else if (!p || !a || !b)
		fprintf(stderr, "task-verify: stdin: field \"%s\" must be a string\n",
			!p ? "prompt" : !a ? "response_a" : "response_b");
	else if (answer(p, ans))
		fprintf(stderr, "task-verify: stdin: not a task prompt (five digits and '>')\n");
	else {
		int ca = correct(ans, a), cb = correct(ans, b);
		puts(ca && !cb ? "A" : cb && !ca ? "B" : "C");
		rc = 0;
	}
	cJSON_Delete(o);
	return rc;
}

static int cmd_check(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = 0;
	while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
		const char *p = o ? str_field(o, "prompt") : NULL;
		const char *r = o ? str_field(o, "response") : NULL;
		char ans[DIGITS + 1];
		if (!cJSON_IsObject(o) || !p || !r) {
			fprintf(stderr, "task-verify: stdin:%ld: expected {\"prompt\": string, "
				"\"response\": string}\n", lineno);
			rc = 1;
		} else {
			puts(answer(p, ans) == 0 && correct(ans, r) ? "1" : "0");
		}
		cJSON_Delete(o);
	}
	free(line);
	if (fflush(stdout))
		rc = 1;
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "judge"))
		return cmd_judge();
	if (argc == 2 && !strcmp(argv[1], "check"))
		return cmd_check();
	fprintf(stderr, "usage: task-verify judge|check\n");
	return 2;
}
