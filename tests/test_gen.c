/* test_gen.c: the generation module (train/gen.h): plain and chat prompt
 * encoding with BOS once, the end-of-sequence sets (config.json list,
 * generation_config.json, tokenizer EOS, the chat template's end of turn),
 * the prompt length check and the generator identity. Uses the small
 * tokenizers of tests/data/tokenizer (see their READMEs) and a tiny random
 * model written to a temporary folder. */
#include "config.h"
#include "tests/tap.h"
#include "train/gen.h"
#include "util/xmalloc.h"

#include <dirent.h>
#include <unistd.h>

static const char *top = ".";

static train_tokenizer *load_tok(const char *name)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/%s", top, name), *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	if (!t)
		tap_diag("%s tokenizer: %s", name, err);
	free(err);
	free(dir);
	return t;
}

static int count(const int32_t *ids, size_t n, int32_t id)
{
	int c = 0;
	for (size_t i = 0; i < n; i++)
		c += ids[i] == id;
	return c;
}

static int same_set(const int32_t *got, size_t n, const int32_t *want, size_t nw)
{
	if (n != nw)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i])
			return 0;
	return 1;
}

static void diag_ids(const char *what, const int32_t *ids, size_t n)
{
	util_buf b = UTIL_BUF_INIT;
	for (size_t i = 0; i < n; i++)
		util_buf_addf(&b, "%s%d", i ? " " : "", ids[i]);
	tap_diag("%s: [%s]", what, util_buf_str(&b));
	util_buf_free(&b);
}

/* tiny: no BOS, EOS <|end|> (0), a ChatML template (<|im_start|> 1,
 * <|im_end|> 2), byte b is id 3 + b, "the" is one token (260). */
static void encode_tiny(void)
{
	train_tokenizer *t = load_tok("tiny");
	if (!TAP_OK(t != NULL, "the tiny tokenizer (tests/data) loads"))
		return;
	char *err = NULL;
	train_gen_encoder *e = train_gen_encoder_new(NULL, t, NULL, 0, &err);
	TAP_OK(e != NULL, "tiny: encoder (%s)", err ? err : "ok");
	free(err);
	err = NULL;
	train_gen_prompt p;
	int rc = train_gen_encode_prompt(e, "the", NULL, &p, &err);
	TAP_OK(rc == 0 && p.n == 1 && p.ids[0] == 260 && !p.chat,
	       "tiny: plain text, no BOS (the tokenizer has none)");
	TAP_OK(train_gen_encoder_chat(e) == NULL, "tiny: no chat template loaded for plain text");
	train_gen_prompt_free(&p);
	TAP_OK(p.ids == NULL && p.n == 0, "prompt_free clears the prompt");
	rc = train_gen_encode_prompt(e, NULL, "[{\"role\":\"user\",\"content\":\"the\"}]", &p, &err);
	/* <|im_start|>user\nthe<|im_end|>\n<|im_start|>assistant\n */
	TAP_OK(rc == 0 && p.chat && p.n > 6 && p.ids[0] == 1 && p.ids[p.n - 1] == 3 + '\n' &&
		       count(p.ids, p.n, 2) == 1 && count(p.ids, p.n, 260) == 1,
	       "tiny: a conversation goes through the ChatML template");
	train_gen_prompt_free(&p);
	TAP_OK(train_gen_encoder_chat(e) != NULL &&
		       train_chat_get_format(train_gen_encoder_chat(e)) == TRAIN_CHAT_CHATML,
	       "tiny: template detected at the first conversation");
	rc = train_gen_encode_prompt(e, NULL, "{\"role\":\"user\"}", &p, &err);
	TAP_OK(rc == -1 && err && strstr(err, "list"), "a conversation that is not a list: %s",
	       err ? err : "(none)");
	free(err);
	err = NULL;
	train_gen_encoder_free(e);

	/* --chat: plain text as a user turn, the same ids as the conversation */
	e = train_gen_encoder_new(NULL, t, NULL, 1, &err);
	train_gen_prompt q;
	int r1 = e ? train_gen_encode_prompt(e, "the", NULL, &p, &err) : -1;
	int r2 = e ? train_gen_encode_prompt(e, NULL, "[{\"role\":\"user\",\"content\":\"the\"}]",
					     &q, &err)
		   : -1;
	TAP_OK(r1 == 0 && r2 == 0 && p.chat && same_set(p.ids, p.n, q.ids, q.n),
	       "chat_plain: plain text renders as one user turn");
	train_gen_prompt_free(&p);
	train_gen_prompt_free(&q);
	store_msg msgs[] = {{"system", "S"}, {"user", "the"}};
	rc = e ? train_gen_encode_messages(e, msgs, 2, &p, &err) : -1;
	TAP_OK(rc == 0 && p.chat && count(p.ids, p.n, 1) == 3, "messages: system + user + assistant "
	       "opening");
	train_gen_prompt_free(&p);
	train_gen_encoder_free(e);
	train_tokenizer_free(t);
}

/* family: <s> (1) is BOS with add_bos_token true, </s> (2) EOS, a-z are
 * 3-28, no chat template. */
static void encode_family(void)
{
	train_tokenizer *t = load_tok("family");
	if (!TAP_OK(t != NULL, "the family tokenizer (tests/data) loads"))
		return;
	char *err = NULL;
	train_gen_encoder *e = train_gen_encoder_new(NULL, t, NULL, 0, &err);
	train_gen_prompt p;
	int rc = train_gen_encode_prompt(e, "ab", NULL, &p, &err);
	TAP_OK(rc == 0 && p.n == 3 && p.ids[0] == 1 && p.ids[1] == 3 && p.ids[2] == 4,
	       "family: plain text gets BOS in front");
	train_gen_prompt_free(&p);
	rc = train_gen_encode_prompt(e, "<s>ab", NULL, &p, &err);
	TAP_OK(rc == 0 && p.n == 3 && count(p.ids, p.n, 1) == 1, "family: BOS once when the text "
	       "starts with it");
	if (rc == 0 && p.n != 3)
		diag_ids("got", p.ids, p.n);
	train_gen_prompt_free(&p);
	rc = train_gen_encode_prompt(e, "", NULL, &p, &err);
	TAP_OK(rc == 0 && p.n == 1 && p.ids[0] == 1, "family: empty text is BOS alone");
	train_gen_prompt_free(&p);
	rc = train_gen_encode_prompt(e, NULL, "[{\"role\":\"user\",\"content\":\"ab\"}]", &p, &err);
	TAP_OK(rc == -1 && err && strstr(err, "--chat-format"),
	       "family: a conversation without a template names --chat-format: %s",
	       err ? err : "(none)");
	free(err);
	err = NULL;
	rc = train_gen_encode_prompt(e, "a\xff", NULL, &p, &err);
	TAP_OK(rc == -1 && err, "invalid UTF-8 is an error: %s", err ? err : "(none)");
	free(err);
	err = NULL;
	train_gen_encoder_free(e);

	/* the template's own BOS is the only one */
	static const char *const fmts[] = {"llama2", "mistral"};
	for (int i = 0; i < 2; i++) {
		e = train_gen_encoder_new(NULL, t, fmts[i], 1, &err);
		rc = e ? train_gen_encode_prompt(e, "ab", NULL, &p, &err) : -1;
		TAP_OK(rc == 0 && p.chat && p.n > 3 && p.ids[0] == 1 && count(p.ids, p.n, 1) == 1,
		       "family, %s: BOS once in the chat rendering", fmts[i]);
		train_gen_prompt_free(&p);
		train_gen_encoder_free(e);
	}

	/* chat_plain with no template at all: reported at once */
	e = train_gen_encoder_new(NULL, t, NULL, 1, &err);
	TAP_OK(!e && err && strstr(err, "no chat template"), "chat_plain without a template: %s",
	       err ? err : "(none)");
	free(err);
	err = NULL;
	train_tokenizer_free(t);
}

static void encoder_errors(void)
{
	train_tokenizer *t = load_tok("tiny");
	char *err = NULL;
	train_gen_encoder *e = t ? train_gen_encoder_new(NULL, t, "vicuna", 0, &err) : NULL;
	TAP_OK(!e && err && strstr(err, "vicuna"), "a bad chat format name fails at once: %s",
	       err ? err : "(none)");
	free(err);
	err = NULL;
	e = t ? train_gen_encoder_new(NULL, t, "QWEN", 0, &err) : NULL;
	TAP_OK(e && train_gen_encoder_chat(e) &&
		       train_chat_get_format(train_gen_encoder_chat(e)) == TRAIN_CHAT_CHATML,
	       "a named format is loaded at once");
	train_gen_encoder_free(e);
	train_gen_encoder_free(NULL);
	train_gen_prompt_free(NULL);
	train_tokenizer_free(t);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	free(p);
}

/* A tiny Llama with eos_token_id [5, 7] and context 16, saved to a folder
 * and loaded back (so that it has a folder for generation_config.json). */
static train_model *eos_model(const char *dir, const char *genconfig)
{
	static const char cfg[] =
		"{\"model_type\":\"llama\",\"vocab_size\":300,\"hidden_size\":16,"
		"\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
		"\"intermediate_size\":24,\"max_position_embeddings\":16,\"rms_norm_eps\":1e-5,"
		"\"rope_theta\":10000.0,\"eos_token_id\":[5,7]}";
	char *err = NULL;
	train_model *m = train_model_init(cfg, sizeof cfg - 1, 1, &err);
	if (!m || train_model_save(m, dir, &err)) {
		tap_diag("model: %s", err);
		free(err);
		train_model_free(m);
		return NULL;
	}
	train_model_free(m);
	char *gpath = xasprintf("%s/generation_config.json", dir);
	unlink(gpath);
	free(gpath);
	if (genconfig)
		write_text(dir, "generation_config.json", genconfig);
	m = train_model_load(dir, &err);
	if (!m)
		tap_diag("load: %s", err);
	free(err);
	return m;
}

static void eos_sets(void)
{
	char *dir = tap_tmpdir("dpo-gen"), *err = NULL;
	train_tokenizer *t = load_tok("tiny");
	int32_t set[TRAIN_GEN_MAX_EOS];
	size_t n = 0;

	train_model *m = eos_model(dir, NULL);
	if (!TAP_OK(m && t, "the EOS test model and tokenizer load"))
		goto out;
	static const int32_t cfg_only[] = {5, 7};
	int rc = train_gen_eos_ids(m, NULL, NULL, set, TRAIN_GEN_MAX_EOS, &n, &err);
	TAP_OK(rc == 0 && same_set(set, n, cfg_only, 2), "config.json's list of eos ids");
	static const int32_t with_tok[] = {5, 7, 0};
	rc = train_gen_eos_ids(m, t, NULL, set, TRAIN_GEN_MAX_EOS, &n, &err);
	TAP_OK(rc == 0 && same_set(set, n, with_tok, 3), "and the tokenizer's EOS <|end|>");
	train_model_free(m);

	m = eos_model(dir, "{\"bos_token_id\": 0, \"eos_token_id\": [7, 9, 5]}");
	static const int32_t with_gen[] = {5, 7, 9, 0};
	rc = m ? train_gen_eos_ids(m, t, NULL, set, TRAIN_GEN_MAX_EOS, &n, &err) : -1;
	TAP_OK(rc == 0 && same_set(set, n, with_gen, 4),
	       "generation_config.json's list joins, each id once");
	if (rc == 0 && n != 4)
		diag_ids("got", set, n);
	train_chat *c = train_chat_new(t, NULL, &err);
	static const int32_t with_chat[] = {5, 7, 9, 0, 2};
	rc = m && c ? train_gen_eos_ids(m, t, c, set, TRAIN_GEN_MAX_EOS, &n, &err) : -1;
	TAP_OK(rc == 0 && same_set(set, n, with_chat, 5),
	       "a ChatML prompt also ends at <|im_end|> (the template's end of turn)");
	rc = m && c ? train_gen_eos_ids(m, t, c, set, 2, &n, &err) : -1;
	TAP_OK(rc == 0 && n == 2, "at most cap ids");

	/* the encoder: plain prompts end at the base set, chat prompts also at
	 * the end of turn; the sets do not depend on the order of prompts */
	train_gen_encoder *e = m ? train_gen_encoder_new(m, t, NULL, 0, &err) : NULL;
	train_gen_prompt p1, p2, p3;
	int ok = e && !train_gen_encode_prompt(e, "the", NULL, &p1, &err) &&
		 !train_gen_encode_prompt(e, NULL, "[{\"role\":\"user\",\"content\":\"x\"}]", &p2,
					  &err) &&
		 !train_gen_encode_prompt(e, "the", NULL, &p3, &err);
	TAP_OK(ok && same_set(p1.eos, (size_t)p1.n_eos, with_gen, 4) &&
		       same_set(p2.eos, (size_t)p2.n_eos, with_chat, 5) &&
		       same_set(p3.eos, (size_t)p3.n_eos, with_gen, 4),
	       "encoder: plain prompts end at the model's ids, conversations at the end of turn too");
	/* generation ends at the prompt's set and says which id ended it */
	if (ok) {
		train_gen_opts o = {.max_new = 4};
		train_sampling_default(&o.sampling);
		o.sampling.greedy = 1;
		const int32_t *pp = p1.ids;
		int plen = (int)p1.n;
		train_gen_result r1 = {0}, r2 = {0};
		int g1 = train_generate(m, 1, &pp, &plen, NULL, &o, &r1, &err);
		int32_t first = g1 == 0 && r1.n > 0 ? r1.ids[0] : -1;
		int32_t ends[] = {first};
		o.eos = ends;
		o.n_eos = 1;
		int g2 = train_generate(m, 1, &pp, &plen, NULL, &o, &r2, &err);
		TAP_OK(g1 == 0 && r1.end_id == -1 && g2 == 0 && r2.finish == TRAIN_FINISH_EOS &&
			       r2.n == 0 && r2.end_id == first,
		       "generate: end_id is the EOS id that ended the row (%d)", (int)first);
		free(r1.ids);
		free(r2.ids);
	}
	if (ok) {
		train_gen_prompt_free(&p1);
		train_gen_prompt_free(&p2);
		train_gen_prompt_free(&p3);
	}
	/* the prompt length check: context 16 */
	TAP_OK(train_gen_prompt_fits(m, 15, &err) == 0, "15 tokens fit a context of 16");
	rc = train_gen_prompt_fits(m, 16, &err);
	TAP_OK(rc == -1 && err && !strcmp(err, "16 tokens do not fit the context of 16"),
	       "16 do not: %s", err ? err : "(none)");
	free(err);
	err = NULL;
	rc = train_gen_prompt_fits(m, 0, &err);
	TAP_OK(rc == -1 && err && strstr(err, "empty"), "an empty prompt: %s", err ? err : "(none)");
	free(err);
	err = NULL;
	train_gen_encoder_free(e);
	train_chat_free(c);
	train_model_free(m);

	m = eos_model(dir, "{\"eos_token_id\": \"</s>\"}");
	rc = m ? train_gen_eos_ids(m, t, NULL, set, TRAIN_GEN_MAX_EOS, &n, &err) : 0;
	TAP_OK(rc == -1 && err && strstr(err, "generation_config.json") && strstr(err, "eos_token_id"),
	       "a bad generation_config.json names the file and field: %s", err ? err : "(none)");
	free(err);
	err = NULL;
	e = m ? train_gen_encoder_new(m, t, NULL, 0, &err) : NULL;
	TAP_OK(!e && err && strstr(err, "generation_config.json"), "and fails the encoder");
	free(err);
	err = NULL;
	train_model_free(m);
out:
	train_tokenizer_free(t);
	tap_rmtree(dir);
	free(dir);
}

static char *params_text(const train_gen_params *p)
{
	util_buf b = UTIL_BUF_INIT;
	train_gen_params_json(&b, p);
	return util_buf_detach(&b);
}

static void identity(void)
{
	train_gen_params p = {.seed = 0, .max_new = 256};
	train_sampling_default(&p.sampling);
	char *base = params_text(&p);
	/* dpo-generate's stored form: a change here orphans users' generators */
	TAP_IS_STR(base,
		   "{\"greedy\":false,\"max_new_tokens\":256,\"min_p\":0,\"seed\":0,\"stop\":[],"
		   "\"temperature\":1,\"top_k\":0,\"top_p\":1}",
		   "identity: the canonical form of the defaults");
	char *again = params_text(&p);
	TAP_IS_STR(again, base, "identity: stable");
	free(again);
	static const char *const stops[] = {"a\"b", "x"};
	p.sampling.min_p = 0.05;
	p.sampling.temperature = 0.7;
	p.sampling.top_k = 5;
	p.sampling.top_p = 0.9;
	p.seed = 4;
	p.max_new = 6;
	p.stops = stops;
	p.nstops = 2;
	char *full = params_text(&p);
	TAP_IS_STR(full,
		   "{\"greedy\":false,\"max_new_tokens\":6,\"min_p\":0.050000000000000003,\"seed\":4,"
		   "\"stop\":[\"a\\\"b\",\"x\"],\"temperature\":0.69999999999999996,\"top_k\":5,"
		   "\"top_p\":0.90000000000000002}",
		   "identity: every parameter, as dpo-generate stored it");
	free(full);

	/* each parameter on its own changes the identity */
	static const char *const what[] = {"greedy", "temperature", "top_k", "top_p", "min_p",
					   "seed", "max_new_tokens", "stop", "stop text", "chat",
					   "chat_format"};
	static const char *const one[] = {"x"}, *const other[] = {"y"};
	for (size_t i = 0; i < sizeof what / sizeof *what; i++) {
		train_gen_params q = {.seed = 0, .max_new = 256};
		train_sampling_default(&q.sampling);
		if (i == 8) { /* compare "stop text" against one stop string */
			q.stops = one;
			q.nstops = 1;
		}
		char *before = params_text(&q);
		switch (i) {
		case 0: q.sampling.greedy = 1; break;
		case 1: q.sampling.temperature = 0.5; break;
		case 2: q.sampling.top_k = 40; break;
		case 3: q.sampling.top_p = 0.95; break;
		case 4: q.sampling.min_p = 0.1; break;
		case 5: q.seed = 1; break;
		case 6: q.max_new = 255; break;
		case 7: q.stops = one; q.nstops = 1; break;
		case 8: q.stops = other; break;
		case 9: q.chat_plain = 1; break;
		case 10: q.chat_format = "llama3"; break;
		}
		char *after = params_text(&q);
		TAP_OK(strcmp(before, after) != 0, "identity changes with %s: %s", what[i], after);
		free(before);
		free(after);
	}
	train_gen_params a = {.max_new = 8, .chat_plain = 1, .chat_format = "QWEN"};
	train_sampling_default(&a.sampling);
	char *ta = params_text(&a);
	a.chat_format = "chatml";
	char *tb = params_text(&a);
	TAP_IS_STR(ta, tb, "identity: a format's alias names the same format");
	TAP_IS_STR(ta,
		   "{\"chat\":true,\"chat_format\":\"chatml\",\"greedy\":false,\"max_new_tokens\":8,"
		   "\"min_p\":0,\"seed\":0,\"stop\":[],\"temperature\":1,\"top_k\":0,\"top_p\":1}",
		   "identity: chat keys sorted in front");
	free(ta);
	free(tb);
	free(base);
}

int main(void)
{
	const char *t = getenv("top_srcdir");
	if (t)
		top = t;
	encode_tiny();
	encode_family();
	encoder_errors();
	eos_sets();
	identity();
	return tap_done();
}
