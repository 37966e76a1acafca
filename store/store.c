/* store.c: opening the store (schema, migrations, pragmas), the statement
 * cache, errors, transactions, the two caches, integrity checks and splits
 * (runs and metrics: store_runs.c). */
#include "config.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "DPO1": marks a file as a dpo database (PRAGMA application_id). */
#define STORE_APPLICATION_ID STORE__APPLICATION_ID
#define STORE_BUSY_MS 30000
/* Page size of new databases (existing ones keep theirs). */
#define STORE_PAGE_SIZE_STR "32768"

/* ---- schema ------------------------------------------------------------- */

/* Migration step i brings a database from version i to version i + 1. Never
 * edit a released step: add a new one. */
static const char *const MIGRATIONS[] = {
	/* 0 -> 1: the core tables. */
	"CREATE TABLE meta(\n"
	"  key TEXT PRIMARY KEY,\n"
	"  value TEXT NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE prompts(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  hash BLOB NOT NULL UNIQUE,\n" /* SHA-256, 32 bytes */
	"  kind TEXT NOT NULL CHECK (kind IN ('text', 'chat')),\n"
	"  content TEXT NOT NULL,\n"
	"  source TEXT NOT NULL,\n"
	"  split TEXT NOT NULL DEFAULT 'train',\n"
	"  created_at TEXT NOT NULL,\n"
	/* maintained by the store: how many completions, and how many of
	 * their pairs carry a human or import comparison */
	"  n_completions INTEGER NOT NULL DEFAULT 0,\n"
	"  n_labeled_pairs INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE INDEX prompts_split ON prompts(split, id);\n"
	"CREATE INDEX prompts_source ON prompts(source, id);\n"
	/* prompts with a pair nobody (human or import) labelled: the
	 * annotation queue finds the next one without scanning */
	"CREATE INDEX prompts_open ON prompts(id)\n"
	"  WHERE n_labeled_pairs < n_completions * (n_completions - 1) / 2;\n"
	"CREATE TABLE generators(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  kind TEXT NOT NULL CHECK (kind IN ('model', 'import')),\n"
	"  name TEXT NOT NULL,\n"
	"  fingerprint TEXT NOT NULL DEFAULT '',\n"
	"  params TEXT NOT NULL DEFAULT '',\n"
	"  created_at TEXT NOT NULL,\n"
	"  UNIQUE (kind, name, fingerprint, params)\n"
	");\n"
	"CREATE TABLE completions(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,\n"
	"  hash BLOB NOT NULL,\n" /* SHA-256 of text, 32 bytes */
	"  text TEXT NOT NULL,\n"
	"  generator_id INTEGER NOT NULL REFERENCES generators(id),\n"
	"  created_at TEXT NOT NULL,\n"
	"  UNIQUE (prompt_id, hash)\n"
	");\n"
	"CREATE TABLE annotators(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  kind TEXT NOT NULL CHECK (kind IN ('human', 'judge', 'import')),\n"
	"  name TEXT NOT NULL UNIQUE,\n"
	"  provider TEXT,\n"
	"  model TEXT,\n"
	"  template_hash TEXT,\n"
	"  params TEXT,\n"
	"  created_at TEXT NOT NULL\n"
	");\n"
	"CREATE TABLE runs(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  kind TEXT NOT NULL,\n"
	"  command TEXT NOT NULL,\n"
	"  params TEXT,\n"
	"  started_at TEXT NOT NULL,\n"
	"  ended_at TEXT,\n"
	"  status TEXT NOT NULL DEFAULT 'running'\n"
	"    CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),\n"
	"  summary TEXT\n"
	");\n"
	"CREATE TABLE metrics(\n"
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  step INTEGER NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  value REAL,\n"
	"  PRIMARY KEY (run_id, name, step)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE comparisons(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,\n"
	"  completion_a INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  completion_b INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  annotator_id INTEGER NOT NULL REFERENCES annotators(id),\n"
	"  verdict TEXT NOT NULL CHECK (verdict IN ('a', 'b', 'tie', 'both_bad', 'skip')),\n"
	"  shown_first TEXT CHECK (shown_first IN ('a', 'b')),\n"
	"  rationale TEXT,\n"
	"  confidence REAL,\n"
	"  duration_ms INTEGER,\n"
	"  inconsistent INTEGER NOT NULL DEFAULT 0,\n"
	"  run_id INTEGER REFERENCES runs(id),\n"
	"  created_at TEXT NOT NULL,\n"
	"  CHECK (completion_a < completion_b),\n"
	"  UNIQUE (annotator_id, completion_a, completion_b)\n"
	");\n"
	"CREATE INDEX comparisons_pair ON comparisons(prompt_id, completion_a, completion_b);\n",

	/* 1 -> 2: the judge's request cache and the trainer's reference
	 * log-prob cache. */
	"CREATE TABLE request_cache(\n"
	"  hash TEXT PRIMARY KEY,\n"
	"  response TEXT NOT NULL,\n"
	"  meta TEXT,\n"
	"  created_at TEXT NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE reflogp_cache(\n"
	"  ref_fingerprint TEXT NOT NULL,\n"
	"  tok_fingerprint TEXT NOT NULL,\n"
	"  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,\n"
	"  completion_id INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  logp REAL NOT NULL,\n"
	"  ntokens INTEGER NOT NULL,\n"
	"  created_at TEXT NOT NULL,\n"
	"  PRIMARY KEY (ref_fingerprint, tok_fingerprint, prompt_id, completion_id)\n"
	") WITHOUT ROWID;\n",

	/* 2 -> 3: fewer indexes to maintain on imports. A comparison is
	 * unique by (prompt, a, b, annotator) -- the same rows as by (annotator,
	 * a, b), since a completion has one prompt -- so the one key also
	 * serves the per-prompt and per-pair lookups that comparisons_pair
	 * served. The verdict check is spelled with OR: SQLite evaluates an IN
	 * list of more than two constants through a temporary B-tree built
	 * for every row. prompts_split and prompts_source go: the queries filter
	 * by split or source with (?n IS NULL OR col = ?n), which cannot use
	 * them, and the per-split and per-source stats scan anyway. */
	"CREATE TABLE comparisons_v3(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,\n"
	"  completion_a INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  completion_b INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  annotator_id INTEGER NOT NULL REFERENCES annotators(id),\n"
	"  verdict TEXT NOT NULL CHECK (verdict = 'a' OR verdict = 'b' OR verdict = 'tie' "
	"OR verdict = 'both_bad' OR verdict = 'skip'),\n"
	"  shown_first TEXT CHECK (shown_first IN ('a', 'b')),\n"
	"  rationale TEXT,\n"
	"  confidence REAL,\n"
	"  duration_ms INTEGER,\n"
	"  inconsistent INTEGER NOT NULL DEFAULT 0,\n"
	"  run_id INTEGER REFERENCES runs(id),\n"
	"  created_at TEXT NOT NULL,\n"
	"  CHECK (completion_a < completion_b),\n"
	"  UNIQUE (prompt_id, completion_a, completion_b, annotator_id)\n"
	");\n"
	"INSERT INTO comparisons_v3 SELECT id, prompt_id, completion_a, completion_b, annotator_id, verdict, "
	"shown_first, rationale, confidence, duration_ms, inconsistent, run_id, created_at FROM comparisons;\n"
	"DROP TABLE comparisons;\n"
	"ALTER TABLE comparisons_v3 RENAME TO comparisons;\n"
	"DROP INDEX prompts_source;\n"
	"DROP INDEX prompts_split;\n",

	/* 3 -> 4: who runs a run, so that a reader can tell a run whose
	 * process is gone (killed, crashed) from one still going: the process
	 * id, the host name, and a token of the process's start (boot id and
	 * start time, so that a reused pid does not pass for the run's
	 * process). NULL in runs recorded before. */
	"ALTER TABLE runs ADD COLUMN pid INTEGER;\n"
	"ALTER TABLE runs ADD COLUMN host TEXT;\n"
	"ALTER TABLE runs ADD COLUMN proc_start TEXT;\n",

	/* 4 -> 5: the scores an import gave the two sides of a comparison
	 * (UltraFeedback's score_chosen/score_rejected, or the mean ratings of
	 * its raw rows): score_a of completion_a, score_b of completion_b; and
	 * which side the file called chosen ('a' or 'b'), so that a tie from
	 * equal scores keeps the file's order. NULL where the source gave none
	 * (and in every comparison made before). */
	"ALTER TABLE comparisons ADD COLUMN score_a REAL;\n"
	"ALTER TABLE comparisons ADD COLUMN score_b REAL;\n"
	"ALTER TABLE comparisons ADD COLUMN source_chosen TEXT CHECK (source_chosen IN ('a', 'b'));\n",

	/* 5 -> 6: one canonical form for a prompt's fingerprint: a
	 * conversation of one user message has the fingerprint of its text, so
	 * "Hi" and [user: "Hi"] are one prompt (dpo_text_prompt_hash is the
	 * store's function, registered on every connection). A conversation
	 * whose text is already stored as a text prompt keeps its old
	 * fingerprint: the two stay two prompts, as they were. */
	"UPDATE prompts SET hash = dpo_text_prompt_hash(json_extract(content, '$[0].content'))\n"
	"  WHERE kind = 'chat' AND json_array_length(content) = 1\n"
	"    AND json_extract(content, '$[0].role') = 'user'\n"
	"    AND json_type(content, '$[0].content') = 'text'\n"
	"    AND NOT EXISTS (SELECT 1 FROM prompts t\n"
	"      WHERE t.hash = dpo_text_prompt_hash(json_extract(prompts.content, '$[0].content')));\n",

	/* 6 -> 7: claims on pairs (store_claims.c), so that concurrent
	 * annotation sessions and judge runs share one queue: the pair, the
	 * scope whose labels count against the overlap ('human' or a judge's
	 * annotator name), the owner, the owning process (as runs keep it) and
	 * the expiry in seconds since the epoch. */
	"CREATE TABLE claims(\n"
	"  completion_a INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  completion_b INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  scope TEXT NOT NULL,\n"
	"  owner TEXT NOT NULL,\n"
	"  pid INTEGER,\n"
	"  host TEXT,\n"
	"  proc_start TEXT,\n"
	"  expires_at REAL NOT NULL,\n"
	"  CHECK (completion_a < completion_b),\n"
	"  PRIMARY KEY (completion_a, completion_b, scope, owner)\n"
	");\n"
	"CREATE INDEX claims_owner ON claims(owner, pid);\n",

	/* 7 -> 8: a skip is the skipper's alone, no label for the others: the
	 * pairs counted in n_labeled_pairs no longer include those with only
	 * skips (recounted where a skip exists); and pre-assigned work (dpo-db
	 * assign): which annotator is to label which pair. */
	"UPDATE prompts SET n_labeled_pairs = (SELECT count(*) FROM (SELECT DISTINCT x.completion_a, "
	"x.completion_b FROM comparisons x JOIN annotators a ON a.id = x.annotator_id "
	"WHERE x.prompt_id = prompts.id AND a.kind <> 'judge' AND x.verdict <> 'skip')) "
	"WHERE id IN (SELECT prompt_id FROM comparisons WHERE verdict = 'skip');\n"
	"CREATE TABLE assignments(\n"
	"  completion_a INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  completion_b INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  annotator TEXT NOT NULL,\n"
	"  created_at TEXT NOT NULL,\n"
	"  CHECK (completion_a < completion_b),\n"
	"  PRIMARY KEY (annotator, completion_a, completion_b)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX assignments_pair ON assignments(completion_a, completion_b);\n",

	/* 8 -> 9: labels that are not comparisons. ratings: numeric scores an
	 * annotator gave one completion on one aspect, with the scale they are
	 * on (UltraFeedback's 1..5 per aspect, MT-Bench's 1..10 single
	 * grading); one per (completion, annotator, aspect). feedback: binary
	 * feedback on one completion (KTO's unpaired preference: good 1 or 0);
	 * one per (completion, annotator). */
	"CREATE TABLE ratings(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  completion_id INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  annotator_id INTEGER NOT NULL REFERENCES annotators(id),\n"
	"  aspect TEXT NOT NULL,\n"
	"  value REAL NOT NULL,\n"
	"  scale_min REAL NOT NULL,\n"
	"  scale_max REAL NOT NULL,\n"
	"  run_id INTEGER REFERENCES runs(id),\n"
	"  created_at TEXT NOT NULL,\n"
	"  CHECK (scale_min < scale_max AND value >= scale_min AND value <= scale_max),\n"
	"  UNIQUE (completion_id, annotator_id, aspect)\n"
	");\n"
	"CREATE INDEX ratings_aspect ON ratings(aspect, completion_id);\n"
	"CREATE TABLE feedback(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,\n"
	"  completion_id INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  annotator_id INTEGER NOT NULL REFERENCES annotators(id),\n"
	"  good INTEGER NOT NULL CHECK (good IN (0, 1)),\n"
	"  run_id INTEGER REFERENCES runs(id),\n"
	"  created_at TEXT NOT NULL,\n"
	"  UNIQUE (completion_id, annotator_id)\n"
	");\n",

	/* 9 -> 10: a completion can have several generators: two models (or
	 * files) that gave the same text for one prompt are both credited.
	 * completions.generator_id stays the first; this table holds every
	 * generator, the first included (filled from completions here). */
	"CREATE TABLE completion_generators(\n"
	"  completion_id INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  generator_id INTEGER NOT NULL REFERENCES generators(id),\n"
	"  PRIMARY KEY (completion_id, generator_id)\n"
	") WITHOUT ROWID;\n"
	"INSERT INTO completion_generators(completion_id, generator_id) SELECT id, generator_id FROM completions;\n",

	/* 10 -> 11: provenance (store_provenance.c). import_files: the file an
	 * import run read (absolute path, size and SHA-256 of its bytes, NULL
	 * for standard input), the format used, and the source and split it
	 * gave. provenance: one row per record and row it referred to (a
	 * prompt, completion or comparison): the run, the line (record index
	 * in a JSON array), the file's own id of the record, whether the
	 * record added the row, and for a completion the generator it
	 * credited. No index: an import appends to it at the cost of a rowid
	 * insert; store_remove, the only reader that searches it, scans it
	 * once per question into temporary tables. */
	"CREATE TABLE import_files(\n"
	"  run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  path TEXT NOT NULL,\n"
	"  size INTEGER,\n"
	"  sha256 TEXT,\n"
	"  format TEXT,\n"
	"  source TEXT NOT NULL,\n"
	"  split TEXT NOT NULL\n"
	");\n"
	"CREATE TABLE provenance(\n"
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  kind TEXT NOT NULL CHECK (kind = 'prompt' OR kind = 'completion' OR kind = 'comparison'),\n"
	"  row_id INTEGER NOT NULL,\n"
	"  line INTEGER NOT NULL,\n"
	"  record_id TEXT,\n"
	"  created INTEGER NOT NULL DEFAULT 0,\n"
	"  generator_id INTEGER\n"
	");\n",

	/* 11 -> 12: spending human time where it matters (store_gold.c).
	 * margin_cache: the DPO implicit-reward margin of a pair under a
	 * policy and its reference (beta left out: (log pi(a) - log ref(a)) -
	 * (log pi(b) - log ref(b)) of the summed completion log-probs), keyed
	 * by the pair and the fingerprints of both models and of the
	 * tokenization, so dpo-annotate --order uncertain computes it once.
	 * gold: pairs with a known answer ('a' or 'b': the better one) mixed
	 * into annotation queues to score annotators; their labels stay out of
	 * exports, agreement, review and the normal queues. */
	"CREATE TABLE margin_cache(\n"
	"  policy_fp TEXT NOT NULL,\n"
	"  reference_fp TEXT NOT NULL,\n"
	"  tok_fp TEXT NOT NULL,\n"
	"  completion_a INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  completion_b INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  margin REAL NOT NULL,\n"
	"  created_at TEXT NOT NULL,\n"
	"  CHECK (completion_a < completion_b),\n"
	"  PRIMARY KEY (policy_fp, reference_fp, tok_fp, completion_a, completion_b)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE gold(\n"
	"  completion_a INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  completion_b INTEGER NOT NULL REFERENCES completions(id) ON DELETE CASCADE,\n"
	"  prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,\n"
	"  answer TEXT NOT NULL CHECK (answer = 'a' OR answer = 'b'),\n"
	"  source TEXT,\n"
	"  created_at TEXT NOT NULL,\n"
	"  CHECK (completion_a < completion_b),\n"
	"  PRIMARY KEY (completion_a, completion_b)\n"
	") WITHOUT ROWID;\n",

	/* 12 -> 13: provenance as one row per imported record
	 * (provenance_records), not one per row it referred to: an import
	 * writes a quarter of the rows. prompt_id and prompt_created: the
	 * record's prompt and whether it added it (NULL: taken back); items:
	 * a JSON array of its other rows, [1, completion id, created,
	 * generator] and [2, comparison id, created], in the order the record
	 * had them. provenance becomes a view of the old layout over it, one
	 * row per prompt and item. The old rows move over: an item belongs to
	 * the prompt row before it of the same run and line (they were written
	 * in that order); one with none keeps a record row without a prompt. */
	"CREATE TABLE provenance_records(\n"
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  line INTEGER NOT NULL,\n"
	"  record_id TEXT,\n"
	"  prompt_id INTEGER,\n"
	"  prompt_created INTEGER NOT NULL DEFAULT 0,\n"
	"  items TEXT NOT NULL DEFAULT '[]'\n"
	");\n"
	"CREATE TABLE provenance_move(rid INTEGER PRIMARY KEY, run_id, kind, row_id, line, record_id, created,\n"
	"  generator_id, owner);\n"
	"INSERT INTO provenance_move SELECT rowid, run_id, kind, row_id, line, record_id, created, generator_id,\n"
	"  max(CASE WHEN kind = 'prompt' THEN rowid END) OVER (ORDER BY rowid ROWS UNBOUNDED PRECEDING)\n"
	"  FROM provenance;\n"
	"UPDATE provenance_move SET owner = -rid WHERE kind <> 'prompt' AND (owner IS NULL OR NOT EXISTS\n"
	"  (SELECT 1 FROM provenance_move o WHERE o.rid = provenance_move.owner\n"
	"   AND o.run_id = provenance_move.run_id AND o.line = provenance_move.line));\n"
	"CREATE INDEX provenance_move_owner ON provenance_move(owner, rid);\n"
	"INSERT INTO provenance_records(run_id, line, record_id, prompt_id, prompt_created, items)\n"
	"  SELECT g.run_id, g.line, g.record_id, CASE WHEN g.kind = 'prompt' THEN g.row_id END,\n"
	"    CASE WHEN g.kind = 'prompt' THEN g.created ELSE 0 END,\n"
	"    (SELECT json_group_array(json_array(CASE i.kind WHEN 'completion' THEN 1 ELSE 2 END, i.row_id,\n"
	"       i.created, i.generator_id)) FROM (SELECT * FROM provenance_move i WHERE i.owner = g.owner\n"
	"       AND i.kind <> 'prompt' ORDER BY i.rid) i)\n"
	"  FROM provenance_move g WHERE g.owner = g.rid OR g.owner = -g.rid ORDER BY g.rid;\n"
	"DROP TABLE provenance_move;\n"
	"DROP TABLE provenance;\n"
	"CREATE VIEW provenance(run_id, kind, row_id, line, record_id, created, generator_id) AS\n"
	"  SELECT run_id, 'prompt', prompt_id, line, record_id, prompt_created, NULL FROM provenance_records\n"
	"  WHERE prompt_id IS NOT NULL\n"
	"  UNION ALL\n"
	"  SELECT r.run_id, CASE json_extract(j.value, '$[0]') WHEN 1 THEN 'completion' ELSE 'comparison' END,\n"
	"    json_extract(j.value, '$[1]'), r.line, r.record_id, json_extract(j.value, '$[2]'),\n"
	"    json_extract(j.value, '$[3]')\n"
	"  FROM provenance_records r, json_each(r.items) j;\n",

	/* 13 -> 14: provider batches of dpo-judge --batch (store_batches.c).
	 * judge_batches: one submitted batch: the provider and its id for
	 * it, the judge (scope: its annotator name) and API base, the
	 * provider's status and request counts, where the results are, and
	 * whether they were collected into comparisons. judge_batch_items: the
	 * requests it holds (custom_id: pair, order and cache key). */
	"CREATE TABLE judge_batches(\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  provider TEXT NOT NULL,\n"
	"  remote_id TEXT,\n"
	"  scope TEXT NOT NULL,\n"
	"  base_url TEXT NOT NULL,\n"
	"  status TEXT NOT NULL,\n"
	"  total INTEGER NOT NULL DEFAULT 0,\n"
	"  succeeded INTEGER NOT NULL DEFAULT 0,\n"
	"  failed INTEGER NOT NULL DEFAULT 0,\n"
	"  output_ref TEXT,\n"
	"  error_ref TEXT,\n"
	"  collected INTEGER NOT NULL DEFAULT 0,\n"
	"  created_at TEXT NOT NULL,\n"
	"  updated_at TEXT NOT NULL\n"
	");\n"
	"CREATE INDEX judge_batches_scope ON judge_batches(scope, collected);\n"
	"CREATE TABLE judge_batch_items(\n"
	"  batch_id INTEGER NOT NULL REFERENCES judge_batches(id) ON DELETE CASCADE,\n"
	"  custom_id TEXT NOT NULL,\n"
	"  prompt_id INTEGER NOT NULL,\n"
	"  completion_a INTEGER NOT NULL,\n"
	"  completion_b INTEGER NOT NULL,\n"
	"  ord INTEGER NOT NULL,\n"
	"  cache_key TEXT NOT NULL,\n"
	"  PRIMARY KEY (batch_id, custom_id)\n"
	") WITHOUT ROWID;\n",
};

#define STORE_SCHEMA_VERSION ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

static const char *const STMT_SQL[SS_COUNT] = {
	[SS_PROMPT_INSERT] = "INSERT INTO prompts(hash, kind, content, source, split, created_at, n_completions, "
			     "n_labeled_pairs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(hash) DO NOTHING",
	[SS_PROMPT_BY_HASH] = "SELECT id FROM prompts WHERE hash = ?1",
	[SS_PROMPT_GET] = "SELECT id, hash, kind, content, source, split FROM prompts WHERE id = ?1",
	[SS_COMPLETION_INSERT] = "INSERT INTO completions(prompt_id, hash, text, generator_id, created_at) "
				 "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(prompt_id, hash) DO NOTHING",
	[SS_COMPLETION_BY_HASH] = "SELECT id FROM completions WHERE prompt_id = ?1 AND hash = ?2",
	[SS_COMPLETION_PROMPT] = "SELECT prompt_id FROM completions WHERE id = ?1",
	[SS_COMPLETION_TEXT] = "SELECT text FROM completions WHERE id = ?1",
	[SS_GENERATOR_INSERT] = "INSERT INTO generators(kind, name, fingerprint, params, created_at) "
				"VALUES (?1, ?2, ?3, ?4, ?5) "
				"ON CONFLICT(kind, name, fingerprint, params) DO NOTHING",
	[SS_GENERATOR_FIND] = "SELECT id FROM generators "
			      "WHERE kind = ?1 AND name = ?2 AND fingerprint = ?3 AND params = ?4",
	[SS_ANNOTATOR_INSERT] = "INSERT INTO annotators(kind, name, provider, model, template_hash, params, "
				"created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO NOTHING",
	[SS_ANNOTATOR_FIND] = "SELECT id, kind FROM annotators WHERE name = ?1",
	[SS_COMPARISON_INSERT] =
		"INSERT INTO comparisons(prompt_id, completion_a, completion_b, annotator_id, verdict, "
		"shown_first, rationale, confidence, duration_ms, inconsistent, run_id, created_at, score_a, "
		"score_b, source_chosen) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
		"ON CONFLICT(prompt_id, completion_a, completion_b, annotator_id) DO NOTHING",
	[SS_COMPARISON_FIND] = "SELECT id, verdict FROM comparisons WHERE prompt_id = ?4 "
			       "AND completion_a = ?2 AND completion_b = ?3 AND annotator_id = ?1",
	[SS_COMPARISON_DELETE] = "DELETE FROM comparisons WHERE id = ?1",
	[SS_PAIR_VOTES] = "SELECT c.completion_a, c.completion_b, a.kind, c.annotator_id "
			  "FROM comparisons c JOIN annotators a ON a.id = c.annotator_id "
			  "WHERE c.prompt_id = ?1",
	[SS_CACHE_GET] = "SELECT response FROM request_cache WHERE hash = ?1",
	[SS_CACHE_PUT] = "INSERT INTO request_cache(hash, response, meta, created_at) VALUES (?1, ?2, ?3, ?4) "
			 "ON CONFLICT(hash) DO UPDATE SET response = excluded.response, meta = excluded.meta, "
			 "created_at = excluded.created_at",
	[SS_REFLOGP_GET] = "SELECT logp, ntokens FROM reflogp_cache WHERE ref_fingerprint = ?1 "
			   "AND tok_fingerprint = ?2 AND prompt_id = ?3 AND completion_id = ?4",
	[SS_REFLOGP_PUT] = "INSERT INTO reflogp_cache(ref_fingerprint, tok_fingerprint, prompt_id, "
			   "completion_id, logp, ntokens, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
			   "ON CONFLICT(ref_fingerprint, tok_fingerprint, prompt_id, completion_id) DO UPDATE "
			   "SET logp = excluded.logp, ntokens = excluded.ntokens, created_at = excluded.created_at",
	[SS_PROMPT_COUNTS] = "UPDATE prompts SET n_completions = n_completions + ?2, "
			     "n_labeled_pairs = n_labeled_pairs + ?3 WHERE id = ?1",
	[SS_PAIR_LABELED] = "SELECT count(*) FROM comparisons x JOIN annotators a ON a.id = x.annotator_id "
			    "WHERE x.prompt_id = ?1 AND x.completion_a = ?2 AND x.completion_b = ?3 "
			    "AND a.kind <> 'judge' AND x.verdict <> 'skip'",
	[SS_ANNOTATOR_KIND] = "SELECT kind FROM annotators WHERE id = ?1",
	[SS_COMPARISON_ROW] = "SELECT prompt_id, completion_a, completion_b, annotator_id, verdict FROM comparisons "
			      "WHERE id = ?1",
	[SS_RATING_INSERT] = "INSERT INTO ratings(completion_id, annotator_id, aspect, value, scale_min, scale_max, "
			      "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
			      /* a row back: 1 added, 0 another value there (kept);
			       * none: the same value there */
			      "ON CONFLICT(completion_id, annotator_id, aspect) DO UPDATE SET value = ratings.value "
			      "WHERE ratings.value <> excluded.value RETURNING value = ?4",
	[SS_FEEDBACK_INSERT] = "INSERT INTO feedback(prompt_id, completion_id, annotator_id, good, created_at) "
			       "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(completion_id, annotator_id) DO UPDATE "
			       "SET good = feedback.good WHERE feedback.good <> excluded.good RETURNING good = ?4",
	[SS_COMPLETION_CREDIT] = "INSERT INTO completion_generators(completion_id, generator_id) VALUES (?1, ?2) "
				 "ON CONFLICT(completion_id, generator_id) DO NOTHING",
	[SS_PROV_ADD] = "INSERT INTO provenance_records(run_id, line, record_id, prompt_id, prompt_created, items) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[SS_METRIC_ADD] = "INSERT INTO metrics(run_id, step, name, value) VALUES (?1, ?2, ?3, ?4) "
			  "ON CONFLICT(run_id, name, step) DO UPDATE SET value = excluded.value",
};

/* ---- errors and helpers ------------------------------------------------- */

int store__err(store *st, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof st->err, fmt, ap);
	va_end(ap);
	return code;
}

int store__dberr(store *st, const char *what)
{
	int code = st->db ? sqlite3_errcode(st->db) & 0xff : SQLITE_ERROR;
	const char *msg = st->db ? sqlite3_errmsg(st->db) : "database not open";
	int rc;
	switch (code) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED: rc = STORE_EBUSY; break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: rc = STORE_ECORRUPT; break;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG: rc = STORE_EINVAL; break;
	default: rc = STORE_ERR;
	}
	if (rc == STORE_EBUSY)
		return store__err(st, rc, "%s: %s: the database is locked by another process", st->path ? st->path : "",
				  what);
	return store__err(st, rc, "%s: %s: %s", st->path ? st->path : "", what, msg);
}

sqlite3_stmt *store__stmt(store *st, enum store_stmt_id id)
{
	sqlite3_stmt *s = st->stmt[id];
	if (!s) {
		if (sqlite3_prepare_v3(st->db, STMT_SQL[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
			store__dberr(st, "prepare");
			return NULL;
		}
		st->stmt[id] = s;
	} else {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	return s;
}

sqlite3_stmt *store__prepare(store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store__dberr(st, "prepare");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

sqlite3_stmt *store__stmt_borrow(store *st, const char *sql)
{
	for (int i = 0; i < STORE_KEPT_N; i++) {
		if (st->kept[i].sql == sql && st->kept[i].s) {
			sqlite3_stmt *s = st->kept[i].s;
			st->kept[i].s = NULL;
			sqlite3_clear_bindings(s);
			return s;
		}
	}
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		store__dberr(st, "prepare");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

void store__stmt_return(store *st, const char *sql, sqlite3_stmt *s)
{
	int free_at = -1;
	if (!s)
		return;
	sqlite3_reset(s);
	for (int i = 0; i < STORE_KEPT_N; i++) {
		if (st->kept[i].sql == sql && !st->kept[i].s) {
			st->kept[i].s = s;
			return;
		}
		if (!st->kept[i].sql && free_at < 0)
			free_at = i;
	}
	if (free_at < 0) {
		sqlite3_finalize(s);
		return;
	}
	st->kept[free_at].sql = sql;
	st->kept[free_at].s = s;
}

int store__exec(store *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	sqlite3_free(msg);
	if (rc != SQLITE_OK)
		return store__dberr(st, "exec");
	return STORE_OK;
}

const char *store__now(store *st)
{
	time_t t = time(NULL);
	if ((long)t != st->now_sec) {
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(st->now, sizeof st->now, "%Y-%m-%dT%H:%M:%SZ", &tm);
		st->now_sec = (long)t;
	}
	return st->now;
}

void store__hex(const void *blob, int n, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = blob;
	if (!b || n != 32)
		n = 0;
	for (int i = 0; i < n; i++) {
		hex[2 * i] = digits[b[i] >> 4];
		hex[2 * i + 1] = digits[b[i] & 15];
	}
	hex[2 * n] = 0;
}

void store__bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

const char *store__col_text(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

void store__memo_clear(store *st)
{
	for (int i = 0; i < STORE_MEMO_N; i++) {
		free(st->gen_memo[i].key);
		free(st->ann_memo[i].key);
		st->gen_memo[i].key = NULL;
		st->ann_memo[i].key = NULL;
	}
}

/* ---- opening ------------------------------------------------------------ */

store *store_new(void)
{
	store *st = xcalloc(1, sizeof *st);
	st->now_sec = -1;
	return st;
}

static void store_close(store *st)
{
	store__run_forget(st);
	for (int i = 0; i < SS_COUNT; i++) {
		sqlite3_finalize(st->stmt[i]);
		st->stmt[i] = NULL;
	}
	for (int i = 0; i < STORE_KEPT_N; i++) {
		sqlite3_finalize(st->kept[i].s);
		st->kept[i].sql = NULL;
		st->kept[i].s = NULL;
	}
	store__memo_clear(st);
	store__defer_free(st);
	if (st->db)
		sqlite3_close_v2(st->db);
	st->db = NULL;
	free(st->path);
	st->path = NULL;
}

void store_free(store *st)
{
	if (!st)
		return;
	store_close(st);
	util_buf_free(&st->scratch);
	free(st);
}

const char *store_errmsg(const store *st)
{
	return st ? st->err : "";
}

int store_schema_version(void)
{
	return STORE_SCHEMA_VERSION;
}

static int pragma_int(store *st, const char *sql, long long *out)
{
	sqlite3_stmt *s = store__prepare(st, sql);
	if (!s)
		return st->err[0] ? store__dberr(st, "read header") : STORE_ERR;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		rc = STORE_OK;
	} else {
		rc = store__dberr(st, "read header");
	}
	sqlite3_finalize(s);
	return rc;
}

/* Read application id, schema version and number of schema objects. */
static int read_header(store *st, long long *app, long long *ver, long long *nobj)
{
	int rc;
	if ((rc = pragma_int(st, "PRAGMA application_id", app)) ||
	    (rc = pragma_int(st, "PRAGMA user_version", ver)) ||
	    (rc = pragma_int(st, "SELECT count(*) FROM sqlite_master", nobj)))
		return rc;
	return STORE_OK;
}

/* Decide what the header means: 1 = needs migration, 0 = current, or an
 * error code. */
static int classify(store *st, long long app, long long ver, long long nobj, int target)
{
	if (app == STORE_APPLICATION_ID) {
		if (ver > STORE_SCHEMA_VERSION)
			return store__err(st, STORE_EVERSION,
					  "%s: schema version %lld is newer than this dpo supports (%d); "
					  "upgrade dpo to open it",
					  st->path, ver, STORE_SCHEMA_VERSION);
		return ver < target;
	}
	if (app == 0 && ver == 0 && nobj == 0)
		return 1; /* empty: a new database */
	return store__err(st, STORE_ECORRUPT, "%s: not a dpo database (an SQLite file of another program)",
			  st->path);
}

static int migrate(store *st, int target)
{
	long long app, ver, nobj;
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return store__dberr(st, "create or migrate the schema");
	int rc;
	/* Re-read under the write lock: another process may have migrated. */
	if ((rc = read_header(st, &app, &ver, &nobj)))
		goto out;
	rc = classify(st, app, ver, nobj, target);
	if (rc <= 0)
		goto out; /* an error, or already migrated by another process */
	for (int v = (int)ver; v < target; v++) {
		if ((rc = store__exec(st, MIGRATIONS[v]))) {
			store__err(st, rc, "%s: migrating the schema to version %d failed: %s", st->path, v + 1,
				   sqlite3_errmsg(st->db));
			goto out;
		}
	}
	char sql[160];
	snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;", STORE_APPLICATION_ID,
		 target);
	if ((rc = store__exec(st, sql)))
		goto out;
	if (ver == 0) {
		sqlite3_stmt *s = store__prepare(st, "INSERT OR REPLACE INTO meta(key, value) VALUES "
						     "('created_by', ?1), ('created_at', ?2)");
		if (!s) {
			rc = STORE_ERR;
			goto out;
		}
		char *by = xasprintf("dpo %s", PACKAGE_VERSION);
		sqlite3_bind_text(s, 1, by, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 2, store__now(st), -1, SQLITE_TRANSIENT);
		free(by);
		rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "write meta");
		sqlite3_finalize(s);
		if (rc)
			goto out;
	}
out:
	if (rc < 0) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return store__exec(st, "COMMIT");
}

/* Process-wide SQLite settings, made once before SQLite initialises: no
 * memory statistics (they take a global mutex on every allocation, and we
 * never read them). */
static void sqlite_setup(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* dpo_text_prompt_hash(TEXT): store__text_prompt_hash of TEXT as a blob,
 * for the migration that brings prompts to one canonical fingerprint. */
static void sql_text_prompt_hash(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	unsigned char hash[32];
	(void)argc;
	const unsigned char *text = sqlite3_value_text(argv[0]);
	if (!text) {
		sqlite3_result_null(ctx);
		return;
	}
	store__text_prompt_hash((const char *)text, (size_t)sqlite3_value_bytes(argv[0]), hash);
	sqlite3_result_blob(ctx, hash, 32, SQLITE_TRANSIENT);
}

/* How open_db opens: creating a missing file, only an existing one, or
 * only an existing one and reading it where it cannot be written. */
enum { OPEN_CREATE, OPEN_EXISTING, OPEN_READ };

static int open_db(store *st, const char *path, int target, int mode);

int store__open_version(store *st, const char *path, int target)
{
	int rc = open_db(st, path, target, OPEN_CREATE);
	st->old_schema = !rc && target < STORE_SCHEMA_VERSION;
	return rc;
}

char *store__file_uri(const char *path, const char *query)
{
	util_buf b = UTIL_BUF_INIT;
	util_buf_adds(&b, "file:");
	for (const char *p = path; *p; p++) {
		if (*p == '%' || *p == '?' || *p == '#')
			util_buf_addf(&b, "%%%02X", (unsigned char)*p);
		else
			util_buf_addf(&b, "%c", *p);
	}
	util_buf_addf(&b, "?%s", query);
	return util_buf_detach(&b);
}

/* One try of open_db: the database at path (a URI when uri), with SQLite's
 * error code of a failure in *sqlcode. */
static int open_try(store *st, const char *path, int target, int mode, const char *uri, int *sqlcode);

static int open_db(store *st, const char *path, int target, int mode)
{
	int sqlcode = 0;
	st->old_schema = 0;
	int rc = open_try(st, path, target, mode, NULL, &sqlcode);
	if (rc && mode == OPEN_READ && sqlcode == SQLITE_CANTOPEN) {
		/* On read-only media or in a read-only folder a WAL database
		 * cannot be read without its -shm file; an immutable open needs
		 * none (and sees no other process's changes). */
		char *uri = store__file_uri(path, "immutable=1"), msg[sizeof st->err];
		memcpy(msg, st->err, sizeof msg);
		rc = open_try(st, path, target, mode, uri, &sqlcode);
		free(uri);
		if (rc)
			memcpy(st->err, msg, sizeof msg);
		else
			util_warn("%s: cannot be written (read-only folder or media); opened it read-only as "
				  "immutable (changes by other processes are not seen)", path);
	} else if (!rc && mode == OPEN_READ && sqlite3_db_readonly(st->db, "main") == 1) {
		util_warn("%s: cannot be written; opened it read-only", path);
	}
	return rc;
}

static int open_try(store *st, const char *path, int target, int mode, const char *uri, int *sqlcode)
{
	int create = mode == OPEN_CREATE;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	long long app, ver, nobj;
	int rc, need;

	pthread_once(&once, sqlite_setup);
	store_close(st);
	st->err[0] = 0;
	if (target < 1 || target > STORE_SCHEMA_VERSION)
		return store__err(st, STORE_EINVAL, "schema version %d does not exist", target);
	st->path = xstrdup(path);
	struct stat sb;
	if (!create && stat(path, &sb) != 0 && errno == ENOENT) {
		rc = store__err(st, STORE_ENOTFOUND,
				"%s: no such database (create one with dpo-db init or dpo-db import)", path);
		goto out;
	}
	/* URIs are on for every connection (dpo-db merge attaches another
	 * store read-only by URI), so a plain relative path that happens to
	 * begin with "file:" is spelled "./file:..." */
	char *plain = !uri && !strncmp(path, "file:", 5) ? xasprintf("./%s", path) : NULL;
	int orc = sqlite3_open_v2(uri ? uri : plain ? plain : path, &st->db,
				  (uri ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_URI |
					  (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX,
				  NULL);
	free(plain);
	if (orc != SQLITE_OK) {
		rc = store__err(st, STORE_ERR, "%s: cannot open: %s", path,
				st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 0);
	sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
	sqlite3_create_function(st->db, "dpo_text_prompt_hash", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				sql_text_prompt_hash, NULL, NULL);
	/* one read transaction: the three values from one snapshot (another
	 * process creating the store may commit its schema between them) */
	sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL);
	rc = read_header(st, &app, &ver, &nobj);
	if (!rc) /* on a failure the connection is closed, keeping SQLite's error code */
		sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc) {
		if (rc == STORE_ECORRUPT)
			store__err(st, rc, "%s: not a dpo database (not an SQLite file, or damaged)", path);
		goto out;
	}
	need = classify(st, app, ver, nobj, target);
	if (need < 0) {
		rc = need;
		goto out;
	}
	/* A new, empty file: larger pages than SQLite's 4 KiB default mean
	 * fewer B-tree levels, page splits and WAL frames on bulk imports (the
	 * size has to be set before WAL mode writes the header). */
	if (app == 0 && ver == 0 && nobj == 0 &&
	    (rc = store__exec(st, "PRAGMA page_size = " STORE_PAGE_SIZE_STR)))
		goto out;
	/* WAL is persistent in the file; set it once the file is known to be
	 * ours (a failure, e.g. in a read-only directory, is not fatal). */
	sqlite3_exec(st->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
	if ((rc = store__exec(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; "
				     "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;")))
		goto out;
	if (need)
		rc = migrate(st, target);
out:
	if (rc) {
		char msg[sizeof st->err];
		memcpy(msg, st->err, sizeof msg);
		*sqlcode = st->db ? sqlite3_errcode(st->db) & 0xff : 0;
		store_close(st);
		memcpy(st->err, msg, sizeof msg);
	}
	return rc;
}

int store_open(store *st, const char *path)
{
	return open_db(st, path, STORE_SCHEMA_VERSION, OPEN_CREATE);
}

int store_open_existing(store *st, const char *path)
{
	return open_db(st, path, STORE_SCHEMA_VERSION, OPEN_EXISTING);
}

int store_open_read(store *st, const char *path)
{
	return open_db(st, path, STORE_SCHEMA_VERSION, OPEN_READ);
}

int store_readonly(const store *st)
{
	return st && st->db && sqlite3_db_readonly(st->db, "main") == 1;
}

/* ---- transactions ------------------------------------------------------- */

int store_begin(store *st)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "store_begin: the store is not open");
	if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return store__dberr(st, "begin transaction");
	return STORE_OK;
}

int store_commit(store *st)
{
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = store__dberr(st, "commit");
		if (!sqlite3_get_autocommit(st->db)) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			store__memo_clear(st);
		}
		return rc;
	}
	return STORE_OK;
}

int store_rollback(store *st)
{
	store__memo_clear(st);
	if (!st->db || sqlite3_get_autocommit(st->db))
		return STORE_OK;
	for (int i = 0; i < SS_COUNT; i++)
		if (st->stmt[i])
			sqlite3_reset(st->stmt[i]);
	if (sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		return store__dberr(st, "rollback");
	return STORE_OK;
}

/* ---- bulk imports ------------------------------------------------------- */

int store__bulk_begin(store *st)
{
	int rc;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "store_begin: the store is not open");
	if (!sqlite3_get_autocommit(st->db))
		return store__err(st, STORE_EINVAL, "a bulk import cannot run inside another transaction");
	/* The rows an import refers to are ones it found or inserted itself
	 * under the write lock, so the foreign-key lookups are redundant. The
	 * pragma only takes effect outside a transaction. Memoised ids are
	 * re-read in the new transaction. */
	store__memo_clear(st);
	if ((rc = store__exec(st, "PRAGMA foreign_keys = OFF")))
		return rc;
	st->bulk_fk_off = 1;
	if ((rc = store_begin(st)))
		goto fail;
	store__defer_start(st);
	return STORE_OK;
fail:
	store__bulk_rollback(st);
	return rc;
}

int store__bulk_commit(store *st)
{
	int rc = store__defer_flush(st);
	if (rc)
		return rc;
	rc = store_commit(st);
	if (st->bulk_fk_off && sqlite3_get_autocommit(st->db)) {
		sqlite3_exec(st->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
		st->bulk_fk_off = 0;
	}
	return rc;
}

int store__bulk_rollback(store *st)
{
	store__defer_drop(st);
	int rc = store_rollback(st);
	if (st->db && st->bulk_fk_off && sqlite3_get_autocommit(st->db)) {
		sqlite3_exec(st->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
		st->bulk_fk_off = 0;
	}
	return rc;
}

int store__tx_auto(store *st, int *started)
{
	*started = 0;
	if (!st->db)
		return store__err(st, STORE_EINVAL, "the store is not open");
	if (!sqlite3_get_autocommit(st->db))
		return STORE_OK;
	int rc = store_begin(st);
	if (!rc)
		*started = 1;
	return rc;
}

int store__tx_end(store *st, int started, int rc)
{
	if (!started)
		return rc;
	if (rc) {
		char msg[sizeof st->err];
		memcpy(msg, st->err, sizeof msg);
		store_rollback(st);
		memcpy(st->err, msg, sizeof msg);
		return rc;
	}
	return store_commit(st);
}

/* ---- judge request cache ------------------------------------------------ */

int store_cache_get(store *st, const char *request_hash, char **response)
{
	*response = NULL;
	if (!request_hash)
		return store__err(st, STORE_EINVAL, "store_cache_get: no request hash");
	sqlite3_stmt *s = store__stmt(st, SS_CACHE_GET);
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, request_hash);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*response = xstrdup(store__col_text(s, 0));
		rc = STORE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = store__err(st, STORE_ENOTFOUND, "request %s is not cached", request_hash);
	} else {
		rc = store__dberr(st, "read request cache");
	}
	sqlite3_reset(s);
	return rc;
}

int store_cache_put(store *st, const char *request_hash, const char *response, const char *meta_json)
{
	if (!request_hash || !response)
		return store__err(st, STORE_EINVAL, "store_cache_put: request hash and response are required");
	sqlite3_stmt *s = store__stmt(st, SS_CACHE_PUT);
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, request_hash);
	store__bind_text(s, 2, response);
	store__bind_text(s, 3, meta_json);
	store__bind_text(s, 4, store__now(st));
	int rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "write request cache");
	sqlite3_reset(s);
	return rc;
}

/* ---- reference log-prob cache ------------------------------------------- */

static int reflogp_key_ok(store *st, const store_reflogp_key *k, const char *fn)
{
	if (!k || !k->ref_fingerprint || !k->tok_fingerprint)
		return store__err(st, STORE_EINVAL, "%s: the key needs both fingerprints", fn);
	return STORE_OK;
}

int store_reflogp_get(store *st, const store_reflogp_key *k, double *logp, long *ntokens)
{
	int rc = reflogp_key_ok(st, k, "store_reflogp_get");
	if (rc)
		return rc;
	sqlite3_stmt *s = store__stmt(st, SS_REFLOGP_GET);
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, k->ref_fingerprint);
	store__bind_text(s, 2, k->tok_fingerprint);
	sqlite3_bind_int64(s, 3, k->prompt_id);
	sqlite3_bind_int64(s, 4, k->completion_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (logp)
			*logp = sqlite3_column_double(s, 0);
		if (ntokens)
			*ntokens = (long)sqlite3_column_int64(s, 1);
		rc = STORE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = store__err(st, STORE_ENOTFOUND, "no cached reference log-prob for completion %lld",
				(long long)k->completion_id);
	} else {
		rc = store__dberr(st, "read reference log-prob cache");
	}
	sqlite3_reset(s);
	return rc;
}

int store_reflogp_put(store *st, const store_reflogp_key *k, double logp, long ntokens)
{
	int rc = reflogp_key_ok(st, k, "store_reflogp_put");
	if (rc)
		return rc;
	if (!isfinite(logp) || ntokens < 0)
		return store__err(st, STORE_EINVAL, "store_reflogp_put: log-prob must be finite and ntokens >= 0");
	sqlite3_stmt *s = store__stmt(st, SS_REFLOGP_PUT);
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, k->ref_fingerprint);
	store__bind_text(s, 2, k->tok_fingerprint);
	sqlite3_bind_int64(s, 3, k->prompt_id);
	sqlite3_bind_int64(s, 4, k->completion_id);
	sqlite3_bind_double(s, 5, logp);
	sqlite3_bind_int64(s, 6, ntokens);
	store__bind_text(s, 7, store__now(st));
	rc = sqlite3_step(s) == SQLITE_DONE ? STORE_OK : store__dberr(st, "write reference log-prob cache");
	sqlite3_reset(s);
	return rc;
}

/* ---- maintenance -------------------------------------------------------- */

int store_check(store *st, char **report)
{
	util_buf b = UTIL_BUF_INIT;
	int bad = 0, rc = STORE_OK;
	long long app = 0, ver = 0, nobj = 0;
	sqlite3_stmt *s = NULL;

	*report = NULL;
	if (!st->db) {
		rc = store__err(st, STORE_EINVAL, "store_check: the store is not open");
		goto out;
	}
	util_buf_addf(&b, "database: %s\n", st->path);
	if ((rc = read_header(st, &app, &ver, &nobj)))
		goto out;
	if (app != STORE_APPLICATION_ID || ver != STORE_SCHEMA_VERSION) {
		util_buf_addf(&b, "schema version: %lld, expected %d: FAILED\n", ver, STORE_SCHEMA_VERSION);
		bad = 1;
	} else {
		util_buf_addf(&b, "schema version: %lld: ok\n", ver);
	}
	if (!(s = store__prepare(st, "PRAGMA integrity_check"))) {
		rc = STORE_ECORRUPT;
		goto out;
	}
	int n = 0, step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *msg = store__col_text(s, 0);
		if (msg && !strcmp(msg, "ok"))
			continue;
		if (n++ < 20)
			util_buf_addf(&b, "integrity: %s\n", msg ? msg : "?");
		bad = 1;
	}
	if (step != SQLITE_DONE) {
		rc = store__dberr(st, "integrity check");
		goto out;
	}
	util_buf_addf(&b, "integrity check: %s\n", n ? "FAILED" : "ok");
	sqlite3_finalize(s);
	if (!(s = store__prepare(st, "PRAGMA foreign_key_check"))) {
		rc = STORE_ECORRUPT;
		goto out;
	}
	n = 0;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (n++ < 20)
			util_buf_addf(&b, "foreign key: table %s row %lld refers to a missing row of %s\n",
				      store__col_text(s, 0), (long long)sqlite3_column_int64(s, 1),
				      store__col_text(s, 2));
		bad = 1;
	}
	if (step != SQLITE_DONE) {
		rc = store__dberr(st, "foreign key check");
		goto out;
	}
	util_buf_addf(&b, "foreign key check: %s\n", n ? "FAILED" : "ok");
	sqlite3_finalize(s);
	s = store__prepare(st, "SELECT count(*) FROM prompts p WHERE n_completions <> " STORE__N_COMPLETIONS_SQL("p.id")
			       " OR n_labeled_pairs <> " STORE__N_LABELED_PAIRS_SQL("p.id"));
	if (!s) {
		rc = STORE_ERR;
		goto out;
	}
	if (sqlite3_step(s) != SQLITE_ROW) {
		rc = store__dberr(st, "counter check");
		goto out;
	}
	long long stale = sqlite3_column_int64(s, 0);
	if (stale) {
		util_buf_addf(&b, "prompt counters: %lld prompts out of date: FAILED\n", stale);
		bad = 1;
	} else {
		util_buf_adds(&b, "prompt counters: ok\n");
	}
	sqlite3_finalize(s);
	s = NULL;
	/* runs: informational (a run whose process is gone is no damage) */
	int rrc = store__check_runs(st, &b);
	if (rrc && !bad) {
		rc = rrc;
		goto out;
	}
	if (bad)
		rc = store__err(st, STORE_ECORRUPT, "%s: the database failed its checks", st->path);
out:
	sqlite3_finalize(s);
	if (rc && !bad && b.len)
		util_buf_addf(&b, "check failed: %s\n", st->err);
	*report = util_buf_detach(&b);
	return rc;
}

/* The split of a prompt: "test" when the first 64 bits of
 * SHA-256(seed as 8 big-endian bytes || hash) fall below test_fraction * 2^64. */
static int split_is_test(const char *hash, uint64_t seed, double frac)
{
	unsigned char in[8], d[32];
	util_sha256 c;
	for (int i = 0; i < 8; i++)
		in[i] = (unsigned char)(seed >> (56 - 8 * i));
	util_sha256_init(&c);
	util_sha256_update(&c, in, 8);
	util_sha256_update(&c, hash, strlen(hash));
	util_sha256_final(&c, d);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | d[i];
	if (frac >= 1.0)
		return 1;
	if (frac <= 0.0)
		return 0;
	return (double)v < frac * 18446744073709551616.0;
}

/* One split met by store_split. */
typedef struct split_tally {
	char *name;
	long n, to_test, to_train;
	int reassigned;
} split_tally;

static int split_named(const store_split_args *a, const char *name)
{
	if (!a->n_from)
		return !strcmp(name, "train");
	for (int i = 0; i < a->n_from; i++)
		if (a->from[i] && !strcmp(a->from[i], name))
			return 1;
	return 0;
}

int store_split(store *st, const store_split_args *a, store_split_cb cb, void *ud, long *n_train, long *n_test)
{
	long ntr = 0, nte = 0;
	int started = 0, rc = STORE_OK, step;
	sqlite3_stmt *s = NULL, *u = NULL;
	split_tally *t = NULL;
	size_t nt = 0, cap = 0;

	if (!(a->test_fraction >= 0.0 && a->test_fraction <= 1.0))
		return store__err(st, STORE_EINVAL, "test fraction must be between 0 and 1, not %g", a->test_fraction);
	if (!a->dry_run && (rc = store__tx_auto(st, &started)))
		return rc;
	/* one statement: a dry run reads one snapshot without a transaction */
	if (!(s = store__prepare(st, "SELECT id, hash, split FROM prompts ORDER BY split, id")) ||
	    (!a->dry_run && !(u = store__prepare(st, "UPDATE prompts SET split = ?2 WHERE id = ?1")))) {
		rc = STORE_ERR;
		goto out;
	}
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		const char *cur = store__col_text(s, 2);
		if (!nt || strcmp(t[nt - 1].name, cur)) {
			if (nt == cap) {
				cap = cap ? 2 * cap : 8;
				t = xrealloc(t, cap * sizeof *t);
			}
			t[nt] = (split_tally){.name = xstrdup(cur), .reassigned = split_named(a, cur)};
			nt++;
		}
		split_tally *c = &t[nt - 1];
		c->n++;
		if (!c->reassigned) {
			if (!strcmp(cur, "test"))
				nte++;
			else if (!strcmp(cur, "train"))
				ntr++;
			continue;
		}
		char hex[65];
		store__hex(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1), hex);
		int test = split_is_test(hex, a->seed, a->test_fraction);
		const char *want = test ? "test" : "train";
		test ? (nte++, c->to_test++) : (ntr++, c->to_train++);
		if (!u || !strcmp(cur, want))
			continue;
		sqlite3_bind_int64(u, 1, sqlite3_column_int64(s, 0));
		sqlite3_bind_text(u, 2, want, -1, SQLITE_STATIC);
		if (sqlite3_step(u) != SQLITE_DONE) {
			rc = store__dberr(st, "update split");
			goto out;
		}
		sqlite3_reset(u);
	}
	if (step != SQLITE_DONE) {
		rc = store__dberr(st, "read prompts");
		goto out;
	}
	/* a named split no prompt is in is a typo, unless it is one split writes */
	for (int i = 0; i < a->n_from; i++) {
		if (!strcmp(a->from[i], "train") || !strcmp(a->from[i], "test"))
			continue;
		size_t j = 0;
		while (j < nt && strcmp(t[j].name, a->from[i]))
			j++;
		if (j < nt)
			continue;
		util_buf names = UTIL_BUF_INIT;
		for (j = 0; j < nt; j++)
			util_buf_addf(&names, "%s%s (%ld prompt%s)", j ? ", " : "", t[j].name, t[j].n,
				      t[j].n == 1 ? "" : "s");
		rc = store__err(st, STORE_ENOTFOUND, "no split \"%s\" in %s; the splits are: %s", a->from[i], st->path,
				nt ? util_buf_str(&names) : "none (no prompts)");
		util_buf_free(&names);
		goto out;
	}
	for (size_t j = 0; cb && j < nt; j++) {
		int r = t[j].reassigned ? cb(ud, t[j].name, "test", t[j].to_test) || cb(ud, t[j].name, "train", t[j].to_train)
					: cb(ud, t[j].name, NULL, t[j].n);
		if (r) {
			rc = r;
			break;
		}
	}
out:
	sqlite3_finalize(s);
	sqlite3_finalize(u);
	for (size_t j = 0; j < nt; j++)
		free(t[j].name);
	free(t);
	rc = store__tx_end(st, started, rc);
	if (!rc) {
		if (n_train)
			*n_train = ntr;
		if (n_test)
			*n_test = nte;
	}
	return rc;
}

int store_set_busy_timeout(store *st, int ms)
{
	if (!st->db)
		return store__err(st, STORE_EINVAL, "store_set_busy_timeout: the store is not open");
	sqlite3_busy_timeout(st->db, ms > 0 ? ms : 0);
	return STORE_OK;
}

const char *store_path(const store *st)
{
	return st && st->path ? st->path : NULL;
}
