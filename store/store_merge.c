/* store_merge.c: bringing another store's data into this one (dpo-db
 * merge), for teams whose annotators work offline on copies.
 *
 * The other store is attached read-only (it is never written) and copied
 * with INSERT ... SELECT inside one write transaction, every row matched by
 * what identifies it rather than by its id, which differs between stores:
 * prompts and completions by content hash, generators by (kind, name,
 * fingerprint, params), annotators by name, runs by (kind, command, start,
 * pid, host) and their order among the runs alike, metrics by (run, name,
 * step), labels by (pair, annotator).
 * So merging twice adds nothing. Temporary tables map the other store's ids
 * to ours. A pair's completions may come in the other order here
 * (completion_a < completion_b holds in each store by id), so a label's
 * verdict, shown order, scores and chosen side are turned with it.
 *
 * A label the same annotator gave the same pair in both stores with another
 * verdict is a conflict: the later one (created_at) is kept, and each is
 * reported. Gold marks (pairs with a known answer) come too, turned with
 * their pair; a pair marked gold in both with other answers stops the
 * merge (neither answer can be taken on trust). So do the import runs'
 * files and provenance, so that dpo-db remove --run takes back here what
 * an import made there added. A dry run does everything and rolls back. */
#include "config.h"
#include "store/store_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Execute one statement and add the rows it changed to *n (n may be NULL). */
static int exec_count(store *st, const char *sql, long *n)
{
	int rc = store__exec(st, sql);
	if (rc == STORE_OK && n)
		*n += sqlite3_changes(st->db);
	return rc;
}

/* A single integer of a query on the attached store (or ours). */
static int query_long(store *st, const char *sql, long long *v)
{
	sqlite3_stmt *s = store__prepare(st, sql);
	if (!s)
		return STORE_ERR;
	int rc = sqlite3_step(s) == SQLITE_ROW ? STORE_OK : store__dberr(st, "read");
	if (rc == STORE_OK)
		*v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc;
}

/* Attach path as "src", read-only (immutable where its -shm cannot be
 * made), and check that it is a dpo store of this schema version. */
static int attach_source(store *st, const char *path)
{
	static const char *const modes[] = {"mode=ro", "immutable=1"};
	int rc = STORE_ERR, notadb = 0;
	for (int i = 0; i < 2 && rc != STORE_OK && !notadb; i++) {
		char *uri = store__file_uri(path, modes[i]);
		sqlite3_stmt *s = store__prepare(st, "ATTACH DATABASE ?1 AS src");
		if (s) {
			sqlite3_bind_text(s, 1, uri, -1, SQLITE_TRANSIENT);
			rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : STORE_ERR;
			notadb = rc != STORE_OK && (sqlite3_errcode(st->db) & 0xff) == SQLITE_NOTADB;
			sqlite3_finalize(s);
		}
		free(uri);
		long long n;
		/* ATTACH succeeds lazily: reading proves the file can be read */
		if (rc == STORE_OK && query_long(st, "SELECT count(*) FROM src.sqlite_master", &n) != STORE_OK) {
			notadb = (sqlite3_errcode(st->db) & 0xff) == SQLITE_NOTADB;
			sqlite3_exec(st->db, "DETACH DATABASE src", NULL, NULL, NULL);
			rc = STORE_ERR;
		}
	}
	if (notadb)
		return store__err(st, STORE_ECORRUPT, "%s: not a dpo database (not an SQLite file, or damaged)", path);
	if (rc != STORE_OK)
		return store__err(st, STORE_ERR, "%s: cannot read it: %s", path, sqlite3_errmsg(st->db));
	long long app = 0, ver = 0;
	if (query_long(st, "PRAGMA src.application_id", &app) || query_long(st, "PRAGMA src.user_version", &ver))
		return store__err(st, STORE_ECORRUPT, "%s: not a dpo database", path);
	if (app != STORE__APPLICATION_ID)
		return store__err(st, STORE_ECORRUPT, "%s: not a dpo database (an SQLite file of another program, "
				  "or not SQLite)", path);
	if (ver != store_schema_version())
		return store__err(st, STORE_EVERSION,
				  "%s: schema version %lld, this store has %d: %s", path, ver, store_schema_version(),
				  ver < store_schema_version() ? "migrate it first (dpo-db --db OTHER init)"
							       : "upgrade dpo to merge it");
	return STORE_OK;
}

/* The rows of the other store, matched to ours (see the top of the file),
 * each statement counting what it added. */
static int copy_rows(store *st, store_merge_counts *k)
{
	long before = 0;
	int rc;
	long long n = 0;
	/* the largest ids before anything comes in: a row above them is one
	 * this merge added (copy_provenance) */
	if ((rc = store__exec(st, "CREATE TEMP TABLE merge_max AS SELECT (SELECT coalesce(max(id), 0) FROM "
				  "main.prompts) AS p, (SELECT coalesce(max(id), 0) FROM main.completions) AS c, "
				  "(SELECT coalesce(max(id), 0) FROM main.comparisons) AS k")))
		return rc;
	if ((rc = query_long(st, "SELECT count(*) FROM src.prompts", &n)))
		return rc;
	before = (long)n;
	if ((rc = exec_count(st, "INSERT INTO main.prompts(hash, kind, content, source, split, created_at) "
				 "SELECT hash, kind, content, source, split, created_at FROM src.prompts WHERE true "
				 "ORDER BY id ON CONFLICT(hash) DO NOTHING",
			     &k->prompts_new)))
		return rc;
	k->prompts_dup += before - k->prompts_new;
	if ((rc = store__exec(st, "CREATE TEMP TABLE merge_p(sid INTEGER PRIMARY KEY, mid INTEGER NOT NULL);"
				  "INSERT INTO merge_p SELECT s.id, m.id FROM src.prompts s "
				  "JOIN main.prompts m ON m.hash = s.hash;"
				  "CREATE TEMP TABLE merge_g(sid INTEGER PRIMARY KEY, mid INTEGER NOT NULL);"
				  "CREATE TEMP TABLE merge_c(sid INTEGER PRIMARY KEY, mid INTEGER NOT NULL);"
				  "CREATE TEMP TABLE merge_a(sid INTEGER PRIMARY KEY, mid INTEGER NOT NULL);"
				  "CREATE TEMP TABLE merge_r(sid INTEGER PRIMARY KEY, mid INTEGER NOT NULL);")))
		return rc;
	if ((rc = exec_count(st, "INSERT INTO main.generators(kind, name, fingerprint, params, created_at) "
				 "SELECT kind, name, fingerprint, params, created_at FROM src.generators WHERE true "
				 "ORDER BY id ON CONFLICT(kind, name, fingerprint, params) DO NOTHING",
			     NULL)) ||
	    (rc = store__exec(st, "INSERT INTO merge_g SELECT s.id, m.id FROM src.generators s "
				  "JOIN main.generators m ON m.kind = s.kind AND m.name = s.name "
				  "AND m.fingerprint = s.fingerprint AND m.params = s.params")))
		return rc;
	if ((rc = query_long(st, "SELECT count(*) FROM src.completions", &n)))
		return rc;
	before = (long)n;
	if ((rc = exec_count(st, "INSERT INTO main.completions(prompt_id, hash, text, generator_id, created_at) "
				 "SELECT p.mid, c.hash, c.text, g.mid, c.created_at FROM src.completions c "
				 "JOIN merge_p p ON p.sid = c.prompt_id JOIN merge_g g ON g.sid = c.generator_id "
				 "WHERE true ORDER BY c.id ON CONFLICT(prompt_id, hash) DO NOTHING",
			     &k->completions_new)))
		return rc;
	k->completions_dup += before - k->completions_new;
	if ((rc = store__exec(st, "INSERT INTO merge_c SELECT c.id, m.id FROM src.completions c "
				  "JOIN merge_p p ON p.sid = c.prompt_id "
				  "JOIN main.completions m ON m.prompt_id = p.mid AND m.hash = c.hash")) ||
	    /* every generator a completion is credited to, here and there */
	    (rc = store__exec(st, "INSERT INTO main.completion_generators(completion_id, generator_id) "
				  "SELECT c.mid, g.mid FROM src.completion_generators x JOIN merge_c c ON c.sid = "
				  "x.completion_id JOIN merge_g g ON g.sid = x.generator_id WHERE true "
				  "ON CONFLICT(completion_id, generator_id) DO NOTHING")) ||
	    (rc = exec_count(st, "INSERT INTO main.annotators(kind, name, provider, model, template_hash, params, "
				 "created_at) SELECT kind, name, provider, model, template_hash, params, created_at "
				 "FROM src.annotators WHERE true ORDER BY id ON CONFLICT(name) DO NOTHING",
			     &k->annotators_new)) ||
	    (rc = store__exec(st, "INSERT INTO merge_a SELECT s.id, m.id FROM src.annotators s "
				  "JOIN main.annotators m ON m.name = s.name")))
		return rc;
	/* runs: a run is the same where kind, command, start and process are,
	 * and its place among the runs those have alike (one import of
	 * several files makes a run per file, all alike) */
	if ((rc = store__exec(st, "CREATE TEMP TABLE merge_rs AS SELECT id, kind, command, started_at, pid, host, "
				  "row_number() OVER (PARTITION BY kind, command, started_at, pid, host ORDER BY id) "
				  "AS k FROM src.runs;"
				  "CREATE TEMP TABLE merge_rm AS SELECT id, kind, command, started_at, pid, host, "
				  "row_number() OVER (PARTITION BY kind, command, started_at, pid, host ORDER BY id) "
				  "AS k FROM main.runs")) ||
	    (rc = exec_count(st, "INSERT INTO main.runs(kind, command, params, started_at, ended_at, status, summary, "
				 "pid, host, proc_start) SELECT s.kind, s.command, s.params, s.started_at, s.ended_at, "
				 "s.status, s.summary, s.pid, s.host, s.proc_start FROM src.runs s JOIN merge_rs r ON "
				 "r.id = s.id WHERE NOT EXISTS (SELECT 1 FROM merge_rm m WHERE m.kind = r.kind AND "
				 "m.command = r.command AND m.started_at = r.started_at AND m.pid IS r.pid AND "
				 "m.host IS r.host AND m.k = r.k) ORDER BY s.id",
			     &k->runs_new)) ||
	    /* the new ones come last in their groups, in the other's order */
	    (rc = store__exec(st, "INSERT INTO merge_r SELECT r.id, m.id FROM merge_rs r JOIN (SELECT id, kind, "
				  "command, started_at, pid, host, row_number() OVER (PARTITION BY kind, command, "
				  "started_at, pid, host ORDER BY id) AS k FROM main.runs) m ON m.kind = r.kind AND "
				  "m.command = r.command AND m.started_at = r.started_at AND m.pid IS r.pid AND "
				  "m.host IS r.host AND m.k = r.k")) ||
	    (rc = exec_count(st, "INSERT INTO main.metrics(run_id, step, name, value) SELECT r.mid, x.step, x.name, "
				 "x.value FROM src.metrics x JOIN merge_r r ON r.sid = x.run_id WHERE true "
				 "ON CONFLICT(run_id, name, step) DO NOTHING",
			     &k->metrics_new)))
		return rc;
	/* ratings and binary feedback: one per (completion, annotator[,
	 * aspect]); where both stores have one, ours stays, and where theirs
	 * says otherwise that is counted (as an import counts it) */
	if ((rc = query_long(st, "SELECT count(*) FROM src.ratings x JOIN merge_c c ON c.sid = x.completion_id "
				 "JOIN merge_a a ON a.sid = x.annotator_id JOIN main.ratings m ON m.completion_id = "
				 "c.mid AND m.annotator_id = a.mid AND m.aspect = x.aspect WHERE m.value <> x.value OR "
				 "m.scale_min <> x.scale_min OR m.scale_max <> x.scale_max",
			     &n)))
		return rc;
	k->ratings_conflict = (long)n;
	if ((rc = query_long(st, "SELECT count(*) FROM src.feedback x JOIN merge_c c ON c.sid = x.completion_id "
				 "JOIN merge_a a ON a.sid = x.annotator_id JOIN main.feedback m ON m.completion_id = "
				 "c.mid AND m.annotator_id = a.mid WHERE m.good <> x.good",
			     &n)))
		return rc;
	k->feedback_conflict = (long)n;
	if ((rc = exec_count(st, "INSERT INTO main.ratings(completion_id, annotator_id, aspect, value, scale_min, "
				 "scale_max, run_id, created_at) SELECT c.mid, a.mid, x.aspect, x.value, x.scale_min, "
				 "x.scale_max, r.mid, x.created_at FROM src.ratings x JOIN merge_c c ON c.sid = "
				 "x.completion_id JOIN merge_a a ON a.sid = x.annotator_id LEFT JOIN merge_r r ON "
				 "r.sid = x.run_id WHERE true ON CONFLICT(completion_id, annotator_id, aspect) DO NOTHING",
			     &k->ratings_new)) ||
	    (rc = exec_count(st, "INSERT INTO main.feedback(prompt_id, completion_id, annotator_id, good, run_id, "
				 "created_at) SELECT p.mid, c.mid, a.mid, x.good, r.mid, x.created_at FROM src.feedback x "
				 "JOIN merge_p p ON p.sid = x.prompt_id JOIN merge_c c ON c.sid = x.completion_id "
				 "JOIN merge_a a ON a.sid = x.annotator_id LEFT JOIN merge_r r ON r.sid = x.run_id "
				 "WHERE true ON CONFLICT(completion_id, annotator_id) DO NOTHING",
			     &k->feedback_new)))
		return rc;
	return STORE_OK;
}

/* The other store's gold marks in our ids and pair order (a subquery of
 * copy_gold's two statements). */
#define GOLD_INCOMING                                                                                          \
	"SELECT p.mid AS prompt_id, min(ca.mid, cb.mid) AS completion_a, max(ca.mid, cb.mid) AS completion_b, " \
	"CASE WHEN ca.mid > cb.mid THEN (CASE x.answer WHEN 'a' THEN 'b' ELSE 'a' END) ELSE x.answer END "     \
	"AS answer, x.source, x.created_at FROM src.gold x JOIN merge_p p ON p.sid = x.prompt_id "             \
	"JOIN merge_c ca ON ca.sid = x.completion_a JOIN merge_c cb ON cb.sid = x.completion_b"

/* The other store's gold marks in our ids and pair order (the answer, 'a'
 * or 'b' for the better completion, turned with its pair); a pair marked
 * here with the other answer fails the whole merge, naming it. Gold marks
 * keep their pairs out of exports, training and the agreement: dropped,
 * their labels would pass for ordinary ones here. */
static int copy_gold(store *st, store_merge_counts *k)
{
	sqlite3_stmt *s = store__prepare(
		st, "SELECT g.prompt_id, lower(hex(q.hash)), CASE m.answer WHEN 'a' THEN m.completion_a ELSE "
		    "m.completion_b END, CASE g.answer WHEN 'a' THEN g.completion_a ELSE g.completion_b END "
		    "FROM (" GOLD_INCOMING ") g JOIN main.gold m ON m.completion_a = g.completion_a AND "
		    "m.completion_b = g.completion_b JOIN main.prompts q ON q.id = g.prompt_id "
		    "WHERE m.answer <> g.answer ORDER BY g.prompt_id LIMIT 1");
	if (!s)
		return STORE_ERR;
	int step = sqlite3_step(s), rc = STORE_OK;
	if (step == SQLITE_ROW)
		rc = store__err(st, STORE_EINVAL,
				"a gold item of prompt %lld (%.12s) has completion %lld as the better one here and "
				"completion %lld there (ids of this store); correct the wrong one first",
				(long long)sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
				(long long)sqlite3_column_int64(s, 2), (long long)sqlite3_column_int64(s, 3));
	else if (step != SQLITE_DONE)
		rc = store__dberr(st, "read gold items");
	sqlite3_finalize(s);
	if (rc)
		return rc;
	return exec_count(st, "INSERT INTO main.gold(completion_a, completion_b, prompt_id, answer, source, "
			      "created_at) SELECT completion_a, completion_b, prompt_id, answer, source, created_at "
			      "FROM (" GOLD_INCOMING ") WHERE true ON CONFLICT(completion_a, completion_b) DO NOTHING",
			  &k->gold_new);
}

/* The other store's labels in our ids and pair order (merge_l), a label
 * turned where its pair's completions come in the other order here. */
static int incoming_labels(store *st)
{
	return store__exec(
		st,
		"CREATE TEMP TABLE merge_l AS SELECT x.id AS sid, p.mid AS prompt_id, "
		"min(ca.mid, cb.mid) AS completion_a, max(ca.mid, cb.mid) AS completion_b, "
		"a.mid AS annotator_id, ca.mid > cb.mid AS turned, "
		"CASE WHEN ca.mid > cb.mid AND x.verdict = 'a' THEN 'b' WHEN ca.mid > cb.mid AND x.verdict = 'b' "
		"THEN 'a' ELSE x.verdict END AS verdict, "
		"CASE WHEN ca.mid > cb.mid AND x.shown_first = 'a' THEN 'b' WHEN ca.mid > cb.mid AND "
		"x.shown_first = 'b' THEN 'a' ELSE x.shown_first END AS shown_first, "
		"x.rationale, x.confidence, x.duration_ms, x.inconsistent, r.mid AS run_id, x.created_at, "
		"CASE WHEN ca.mid > cb.mid THEN x.score_b ELSE x.score_a END AS score_a, "
		"CASE WHEN ca.mid > cb.mid THEN x.score_a ELSE x.score_b END AS score_b, "
		"CASE WHEN ca.mid > cb.mid AND x.source_chosen = 'a' THEN 'b' WHEN ca.mid > cb.mid AND "
		"x.source_chosen = 'b' THEN 'a' ELSE x.source_chosen END AS source_chosen "
		"FROM src.comparisons x JOIN merge_p p ON p.sid = x.prompt_id "
		"JOIN merge_c ca ON ca.sid = x.completion_a JOIN merge_c cb ON cb.sid = x.completion_b "
		"JOIN merge_a a ON a.sid = x.annotator_id LEFT JOIN merge_r r ON r.sid = x.run_id");
}

/* Report each conflict (same annotator and pair, another verdict) to cb,
 * then keep the later label of each. */
static int resolve_conflicts(store *st, const char *path, store_merge_counts *k, store_merge_conflict_cb cb,
			     void *ud)
{
	sqlite3_stmt *s = store__prepare(
		st, "SELECT x.name, p.id, lower(hex(p.hash)), m.verdict, m.created_at, l.verdict, l.created_at, "
		    "l.created_at > m.created_at FROM merge_l l JOIN main.comparisons m ON m.prompt_id = l.prompt_id "
		    "AND m.completion_a = l.completion_a AND m.completion_b = l.completion_b "
		    "AND m.annotator_id = l.annotator_id JOIN main.annotators x ON x.id = l.annotator_id "
		    "JOIN main.prompts p ON p.id = l.prompt_id WHERE m.verdict <> l.verdict ORDER BY p.id, x.name");
	if (!s)
		return STORE_ERR;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		k->comparisons_conflict++;
		int theirs = sqlite3_column_int(s, 7);
		k->conflicts_taken += theirs;
		if (cb) {
			store_merge_conflict c = {
				.annotator = (const char *)sqlite3_column_text(s, 0),
				.prompt_id = sqlite3_column_int64(s, 1),
				.prompt_hash = (const char *)sqlite3_column_text(s, 2),
				.here_verdict = (const char *)sqlite3_column_text(s, 3),
				.here_at = (const char *)sqlite3_column_text(s, 4),
				.other_verdict = (const char *)sqlite3_column_text(s, 5),
				.other_at = (const char *)sqlite3_column_text(s, 6),
				.other_path = path,
				.kept_other = theirs,
			};
			cb(ud, &c);
		}
	}
	int rc = step == SQLITE_DONE ? STORE_OK : store__dberr(st, "read conflicts");
	sqlite3_finalize(s);
	if (rc)
		return rc;
	/* the later label wins: ours goes where theirs is later */
	return store__exec(st, "DELETE FROM main.comparisons WHERE id IN (SELECT m.id FROM merge_l l "
			       "JOIN main.comparisons m ON m.prompt_id = l.prompt_id AND m.completion_a = "
			       "l.completion_a AND m.completion_b = l.completion_b AND m.annotator_id = "
			       "l.annotator_id WHERE m.verdict <> l.verdict AND l.created_at > m.created_at)");
}

/* Add the labels we lack, then recount the prompts' counters (completions,
 * and pairs with a human or import label) of every prompt touched. */
static int add_labels(store *st, store_merge_counts *k)
{
	long long total = 0;
	/* the largest label id now, after the conflicts took some of ours
	 * away (an id freed at the top is given again): a label above it is
	 * one this merge added (copy_provenance) */
	int rc = store__exec(st, "UPDATE merge_max SET k = (SELECT coalesce(max(id), 0) FROM main.comparisons)");
	if (!rc)
		rc = query_long(st, "SELECT count(*) FROM merge_l", &total);
	long added = 0;
	if (rc ||
	    (rc = exec_count(st, "INSERT INTO main.comparisons(prompt_id, completion_a, completion_b, annotator_id, "
				 "verdict, shown_first, rationale, confidence, duration_ms, inconsistent, run_id, "
				 "created_at, score_a, score_b, source_chosen) SELECT prompt_id, completion_a, "
				 "completion_b, annotator_id, verdict, shown_first, rationale, confidence, duration_ms, "
				 "inconsistent, run_id, created_at, score_a, score_b, source_chosen FROM merge_l "
				 "WHERE true ON CONFLICT(prompt_id, completion_a, completion_b, annotator_id) DO NOTHING",
			     &added)))
		return rc;
	k->comparisons_new += added - k->conflicts_taken;
	k->comparisons_dup += (long)total - added - (k->comparisons_conflict - k->conflicts_taken);
	return store__exec(st, "UPDATE main.prompts SET n_completions = " STORE__N_COMPLETIONS_SQL("prompts.id")
			       ", n_labeled_pairs = " STORE__N_LABELED_PAIRS_SQL("prompts.id")
			       " WHERE id IN (SELECT mid FROM merge_p)");
}

/* The import runs' files and provenance (which record of which file
 * added or referred to each row: what store_remove takes back for a run)
 * of the runs that have none here yet, in our ids: a row that was here
 * before the merge counts as referred to, not added (merge_max); a label
 * whose conflict kept ours (another verdict) is left out of its record,
 * and a record left with nothing goes. Runs: copy_rows;
 * labels: add_labels (both before). */
static int copy_provenance(store *st)
{
	return store__exec(
		st,
		"CREATE TEMP TABLE merge_k(sid INTEGER PRIMARY KEY, mid INTEGER NOT NULL);"
		"INSERT INTO merge_k SELECT l.sid, m.id FROM merge_l l JOIN main.comparisons m ON m.prompt_id = "
		"l.prompt_id AND m.completion_a = l.completion_a AND m.completion_b = l.completion_b AND "
		"m.annotator_id = l.annotator_id AND m.verdict = l.verdict;"
		"CREATE TEMP TABLE merge_pr(sid INTEGER PRIMARY KEY, mid INTEGER NOT NULL);"
		"INSERT INTO merge_pr SELECT r.sid, r.mid FROM merge_r r WHERE EXISTS (SELECT 1 FROM "
		"src.provenance_records x WHERE x.run_id = r.sid) AND NOT EXISTS (SELECT 1 FROM "
		"main.provenance_records m WHERE m.run_id = r.mid);"
		"INSERT INTO main.import_files(run_id, path, size, sha256, format, source, split) SELECT r.mid, "
		"x.path, x.size, x.sha256, x.format, x.source, x.split FROM src.import_files x JOIN merge_r r ON "
		"r.sid = x.run_id WHERE true ON CONFLICT(run_id) DO NOTHING;"
		"INSERT INTO main.provenance_records(run_id, line, record_id, prompt_id, prompt_created, items) "
		"SELECT r.mid, x.line, x.record_id, p.mid, CASE WHEN p.mid > (SELECT p FROM merge_max) THEN "
		"x.prompt_created ELSE 0 END, (SELECT json_group_array(json(CASE WHEN i.n > 3 THEN "
		"json_array(i.kind, i.id, i.created, i.gen) ELSE json_array(i.kind, i.id, i.created) END)) FROM "
		"(SELECT json_extract(j.value, '$[0]') AS kind, json_array_length(j.value) AS n, "
		"CASE json_extract(j.value, '$[0]') WHEN 1 THEN c.mid ELSE q.mid END AS id, "
		"CASE WHEN (json_extract(j.value, '$[0]') = 1 AND c.mid > (SELECT c FROM merge_max)) OR "
		"(json_extract(j.value, '$[0]') = 2 AND q.mid > (SELECT k FROM merge_max)) THEN "
		"json_extract(j.value, '$[2]') ELSE 0 END AS created, g.mid AS gen "
		"FROM json_each(x.items) j "
		"LEFT JOIN merge_c c ON json_extract(j.value, '$[0]') = 1 AND c.sid = json_extract(j.value, '$[1]') "
		"LEFT JOIN merge_k q ON json_extract(j.value, '$[0]') = 2 AND q.sid = json_extract(j.value, '$[1]') "
		"LEFT JOIN merge_g g ON g.sid = json_extract(j.value, '$[3]') ORDER BY j.key) i "
		"WHERE i.id IS NOT NULL) FROM src.provenance_records x JOIN merge_pr r ON r.sid = x.run_id "
		"LEFT JOIN merge_p p ON p.sid = x.prompt_id ORDER BY x.rowid;"
		"DELETE FROM main.provenance_records WHERE run_id IN (SELECT mid FROM merge_pr) AND prompt_id IS NULL "
		"AND items = '[]'");
}

int store_merge(store *st, const char *path, int dry_run, store_merge_counts *k, store_merge_conflict_cb cb,
		void *ud)
{
	if (!st->db || !path || !k)
		return store__err(st, STORE_EINVAL, "store_merge: the store is not open, or no path");
	if (!sqlite3_get_autocommit(st->db))
		return store__err(st, STORE_EINVAL, "store_merge: not inside a transaction");
	memset(k, 0, sizeof *k);
	int rc = attach_source(st, path), attached = rc == STORE_OK || rc == STORE_ECORRUPT || rc == STORE_EVERSION;
	if (rc)
		goto out;
	if ((rc = store_begin(st)))
		goto out;
	if ((rc = copy_rows(st, k)) || (rc = copy_gold(st, k)) || (rc = incoming_labels(st)) ||
	    (rc = resolve_conflicts(st, path, k, cb, ud)) || (rc = add_labels(st, k)) ||
	    (rc = copy_provenance(st))) {
		char msg[sizeof st->err];
		snprintf(msg, sizeof msg, "%s", st->err);
		store_rollback(st);
		store__err(st, rc, "%s: merging failed: %s", path, msg);
		goto out;
	}
	rc = dry_run ? store_rollback(st) : store_commit(st);
out:
	if (sqlite3_get_autocommit(st->db)) {
		store__exec(st, "DROP TABLE IF EXISTS temp.merge_p; DROP TABLE IF EXISTS temp.merge_g; "
				"DROP TABLE IF EXISTS temp.merge_c; DROP TABLE IF EXISTS temp.merge_a; "
				"DROP TABLE IF EXISTS temp.merge_r; DROP TABLE IF EXISTS temp.merge_l; "
				"DROP TABLE IF EXISTS temp.merge_max; DROP TABLE IF EXISTS temp.merge_k; "
				"DROP TABLE IF EXISTS temp.merge_pr; DROP TABLE IF EXISTS temp.merge_rs; "
				"DROP TABLE IF EXISTS temp.merge_rm");
		if (attached) {
			char keep[sizeof st->err];
			snprintf(keep, sizeof keep, "%s", st->err);
			sqlite3_exec(st->db, "DETACH DATABASE src", NULL, NULL, NULL);
			snprintf(st->err, sizeof st->err, "%s", keep);
		}
	}
	return rc;
}
