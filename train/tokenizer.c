/* tokenizer.c: Hugging Face tokenizers (byte-level BPE, and BPE with byte
 * fallback as in Llama-2/Mistral): loading tokenizer.json, vocab.json +
 * merges.txt and tokenizer_config.json; encoding and decoding. */
#include "train/tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <utf8proc.h>

#include "util/buf.h"
#include "util/file.h"
#include "util/sha256.h"
#include "util/utf8.h"
#include "util/xmalloc.h"

/* ---- small helpers ------------------------------------------------------ */

/* Append s (n bytes) to b, replacing each maximal invalid subpart by U+FFFD. */
static void add_lossy(util_buf *b, const char *s, size_t n)
{
	size_t i = 0, run = 0;
	while (i < n) {
		uint32_t cp;
		int l = util_utf8_decode(s + i, n - i, &cp);
		if (l > 0) {
			i += (size_t)l;
			continue;
		}
		util_buf_add(b, s + run, i - run);
		util_buf_adds(b, "\xEF\xBF\xBD");
		i += (size_t)-l;
		run = i;
	}
	util_buf_add(b, s + run, n - run);
}

static void add_utf8(util_buf *b, uint32_t cp)
{
	char o[4];
	util_buf_add(b, o, util_utf8_encode(cp, o));
}

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- the tokenizer ------------------------------------------------------ */

enum norm_kind { NORM_NFC, NORM_NFKC, NORM_PREPEND, NORM_REPLACE };
struct norm_step {
	enum norm_kind kind;
	char *a, *b; /* Prepend: a; Replace: a -> b */
	size_t alen, blen;
};

enum pre_kind { PRE_SPLIT, PRE_METASPACE_SPLIT };
enum split_behavior { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT };
struct pre_step {
	enum pre_kind kind;
	pcre2_code *re;
	pcre2_match_data *md;
	enum split_behavior behavior;
};

enum dec_kind { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
struct dec_step {
	enum dec_kind kind;
	char *a, *b;
	size_t alen, blen;
	uint32_t strip_cp;
	int start, stop; /* Strip counts; Metaspace: start = strip first space */
};

struct added_tok {
	char *content;
	size_t len;
	int32_t id;
	unsigned special : 1, lstrip : 1, rstrip : 1;
};

/* open-addressing map from a string to an id */
struct str_map {
	int32_t *slot; /* id or -1 */
	size_t cap;    /* power of two */
	size_t n;
};

/* map from a pair of ids to (rank, merged id) */
struct merge_ent {
	uint64_t key; /* (a << 32 | b) + 1, 0 = empty */
	int32_t rank, id;
};

struct cache_ent {
	char *key;
	size_t klen;
	int32_t *ids;
	size_t n;
	uint64_t h;
};

#define CACHE_MAX_ENTRIES 65536u
#define MAX_ID 4194303 /* ids above are refused (real vocabularies are < 300k) */
#define CACHE_MAX_KEY 256u

struct train_tokenizer {
	char **tok;      /* id -> token string (NULL when unused) */
	uint32_t *toklen;
	size_t nvocab;   /* max id + 1 */
	struct str_map map;

	struct merge_ent *merges;
	size_t merge_cap;

	struct added_tok *added;
	size_t nadded;
	unsigned char added_first[256]; /* first bytes of added tokens */
	unsigned char *is_added;        /* per id: 1 added, 2 added+special */

	struct norm_step *norm;
	size_t nnorm;
	struct pre_step *pre;
	size_t npre;
	struct dec_step *dec;
	size_t ndec;

	int byte_level;        /* ByteLevel pre-tokenizer: bytes mapped to chars */
	int bl_prefix_space;   /* ByteLevel add_prefix_space */
	int meta;              /* Metaspace pre-tokenizer present */
	char *meta_repl;       /* its replacement ("▁") */
	int meta_prepend;      /* 0 never, 1 always, 2 first */
	char *ws_split;        /* split pieces before this marker (see finish) */
	int byte_fallback;
	int fuse_unk;
	int ignore_merges;
	int32_t unk_id;
	int32_t byte_id[256];  /* byte-level: id of the char of each byte; fallback: <0xNN> */
	uint32_t byte_char[256];  /* byte -> code point (byte-level alphabet) */
	int16_t char_byte[324];   /* code point -> byte, -1 when not in the alphabet */

	int32_t bos_id, eos_id, pad_id;
	char *bos_tok, *eos_tok;
	int add_bos;
	int bos_from_template; /* post_processor says BOS (when no add_bos_token) */
	char *chat_template;
	char fingerprint[65];
	util_sha256 sha;

	struct cache_ent *cache;
	size_t cache_cap, cache_n;
	int cache_on;

	char *err;
	const char *src; /* file name for messages */
};

static void set_err(train_tokenizer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(train_tokenizer *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	free(t->err);
	t->err = m;
}

/* ---- string map --------------------------------------------------------- */

static int32_t map_get(const train_tokenizer *t, const char *s, size_t n)
{
	if (!t->map.cap)
		return -1;
	size_t mask = t->map.cap - 1, i = hash_bytes(s, n) & mask;
	for (;;) {
		int32_t id = t->map.slot[i];
		if (id < 0)
			return -1;
		if (t->toklen[id] == n && !memcmp(t->tok[id], s, n))
			return id;
		i = (i + 1) & mask;
	}
}

static void map_insert(train_tokenizer *t, int32_t id)
{
	if ((t->map.n + 1) * 2 > t->map.cap) {
		size_t ncap = t->map.cap ? t->map.cap * 2 : 1024;
		int32_t *ns = xmalloc(ncap * sizeof *ns);
		for (size_t i = 0; i < ncap; i++)
			ns[i] = -1;
		for (size_t i = 0; i < t->map.cap; i++) {
			int32_t o = t->map.slot[i];
			if (o < 0)
				continue;
			size_t j = hash_bytes(t->tok[o], t->toklen[o]) & (ncap - 1);
			while (ns[j] >= 0)
				j = (j + 1) & (ncap - 1);
			ns[j] = o;
		}
		free(t->map.slot);
		t->map.slot = ns;
		t->map.cap = ncap;
	}
	size_t mask = t->map.cap - 1, i = hash_bytes(t->tok[id], t->toklen[id]) & mask;
	while (t->map.slot[i] >= 0)
		i = (i + 1) & mask;
	t->map.slot[i] = id;
	t->map.n++;
}

/* Give id the token string s; returns 0, or -1 when id already has another
 * string or s already has another id. */
static int vocab_set(train_tokenizer *t, int32_t id, const char *s, size_t n)
{
	if ((size_t)id >= t->nvocab) {
		size_t nn = t->nvocab ? t->nvocab : 256;
		while (nn <= (size_t)id)
			nn *= 2;
		t->tok = xreallocarray(t->tok, nn, sizeof *t->tok);
		t->toklen = xreallocarray(t->toklen, nn, sizeof *t->toklen);
		t->is_added = xrealloc(t->is_added, nn);
		for (size_t i = t->nvocab; i < nn; i++) {
			t->tok[i] = NULL;
			t->toklen[i] = 0;
			t->is_added[i] = 0;
		}
		t->nvocab = nn;
	}
	int32_t old = map_get(t, s, n);
	if (t->tok[id])
		return (t->toklen[id] == n && !memcmp(t->tok[id], s, n)) ? 0 : -1;
	if (old >= 0)
		return -1;
	t->tok[id] = xstrndup(s, n);
	t->toklen[id] = (uint32_t)n;
	map_insert(t, id);
	return 0;
}

/* Trim nvocab to the largest used id + 1. */
static void vocab_trim(train_tokenizer *t)
{
	size_t n = t->nvocab;
	while (n > 0 && !t->tok[n - 1])
		n--;
	t->nvocab = n;
}

/* ---- merges ------------------------------------------------------------- */

static void merge_put(train_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t id)
{
	uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	if (!t->merge_cap) {
		t->merge_cap = 1024;
		t->merges = xcalloc(t->merge_cap, sizeof *t->merges);
	}
	/* grow at 50% load: count entries lazily via rank (ranks are dense) */
	if ((size_t)(rank + 1) * 2 > t->merge_cap) {
		size_t ncap = t->merge_cap * 2;
		struct merge_ent *nm = xcalloc(ncap, sizeof *nm);
		for (size_t i = 0; i < t->merge_cap; i++) {
			if (!t->merges[i].key)
				continue;
			size_t j = hash_u64(t->merges[i].key) & (ncap - 1);
			while (nm[j].key)
				j = (j + 1) & (ncap - 1);
			nm[j] = t->merges[i];
		}
		free(t->merges);
		t->merges = nm;
		t->merge_cap = ncap;
	}
	size_t mask = t->merge_cap - 1, i = hash_u64(key) & mask;
	while (t->merges[i].key) {
		if (t->merges[i].key == key)
			return; /* the first (lowest-rank) occurrence wins */
		i = (i + 1) & mask;
	}
	t->merges[i].key = key;
	t->merges[i].rank = rank;
	t->merges[i].id = id;
}

static const struct merge_ent *merge_get(const train_tokenizer *t, int32_t a, int32_t b)
{
	if (!t->merge_cap)
		return NULL;
	uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
	size_t mask = t->merge_cap - 1, i = hash_u64(key) & mask;
	while (t->merges[i].key) {
		if (t->merges[i].key == key)
			return &t->merges[i];
		i = (i + 1) & mask;
	}
	return NULL;
}

/* Add merge number rank "a b" (a and b token strings). */
static int add_merge(train_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
		     int32_t rank, const char *where)
{
	int32_t ia = map_get(t, a, alen), ib = map_get(t, b, blen);
	char *ab = xmalloc(alen + blen + 1);
	memcpy(ab, a, alen);
	memcpy(ab + alen, b, blen);
	ab[alen + blen] = 0;
	int32_t iab = map_get(t, ab, alen + blen);
	int rc = 0;
	if (ia < 0 || ib < 0 || iab < 0) {
		char *piece = ia < 0 ? xstrndup(a, alen) : ib < 0 ? xstrndup(b, blen) : xstrdup(ab);
		set_err(t, "%s: merge %d \"%.*s %.*s\": %s \"%s\" is not in the vocabulary", where,
			rank, (int)alen, a, (int)blen, b,
			ia >= 0 && ib >= 0 ? "merged token" : "token", piece);
		free(piece);
		rc = TRAIN_TOK_EFORMAT;
	} else {
		merge_put(t, ia, ib, rank, iab);
	}
	free(ab);
	return rc;
}

/* ---- byte-level alphabet ------------------------------------------------ */

static void init_byte_alphabet(train_tokenizer *t)
{
	/* GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for
	 * themselves, the other 68 bytes take code points 256, 257, ... in
	 * byte order. */
	int extra = 0;
	for (int b = 0; b < 256; b++) {
		int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
				(b >= 0xAE && b <= 0xFF);
		t->byte_char[b] = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
	}
	for (int i = 0; i < 324; i++)
		t->char_byte[i] = -1;
	for (int b = 0; b < 256; b++)
		t->char_byte[t->byte_char[b]] = (int16_t)b;
}

/* ---- JSON helpers ------------------------------------------------------- */

static const cJSON *jget(const cJSON *o, const char *k)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static int jbool(const cJSON *o, const char *k, int dflt)
{
	const cJSON *v = jget(o, k);
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	return dflt;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = jget(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A token named in tokenizer_config.json: a string, or {"content": ...}. */
static const char *config_token(const cJSON *cfg, const char *k)
{
	const cJSON *v = jget(cfg, k);
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsObject(v))
		return jstr(v, "content");
	return NULL;
}

/* ---- normalizer / pre-tokenizer / decoder parsing ----------------------- */

/* Strings that end up inside the text being tokenized must be UTF-8. */
static int need_utf8(train_tokenizer *t, const char *s, const char *path, const char *field)
{
	if (util_utf8_valid(s, strlen(s), NULL))
		return 0;
	set_err(t, "%s: field \"%s.%s\" is not valid UTF-8", t->src, path, field);
	return TRAIN_TOK_EFORMAT;
}

static int parse_normalizer(train_tokenizer *t, const cJSON *n, const char *path)
{
	if (!n || cJSON_IsNull(n))
		return 0;
	const char *type = jstr(n, "type");
	if (!type) {
		set_err(t, "%s: field \"%s.type\" must be a string", t->src, path);
		return TRAIN_TOK_EFORMAT;
	}
	if (!strcmp(type, "Sequence")) {
		const cJSON *list = jget(n, "normalizers"), *it;
		if (!cJSON_IsArray(list)) {
			set_err(t, "%s: field \"%s.normalizers\" must be an array", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		int i = 0;
		cJSON_ArrayForEach(it, list)
		{
			char sub[128];
			snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i++);
			int rc = parse_normalizer(t, it, sub);
			if (rc)
				return rc;
		}
		return 0;
	}
	struct norm_step st = {0};
	if (!strcmp(type, "NFC")) {
		st.kind = NORM_NFC;
	} else if (!strcmp(type, "NFKC")) {
		st.kind = NORM_NFKC;
	} else if (!strcmp(type, "Prepend")) {
		const char *p = jstr(n, "prepend");
		if (!p) {
			set_err(t, "%s: field \"%s.prepend\" must be a string", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		if (need_utf8(t, p, path, "prepend"))
			return TRAIN_TOK_EFORMAT;
		st.kind = NORM_PREPEND;
		st.a = xstrdup(p);
		st.alen = strlen(p);
	} else if (!strcmp(type, "Replace")) {
		const char *pat = jstr(jget(n, "pattern"), "String"), *c = jstr(n, "content");
		if (!pat || !c || !*pat) {
			set_err(t, "%s: field \"%s\": only Replace with a non-empty {\"String\": ...} "
				   "pattern and a string content is supported", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		if (need_utf8(t, pat, path, "pattern") || need_utf8(t, c, path, "content"))
			return TRAIN_TOK_EFORMAT;
		st.kind = NORM_REPLACE;
		st.a = xstrdup(pat);
		st.alen = strlen(pat);
		st.b = xstrdup(c);
		st.blen = strlen(c);
	} else {
		set_err(t, "%s: field \"%s.type\": unsupported normalizer \"%s\" (supported: NFC, "
			   "NFKC, Prepend, Replace, Sequence)", t->src, path, type);
		return TRAIN_TOK_EFORMAT;
	}
	t->norm = xreallocarray(t->norm, t->nnorm + 1, sizeof *t->norm);
	t->norm[t->nnorm++] = st;
	return 0;
}

static const char gpt2_pattern[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int add_regex_step(train_tokenizer *t, const char *pat, int literal,
			  enum split_behavior beh, const char *path)
{
	int ec;
	PCRE2_SIZE eo;
	/* the pattern is checked as UTF-8 by pcre2_compile itself */
	uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof msg);
		set_err(t, "%s: field \"%s.pattern\": bad regex at offset %zu: %s", t->src, path,
			(size_t)eo, (char *)msg);
		return TRAIN_TOK_EFORMAT;
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
	struct pre_step st = {.kind = PRE_SPLIT, .re = re, .behavior = beh};
	st.md = pcre2_match_data_create_from_pattern(re, NULL);
	t->pre = xreallocarray(t->pre, t->npre + 1, sizeof *t->pre);
	t->pre[t->npre++] = st;
	return 0;
}

static int parse_prepend_scheme(train_tokenizer *t, const cJSON *p, const char *path, int *out)
{
	const char *scheme = jstr(p, "prepend_scheme");
	if (!scheme) {
		*out = jbool(p, "add_prefix_space", 1) ? 1 : 0;
		return 0;
	}
	if (!strcmp(scheme, "always"))
		*out = 1;
	else if (!strcmp(scheme, "first"))
		*out = 2;
	else if (!strcmp(scheme, "never"))
		*out = 0;
	else {
		set_err(t, "%s: field \"%s.prepend_scheme\": unknown value \"%s\"", t->src, path,
			scheme);
		return TRAIN_TOK_EFORMAT;
	}
	return 0;
}

static int parse_pretok(train_tokenizer *t, const cJSON *p, const char *path)
{
	if (!p || cJSON_IsNull(p))
		return 0;
	const char *type = jstr(p, "type");
	if (!type) {
		set_err(t, "%s: field \"%s.type\" must be a string", t->src, path);
		return TRAIN_TOK_EFORMAT;
	}
	if (!strcmp(type, "Sequence")) {
		const cJSON *list = jget(p, "pretokenizers"), *it;
		if (!cJSON_IsArray(list)) {
			set_err(t, "%s: field \"%s.pretokenizers\" must be an array", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		int i = 0;
		cJSON_ArrayForEach(it, list)
		{
			char sub[128];
			snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i++);
			int rc = parse_pretok(t, it, sub);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (!strcmp(type, "ByteLevel")) {
		if (t->byte_level) {
			set_err(t, "%s: field \"%s\": more than one ByteLevel pre-tokenizer", t->src,
				path);
			return TRAIN_TOK_EFORMAT;
		}
		t->byte_level = 1;
		t->bl_prefix_space = jbool(p, "add_prefix_space", 0);
		if (jbool(p, "use_regex", 1))
			return add_regex_step(t, gpt2_pattern, 0, SPLIT_ISOLATED, path);
		return 0;
	}
	if (!strcmp(type, "Split")) {
		const cJSON *pat = jget(p, "pattern");
		const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
		const char *beh = jstr(p, "behavior");
		if (!re && !lit) {
			set_err(t, "%s: field \"%s.pattern\" must be {\"Regex\": ...} or "
				   "{\"String\": ...}", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		if (jbool(p, "invert", 0)) {
			set_err(t, "%s: field \"%s.invert\": inverted Split is not supported",
				t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		enum split_behavior b;
		if (!beh || !strcmp(beh, "Isolated"))
			b = SPLIT_ISOLATED;
		else if (!strcmp(beh, "Removed"))
			b = SPLIT_REMOVED;
		else if (!strcmp(beh, "MergedWithPrevious"))
			b = SPLIT_MERGED_PREV;
		else if (!strcmp(beh, "MergedWithNext"))
			b = SPLIT_MERGED_NEXT;
		else {
			set_err(t, "%s: field \"%s.behavior\": unsupported Split behavior \"%s\"",
				t->src, path, beh);
			return TRAIN_TOK_EFORMAT;
		}
		return add_regex_step(t, re ? re : lit, !re, b, path);
	}
	if (!strcmp(type, "Metaspace")) {
		const char *r = jstr(p, "replacement");
		if (r && (!*r || need_utf8(t, r, path, "replacement"))) {
			if (!*r)
				set_err(t, "%s: field \"%s.replacement\" is empty", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		t->meta = 1;
		free(t->meta_repl);
		t->meta_repl = xstrdup(r ? r : "\xE2\x96\x81");
		int rc = parse_prepend_scheme(t, p, path, &t->meta_prepend);
		if (rc)
			return rc;
		if (jbool(p, "split", 1)) {
			struct pre_step st = {.kind = PRE_METASPACE_SPLIT};
			t->pre = xreallocarray(t->pre, t->npre + 1, sizeof *t->pre);
			t->pre[t->npre++] = st;
		}
		return 0;
	}
	set_err(t, "%s: field \"%s.type\": unsupported pre-tokenizer \"%s\" (supported: ByteLevel, "
		   "Split, Metaspace, Sequence)", t->src, path, type);
	return TRAIN_TOK_EFORMAT;
}

static int parse_decoder(train_tokenizer *t, const cJSON *d, const char *path)
{
	if (!d || cJSON_IsNull(d))
		return 0;
	const char *type = jstr(d, "type");
	if (!type) {
		set_err(t, "%s: field \"%s.type\" must be a string", t->src, path);
		return TRAIN_TOK_EFORMAT;
	}
	if (!strcmp(type, "Sequence")) {
		const cJSON *list = jget(d, "decoders"), *it;
		if (!cJSON_IsArray(list)) {
			set_err(t, "%s: field \"%s.decoders\" must be an array", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		int i = 0;
		cJSON_ArrayForEach(it, list)
		{
			char sub[128];
			snprintf(sub, sizeof sub, "%s.decoders[%d]", path, i++);
			int rc = parse_decoder(t, it, sub);
			if (rc)
				return rc;
		}
		return 0;
	}
	struct dec_step st = {0};
	if (!strcmp(type, "ByteLevel")) {
		st.kind = DEC_BYTELEVEL;
	} else if (!strcmp(type, "ByteFallback")) {
		st.kind = DEC_BYTEFALLBACK;
	} else if (!strcmp(type, "Fuse")) {
		st.kind = DEC_FUSE;
	} else if (!strcmp(type, "Replace")) {
		const char *pat = jstr(jget(d, "pattern"), "String"), *c = jstr(d, "content");
		if (!pat || !c || !*pat) {
			set_err(t, "%s: field \"%s\": only Replace with a non-empty {\"String\": ...} "
				   "pattern is supported", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		st.kind = DEC_REPLACE;
		st.a = xstrdup(pat);
		st.alen = strlen(pat);
		st.b = xstrdup(c);
		st.blen = strlen(c);
	} else if (!strcmp(type, "Strip")) {
		const char *c = jstr(d, "content");
		const cJSON *s = jget(d, "start"), *e = jget(d, "stop");
		uint32_t cp = 0;
		if (!c || !*c || util_utf8_decode(c, strlen(c), &cp) != (int)strlen(c) ||
		    !cJSON_IsNumber(s) || !cJSON_IsNumber(e) || s->valuedouble < 0 ||
		    e->valuedouble < 0) {
			set_err(t, "%s: field \"%s\": Strip needs a one-character content and "
				   "non-negative start/stop", t->src, path);
			return TRAIN_TOK_EFORMAT;
		}
		st.kind = DEC_STRIP;
		st.strip_cp = cp;
		st.start = s->valuedouble > 1e6 ? 1000000 : (int)s->valuedouble;
		st.stop = e->valuedouble > 1e6 ? 1000000 : (int)e->valuedouble;
	} else if (!strcmp(type, "Metaspace")) {
		const char *r = jstr(d, "replacement");
		int scheme;
		int rc = parse_prepend_scheme(t, d, path, &scheme);
		if (rc)
			return rc;
		st.kind = DEC_METASPACE;
		st.a = xstrdup(r ? r : "\xE2\x96\x81");
		st.alen = strlen(st.a);
		st.start = scheme != 0;
	} else {
		set_err(t, "%s: field \"%s.type\": unsupported decoder \"%s\" (supported: ByteLevel, "
			   "Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)", t->src, path,
			type);
		return TRAIN_TOK_EFORMAT;
	}
	t->dec = xreallocarray(t->dec, t->ndec + 1, sizeof *t->dec);
	t->dec[t->ndec++] = st;
	return 0;
}

/* ---- added tokens ------------------------------------------------------- */

static void add_added(train_tokenizer *t, const char *content, int32_t id, int special,
		      int lstrip, int rstrip)
{
	for (size_t i = 0; i < t->nadded; i++)
		if (t->added[i].id == id)
			return;
	t->added = xreallocarray(t->added, t->nadded + 1, sizeof *t->added);
	struct added_tok *a = &t->added[t->nadded++];
	a->content = xstrdup(content);
	a->len = strlen(content);
	a->id = id;
	a->special = !!special;
	a->lstrip = !!lstrip;
	a->rstrip = !!rstrip;
	t->added_first[(unsigned char)content[0]] = 1;
	t->is_added[id] = special ? 2 : 1;
}

/* Sort added tokens longest first so that the first match is the longest. */
static int cmp_added(const void *a, const void *b)
{
	const struct added_tok *x = a, *y = b;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int parse_added_tokens(train_tokenizer *t, const cJSON *list)
{
	if (!list || cJSON_IsNull(list))
		return 0;
	if (!cJSON_IsArray(list)) {
		set_err(t, "%s: field \"added_tokens\" must be an array", t->src);
		return TRAIN_TOK_EFORMAT;
	}
	const cJSON *it;
	int i = 0;
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *id = jget(it, "id");
		const char *c = jstr(it, "content");
		if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > MAX_ID ||
		    id->valuedouble != (double)(int32_t)id->valuedouble || !c || !*c) {
			set_err(t, "%s: field \"added_tokens[%d]\": needs an integer \"id\" in "
				   "[0, 4194303] and a non-empty string \"content\"", t->src, i);
			return TRAIN_TOK_EFORMAT;
		}
		int32_t iid = (int32_t)id->valuedouble;
		if (!util_utf8_valid(c, strlen(c), NULL)) {
			set_err(t, "%s: field \"added_tokens[%d].content\" is not valid UTF-8", t->src,
				i);
			return TRAIN_TOK_EFORMAT;
		}
		if (vocab_set(t, iid, c, strlen(c))) {
			set_err(t, "%s: field \"added_tokens[%d]\": token \"%s\" (id %d) conflicts "
				   "with the vocabulary", t->src, i, c, iid);
			return TRAIN_TOK_EFORMAT;
		}
		add_added(t, c, iid, jbool(it, "special", 0), jbool(it, "lstrip", 0),
			  jbool(it, "rstrip", 0));
		i++;
	}
	return 0;
}

/* ---- model -------------------------------------------------------------- */

static int parse_vocab_obj(train_tokenizer *t, const cJSON *v, const char *where)
{
	if (!cJSON_IsObject(v)) {
		set_err(t, "%s must be an object of token -> id", where);
		return TRAIN_TOK_EFORMAT;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > MAX_ID ||
		    it->valuedouble != (double)(int32_t)it->valuedouble) {
			set_err(t, "%s: token \"%s\": id must be an integer in [0, 4194303]", where,
				it->string);
			return TRAIN_TOK_EFORMAT;
		}
		if (!it->string[0]) {
			set_err(t, "%s: the empty string is not a valid token", where);
			return TRAIN_TOK_EFORMAT;
		}
		if (vocab_set(t, (int32_t)it->valuedouble, it->string, strlen(it->string))) {
			set_err(t, "%s: token \"%s\" (id %d) duplicates another entry", where,
				it->string, (int)it->valuedouble);
			return TRAIN_TOK_EFORMAT;
		}
	}
	return 0;
}

/* One merges.txt line or legacy "a b" string. */
static int merge_line(train_tokenizer *t, const char *s, size_t n, int32_t rank, const char *where)
{
	const char *sp = memchr(s, ' ', n);
	if (!sp || sp == s || sp + 1 == s + n || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
		set_err(t, "%s: merge %d \"%.*s\" must be two tokens separated by one space", where,
			rank, (int)n, s);
		return TRAIN_TOK_EFORMAT;
	}
	return add_merge(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1), rank, where);
}

static int parse_model(train_tokenizer *t, const cJSON *m)
{
	if (!cJSON_IsObject(m)) {
		set_err(t, "%s: field \"model\" is missing or not an object", t->src);
		return TRAIN_TOK_EFORMAT;
	}
	const char *type = jstr(m, "type");
	if (type && strcmp(type, "BPE")) {
		set_err(t, "%s: field \"model.type\": unsupported model type \"%s\" (only \"BPE\" is "
			   "supported)", t->src, type);
		return TRAIN_TOK_EFORMAT;
	}
	if (!type && !jget(m, "merges")) {
		set_err(t, "%s: field \"model.type\" is missing and the model has no merges", t->src);
		return TRAIN_TOK_EFORMAT;
	}
	const char *cs = jstr(m, "continuing_subword_prefix"), *ew = jstr(m, "end_of_word_suffix");
	if ((cs && *cs) || (ew && *ew)) {
		set_err(t, "%s: field \"model.%s\": subword prefixes/suffixes are not supported",
			t->src, cs && *cs ? "continuing_subword_prefix" : "end_of_word_suffix");
		return TRAIN_TOK_EFORMAT;
	}
	const cJSON *dropout = jget(m, "dropout");
	if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0) {
		set_err(t, "%s: field \"model.dropout\": BPE dropout is not supported", t->src);
		return TRAIN_TOK_EFORMAT;
	}
	char where[512];
	snprintf(where, sizeof where, "%s: field \"model.vocab\"", t->src);
	int rc = parse_vocab_obj(t, jget(m, "vocab"), where);
	if (rc)
		return rc;
	const cJSON *merges = jget(m, "merges"), *it;
	snprintf(where, sizeof where, "%s: field \"model.merges\"", t->src);
	if (merges && !cJSON_IsArray(merges)) {
		set_err(t, "%s must be an array", where);
		return TRAIN_TOK_EFORMAT;
	}
	int32_t rank = 0;
	cJSON_ArrayForEach(it, merges)
	{
		if (cJSON_IsString(it)) {
			rc = merge_line(t, it->valuestring, strlen(it->valuestring), rank, where);
		} else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
			   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
			   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
			const char *a = cJSON_GetArrayItem(it, 0)->valuestring;
			const char *b = cJSON_GetArrayItem(it, 1)->valuestring;
			rc = add_merge(t, a, strlen(a), b, strlen(b), rank, where);
		} else {
			set_err(t, "%s: merge %d must be a string \"a b\" or a pair [\"a\", \"b\"]",
				where, rank);
			rc = TRAIN_TOK_EFORMAT;
		}
		if (rc)
			return rc;
		rank++;
	}
	t->byte_fallback = jbool(m, "byte_fallback", 0);
	t->fuse_unk = jbool(m, "fuse_unk", 0);
	t->ignore_merges = jbool(m, "ignore_merges", 0);
	const char *unk = jstr(m, "unk_token");
	if (unk) {
		t->unk_id = map_get(t, unk, strlen(unk));
		if (t->unk_id < 0) {
			set_err(t, "%s: field \"model.unk_token\": \"%s\" is not in the vocabulary",
				t->src, unk);
			return TRAIN_TOK_EFORMAT;
		}
	}
	return 0;
}

/* ---- construction ------------------------------------------------------- */

static train_tokenizer *tok_alloc(void)
{
	train_tokenizer *t = xcalloc(1, sizeof *t);
	t->unk_id = t->bos_id = t->eos_id = t->pad_id = -1;
	t->cache_on = 1;
	init_byte_alphabet(t);
	util_sha256_init(&t->sha);
	return t;
}

static void fingerprint_add(train_tokenizer *t, const char *name, const char *data, size_t len)
{
	util_sha256_update(&t->sha, name, strlen(name) + 1);
	char n[32];
	snprintf(n, sizeof n, "%zu:", len);
	util_sha256_update(&t->sha, n, strlen(n));
	util_sha256_update(&t->sha, data, len);
}

/* Finish setup after the vocabulary and pipeline are known. */
static int finish(train_tokenizer *t)
{
	vocab_trim(t);
	if (!t->nvocab) {
		set_err(t, "%s: the vocabulary is empty", t->src);
		return TRAIN_TOK_EFORMAT;
	}
	for (int b = 0; b < 256; b++) {
		if (t->byte_level) {
			util_buf ub = UTIL_BUF_INIT;
			add_utf8(&ub, t->byte_char[b]);
			t->byte_id[b] = map_get(t, ub.data, ub.len);
			util_buf_free(&ub);
		} else {
			char name[8];
			snprintf(name, sizeof name, "<0x%02X>", b);
			t->byte_id[b] = map_get(t, name, 6);
		}
	}
	if (t->nadded)
		qsort(t->added, t->nadded, sizeof *t->added, cmp_added);
	/* Without a pre-tokenizer (Llama-2 family) BPE runs over the whole
	 * text. When the word marker ("▁") only ever opens a token (every
	 * token is a run of markers then marker-free text), no token spans the
	 * point before a marker that follows other text, so the text can be
	 * cut there without changing the result: shorter pieces, and the cache
	 * works. */
	const char *marker = t->meta_repl;
	for (size_t k = 0; !marker && k < t->nnorm; k++)
		if (t->norm[k].kind == NORM_REPLACE && t->norm[k].alen == 1 && t->norm[k].a[0] == ' ' &&
		    t->norm[k].blen)
			marker = t->norm[k].b;
	if (!t->byte_level && !t->npre && marker) {
		size_t ml = strlen(marker);
		int ok = 1;
		for (size_t id = 0; ok && id < t->nvocab; id++) {
			const char *s = t->tok[id];
			size_t n = t->toklen[id], i = 0;
			if (!s || t->is_added[id])
				continue;
			while (i + ml <= n && !memcmp(s + i, marker, ml))
				i += ml;
			for (; ok && i + ml <= n; i++)
				ok = memcmp(s + i, marker, ml) != 0;
		}
		if (ok)
			t->ws_split = xstrdup(marker);
	}
	if (!t->ndec && t->byte_level) {
		struct dec_step st = {.kind = DEC_BYTELEVEL};
		t->dec = xmalloc(sizeof *t->dec);
		t->dec[t->ndec++] = st;
	}
	util_sha256_final_hex(&t->sha, t->fingerprint);
	return 0;
}

static int parse_post_processor(train_tokenizer *t, const cJSON *p)
{
	if (!cJSON_IsObject(p))
		return 0;
	const char *type = jstr(p, "type");
	if (type && !strcmp(type, "Sequence")) {
		const cJSON *it;
		cJSON_ArrayForEach(it, jget(p, "processors"))
			parse_post_processor(t, it);
		return 0;
	}
	if (!type || strcmp(type, "TemplateProcessing"))
		return 0;
	const cJSON *single = jget(p, "single");
	const cJSON *first = cJSON_IsArray(single) ? cJSON_GetArrayItem(single, 0) : NULL;
	const cJSON *sp = jget(first, "SpecialToken");
	const char *id = jstr(sp, "id");
	if (id) {
		int32_t i = map_get(t, id, strlen(id));
		if (i >= 0) {
			t->bos_from_template = 1;
			if (t->bos_id < 0)
				t->bos_id = i;
		}
	}
	return 0;
}

static int parse_tokenizer_json(train_tokenizer *t, const char *data, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(data, len);
	int rc = 0;
	if (!j) {
		const char *e = cJSON_GetErrorPtr();
		size_t off = (e && e >= data && e <= data + len) ? (size_t)(e - data) : 0;
		size_t line = 1;
		for (size_t i = 0; i < off; i++)
			line += data[i] == '\n';
		set_err(t, "%s:%zu: malformed JSON (near byte %zu)", t->src, line, off);
		return TRAIN_TOK_EFORMAT;
	}
	if (!cJSON_IsObject(j)) {
		set_err(t, "%s: the top level must be a JSON object", t->src);
		rc = TRAIN_TOK_EFORMAT;
		goto out;
	}
	if ((rc = parse_model(t, jget(j, "model"))))
		goto out;
	if ((rc = parse_added_tokens(t, jget(j, "added_tokens"))))
		goto out;
	if ((rc = parse_normalizer(t, jget(j, "normalizer"), "normalizer")))
		goto out;
	if ((rc = parse_pretok(t, jget(j, "pre_tokenizer"), "pre_tokenizer")))
		goto out;
	if ((rc = parse_decoder(t, jget(j, "decoder"), "decoder")))
		goto out;
	parse_post_processor(t, jget(j, "post_processor"));
out:
	cJSON_Delete(j);
	return rc;
}

/* vocab.json + merges.txt (GPT-2's layout): byte-level BPE with the GPT-2
 * regex, or NFC + the Qwen2 regex. Vocabulary entries spelled <|...|> are taken as special added
 * tokens, as the files carry no other marking. */
static const char qwen2_pattern[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
	"\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int load_two_files(train_tokenizer *t, const char *vpath, const char *mpath, int qwen)
{
	char *vd = NULL, *md = NULL;
	size_t vl = 0, ml = 0;
	cJSON *j = NULL;
	int rc = 0;
	if (!(vd = util_read_file(vpath, &vl))) {
		set_err(t, "%s: %s", vpath, strerror(errno));
		rc = TRAIN_TOK_EIO;
		goto out;
	}
	if (!(md = util_read_file(mpath, &ml))) {
		set_err(t, "%s: %s", mpath, strerror(errno));
		rc = TRAIN_TOK_EIO;
		goto out;
	}
	fingerprint_add(t, "vocab.json", vd, vl);
	fingerprint_add(t, "merges.txt", md, ml);
	j = cJSON_ParseWithLength(vd, vl);
	if (!j) {
		set_err(t, "%s: malformed JSON", vpath);
		rc = TRAIN_TOK_EFORMAT;
		goto out;
	}
	if ((rc = parse_vocab_obj(t, j, vpath)))
		goto out;
	int32_t rank = 0;
	long lineno = 0;
	for (char *p = md; p < md + ml;) {
		char *e = memchr(p, '\n', (size_t)(md + ml - p));
		size_t n = e ? (size_t)(e - p) : (size_t)(md + ml - p);
		lineno++;
		if (n && p[n - 1] == '\r')
			n--;
		if (n && !(lineno == 1 && p[0] == '#')) {
			char where[512];
			snprintf(where, sizeof where, "%s:%ld", mpath, lineno);
			if ((rc = merge_line(t, p, n, rank, where)))
				goto out;
			rank++;
		}
		p = e ? e + 1 : md + ml;
	}
	t->byte_level = 1;
	if (qwen) {
		struct norm_step nfc = {.kind = NORM_NFC};
		t->norm = xmalloc(sizeof *t->norm);
		t->norm[t->nnorm++] = nfc;
	}
	if ((rc = add_regex_step(t, qwen ? qwen2_pattern : gpt2_pattern, 0, SPLIT_ISOLATED,
				 "pre_tokenizer")))
		goto out;
	for (size_t id = 0; id < t->nvocab; id++) {
		const char *s = t->tok[id];
		size_t n = t->toklen[id];
		if (s && n > 4 && !memcmp(s, "<|", 2) && !memcmp(s + n - 2, "|>", 2))
			add_added(t, s, (int32_t)id, 1, 0, 0);
	}
out:
	cJSON_Delete(j);
	free(vd);
	free(md);
	return rc;
}

static int load_config(train_tokenizer *t, const char *path)
{
	char *d = NULL;
	size_t l = 0;
	cJSON *j = NULL;
	int rc = 0;
	if (!(d = util_read_file(path, &l))) {
		set_err(t, "%s: %s", path, strerror(errno));
		return TRAIN_TOK_EIO;
	}
	fingerprint_add(t, "tokenizer_config.json", d, l);
	j = cJSON_ParseWithLength(d, l);
	if (!cJSON_IsObject(j)) {
		set_err(t, "%s: malformed JSON (expected an object)", path);
		rc = TRAIN_TOK_EFORMAT;
		goto out;
	}
	/* added tokens listed by id (the slow tokenizers' registry) */
	const cJSON *atd = jget(j, "added_tokens_decoder"), *it;
	cJSON_ArrayForEach(it, atd)
	{
		char *end;
		long id = strtol(it->string, &end, 10);
		const char *c = jstr(it, "content");
		if (*end || id < 0 || id > MAX_ID || !c || !*c ||
		    !util_utf8_valid(c, strlen(c), NULL)) {
			set_err(t, "%s: field \"added_tokens_decoder.%s\": needs a numeric key and a "
				   "UTF-8 string \"content\"", path, it->string);
			rc = TRAIN_TOK_EFORMAT;
			goto out;
		}
		if (vocab_set(t, (int32_t)id, c, strlen(c))) {
			set_err(t, "%s: field \"added_tokens_decoder.%s\": \"%s\" conflicts with the "
				   "vocabulary", path, it->string, c);
			rc = TRAIN_TOK_EFORMAT;
			goto out;
		}
		add_added(t, c, (int32_t)id, jbool(it, "special", 0), jbool(it, "lstrip", 0),
			  jbool(it, "rstrip", 0));
	}
	static const char *const keys[] = {"bos_token", "eos_token", "pad_token"};
	int32_t *dst[] = {&t->bos_id, &t->eos_id, &t->pad_id};
	for (int k = 0; k < 3; k++) {
		const cJSON *v = jget(j, keys[k]);
		if (!v)
			continue;
		const char *s = config_token(j, keys[k]);
		if (!s) {
			*dst[k] = -1; /* null: explicitly none */
			continue;
		}
		int32_t id = map_get(t, s, strlen(s));
		if (id < 0) {
			set_err(t, "%s: field \"%s\": \"%s\" is not in the vocabulary", path,
				keys[k], s);
			rc = TRAIN_TOK_EFORMAT;
			goto out;
		}
		*dst[k] = id;
	}
	const cJSON *ab = jget(j, "add_bos_token");
	if (cJSON_IsBool(ab))
		t->add_bos = cJSON_IsTrue(ab) ? 1 : 0;
	else
		t->add_bos = t->bos_from_template ? 1 : 0;
	const cJSON *ct = jget(j, "chat_template");
	if (cJSON_IsString(ct)) {
		t->chat_template = xstrdup(ct->valuestring);
	} else if (cJSON_IsArray(ct)) {
		const char *first = NULL;
		cJSON_ArrayForEach(it, ct)
		{
			const char *name = jstr(it, "name"), *tpl = jstr(it, "template");
			if (!tpl)
				continue;
			if (!first)
				first = tpl;
			if (name && !strcmp(name, "default")) {
				first = tpl;
				break;
			}
		}
		if (first)
			t->chat_template = xstrdup(first);
	}
out:
	cJSON_Delete(j);
	free(d);
	return rc;
}

static void set_special_names(train_tokenizer *t)
{
	if (t->bos_id >= 0)
		t->bos_tok = xstrdup(t->tok[t->bos_id]);
	if (t->eos_id >= 0)
		t->eos_tok = xstrdup(t->tok[t->eos_id]);
	if (t->add_bos && t->bos_id < 0)
		t->add_bos = 0;
}

static train_tokenizer *fail(train_tokenizer *t, char **err)
{
	if (err)
		*err = xstrdup(t->err ? t->err : "cannot load the tokenizer");
	train_tokenizer_free(t);
	return NULL;
}

train_tokenizer *train_tokenizer_from_json(const char *json, size_t len, const char *name,
					   char **err)
{
	train_tokenizer *t = tok_alloc();
	t->src = name ? name : "tokenizer.json";
	fingerprint_add(t, "tokenizer.json", json, len);
	if (parse_tokenizer_json(t, json, len) || finish(t))
		return fail(t, err);
	t->add_bos = t->bos_from_template;
	set_special_names(t);
	t->src = NULL;
	return t;
}

train_tokenizer *train_tokenizer_load_files(const char *json_path, const char *config_path,
					    char **err)
{
	train_tokenizer *t = tok_alloc();
	char *d = NULL;
	size_t l = 0;
	t->src = json_path;
	if (!(d = util_read_file(json_path, &l))) {
		set_err(t, "%s: %s", json_path, strerror(errno));
		return fail(t, err);
	}
	fingerprint_add(t, "tokenizer.json", d, l);
	int rc = parse_tokenizer_json(t, d, l);
	free(d);
	if (rc)
		return fail(t, err);
	t->add_bos = t->bos_from_template;
	if (config_path && load_config(t, config_path))
		return fail(t, err);
	if (finish(t))
		return fail(t, err);
	set_special_names(t);
	t->src = NULL;
	return t;
}

train_tokenizer *train_tokenizer_load_vocab_merges(const char *vocab_path, const char *merges_path,
						   const char *config_path, const char *style,
						   char **err)
{
	train_tokenizer *t = tok_alloc();
	t->src = vocab_path;
	int qwen = 0;
	if (style && !strcmp(style, "qwen2")) {
		qwen = 1;
	} else if (style && strcmp(style, "gpt2")) {
		set_err(t, "unknown tokenizer style \"%s\" (expected gpt2 or qwen2)", style);
		return fail(t, err);
	} else if (!style && config_path) {
		char *d = NULL;
		size_t l = 0;
		if ((d = util_read_file(config_path, &l))) {
			cJSON *j = cJSON_ParseWithLength(d, l);
			const char *cls = jstr(j, "tokenizer_class");
			qwen = cls && strstr(cls, "Qwen2") != NULL;
			cJSON_Delete(j);
			free(d);
		}
	}
	if (load_two_files(t, vocab_path, merges_path, qwen) ||
	    (config_path && load_config(t, config_path)) || finish(t))
		return fail(t, err);
	set_special_names(t);
	/* GPT-2's files name no EOS in a config; <|endoftext|> is it */
	if (t->eos_id < 0) {
		t->eos_id = map_get(t, "<|endoftext|>", 13);
		if (t->eos_id >= 0)
			t->eos_tok = xstrdup("<|endoftext|>");
	}
	t->src = NULL;
	return t;
}

train_tokenizer *train_tokenizer_load(const char *dir, char **err)
{
	char *tj = xasprintf("%s/tokenizer.json", dir);
	char *cfg = xasprintf("%s/tokenizer_config.json", dir);
	char *jinja = xasprintf("%s/chat_template.jinja", dir);
	char *vj = xasprintf("%s/vocab.json", dir);
	char *mt = xasprintf("%s/merges.txt", dir);
	train_tokenizer *t = NULL;
	const char *cfgp = file_exists(cfg) ? cfg : NULL;
	if (file_exists(tj)) {
		t = train_tokenizer_load_files(tj, cfgp, err);
	} else if (file_exists(vj) && file_exists(mt)) {
		t = train_tokenizer_load_vocab_merges(vj, mt, cfgp, NULL, err);
	} else {
		if (err)
			*err = xasprintf("%s: no tokenizer.json (nor vocab.json + merges.txt) in "
					 "this directory", dir);
	}
	if (t && file_exists(jinja)) {
		char *d = NULL;
		size_t l = 0;
		if (!(d = util_read_file(jinja, &l))) {
			if (err)
				*err = xasprintf("%s: %s", jinja, strerror(errno));
			train_tokenizer_free(t);
			t = NULL;
		} else {
			free(t->chat_template);
			t->chat_template = d;
		}
	}
	free(tj);
	free(cfg);
	free(jinja);
	free(vj);
	free(mt);
	return t;
}

const char *const train_tokenizer_files[] = {
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
	"merges.txt", "chat_template.jinja", "generation_config.json", "tokenizer.model", NULL,
};

int train_tokenizer_copy_files(const char *from, const char *to, char **err)
{
	int copied = 0, failed = 0;
	for (const char *const *f = train_tokenizer_files; *f; f++) {
		char *s = xasprintf("%s/%s", from, *f), *d = xasprintf("%s/%s", to, *f);
		if (file_exists(s)) {
			if (util_copy_file(s, d) == 0)
				copied++;
			else if (!failed++)
				*err = xasprintf("cannot copy %s to %s: %s", s, d, strerror(errno));
		}
		free(s);
		free(d);
	}
	return failed ? -1 : copied;
}

static void cache_clear(train_tokenizer *t)
{
	for (size_t i = 0; i < t->cache_cap; i++) {
		free(t->cache[i].key);
		free(t->cache[i].ids);
	}
	if (t->cache_cap)
		memset(t->cache, 0, t->cache_cap * sizeof *t->cache);
	t->cache_n = 0;
}

void train_tokenizer_free(train_tokenizer *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nvocab; i++)
		free(t->tok[i]);
	free(t->tok);
	free(t->toklen);
	free(t->is_added);
	free(t->map.slot);
	free(t->merges);
	for (size_t i = 0; i < t->nadded; i++)
		free(t->added[i].content);
	free(t->added);
	for (size_t i = 0; i < t->nnorm; i++) {
		free(t->norm[i].a);
		free(t->norm[i].b);
	}
	free(t->norm);
	for (size_t i = 0; i < t->npre; i++) {
		pcre2_match_data_free(t->pre[i].md);
		pcre2_code_free(t->pre[i].re);
	}
	free(t->pre);
	for (size_t i = 0; i < t->ndec; i++) {
		free(t->dec[i].a);
		free(t->dec[i].b);
	}
	free(t->dec);
	free(t->meta_repl);
	free(t->ws_split);
	free(t->bos_tok);
	free(t->eos_tok);
	free(t->chat_template);
	cache_clear(t);
	free(t->cache);
	free(t->err);
	free(t);
}

/* ---- BPE ---------------------------------------------------------------- */

struct sym {
	int32_t id;
	int32_t prev, next; /* indexes, -1 at the ends */
	int alive;
};

struct cand {
	int32_t rank;
	int32_t pos; /* left symbol */
	int32_t left, right;
};

static int cand_less(const struct cand *a, const struct cand *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

struct heap {
	struct cand *v;
	size_t n, cap;
};

static void heap_push(struct heap *h, struct cand c)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->v = xreallocarray(h->v, h->cap, sizeof *h->v);
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!cand_less(&c, &h->v[p]))
			break;
		h->v[i] = h->v[p];
		i = p;
	}
	h->v[i] = c;
}

static struct cand heap_pop(struct heap *h)
{
	struct cand top = h->v[0], last = h->v[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct cand *best = &last;
		if (l < h->n && cand_less(&h->v[l], best)) {
			m = l;
			best = &h->v[l];
		}
		if (r < h->n && cand_less(&h->v[r], best))
			m = r;
		if (m == i)
			break;
		h->v[i] = h->v[m];
		i = m;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

struct work {
	struct sym *syms;
	size_t cap;
	struct heap heap;
	util_buf out; /* int32_t ids */
};

static void push_pair(const train_tokenizer *t, struct work *w, int32_t pos)
{
	int32_t nx = w->syms[pos].next;
	if (nx < 0)
		return;
	const struct merge_ent *m = merge_get(t, w->syms[pos].id, w->syms[nx].id);
	if (!m)
		return;
	struct cand c = {m->rank, pos, w->syms[pos].id, w->syms[nx].id};
	heap_push(&w->heap, c);
}

static void out_id(struct work *w, int32_t id)
{
	util_buf_add(&w->out, &id, sizeof id);
}

/* BPE over one pre-token of n bytes; appends ids to w->out. */
static void bpe_piece(const train_tokenizer *t, struct work *w, const char *s, size_t n)
{
	if (!n)
		return;
	if (t->ignore_merges && !t->byte_level) {
		int32_t id = map_get(t, s, n);
		if (id >= 0) {
			out_id(w, id);
			return;
		}
	}
	if (w->cap < n) {
		w->cap = n;
		w->syms = xreallocarray(w->syms, n, sizeof *w->syms);
	}
	size_t ns = 0;
	int32_t last_unk = 0;
	if (t->byte_level) {
		for (size_t i = 0; i < n; i++) {
			int32_t id = t->byte_id[(unsigned char)s[i]];
			if (id < 0) {
				if (t->unk_id < 0)
					continue;
				id = t->unk_id;
			}
			w->syms[ns++] = (struct sym){id, 0, 0, 1};
		}
	} else {
		for (size_t i = 0; i < n;) {
			uint32_t cp;
			int l = util_utf8_decode(s + i, n - i, &cp);
			if (l <= 0)
				l = 1; /* cannot happen: input was validated */
			int32_t id = map_get(t, s + i, (size_t)l);
			if (id >= 0) {
				w->syms[ns++] = (struct sym){id, 0, 0, 1};
				last_unk = 0;
			} else {
				int ok = t->byte_fallback;
				for (int k = 0; ok && k < l; k++)
					ok = t->byte_id[(unsigned char)s[i + k]] >= 0;
				if (ok) {
					for (int k = 0; k < l; k++)
						w->syms[ns++] = (struct sym){
							t->byte_id[(unsigned char)s[i + k]], 0, 0, 1};
					last_unk = 0;
				} else if (t->unk_id >= 0) {
					if (!(t->fuse_unk && last_unk))
						w->syms[ns++] = (struct sym){t->unk_id, 0, 0, 1};
					last_unk = 1;
				}
			}
			i += (size_t)l;
		}
	}
	if (t->ignore_merges && t->byte_level) {
		/* the whole pre-token (in byte-level form) may be a token */
		util_buf b = UTIL_BUF_INIT;
		for (size_t i = 0; i < n; i++)
			add_utf8(&b, t->byte_char[(unsigned char)s[i]]);
		int32_t id = map_get(t, b.data, b.len);
		util_buf_free(&b);
		if (id >= 0) {
			out_id(w, id);
			return;
		}
	}
	for (size_t i = 0; i < ns; i++) {
		w->syms[i].prev = (int32_t)i - 1;
		w->syms[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
	}
	w->heap.n = 0;
	for (size_t i = 0; i + 1 < ns; i++)
		push_pair(t, w, (int32_t)i);
	while (w->heap.n) {
		struct cand c = heap_pop(&w->heap);
		struct sym *a = &w->syms[c.pos];
		if (!a->alive || a->id != c.left || a->next < 0)
			continue;
		struct sym *b = &w->syms[a->next];
		if (b->id != c.right)
			continue;
		const struct merge_ent *m = merge_get(t, c.left, c.right);
		a->id = m->id;
		b->alive = 0;
		a->next = b->next;
		if (b->next >= 0)
			w->syms[b->next].prev = c.pos;
		if (a->prev >= 0)
			push_pair(t, w, a->prev);
		push_pair(t, w, c.pos);
	}
	for (int32_t i = ns ? 0 : -1; i >= 0; i = w->syms[i].next)
		out_id(w, w->syms[i].id);
}

/* BPE through the cache. */
static void bpe_cached(train_tokenizer *t, struct work *w, const char *s, size_t n)
{
	if (!t->cache_on || n > CACHE_MAX_KEY) {
		bpe_piece(t, w, s, n);
		return;
	}
	uint64_t h = hash_bytes(s, n);
	if (t->cache_cap) {
		size_t mask = t->cache_cap - 1, i = h & mask;
		while (t->cache[i].key) {
			struct cache_ent *e = &t->cache[i];
			if (e->h == h && e->klen == n && !memcmp(e->key, s, n)) {
				util_buf_add(&w->out, e->ids, e->n * sizeof(int32_t));
				return;
			}
			i = (i + 1) & mask;
		}
	}
	size_t before = w->out.len;
	bpe_piece(t, w, s, n);
	if (t->cache_n + 1 > CACHE_MAX_ENTRIES)
		cache_clear(t);
	if (!t->cache_cap) {
		t->cache_cap = 2 * CACHE_MAX_ENTRIES;
		t->cache = xcalloc(t->cache_cap, sizeof *t->cache);
	}
	size_t mask = t->cache_cap - 1, i = h & mask;
	while (t->cache[i].key)
		i = (i + 1) & mask;
	struct cache_ent *e = &t->cache[i];
	e->key = xmalloc(n);
	memcpy(e->key, s, n);
	e->klen = n;
	e->h = h;
	e->n = (w->out.len - before) / sizeof(int32_t);
	e->ids = xmalloc(e->n * sizeof(int32_t) + 1);
	if (e->n)
		memcpy(e->ids, w->out.data + before, e->n * sizeof(int32_t));
	t->cache_n++;
}

int train_tokenizer_set_cache(train_tokenizer *t, int on)
{
	int old = t->cache_on;
	t->cache_on = !!on;
	if (!on)
		cache_clear(t);
	return old;
}

/* ---- encode ------------------------------------------------------------- */

struct span {
	size_t off, len;
};

struct spans {
	struct span *v;
	size_t n, cap;
};

static void spans_add(struct spans *s, size_t off, size_t len)
{
	if (!len)
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xreallocarray(s->v, s->cap, sizeof *s->v);
	}
	s->v[s->n++] = (struct span){off, len};
}

/* Split every span of in by one pre-tokenizer step into out. */
static void split_step(const train_tokenizer *t, const struct pre_step *p, const char *s,
		       const struct spans *in, struct spans *out)
{
	out->n = 0;
	for (size_t k = 0; k < in->n; k++) {
		size_t off = in->v[k].off, end = off + in->v[k].len;
		if (p->kind == PRE_METASPACE_SPLIT) {
			size_t rl = strlen(t->meta_repl), start = off;
			for (size_t i = off + 1; i + rl <= end; i++) {
				if (!memcmp(s + i, t->meta_repl, rl)) {
					spans_add(out, start, i - start);
					start = i;
				}
			}
			spans_add(out, start, end - start);
			continue;
		}
		size_t pos = off, last = off; /* last: end of the previous emitted piece */
		while (pos < end) {
			int rc = pcre2_match(p->re, (PCRE2_SPTR)s, end, pos, PCRE2_NO_UTF_CHECK, p->md,
					     NULL);
			if (rc < 0)
				break;
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
			size_t ms = ov[0], me = ov[1];
			if (me == ms) { /* empty match: step one character */
				size_t step = 1;
				while (ms + step < end && ((unsigned char)s[ms + step] & 0xC0) == 0x80)
					step++;
				pos = ms + step;
				continue;
			}
			switch (p->behavior) {
			case SPLIT_ISOLATED:
				spans_add(out, last, ms - last);
				spans_add(out, ms, me - ms);
				last = me;
				break;
			case SPLIT_REMOVED:
				spans_add(out, last, ms - last);
				last = me;
				break;
			case SPLIT_MERGED_PREV:
				spans_add(out, last, me - last);
				last = me;
				break;
			case SPLIT_MERGED_NEXT:
				spans_add(out, last, ms - last);
				last = ms;
				break;
			}
			pos = me;
		}
		spans_add(out, last, end - last);
	}
}

static void replace_all(util_buf *dst, const char *s, size_t n, const char *a, size_t alen,
			const char *b, size_t blen)
{
	size_t i = 0, run = 0;
	while (i + alen <= n) {
		if (s[i] == a[0] && !memcmp(s + i, a, alen)) {
			util_buf_add(dst, s + run, i - run);
			util_buf_add(dst, b, blen);
			i += alen;
			run = i;
		} else {
			i++;
		}
	}
	util_buf_add(dst, s + run, n - run);
}

/* Normalize and pre-tokenize one segment of ordinary text (between added
 * tokens), then BPE each piece. first: the segment starts the input. */
static void encode_segment(train_tokenizer *t, struct work *w, const char *s, size_t n, int first)
{
	util_buf cur = UTIL_BUF_INIT, tmp = UTIL_BUF_INIT;
	int transform = t->nnorm || t->meta || (t->byte_level && t->bl_prefix_space);
	if (transform)
		util_buf_add(&cur, s, n);
	else /* borrow the text: cur is not freed below */
		cur = (util_buf){(char *)s, n, 0};
	for (size_t k = 0; k < t->nnorm; k++) {
		const struct norm_step *st = &t->norm[k];
		util_buf_reset(&tmp);
		switch (st->kind) {
		case NORM_NFC:
		case NORM_NFKC: {
			size_t i = 0;
			while (i < cur.len && !((unsigned char)cur.data[i] & 0x80))
				i++;
			if (i == cur.len)
				continue; /* ASCII is its own normal form */
			utf8proc_uint8_t *o = NULL;
			int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE |
				   (st->kind == NORM_NFKC ? UTF8PROC_COMPAT : 0);
			utf8proc_ssize_t r = cur.len ? utf8proc_map((const utf8proc_uint8_t *)cur.data,
								    (utf8proc_ssize_t)cur.len, &o,
								    (utf8proc_option_t)opts)
						     : 0;
			if (r > 0)
				util_buf_add(&tmp, o, (size_t)r);
			else if (r < 0)
				util_buf_add(&tmp, cur.data, cur.len);
			free(o);
			break;
		}
		case NORM_PREPEND:
			if (cur.len)
				util_buf_add(&tmp, st->a, st->alen);
			util_buf_add(&tmp, cur.data ? cur.data : "", cur.len);
			break;
		case NORM_REPLACE:
			replace_all(&tmp, cur.data ? cur.data : "", cur.len, st->a, st->alen, st->b,
				    st->blen);
			break;
		}
		util_buf swap = cur;
		cur = tmp;
		tmp = swap;
	}
	if (t->meta && cur.len) {
		util_buf_reset(&tmp);
		size_t rl = strlen(t->meta_repl);
		util_buf rep = UTIL_BUF_INIT;
		replace_all(&rep, cur.data, cur.len, " ", 1, t->meta_repl, rl);
		if ((t->meta_prepend == 1 || (t->meta_prepend == 2 && first)) &&
		    !(rep.len >= rl && !memcmp(rep.data, t->meta_repl, rl)))
			util_buf_add(&tmp, t->meta_repl, rl);
		util_buf_add(&tmp, rep.data, rep.len);
		util_buf_free(&rep);
		util_buf swap = cur;
		cur = tmp;
		tmp = swap;
	}
	if (t->byte_level && t->bl_prefix_space && cur.len && cur.data[0] != ' ') {
		util_buf_reset(&tmp);
		util_buf_addc(&tmp, ' ');
		util_buf_add(&tmp, cur.data, cur.len);
		util_buf swap = cur;
		cur = tmp;
		tmp = swap;
	}
	struct spans a = {0}, b = {0};
	if (t->ws_split) {
		size_t ml = strlen(t->ws_split), start = 0;
		int prev_marker = 1;
		for (size_t i = 0; i < cur.len;) {
			int m = cur.data[i] == t->ws_split[0] && i + ml <= cur.len &&
				!memcmp(cur.data + i, t->ws_split, ml);
			if (m && !prev_marker) {
				spans_add(&a, start, i - start);
				start = i;
			}
			prev_marker = m;
			i += m ? ml : 1;
		}
		spans_add(&a, start, cur.len - start);
	} else {
		spans_add(&a, 0, cur.len);
	}
	for (size_t k = 0; k < t->npre; k++) {
		split_step(t, &t->pre[k], cur.data, &a, &b);
		struct spans sw = a;
		a = b;
		b = sw;
	}
	for (size_t k = 0; k < a.n; k++)
		bpe_cached(t, w, cur.data + a.v[k].off, a.v[k].len);
	free(a.v);
	free(b.v);
	if (transform)
		util_buf_free(&cur);
	util_buf_free(&tmp);
}

static int is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Find the next added token in s[from, n): returns its index in t->added or
 * -1, with the span it covers (lstrip/rstrip absorb whitespace). */
static long find_added(const train_tokenizer *t, const char *s, size_t n, size_t from,
		       size_t *ms, size_t *me)
{
	if (!t->nadded)
		return -1;
	for (size_t i = from; i < n; i++) {
		if (!t->added_first[(unsigned char)s[i]])
			continue;
		for (size_t k = 0; k < t->nadded; k++) {
			const struct added_tok *a = &t->added[k];
			if (a->len <= n - i && !memcmp(s + i, a->content, a->len)) {
				size_t b = i, e = i + a->len;
				if (a->lstrip)
					while (b > from && is_ws((unsigned char)s[b - 1]))
						b--;
				if (a->rstrip)
					while (e < n && is_ws((unsigned char)s[e]))
						e++;
				*ms = b;
				*me = e;
				return (long)k;
			}
		}
	}
	return -1;
}

int train_tokenizer_encode(train_tokenizer *t, const char *text, size_t len, int32_t **ids,
			   size_t *n)
{
	*ids = NULL;
	*n = 0;
	size_t bad;
	if (!util_utf8_valid(text, len, &bad)) {
		set_err(t, "invalid UTF-8 at byte %zu of the text", bad);
		return TRAIN_TOK_EINPUT;
	}
	struct work w = {0};
	size_t pos = 0;
	while (pos < len) {
		size_t ms = len, me = len;
		long k = find_added(t, text, len, pos, &ms, &me);
		if (k < 0)
			ms = me = len;
		encode_segment(t, &w, text + pos, ms - pos, pos == 0);
		if (k >= 0)
			out_id(&w, t->added[k].id);
		pos = me;
	}
	free(w.syms);
	free(w.heap.v);
	*n = w.out.len / sizeof(int32_t);
	if (*n) {
		*ids = xmalloc(w.out.len);
		memcpy(*ids, w.out.data, w.out.len);
	}
	util_buf_free(&w.out);
	return 0;
}

/* ---- decode ------------------------------------------------------------- */

/* Bytes of a byte-level token string: each char mapped back to its byte;
 * when a char is outside the alphabet the token's own bytes are used. */
static void bytelevel_bytes(const train_tokenizer *t, const char *s, size_t n, util_buf *out)
{
	size_t start = out->len;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int l = util_utf8_decode(s + i, n - i, &cp);
		if (l <= 0 || cp >= 324 || t->char_byte[cp] < 0) {
			out->len = start;
			if (out->data)
				out->data[start] = 0;
			util_buf_add(out, s, n);
			return;
		}
		util_buf_addc(out, (char)t->char_byte[cp]);
		i += (size_t)l;
	}
}

static int byte_token(const char *s, size_t n, unsigned char *b)
{
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
		return 0;
	unsigned v = 0;
	for (int i = 3; i < 5; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else
			return 0;
	}
	*b = (unsigned char)v;
	return 1;
}

struct toks {
	util_buf *v;
	size_t n;
};

static void dec_apply(const train_tokenizer *t, const struct dec_step *d, struct toks *tk,
		      const unsigned char *raw)
{
	switch (d->kind) {
	case DEC_BYTELEVEL: {
		util_buf all = UTIL_BUF_INIT, fixed = UTIL_BUF_INIT;
		for (size_t i = 0; i < tk->n; i++) {
			if (raw[i])
				util_buf_add(&all, tk->v[i].data, tk->v[i].len);
			else
				bytelevel_bytes(t, tk->v[i].data ? tk->v[i].data : "", tk->v[i].len,
						&all);
			util_buf_free(&tk->v[i]);
		}
		add_lossy(&fixed, all.data ? all.data : "", all.len);
		util_buf_free(&all);
		tk->v[0] = fixed;
		tk->n = 1;
		break;
	}
	case DEC_REPLACE:
	case DEC_METASPACE:
		for (size_t i = 0; i < tk->n; i++) {
			util_buf nb = UTIL_BUF_INIT;
			const char *to = d->kind == DEC_REPLACE ? d->b : " ";
			size_t tolen = d->kind == DEC_REPLACE ? d->blen : 1;
			replace_all(&nb, tk->v[i].data ? tk->v[i].data : "", tk->v[i].len, d->a,
				    d->alen, to, tolen);
			if (d->kind == DEC_METASPACE && i == 0 && d->start && nb.len &&
			    nb.data[0] == ' ')
				memmove(nb.data, nb.data + 1, nb.len--);
			util_buf_free(&tk->v[i]);
			tk->v[i] = nb;
		}
		break;
	case DEC_BYTEFALLBACK: {
		util_buf *nv = xcalloc(tk->n ? tk->n : 1, sizeof *nv);
		size_t nn = 0;
		util_buf pend = UTIL_BUF_INIT;
		size_t npend = 0;
		for (size_t i = 0; i <= tk->n; i++) {
			unsigned char b;
			if (i < tk->n && byte_token(tk->v[i].data, tk->v[i].len, &b)) {
				util_buf_addc(&pend, (char)b);
				npend++;
				continue;
			}
			if (npend) {
				if (util_utf8_valid(pend.data, pend.len, NULL)) {
					nv[nn++] = pend;
					pend = (util_buf)UTIL_BUF_INIT;
				} else {
					for (size_t k = 0; k < npend; k++) {
						util_buf r = UTIL_BUF_INIT;
						util_buf_adds(&r, "\xEF\xBF\xBD");
						if (nn == tk->n) /* cannot overflow: npend tokens */
							break;
						nv[nn++] = r;
					}
					util_buf_reset(&pend);
				}
				npend = 0;
			}
			if (i < tk->n) {
				nv[nn++] = tk->v[i];
				tk->v[i] = (util_buf)UTIL_BUF_INIT;
			}
		}
		util_buf_free(&pend);
		for (size_t i = 0; i < tk->n; i++)
			util_buf_free(&tk->v[i]);
		free(tk->v);
		tk->v = nv;
		tk->n = nn;
		break;
	}
	case DEC_FUSE: {
		if (tk->n <= 1)
			break;
		for (size_t i = 1; i < tk->n; i++) {
			util_buf_add(&tk->v[0], tk->v[i].data ? tk->v[i].data : "", tk->v[i].len);
			util_buf_free(&tk->v[i]);
		}
		tk->n = 1;
		break;
	}
	case DEC_STRIP:
		for (size_t i = 0; i < tk->n; i++) {
			const char *s = tk->v[i].data ? tk->v[i].data : "";
			size_t n = tk->v[i].len, b = 0, e = n;
			for (int k = 0; k < d->start && b < n; k++) {
				uint32_t cp;
				int l = util_utf8_decode(s + b, n - b, &cp);
				if (l <= 0 || cp != d->strip_cp)
					break;
				b += (size_t)l;
			}
			for (int k = 0; k < d->stop && e > b; k++) {
				size_t p = e - 1;
				while (p > b && ((unsigned char)s[p] & 0xC0) == 0x80)
					p--;
				uint32_t cp;
				int l = util_utf8_decode(s + p, e - p, &cp);
				if (l <= 0 || cp != d->strip_cp)
					break;
				e = p;
			}
			util_buf nb = UTIL_BUF_INIT;
			util_buf_add(&nb, s + b, e - b);
			util_buf_free(&tk->v[i]);
			tk->v[i] = nb;
		}
		break;
	}
}

char *train_tokenizer_decode(train_tokenizer *t, const int32_t *ids, size_t n)
{
	size_t len;
	return train_tokenizer_decode_len(t, ids, n, &len);
}

char *train_tokenizer_decode_len(train_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
	struct toks tk = {xcalloc(n ? n : 1, sizeof(util_buf)), 0};
	unsigned char *raw = xcalloc(n ? n : 1, 1);
	for (size_t i = 0; i < n; i++) {
		int32_t id = ids[i];
		if (id < 0 || (size_t)id >= t->nvocab || !t->tok[id])
			continue;
		raw[tk.n] = t->is_added[id] != 0;
		util_buf_add(&tk.v[tk.n++], t->tok[id], t->toklen[id]);
	}
	for (size_t k = 0; k < t->ndec && tk.n; k++)
		dec_apply(t, &t->dec[k], &tk, raw);
	util_buf all = UTIL_BUF_INIT, out = UTIL_BUF_INIT;
	for (size_t i = 0; i < tk.n; i++) {
		util_buf_add(&all, tk.v[i].data ? tk.v[i].data : "", tk.v[i].len);
		util_buf_free(&tk.v[i]);
	}
	free(tk.v);
	free(raw);
	add_lossy(&out, all.data ? all.data : "", all.len);
	util_buf_free(&all);
	*len = out.len;
	return util_buf_detach(&out);
}

int train_tokenizer_token_bytes(const train_tokenizer *t, int32_t id, char **out, size_t *outlen)
{
	if (id < 0 || (size_t)id >= t->nvocab || !t->tok[id])
		return TRAIN_TOK_EINPUT;
	util_buf b = {*out, *outlen, *out ? *outlen + 1 : 0};
	const char *s = t->tok[id];
	size_t n = t->toklen[id];
	unsigned char byte;
	if (t->is_added[id])
		util_buf_add(&b, s, n);
	else if (t->byte_level)
		bytelevel_bytes(t, s, n, &b);
	else if (byte_token(s, n, &byte))
		util_buf_addc(&b, (char)byte);
	else if (t->meta_repl)
		replace_all(&b, s, n, t->meta_repl, strlen(t->meta_repl), " ", 1);
	else {
		const char *repl = "\xE2\x96\x81";
		for (size_t k = 0; k < t->ndec; k++)
			if (t->dec[k].kind == DEC_REPLACE)
				repl = t->dec[k].a;
		replace_all(&b, s, n, repl, strlen(repl), " ", 1);
	}
	*out = b.data;
	*outlen = b.len;
	return 0;
}

/* ---- accessors ---------------------------------------------------------- */

size_t train_tokenizer_vocab_size(const train_tokenizer *t)
{
	return t->nvocab;
}

const char *train_tokenizer_token(const train_tokenizer *t, int32_t id)
{
	if (id < 0 || (size_t)id >= t->nvocab)
		return NULL;
	return t->tok[id];
}

int32_t train_tokenizer_token_id(const train_tokenizer *t, const char *token)
{
	return map_get(t, token, strlen(token));
}

int train_tokenizer_is_special(const train_tokenizer *t, int32_t id)
{
	if (id < 0 || (size_t)id >= t->nvocab)
		return 0;
	return t->is_added[id] == 2;
}

int32_t train_tokenizer_bos_id(const train_tokenizer *t)
{
	return t->bos_id;
}

int32_t train_tokenizer_eos_id(const train_tokenizer *t)
{
	return t->eos_id;
}

int32_t train_tokenizer_pad_id(const train_tokenizer *t)
{
	return t->pad_id;
}

int32_t train_tokenizer_unk_id(const train_tokenizer *t)
{
	return t->unk_id;
}

int train_tokenizer_add_bos(const train_tokenizer *t)
{
	return t->add_bos && t->bos_id >= 0;
}

const char *train_tokenizer_chat_template(const train_tokenizer *t)
{
	return t->chat_template;
}

const char *train_tokenizer_bos_token(const train_tokenizer *t)
{
	return t->bos_tok;
}

const char *train_tokenizer_eos_token(const train_tokenizer *t)
{
	return t->eos_tok;
}

const char *train_tokenizer_fingerprint(const train_tokenizer *t)
{
	return t->fingerprint;
}

const char *train_tokenizer_kind(const train_tokenizer *t)
{
	return t->byte_level ? "byte-level BPE" : t->byte_fallback ? "BPE with byte fallback" : "BPE";
}

const char *train_tokenizer_errmsg(const train_tokenizer *t)
{
	return t->err ? t->err : "";
}
