/* store_data.c: prompts, completions, generators, annotators, comparisons,
 * importing parsed records, and iterating over them. */
#include "config.h"
#include "store/store_int.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation helpers ------------------------------------------------- */

static int is_role(const char *r)
{
	return r && (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant"));
}

static int is_verdict(const char *v, int allow_skip)
{
	return v && (!strcmp(v, "a") || !strcmp(v, "b") || !strcmp(v, "tie") || !strcmp(v, "both_bad") ||
		     (allow_skip && !strcmp(v, "skip")));
}

/* The verdict seen from the other order of the pair. */
static const char *swap_ab(const char *v)
{
	if (v && !strcmp(v, "a"))
		return "b";
	if (v && !strcmp(v, "b"))
		return "a";
	return v;
}

/* Canonical serialisation of a conversation: a compact JSON array of
 * {"role", "content"} objects, into b (reset first). */
static int messages_json(store *st, const store_msg *msgs, size_t n, util_buf *b)
{
	util_buf_reset(b);
	util_buf_addc(b, '[');
	for (size_t i = 0; i < n; i++) {
		if (!is_role(msgs[i].role))
			return store__err(st, STORE_EINVAL,
					  "message %zu: role must be \"system\", \"user\" or \"assistant\", not \"%s\"",
					  i + 1, msgs[i].role ? msgs[i].role : "(none)");
		if (!msgs[i].content)
			return store__err(st, STORE_EINVAL, "message %zu: no content", i + 1);
		if (i)
			util_buf_addc(b, ',');
		util_buf_adds(b, "{\"role\":");
		util_buf_add_json_string(b, msgs[i].role, strlen(msgs[i].role));
		util_buf_adds(b, ",\"content\":");
		util_buf_add_json_string(b, msgs[i].content, strlen(msgs[i].content));
		util_buf_addc(b, '}');
	}
	util_buf_addc(b, ']');
	return STORE_OK;
}

/* ---- prompts ------------------------------------------------------------ */

void store__text_prompt_hash(const char *text, size_t n, unsigned char hash[32])
{
	util_sha256 c;
	util_sha256_init(&c);
	util_sha256_update(&c, "text", 5); /* with the NUL */
	util_sha256_update(&c, text, n);
	util_sha256_final(&c, hash);
}

/* The content hash of a completion text of n bytes. */
static void completion_hash(const char *text, size_t n, unsigned char hash[32])
{
	util_sha256 c;
	util_sha256_init(&c);
	util_sha256_update(&c, text, n);
	util_sha256_final(&c, hash);
}

void store_record_hash(const store_record *rec, unsigned char *prompt_hash, unsigned char *completion_hashes)
{
	if (rec->prompt_text && prompt_hash)
		store__text_prompt_hash(rec->prompt_text, strlen(rec->prompt_text), prompt_hash);
	for (size_t i = 0; completion_hashes && i < rec->ncompletions; i++)
		if (rec->completions[i].text)
			completion_hash(rec->completions[i].text, strlen(rec->completions[i].text),
					completion_hashes + 32 * i);
}

/* store_prompt_add, with the counters a new prompt starts with (an import
 * knows them in advance and so saves an update); text_hash: the text
 * prompt's hash computed ahead, or NULL. */
static int prompt_insert(store *st, const char *text, const unsigned char *text_hash, const store_msg *msgs,
			 size_t nmsgs, const char *source, const char *split, int ncomp, int nlab, int64_t *id,
			 int *created)
{
	unsigned char hash[32];
	const char *content, *kind;
	int rc;

	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!!text == !!msgs)
		return store__err(st, STORE_EINVAL, "a prompt is either text or messages, not %s",
				  text ? "both" : "neither");
	if (msgs && nmsgs == 0)
		return store__err(st, STORE_EINVAL, "a conversation prompt needs at least one message");
	if (!source || !*source)
		source = "manual";
	if (!split)
		split = "train";
	if (!*split)
		return store__err(st, STORE_EINVAL, "a split name cannot be empty");
	if (text) {
		if (text_hash)
			memcpy(hash, text_hash, 32);
		else
			store__text_prompt_hash(text, strlen(text), hash);
		content = text;
		kind = "text";
	} else {
		if ((rc = messages_json(st, msgs, nmsgs, &st->scratch)))
			return rc;
		if (nmsgs == 1 && strcmp(msgs[0].role, "user") == 0) {
			/* one canonical form: [user: "Hi"] is the prompt "Hi"
			 * (the first form stored is the one kept) */
			store__text_prompt_hash(msgs[0].content, strlen(msgs[0].content), hash);
		} else {
			util_sha256 c;
			util_sha256_init(&c);
			util_sha256_update(&c, st->scratch.data, st->scratch.len);
			util_sha256_final(&c, hash);
		}
		content = st->scratch.data;
		kind = "chat";
	}
	sqlite3_stmt *s = store__stmt(st, SS_PROMPT_INSERT);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, content, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, source, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, split, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, store__now(st), -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 7, ncomp);
	sqlite3_bind_int(s, 8, nlab);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = store__dberr(st, "add prompt");
		sqlite3_reset(s);
		return rc;
	}
	sqlite3_reset(s);
	if (sqlite3_changes(st->db) == 1) {
		if (id)
			*id = sqlite3_last_insert_rowid(st->db);
		if (created)
			*created = 1;
		return STORE_OK;
	}
	s = store__stmt(st, SS_PROMPT_BY_HASH);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		if (id)
			*id = sqlite3_column_int64(s, 0);
		if (created)
			*created = 0;
		rc = STORE_OK;
	} else {
		rc = store__dberr(st, "find prompt");
	}
	sqlite3_reset(s);
	return rc;
}

int store_prompt_add(store *st, const char *text, const store_msg *msgs, size_t nmsgs, const char *source,
		     const char *split, int64_t *id, int *created)
{
	return prompt_insert(st, text, NULL, msgs, nmsgs, source, split, 0, 0, id, created);
}

/* Fill p from a row (id, hash, kind, content, source, split); hex holds
 * the hash as text. */
static void prompt_from_row(sqlite3_stmt *s, store_prompt *p, char hex[65])
{
	const char *kind = store__col_text(s, 2);
	p->id = sqlite3_column_int64(s, 0);
	store__hex(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1), hex);
	p->hash = hex;
	p->text = kind[0] == 't' ? store__col_text(s, 3) : NULL;
	p->messages_json = kind[0] == 'c' ? store__col_text(s, 3) : NULL;
	p->source = store__col_text(s, 4);
	p->split = store__col_text(s, 5);
}

int store_prompts_foreach(store *st, const char *split, const char *source, long limit, store_prompt_cb cb,
			  void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT id, hash, kind, content, source, split FROM prompts "
					     "WHERE (?1 IS NULL OR split = ?1) AND (?2 IS NULL OR source = ?2) "
					     "ORDER BY id LIMIT ?3");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, split);
	store__bind_text(s, 2, source);
	sqlite3_bind_int64(s, 3, limit > 0 ? limit : -1);
	int rc, r = STORE_OK;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_prompt p;
		char hex[65];
		prompt_from_row(s, &p, hex);
		if ((r = cb(ud, &p)))
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = store__dberr(st, "read prompts");
	sqlite3_finalize(s);
	return r;
}

int store_prompt_get(store *st, int64_t id, store_prompt_cb cb, void *ud)
{
	/* borrowed: cb may call back into the store (and here) */
	static const char sql[] = "SELECT id, hash, kind, content, source, split FROM prompts WHERE id = ?1";
	sqlite3_stmt *s = store__stmt_borrow(st, sql);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		store_prompt p;
		char hex[65];
		prompt_from_row(s, &p, hex);
		rc = cb(ud, &p);
	} else if (rc == SQLITE_DONE) {
		rc = store__err(st, STORE_ENOTFOUND, "no prompt with id %lld", (long long)id);
	} else {
		rc = store__dberr(st, "read prompt");
	}
	store__stmt_return(st, sql, s);
	return rc;
}

/* ---- generators and annotators ------------------------------------------ */

int store_generator_id(store *st, const store_generator *g, int64_t *id)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!g || !g->kind || (strcmp(g->kind, "model") && strcmp(g->kind, "import")))
		return store__err(st, STORE_EINVAL, "generator kind must be \"model\" or \"import\"");
	if (!g->name || !*g->name)
		return store__err(st, STORE_EINVAL, "a generator needs a name");
	const char *fp = g->fingerprint ? g->fingerprint : "";
	const char *params = g->params_json ? g->params_json : "";
	int rc;
	sqlite3_stmt *s = store__stmt(st, SS_GENERATOR_FIND);
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, g->kind);
	store__bind_text(s, 2, g->name);
	store__bind_text(s, 3, fp);
	store__bind_text(s, 4, params);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		return STORE_OK;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__dberr(st, "find generator");
	if (!(s = store__stmt(st, SS_GENERATOR_INSERT)))
		return STORE_ERR;
	store__bind_text(s, 1, g->kind);
	store__bind_text(s, 2, g->name);
	store__bind_text(s, 3, fp);
	store__bind_text(s, 4, params);
	store__bind_text(s, 5, store__now(st));
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return store__dberr(st, "add generator");
	if (sqlite3_changes(st->db) == 1) {
		*id = sqlite3_last_insert_rowid(st->db);
		return STORE_OK;
	}
	return store_generator_id(st, g, id); /* raced with another writer */
}

int store_annotator_id(store *st, const store_annotator *a, int64_t *id)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!a || !a->kind || (strcmp(a->kind, "human") && strcmp(a->kind, "judge") && strcmp(a->kind, "import")))
		return store__err(st, STORE_EINVAL, "annotator kind must be \"human\", \"judge\" or \"import\"");
	if (!a->name || !*a->name)
		return store__err(st, STORE_EINVAL, "an annotator needs a name");
	int rc;
	for (int attempt = 0; attempt < 2; attempt++) {
		sqlite3_stmt *s = store__stmt(st, SS_ANNOTATOR_FIND);
		if (!s)
			return STORE_ERR;
		store__bind_text(s, 1, a->name);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			if (strcmp(store__col_text(s, 1), a->kind)) {
				rc = store__err(st, STORE_EINVAL, "annotator \"%s\" exists already as a %s, not a %s",
						a->name, store__col_text(s, 1), a->kind);
				sqlite3_reset(s);
				return rc;
			}
			*id = sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
			return STORE_OK;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return store__dberr(st, "find annotator");
		if (!(s = store__stmt(st, SS_ANNOTATOR_INSERT)))
			return STORE_ERR;
		store__bind_text(s, 1, a->kind);
		store__bind_text(s, 2, a->name);
		store__bind_text(s, 3, a->provider);
		store__bind_text(s, 4, a->model);
		store__bind_text(s, 5, a->template_hash);
		store__bind_text(s, 6, a->params_json);
		store__bind_text(s, 7, store__now(st));
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return store__dberr(st, "add annotator");
		if (sqlite3_changes(st->db) == 1) {
			*id = sqlite3_last_insert_rowid(st->db);
			return STORE_OK;
		}
	}
	return store__err(st, STORE_ERR, "annotator \"%s\": cannot find or create it", a->name);
}

/* Memoised lookups for imports: (tag, name) -> id, cleared on rollback.
 * The key is stored as tag followed by the name. */
static int64_t memo_get(store_memo *m, char tag, const char *name)
{
	for (int i = 0; i < STORE_MEMO_N; i++)
		if (m[i].key && m[i].key[0] == tag && !strcmp(m[i].key + 1, name))
			return m[i].id;
	return 0;
}

static void memo_put(store_memo *m, char tag, const char *name, int64_t id)
{
	int slot = STORE_MEMO_N - 1;
	for (int i = 0; i < STORE_MEMO_N; i++)
		if (!m[i].key) {
			slot = i;
			break;
		}
	free(m[slot].key);
	m[slot].key = xasprintf("%c%s", tag, name);
	m[slot].id = id;
}

/* ---- completions -------------------------------------------------------- */

/* Add n_completions / n_labeled_pairs deltas to a prompt's counters. */
static int prompt_counts(store *st, int64_t prompt_id, int dcomp, int dlab)
{
	sqlite3_stmt *s = store__stmt(st, SS_PROMPT_COUNTS);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, prompt_id);
	sqlite3_bind_int(s, 2, dcomp);
	sqlite3_bind_int(s, 3, dlab);
	int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "update prompt counters");
	sqlite3_reset(s);
	return rc;
}

/* Insert or find a completion (text_hash: its hash computed ahead, or
 * NULL); the caller updates the prompt's counters. */
/* Credit completion_id to generator_id too (completion_generators). */
static int completion_credit(store *st, int64_t completion_id, int64_t generator_id)
{
	if (st->old_schema)
		return STORE_OK;
	return store__credit_add(st, completion_id, generator_id);
}

static int completion_insert_one(store *st, int64_t prompt_id, const char *text, const unsigned char *text_hash,
				 int64_t generator_id, int64_t *id, int *created);

/* Insert a completion (or find it: same prompt and text) and credit it to
 * generator_id, a duplicate from another generator included. */
static int completion_insert(store *st, int64_t prompt_id, const char *text, const unsigned char *text_hash,
			     int64_t generator_id, int64_t *id, int *created)
{
	int64_t cid = 0;
	int rc = completion_insert_one(st, prompt_id, text, text_hash, generator_id, &cid, created);
	if (!rc && (rc = completion_credit(st, cid, generator_id)) == STORE_OK && id)
		*id = cid;
	return rc;
}

static int completion_insert_one(store *st, int64_t prompt_id, const char *text, const unsigned char *text_hash,
				 int64_t generator_id, int64_t *id, int *created)
{
	unsigned char hash[32];
	int rc;
	size_t n = strlen(text);
	if (text_hash)
		memcpy(hash, text_hash, 32);
	else
		completion_hash(text, n, hash);
	sqlite3_stmt *s = store__stmt(st, SS_COMPLETION_INSERT);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, prompt_id);
	sqlite3_bind_blob(s, 2, hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, text, (int)n, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, generator_id);
	sqlite3_bind_text(s, 5, store__now(st), -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		if ((sqlite3_errcode(st->db) & 0xff) == SQLITE_CONSTRAINT)
			return store__err(st, STORE_EINVAL, "add completion: no prompt %lld or no generator %lld",
					  (long long)prompt_id, (long long)generator_id);
		return store__dberr(st, "add completion");
	}
	if (sqlite3_changes(st->db) == 1) {
		if (id)
			*id = sqlite3_last_insert_rowid(st->db);
		if (created)
			*created = 1;
		return STORE_OK;
	}
	if (!(s = store__stmt(st, SS_COMPLETION_BY_HASH)))
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, prompt_id);
	sqlite3_bind_blob(s, 2, hash, 32, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		if (id)
			*id = sqlite3_column_int64(s, 0);
		if (created)
			*created = 0;
		rc = STORE_OK;
	} else {
		rc = store__dberr(st, "find completion");
	}
	sqlite3_reset(s);
	return rc;
}

int store_completion_add(store *st, int64_t prompt_id, const char *text, int64_t generator_id, int64_t *id,
			 int *created)
{
	int started, made = 0, rc;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!text)
		return store__err(st, STORE_EINVAL, "a completion needs a text");
	if ((rc = store__tx_auto(st, &started)))
		return rc;
	rc = completion_insert(st, prompt_id, text, NULL, generator_id, id, &made);
	if (!rc && made)
		rc = prompt_counts(st, prompt_id, 1, 0);
	rc = store__tx_end(st, started, rc);
	if (!rc && created)
		*created = made;
	return rc;
}

int store_completions_foreach(store *st, int64_t prompt_id, int64_t generator_id, store_completion_cb cb,
			      void *ud)
{
	static const char sql[] = "SELECT c.id, c.prompt_id, c.generator_id, c.text, c.hash, g.name "
				  "FROM completions c JOIN generators g ON g.id = c.generator_id "
				  "WHERE c.prompt_id = ?1 AND (?2 <= 0 OR c.generator_id = ?2) ORDER BY c.id";
	sqlite3_stmt *s = store__stmt_borrow(st, sql); /* borrowed: cb may call back */
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, prompt_id);
	sqlite3_bind_int64(s, 2, generator_id);
	int rc, r = STORE_OK;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char hex[65];
		store__hex(sqlite3_column_blob(s, 4), sqlite3_column_bytes(s, 4), hex);
		store_completion c = {
			.id = sqlite3_column_int64(s, 0),
			.prompt_id = sqlite3_column_int64(s, 1),
			.generator_id = sqlite3_column_int64(s, 2),
			.text = store__col_text(s, 3),
			.hash = hex,
			.generator = store__col_text(s, 5),
		};
		if ((r = cb(ud, &c)))
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = store__dberr(st, "read completions");
	store__stmt_return(st, sql, s);
	return r;
}

int store_completions_count(store *st, int64_t prompt_id, int64_t generator_id, long *n)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT count(*) FROM completions "
					     "WHERE prompt_id = ?1 AND (?2 <= 0 OR generator_id = ?2)");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, prompt_id);
	sqlite3_bind_int64(s, 2, generator_id);
	int rc = STORE_OK;
	if (sqlite3_step(s) == SQLITE_ROW)
		*n = (long)sqlite3_column_int64(s, 0);
	else
		rc = store__dberr(st, "count completions");
	sqlite3_finalize(s);
	return rc;
}

/* ---- comparisons -------------------------------------------------------- */

/* How many human or import labels the pair has, into *n (a skip is no
 * label: the pair stays open to the others). */
static int pair_labels(store *st, int64_t prompt_id, int64_t a, int64_t b, long *n)
{
	sqlite3_stmt *s = store__stmt(st, SS_PAIR_LABELED);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, prompt_id);
	sqlite3_bind_int64(s, 2, a);
	sqlite3_bind_int64(s, 3, b);
	int rc = STORE_OK;
	if (sqlite3_step(s) == SQLITE_ROW)
		*n = (long)sqlite3_column_int64(s, 0);
	else
		rc = store__dberr(st, "count labels");
	sqlite3_reset(s);
	return rc;
}

/* Step statement sid (one parameter, an id) to its row. Returns STORE_OK
 * with the statement on the row (the caller reads it, then resets it), or
 * an error naming noun and id (the statement is reset). */
static int row_by_id(store *st, enum store_stmt_id sid, int64_t id, const char *noun, sqlite3_stmt **row)
{
	sqlite3_stmt *s = store__stmt(st, sid);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*row = s;
		return STORE_OK;
	}
	if (rc == SQLITE_DONE) {
		rc = store__err(st, STORE_EINVAL, "no %s with id %lld", noun, (long long)id);
	} else {
		char what[64];
		snprintf(what, sizeof what, "find %s", noun);
		rc = store__dberr(st, what);
	}
	sqlite3_reset(s);
	return rc;
}

/* The kind of annotator id: 'h', 'j' or 'i' into *kind. */
static int annotator_kind(store *st, int64_t id, char *kind)
{
	sqlite3_stmt *s;
	int rc = row_by_id(st, SS_ANNOTATOR_KIND, id, "annotator", &s);
	if (rc == STORE_OK) {
		*kind = store__col_text(s, 0)[0];
		sqlite3_reset(s);
	}
	return rc;
}

/* Insert a comparison already in canonical order (a < b, verdict and
 * shown_first relative to it). kind is the annotator's kind ('h', 'j', 'i'
 * or 0 to look it up); fresh says the pair cannot have comparisons yet.
 * *new_label is set when this made the pair human/import-labelled (the
 * caller adds it to the prompt's n_labeled_pairs). */
static int comparison_insert(store *st, const store_comparison *c, int64_t a, int64_t b, const char *verdict,
			     const char *shown_first, char kind, int fresh, int *new_label, int64_t *id,
			     int *created, int *conflict, const store_rec_label *scores)
{
	int rc;
	*new_label = 0;
	if (conflict)
		*conflict = 0;
	if (!kind && (rc = annotator_kind(st, c->annotator_id, &kind)))
		return rc;
	sqlite3_stmt *s = store__stmt(st, SS_COMPARISON_INSERT);
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, c->prompt_id);
	sqlite3_bind_int64(s, 2, a);
	sqlite3_bind_int64(s, 3, b);
	sqlite3_bind_int64(s, 4, c->annotator_id);
	store__bind_text(s, 5, verdict);
	store__bind_text(s, 6, shown_first);
	store__bind_rationale(s, 7, c->rationale);
	if (isnan(c->confidence))
		sqlite3_bind_null(s, 8);
	else
		sqlite3_bind_double(s, 8, c->confidence);
	if (c->duration_ms < 0)
		sqlite3_bind_null(s, 9);
	else
		sqlite3_bind_int64(s, 9, c->duration_ms);
	sqlite3_bind_int(s, 10, c->inconsistent ? 1 : 0);
	if (c->run_id > 0)
		sqlite3_bind_int64(s, 11, c->run_id);
	else
		sqlite3_bind_null(s, 11);
	store__bind_text(s, 12, c->created_at ? c->created_at : store__now(st));
	if (scores && scores->has_scores) {
		sqlite3_bind_double(s, 13, scores->score_a);
		sqlite3_bind_double(s, 14, scores->score_b);
	} else {
		sqlite3_bind_null(s, 13);
		sqlite3_bind_null(s, 14);
	}
	store__bind_text(s, 15, scores ? scores->chosen : NULL);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		if ((sqlite3_errcode(st->db) & 0xff) == SQLITE_CONSTRAINT)
			return store__err(st, STORE_EINVAL,
					  "add comparison: annotator %lld, run %lld or completions do not exist",
					  (long long)c->annotator_id, (long long)c->run_id);
		return store__dberr(st, "add comparison");
	}
	if (sqlite3_changes(st->db) == 1) {
		if (id)
			*id = sqlite3_last_insert_rowid(st->db);
		if (created)
			*created = 1;
		if (kind != 'j' && strcmp(verdict, "skip") != 0) {
			long n = 1;
			if (!fresh && (rc = pair_labels(st, c->prompt_id, a, b, &n)))
				return rc;
			*new_label = n == 1;
		}
		return STORE_OK;
	}
	if (!(s = store__stmt(st, SS_COMPARISON_FIND)))
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, c->annotator_id);
	sqlite3_bind_int64(s, 2, a);
	sqlite3_bind_int64(s, 3, b);
	sqlite3_bind_int64(s, 4, c->prompt_id);
	if (sqlite3_step(s) == SQLITE_ROW) {
		if (id)
			*id = sqlite3_column_int64(s, 0);
		if (created)
			*created = 0;
		/* the same annotator already gave this pair another verdict */
		if (conflict) {
			const char *old = (const char *)sqlite3_column_text(s, 1);
			*conflict = !old || !verdict || strcmp(old, verdict) != 0;
		}
		rc = STORE_OK;
	} else {
		rc = store__dberr(st, "find comparison");
	}
	sqlite3_reset(s);
	return rc;
}

/* The prompt of completion id into *prompt_id. */
static int completion_prompt(store *st, int64_t id, int64_t *prompt_id)
{
	sqlite3_stmt *s;
	int rc = row_by_id(st, SS_COMPLETION_PROMPT, id, "completion", &s);
	if (rc == STORE_OK) {
		*prompt_id = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	}
	return rc;
}

int store_comparison_add(store *st, const store_comparison *c, int64_t *id, int *created)
{
	int64_t pa, pb;
	int rc;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!is_verdict(c->verdict, 1))
		return store__err(st, STORE_EINVAL,
				  "verdict must be \"a\", \"b\", \"tie\", \"both_bad\" or \"skip\", not \"%s\"",
				  c->verdict ? c->verdict : "(none)");
	if (c->shown_first && strcmp(c->shown_first, "a") && strcmp(c->shown_first, "b"))
		return store__err(st, STORE_EINVAL, "shown_first must be \"a\", \"b\" or unknown, not \"%s\"",
				  c->shown_first);
	if (c->completion_a == c->completion_b)
		return store__err(st, STORE_EINVAL, "a comparison needs two different completions (both are %lld)",
				  (long long)c->completion_a);
	if (!isnan(c->confidence) && !(c->confidence >= 0 && c->confidence <= 1))
		return store__err(st, STORE_EINVAL, "confidence must be between 0 and 1, not %g", c->confidence);
	if ((rc = completion_prompt(st, c->completion_a, &pa)) || (rc = completion_prompt(st, c->completion_b, &pb)))
		return rc;
	if (pa != c->prompt_id || pb != c->prompt_id)
		return store__err(st, STORE_EINVAL, "completions %lld and %lld are not both of prompt %lld",
				  (long long)c->completion_a, (long long)c->completion_b, (long long)c->prompt_id);
	int started, nl = 0;
	if ((rc = store__tx_auto(st, &started)))
		return rc;
	if (c->completion_a < c->completion_b)
		rc = comparison_insert(st, c, c->completion_a, c->completion_b, c->verdict, c->shown_first, 0, 0,
				       &nl, id, created, NULL, NULL);
	else
		rc = comparison_insert(st, c, c->completion_b, c->completion_a, swap_ab(c->verdict),
				       swap_ab(c->shown_first), 0, 0, &nl, id, created, NULL, NULL);
	if (!rc && nl)
		rc = prompt_counts(st, c->prompt_id, 0, 1);
	return store__tx_end(st, started, rc);
}

int store_comparison_delete(store *st, int64_t id)
{
	int64_t prompt_id = 0, a = 0, b = 0, ann = 0;
	int started, rc, skip = 0;
	char kind;
	sqlite3_stmt *s;
	if ((rc = store__tx_auto(st, &started)))
		return rc;
	if (!(s = store__stmt(st, SS_COMPARISON_ROW))) {
		rc = STORE_ERR;
		goto out;
	}
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		prompt_id = sqlite3_column_int64(s, 0);
		a = sqlite3_column_int64(s, 1);
		b = sqlite3_column_int64(s, 2);
		ann = sqlite3_column_int64(s, 3);
		skip = !strcmp(store__col_text(s, 4), "skip");
		rc = STORE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = store__err(st, STORE_ENOTFOUND, "no comparison with id %lld", (long long)id);
	} else {
		rc = store__dberr(st, "find comparison");
	}
	sqlite3_reset(s);
	if (rc || (rc = annotator_kind(st, ann, &kind)))
		goto out;
	if (!(s = store__stmt(st, SS_COMPARISON_DELETE))) {
		rc = STORE_ERR;
		goto out;
	}
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "delete comparison");
	sqlite3_reset(s);
	if (!rc && kind != 'j' && !skip) {
		long n = 0;
		if (!(rc = pair_labels(st, prompt_id, a, b, &n)) && n == 0)
			rc = prompt_counts(st, prompt_id, 0, -1);
	}
out:
	return store__tx_end(st, started, rc);
}

#define COMPARISON_COLS                                                                                    \
	"SELECT c.id, c.prompt_id, c.completion_a, c.completion_b, c.annotator_id, c.verdict, c.shown_first, " \
	"c.rationale, c.confidence, c.duration_ms, c.inconsistent, c.run_id, c.created_at, a.name, a.kind "  \
	"FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "

int store_comparisons_foreach(store *st, int64_t prompt_id, store_comparison_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, prompt_id ? COMPARISON_COLS "WHERE c.prompt_id = ?1 ORDER BY c.id"
						       : COMPARISON_COLS "ORDER BY c.id");
	if (!s)
		return STORE_ERR;
	if (prompt_id)
		sqlite3_bind_int64(s, 1, prompt_id);
	int rc, r = STORE_OK;
	util_buf rb = UTIL_BUF_INIT; /* a compressed rationale, decompressed */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_comparison c = {
			.id = sqlite3_column_int64(s, 0),
			.prompt_id = sqlite3_column_int64(s, 1),
			.completion_a = sqlite3_column_int64(s, 2),
			.completion_b = sqlite3_column_int64(s, 3),
			.annotator_id = sqlite3_column_int64(s, 4),
			.verdict = store__col_text(s, 5),
			.shown_first = store__col_text(s, 6),
			.rationale = store__col_rationale(s, 7, &rb),
			.confidence = sqlite3_column_type(s, 8) == SQLITE_NULL ? NAN : sqlite3_column_double(s, 8),
			.duration_ms = sqlite3_column_type(s, 9) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 9),
			.inconsistent = sqlite3_column_int(s, 10),
			.run_id = sqlite3_column_int64(s, 11),
			.created_at = store__col_text(s, 12),
			.annotator = store__col_text(s, 13),
			.annotator_kind = store__col_text(s, 14),
		};
		if ((r = cb(ud, &c)))
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = store__dberr(st, "read comparisons");
	sqlite3_finalize(s);
	util_buf_free(&rb);
	return r;
}

/* ---- importing records -------------------------------------------------- */

/* Generator id for a completion of an import: model (kind "model") or the
 * source (kind "import"), memoised. */
static int import_generator(store *st, const char *model, const char *source, int64_t *id)
{
	char tag = model ? 'm' : 'i';
	const char *name = model ? model : source;
	int rc = STORE_OK;
	if ((*id = memo_get(st->gen_memo, tag, name)) == 0) {
		store_generator g = {.kind = model ? "model" : "import", .name = name};
		if (!(rc = store_generator_id(st, &g, id)))
			memo_put(st->gen_memo, tag, name, *id);
	}
	return rc;
}

/* The annotator of a record's labels, ratings and feedback: rec->annotator
 * (of rec->annotator_kind, default "human") or "import:<source>",
 * memoised; its id and kind ('h', 'j' or 'i') into *id and *kind. */
static int record_annotator(store *st, const store_record *rec, const char *source, int64_t *id, char *kind)
{
	const char *k = rec->annotator ? (rec->annotator_kind ? rec->annotator_kind : "human") : "import";
	char tag = k[0] == 'h' ? 'H' : k[0] == 'j' ? 'J' : 'I';
	const char *key = rec->annotator ? rec->annotator : source;
	int rc = STORE_OK;
	*kind = (char)(tag - 'A' + 'a');
	if (!rec->annotator)
		tag = 'i'; /* "import:<source>", keyed by the source */
	if ((*id = memo_get(st->ann_memo, tag, key)) != 0)
		return STORE_OK;
	char *name = rec->annotator ? xstrdup(rec->annotator) : xasprintf("import:%s", source);
	store_annotator an = {.kind = k, .name = name};
	if (!(rc = store_annotator_id(st, &an, id)))
		memo_put(st->ann_memo, tag, key, *id);
	free(name);
	return rc;
}

int store_add_record(store *st, const store_record *rec, const char *source, const char *split,
		     store_import_counts *counts)
{
	int64_t prompt_id, ann_id = 0, stack_ids[32], *ids = stack_ids;
	char stack_new[32], *is_new = stack_new, ann_kind = 'i';
	int created, rc = STORE_OK, dcomp = 0, dlab = 0;
	store_import_counts dummy = {0};
	if (!counts)
		counts = &dummy;

	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (sqlite3_get_autocommit(st->db))
		return store__err(st, STORE_EINVAL, "store_add_record must run inside store_begin/store_commit");
	if (!source || !*source)
		return store__err(st, STORE_EINVAL, "an import needs a source name");
	/* Validate everything first, so that a bad record writes nothing. */
	if (!!rec->prompt_text == !!rec->messages)
		return store__err(st, STORE_EINVAL, "a record needs a prompt: text or messages");
	if (rec->ncompletions && !rec->completions)
		return store__err(st, STORE_EINVAL, "completions missing");
	for (size_t i = 0; i < rec->ncompletions; i++)
		if (!rec->completions[i].text)
			return store__err(st, STORE_EINVAL, "completion %zu has no text", i + 1);
	for (size_t i = 0; i < rec->nlabels; i++) {
		const store_rec_label *l = &rec->labels[i];
		if (l->a < 0 || l->b < 0 || (size_t)l->a >= rec->ncompletions || (size_t)l->b >= rec->ncompletions)
			return store__err(st, STORE_EINVAL, "label %zu: completion index out of range", i + 1);
		if (!is_verdict(l->verdict, 0))
			return store__err(st, STORE_EINVAL,
					  "label %zu: verdict must be \"a\", \"b\", \"tie\" or \"both_bad\", not \"%s\"",
					  i + 1, l->verdict ? l->verdict : "(none)");
		if (l->a == l->b || !strcmp(rec->completions[l->a].text, rec->completions[l->b].text))
			return store__err(st, STORE_EINVAL, "chosen and rejected are identical");
		if (l->has_confidence && !(l->confidence >= 0 && l->confidence <= 1))
			return store__err(st, STORE_EINVAL, "label %zu: confidence must be between 0 and 1, not %g",
					  i + 1, l->confidence);
	}
	if ((rc = store__record_extras_check(st, rec)))
		return rc;
	if (rec->messages) {
		if (rec->nmessages == 0)
			return store__err(st, STORE_EINVAL, "a conversation prompt needs at least one message");
		for (size_t i = 0; i < rec->nmessages; i++) {
			if (!is_role(rec->messages[i].role))
				return store__err(st, STORE_EINVAL,
						  "message %zu: role must be \"system\", \"user\" or \"assistant\"",
						  i + 1);
			if (!rec->messages[i].content)
				return store__err(st, STORE_EINVAL, "message %zu: no content", i + 1);
		}
	}

	/* The counters of the prompt if it is new: distinct completion texts,
	 * distinct labelled pairs. */
	int ncomp0 = 0, nlab0 = 0, prompt_new;
	for (size_t i = 0; i < rec->ncompletions; i++) {
		size_t j = 0;
		while (j < i && strcmp(rec->completions[j].text, rec->completions[i].text))
			j++;
		ncomp0 += j == i;
	}
	for (size_t i = 0; i < rec->nlabels; i++) {
		const char *x = rec->completions[rec->labels[i].a].text, *y = rec->completions[rec->labels[i].b].text;
		size_t j = 0;
		for (; j < i; j++) {
			const char *u = rec->completions[rec->labels[j].a].text;
			const char *w = rec->completions[rec->labels[j].b].text;
			if ((!strcmp(u, x) && !strcmp(w, y)) || (!strcmp(u, y) && !strcmp(w, x)))
				break;
		}
		nlab0 += j == i;
	}

	counts->records++;
	if ((rc = prompt_insert(st, rec->prompt_text, rec->prompt_hash, rec->messages, rec->nmessages, source, split,
				ncomp0, nlab0, &prompt_id, &prompt_new)))
		goto out;
	prompt_new ? counts->prompts_new++ : counts->prompts_dup++;
	if ((rc = store__prov_add(st, rec, "prompt", prompt_id, prompt_new, 0)))
		goto out;
	if (rec->ncompletions > sizeof stack_ids / sizeof stack_ids[0]) {
		ids = xreallocarray(NULL, rec->ncompletions, sizeof *ids);
		is_new = xmalloc(rec->ncompletions);
	}
	for (size_t i = 0; i < rec->ncompletions; i++) {
		int64_t gen;
		if ((rc = import_generator(st, rec->completions[i].model, source, &gen)))
			goto out;
		const unsigned char *h = rec->completion_hashes ? rec->completion_hashes + 32 * i : NULL;
		if ((rc = completion_insert(st, prompt_id, rec->completions[i].text, h, gen, &ids[i], &created)))
			goto out;
		is_new[i] = (char)created;
		if ((rc = store__prov_add(st, rec, "completion", ids[i], created, gen)))
			goto out;
		dcomp += created;
		created ? counts->completions_new++ : counts->completions_dup++;
	}
	if ((rec->nlabels || rec->nratings || rec->nfeedback) &&
	    (rc = record_annotator(st, rec, source, &ann_id, &ann_kind)))
		goto out;
	for (size_t i = 0; i < rec->nlabels; i++) {
		const store_rec_label *l = &rec->labels[i];
		int64_t a = ids[l->a], b = ids[l->b];
		const char *v = l->verdict;
		int nl, fresh = is_new[l->a] && is_new[l->b];
		if (a == b) { /* same text hash: cannot happen after the check above */
			rc = store__err(st, STORE_EINVAL, "chosen and rejected are identical");
			goto out;
		}
		/* the scores and the chosen side, in (a, b) order */
		store_rec_label sc = {.has_scores = l->has_scores, .score_a = l->score_a, .score_b = l->score_b,
				      .chosen = l->chosen ? (l->chosen[0] == 'a' ? "a" : "b") : NULL};
		if (a > b) {
			int64_t t = a;
			a = b;
			b = t;
			v = swap_ab(v);
			sc.score_a = l->score_b;
			sc.score_b = l->score_a;
			sc.chosen = swap_ab(sc.chosen);
		}
		store_comparison c = {
			.prompt_id = prompt_id,
			.annotator_id = ann_id,
			.confidence = l->has_confidence ? l->confidence : NAN,
			.duration_ms = -1,
		};
		int conflict;
		int64_t cid = 0;
		c.run_id = rec->run_id;
		if ((rc = comparison_insert(st, &c, a, b, v, NULL, ann_kind, fresh, &nl, &cid, &created, &conflict,
					    &sc)) ||
		    (rc = store__prov_add(st, rec, "comparison", cid, created, 0)))
			goto out;
		dlab += nl;
		if (created)
			counts->comparisons_new++;
		else if (conflict)
			counts->comparisons_conflict++;
		else
			counts->comparisons_dup++;
	}
	if ((rec->nratings || rec->nfeedback) &&
	    (rc = store__record_extras_add(st, rec, prompt_id, ids, ann_id, counts)))
		goto out;
	if (prompt_new) { /* started with the counters: only a correction, if any */
		dcomp -= ncomp0;
		dlab -= nlab0;
	}
	if ((dcomp || dlab) && (rc = prompt_counts(st, prompt_id, dcomp, dlab)))
		goto out;
	rc = store__prov_end(st, rec);
out:
	if (ids != stack_ids) {
		free(ids);
		free(is_new);
	}
	return rc;
}
