/* test_store.c: unit tests of the store library (store/store.h). */
#include "config.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tests/tap.h"
#include "util/cli.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/dpo-test-store.XXXXXX";

static char *tpath(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

/* Run one SQL statement on a raw connection; returns the first column of
 * the first row as an integer (or -1). */
static long long raw_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;
	if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

/* ---- opening and migrations -------------------------------------------- */

static void test_open(void)
{
	store *st = store_new();
	char *p = tpath("new.db");
	TAP_IS_STR(store_errmsg(st), "", "a new handle has no error");
	TAP_IS_INT(store_open(st, p), STORE_OK, "open creates a new database");
	TAP_IS_STR(store_path(st), p, "store_path");
	TAP_OK(store_schema_version() >= 2, "schema version %d", store_schema_version());
	store_free(st);
	TAP_IS_INT(raw_sql(p, "PRAGMA user_version"), store_schema_version(), "user_version is the current version");
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM meta WHERE key = 'created_by'"), 1, "meta row written");
	char *jm = NULL;
	{
		sqlite3 *db;
		sqlite3_stmt *s;
		sqlite3_open(p, &db);
		sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
		if (sqlite3_step(s) == SQLITE_ROW)
			jm = xstrdup((const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
		sqlite3_close(db);
	}
	TAP_IS_STR(jm, "wal", "journal mode is WAL");
	free(jm);
	st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "reopening an existing database");
	store_free(st);
	store_free(NULL);

	/* An older layout migrates, keeping its data. */
	char *old = tpath("old.db");
	st = store_new();
	TAP_IS_INT(store__open_version(st, old, 1), STORE_OK, "build a version-1 database");
	int64_t pid;
	TAP_IS_INT(store_prompt_add(st, "kept across migration", NULL, 0, "t", NULL, &pid, NULL), STORE_OK,
		   "write to the version-1 database");
	store_rec_completion mc[] = {{"first", NULL}, {"second", NULL}};
	store_rec_label ml[] = {{.a = 0, .b = 1, .verdict = "a"}};
	store_record mr = {.prompt_text = "a labelled pair", .completions = mc, .ncompletions = 2, .labels = ml,
			   .nlabels = 1};
	store_import_counts mk = {0};
	/* the current statements target the current schema: write the old
	 * rows with the calls whose tables did not change, and the comparison
	 * in SQL */
	int64_t mp, mg, m1, m2, ma;
	store_generator mgen = {.kind = "import", .name = "old"};
	store_annotator mann = {.kind = "import", .name = "import:old"};
	TAP_OK(!store_prompt_add(st, "a labelled pair", NULL, 0, "old", NULL, &mp, NULL) &&
		       !store_generator_id(st, &mgen, &mg) && !store_annotator_id(st, &mann, &ma) &&
		       !store_completion_add(st, mp, "first", mg, &m1, NULL) &&
		       !store_completion_add(st, mp, "second", mg, &m2, NULL),
	       "a prompt with two completions in the version-1 database");
	store_free(st);
	char sql[256];
	snprintf(sql, sizeof sql,
		 "INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, created_at) "
		 "VALUES (%lld, %lld, %lld, %lld, 'a', 'then') RETURNING id",
		 (long long)mp, (long long)m1, (long long)m2, (long long)ma);
	TAP_OK(raw_sql(old, sql) > 0, "and a comparison");
	TAP_IS_INT(raw_sql(old, "PRAGMA user_version"), 1, "it is at version 1");
	TAP_IS_INT(raw_sql(old, "SELECT count(*) FROM sqlite_master WHERE name = 'request_cache'"), 0,
		   "version 1 has no request cache");
	st = store_new();
	TAP_IS_INT(store_open(st, old), STORE_OK, "opening the version-1 database migrates it");
	char *resp = NULL;
	TAP_IS_INT(store_cache_put(st, "h", "r", NULL), STORE_OK, "the migrated database has the request cache");
	TAP_IS_INT(store_cache_get(st, "h", &resp), STORE_OK, "and reads it back");
	free(resp);
	store_free(st);
	TAP_IS_INT(raw_sql(old, "PRAGMA user_version"), store_schema_version(), "migrated to the current version");
	TAP_IS_INT(raw_sql(old, "SELECT count(*) FROM prompts WHERE content = 'kept across migration'"), 1,
		   "data kept across the migration");
	TAP_IS_INT(raw_sql(old, "SELECT count(*) FROM comparisons WHERE verdict = 'a'"), 1,
		   "comparisons kept across the rebuild of their table");
	TAP_IS_INT(raw_sql(old, "SELECT count(*) FROM sqlite_master WHERE name IN ('prompts_split', 'prompts_source', "
				"'comparisons_pair', 'comparisons_v3')"),
		   0, "the dropped indexes and the temporary table are gone");
	TAP_IS_INT(raw_sql(old, "INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, "
				"created_at) SELECT prompt_id, completion_a, completion_b, annotator_id + 1000, 'maybe', "
				"created_at FROM comparisons RETURNING 1"),
		   -1, "the migrated table still checks verdicts");
	TAP_IS_INT(raw_sql(old, "INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, "
				"created_at) SELECT prompt_id, completion_a, completion_b, annotator_id + 1000, 'both_bad', "
				"created_at FROM comparisons RETURNING 1"),
		   1, "and takes a good one");
	raw_sql(old, "DELETE FROM comparisons WHERE verdict = 'both_bad' RETURNING 1");
	st = store_new();
	store_open(st, old);
	unsigned char ph[32], ch[64];
	store_record_hash(&mr, ph, ch);
	mr.prompt_hash = ph;
	mr.completion_hashes = ch;
	memset(&mk, 0, sizeof mk);
	store_begin(st);
	TAP_IS_INT(store_add_record(st, &mr, "old", NULL, &mk), STORE_OK, "the same record, hashed ahead");
	store_commit(st);
	TAP_OK(mk.prompts_dup == 1 && mk.completions_dup == 2 && mk.comparisons_dup == 1 && mk.comparisons_new == 0,
	       "is found in the migrated database: %ld %ld %ld duplicates", mk.prompts_dup, mk.completions_dup,
	       mk.comparisons_dup);
	store_free(st);

	/* A newer version is refused. */
	char *newer = tpath("newer.db");
	st = store_new();
	store_open(st, newer);
	store_free(st);
	raw_sql(newer, "PRAGMA user_version = 99");
	st = store_new();
	TAP_IS_INT(store_open(st, newer), STORE_EVERSION, "a newer schema is refused");
	TAP_OK(strstr(store_errmsg(st), "newer") && strstr(store_errmsg(st), newer), "message: %s",
	       store_errmsg(st));
	TAP_IS_INT(store_begin(st), STORE_EINVAL, "the refused handle is closed");
	store_free(st);

	/* Not SQLite at all. */
	char *junk = tpath("junk.db");
	write_file(junk, "this is a text file, certainly not an SQLite database, but long enough to have a "
			 "header of one hundred bytes or more..............................\n");
	st = store_new();
	TAP_IS_INT(store_open(st, junk), STORE_ECORRUPT, "a text file is refused");
	TAP_OK(strstr(store_errmsg(st), junk) != NULL, "message names the path: %s", store_errmsg(st));
	store_free(st);

	/* SQLite, but another program's. */
	char *foreign = tpath("foreign.db");
	raw_sql(foreign, "CREATE TABLE foo(x)");
	st = store_new();
	TAP_IS_INT(store_open(st, foreign), STORE_ECORRUPT, "another program's SQLite file is refused");
	TAP_OK(strstr(store_errmsg(st), "not a dpo database") != NULL, "message: %s", store_errmsg(st));
	store_free(st);
	TAP_IS_INT(raw_sql(foreign, "SELECT count(*) FROM sqlite_master"), 1, "and left untouched");

	/* An empty file is a new database. */
	char *empty = tpath("empty.db");
	write_file(empty, "");
	st = store_new();
	TAP_IS_INT(store_open(st, empty), STORE_OK, "an empty file becomes a new database");
	store_free(st);

	/* A missing directory. */
	st = store_new();
	TAP_OK(store_open(st, "/nonexistent-dir/x/dpo.db") < 0, "a missing directory fails: %s", store_errmsg(st));
	store_free(st);
	free(p), free(old), free(newer), free(junk), free(foreign), free(empty);
}

/* ---- prompts, completions, identities ---------------------------------- */

typedef struct got_prompt {
	int n;
	char hash[65], text[256], msgs[512], source[64], split[64];
	int has_text, has_msgs;
} got_prompt;

static int grab_prompt(void *ud, const store_prompt *p)
{
	got_prompt *g = ud;
	g->n++;
	snprintf(g->hash, sizeof g->hash, "%s", p->hash);
	g->has_text = p->text != NULL;
	g->has_msgs = p->messages_json != NULL;
	snprintf(g->text, sizeof g->text, "%s", p->text ? p->text : "");
	snprintf(g->msgs, sizeof g->msgs, "%s", p->messages_json ? p->messages_json : "");
	snprintf(g->source, sizeof g->source, "%s", p->source);
	snprintf(g->split, sizeof g->split, "%s", p->split);
	return 0;
}

static int count_cb(void *ud, const void *x)
{
	(void)x;
	(*(int *)ud)++;
	return 0;
}

/* A prompt read from inside the callback of another prompt's read: the
 * store keeps one statement per query, so the inner read must not reset
 * the outer one's row. */
typedef struct nested_get {
	store *st;
	int64_t inner;
	got_prompt outer, in;
	int rc;
} nested_get;

static int grab_nested(void *ud, const store_prompt *p)
{
	nested_get *n = ud;
	n->rc = store_prompt_get(n->st, n->inner, grab_prompt, &n->in);
	return grab_prompt(&n->outer, p);
}

static void test_prompts(store *st)
{
	int64_t id1, id2, id3;
	int created = -1;
	TAP_IS_INT(store_prompt_add(st, "hello", NULL, 0, "src", NULL, &id1, &created), STORE_OK, "add text prompt");
	TAP_IS_INT(created, 1, "created");
	TAP_IS_INT(store_prompt_add(st, "hello", NULL, 0, "other", "test", &id2, &created), STORE_OK,
		   "add it again");
	TAP_IS_INT(created, 0, "not created twice");
	TAP_IS_INT(id2, id1, "same id");
	got_prompt g = {0};
	TAP_IS_INT(store_prompt_get(st, id1, grab_prompt, &g), STORE_OK, "get prompt");
	char want[65];
	util_sha256 c;
	util_sha256_init(&c);
	util_sha256_update(&c, "text\0hello", 10);
	util_sha256_final_hex(&c, want);
	TAP_IS_STR(g.hash, want, "text prompt hash is SHA-256(\"text\\0\" + text)");
	TAP_IS_STR(g.text, "hello", "text");
	TAP_OK(g.has_text && !g.has_msgs, "exactly one of text/messages");
	TAP_IS_STR(g.source, "src", "the first source is kept");
	TAP_IS_STR(g.split, "train", "the first split is kept (default train)");

	store_msg m[] = {{"system", "be brief"}, {"user", "say \"hi\"\n"}};
	TAP_IS_INT(store_prompt_add(st, NULL, m, 2, "chat", "test", &id3, &created), STORE_OK, "add chat prompt");
	TAP_IS_INT(created, 1, "created");
	memset(&g, 0, sizeof g);
	store_prompt_get(st, id3, grab_prompt, &g);
	const char *json = "[{\"role\":\"system\",\"content\":\"be brief\"},"
			   "{\"role\":\"user\",\"content\":\"say \\\"hi\\\"\\n\"}]";
	TAP_IS_STR(g.msgs, json, "messages stored as compact JSON");
	util_sha256_hex(json, strlen(json), want);
	TAP_IS_STR(g.hash, want, "chat prompt hash is SHA-256 of the compact JSON");
	TAP_OK(!g.has_text && g.has_msgs, "chat prompt has messages only");
	TAP_IS_STR(g.split, "test", "split");
	nested_get ng = {.st = st, .inner = id3};
	TAP_IS_INT(store_prompt_get(st, id1, grab_nested, &ng), STORE_OK, "a prompt read inside another's callback");
	TAP_IS_INT(ng.rc, STORE_OK, "the inner read works");
	TAP_IS_STR(ng.outer.text, "hello", "the outer row survives the inner read");
	TAP_IS_STR(ng.in.split, "test", "the inner read got its own row");
	for (int i = 0; i < 4; i++) {
		memset(&g, 0, sizeof g);
		TAP_IS_INT(store_prompt_get(st, i % 2 ? id3 : id1, grab_prompt, &g), STORE_OK, "read again (%d)", i);
		TAP_IS_STR(g.split, i % 2 ? "test" : "train", "the kept statement reads the row asked for (%d)", i);
	}

	store_msg bad[] = {{"robot", "x"}};
	TAP_IS_INT(store_prompt_add(st, NULL, bad, 1, "chat", NULL, NULL, NULL), STORE_EINVAL, "bad role refused");
	TAP_OK(strstr(store_errmsg(st), "robot") != NULL, "message names it: %s", store_errmsg(st));
	TAP_IS_INT(store_prompt_add(st, "x", m, 2, "s", NULL, NULL, NULL), STORE_EINVAL, "text and messages refused");
	TAP_IS_INT(store_prompt_add(st, NULL, NULL, 0, "s", NULL, NULL, NULL), STORE_EINVAL, "no prompt refused");
	TAP_IS_INT(store_prompt_get(st, 99999, grab_prompt, &g), STORE_ENOTFOUND, "get missing prompt");

	int n = 0;
	TAP_IS_INT(store_prompts_foreach(st, NULL, NULL, 0, (store_prompt_cb)count_cb, &n), STORE_OK, "foreach");
	TAP_IS_INT(n, 2, "two prompts");
	n = 0;
	store_prompts_foreach(st, "test", NULL, 0, (store_prompt_cb)count_cb, &n);
	TAP_IS_INT(n, 1, "one in split test");
	n = 0;
	store_prompts_foreach(st, NULL, "src", 0, (store_prompt_cb)count_cb, &n);
	TAP_IS_INT(n, 1, "one from source src");
	n = 0;
	store_prompts_foreach(st, NULL, NULL, 1, (store_prompt_cb)count_cb, &n);
	TAP_IS_INT(n, 1, "limit 1");

	/* generators */
	int64_t g1, g2, g3;
	store_generator gm = {"model", "tiny", "fp1", "{\"t\":1}"};
	TAP_IS_INT(store_generator_id(st, &gm, &g1), STORE_OK, "generator created");
	TAP_IS_INT(store_generator_id(st, &gm, &g2), STORE_OK, "generator found");
	TAP_IS_INT(g1, g2, "same generator id");
	gm.params_json = "{\"t\":0.5}";
	store_generator_id(st, &gm, &g3);
	TAP_OK(g3 != g1, "other parameters: another generator");
	store_generator gbad = {"person", "x", NULL, NULL};
	TAP_IS_INT(store_generator_id(st, &gbad, &g3), STORE_EINVAL, "bad generator kind");

	/* completions */
	int64_t c1, c2, c3;
	TAP_IS_INT(store_completion_add(st, id1, "one", g1, &c1, &created), STORE_OK, "add completion");
	TAP_IS_INT(created, 1, "created");
	TAP_IS_INT(store_completion_add(st, id1, "one", g2, &c2, &created), STORE_OK, "same text again");
	TAP_IS_INT(created, 0, "deduplicated");
	TAP_IS_INT(c2, c1, "same completion id");
	store_completion_add(st, id1, "two", g3, &c3, NULL);
	int64_t cx;
	TAP_IS_INT(store_completion_add(st, id3, "one", g1, &cx, &created), STORE_OK, "same text, other prompt");
	TAP_IS_INT(created, 1, "is a new completion");
	TAP_IS_INT(store_completion_add(st, 99999, "x", g1, NULL, NULL), STORE_EINVAL, "missing prompt refused");
	long cnt = 0;
	store_completions_count(st, id1, 0, &cnt);
	TAP_IS_INT(cnt, 2, "count completions");
	store_completions_count(st, id1, g3, &cnt);
	TAP_IS_INT(cnt, 1, "count by generator");
	n = 0;
	store_completions_foreach(st, id1, 0, (store_completion_cb)count_cb, &n);
	TAP_IS_INT(n, 2, "foreach completions");

	/* annotators */
	int64_t a1, a2;
	store_annotator h = {.kind = "human", .name = "alice"};
	TAP_IS_INT(store_annotator_id(st, &h, &a1), STORE_OK, "human annotator");
	TAP_IS_INT(store_annotator_id(st, &h, &a2), STORE_OK, "found again");
	TAP_IS_INT(a1, a2, "same id");
	store_annotator j = {"judge", "alice", "openai", "m", "th", "{}"};
	TAP_IS_INT(store_annotator_id(st, &j, &a2), STORE_EINVAL, "same name, other kind refused");
	j.name = "judge:m";
	TAP_IS_INT(store_annotator_id(st, &j, &a2), STORE_OK, "judge annotator");
	TAP_OK(a2 != a1, "another id");

	/* comparisons: canonical order */
	store_comparison cmp = {
		.prompt_id = id1, .completion_a = c3, .completion_b = c1, .annotator_id = a1,
		.verdict = "a", .shown_first = "a", .rationale = "because", .confidence = 0.75,
		.duration_ms = 1200, .run_id = 0,
	};
	int64_t cid, cid2;
	TAP_IS_INT(store_comparison_add(st, &cmp, &cid, &created), STORE_OK, "add comparison in reverse order");
	TAP_IS_INT(created, 1, "created");
	TAP_IS_INT(store_comparison_add(st, &cmp, &cid2, &created), STORE_OK, "add it again");
	TAP_IS_INT(created, 0, "not twice");
	TAP_IS_INT(cid2, cid, "existing id returned");
	store_comparison cmp2 = cmp;
	cmp2.completion_a = c1, cmp2.completion_b = c3, cmp2.verdict = "b";
	TAP_IS_INT(store_comparison_add(st, &cmp2, &cid2, &created), STORE_OK, "the same pair in canonical order");
	TAP_IS_INT(created, 0, "is the same comparison");
	TAP_IS_INT(raw_sql(store_path(st), "SELECT count(*) FROM comparisons WHERE completion_a < completion_b "
					   "AND verdict = 'b' AND shown_first = 'b'"),
		   1, "stored with a < b, verdict and shown_first swapped");
	cmp2.annotator_id = a2, cmp2.verdict = "maybe";
	TAP_IS_INT(store_comparison_add(st, &cmp2, NULL, NULL), STORE_EINVAL, "bad verdict refused");
	cmp2.verdict = "tie", cmp2.shown_first = "c";
	TAP_IS_INT(store_comparison_add(st, &cmp2, NULL, NULL), STORE_EINVAL, "bad shown_first refused");
	cmp2.shown_first = NULL, cmp2.completion_b = cx;
	TAP_IS_INT(store_comparison_add(st, &cmp2, NULL, NULL), STORE_EINVAL, "completions of two prompts refused");
	cmp2.completion_b = c1;
	TAP_IS_INT(store_comparison_add(st, &cmp2, NULL, NULL), STORE_EINVAL, "a completion against itself refused");
	cmp2.completion_b = c3, cmp2.confidence = NAN, cmp2.duration_ms = -1;
	TAP_IS_INT(store_comparison_add(st, &cmp2, &cid2, &created), STORE_OK, "judge comparison");
	n = 0;
	store_comparisons_foreach(st, id1, (store_comparison_cb)count_cb, &n);
	TAP_IS_INT(n, 2, "two comparisons on the prompt");
	TAP_IS_INT(store_comparison_delete(st, cid2), STORE_OK, "delete");
	TAP_IS_INT(store_comparison_delete(st, cid2), STORE_ENOTFOUND, "delete again");
	n = 0;
	store_comparisons_foreach(st, 0, (store_comparison_cb)count_cb, &n);
	TAP_IS_INT(n, 1, "one comparison left");
}

/* ---- importing records -------------------------------------------------- */

static void test_records(store *st)
{
	store_rec_completion comps[] = {{"good answer", NULL}, {"bad answer", "gpt-x"}};
	store_rec_label lab[] = {{.a = 1, .b = 0, .verdict = "b"}}; /* completions[0] better, given reversed */
	store_record r = {.prompt_text = "question?", .completions = comps, .ncompletions = 2, .labels = lab,
			  .nlabels = 1};
	store_import_counts k = {0};
	TAP_IS_INT(store_add_record(st, &r, "ds", NULL, &k), STORE_EINVAL, "add_record outside a transaction");
	TAP_IS_INT(store_begin(st), STORE_OK, "begin");
	TAP_IS_INT(store_add_record(st, &r, "ds", NULL, &k), STORE_OK, "add record");
	TAP_IS_INT(store_commit(st), STORE_OK, "commit");
	TAP_OK(k.records == 1 && k.prompts_new == 1 && k.completions_new == 2 && k.comparisons_new == 1,
	       "counts new: %ld %ld %ld %ld", k.records, k.prompts_new, k.completions_new, k.comparisons_new);
	store_begin(st);
	TAP_IS_INT(store_add_record(st, &r, "ds", NULL, &k), STORE_OK, "add it again");
	store_commit(st);
	TAP_OK(k.records == 2 && k.prompts_dup == 1 && k.completions_dup == 2 && k.comparisons_dup == 1 &&
		       k.prompts_new == 1,
	       "counts duplicates: %ld %ld %ld", k.prompts_dup, k.completions_dup, k.comparisons_dup);
	const char *path = store_path(st);
	TAP_IS_INT(raw_sql(path, "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
				 "JOIN completions x ON x.id = c.completion_a WHERE a.name = 'import:ds' "
				 "AND a.kind = 'import' AND x.text = 'good answer' AND c.verdict = 'a' "
				 "AND c.shown_first IS NULL"),
		   1, "label stored by import:ds, re-mapped to (a, b) order");
	TAP_IS_INT(raw_sql(path, "SELECT count(*) FROM completions c JOIN generators g ON g.id = c.generator_id "
				 "WHERE c.text = 'bad answer' AND g.kind = 'model' AND g.name = 'gpt-x'"),
		   1, "completion's model is its generator");
	TAP_IS_INT(raw_sql(path, "SELECT count(*) FROM completions c JOIN generators g ON g.id = c.generator_id "
				 "WHERE c.text = 'good answer' AND g.kind = 'import' AND g.name = 'ds'"),
		   1, "else the import source is");

	store_rec_completion same[] = {{"same", NULL}, {"same", NULL}};
	store_rec_label lab2[] = {{.a = 0, .b = 1, .verdict = "a"}};
	store_record r2 = {.prompt_text = "q2", .completions = same, .ncompletions = 2, .labels = lab2, .nlabels = 1};
	store_begin(st);
	TAP_IS_INT(store_add_record(st, &r2, "ds", NULL, &k), STORE_EINVAL, "identical chosen and rejected refused");
	TAP_IS_STR(store_errmsg(st), "chosen and rejected are identical", "message");
	TAP_IS_INT(raw_sql(path, "SELECT count(*) FROM prompts WHERE content = 'q2'"), 0,
		   "the bad record wrote nothing");
	store_rec_label lab3[] = {{.a = 0, .b = 5, .verdict = "a"}};
	r2.labels = lab3;
	TAP_IS_INT(store_add_record(st, &r2, "ds", NULL, &k), STORE_EINVAL, "label index out of range");
	store_rec_label lab4[] = {{.a = 0, .b = 1, .verdict = "skip"}};
	r.labels = lab4;
	TAP_IS_INT(store_add_record(st, &r, "ds", NULL, &k), STORE_EINVAL, "bad label verdict");
	/* rollback: nothing stays */
	store_msg msgs[] = {{"user", "rolled back"}};
	store_record r3 = {.messages = msgs, .nmessages = 1, .completions = comps, .ncompletions = 2};
	TAP_IS_INT(store_add_record(st, &r3, "ds2", "test", &k), STORE_OK, "add a chat record");
	TAP_IS_INT(store_rollback(st), STORE_OK, "rollback");
	TAP_IS_INT(raw_sql(path, "SELECT count(*) FROM prompts WHERE source = 'ds2'"), 0, "rolled back");
	TAP_IS_INT(store_rollback(st), STORE_OK, "rollback without a transaction is safe");
	/* the memoised generator ids were forgotten with the rollback */
	store_begin(st);
	TAP_IS_INT(store_add_record(st, &r3, "ds2", "test", &k), STORE_OK, "add it for real");
	TAP_IS_INT(store_commit(st), STORE_OK, "commit");
	TAP_IS_INT(raw_sql(path, "SELECT count(*) FROM prompts WHERE source = 'ds2' AND split = 'test' "
				 "AND kind = 'chat'"),
		   1, "chat prompt imported into split test");
}

/* ---- resolution policies ------------------------------------------------ */

/* One vote: annotator index (see names below) and verdict, 'I' flag for an
 * inconsistent judge verdict. */
typedef struct vote {
	int who;
	const char *verdict;
	int inconsistent;
} vote;

enum { H1, H2, H3, J1, J2, I1, NWHO };
static const char *who_name[NWHO] = {"h1", "h2", "h3", "j1", "j2", "import:x"};
static const char *who_kind[NWHO] = {"human", "human", "human", "judge", "judge", "import"};

/* Expected result per policy: 'a', 'b' or 0, with n. */
typedef struct expect {
	char winner;
	int n;
} expect;

typedef struct policy_case {
	const char *name;
	vote votes[6];
	int nvotes;
	expect e[4]; /* majority, humans-over-judges, unanimous, consistent-judge */
} policy_case;

static const policy_case cases[] = {
	{"one human a", {{H1, "a", 0}}, 1, {{'a', 1}, {'a', 1}, {'a', 1}, {'a', 1}}},
	{"humans split", {{H1, "a", 0}, {H2, "b", 0}}, 2, {{0, 0}, {0, 0}, {0, 0}, {0, 0}}},
	{"human a, two judges b", {{H1, "a", 0}, {J1, "b", 0}, {J2, "b", 0}}, 3,
	 {{'b', 2}, {'a', 1}, {0, 0}, {'b', 2}}},
	{"judges a (one inconsistent), human b", {{J1, "a", 0}, {J2, "a", 1}, {H1, "b", 0}}, 3,
	 {{'a', 2}, {'b', 1}, {0, 0}, {0, 0}}},
	{"human a, human tie", {{H1, "a", 0}, {H2, "tie", 0}}, 2, {{'a', 1}, {'a', 1}, {0, 0}, {'a', 1}}},
	{"human a, human skip", {{H1, "a", 0}, {H2, "skip", 0}}, 2, {{'a', 1}, {'a', 1}, {'a', 1}, {'a', 1}}},
	{"judges b b, human skip", {{J1, "b", 0}, {J2, "b", 0}, {H3, "skip", 0}}, 3, {{'b', 2}, {'b', 2}, {'b', 2}, {'b', 2}}},
	{"import a, judge b", {{I1, "a", 0}, {J1, "b", 0}}, 2, {{0, 0}, {'a', 1}, {0, 0}, {0, 0}}},
	{"both bad", {{H1, "both_bad", 0}}, 1, {{0, 0}, {0, 0}, {0, 0}, {0, 0}}},
	{"only an inconsistent judge", {{J1, "a", 1}}, 1, {{'a', 1}, {'a', 1}, {'a', 1}, {0, 0}}},
	{"humans b b a, judges a a", {{H1, "b", 0}, {H2, "b", 0}, {H3, "a", 0}, {J1, "a", 0}, {J2, "a", 0}}, 5,
	 {{'a', 3}, {'b', 2}, {0, 0}, {'a', 3}}},
	{"judge a, judge b inconsistent", {{J1, "a", 0}, {J2, "b", 1}}, 2, {{0, 0}, {0, 0}, {0, 0}, {'a', 1}}},
	{"ties only", {{H1, "tie", 0}, {J1, "tie", 0}}, 2, {{0, 0}, {0, 0}, {0, 0}, {0, 0}}},
};
#define NCASES (sizeof cases / sizeof cases[0])

typedef struct case_ids {
	int64_t prompt, ca, cb;
} case_ids;

typedef struct pair_got {
	case_ids *ids;
	char winner[NCASES];
	int n[NCASES];
	int seen;
	int bad_text;
	int64_t last_p;
	char last_ch[65], last_rh[65];
	int order_ok;
} pair_got;

static int grab_pair(void *ud, const store_pair *p)
{
	pair_got *g = ud;
	/* stable order: prompt id, then hash of chosen, then of rejected */
	char ch[65], rh[65];
	util_sha256_hex(p->chosen, strlen(p->chosen), ch);
	util_sha256_hex(p->rejected, strlen(p->rejected), rh);
	int c = strcmp(ch, g->last_ch), r = strcmp(rh, g->last_rh);
	if (g->seen && !(p->prompt_id > g->last_p || (p->prompt_id == g->last_p && (c > 0 || (c == 0 && r > 0)))))
		g->order_ok = 0;
	g->last_p = p->prompt_id;
	memcpy(g->last_ch, ch, 65);
	memcpy(g->last_rh, rh, 65);
	g->seen++;
	for (size_t i = 0; i < NCASES; i++) {
		if (g->ids[i].prompt != p->prompt_id)
			continue;
		g->winner[i] = p->chosen_id == g->ids[i].ca ? 'a' : 'b';
		g->n[i] = p->n_annotations;
		char want[64];
		snprintf(want, sizeof want, "policy prompt %zu", i);
		if (!p->prompt_text || strcmp(p->prompt_text, want) ||
		    strcmp(p->chosen, g->winner[i] == 'a' ? "first" : "second") ||
		    strcmp(p->rejected, g->winner[i] == 'a' ? "second" : "first") || strcmp(p->split, "pol"))
			g->bad_text++;
	}
	return 0;
}

static void test_policies(store *st)
{
	int64_t who[NWHO], gen;
	case_ids ids[NCASES];
	store_generator g = {"import", "pol", NULL, NULL};
	store_generator_id(st, &g, &gen);
	for (int i = 0; i < NWHO; i++) {
		store_annotator a = {.kind = who_kind[i], .name = who_name[i]};
		store_annotator_id(st, &a, &who[i]);
	}
	int setup_ok = 1;
	store_begin(st);
	for (size_t i = 0; i < NCASES; i++) {
		char text[64];
		snprintf(text, sizeof text, "policy prompt %zu", i);
		setup_ok &= !store_prompt_add(st, text, NULL, 0, "pol", "pol", &ids[i].prompt, NULL);
		setup_ok &= !store_completion_add(st, ids[i].prompt, "first", gen, &ids[i].ca, NULL);
		setup_ok &= !store_completion_add(st, ids[i].prompt, "second", gen, &ids[i].cb, NULL);
		for (int v = 0; v < cases[i].nvotes; v++) {
			store_comparison c = {
				.prompt_id = ids[i].prompt, .completion_a = ids[i].ca, .completion_b = ids[i].cb,
				.annotator_id = who[cases[i].votes[v].who], .verdict = cases[i].votes[v].verdict,
				.confidence = NAN, .duration_ms = -1, .inconsistent = cases[i].votes[v].inconsistent,
			};
			setup_ok &= !store_comparison_add(st, &c, NULL, NULL);
		}
	}
	store_commit(st);
	TAP_OK(setup_ok, "policy cases set up (%s)", store_errmsg(st));
	for (int p = 0; store_policies[p]; p++) {
		for (int pass = 0; pass < 2; pass++) {
			pair_got got = {.ids = ids, .order_ok = 1};
			int rc = store_pairs_foreach(st, "pol", store_policies[p], 0, grab_pair, &got);
			TAP_IS_INT(rc, STORE_OK, "%s: resolve (pass %d)", store_policies[p], pass);
			int all = 1;
			for (size_t i = 0; i < NCASES; i++) {
				if (got.winner[i] != cases[i].e[p].winner || got.n[i] != cases[i].e[p].n) {
					all = 0;
					tap_diag("%s / %s: got %c n=%d, want %c n=%d", store_policies[p],
						 cases[i].name, got.winner[i] ? got.winner[i] : '-', got.n[i],
						 cases[i].e[p].winner ? cases[i].e[p].winner : '-', cases[i].e[p].n);
				}
			}
			TAP_OK(all, "%s: every case resolves as expected", store_policies[p]);
			TAP_IS_INT(got.bad_text, 0, "%s: texts, split handed over", store_policies[p]);
			TAP_OK(got.order_ok, "%s: stable order", store_policies[p]);
			long n = -1;
			store_pairs_count(st, "pol", store_policies[p], 0, &n);
			TAP_IS_INT(n, got.seen, "%s: store_pairs_count agrees", store_policies[p]);
		}
	}
	/* min_annotations */
	pair_got got = {.ids = ids, .order_ok = 1};
	store_pairs_foreach(st, "pol", "majority", 2, grab_pair, &got);
	int want = 0;
	for (size_t i = 0; i < NCASES; i++)
		want += cases[i].e[0].winner && cases[i].e[0].n >= 2;
	TAP_IS_INT(got.seen, want, "min_annotations 2 keeps pairs decided by two or more votes");
	TAP_IS_INT(store_pairs_foreach(st, NULL, "dictator", 0, grab_pair, &got), STORE_EINVAL, "unknown policy");
	TAP_OK(strstr(store_errmsg(st), "dictator") != NULL, "message names it");
	got = (pair_got){.ids = ids, .order_ok = 1};
	TAP_IS_INT(store_pairs_foreach(st, "pol", NULL, 0, grab_pair, &got), STORE_OK, "NULL policy is majority");
	TAP_IS_INT(got.winner[2], 'b', "majority result");

	/* order within a prompt with three completions: (chosen, rejected) */
	int64_t p, c[3];
	store_prompt_add(st, "three", NULL, 0, "pol", "pol3", &p, NULL);
	for (int i = 0; i < 3; i++) {
		char t[8];
		snprintf(t, sizeof t, "c%d", i);
		store_completion_add(st, p, t, gen, &c[i], NULL);
	}
	struct {
		int x, y;
		const char *v;
	} v3[] = {{0, 1, "b"}, {0, 2, "a"}, {1, 2, "a"}};
	for (int i = 0; i < 3; i++) {
		store_comparison cc = {.prompt_id = p, .completion_a = c[v3[i].x], .completion_b = c[v3[i].y],
				       .annotator_id = who[H1], .verdict = v3[i].v, .confidence = NAN,
				       .duration_ms = -1};
		store_comparison_add(st, &cc, NULL, NULL);
	}
	got = (pair_got){.ids = ids, .order_ok = 1};
	store_pairs_foreach(st, "pol3", NULL, 0, grab_pair, &got);
	TAP_IS_INT(got.seen, 3, "three pairs");
	TAP_OK(got.order_ok, "ordered by (chosen hash, rejected hash) within the prompt");
}

/* ---- queues ------------------------------------------------------------- */

typedef struct refs {
	int n;
	store_pair_ref r[16];
} refs;

static int grab_ref(void *ud, const store_pair_ref *p)
{
	refs *g = ud;
	if (g->n < 16)
		g->r[g->n] = *p;
	g->n++;
	return 0;
}

typedef struct labeler {
	store *st;
	int64_t annotator;
	int n, failed;
} labeler;

/* Label each pair as the queue hands it over (as the annotation UI does). */
static int label_cb(void *ud, const store_pair_ref *p)
{
	labeler *l = ud;
	store_comparison c = {.prompt_id = p->prompt_id, .completion_a = p->completion_a,
			      .completion_b = p->completion_b, .annotator_id = l->annotator, .verdict = "tie",
			      .shown_first = "b", .confidence = NAN, .duration_ms = 900};
	if (store_comparison_add(l->st, &c, NULL, NULL))
		l->failed++;
	l->n++;
	return 0;
}

static void test_queue(store *st)
{
	int64_t gen, p, p2, c[3], c2[2], h1, h2, j1;
	store_generator g = {"import", "q", NULL, NULL};
	store_generator_id(st, &g, &gen);
	store_prompt_add(st, "queue prompt", NULL, 0, "q", "qsplit", &p, NULL);
	for (int i = 0; i < 3; i++) {
		char t[8];
		snprintf(t, sizeof t, "q%d", i);
		store_completion_add(st, p, t, gen, &c[i], NULL);
	}
	store_prompt_add(st, "queue prompt 2", NULL, 0, "q", "qsplit", &p2, NULL);
	store_completion_add(st, p2, "x", gen, &c2[0], NULL);
	store_completion_add(st, p2, "y", gen, &c2[1], NULL);
	int64_t lonely;
	store_prompt_add(st, "queue prompt lonely", NULL, 0, "q", "qsplit", &lonely, NULL);
	store_completion_add(st, lonely, "only", gen, NULL, NULL);
	store_annotator a = {.kind = "human", .name = "qh1"};
	store_annotator_id(st, &a, &h1);
	a.name = "qh2";
	store_annotator_id(st, &a, &h2);
	store_annotator j = {.kind = "judge", .name = "qj1"};
	store_annotator_id(st, &j, &j1);

	refs r = {0};
	store_queue_filter f = {.split = "qsplit"};
	TAP_IS_INT(store_queue_foreach(st, &f, grab_ref, &r), STORE_OK, "queue");
	TAP_IS_INT(r.n, 4, "3 + 1 pairs, the one-completion prompt skipped");
	TAP_OK(r.r[0].completion_a == c[0] && r.r[0].completion_b == c[1] && r.r[1].completion_b == c[2] &&
		       r.r[2].completion_a == c[1] && r.r[3].prompt_id == p2,
	       "in (prompt, a, b) order");
	store_comparison cc = {.prompt_id = p, .completion_a = c[0], .completion_b = c[1], .annotator_id = h1,
			       .verdict = "a", .confidence = NAN, .duration_ms = -1};
	store_comparison_add(st, &cc, NULL, NULL);
	cc.completion_b = c[2], cc.annotator_id = j1;
	store_comparison_add(st, &cc, NULL, NULL);
	r.n = 0;
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_IS_INT(r.n, 3, "a human-labelled pair leaves the queue");
	r.n = 0;
	f.include_labeled = 1;
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_IS_INT(r.n, 4, "include_labeled keeps it");
	r.n = 0;
	f.annotator_id = j1;
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_IS_INT(r.n, 3, "the judge's own pairs are skipped");
	r.n = 0;
	f.annotator_id = 0, f.max_annotations = 1;
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_IS_INT(r.n, 3, "max_annotations 1 skips the pair with one human label");
	r.n = 0;
	f.max_annotations = 0, f.limit = 2;
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_IS_INT(r.n, 2, "limit");
	r.n = 0;
	f.limit = 0, f.after_prompt_id = p;
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_OK(r.n == 1 && r.r[0].prompt_id == p2, "after_prompt_id resumes after a prompt");
	r.n = 0;
	store_queue_filter f2 = {.split = "no-such-split"};
	store_queue_foreach(st, &f2, grab_ref, &r);
	TAP_IS_INT(r.n, 0, "empty split: empty queue");

	/* disagreements: h1 said a on (c0, c1); h2 says b */
	r.n = 0;
	store_disagreements_foreach(st, "qsplit", grab_ref, &r);
	TAP_IS_INT(r.n, 0, "no disagreement yet");
	cc.completion_b = c[1], cc.annotator_id = h2, cc.verdict = "skip";
	store_comparison_add(st, &cc, NULL, NULL);
	r.n = 0;
	store_disagreements_foreach(st, "qsplit", grab_ref, &r);
	TAP_IS_INT(r.n, 0, "a skip is no disagreement");
	int64_t del;
	store_comparison_add(st, &cc, &del, NULL);
	store_comparison_delete(st, del);
	cc.verdict = "b";
	store_comparison_add(st, &cc, NULL, NULL);
	r.n = 0;
	store_disagreements_foreach(st, "qsplit", grab_ref, &r);
	TAP_OK(r.n == 1 && r.r[0].completion_a == c[0] && r.r[0].completion_b == c[1], "a vs b is a disagreement");
	r.n = 0;
	store_disagreements_foreach(st, NULL, grab_ref, &r);
	/* plus three among the policy cases: a/b, a/tie and b,b/a by humans */
	TAP_IS_INT(r.n, 4, "all splits: also the policy cases' human disagreements");
	/* the prompt counters behind the queue's index */
	char *sql = xasprintf("SELECT n_completions * 10 + n_labeled_pairs FROM prompts WHERE id = %lld",
			      (long long)p);
	TAP_IS_INT(raw_sql(store_path(st), sql), 31, "3 completions, 1 human-labelled pair (judges do not count)");
	free(sql);
	/* delete one of the two human labels of (c0, c1): still labelled */
	cc.annotator_id = h1, cc.verdict = "a";
	int64_t h1c;
	store_comparison_add(st, &cc, &h1c, NULL);
	store_comparison_delete(st, h1c);
	sql = xasprintf("SELECT n_labeled_pairs FROM prompts WHERE id = %lld", (long long)p);
	TAP_IS_INT(raw_sql(store_path(st), sql), 1, "deleting one of two labels keeps the pair labelled");
	r.n = 0;
	f = (store_queue_filter){.split = "qsplit"};
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_IS_INT(r.n, 3, "queue unchanged");
	store_comparison_add(st, &cc, &h1c, NULL); /* put it back */
	free(sql);

	/* labelling inside the queue's callback */
	labeler lb = {st, 0, 0, 0};
	store_annotator a3 = {.kind = "human", .name = "qh3"};
	store_annotator_id(st, &a3, &lb.annotator);
	f = (store_queue_filter){.split = "qsplit"};
	TAP_IS_INT(store_queue_foreach(st, &f, label_cb, &lb), STORE_OK, "label while iterating the queue");
	TAP_OK(lb.n == 3 && lb.failed == 0, "labelled %d pairs, %d failed (%s)", lb.n, lb.failed, store_errmsg(st));
	r.n = 0;
	store_queue_foreach(st, &f, grab_ref, &r);
	TAP_IS_INT(r.n, 0, "queue empty afterwards");
}

/* ---- runs, metrics, caches, check, split -------------------------------- */

typedef struct run_got {
	char status[32], summary[64];
	int ended;
	int nmetrics;
	double last;
} run_got;

static int grab_run(void *ud, const store_run *r)
{
	run_got *g = ud;
	snprintf(g->status, sizeof g->status, "%s", r->status);
	snprintf(g->summary, sizeof g->summary, "%s", r->summary_json ? r->summary_json : "");
	g->ended = r->ended_at != NULL;
	return 0;
}

static int grab_metric(void *ud, const store_metric *m)
{
	run_got *g = ud;
	g->nmetrics++;
	g->last = m->value;
	return 0;
}

static void test_runs_caches(store *st)
{
	int64_t run;
	run_got g = {0};
	TAP_IS_INT(store_run_begin(st, "train", "dpo-train --x", "{\"lr\":1}", &run), STORE_OK, "run begin");
	store_run_get(st, run, grab_run, &g);
	TAP_IS_STR(g.status, "running", "running");
	TAP_OK(!g.ended, "no end time yet");
	TAP_IS_INT(store_metric_add(st, run, 1, "loss", 0.7), STORE_OK, "metric");
	store_metric_add(st, run, 2, "loss", 0.6);
	store_metric_add(st, run, 2, "loss", 0.5);
	store_metric_add(st, run, -1, "acc", 0.9);
	store_metrics_foreach(st, run, "loss", grab_metric, &g);
	TAP_IS_INT(g.nmetrics, 2, "two loss values (same step replaced)");
	TAP_NEAR(g.last, 0.5, 0, "last value kept");
	TAP_IS_INT(store_run_end(st, run, "ok", "{\"done\":true}"), STORE_OK, "run end");
	store_run_get(st, run, grab_run, &g);
	TAP_IS_STR(g.status, "ok", "status ok");
	TAP_IS_STR(g.summary, "{\"done\":true}", "summary");
	TAP_OK(g.ended, "end time set");
	TAP_IS_INT(store_run_end(st, run, "great", NULL), STORE_EINVAL, "bad status");
	TAP_IS_INT(store_run_end(st, 99999, "ok", NULL), STORE_ENOTFOUND, "unknown run");
	TAP_IS_INT(store_run_get(st, 99999, grab_run, &g), STORE_ENOTFOUND, "get unknown run");
	int n = 0;
	store_runs_foreach(st, "train", (store_run_cb)count_cb, &n);
	TAP_IS_INT(n, 1, "runs_foreach by kind");

	char *resp = (char *)"untouched";
	TAP_IS_INT(store_cache_get(st, "req1", &resp), STORE_ENOTFOUND, "cache miss");
	TAP_OK(resp == NULL, "response NULL on a miss");
	TAP_IS_INT(store_cache_put(st, "req1", "answer 1", "{\"tokens\":3}"), STORE_OK, "cache put");
	TAP_IS_INT(store_cache_get(st, "req1", &resp), STORE_OK, "cache hit");
	TAP_IS_STR(resp, "answer 1", "cached response");
	free(resp);
	store_cache_put(st, "req1", "answer 2", NULL);
	store_cache_get(st, "req1", &resp);
	TAP_IS_STR(resp, "answer 2", "replaced");
	free(resp);

	int64_t p, c, gen;
	store_generator gg = {"import", "rl", NULL, NULL};
	store_generator_id(st, &gg, &gen);
	store_prompt_add(st, "ref prompt", NULL, 0, "rl", NULL, &p, NULL);
	store_completion_add(st, p, "ref completion", gen, &c, NULL);
	store_reflogp_key k = {"ref-fp", "tok-fp", p, c};
	double lp = 0;
	long nt = 0;
	TAP_IS_INT(store_reflogp_get(st, &k, &lp, &nt), STORE_ENOTFOUND, "reflogp miss");
	TAP_IS_INT(store_reflogp_put(st, &k, -12.5, 7), STORE_OK, "reflogp put");
	TAP_IS_INT(store_reflogp_get(st, &k, &lp, &nt), STORE_OK, "reflogp hit");
	TAP_OK(lp == -12.5 && nt == 7, "values back (%g, %ld)", lp, nt);
	store_reflogp_key k2 = {"ref-fp", "tok-fp-2", p, c};
	TAP_IS_INT(store_reflogp_get(st, &k2, &lp, &nt), STORE_ENOTFOUND, "another tokenisation misses");
	store_reflogp_put(st, &k, -1.25, 3);
	store_reflogp_get(st, &k, &lp, &nt);
	TAP_OK(lp == -1.25 && nt == 3, "replaced");
	TAP_IS_INT(store_reflogp_put(st, &k, NAN, 3), STORE_EINVAL, "NaN refused");

	char *report = NULL;
	TAP_IS_INT(store_check(st, &report), STORE_OK, "check passes");
	TAP_OK(report && strstr(report, "integrity check: ok") && strstr(report, "foreign key check: ok") &&
		       strstr(report, "prompt counters: ok"),
	       "report says ok");
	free(report);
	/* a damaged counter is found */
	char *sql = xasprintf("UPDATE prompts SET n_completions = n_completions + 5 WHERE id = %lld", (long long)p);
	raw_sql(store_path(st), sql);
	free(sql);
	TAP_IS_INT(store_check(st, &report), STORE_ECORRUPT, "check finds a stale counter");
	TAP_OK(report && strstr(report, "prompt counters: 1 prompts out of date: FAILED"), "report says so");
	free(report);
	sql = xasprintf("UPDATE prompts SET n_completions = n_completions - 5 WHERE id = %lld", (long long)p);
	raw_sql(store_path(st), sql);
	free(sql);
	TAP_IS_INT(store_check(st, &report), STORE_OK, "check passes again");
	free(report);
}

/* Two handles on one file: a writer holding the lock makes the other wait
 * for its busy timeout, then fail with STORE_EBUSY. */
/* ---- the run lifecycle: pid, host, abandoned runs, util_die ---------------- */

typedef struct run_seen {
	char status[32], command[256], host[256], ended[64];
	int64_t pid;
	int abandoned;
} run_seen;

static int see_run(void *ud, const store_run *r)
{
	run_seen *g = ud;
	snprintf(g->status, sizeof g->status, "%s", r->status ? r->status : "");
	snprintf(g->command, sizeof g->command, "%s", r->command ? r->command : "");
	snprintf(g->host, sizeof g->host, "%s", r->host ? r->host : "(null)");
	snprintf(g->ended, sizeof g->ended, "%s", r->ended_at ? r->ended_at : "(null)");
	g->pid = r->pid;
	g->abandoned = r->abandoned;
	return 0;
}

static run_seen get_run(store *st, int64_t id)
{
	run_seen g;
	memset(&g, 0, sizeof g);
	if (store_run_get(st, id, see_run, &g) != STORE_OK)
		snprintf(g.status, sizeof g.status, "(error: %s)", store_errmsg(st));
	return g;
}

/* In a child: open path, start a run, write its id to fd, and then
 * (how) 0: _exit without ending it; 1: util_die inside a transaction. */
static void child_run(const char *path, int fd, int how)
{
	store *st = store_new();
	char *argv[] = {(char *)"dpo-test", (char *)"--token", (char *)"t0ps3cret", NULL};
	int64_t id = 0;
	if (store_open(st, path) || store_run_start(st, "judge", 3, argv, NULL, &id))
		_exit(3);
	if (write(fd, &id, sizeof id) != (ssize_t)sizeof id)
		_exit(4);
	if (how == 0)
		_exit(0);
	if (store_begin(st) || store_prompt_add(st, "written by a run that fails", NULL, 0, "t", NULL, NULL, NULL))
		_exit(5);
	if (!freopen("/dev/null", "w", stderr))
		_exit(6);
	util_die("failing on purpose");
}

/* Fork a child_run; its run id goes to *id. Returns the child's pid, not
 * waited for, once it has written the id (the id is 0 on failure). */
static pid_t fork_run(const char *path, int how, int64_t *id)
{
	int fd[2];
	*id = 0;
	if (pipe(fd))
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		child_run(path, fd[1], how);
	}
	close(fd[1]);
	if (pid > 0 && read(fd[0], id, sizeof *id) != (ssize_t)sizeof *id)
		*id = 0;
	close(fd[0]);
	return pid;
}

static int grab_runs_stat(void *ud, const store_stat *s)
{
	long *v = ud; /* running, ok, failed, interrupted, abandoned, unchecked */
	static const char *const keys[] = {"running", "ok", "failed", "interrupted"};
	if (strcmp(s->section, "runs"))
		return 0;
	for (int i = 0; i < 4; i++)
		if (!strcmp(s->key, keys[i])) {
			if (!strcmp(s->column, "runs"))
				v[i] = s->value;
			else if (!strcmp(s->column, "abandoned"))
				v[4] = s->value;
			else if (!strcmp(s->column, "unchecked"))
				v[5] = s->value;
		}
	return 0;
}

static void test_run_lifecycle(void)
{
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	char sql[512];

	/* a version-3 store with runs migrates, keeping them readable */
	char *p = tpath("runs-v3.db");
	store *st = store_new();
	TAP_IS_INT(store__open_version(st, p, 3), STORE_OK, "build a version-3 database");
	store_free(st);
	TAP_IS_INT(raw_sql(p, "INSERT INTO runs(kind, command, started_at, status) VALUES "
			      "('train', 'dpo-train --old', '2025-01-01T00:00:00Z', 'running') RETURNING id"),
		   1, "a version-3 run left running");
	raw_sql(p, "INSERT INTO runs(kind, command, started_at, ended_at, status) VALUES "
		   "('eval', 'dpo-eval', '2025-01-01T00:00:00Z', '2025-01-01T00:01:00Z', 'ok') RETURNING id");
	st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "the version-3 database migrates");
	TAP_IS_INT(raw_sql(p, "PRAGMA user_version"), store_schema_version(), "to the current version");
	TAP_OK(store_schema_version() >= 4, "which is at least 4");
	run_seen g = get_run(st, 1);
	TAP_IS_STR(g.status, "running", "an old running run without a pid reads running (cannot be checked)");
	TAP_IS_STR(g.command, "dpo-train --old", "its command is kept");
	TAP_OK(g.pid == 0 && !strcmp(g.host, "(null)") && !g.abandoned, "no pid or host recorded");
	TAP_IS_STR(get_run(st, 2).status, "ok", "an old finished run reads ok");

	/* store_run_start records the process, the command line masked */
	char *argv[] = {(char *)"/some/where/dpo-eval", (char *)"--api-key", (char *)"sk-xyz", (char *)"--out",
			(char *)"a b", NULL};
	int64_t id = 0;
	TAP_IS_INT(store_run_start(st, "eval", 5, argv, "{\"k\":1}", &id), STORE_OK, "store_run_start");
	g = get_run(st, id);
	TAP_IS_STR(g.command, "dpo-eval --api-key '***' --out 'a b'", "the command is quoted and masked");
	TAP_IS_INT(g.pid, getpid(), "the pid is recorded");
	TAP_IS_STR(g.host, host, "the host is recorded");
	TAP_IS_STR(g.status, "running", "our own run reads running");
	snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE id = %lld AND proc_start IS NOT NULL", (long long)id);
	TAP_IS_INT(raw_sql(p, sql), access("/proc/self/stat", R_OK) == 0 ? 1 : 0,
		   "a start token is recorded where /proc has one");
	char *no_argv[] = {NULL};
	TAP_IS_INT(store_run_start(st, "eval", 0, no_argv, NULL, NULL), STORE_EINVAL, "no command line: EINVAL");

	/* a child forked by the run's process that dies does not end the run */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stderr))
			_exit(6);
		util_die("a child of the run's process");
	}
	int status = 0;
	waitpid(pid, &status, 0);
	TAP_IS_STR(get_run(st, id).status, "running", "a forked child's util_die leaves the parent's run alone");
	TAP_IS_INT(store_run_end(st, id, "ok", NULL), STORE_OK, "end it");
	TAP_IS_STR(get_run(st, id).status, "ok", "ok");

	/* a process that exits without ending its run: interrupted once it is gone */
	int64_t cid;
	pid = fork_run(p, 0, &cid);
	TAP_OK(pid > 0 && cid > 0, "a child started run %lld", (long long)cid);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
	g = get_run(st, cid);
	TAP_IS_STR(g.status, "interrupted", "its run reads interrupted while the child is a zombie");
	TAP_OK(g.abandoned, "abandoned");
	waitpid(pid, &status, 0);
	g = get_run(st, cid);
	TAP_IS_STR(g.status, "interrupted", "and once it is reaped");
	TAP_IS_STR(g.ended, "(null)", "with no end time (the end is unknown)");
	TAP_IS_STR(g.command, "dpo-test --token '***'", "the child's command is masked");
	snprintf(sql, sizeof sql, "SELECT count(*) FROM runs WHERE id = %lld AND status = 'running'", (long long)cid);
	TAP_IS_INT(raw_sql(p, sql), 1, "the row itself is not rewritten by readers");

	/* rows written by hand: a pid that cannot exist, a reused pid, another host */
	snprintf(sql, sizeof sql, "INSERT INTO runs(kind, command, started_at, pid, host) VALUES "
		 "('judge', 'x', 'now', 2147483646, '%s') RETURNING id", host);
	int64_t dead = raw_sql(p, sql);
	snprintf(sql, sizeof sql, "INSERT INTO runs(kind, command, started_at, pid, host, proc_start) VALUES "
		 "('judge', 'x', 'now', %ld, '%s', 'another-boot/1') RETURNING id", (long)getpid(), host);
	int64_t reused = raw_sql(p, sql);
	snprintf(sql, sizeof sql, "INSERT INTO runs(kind, command, started_at, pid, host) VALUES "
		 "('judge', 'x', 'now', 2147483646, 'not-%s') RETURNING id", host);
	int64_t other = raw_sql(p, sql);
	TAP_IS_STR(get_run(st, dead).status, "interrupted", "a pid that cannot exist reads interrupted");
	TAP_IS_STR(get_run(st, reused).status,
		   access("/proc/self/stat", R_OK) == 0 ? "interrupted" : "running",
		   "our pid with another start token reads interrupted (the pid was reused)");
	TAP_IS_STR(get_run(st, other).status, "running", "a run of another host reads running");
	int nint = 0;
	store_runs_foreach(st, "judge", (store_run_cb)count_cb, &nint);
	TAP_IS_INT(nint, 4, "runs_foreach reads the same rows");

	/* util_die in a run's process ends the run failed, rolling back */
	pid = fork_run(p, 1, &cid);
	waitpid(pid, &status, 0);
	TAP_OK(WIFEXITED(status) && WEXITSTATUS(status) == UTIL_EXIT_FAIL, "the child died with status 1");
	g = get_run(st, cid);
	TAP_IS_STR(g.status, "failed", "util_die ended its run failed");
	TAP_OK(strcmp(g.ended, "(null)") != 0 && !g.abandoned, "with an end time");
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM prompts WHERE content = 'written by a run that fails'"), 0,
		   "its open transaction was rolled back");

	/* statistics and the check say so */
	long v[6] = {0};
	TAP_IS_INT(store_stats_foreach(st, grab_runs_stat, v), STORE_OK, "stats");
	int proc = access("/proc/self/stat", R_OK) == 0;
	TAP_OK(v[0] == 3 - proc && v[1] == 2 && v[2] == 1 && v[3] == 2 + proc,
	       "runs by status: running %ld, ok %ld, failed %ld, interrupted %ld", v[0], v[1], v[2], v[3]);
	TAP_IS_INT(v[4], 2 + proc, "abandoned runs");
	TAP_IS_INT(v[5], 2, "running runs that cannot be checked (old, other host)");
	char *report = NULL;
	TAP_IS_INT(store_check(st, &report), STORE_OK, "check passes with abandoned runs");
	char want[128];
	snprintf(want, sizeof want, "runs interrupted: %d left \"running\" by a process that is gone", 2 + proc);
	TAP_OK(report && strstr(report, want), "check names the abandoned runs");
	TAP_OK(report && strstr(report, "not checked from here"), "and says which cannot be checked");
	free(report);
	store_free(st);
	free(p);
}

static void test_busy(void)
{
	char *path = tpath("busy.db");
	store *a = store_new(), *b = store_new();
	TAP_IS_INT(store_open(a, path), STORE_OK, "open first handle");
	TAP_IS_INT(store_open(b, path), STORE_OK, "open second handle");
	TAP_IS_INT(store_set_busy_timeout(b, 50), STORE_OK, "set busy timeout");
	TAP_IS_INT(store_begin(a), STORE_OK, "first handle begins a write");
	store_prompt_add(a, "locked", NULL, 0, "busy", NULL, NULL, NULL);
	TAP_IS_INT(store_begin(b), STORE_EBUSY, "second writer gets STORE_EBUSY after its timeout");
	TAP_OK(strstr(store_errmsg(b), "locked") != NULL, "message: %s", store_errmsg(b));
	int n = 0;
	TAP_IS_INT(store_prompts_foreach(b, NULL, NULL, 0, (store_prompt_cb)count_cb, &n), STORE_OK,
		   "a reader is not blocked by the writer");
	TAP_IS_INT(n, 0, "and does not see its uncommitted rows");
	TAP_IS_INT(store_commit(a), STORE_OK, "first commits");
	TAP_IS_INT(store_begin(b), STORE_OK, "now the second can write");
	TAP_IS_INT(store_rollback(b), STORE_OK, "rollback");
	n = 0;
	store_prompts_foreach(b, NULL, NULL, 0, (store_prompt_cb)count_cb, &n);
	TAP_IS_INT(n, 1, "the committed row is visible");
	store_free(a);
	store_free(b);
	store *c = store_new();
	TAP_IS_INT(store_set_busy_timeout(c, 10), STORE_EINVAL, "busy timeout on a closed handle");
	store_free(c);
	free(path);
}

static int collect_split(void *ud, const store_prompt *p)
{
	util_buf *b = ud;
	util_buf_addc(b, p->split[1] == 'e' ? 'T' : 't');
	return 0;
}

/* store_split over train and test (both reassigned), as before #12. */
static int split_all(store *st, double frac, uint64_t seed, long *tr, long *te)
{
	static const char *const both[] = {"train", "test"};
	store_split_args a = {.test_fraction = frac, .seed = seed, .from = both, .n_from = 2};
	return store_split(st, &a, NULL, NULL, tr, te);
}

static int split_cb_log(void *ud, const char *from, const char *to, long n)
{
	util_buf_addf(ud, "%s>%s:%ld;", from, to ? to : "-", n);
	return 0;
}

static void test_split(void)
{
	store *st = store_new();
	char *path = tpath("split.db");
	store_open(st, path);
	store_begin(st);
	for (int i = 0; i < 400; i++) {
		char t[32];
		snprintf(t, sizeof t, "split prompt %d", i);
		store_prompt_add(st, t, NULL, 0, "s", NULL, NULL, NULL);
	}
	store_commit(st);
	long tr = 0, te = 0;
	TAP_IS_INT(split_all(st, 0.25, 42, &tr, &te), STORE_OK, "split");
	TAP_IS_INT(tr + te, 400, "every prompt assigned");
	TAP_OK(te > 60 && te < 140, "about a quarter in test (%ld)", te);
	util_buf a = UTIL_BUF_INIT, b = UTIL_BUF_INIT, c = UTIL_BUF_INIT;
	store_prompts_foreach(st, NULL, NULL, 0, collect_split, &a);
	split_all(st, 0.6, 7, NULL, NULL);
	split_all(st, 0.25, 42, &tr, &te);
	store_prompts_foreach(st, NULL, NULL, 0, collect_split, &b);
	TAP_IS_STR(a.data, b.data, "same seed and fraction: same assignment");
	split_all(st, 0.25, 43, NULL, NULL);
	store_prompts_foreach(st, NULL, NULL, 0, collect_split, &c);
	TAP_OK(strcmp(a.data, c.data) != 0, "another seed: another assignment");
	/* a larger fraction only moves prompts into test (threshold is monotone) */
	util_buf d = UTIL_BUF_INIT;
	split_all(st, 0.5, 42, NULL, NULL);
	store_prompts_foreach(st, NULL, NULL, 0, collect_split, &d);
	int mono = 1;
	for (size_t i = 0; i < a.len; i++)
		if (a.data[i] == 'T' && d.data[i] != 'T')
			mono = 0;
	TAP_OK(mono, "test at 0.25 stays test at 0.5");
	split_all(st, 0, 1, &tr, &te);
	TAP_OK(te == 0 && tr == 400, "fraction 0: all train");
	split_all(st, 1, 1, &tr, &te);
	TAP_OK(te == 400 && tr == 0, "fraction 1: all test");
	TAP_IS_INT(split_all(st, 1.5, 1, &tr, &te), STORE_EINVAL, "fraction 1.5 refused");

	/* #12: by default only train is reassigned; test stays test */
	split_all(st, 0, 1, &tr, &te); /* all train again */
	store_split_args def = {.test_fraction = 0.25, .seed = 42};
	TAP_IS_INT(store_split(st, &def, NULL, NULL, &tr, &te), STORE_OK, "default split (train only)");
	util_buf e = UTIL_BUF_INIT;
	store_prompts_foreach(st, NULL, NULL, 0, collect_split, &e);
	TAP_IS_STR(e.data, a.data, "from all train: the same assignment as over both");
	def.test_fraction = 0;
	store_split(st, &def, NULL, NULL, &tr, &te);
	TAP_OK(te > 60 && te < 140 && tr + te == 400, "fraction 0 over train: test left as it was (%ld)", te);
	util_buf f = UTIL_BUF_INIT;
	store_prompts_foreach(st, NULL, NULL, 0, collect_split, &f);
	TAP_IS_STR(f.data, a.data, "fraction 0 over train moved nothing out of test");
	/* dry run: counts, writes nothing; the callback hears per split */
	util_buf log = UTIL_BUF_INIT;
	store_split_args dry = {.test_fraction = 1, .seed = 42, .dry_run = 1};
	long dtr = -1, dte = -1;
	TAP_IS_INT(store_split(st, &dry, split_cb_log, &log, &dtr, &dte), STORE_OK, "dry run");
	TAP_OK(dtr == 0 && dte == 400, "dry run: what the counts would be");
	char want[128];
	snprintf(want, sizeof want, "test>-:%ld;train>test:%ld;train>train:0;", te, tr);
	TAP_IS_STR(util_buf_str(&log), want, "dry run: test left alone, all of train would go to test");
	util_buf g = UTIL_BUF_INIT;
	store_prompts_foreach(st, NULL, NULL, 0, collect_split, &g);
	TAP_IS_STR(g.data, a.data, "dry run changed nothing");
	static const char *const nosuch[] = {"validation"};
	store_split_args bad = {.test_fraction = 0.5, .seed = 1, .from = nosuch, .n_from = 1};
	TAP_IS_INT(store_split(st, &bad, NULL, NULL, NULL, NULL), STORE_ENOTFOUND, "--from a split no prompt is in");
	TAP_OK(strstr(store_errmsg(st), "the splits are: test (") != NULL, "names the splits there are: %s",
	       store_errmsg(st));
	util_buf_free(&a), util_buf_free(&b), util_buf_free(&c), util_buf_free(&d);
	util_buf_free(&e), util_buf_free(&f), util_buf_free(&g), util_buf_free(&log);
	store_free(st);
	free(path);
}

/* ---- agreement ---------------------------------------------------------- */

static void test_agreement(store *st)
{
	long t1[STORE_NCAT][STORE_NCAT] = {{20, 5}, {10, 15}};
	/* po = 35/50 = 0.7; pe = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 */
	TAP_NEAR(store_cohen_kappa(t1), 0.4, 1e-12, "kappa, 2x2 table");
	long t2[STORE_NCAT][STORE_NCAT] = {{10, 2, 0, 0}, {1, 8, 1, 0}, {0, 1, 5, 0}, {0, 0, 0, 2}};
	/* po = 25/30; pe = (12*11 + 10*11 + 6*6 + 2*2)/900 = 282/900 */
	TAP_NEAR(store_cohen_kappa(t2), (25.0 / 30 - 282.0 / 900) / (1 - 282.0 / 900), 1e-12, "kappa, 4x4 table");
	long t3[STORE_NCAT][STORE_NCAT] = {{0}};
	TAP_OK(isnan(store_cohen_kappa(t3)), "kappa of nothing is NaN");
	long t4[STORE_NCAT][STORE_NCAT] = {{5}};
	TAP_NEAR(store_cohen_kappa(t4), 1.0, 0, "kappa of total agreement on one category is 1");
	long t5[STORE_NCAT][STORE_NCAT] = {{0, 5}, {5, 0}};
	TAP_NEAR(store_cohen_kappa(t5), -1.0, 1e-12, "kappa of total disagreement is -1");

	/* units: (a,a) (a,b) (b,b,b) (tie,a) (a): coincidences o_aa = 2,
	 * o_ab = o_ba = 1, o_bb = 3, o_at = o_ta = 1; n_a = 4, n_b = 4, n_t = 1,
	 * n = 9; alpha = 1 - 8 * 4 / (2 * (16 + 4 + 4)) = 1/3 */
	long units[][STORE_NCAT] = {{2, 0, 0, 0}, {1, 1, 0, 0}, {0, 3, 0, 0}, {1, 0, 1, 0}, {1, 0, 0, 0}};
	TAP_NEAR(store_krippendorff_alpha(units, 5), 1.0 / 3.0, 1e-12, "alpha, hand-computed table");
	long perfect[][STORE_NCAT] = {{2, 0, 0, 0}, {0, 3, 0, 0}};
	TAP_NEAR(store_krippendorff_alpha(perfect, 2), 1.0, 1e-12, "alpha of perfect agreement");
	long single[][STORE_NCAT] = {{1, 0, 0, 0}};
	TAP_OK(isnan(store_krippendorff_alpha(single, 1)), "alpha without pairable values is NaN");
	/* two raters, alpha for 2 raters with binary data: (a,a),(b,b),(a,b),(b,a)
	 * o_aa = 2, o_bb = 2, o_ab = o_ba = 2, n = 8: alpha = 1 - 7*4/(2*16) = 0.125 */
	long two[][STORE_NCAT] = {{2, 0}, {0, 2}, {1, 1}, {1, 1}};
	TAP_NEAR(store_krippendorff_alpha(two, 4), 0.125, 1e-12, "alpha, 2 raters binary");

	/* on the preferred completion: two raters agreeing on 8 of 10 pairs, all
	 * stored with rater 1's choice as a: (a,a) 8, (a,b) 2. Plain kappa: pe =
	 * 1 * 0.8 = po, 0. Counted both ways: (b,b) 8, (b,a) 2 more; po = 0.8, pe =
	 * 0.5, kappa = 0.6. Raw agreement 8/10 over n = 10. */
	long p1[STORE_NCAT][STORE_NCAT] = {{8, 2}};
	TAP_NEAR(store_cohen_kappa(p1), 0.0, 1e-12, "kappa on a/b labels of skewed storage: 0");
	TAP_NEAR(store_pref_kappa(p1), 0.6, 1e-12, "kappa on the preferred completion: 0.6");
	long pn = 0;
	TAP_NEAR(store_table_agreement(p1, &pn), 0.8, 1e-12, "raw agreement 0.8");
	TAP_IS_INT(pn, 10, "raw agreement n");
	/* alpha over the same: o_aa = 16, o_ab = o_ba = 2 (n = 20); half
	 * exchanged: o_aa = o_bb = 8, o_ab = o_ba = 2, n_a = n_b = 10; alpha =
	 * 1 - 19 * 4 / 200 = 0.62 (plain: 1 - 19 * 4 / 72) */
	long pu[10][STORE_NCAT] = {{2}, {2}, {2}, {2}, {2}, {2}, {2}, {2}, {1, 1}, {1, 1}};
	double pa = 0, pv = 0;
	TAP_NEAR(store_krippendorff_alpha(pu, 10), 1 - 19.0 * 4 / 72, 1e-12, "alpha on a/b labels of skewed storage");
	TAP_NEAR(store_pref_alpha(pu, 10, &pa, &pv), 0.62, 1e-12, "alpha on the preferred completion: 0.62");
	TAP_NEAR(pa, 0.8, 1e-12, "alpha: observed agreement 16/20");
	TAP_NEAR(pv, 20, 0, "alpha: 20 pairable values");
	/* symmetric tables are unchanged */
	TAP_NEAR(store_pref_kappa(t1), store_cohen_kappa(t1), 1e-12, "pref kappa = kappa when marginals are symmetric");

	TAP_IS_INT(store_verdict_category("a"), STORE_CAT_A, "category a");
	TAP_IS_INT(store_verdict_category("both_bad"), STORE_CAT_BOTH_BAD, "category both_bad");
	TAP_IS_INT(store_verdict_category("skip"), -1, "skip has no category");

	int n = 0;
	TAP_IS_INT(store_votes_foreach(st, (store_pair_votes_cb)count_cb, &n), STORE_OK, "votes_foreach");
	TAP_OK(n > 0, "visits labelled pairs (%d)", n);
}

typedef struct stat_got {
	int n;
	long prompts_total, pairs_majority, verdict_a, bias_n;
} stat_got;

static int grab_stat(void *ud, const store_stat *s)
{
	stat_got *g = ud;
	g->n++;
	if (!strcmp(s->section, "total") && !strcmp(s->column, "prompts"))
		g->prompts_total = s->value;
	if (!strcmp(s->section, "pairs") && !strcmp(s->key, "majority"))
		g->pairs_majority = s->value;
	if (!strcmp(s->section, "verdict") && !strcmp(s->key, "a"))
		g->verdict_a = s->value;
	if (!strcmp(s->section, "position_bias") && !strcmp(s->column, "n"))
		g->bias_n += s->value;
	return 0;
}

static void test_stats(store *st)
{
	stat_got g = {0};
	TAP_IS_INT(store_stats_foreach(st, grab_stat, &g), STORE_OK, "stats");
	TAP_IS_INT(g.prompts_total, raw_sql(store_path(st), "SELECT count(*) FROM prompts"), "total prompts");
	long n = 0;
	store_pairs_count(st, NULL, "majority", 1, &n);
	TAP_IS_INT(g.pairs_majority, n, "resolvable pairs");
	TAP_IS_INT(g.verdict_a, raw_sql(store_path(st), "SELECT count(*) FROM comparisons WHERE verdict = 'a'"),
		   "verdict a count");
	TAP_IS_INT(g.bias_n, raw_sql(store_path(st), "SELECT count(*) FROM comparisons WHERE shown_first IS NOT NULL "
						     "AND verdict IN ('a', 'b')"),
		   "position bias counts only known orders");
}

/* store_open_existing and store_open_read never create a database; both
 * open an existing one (tests/cli_safe.sh tests read-only media). */
static void test_open_existing(void)
{
	store *st = store_new();
	char *p = tpath("typo.db");
	TAP_IS_INT(store_open_existing(st, p), STORE_ENOTFOUND, "open_existing: a missing file");
	char *want = xasprintf("%s: no such database (create one with dpo-db init or dpo-db import)", p);
	TAP_IS_STR(store_errmsg(st), want, "open_existing: the message");
	TAP_IS_INT(store_open_read(st, p), STORE_ENOTFOUND, "open_read: a missing file");
	TAP_OK(access(p, F_OK) != 0, "no file created");
	TAP_IS_INT(store_open(st, p), STORE_OK, "store_open creates it");
	store_free(st);
	st = store_new();
	TAP_IS_INT(store_open_existing(st, p), STORE_OK, "open_existing: an existing one");
	TAP_IS_INT(store_open_read(st, p), STORE_OK, "open_read: an existing one");
	store_free(st);
	free(want);
	free(p);
}

/* ---- scores and conflicting labels (#12) ---------------------------------- */

static void test_scores_v5(void)
{
	/* a version-4 store with a comparison migrates: the score columns
	 * come, NULL for what was there */
	char *p = tpath("scores-v4.db");
	store *st = store_new();
	TAP_IS_INT(store__open_version(st, p, 4), STORE_OK, "build a version-4 database");
	store_free(st);
	/* (by hand: this dpo's statements need the current schema) */
	raw_sql(p, "INSERT INTO prompts(id, hash, kind, content, source, created_at, n_completions, n_labeled_pairs) "
		   "VALUES (1, randomblob(32), 'text', 'old?', 'v4', '2025-01-01T00:00:00Z', 2, 1) RETURNING id");
	raw_sql(p, "INSERT INTO generators(id, kind, name, created_at) VALUES (1, 'import', 'v4', 'x') RETURNING id");
	raw_sql(p, "INSERT INTO completions(id, prompt_id, hash, text, generator_id, created_at) VALUES "
		   "(1, 1, randomblob(32), 'one', 1, 'x'), (2, 1, randomblob(32), 'two', 1, 'x') RETURNING id");
	raw_sql(p, "INSERT INTO annotators(id, kind, name, created_at) VALUES (1, 'import', 'import:v4', 'x') "
		   "RETURNING id");
	TAP_IS_INT(raw_sql(p, "INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, "
			      "created_at) VALUES (1, 1, 2, 1, 'a', 'x') RETURNING id"),
		   1, "a comparison in the version-4 database");
	TAP_IS_INT(raw_sql(p, "PRAGMA user_version"), 4, "it is at version 4");
	st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "the version-4 database migrates");
	TAP_IS_INT(raw_sql(p, "PRAGMA user_version"), store_schema_version(), "to the current version");
	TAP_OK(store_schema_version() >= 5, "which is at least 5");
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM comparisons WHERE score_a IS NULL AND score_b IS NULL "
			      "AND source_chosen IS NULL AND verdict = 'a'"),
		   1, "the old comparison is kept, without scores");

	/* scores go with the comparison, in (completion_a, completion_b)
	 * order; a tie keeps the side the file called chosen */
	store_rec_completion c2[] = {{"zz later text", NULL}, {"aa other text", NULL}};
	store_rec_label lab[] = {{1, 0, "b", 1, 6.5, 8.0, "b", 0, 0}}; /* completions[0] chosen, given reversed */
	store_record r2 = {.prompt_text = "scored 2?", .completions = c2, .ncompletions = 2, .labels = lab,
			   .nlabels = 1};
	store_rec_completion c3[] = {{"tie chosen", NULL}, {"tie rejected", NULL}};
	store_rec_label tie[] = {{0, 1, "tie", 1, 7.0, 7.0, "a", 0, 0}};
	store_record r3 = {.prompt_text = "scored 3?", .completions = c3, .ncompletions = 2, .labels = tie,
			   .nlabels = 1};
	store_import_counts k = {0};
	store_begin(st);
	TAP_IS_INT(store_add_record(st, &r2, "uf", NULL, &k), STORE_OK, "a record with scores");
	TAP_IS_INT(store_add_record(st, &r3, "uf", NULL, &k), STORE_OK, "a tie with scores");
	store_commit(st);
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM comparisons c JOIN completions x ON x.id = c.completion_a "
			      "JOIN completions y ON y.id = c.completion_b WHERE "
			      "((x.text = 'zz later text' AND c.score_a = 8.0 AND c.score_b = 6.5 AND c.source_chosen = 'a' "
			      "AND c.verdict = 'a') OR (y.text = 'zz later text' AND c.score_b = 8.0 AND c.score_a = 6.5 "
			      "AND c.source_chosen = 'b' AND c.verdict = 'b'))"),
		   1, "the scores follow their completions");
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM comparisons c JOIN completions x ON x.id = "
			      "(CASE c.source_chosen WHEN 'a' THEN c.completion_a ELSE c.completion_b END) "
			      "WHERE c.verdict = 'tie' AND c.score_a = 7.0 AND c.score_b = 7.0 AND x.text = 'tie chosen'"),
		   1, "a tie keeps which side the file called chosen");
	long n = -1, tied = -1;
	TAP_IS_INT(store_pairs_count_ties(st, NULL, "majority", 1, &n, &tied), STORE_OK, "count pairs and ties");
	TAP_OK(n == 2 && tied == 1, "2 pairs, 1 tie dropped: %ld %ld", n, tied);

	/* the same source labelling a pair the other way: a conflict, not a
	 * duplicate, and the first verdict stays */
	store_rec_completion comps[] = {{"chosen one", NULL}, {"rejected one", NULL}};
	store_rec_label first[] = {{.a = 0, .b = 1, .verdict = "a"}}, flip[] = {{.a = 0, .b = 1, .verdict = "b"}};
	store_record r = {.prompt_text = "scored?", .completions = comps, .ncompletions = 2, .labels = first,
			  .nlabels = 1};
	store_import_counts kc = {0};
	store_begin(st);
	TAP_IS_INT(store_add_record(st, &r, "v4", NULL, &kc), STORE_OK, "a label");
	r.labels = flip;
	TAP_IS_INT(store_add_record(st, &r, "v4", NULL, &kc), STORE_OK, "the opposite label");
	store_commit(st);
	TAP_OK(kc.comparisons_conflict == 1 && kc.comparisons_dup == 0 && kc.comparisons_new == 1,
	       "counted as a conflict: %ld %ld %ld", kc.comparisons_conflict, kc.comparisons_dup, kc.comparisons_new);
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM comparisons c JOIN prompts q ON q.id = c.prompt_id "
			      "WHERE q.content = 'scored?'"),
		   1, "one comparison of the pair");
	store_free(st);
	free(p);
}

/* ---- one canonical prompt form (#12) ----------------------------------------- */

static void test_canonical_prompt_v6(void)
{
	/* a version-5 store holds one-message conversations under the
	 * fingerprint of their JSON (a random one here: the migration must
	 * not care what it was) */
	char *p = tpath("canon-v5.db");
	store *st = store_new();
	TAP_IS_INT(store__open_version(st, p, 5), STORE_OK, "build a version-5 database");
	int64_t twin_text = 0;
	TAP_IS_INT(store_prompt_add(st, "Twin", NULL, 0, "v5", NULL, &twin_text, NULL), STORE_OK, "a text prompt");
	store_free(st);
	TAP_IS_INT(raw_sql(p, "INSERT INTO prompts(id, hash, kind, content, source, created_at) VALUES "
			      "(100, randomblob(32), 'chat', '[{\"role\":\"user\",\"content\":\"Hi\"}]', 'v5', 'x'), "
			      "(101, randomblob(32), 'chat', '[{\"role\":\"user\",\"content\":\"Twin\"}]', 'v5', 'x'), "
			      "(102, randomblob(32), 'chat', '[{\"role\":\"system\",\"content\":\"S\"},"
			      "{\"role\":\"user\",\"content\":\"Hi\"}]', 'v5', 'x') RETURNING id"),
		   100, "one-message conversations in the version-5 database");
	st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "the version-5 database migrates");
	TAP_IS_INT(raw_sql(p, "PRAGMA user_version"), store_schema_version(), "to the current version");
	int64_t id = 0;
	int created = -1;
	TAP_IS_INT(store_prompt_add(st, "Hi", NULL, 0, "new", NULL, &id, &created), STORE_OK, "add the text \"Hi\"");
	TAP_OK(id == 100 && created == 0, "it is the stored [user: \"Hi\"] (id %lld, created %d)", (long long)id,
	       created);
	store_msg hi[] = {{"user", "Hi"}};
	TAP_IS_INT(store_prompt_add(st, NULL, hi, 1, "new", NULL, &id, &created), STORE_OK, "add [user: \"Hi\"]");
	TAP_OK(id == 100 && created == 0, "the same prompt again (id %lld, created %d)", (long long)id, created);
	store_msg twin[] = {{"user", "Twin"}};
	TAP_IS_INT(store_prompt_add(st, NULL, twin, 1, "new", NULL, &id, &created), STORE_OK, "add [user: \"Twin\"]");
	TAP_OK(id == twin_text && created == 0,
	       "a conversation whose text was stored before is the text prompt (id %lld)", (long long)id);
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM prompts"), 4, "no prompt added or lost by the migration");

	/* in a new store, either form first */
	store_msg hello[] = {{"user", "Hello"}}, sys[] = {{"system", "S"}, {"user", "Hello"}},
		  asst[] = {{"assistant", "Hello"}};
	int64_t a = 0, b = 0, c = 0, d = 0;
	TAP_IS_INT(store_prompt_add(st, NULL, hello, 1, "new", NULL, &a, &created), STORE_OK, "[user: \"Hello\"]");
	TAP_IS_INT(created, 1, "a new prompt");
	TAP_IS_INT(store_prompt_add(st, "Hello", NULL, 0, "new", NULL, &b, &created), STORE_OK, "\"Hello\"");
	TAP_OK(a == b && created == 0, "the text is the same prompt");
	TAP_IS_INT(store_prompt_add(st, NULL, sys, 2, "new", NULL, &c, &created), STORE_OK, "[system, user]");
	TAP_OK(c != a && created == 1, "a system message makes another prompt");
	TAP_IS_INT(store_prompt_add(st, NULL, asst, 1, "new", NULL, &d, &created), STORE_OK, "[assistant: ...]");
	TAP_OK(d != a && created == 1, "so does another role");
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM prompts WHERE content = 'Hello' OR content = "
			      "'[{\"role\":\"user\",\"content\":\"Hello\"}]'"),
		   1, "one row of the two forms");
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM prompts WHERE kind = 'chat' AND content = "
			      "'[{\"role\":\"user\",\"content\":\"Hello\"}]'"),
		   1, "the form stored first is kept");
	store_free(st);
	free(p);
}

/* ---- claims (#14, #15) -------------------------------------------------------- */

/* A label by annotator name (kind) on the pair, or a skip. */
static int64_t label(store *st, int64_t prompt, int64_t a, int64_t b, const char *kind, const char *name,
		     const char *verdict)
{
	int64_t ann = 0, id = 0;
	store_annotator an = {.kind = kind, .name = name};
	store_annotator_id(st, &an, &ann);
	store_comparison c = {.prompt_id = prompt, .completion_a = a, .completion_b = b, .annotator_id = ann,
			      .verdict = verdict, .confidence = NAN, .duration_ms = -1};
	store_comparison_add(st, &c, &id, NULL);
	return id;
}

static int claim(store *st, int64_t a, int64_t b, const char *scope, const char *owner, int overlap, double ttl)
{
	store_claim c = {a, b, scope, owner, ttl};
	int got = -1;
	if (store_claim_try(st, &c, overlap, &got) != STORE_OK)
		return -1;
	return got;
}

static void test_claims(void)
{
	char *p = tpath("claims.db");
	store *st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "claims: a new store");
	int64_t pr = 0, g = 0, c[4];
	store_prompt_add(st, "Which?", NULL, 0, "t", NULL, &pr, NULL);
	store_generator gen = {.kind = "import", .name = "t"};
	store_generator_id(st, &gen, &g);
	const char *texts[] = {"one", "two", "three", "four"};
	for (int i = 0; i < 4; i++)
		store_completion_add(st, pr, texts[i], g, &c[i], NULL);

	/* overlap 1: one session at a time; the holder keeps it; a release
	 * frees it */
	TAP_IS_INT(claim(st, c[0], c[1], "human", "alice", 1, 0), 1, "alice claims the pair");
	TAP_IS_INT(claim(st, c[1], c[0], "human", "bob", 1, 0), 0, "bob may not (either order of the pair)");
	TAP_IS_INT(claim(st, c[0], c[1], "human", "alice", 1, 0), 1, "alice still holds it");
	long live = -1;
	TAP_IS_INT(store_claims_live(st, "human", &live), STORE_OK, "count live claims");
	TAP_IS_INT(live, 1, "one live claim");
	store_claim ca = {c[0], c[1], "human", "alice", 0};
	TAP_IS_INT(store_claim_release(st, &ca), STORE_OK, "alice releases it");
	TAP_IS_INT(claim(st, c[0], c[1], "human", "bob", 1, 0), 1, "then bob gets it");

	/* overlap 2: two sessions; labels take the claims' places */
	TAP_IS_INT(claim(st, c[0], c[1], "human", "carol", 2, 0), 1, "overlap 2: carol too");
	TAP_IS_INT(claim(st, c[0], c[1], "human", "dave", 2, 0), 0, "but not a third");
	label(st, pr, c[0], c[1], "human", "bob", "a");
	store_claim cb = {c[0], c[1], "human", "bob", 0};
	store_claim_release(st, &cb);
	TAP_IS_INT(claim(st, c[0], c[1], "human", "dave", 2, 0), 0, "bob's label + carol's claim: still full");
	TAP_IS_INT(claim(st, c[0], c[1], "human", "bob", 2, 0), 0, "bob labelled it: not offered to him again");
	store_claim cc = {c[0], c[1], "human", "carol", 0};
	store_claim_release(st, &cc);
	TAP_IS_INT(claim(st, c[0], c[1], "human", "dave", 2, 0), 1, "carol let go: dave gets the second slot");
	int64_t dl = label(st, pr, c[0], c[1], "human", "dave", "both_bad");
	store_claim cd = {c[0], c[1], "human", "dave", 0};
	store_claim_release(st, &cd);
	TAP_IS_INT(claim(st, c[0], c[1], "human", "erin", 2, 0), 0, "both bad counts as a label: full");
	store_comparison_delete(st, dl);
	TAP_IS_INT(claim(st, c[0], c[1], "human", "erin", 2, 0), 1, "undoing a label frees its slot");

	/* a label takes its owner's claim's place at once (before the
	 * release): no slot is counted twice */
	TAP_IS_INT(claim(st, c[0], c[3], "human", "lou", 2, 0), 1, "lou claims another pair at overlap 2");
	label(st, pr, c[0], c[3], "human", "lou", "a");
	TAP_IS_INT(claim(st, c[0], c[3], "human", "max", 2, 0), 1,
		   "lou labelled it, claim not yet released: max still gets the second slot");
	store_claim cl = {c[0], c[3], "human", "lou", 0}, cm = {c[0], c[3], "human", "max", 0};
	store_claim_release(st, &cl);
	store_claim_release(st, &cm);

	/* a skip is the skipper's alone */
	label(st, pr, c[2], c[3], "human", "frank", "skip");
	TAP_IS_INT(claim(st, c[2], c[3], "human", "frank", 1, 0), 0, "frank skipped it: not offered to him");
	TAP_IS_INT(claim(st, c[2], c[3], "human", "gina", 1, 0), 1, "but to gina");

	/* expiry, and a claim of a process that is gone */
	TAP_IS_INT(claim(st, c[0], c[2], "human", "hank", 1, 0.05), 1, "hank claims for 50 ms");
	TAP_IS_INT(claim(st, c[0], c[2], "human", "ivy", 1, 0), 0, "ivy waits");
	usleep(120 * 1000);
	TAP_IS_INT(claim(st, c[0], c[2], "human", "ivy", 1, 0), 1, "the claim expired: ivy gets it");
	pid_t kid = fork();
	if (kid == 0)
		_exit(0);
	waitpid(kid, NULL, 0);
	char host[256] = "";
	gethostname(host, sizeof host - 1);
	char *sql = xasprintf("INSERT INTO claims(completion_a, completion_b, scope, owner, pid, host, expires_at) "
			      "VALUES (%lld, %lld, 'human', 'ghost', %ld, '%s', 9e18) RETURNING 1",
			      (long long)(c[1] < c[2] ? c[1] : c[2]), (long long)(c[1] < c[2] ? c[2] : c[1]), (long)kid,
			      host);
	TAP_IS_INT(raw_sql(p, sql), 1, "a claim of a process that has exited, never expiring");
	free(sql);
	TAP_IS_INT(claim(st, c[1], c[2], "human", "jack", 1, 0), 1, "is not live: jack gets the pair");

	/* one annotator in two terminals: the pair another live process of
	 * the same owner holds is not shown here too (pid 1 lives forever) */
	char *sql2 = xasprintf("INSERT INTO claims(completion_a, completion_b, scope, owner, pid, host, expires_at) "
			       "VALUES (%lld, %lld, 'human', 'nina', 1, '%s', 9e18) RETURNING 1",
			       (long long)(c[2] < c[3] ? c[2] : c[3]), (long long)(c[2] < c[3] ? c[3] : c[2]), host);
	TAP_IS_INT(raw_sql(p, sql2), 1, "nina holds a pair in another process");
	free(sql2);
	TAP_IS_INT(claim(st, c[2], c[3], "human", "nina", 2, 0), 0, "nina's second session is not offered it");
	TAP_IS_INT(claim(st, c[2], c[3], "human", "oscar", 3, 0), 1, "oscar is, at overlap 3");

	/* a judge's scope counts that judge's labels only */
	TAP_IS_INT(claim(st, c[1], c[3], "judge:x", "judge:x#1", 1, 0), 1, "judge run 1 claims");
	TAP_IS_INT(claim(st, c[1], c[3], "judge:x", "judge:x#2", 1, 0), 0, "run 2 of the same judge may not");
	TAP_IS_INT(claim(st, c[1], c[3], "human", "kim", 1, 0), 1, "a human may");
	label(st, pr, c[1], c[3], "judge", "judge:x", "b");
	TAP_IS_INT(store_claims_release_all(st, "judge:x#1"), STORE_OK, "run 1 releases its claims at exit");
	TAP_IS_INT(claim(st, c[1], c[3], "judge:x", "judge:x#2", 1, 0), 0, "the judge's label fills the pair");
	TAP_IS_INT(claim(st, c[0], c[3], "judge:x", "judge:x#2", 1, 0), 1, "another pair is free");

	store_claim bad = {c[0], c[0], "human", "x", 0};
	int got = 0;
	TAP_IS_INT(store_claim_try(st, &bad, 1, &got), STORE_EINVAL, "a pair of one completion: EINVAL");
	store_claim gone = {c[0], c[3], "human", "nobody", 0};
	TAP_IS_INT(store_claim_renew(st, &gone), STORE_ENOTFOUND, "renewing no claim: ENOTFOUND");
	store_claim mine = {c[0], c[3], "judge:x", "judge:x#2", 60};
	TAP_IS_INT(store_claim_renew(st, &mine), STORE_OK, "renewing one's claim");
	store_free(st);
	free(p);
}

/* ---- a skip is the skipper's alone (#14) ------------------------------------- */

static int count_pairs_cb(void *ud, const store_pair_ref *p)
{
	(void)p;
	(*(int *)ud)++;
	return 0;
}

static int queue_len(store *st, int64_t annotator)
{
	int n = 0;
	store_queue_filter f = {.annotator_id = annotator, .max_annotations = 1};
	store_queue_foreach(st, &f, count_pairs_cb, &n);
	return n;
}

static void test_skip_is_personal(void)
{
	char *p = tpath("skip.db");
	store *st = store_new();
	TAP_IS_INT(store__open_version(st, p, 7), STORE_OK, "skip: a version-7 store");
	int64_t pr = 0, g = 0, c1 = 0, c2 = 0, x = 0, y = 0;
	store_prompt_add(st, "Skip me?", NULL, 0, "t", NULL, &pr, NULL);
	store_generator gen = {.kind = "import", .name = "t"};
	store_generator_id(st, &gen, &g);
	store_completion_add(st, pr, "left", g, &c1, NULL);
	store_completion_add(st, pr, "right", g, &c2, NULL);
	store_annotator ax = {.kind = "human", .name = "x"}, ay = {.kind = "human", .name = "y"};
	store_annotator_id(st, &ax, &x);
	store_annotator_id(st, &ay, &y);
	store_free(st);
	/* version 7 counted a skip as a label: the prompt left the queue */
	char *sql = xasprintf("INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, "
			      "created_at) VALUES (%lld, %lld, %lld, %lld, 'skip', 'x') RETURNING 1",
			      (long long)pr, (long long)c1, (long long)c2, (long long)x);
	TAP_IS_INT(raw_sql(p, sql), 1, "x skipped the pair under version 7");
	free(sql);
	raw_sql(p, "UPDATE prompts SET n_labeled_pairs = 1 RETURNING 1");
	st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "migrates");
	TAP_IS_INT(raw_sql(p, "SELECT n_labeled_pairs FROM prompts"), 0, "the skip is no label any more");
	TAP_IS_INT(queue_len(st, y), 1, "the pair is in y's queue");
	TAP_IS_INT(queue_len(st, x), 0, "not in x's");
	/* a new skip, then its undo, leave the counter alone */
	int64_t id = 0;
	store_comparison sk = {.prompt_id = pr, .completion_a = c1, .completion_b = c2, .annotator_id = y,
			       .verdict = "skip", .confidence = NAN, .duration_ms = -1};
	TAP_IS_INT(store_comparison_add(st, &sk, &id, NULL), STORE_OK, "y skips it too");
	TAP_IS_INT(raw_sql(p, "SELECT n_labeled_pairs FROM prompts"), 0, "still no label");
	TAP_IS_INT(store_comparison_delete(st, id), STORE_OK, "y undoes the skip");
	TAP_IS_INT(raw_sql(p, "SELECT n_labeled_pairs FROM prompts"), 0, "the counter did not go below zero");
	store_comparison lab = sk;
	lab.verdict = "a";
	TAP_IS_INT(store_comparison_add(st, &lab, &id, NULL), STORE_OK, "y labels it");
	TAP_IS_INT(raw_sql(p, "SELECT n_labeled_pairs FROM prompts"), 1, "one labelled pair");
	TAP_IS_INT(queue_len(st, 0), 0, "at overlap 1 it left the queue");

	/* assignments: an annotator with some is offered those only */
	int64_t c3 = 0, z = 0;
	store_completion_add(st, pr, "middle", g, &c3, NULL); /* two more pairs: (c1, c3), (c2, c3) */
	store_annotator az = {.kind = "human", .name = "z"};
	store_annotator_id(st, &az, &z);
	TAP_IS_INT(queue_len(st, z), 2, "z: both open pairs before any assignment");
	const char *team[] = {"x", "z"};
	store_assign_counts *k = xcalloc(1, sizeof *k);
	TAP_IS_INT(store_assign(st, team, 2, 1, NULL, 0, k), STORE_OK, "assign the open pairs to x and z");
	TAP_OK(k->assignments_new == 2 && k->added[0] == 1 && k->added[1] == 1, "one each: %ld %ld %ld",
	       k->assignments_new, k->added[0], k->added[1]);
	int nz = 0;
	store_queue_filter fz = {.annotator_id = z, .max_annotations = 1, .assigned_to = "z"};
	store_queue_foreach(st, &fz, count_pairs_cb, &nz);
	TAP_IS_INT(nz, 1, "z is offered its one pair");
	int ny = 0;
	store_queue_filter fy = {.annotator_id = y, .max_annotations = 1, .assigned_to = "y"};
	store_queue_foreach(st, &fy, count_pairs_cb, &ny);
	TAP_IS_INT(ny, 2, "y, with no assignment, every open pair");
	TAP_IS_INT(store_assign(st, team, 2, 3, NULL, 0, k), STORE_EINVAL, "an overlap above the team: EINVAL");
	free(k);
	char *report = NULL;
	TAP_IS_INT(store_check(st, &report), STORE_OK, "the counters check out");
	free(report);
	store_free(st);
	free(p);
}

static int count_feedback(void *ud, const store_feedback *f)
{
	util_buf *b = ud;
	util_buf_addf(b, "%s%s:%s:%d", b->len ? " " : "", f->prompt_text ? f->prompt_text : "(chat)", f->completion, f->good);
	return 0;
}

/* Ratings and binary feedback (issue #13): the migration before them, what
 * store_add_record checks first (nothing of a bad record is written), and
 * store_derive_pairs' two rules. */
static void test_ratings(void)
{
	char *p = tpath("ratings.db");
	store *st = store_new();
	TAP_IS_INT(store__open_version(st, p, 8), STORE_OK, "build the schema before ratings (version 8)");
	store_free(st);
	st = store_new();
	TAP_IS_INT(store_open(st, p), STORE_OK, "it migrates");
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM ratings") + raw_sql(p, "SELECT count(*) FROM feedback"), 0,
		   "ratings and feedback tables, empty");

	store_rec_completion c[] = {{"five", "m1"}, {"three", "m2"}, {"one", "m3"}};
	store_rec_rating r[] = {{0, "help", 5, 1, 5}, {1, "help", 3, 1, 5}, {2, "help", 1, 1, 5}, {0, "overall", 9, 1, 10}};
	store_rec_feedback fb[] = {{0, 1}, {2, 0}};
	store_record rec = {.prompt_text = "rate me", .completions = c, .ncompletions = 3, .ratings = r, .nratings = 4,
			    .feedback = fb, .nfeedback = 2, .annotator = "gpt-4", .annotator_kind = "judge"};
	store_import_counts k = {0};
	store_begin(st);
	store_rec_rating out[] = {{0, "help", 6, 1, 5}};
	store_record bad = rec;
	bad.ratings = out;
	bad.nratings = 1;
	TAP_IS_INT(store_add_record(st, &bad, "t", NULL, &k), STORE_EINVAL, "a rating outside its scale");
	TAP_OK(strstr(store_errmsg(st), "6 is outside the scale 1..5") != NULL, "says so: %s", store_errmsg(st));
	store_rec_feedback two[] = {{0, 2}};
	bad = rec;
	bad.feedback = two;
	bad.nfeedback = 1;
	TAP_IS_INT(store_add_record(st, &bad, "t", NULL, &k), STORE_EINVAL, "feedback neither good nor bad");
	bad = rec;
	bad.annotator_kind = "robot";
	TAP_IS_INT(store_add_record(st, &bad, "t", NULL, &k), STORE_EINVAL, "an unknown annotator kind");
	TAP_IS_INT(k.records, 0, "none of them was counted (nothing written)");
	TAP_IS_INT(store_add_record(st, &rec, "t", NULL, &k), STORE_OK, "a record with ratings and feedback");
	TAP_IS_INT(store_add_record(st, &rec, "t", NULL, &k), STORE_OK, "again");
	store_commit(st);
	TAP_OK(k.ratings_new == 4 && k.ratings_dup == 4 && k.feedback_new == 2 && k.feedback_dup == 2,
	       "counted: ratings %ld/%ld, feedback %ld/%ld", k.ratings_new, k.ratings_dup, k.feedback_new, k.feedback_dup);
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM ratings r JOIN annotators a ON a.id = r.annotator_id "
			      "WHERE a.name = 'gpt-4' AND a.kind = 'judge'"),
		   4, "by the record's annotator");
	/* the same annotator with another value: a conflict, the first stays */
	store_rec_rating other[] = {{1, "help", 4, 1, 5}};
	store_rec_feedback flip[] = {{0, 0}};
	bad = rec;
	bad.ratings = other;
	bad.nratings = 1;
	bad.feedback = flip;
	bad.nfeedback = 1;
	store_import_counts kk = {0};
	store_begin(st);
	TAP_IS_INT(store_add_record(st, &bad, "t", NULL, &kk), STORE_OK, "another rating and label of the same");
	store_commit(st);
	TAP_OK(kk.ratings_conflict == 1 && kk.ratings_new == 0 && kk.ratings_dup == 0 && kk.feedback_conflict == 1 &&
		       kk.feedback_new == 0,
	       "counted as conflicts: %ld %ld", kk.ratings_conflict, kk.feedback_conflict);
	TAP_IS_INT(raw_sql(p, "SELECT r.value FROM ratings r JOIN completions c ON c.id = r.completion_id "
			      "WHERE c.text = 'three' AND r.aspect = 'help'"),
		   3, "the first rating stays");
	util_buf b = UTIL_BUF_INIT;
	TAP_IS_INT(store_feedback_foreach(st, NULL, count_feedback, &b), STORE_OK, "feedback_foreach");
	TAP_IS_STR(util_buf_str(&b), "rate me:five:1 rate me:one:0", "the feedback, in order");
	util_buf_free(&b);

	store_derive_counts dc;
	store_derive_args da = {.aspect = "help", .min_margin = -1};
	TAP_IS_INT(store_derive_pairs(st, &da, &dc), STORE_EINVAL, "a negative margin");
	da = (store_derive_args){.aspect = "nosuch"};
	TAP_IS_INT(store_derive_pairs(st, &da, &dc), STORE_ENOTFOUND, "an aspect nobody rated");
	TAP_OK(strstr(store_errmsg(st), "the aspects rated are: help, overall") != NULL, "lists them: %s",
	       store_errmsg(st));
	da = (store_derive_args){.aspect = "help", .min_margin = 2, .all = 1, .dry_run = 1};
	TAP_IS_INT(store_derive_pairs(st, &da, &dc), STORE_OK, "all pairs 2 apart, dry run");
	TAP_OK(dc.prompts == 1 && dc.pairs == 3 && dc.pairs_new == 0, "1 prompt, 3 pairs, none written: %ld %ld %ld",
	       dc.prompts, dc.pairs, dc.pairs_new);
	da.min_margin = 3;
	da.dry_run = 0;
	TAP_IS_INT(store_derive_pairs(st, &da, &dc), STORE_OK, "all pairs 3 apart");
	TAP_OK(dc.pairs == 1 && dc.pairs_new == 1, "one: five over one (%ld %ld)", dc.pairs, dc.pairs_new);
	da.all = 0;
	da.min_margin = 0;
	TAP_IS_INT(store_derive_pairs(st, &da, &dc), STORE_OK, "best against one lower");
	TAP_OK(dc.pairs == 1 && dc.pairs_new + dc.pairs_existing == 1, "one pair (%ld)", dc.pairs);
	TAP_IS_INT(raw_sql(p, "SELECT count(*) FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
			      "JOIN completions w ON w.id = (CASE c.verdict WHEN 'a' THEN c.completion_a ELSE c.completion_b END) "
			      "WHERE a.name = 'ratings:help' AND a.kind = 'import' AND w.text = 'five'"),
		   raw_sql(p, "SELECT count(*) FROM comparisons"), "every derived pair prefers the best, by ratings:help");
	char *report = NULL;
	TAP_IS_INT(store_check(st, &report), STORE_OK, "check passes");
	free(report);
	store_free(st);
	free(p);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_open();
	test_open_existing();
	store *st = store_new();
	char *p = tpath("main.db");
	if (store_open(st, p)) {
		printf("Bail out! %s\n", store_errmsg(st));
		return 1;
	}
	test_prompts(st);
	test_records(st);
	test_policies(st);
	test_queue(st);
	test_runs_caches(st);
	test_agreement(st);
	test_stats(st);
	store_free(st);
	test_split();
	test_busy();
	test_run_lifecycle();
	test_scores_v5();
	test_canonical_prompt_v6();
	test_claims();
	test_skip_is_personal();
	test_ratings();
	free(p);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
	free(cmd);
	return tap_done();
}
