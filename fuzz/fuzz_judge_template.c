/* fuzz_judge_template.c: libFuzzer target for judging prompt templates:
 * parse arbitrary text (system section included) and, when it is
 * accepted, render it in the mode its placeholders are for. */
#include "config.h"
#include "judge/judge.h"
#include "judge/judge_modes.h"
#include "util/xmalloc.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	char *text = xstrndup((const char *)data, size);
	judge_template *t = judge_template_parse(text, "fuzz", err, sizeof err);
	if (t) {
		util_buf out = UTIL_BUF_INIT;
		const char *rs[3] = {"x", "y", "z"}, *asp[2] = {"helpfulness", "honesty"};
		judge_fields f = {"prompt {{response_a}}", "a", "b", "ref", "00ff00ff00ff00ff", (int)(size & 1),
				  judge_template_mode(t), rs, 3, asp, (size & 2) ? 2 : 0};
		const char *sys = judge_template_system(t);
		if (sys && strstr(sys, "{{"))
			abort(); /* the system section takes no placeholders */
		judge_template_render(t, &f, &out);
		util_buf_free(&out);
		judge_template_free(t);
	}
	free(text);
	return 0;
}
