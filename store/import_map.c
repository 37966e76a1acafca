/* import_map.c: field paths, --map FIELD=PATH,... and --join FILE --on KEY:
 * each record is rewritten to the fields the import formats read before it
 * is parsed. See import.h and import_stream.h. */
#include "store/import_stream.h"
#include "util/xmalloc.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- field paths ------------------------------------------------------------------- */

static void seg_push(store_fpath *p, char *key, long index)
{
	p->seg = xreallocarray(p->seg, p->nseg + 1, sizeof *p->seg);
	p->seg[p->nseg].key = key;
	p->seg[p->nseg].index = index;
	p->nseg++;
}

int store_fpath_compile(const char *text, store_fpath *p, char *err, size_t errlen)
{
	const char *s = text;
	memset(p, 0, sizeof *p);
	p->text = xstrdup(text);
	if (!*s) {
		snprintf(err, errlen, "an empty field path");
		return -1;
	}
	for (;;) {
		size_t n = strcspn(s, ".[]");
		if (n)
			seg_push(p, xstrndup(s, n), 0);
		else if (*s != '[' || (s != text && s[-1] == '.')) {
			snprintf(err, errlen, "field path \"%s\": a name is missing at character %zu", text,
				 (size_t)(s - text) + 1);
			return -1;
		}
		s += n;
		while (*s == '[') {
			char *end;
			if (!isdigit((unsigned char)s[1])) {
				snprintf(err, errlen, "field path \"%s\": expected a number after '[' at character %zu",
					 text, (size_t)(s - text) + 2);
				return -1;
			}
			errno = 0;
			long v = strtol(s + 1, &end, 10);
			if (*end != ']' || errno) {
				snprintf(err, errlen, "field path \"%s\": expected ']' at character %zu", text,
					 (size_t)(end - text) + 1);
				return -1;
			}
			seg_push(p, NULL, v);
			s = end + 1;
		}
		if (!*s)
			return 0;
		if (*s != '.') {
			snprintf(err, errlen, "field path \"%s\": unexpected '%c' at character %zu", text, *s,
				 (size_t)(s - text) + 1);
			return -1;
		}
		s++;
	}
}

void store_fpath_free(store_fpath *p)
{
	for (size_t i = 0; i < p->nseg; i++)
		free(p->seg[i].key);
	free(p->seg);
	free(p->text);
	memset(p, 0, sizeof *p);
}

/* The path's first i segments as text, for messages. */
static void path_prefix(const store_fpath *p, size_t i, util_buf *b)
{
	for (size_t k = 0; k < i; k++) {
		if (p->seg[k].key)
			util_buf_addf(b, "%s%s", k ? "." : "", p->seg[k].key);
		else
			util_buf_addf(b, "[%ld]", p->seg[k].index);
	}
}

const cJSON *store_fpath_eval(const store_fpath *p, const cJSON *root, util_buf *why)
{
	const cJSON *v = root;
	for (size_t i = 0; i < p->nseg; i++) {
		const store_fpath_seg *g = &p->seg[i];
		const cJSON *next = NULL;
		if (g->key ? cJSON_IsObject(v) : cJSON_IsArray(v))
			next = g->key ? cJSON_GetObjectItemCaseSensitive(v, g->key) : cJSON_GetArrayItem(v, (int)g->index);
		if (g->index > 0x7fffffffL)
			next = NULL;
		if (!next) {
			if (why) {
				util_buf_addf(why, "field path \"%s\" not found: ", p->text);
				if (i == 0 && g->key) {
					util_buf_addf(why, "no field \"%s\"", g->key);
				} else {
					util_buf_adds(why, i ? "\"" : "the record");
					path_prefix(p, i, why);
					if (g->key)
						util_buf_addf(why, "%s %s \"%s\"", i ? "\"" : "",
							      cJSON_IsObject(v) ? "has no field" : "is not an object with", g->key);
					else
						util_buf_addf(why, "%s %s %ld", i ? "\"" : "",
							      cJSON_IsArray(v) ? "has no element" : "is not a list with element",
							      g->index);
				}
			}
			return NULL;
		}
		v = next;
	}
	return v;
}

/* ---- maps ---------------------------------------------------------------------------- */

/* The fields a map may set: the names the formats read, plus "completion"
 * and "model" (one completion of the candidates format, credited to a model;
 * "generator" is another name for "model") and "id" (the record's own id). */
static const char *const targets[] = {
	"prompt", "messages", "system", "conversations", "chosen", "rejected", "chosen_messages",
	"rejected_messages", "score_chosen", "score_rejected", "completions", "completion", "model", "id",
	"instruction",
};

typedef struct map_entry {
	const char *field;      /* one of targets */
	store_fpath path;
	int joined;             /* the path is read from the joined record */
} map_entry;

typedef struct join_entry {
	char *key;
	cJSON *rec;
} join_entry;

struct store_import_map {
	map_entry *e;
	size_t n;
	store_fpath key;         /* --on */
	int has_join;
	join_entry *tab;        /* open addressing, cap a power of two */
	size_t cap, count;
	char *join_path;
	int default_prompt;     /* no prompt in the spec under a join */
	int default_answer;     /* no completion in the spec under a join */
	store_fpath dflt[5];     /* turns[0], prompt, instruction, choices[0].turns[0], model_id */
};

static int add_entry(store_import_map *m, const char *field, const char *path, char *err, size_t errlen)
{
	const char *canon = NULL;
	if (!strcmp(field, "generator"))
		field = "model";
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
		if (!strcmp(field, targets[i]))
			canon = targets[i];
	if (!canon) {
		snprintf(err, errlen, "--map: unknown field \"%s\" (expected prompt, messages, system, conversations, "
			 "chosen, rejected, chosen_messages, rejected_messages, score_chosen, score_rejected, "
			 "completions, completion, model, id or instruction)", field);
		return -1;
	}
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].field == canon) {
			snprintf(err, errlen, "--map: field \"%s\" is mapped twice", field);
			return -1;
		}
	m->e = xreallocarray(m->e, m->n + 1, sizeof *m->e);
	map_entry *e = &m->e[m->n++];
	memset(e, 0, sizeof *e);
	e->field = canon;
	e->joined = !strncmp(path, "join:", 5);
	if (store_fpath_compile(e->joined ? path + 5 : path, &e->path, err, errlen))
		return -1;
	return 0;
}

static const map_entry *find_entry(const store_import_map *m, const char *field)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->e[i].field, field))
			return &m->e[i];
	return NULL;
}

/* Parse "FIELD=PATH,FIELD=PATH". */
static int parse_spec(store_import_map *m, const char *spec, char *err, size_t errlen)
{
	char *copy = xstrdup(spec), *save = NULL;
	int rc = 0;
	for (char *item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq || eq == item) {
			snprintf(err, errlen, "--map: expected FIELD=PATH, got \"%s\"", item);
			rc = -1;
			break;
		}
		*eq = '\0';
		rc = add_entry(m, item, eq + 1, err, errlen);
	}
	free(copy);
	if (!rc && find_entry(m, "model") && !find_entry(m, "completion")) {
		snprintf(err, errlen, "--map: \"model\" names the model of \"completion\", which is not mapped");
		rc = -1;
	}
	return rc;
}

/* The text of a key value: a string as it is, a number in its shortest
 * form (so that 81 and "81" meet), else NULL. */
static char *key_text(const cJSON *v)
{
	if (cJSON_IsString(v))
		return xstrdup(v->valuestring);
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
		double d = v->valuedouble;
		if (d == floor(d) && fabs(d) < 9e15)
			return xasprintf("%lld", (long long)d);
		return xasprintf("%.17g", d);
	}
	return NULL;
}

static size_t hash_str(const char *s)
{
	size_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static const cJSON *join_find(const store_import_map *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->tab[i].key)
			return NULL;
		if (!strcmp(m->tab[i].key, key))
			return m->tab[i].rec;
	}
}

/* Add rec under key (taking both); -1 if the key is there already. */
static int join_put(store_import_map *m, char *key, cJSON *rec)
{
	if (2 * (m->count + 1) > m->cap) {
		size_t ncap = m->cap ? 2 * m->cap : 256;
		join_entry *t = xcalloc(ncap, sizeof *t);
		for (size_t i = 0; i < m->cap; i++)
			if (m->tab[i].key) {
				size_t j = hash_str(m->tab[i].key) & (ncap - 1);
				while (t[j].key)
					j = (j + 1) & (ncap - 1);
				t[j] = m->tab[i];
			}
		free(m->tab);
		m->tab = t;
		m->cap = ncap;
	}
	size_t i = hash_str(key) & (m->cap - 1);
	for (; m->tab[i].key; i = (i + 1) & (m->cap - 1))
		if (!strcmp(m->tab[i].key, key))
			return -1;
	m->tab[i].key = key;
	m->tab[i].rec = rec;
	m->count++;
	return 0;
}

/* Read the joined file: every record indexed by its key. */
static int load_join(store_import_map *m, const char *path, char *err, size_t errlen)
{
	store__recsrc *src = store__recsrc_open(path, STORE_IMPORT_CONTAINER_AUTO, NULL, err, errlen);
	store__recitem it;
	util_buf why = UTIL_BUF_INIT;
	int rc = 0, got;
	if (!src)
		return -1;
	while ((got = store__recsrc_next(src, &it)) == 1) {
		if (it.blank)
			continue;
		cJSON *rec = it.reason ? NULL : cJSON_ParseWithLength(it.text, it.len);
		if (!cJSON_IsObject(rec)) {
			snprintf(err, errlen, "%s:%ld: %s", path, it.line, it.reason ? it.reason : "expected a JSON object");
			cJSON_Delete(rec);
			rc = -1;
			break;
		}
		util_buf_reset(&why);
		const cJSON *k = store_fpath_eval(&m->key, rec, &why);
		char *key = k ? key_text(k) : NULL;
		if (!key) {
			snprintf(err, errlen, "%s:%ld: %s", path, it.line,
				 k ? "the --on key must be a string or a number" : util_buf_str(&why));
			cJSON_Delete(rec);
			rc = -1;
			break;
		}
		if (join_put(m, key, rec)) {
			snprintf(err, errlen, "%s:%ld: %s %.200s appears twice", path, it.line, m->key.text, key);
			free(key);
			cJSON_Delete(rec);
			rc = -1;
			break;
		}
	}
	if (got < 0) {
		long line = store__recsrc_errline(src);
		if (line)
			snprintf(err, errlen, "%s:%ld: %s", path, line, store__recsrc_error(src));
		else
			snprintf(err, errlen, "%s: %s", path, store__recsrc_error(src));
		rc = -1;
	}
	if (!rc && !m->count) {
		snprintf(err, errlen, "%s: no records", path);
		rc = -1;
	}
	store__recsrc_close(src);
	util_buf_free(&why);
	return rc;
}

int store_import_map_new(const char *spec, const char *join_path, const char *key_path, store_import_map **out,
			 int *why_kind, char *err, size_t errlen)
{
	static const char *const dflt[] = {"turns[0]", "prompt", "instruction", "choices[0].turns[0]", "model_id"};
	store_import_map *m = xcalloc(1, sizeof *m);
	*out = NULL;
	*why_kind = STORE_IMPORT_MAP_USAGE;
	if (spec && *spec && parse_spec(m, spec, err, errlen))
		goto fail;
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].joined && !join_path) {
			snprintf(err, errlen, "--map: %s=join:%s needs --join FILE", m->e[i].field, m->e[i].path.text);
			goto fail;
		}
	if (!join_path != !key_path) {
		snprintf(err, errlen, "--join and --on go together");
		goto fail;
	}
	if (join_path) {
		if (store_fpath_compile(key_path, &m->key, err, errlen))
			goto fail;
		for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++)
			store_fpath_compile(dflt[i], &m->dflt[i], err, errlen);
		m->has_join = 1;
		m->default_prompt = !find_entry(m, "prompt") && !find_entry(m, "messages");
		m->default_answer = !find_entry(m, "completion") && !find_entry(m, "completions");
		m->join_path = xstrdup(join_path);
		*why_kind = 0;
		if (load_join(m, join_path, err, errlen))
			goto fail;
	}
	*out = m;
	return 0;
fail:
	store_import_map_free(m);
	return -1;
}

void store_import_map_free(store_import_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		store_fpath_free(&m->e[i].path);
	free(m->e);
	for (size_t i = 0; i < m->cap; i++) {
		free(m->tab[i].key);
		cJSON_Delete(m->tab[i].rec);
	}
	free(m->tab);
	store_fpath_free(&m->key);
	for (size_t i = 0; i < sizeof m->dflt / sizeof m->dflt[0]; i++)
		store_fpath_free(&m->dflt[i]);
	free(m->join_path);
	free(m);
}

/* ---- applying a map ---------------------------------------------------------------------- */

/* A text field given as an object with a "content" string and no role
 * (arena-hard's turns[i], {"content", "token_len"}) stands for that string. */
static const cJSON *unwrap_content(const char *field, const cJSON *v)
{
	static const char *const text_fields[] = {"prompt", "chosen", "rejected", "completion", "instruction"};
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
	if (!cJSON_IsObject(v) || !cJSON_IsString(c) || cJSON_GetObjectItemCaseSensitive(v, "role") ||
	    cJSON_GetObjectItemCaseSensitive(v, "from"))
		return v;
	for (size_t i = 0; i < sizeof text_fields / sizeof text_fields[0]; i++)
		if (!strcmp(field, text_fields[i]))
			return c;
	return v;
}

/* A score given as a numeric string (a CSV cell) becomes a number. */
static cJSON *copy_value(const char *field, const cJSON *v)
{
	if (cJSON_IsString(v) && !strncmp(field, "score_", 6) && *v->valuestring) {
		char *end;
		double d = strtod(v->valuestring, &end);
		if (!*end && isfinite(d))
			return cJSON_CreateNumber(d);
	}
	return cJSON_Duplicate(unwrap_content(field, v), 1);
}

/* The values of the map for root (and its joined record) into vals[]
 * (copies), the defaults of a join included; *nvals counts them, on failure
 * too (the caller frees them). 0, or -1 with why. */
static int collect(const store_import_map *m, const cJSON *root, const cJSON *joined, cJSON **vals,
		   const char **names, size_t *nvals, int *answer, util_buf *why)
{
	*answer = 0;
	size_t n = 0;
	*nvals = 0;
	for (size_t i = 0; i < m->n; i++) {
		const cJSON *v = store_fpath_eval(&m->e[i].path, m->e[i].joined ? joined : root, why);
		if (!v) {
			if (m->e[i].joined)
				util_buf_addf(why, " in the --join record");
			return -1;
		}
		names[n] = m->e[i].field;
		vals[n++] = copy_value(m->e[i].field, v);
		*nvals = n;
	}
	if (m->has_join && m->default_prompt) {
		const cJSON *v = NULL;
		for (int k = 0; k < 3 && !v; k++)
			v = store_fpath_eval(&m->dflt[k], joined, NULL);
		if (!v) {
			util_buf_addf(why, "the --join record has no turns[0], prompt or instruction (use --map prompt=join:PATH)");
			return -1;
		}
		names[n] = "prompt";
		vals[n++] = copy_value("prompt", v);
		*nvals = n;
	}
	if (m->has_join && m->default_answer && cJSON_GetObjectItemCaseSensitive(root, "choices")) {
		const cJSON *v = store_fpath_eval(&m->dflt[3], root, why);
		if (!v)
			return -1;
		names[n] = "completion";
		vals[n++] = copy_value("completion", v);
		*nvals = n;
		*answer = 1;
		const cJSON *model = store_fpath_eval(&m->dflt[4], root, NULL);
		if (model && !find_entry(m, "model")) {
			names[n] = "model";
			vals[n++] = copy_value("model", model);
			*nvals = n;
		}
	}
	*nvals = n;
	return 0;
}

/* The joined record of root, or NULL with why. */
static const cJSON *joined_record(const store_import_map *m, const cJSON *root, util_buf *why)
{
	const cJSON *k = store_fpath_eval(&m->key, root, why);
	if (!k)
		return NULL;
	char *key = key_text(k);
	if (!key) {
		util_buf_addf(why, "field \"%s\" (the --on key) must be a string or a number", m->key.text);
		return NULL;
	}
	const cJSON *j = join_find(m, key);
	if (!j)
		util_buf_addf(why, "%s %.200s is not in %s", m->key.text, key, m->join_path);
	free(key);
	return j;
}

/* Whether the JSON text holds the escape \\u0000 (cJSON would cut the string
 * there without a word; the parser refuses such a record, so it is handed
 * over unmapped). */
static int has_nul_escape(const char *s, size_t n)
{
	for (size_t i = 0; i + 5 < n; i++)
		if (s[i] == '\\' && !memcmp(s + i + 1, "u0000", 5)) {
			size_t k = 0;
			while (k < i && s[i - k - 1] == '\\')
				k++;
			if (!(k & 1))
				return 1;
		}
	return 0;
}

int store__map_apply(const store_import_map *m, const char *text, size_t len, util_buf *out, util_buf *why)
{
	cJSON *root = cJSON_ParseWithLength(text, len), *vals[32];
	const char *names[32];
	const cJSON *joined = NULL;
	size_t n = 0;
	int rc = -1, answer;
	if (has_nul_escape(text, len) || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return 1;
	}
	if (m->has_join && !(joined = joined_record(m, root, why)))
		goto out;
	if (collect(m, root, joined, vals, names, &n, &answer, why)) {
		for (size_t i = 0; i < n; i++)
			cJSON_Delete(vals[i]);
		n = 0;
		goto out;
	}
	/* the top-level fields the values came from (a field inside another,
	 * e.g. metadata.question, leaves its siblings where they are), and the
	 * fields they replace, go */
	for (size_t i = 0; i < m->n; i++)
		if (!m->e[i].joined && m->e[i].path.nseg == 1 && m->e[i].path.seg[0].key)
			cJSON_DeleteItemFromObjectCaseSensitive(root, m->e[i].path.seg[0].key);
	if (answer)
		cJSON_DeleteItemFromObjectCaseSensitive(root, "choices");
	for (size_t i = 0; i < n; i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(root, names[i]);
		if (!strcmp(names[i], "completion"))
			cJSON_DeleteItemFromObjectCaseSensitive(root, "completions");
	}
	cJSON *completion = NULL, *model = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(names[i], "completion"))
			completion = vals[i];
		else if (!strcmp(names[i], "model"))
			model = vals[i];
		else
			cJSON_AddItemToObject(root, names[i], vals[i]);
	}
	if (completion) { /* one completion: the candidates format */
		cJSON *list = cJSON_AddArrayToObject(root, "completions"), *c = cJSON_CreateObject();
		cJSON_AddItemToObject(c, "text", completion);
		if (model)
			cJSON_AddItemToObject(c, "model", model);
		cJSON_AddItemToArray(list, c);
	} else {
		cJSON_Delete(model);
	}
	char *s = cJSON_PrintUnformatted(root);
	util_buf_reset(out);
	util_buf_adds(out, s);
	free(s);
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}
