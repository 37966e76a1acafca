/* test_chat.c: chat-template detection and rendering for every family, the
 * errors, and the ChatML oracle of $DPO_SHARED/fixtures/tokenizer-qwen
 * (rendered text and ids, with and without the generation prompt). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tests/tap.h"
#include "train/chat.h"
#include "util/buf.h"
#include "util/xmalloc.h"

/* Short templates written for this test: each has only the markers of its
 * family (they are not any model's template). */
static const struct {
	const char *jinja;
	train_chat_format want;
} detect_cases[] = {
	{"{{ '<|im_start|>' + r + '\\n' + c + '<|im_end|>' }}", TRAIN_CHAT_CHATML},
	{"{{ bos_token }}{{ '<|start_header_id|>' + r + '<|end_header_id|>\\n\\n' + c + "
	 "'<|eot_id|>' }}", TRAIN_CHAT_LLAMA3},
	{"{{ '<|user|>\\n' + c + eos_token }}{{ '<|assistant|>' }}", TRAIN_CHAT_ZEPHYR},
	{"{{ bos_token + '[INST] <<SYS>>\\n' + s + '\\n<</SYS>>\\n\\n' + c + ' [/INST]' }}",
	 TRAIN_CHAT_LLAMA2},
	{"{{ bos_token }}{{ '[INST] ' + c + ' [/INST]' }}", TRAIN_CHAT_MISTRAL},
};

static const store_msg conv[] = {
	{"system", "Be brief."},
	{"user", "Hi there"},
	{"assistant", " Hello! "},
	{"user", "Bye"},
};

struct render_case {
	const char *format;
	size_t nmsg;
	int gen;
	const char *want;
};

/* Expected renderings, written out from each family's published format;
 * the tokenizer's BOS/EOS are <s>/</s> (so Llama-3 starts with <s> here,
 * where a real Llama-3 tokenizer has <|begin_of_text|>). */
static const struct render_case render_cases[] = {
	{"chatml", 4, 1,
	 "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
	 "<|im_start|>assistant\n Hello! <|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
	 "<|im_start|>assistant\n"},
	{"chatml", 4, 0,
	 "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
	 "<|im_start|>assistant\n Hello! <|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"},
	{"llama3", 2, 1,
	 "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
	 "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
	 "<|start_header_id|>assistant<|end_header_id|>\n\n"},
	{"llama3", 3, 0,
	 "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
	 "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
	 "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"},
	{"zephyr", 4, 1,
	 "<|system|>\nBe brief.</s>\n<|user|>\nHi there</s>\n<|assistant|>\n Hello! </s>\n"
	 "<|user|>\nBye</s>\n<|assistant|>\n"},
	{"llama2", 4, 1,
	 "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello! </s><s>[INST] Bye [/INST]"},
	{"mistral", 4, 0, "<s>[INST] Be brief.\n\nHi there [/INST] Hello! </s>[INST] Bye [/INST]"},
};

static train_tokenizer *tiny(const char *top)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/tiny", top), *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	if (!t)
		tap_diag("tiny tokenizer: %s", err);
	free(err);
	free(dir);
	return t;
}

/* tests/data/tokenizer/family: <s>/</s> as BOS/EOS (see its README). */
static train_tokenizer *family_tok(const char *top)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/family", top), *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	if (!t)
		tap_diag("family tokenizer: %s", err);
	free(err);
	free(dir);
	return t;
}

static void local_tests(const char *top)
{
	for (size_t i = 0; i < sizeof detect_cases / sizeof *detect_cases; i++) {
		train_chat_format f = 0;
		char *err = NULL;
		int rc = train_chat_detect(detect_cases[i].jinja, &f, &err);
		TAP_OK(rc == 0 && f == detect_cases[i].want, "detect %s",
		       train_chat_format_name(detect_cases[i].want));
		free(err);
	}
	char *err = NULL;
	train_chat_format f;
	int rc = train_chat_detect("{{ messages | tojson }}", &f, &err);
	TAP_OK(rc == TRAIN_CHAT_EFORMAT && err && strstr(err, "--chat-format NAME"),
	       "unknown template names --chat-format: %s", err ? err : "(none)");
	free(err);
	err = NULL;
	rc = train_chat_detect(NULL, &f, &err);
	TAP_OK(rc == TRAIN_CHAT_EFORMAT && err && strstr(err, "--chat-format"),
	       "no template names --chat-format");
	free(err);
	TAP_OK(train_chat_format_parse("QWEN", &f) == 0 && f == TRAIN_CHAT_CHATML, "qwen alias");
	TAP_OK(train_chat_format_parse("vicuna", &f) == TRAIN_CHAT_EFORMAT, "unknown name");

	train_tokenizer *ft = family_tok(top);
	for (size_t i = 0; ft && i < sizeof render_cases / sizeof *render_cases; i++) {
		const struct render_case *rc_ = &render_cases[i];
		err = NULL;
		train_chat *c = train_chat_new(ft, rc_->format, &err);
		if (!TAP_OK(c != NULL, "new %s", rc_->format)) {
			tap_diag("%s", err);
			free(err);
			continue;
		}
		char *text = NULL;
		int r = train_chat_render(c, conv, rc_->nmsg, rc_->gen, &text);
		TAP_IS_STR(text, rc_->want, "render %s (%zu messages, gen %d): rc %d", rc_->format,
			   rc_->nmsg, rc_->gen, r);
		free(text);
		train_chat_free(c);
	}
	if (ft) {
		TAP_IS_INT(train_tokenizer_add_bos(ft), 1, "family: add_bos_token");
		TAP_IS_INT(train_tokenizer_bos_id(ft), 1, "family: bos id");
		int32_t *ids = NULL;
		size_t n = 0;
		/* unknown characters become one fused <unk> */
		int r = train_tokenizer_encode(ft, "ab<s>XYc", 8, &ids, &n);
		TAP_OK(r == 0 && n == 5 && ids[0] == 3 && ids[1] == 4 && ids[2] == 1 && ids[3] == 0 &&
			       ids[4] == 5, "family: fused unk");
		free(ids);
	}
	train_tokenizer_free(ft);

	/* errors in the message list */
	train_tokenizer *t = tiny(top);
	if (!t)
		return;
	err = NULL;
	train_chat *c = train_chat_new(t, NULL, &err);
	TAP_OK(c && train_chat_get_format(c) == TRAIN_CHAT_CHATML, "tiny: template detected as chatml");
	free(err);
	if (c) {
		static const store_msg badrole[] = {{"robot", "x"}};
		char *text = NULL;
		TAP_OK(train_chat_render(c, badrole, 1, 0, &text) == TRAIN_CHAT_EINPUT &&
			       strstr(train_chat_errmsg(c), "role"),
		       "bad role rejected: %s", train_chat_errmsg(c));
		static const store_msg nocontent[] = {{"user", NULL}};
		TAP_OK(train_chat_render(c, nocontent, 1, 0, &text) == TRAIN_CHAT_EINPUT,
		       "missing content rejected");
		int32_t *ids = NULL;
		size_t n = 0;
		TAP_OK(train_chat_encode(c, conv + 1, 1, 1, &ids, &n) == 0 && n > 4 && ids[0] == 1 &&
			       ids[n - 1] == 3 + '\n',
		       "tiny: chat encode starts with <|im_start|> and ends with a newline");
		free(ids);
		TAP_IS_STR(train_chat_turn_end(c), "<|im_end|>", "chatml turn end");
		train_chat_free(c);
	}
	err = NULL;
	c = train_chat_new(t, "llama2", &err);
	if (c) {
		static const store_msg twousers[] = {{"user", "a"}, {"user", "b"}};
		char *text = NULL;
		TAP_OK(train_chat_render(c, twousers, 2, 0, &text) == TRAIN_CHAT_EINPUT &&
			       strstr(train_chat_errmsg(c), "alternating"),
		       "llama2: two user messages in a row rejected");
		train_chat_free(c);
	}
	err = NULL;
	c = train_chat_new(t, "nope", &err);
	TAP_OK(!c && err && strstr(err, "nope"), "bad --chat-format name: %s", err ? err : "");
	free(err);
	train_tokenizer_free(t);
	train_chat_free(NULL);
}

/* tests/data/tokenizer/jinja: a chat_template.jinja with a default system
 * message; the override by name must not use it. */
static void default_system_test(const char *top)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/jinja", top), *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	free(dir);
	if (!TAP_OK(t != NULL, "jinja tokenizer loads (%s)", err ? err : "ok")) {
		free(err);
		return;
	}
	static const store_msg m[] = {{"user", "q"}, {"system", "S"}};
	char *text = NULL;
	train_chat *c = train_chat_new(t, NULL, &err);
	if (c)
		train_chat_render(c, m, 1, 1, &text);
	TAP_IS_STR(text,
		   "<|im_start|>system\nYou are a test assistant.<|im_end|>\n"
		   "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
		   "chat_template.jinja: default system message");
	free(text);
	text = NULL;
	if (c)
		train_chat_render(c, m + 1, 1, 0, &text);
	TAP_IS_STR(text, "<|im_start|>system\nS<|im_end|>\n", "given system message wins");
	free(text);
	text = NULL;
	train_chat_free(c);
	c = train_chat_new(t, "chatml", &err);
	if (c)
		train_chat_render(c, m, 1, 1, &text);
	TAP_IS_STR(text,
		   "<|im_start|>system\nYou are a test assistant.<|im_end|>\n"
		   "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
		   "chatml named explicitly: the template's default system message still applies");
	free(text);
	text = NULL;
	train_chat_free(c);
	/* a tokenizer without a template, format named: nothing is invented */
	static const char json[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}";
	train_tokenizer *bare = train_tokenizer_from_json(json, strlen(json), "bare", &err);
	c = bare ? train_chat_new(bare, "chatml", &err) : NULL;
	if (c)
		train_chat_render(c, m, 1, 1, &text);
	TAP_IS_STR(text, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
		   "chatml without a template: no default system message");
	free(text);
	train_chat_free(c);
	err = NULL;
	c = bare ? train_chat_new(bare, NULL, &err) : NULL;
	TAP_OK(!c && err && strstr(err, "no chat template") && strstr(err, "--chat-format"),
	       "no template, no override: %s", err ? err : "");
	train_chat_free(c);
	train_tokenizer_free(bare);
	train_tokenizer_free(t);
	free(err);
}

/* tests/data/tokenizer/llama31: the Llama-3.1 system preamble. */
static void llama31_test(const char *top)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/llama31", top), *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	free(dir);
	train_chat *c = t ? train_chat_new(t, NULL, &err) : NULL;
	TAP_OK(c && train_chat_get_format(c) == TRAIN_CHAT_LLAMA3, "llama31: detected as llama3 (%s)",
	       err ? err : "ok");
	static const store_msg m[] = {{"system", " Sys "}, {"user", "Hi"}};
	char *text = NULL;
	if (c)
		train_chat_render(c, m + 1, 1, 1, &text);
	TAP_IS_STR(text,
		   "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: March "
		   "2029\nToday Date: 01 Jan 2030\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
		   "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
		   "llama31: preamble without a system message");
	free(text);
	text = NULL;
	if (c)
		train_chat_render(c, m, 2, 0, &text);
	TAP_IS_STR(text,
		   "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: March "
		   "2029\nToday Date: 01 Jan 2030\n\nSys<|eot_id|><|start_header_id|>user"
		   "<|end_header_id|>\n\nHi<|eot_id|>",
		   "llama31: preamble with a system message");
	free(text);
	train_chat_free(c);
	train_tokenizer_free(t);
	free(err);
}

static void oracle_test(const char *sh)
{
	char *dir = xasprintf("%s/fixtures/tokenizer-qwen", sh);
	char *opath = xasprintf("%s/tokenizer_oracle.json", dir);
	char *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	FILE *f = fopen(opath, "rb");
	util_buf b = UTIL_BUF_INIT;
	char chunk[4096];
	size_t r;
	while (f && (r = fread(chunk, 1, sizeof chunk, f)) > 0)
		util_buf_add(&b, chunk, r);
	if (f)
		fclose(f);
	cJSON *j = cJSON_Parse(util_buf_str(&b));
	util_buf_free(&b);
	const cJSON *chat = cJSON_GetObjectItem(j, "chat");
	if (!TAP_OK(t && chat, "qwen chat oracle loads (%s)", err ? err : "ok"))
		goto out;
	train_chat *c = train_chat_new(t, NULL, &err);
	if (!TAP_OK(c && train_chat_get_format(c) == TRAIN_CHAT_CHATML, "qwen template is chatml"))
		goto out;
	const cJSON *msgs = cJSON_GetObjectItem(chat, "messages"), *it;
	size_t n = 0;
	store_msg m[16];
	cJSON_ArrayForEach(it, msgs)
	{
		if (n == 16)
			break;
		m[n].role = cJSON_GetObjectItem(it, "role")->valuestring;
		m[n].content = cJSON_GetObjectItem(it, "content")->valuestring;
		n++;
	}
	static const struct {
		const char *text_key, *ids_key;
		int gen;
	} v[] = {{"text", "ids", 0}, {"generation_prompt_text", "generation_prompt_ids", 1}};
	for (int k = 0; k < 2; k++) {
		/* the generation prompt is rendered for the conversation before the
		 * final assistant message */
		size_t nm = v[k].gen ? n - 1 : n;
		char *text = NULL;
		train_chat_render(c, m, nm, v[k].gen, &text);
		TAP_IS_STR(text, cJSON_GetObjectItem(chat, v[k].text_key)->valuestring,
			   "qwen chat: %s", v[k].text_key);
		free(text);
		int32_t *ids = NULL;
		size_t nids = 0;
		int rc = train_chat_encode(c, m, nm, v[k].gen, &ids, &nids);
		const cJSON *want = cJSON_GetObjectItem(chat, v[k].ids_key);
		int ok = rc == 0 && nids == (size_t)cJSON_GetArraySize(want);
		for (size_t i = 0; ok && i < nids; i++)
			ok = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
		TAP_OK(ok, "qwen chat: %s exact (%zu ids)", v[k].ids_key, nids);
		free(ids);
	}
	train_chat_free(c);
out:
	free(err);
	cJSON_Delete(j);
	train_tokenizer_free(t);
	free(dir);
	free(opath);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	util_buf b = UTIL_BUF_INIT;
	char chunk[4096];
	size_t r;
	while (f && (r = fread(chunk, 1, sizeof chunk, f)) > 0)
		util_buf_add(&b, chunk, r);
	if (f)
		fclose(f);
	return f ? util_buf_detach(&b) : NULL;
}

static void write_all(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* A tokenizer folder of the tiny tokenizer with the fixture template tpl as
 * chat_template.jinja (which wins over tokenizer_config.json's). */
static train_tokenizer *tok_with_template(const char *top, const char *sh, const char *tpl,
					  char **dir)
{
	*dir = tap_tmpdir("dpo-chat");
	static const char *const files[] = {"tokenizer.json", "tokenizer_config.json"};
	for (int i = 0; i < 2; i++) {
		char *src = xasprintf("%s/tests/data/tokenizer/tiny/%s", top, files[i]);
		char *dst = xasprintf("%s/%s", *dir, files[i]);
		char *text = read_all(src);
		if (text)
			write_all(dst, text);
		free(text);
		free(src);
		free(dst);
	}
	char *src = xasprintf("%s/fixtures/chat-templates/%s", sh, tpl);
	char *dst = xasprintf("%s/chat_template.jinja", *dir);
	char *text = read_all(src);
	if (text)
		write_all(dst, text);
	free(text);
	free(src);
	free(dst);
	char *err = NULL;
	train_tokenizer *t = train_tokenizer_load(*dir, &err);
	if (!t)
		tap_diag("%s", err);
	free(err);
	return t;
}

/* Templates interpreted through train_chat: the Qwen3 fixture renders the
 * oracle's texts (enable_thinking set with train_chat_set_assignment, as
 * --chat-var does), Gemma's raise_exception is the error, and bad
 * variable settings are refused. */
static void template_test(const char *top, const char *sh)
{
	char *opath = xasprintf("%s/fixtures/chat-templates/oracle.json", sh);
	char *otext = read_all(opath);
	cJSON *oracle = otext ? cJSON_Parse(otext) : NULL;
	free(otext);
	free(opath);
	char *dir = NULL;
	train_tokenizer *t = tok_with_template(top, sh, "Qwen-Qwen3-0.6B.jinja", &dir);
	char *err = NULL;
	train_chat *c = t ? train_chat_new(t, NULL, &err) : NULL;
	TAP_OK(c && train_chat_uses_template(c) && train_chat_get_format(c) == TRAIN_CHAT_CHATML &&
		       !strncmp(train_chat_describe(c), "jinja:", 6),
	       "qwen3 template: interpreted (%s), recognised as chatml", c ? train_chat_describe(c) : err);
	free(err);
	int checked = 0;
	const cJSON *cs;
	cJSON_ArrayForEach(cs, cJSON_GetObjectItem(oracle, "cases"))
	{
		if (!c || strcmp(cJSON_GetObjectItem(cs, "template")->valuestring, "Qwen-Qwen3-0.6B.jinja"))
			continue;
		const cJSON *extra = cJSON_GetObjectItem(cs, "extra");
		const cJSON *think = cJSON_GetObjectItem(extra, "enable_thinking");
		train_chat *cc = train_chat_new(t, NULL, NULL);
		if (think)
			train_chat_set_assignment(cc, cJSON_IsTrue(think) ? "enable_thinking=true"
								: "enable_thinking=false");
		char *mj = cJSON_PrintUnformatted(cJSON_GetObjectItem(cs, "messages")), *text = NULL;
		int gen = cJSON_IsTrue(cJSON_GetObjectItem(cs, "add_generation_prompt"));
		train_chat_render_json(cc, mj, gen, &text);
		const char *want = cJSON_GetObjectItem(cs, "text")->valuestring;
		if (!text || strcmp(text, want)) {
			TAP_IS_STR(text, want, "qwen3 case conv %d gen %d", cJSON_GetObjectItem(cs, "conversation")->valueint, gen);
		} else {
			checked++;
		}
		free(text);
		free(mj);
		train_chat_free(cc);
	}
	TAP_OK(checked == 36, "qwen3: %d oracle cases rendered through train_chat", checked);
	/* variables */
	if (c) {
		TAP_OK(train_chat_set_assignment(c, "messages=[]") == TRAIN_CHAT_EINPUT &&
			       strstr(train_chat_errmsg(c), "set by the renderer"),
		       "--chat-var messages refused: %s", train_chat_errmsg(c));
		TAP_OK(train_chat_set_assignment(c, "1x=2") == TRAIN_CHAT_EINPUT, "bad name refused");
		TAP_OK(train_chat_set_assignment(c, "novalue") == TRAIN_CHAT_EINPUT &&
			       strstr(train_chat_errmsg(c), "NAME=VALUE"),
		       "assignment without = refused");
		static const store_msg m[] = {{"user", "Hi"}};
		char *text = NULL;
		train_chat_set_assignment(c, "enable_thinking=false");
		train_chat_set_assignment(c, "enable_thinking=true"); /* the later one wins */
		train_chat_render(c, m, 1, 1, &text);
		TAP_IS_STR(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
			   "the later --chat-var wins");
		free(text);
		int32_t *ids = NULL;
		size_t n = 0;
		TAP_OK(train_chat_encode(c, m, 1, 1, &ids, &n) == 0 && n > 3 && ids[0] == 1,
		       "encode through the template (%zu ids)", n);
		free(ids);
	}
	train_chat_free(c);
	train_tokenizer_free(t);
	tap_rmtree(dir);
	free(dir);
	/* the template's own refusal */
	t = tok_with_template(top, sh, "google-gemma-2-2b-it.jinja", &dir);
	c = t ? train_chat_new(t, NULL, NULL) : NULL;
	static const store_msg sys[] = {{"system", "S"}, {"user", "Hi"}};
	char *text = NULL;
	int rc = c ? train_chat_render(c, sys, 2, 1, &text) : 0;
	TAP_OK(rc == TRAIN_CHAT_ETEMPLATE && !text && strstr(train_chat_errmsg(c), "System role not supported"),
	       "gemma + system: the template's error: %s", c ? train_chat_errmsg(c) : "");
	rc = c ? train_chat_render(c, sys + 1, 1, 1, &text) : -1;
	TAP_OK(rc == 0 && text && strstr(text, "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"),
	       "gemma + user: rendered");
	free(text);
	TAP_OK(c && train_chat_get_format(c) == TRAIN_CHAT_JINJA, "gemma: of no family (jinja)");
	train_chat_free(c);
	train_tokenizer_free(t);
	tap_rmtree(dir);
	free(dir);
	/* a template that does not parse is an error naming --chat-format */
	dir = tap_tmpdir("dpo-chat");
	char *p = xasprintf("%s/tests/data/tokenizer/tiny/tokenizer.json", top), *q = xasprintf("%s/tokenizer.json", dir);
	char *tj = read_all(p);
	if (tj)
		write_all(q, tj);
	free(tj);
	free(p);
	free(q);
	q = xasprintf("%s/chat_template.jinja", dir);
	write_all(q, "{% if messages %}\n{{ messages | nosuch }}{% endif %}");
	free(q);
	err = NULL;
	t = train_tokenizer_load(dir, &err);
	free(err);
	err = NULL;
	c = t ? train_chat_new(t, NULL, &err) : NULL;
	TAP_OK(!c && err && strstr(err, "chat_template:2: unknown filter \"nosuch\"") && strstr(err, "--chat-format"),
	       "bad template: %s", err ? err : "");
	free(err);
	train_chat_free(c);
	train_tokenizer_free(t);
	tap_rmtree(dir);
	free(dir);
	cJSON_Delete(oracle);
}

int main(void)
{
	const char *top = getenv("top_srcdir");
	local_tests(top ? top : ".");
	default_system_test(top ? top : ".");
	llama31_test(top ? top : ".");
	const char *sh = tap_shared_dir();
	if (sh) {
		oracle_test(sh);
		template_test(top ? top : ".", sh);
	} else {
		tap_diag("SKIP chat oracle: $DPO_SHARED not found");
	}
	return tap_done();
}
