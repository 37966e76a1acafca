/* test_tokenizer.c: the tokenizer against the Hugging Face oracles in
 * $DPO_SHARED/fixtures (exact ids, exact decoded text) in every file layout,
 * plus a tiny tokenizer of our own in tests/data/tokenizer/ that always runs,
 * and the error paths. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tests/tap.h"
#include "train/tokenizer.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/xmalloc.h"

static char *slurp(const char *path, size_t *len)
{
	return util_read_file(path, len);
}

static void ids_str(util_buf *b, const int32_t *ids, size_t n)
{
	util_buf_addc(b, '[');
	for (size_t i = 0; i < n; i++)
		util_buf_addf(b, "%s%d", i ? "," : "", ids[i]);
	util_buf_addc(b, ']');
}

/* Check one encode/decode row; want_dec NULL means "decode == text". */
static void check_row(train_tokenizer *t, const char *label, int row, const char *text,
		      const cJSON *want_ids, const char *want_dec)
{
	int32_t *ids = NULL;
	size_t n = 0;
	int rc = train_tokenizer_encode(t, text, strlen(text), &ids, &n);
	size_t nw = (size_t)cJSON_GetArraySize(want_ids);
	int ok = rc == 0 && n == nw;
	for (size_t i = 0; ok && i < n; i++)
		ok = ids[i] == cJSON_GetArrayItem(want_ids, (int)i)->valueint;
	TAP_OK(ok, "%s: encode row %d", label, row);
	if (!ok) {
		util_buf b = UTIL_BUF_INIT;
		ids_str(&b, ids, n);
		tap_diag("text %s", text);
		tap_diag("got  %s (rc %d %s)", util_buf_str(&b), rc, train_tokenizer_errmsg(t));
		char *w = cJSON_PrintUnformatted(want_ids);
		tap_diag("want %s", w);
		free(w);
		util_buf_free(&b);
	}
	/* decode the oracle ids (not ours) so that decode is tested on its own */
	int32_t *wids = xcalloc(nw ? nw : 1, sizeof *wids);
	for (size_t i = 0; i < nw; i++)
		wids[i] = cJSON_GetArrayItem(want_ids, (int)i)->valueint;
	char *dec = train_tokenizer_decode(t, wids, nw);
	TAP_IS_STR(dec, want_dec ? want_dec : text, "%s: decode row %d", label, row);
	free(dec);
	free(wids);
	free(ids);
}

static void check_oracle(train_tokenizer *t, const char *label, const char *oracle_path)
{
	char *d = slurp(oracle_path, NULL);
	cJSON *j = d ? cJSON_Parse(d) : NULL;
	free(d);
	if (!TAP_OK(t && j, "%s: tokenizer and oracle %s load", label, oracle_path)) {
		cJSON_Delete(j);
		return;
	}
	const cJSON *rows = cJSON_GetObjectItem(j, "encode"), *r;
	int i = 0;
	cJSON_ArrayForEach(r, rows)
	{
		const cJSON *dec = cJSON_GetObjectItem(r, "decoded");
		check_row(t, label, i++, cJSON_GetObjectItem(r, "text")->valuestring,
			  cJSON_GetObjectItem(r, "ids"), cJSON_IsString(dec) ? dec->valuestring : NULL);
	}
	TAP_OK(i >= 20, "%s: oracle has %d rows", label, i);
	cJSON_Delete(j);
}

static train_tokenizer *load_or_diag(train_tokenizer *t, char *err)
{
	if (!t)
		tap_diag("load error: %s", err ? err : "?");
	free(err);
	return t;
}

static void shared_tests(const char *sh)
{
	static const char *const fams[] = {"tokenizer-gpt2", "tokenizer-qwen"};
	for (int f = 0; f < 2; f++) {
		char *dir = xasprintf("%s/fixtures/%s", sh, fams[f]);
		char *oracle = xasprintf("%s/tokenizer_oracle.json", dir);
		char *cfg = xasprintf("%s/tokenizer_config.json", dir);
		char *legacy = xasprintf("%s/tokenizer.legacy-merges.json", dir);
		char *vj = xasprintf("%s/vocab.json", dir);
		char *mt = xasprintf("%s/merges.txt", dir);
		char *label = NULL, *err = NULL;
		train_tokenizer *t;

		t = load_or_diag(train_tokenizer_load(dir, &err), err);
		label = xasprintf("%s tokenizer.json", fams[f]);
		check_oracle(t, label, oracle);
		if (t) {
			TAP_IS_INT(train_tokenizer_eos_id(t), 0, "%s: eos id", label);
			TAP_IS_INT(train_tokenizer_pad_id(t), 0, "%s: pad id", label);
			TAP_IS_INT(train_tokenizer_bos_id(t), -1, "%s: no bos", label);
			TAP_IS_INT(train_tokenizer_add_bos(t), 0, "%s: no add_bos", label);
			TAP_IS_INT(train_tokenizer_vocab_size(t), 1024, "%s: vocab size", label);
			TAP_OK(strlen(train_tokenizer_fingerprint(t)) == 64, "%s: fingerprint",
			       label);
			TAP_OK(train_tokenizer_is_special(t, 1) && !train_tokenizer_is_special(t, 3),
			       "%s: special flags", label);
		}
		train_tokenizer_free(t);
		free(label);

		err = NULL;
		t = load_or_diag(train_tokenizer_load_files(legacy, cfg, &err), err);
		label = xasprintf("%s legacy merges", fams[f]);
		check_oracle(t, label, oracle);
		train_tokenizer_free(t);
		free(label);

		err = NULL;
		/* the two-file layout does not say how to pre-tokenize: the
		 * model's tokenizer class does (GPT2Tokenizer, Qwen2Tokenizer) */
		t = load_or_diag(train_tokenizer_load_vocab_merges(vj, mt, cfg, f ? "qwen2" : "gpt2",
								   &err), err);
		label = xasprintf("%s vocab.json+merges.txt", fams[f]);
		check_oracle(t, label, oracle);
		train_tokenizer_free(t);
		free(label);
		free(dir);
		free(oracle);
		free(cfg);
		free(legacy);
		free(vj);
		free(mt);
	}

	char *err = NULL;
	char *dir = xasprintf("%s/fixtures/tokenizer-llama2", sh);
	char *oracle = xasprintf("%s/tokenizer_oracle.json", dir);
	train_tokenizer *t = load_or_diag(train_tokenizer_load(dir, &err), err);
	check_oracle(t, "tokenizer-llama2", oracle);
	if (t) {
		TAP_IS_INT(train_tokenizer_bos_id(t), 1, "tokenizer-llama2: bos id");
		TAP_IS_INT(train_tokenizer_eos_id(t), 2, "tokenizer-llama2: eos id");
		TAP_IS_INT(train_tokenizer_unk_id(t), 0, "tokenizer-llama2: unk id");
		TAP_IS_INT(train_tokenizer_add_bos(t), 1, "tokenizer-llama2: add_bos_token");
	}
	train_tokenizer_free(t);
	free(dir);
	free(oracle);

	oracle = xasprintf("%s/fixtures/gpt2-real/tokenizer_oracle.json", sh);
	static const char *const real[] = {"data/models/gpt2-tokenizer-hf", "data/models/tiny-gpt2"};
	for (int k = 0; k < 2; k++) {
		dir = xasprintf("%s/%s", sh, real[k]);
		err = NULL;
		t = load_or_diag(train_tokenizer_load(dir, &err), err);
		char *label = xasprintf("gpt2-real %s", real[k]);
		check_oracle(t, label, oracle);
		if (t) {
			int32_t *ids = NULL;
			size_t n = 0;
			int rc = train_tokenizer_encode(t, "Hello world", 11, &ids, &n);
			TAP_OK(rc == 0 && n == 2 && ids[0] == 15496 && ids[1] == 995,
			       "%s: \"Hello world\" -> 15496, 995", label);
			free(ids);
			TAP_IS_INT(train_tokenizer_eos_id(t), 50256, "%s: eos id", label);
			TAP_IS_INT(train_tokenizer_vocab_size(t), 50257, "%s: vocab size", label);
		}
		train_tokenizer_free(t);
		free(label);
		/* the same model's vocab.json + merges.txt */
		char *vj = xasprintf("%s/vocab.json", dir), *mt = xasprintf("%s/merges.txt", dir);
		char *cfg = xasprintf("%s/tokenizer_config.json", dir);
		err = NULL;
		t = load_or_diag(train_tokenizer_load_vocab_merges(vj, mt, cfg, NULL, &err), err);
		label = xasprintf("gpt2-real %s vocab.json+merges.txt", real[k]);
		check_oracle(t, label, oracle);
		train_tokenizer_free(t);
		free(label);
		free(vj);
		free(mt);
		free(cfg);
		free(dir);
	}
	free(oracle);
}

/* ---- the tiny tokenizer of tests/data/tokenizer (always runs) ----------- */

struct tiny_case {
	const char *text;
	int n;
	int32_t ids[16];
};

static void tiny_tests(const char *top)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/tiny", top);
	char *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	if (!TAP_OK(t != NULL, "tiny: loads (%s)", err ? err : "ok")) {
		free(err);
		free(dir);
		return;
	}
	/* ids worked out by hand from tests/data/tokenizer/tiny (see its
	 * README): byte b -> id 3 + b; th 259, the 260, Ġthe 261, he 262,
	 * hel 263, hell 264, 's 265 */
	static const struct tiny_case cases[] = {
		{"the", 1, {260}},
		{" the", 1, {261}},
		{"the the", 2, {260, 261}},
		{"<|end|>", 1, {0}},
		{"a<|end|>b", 3, {100, 0, 101}},
		{"hello", 2, {264, 114}},
		{"", 0, {0}},
		{"  x", 3, {35, 35, 123}},
		{"it's", 3, {108, 119, 265}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const struct tiny_case *c = &cases[i];
		int32_t *ids = NULL;
		size_t n = 0;
		int rc = train_tokenizer_encode(t, c->text, strlen(c->text), &ids, &n);
		int ok = rc == 0 && n == (size_t)c->n;
		for (size_t k = 0; ok && k < n; k++)
			ok = ids[k] == c->ids[k];
		TAP_OK(ok, "tiny: encode \"%s\"", c->text);
		if (!ok) {
			util_buf b = UTIL_BUF_INIT;
			ids_str(&b, ids, n);
			tap_diag("got %s", util_buf_str(&b));
			util_buf_free(&b);
		}
		char *dec = train_tokenizer_decode(t, ids, n);
		TAP_IS_STR(dec, c->text, "tiny: decode \"%s\"", c->text);
		free(dec);
		free(ids);
	}
	/* round trips over awkward text */
	static const char *const rt[] = {
		"caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x99\x82\r\n\t x",
		"   lots   of    space   ",
		"\n\n\n",
		"<|end|><|end|>the<|end|>",
		"\xC2\xA0nbsp\xE2\x80\x8Bzw",
	};
	for (size_t i = 0; i < sizeof rt / sizeof *rt; i++) {
		int32_t *ids = NULL;
		size_t n = 0;
		int rc = train_tokenizer_encode(t, rt[i], strlen(rt[i]), &ids, &n);
		char *dec = rc ? NULL : train_tokenizer_decode(t, ids, n);
		TAP_IS_STR(dec, rt[i], "tiny: round trip %zu", i);
		free(dec);
		free(ids);
	}
	/* invalid UTF-8 is an error with the offset */
	static const char *const bad[] = {"ab\xFF", "\xC3", "x\xED\xA0\x80", "\xC0\x80"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int32_t *ids = NULL;
		size_t n = 0;
		int rc = train_tokenizer_encode(t, bad[i], strlen(bad[i]), &ids, &n);
		TAP_OK(rc == TRAIN_TOK_EINPUT && strstr(train_tokenizer_errmsg(t), "invalid UTF-8"),
		       "tiny: invalid UTF-8 %zu rejected (%s)", i, train_tokenizer_errmsg(t));
		free(ids);
	}
	/* decoding byte tokens that form invalid UTF-8 gives U+FFFD */
	int32_t lone[] = {3 + 0xE4, 3 + 'a'};
	char *dec = train_tokenizer_decode(t, lone, 2);
	TAP_IS_STR(dec, "\xEF\xBF\xBD" "a", "tiny: lone lead byte decodes to U+FFFD");
	free(dec);
	/* accessors */
	TAP_IS_STR(train_tokenizer_token(t, 260), "the", "tiny: token string");
	TAP_IS_INT(train_tokenizer_token_id(t, "\xC4\xA0the"), 261, "tiny: token id");
	TAP_IS_INT(train_tokenizer_token_id(t, "nope"), -1, "tiny: unknown token id");
	TAP_OK(train_tokenizer_token(t, 100000) == NULL, "tiny: token out of range");
	TAP_IS_INT(train_tokenizer_eos_id(t), 0, "tiny: eos id from config");
	TAP_IS_STR(train_tokenizer_eos_token(t), "<|end|>", "tiny: eos token");
	TAP_OK(train_tokenizer_chat_template(t) && strstr(train_tokenizer_chat_template(t), "im_start"),
	       "tiny: chat template read");
	char *bytes = NULL;
	size_t nb = 0;
	TAP_OK(train_tokenizer_token_bytes(t, 261, &bytes, &nb) == 0 && nb == 4 &&
		       !memcmp(bytes, " the", 4), "tiny: token bytes");
	free(bytes);
	/* cache on and off give the same ids */
	const char *txt = "the the then there hello it's the";
	int32_t *a = NULL, *b = NULL;
	size_t na = 0, nb2 = 0;
	train_tokenizer_encode(t, txt, strlen(txt), &a, &na);
	train_tokenizer_set_cache(t, 0);
	train_tokenizer_encode(t, txt, strlen(txt), &b, &nb2);
	TAP_OK(na == nb2 && na && !memcmp(a, b, na * sizeof *a), "tiny: cache off gives same ids");
	free(a);
	free(b);
	train_tokenizer_free(t);
	free(dir);
}

/* tests/data/tokenizer/twofile: the tiny tokenizer as vocab.json + merges.txt,
 * loaded from its directory (no tokenizer.json there). */
static void twofile_tests(const char *top)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/twofile", top), *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	free(dir);
	if (!TAP_OK(t != NULL, "twofile: loads (%s)", err ? err : "ok")) {
		free(err);
		return;
	}
	static const char text[] = "the the<|im_end|>hello";
	static const int32_t want[] = {260, 261, 2, 264, 3 + 'o'};
	int32_t *ids = NULL;
	size_t n = 0;
	int rc = train_tokenizer_encode(t, text, strlen(text), &ids, &n);
	TAP_OK(rc == 0 && n == 5 && !memcmp(ids, want, sizeof want),
	       "twofile: ids as the tokenizer.json version, <|im_end|> special");
	char *dec = train_tokenizer_decode(t, ids, n);
	TAP_IS_STR(dec, text, "twofile: decode");
	free(dec);
	free(ids);
	TAP_IS_INT(train_tokenizer_eos_id(t), 0, "twofile: eos from config");
	TAP_IS_INT(train_tokenizer_add_bos(t), 0, "twofile: no add_bos_token");
	TAP_OK(train_tokenizer_is_special(t, 1), "twofile: <|im_start|> special");
	train_tokenizer_free(t);
}

/* tests/data/tokenizer/split: NFC + Split(Qwen2 regex) + ByteLevel. */
static void split_tests(const char *top)
{
	char *dir = xasprintf("%s/tests/data/tokenizer/split", top), *err = NULL;
	train_tokenizer *t = train_tokenizer_load(dir, &err);
	free(dir);
	if (!TAP_OK(t != NULL, "split: loads (%s)", err ? err : "ok")) {
		free(err);
		return;
	}
	/* pre-tokens "the", " ", "1", "2", " it", "'s": digits one by one, the
	 * space before digits alone, the space before letters joins them */
	static const char text[] = "the 12 it's";
	static const int32_t want[] = {260, 3 + ' ', 3 + '1', 3 + '2', 3 + ' ', 3 + 'i', 3 + 't', 265};
	int32_t *ids = NULL;
	size_t n = 0;
	int rc = train_tokenizer_encode(t, text, strlen(text), &ids, &n);
	TAP_OK(rc == 0 && n == 8 && !memcmp(ids, want, sizeof want), "split: \"%s\"", text);
	free(ids);
	/* decomposed e + U+0301 comes back composed (NFC) */
	ids = NULL;
	rc = train_tokenizer_encode(t, "cafe\xCC\x81", 6, &ids, &n);
	char *dec = rc ? NULL : train_tokenizer_decode(t, ids, n);
	TAP_IS_STR(dec, "caf\xC3\xA9", "split: NFC applied before BPE");
	free(dec);
	free(ids);
	train_tokenizer_free(t);
}

/* ---- errors -------------------------------------------------------------- */

struct err_case {
	const char *json;
	const char *want; /* substring of the message */
};

static void error_tests(void)
{
	static const struct err_case cases[] = {
		{"{", "malformed JSON"},
		{"[]", "top level"},
		{"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "\"model.type\""},
		{"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram"},
		{"{}", "\"model\""},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": [1]}}", "model.vocab"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
		 "model.merges"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}",
		 "two tokens"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}}}", "id must be"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
		 "{\"type\": \"BertPreTokenizer\"}}", "pre_tokenizer.type"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": "
		 "{\"type\": \"Lowercase\"}}", "normalizer.type"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": "
		 "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}}}", "bad regex"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": "
		 "[{\"id\": 0, \"content\": \"b\"}]}", "added_tokens[0]"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"unk_token\": \"<u>\"}}",
		 "model.unk_token"},
		{"{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", "empty"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *err = NULL;
		train_tokenizer *t = train_tokenizer_from_json(cases[i].json, strlen(cases[i].json),
							       "x/tokenizer.json", &err);
		TAP_OK(!t && err && strstr(err, cases[i].want) && strstr(err, "x/tokenizer.json"),
		       "error %zu: %s", i, err ? err : "(none)");
		train_tokenizer_free(t);
		free(err);
	}
	/* a directory whose tokenizer_config.json names an unknown EOS token,
	 * and one whose tokenizer.json is cut short */
	char tmpl[] = "/tmp/dpo-test-tok-XXXXXX";
	char *tmp = mkdtemp(tmpl);
	if (TAP_OK(tmp != NULL, "temporary directory")) {
		char *tj = xasprintf("%s/tokenizer.json", tmp);
		char *cf = xasprintf("%s/tokenizer_config.json", tmp);
		FILE *f = fopen(tj, "w");
		fputs("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", f);
		fclose(f);
		f = fopen(cf, "w");
		fputs("{\"eos_token\": \"</s>\"}", f);
		fclose(f);
		char *e = NULL;
		train_tokenizer *t = train_tokenizer_load(tmp, &e);
		TAP_OK(!t && e && strstr(e, "tokenizer_config.json") && strstr(e, "\"eos_token\""),
		       "config error names file and field: %s", e ? e : "(none)");
		train_tokenizer_free(t);
		free(e);
		e = NULL;
		f = fopen(tj, "w");
		fputs("{\"model\": {\"type\": \"BPE\",\n \"vocab\": {\"a\": 0", f);
		fclose(f);
		t = train_tokenizer_load(tmp, &e);
		TAP_OK(!t && e && strstr(e, "tokenizer.json:2: malformed JSON"),
		       "truncated file names file and line: %s", e ? e : "(none)");
		train_tokenizer_free(t);
		free(e);
		unlink(tj);
		unlink(cf);
		rmdir(tmp);
		free(tj);
		free(cf);
	}
	char *err = NULL;
	train_tokenizer *t = train_tokenizer_load("/nonexistent-dir", &err);
	TAP_OK(!t && err && strstr(err, "/nonexistent-dir"), "missing directory: %s", err);
	free(err);
	train_tokenizer_free(NULL);
}

/* train_tokenizer_copy_files copies every listed file that is present, and
 * only those; a failed copy is reported and the others still copied. */
static void copy_files_tests(void)
{
	char from[] = "/tmp/dpo-test-tokcp-XXXXXX", to[] = "/tmp/dpo-test-tokcp-XXXXXX";
	if (!TAP_OK(mkdtemp(from) && mkdtemp(to), "copy_files: two temporary directories"))
		return;
	int nfiles = 0;
	for (const char *const *f = train_tokenizer_files; *f; f++)
		nfiles++;
	TAP_IS_INT(nfiles, 8, "copy_files: eight file names");
	static const char *const have[] = {"tokenizer.json", "generation_config.json",
					   "tokenizer.model"};
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", from, have[i]);
		util_write_file_atomic(p, have[i], strlen(have[i]));
		free(p);
	}
	char *other = xasprintf("%s/model.safetensors", from);
	util_write_file_atomic(other, "x", 1);
	char *err = NULL;
	TAP_IS_INT(train_tokenizer_copy_files(from, to, &err), 3, "copy_files: the three present");
	int same = 1;
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", to, have[i]);
		char *d = util_read_file(p, NULL);
		same &= d && !strcmp(d, have[i]);
		free(d);
		free(p);
	}
	TAP_OK(same, "copy_files: contents copied");
	char *stray = xasprintf("%s/model.safetensors", to), *absent = xasprintf("%s/vocab.json", to);
	TAP_OK(access(stray, F_OK) != 0 && access(absent, F_OK) != 0,
	       "copy_files: nothing else copied, nothing absent made up");
	char *gone = xasprintf("%s/missing", to);
	TAP_IS_INT(train_tokenizer_copy_files(from, gone, &err), -1,
		   "copy_files into a missing folder fails");
	TAP_OK(err && strstr(err, "tokenizer.json") && strstr(err, gone),
	       "copy_files: the error names the file: %s", err ? err : "(none)");
	free(err);
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", from, have[i]), *q = xasprintf("%s/%s", to, have[i]);
		unlink(p);
		unlink(q);
		free(p);
		free(q);
	}
	unlink(other);
	rmdir(from);
	rmdir(to);
	free(gone);
	free(stray);
	free(absent);
	free(other);
}

int main(void)
{
	const char *top = getenv("top_srcdir");
	tiny_tests(top ? top : ".");
	twofile_tests(top ? top : ".");
	split_tests(top ? top : ".");
	error_tests();
	copy_files_tests();
	const char *sh = tap_shared_dir();
	if (sh)
		shared_tests(sh);
	else
		tap_diag("SKIP oracle parity: $DPO_SHARED not found");
	return tap_done();
}
