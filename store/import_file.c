/* import_file.c: the file layer of the dataset importer: stream a file
 * (JSON Lines, a JSON array or CSV/TSV, plain or gzip; see import_stream.c)
 * through the parser and store_add_record in one transaction. See import.h. */
#include "store/import.h"
#include "store/import_stream.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

char *store_import_default_source(const char *path)
{
	static const char *const exts[] = {".gz", ".jsonl", ".json", ".ndjson", ".jl", ".txt", ".csv", ".tsv"};
	if (!strcmp(path, "-"))
		return xstrdup("stdin");
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	for (int again = 1; again;) {
		again = 0;
		for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
			size_t el = strlen(exts[i]);
			if (n > el && !strncmp(base + n - el, exts[i], el)) {
				n -= el;
				again = 1;
			}
		}
	}
	if (n == 0)
		return xstrdup(base[0] ? base : "import");
	return xstrndup(base, n);
}

/* Append s[0..n) escaped for a JSON string, without quotes. */
static void add_escaped(util_buf *b, const char *s, size_t n)
{
	size_t start = b->len;
	util_buf_add_json_string(b, s, n);
	memmove(b->data + start, b->data + start + 1, b->len - start - 2);
	b->len -= 2;
	b->data[b->len] = '\0';
}

/* Append s[0..n) as a JSON string, replacing invalid UTF-8 by U+FFFD so
 * that the rejects file is always valid JSON. */
static void add_json_text(util_buf *b, const char *s, size_t n)
{
	size_t bad;
	util_buf_addc(b, '"');
	while (!util_utf8_valid(s, n, &bad)) {
		add_escaped(b, s, bad);
		util_buf_adds(b, "\xEF\xBF\xBD");
		s += bad + 1;
		n -= bad + 1;
	}
	add_escaped(b, s, n);
	util_buf_addc(b, '"');
}

static void seterr(store_import_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(store_import_result *res, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->errmsg, sizeof res->errmsg, fmt, ap);
	va_end(ap);
}

static int write_reject(FILE *f, util_buf *b, const char *path, long lineno, const char *reason,
			const char *line, size_t len)
{
	util_buf_reset(b);
	util_buf_adds(b, "{\"file\": ");
	add_json_text(b, path, strlen(path));
	util_buf_addf(b, ", \"line\": %ld, \"reason\": ", lineno);
	add_json_text(b, reason, strlen(reason));
	util_buf_adds(b, ", \"record\": ");
	add_json_text(b, line, len);
	util_buf_adds(b, "}\n");
	return fwrite(b->data, 1, b->len, f) == b->len ? 0 : -1;
}

/* ---- the reading thread ------------------------------------------------------
 *
 * Reading (and gunzipping) and parsing run on a second thread, a few
 * hundred lines ahead of the thread that writes to the database: the
 * reader fills batches of parsed records (deep copies in the batch's arena)
 * in a small ring, the writer takes them in order. The writer alone touches
 * the store, the rejects file and the progress callback; the reader alone
 * touches the line reader and the parser until it is joined. */

#define BATCH_LINES 1024
#define NBATCHES 4
#define ARENA_BLOCK 65536

typedef struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	max_align_t data[];
} arena_blk;

/* Bump allocator whose blocks never move: pointers stay valid until reset. */
typedef struct arena {
	arena_blk *head;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!a->head || a->head->cap - a->head->used < n) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		arena_blk *b = xmalloc(sizeof *b + cap);
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	void *p = (char *)a->head->data + a->head->used;
	a->head->used += n;
	return p;
}

static const char *arena_strndup(arena *a, const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *d = arena_alloc(a, n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static const char *arena_strdup(arena *a, const char *s)
{
	return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

/* Free every block but one of the standard size, which is kept empty. */
static void arena_reset(arena *a)
{
	arena_blk *keep = NULL;
	while (a->head) {
		arena_blk *b = a->head;
		a->head = b->next;
		if (!keep && b->cap == ARENA_BLOCK) {
			keep = b;
			keep->used = 0;
			keep->next = NULL;
		} else {
			free(b);
		}
	}
	a->head = keep;
}

static void arena_free(arena *a)
{
	arena_reset(a);
	free(a->head);
	a->head = NULL;
}

typedef struct imp_item {
	long lineno;
	long recno;            /* its number in a JSON array, else 0 */
	int dropped;           /* empty completions left out of rec */
	int blank;             /* an empty line: skipped */
	int parsed;            /* rec is valid; else reason says why not */
	const char *line;      /* the raw line (for the rejects file) */
	size_t len;
	const char *reason;
	const char *drop_reason; /* why, when dropped */
	const char *raw;       /* while the first batch waits: the record as in */
	size_t rawlen;         /* the file, when it differs from line */
	store_record rec;
} imp_item;

typedef struct imp_batch {
	imp_item items[BATCH_LINES];
	int n;
	int last;                  /* the reader stopped after this batch */
	unsigned long long offset; /* input bytes read so far, at the batch's end */
	arena mem;
} imp_batch;

typedef struct imp_pipe {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	imp_batch b[NBATCHES];
	int head, count;       /* the writer's next batch; batches filled */
	int stop;              /* the writer wants no more */
	int keep_lines;        /* copy each raw line (for the rejects file) */
	int look;              /* detect the format from the first batch */
	store__recsrc *src;
	store_import_parser *p;
	int read_failed;       /* the source failed (message below) */
	long read_line;        /* on this line (0: not a line's fault) */
	char read_err[512];
} imp_pipe;

/* Copy a parsed record into the arena, with its content hashes. */
static void record_copy(arena *a, store_record *dst, const store_record *src)
{
	*dst = *src;
	dst->prompt_text = arena_strdup(a, src->prompt_text);
	dst->record_id = arena_strdup(a, src->record_id);
	if (src->messages) {
		store_msg *m = arena_alloc(a, src->nmessages * sizeof *m + 1);
		for (size_t i = 0; i < src->nmessages; i++) {
			m[i].role = arena_strdup(a, src->messages[i].role);
			m[i].content = arena_strdup(a, src->messages[i].content);
		}
		dst->messages = m;
	}
	if (src->completions) {
		store_rec_completion *c = arena_alloc(a, src->ncompletions * sizeof *c + 1);
		for (size_t i = 0; i < src->ncompletions; i++) {
			c[i].text = arena_strdup(a, src->completions[i].text);
			c[i].model = arena_strdup(a, src->completions[i].model);
		}
		dst->completions = c;
		unsigned char *h = arena_alloc(a, 32 * src->ncompletions);
		dst->completion_hashes = h;
	}
	if (src->prompt_text)
		dst->prompt_hash = arena_alloc(a, 32);
	/* hashed here, on the reading thread */
	store_record_hash(dst, (unsigned char *)dst->prompt_hash, (unsigned char *)dst->completion_hashes);
	if (src->labels) {
		store_rec_label *l = arena_alloc(a, src->nlabels * sizeof *l + 1);
		for (size_t i = 0; i < src->nlabels; i++) {
			l[i] = src->labels[i];
			l[i].verdict = arena_strdup(a, src->labels[i].verdict);
		}
		dst->labels = l;
	}
	dst->annotator = arena_strdup(a, src->annotator);
	dst->annotator_kind = arena_strdup(a, src->annotator_kind);
	if (src->nratings) {
		store_rec_rating *r = arena_alloc(a, src->nratings * sizeof *r);
		for (size_t i = 0; i < src->nratings; i++) {
			r[i] = src->ratings[i];
			r[i].aspect = arena_strdup(a, src->ratings[i].aspect);
		}
		dst->ratings = r;
	}
	if (src->nfeedback) {
		store_rec_feedback *f = arena_alloc(a, src->nfeedback * sizeof *f);
		memcpy(f, src->feedback, src->nfeedback * sizeof *f);
		dst->feedback = f;
	}
}

/* The annotator options of the import on a record: --annotator for one
 * that names none, --annotator-kind for every named one. */
static void apply_annotator(store_record *rec, const store_import_opts *opts)
{
	if (!rec->annotator && opts->annotator) {
		rec->annotator = opts->annotator;
		rec->annotator_kind = opts->annotator_kind ? opts->annotator_kind : "human";
	} else if (rec->annotator && opts->annotator_kind) {
		rec->annotator_kind = opts->annotator_kind;
	}
}

/* Parse one record's text into it; raw (the record as in the file) is
 * copied for the rejects file when keep_lines. A reason from the source (a
 * --map path missing) makes it a bad record without parsing. */
static void parse_item(imp_pipe *pp, imp_batch *b, imp_item *it, const char *text, size_t len, const char *raw,
		       size_t rawlen, const char *reason)
{
	store_record rec;
	it->parsed = !reason && store_import_parse(pp->p, text, len, &rec) == STORE_OK;
	if (it->parsed) {
		record_copy(&b->mem, &it->rec, &rec);
		const char *why;
		it->dropped = store_import_parser_dropped(pp->p, &why);
		if (it->dropped)
			it->drop_reason = arena_strdup(&b->mem, why);
	} else {
		it->reason = arena_strdup(&b->mem, reason ? reason : store_import_parser_errmsg(pp->p));
	}
	/* the record itself goes to the rejects file only (a parsed record
	 * may still be refused by the store) */
	if (raw != it->line)
		it->line = pp->keep_lines ? arena_strndup(&b->mem, raw, rawlen) : NULL;
	it->len = rawlen;
}

/* Under --format auto, the format from the first batch's records rather
 * than the first record alone: prompts (or candidates) mixed with one
 * format of pairs make a file of pairs whose prompt-only lines are bad,
 * not a file of prompts that would drop every pair's labels. */
static void presume_format(imp_pipe *pp, const imp_batch *b)
{
	int seen[STORE_IMPORT_CANDIDATES + 1] = {0}, npairs = 0;
	store_import_format pairs = STORE_IMPORT_AUTO;
	for (int i = 0; i < b->n; i++) {
		store_import_format f;
		const imp_item *it = &b->items[i];
		if (!it->blank && !it->reason && store_import_detect(it->line, it->len, &f) == STORE_OK &&
		    (size_t)f < sizeof seen / sizeof seen[0])
			seen[f] = 1;
	}
	for (int f = STORE_IMPORT_TRL; f <= STORE_IMPORT_SHAREGPT; f++)
		if (seen[f]) {
			pairs = (store_import_format)f;
			npairs++;
		}
	if (npairs == 1 && (seen[STORE_IMPORT_PROMPTS] || seen[STORE_IMPORT_CANDIDATES]))
		store_import_parser_presume(pp->p, pairs);
}

static void *reader_main(void *arg)
{
	imp_pipe *pp = arg;
	int tail = 0, last = 0, look = pp->look;
	while (!last) {
		pthread_mutex_lock(&pp->mu);
		while (pp->count == NBATCHES && !pp->stop)
			pthread_cond_wait(&pp->cv, &pp->mu);
		int stop = pp->stop;
		pthread_mutex_unlock(&pp->mu);
		if (stop)
			break;
		/* batch b is free: the writer is done with it */
		imp_batch *b = &pp->b[tail];
		arena_reset(&b->mem);
		b->n = 0;
		while (b->n < BATCH_LINES) {
			store__recitem ri;
			int got = store__recsrc_next(pp->src, &ri);
			if (got != 1) {
				if (got < 0) {
					pp->read_failed = 1;
					pp->read_line = store__recsrc_errline(pp->src);
					snprintf(pp->read_err, sizeof pp->read_err, "%s", store__recsrc_error(pp->src));
				}
				last = 1;
				break;
			}
			imp_item *it = &b->items[b->n++];
			memset(it, 0, sizeof *it);
			it->lineno = ri.line;
			it->recno = ri.recno;
			it->blank = ri.blank;
			if (it->blank)
				continue;
			if (look) { /* parsed below, once the batch is read */
				it->line = arena_strndup(&b->mem, ri.text, ri.len);
				it->len = ri.len;
				it->reason = ri.reason ? arena_strdup(&b->mem, ri.reason) : NULL;
				if (ri.raw != ri.text && pp->keep_lines) {
					it->raw = arena_strndup(&b->mem, ri.raw, ri.rawlen);
					it->rawlen = ri.rawlen;
				}
				continue;
			}
			parse_item(pp, b, it, ri.text, ri.len, ri.raw, ri.rawlen, ri.reason);
		}
		if (look) {
			look = 0;
			presume_format(pp, b);
			for (int i = 0; i < b->n; i++) {
				imp_item *it = &b->items[i];
				if (it->blank)
					continue;
				const char *raw = it->raw ? it->raw : it->line;
				size_t rawlen = it->raw ? it->rawlen : it->len;
				const char *reason = it->reason;
				it->reason = NULL;
				parse_item(pp, b, it, it->line, it->len, raw, rawlen, reason);
			}
		}
		b->last = last;
		b->offset = store__recsrc_offset(pp->src);
		tail = (tail + 1) % NBATCHES;
		pthread_mutex_lock(&pp->mu);
		pp->count++;
		pthread_cond_broadcast(&pp->cv);
		pthread_mutex_unlock(&pp->mu);
	}
	return NULL;
}

/* The writer's next batch (blocks until the reader filled one). */
static imp_batch *pipe_take(imp_pipe *pp)
{
	pthread_mutex_lock(&pp->mu);
	while (pp->count == 0)
		pthread_cond_wait(&pp->cv, &pp->mu);
	imp_batch *b = &pp->b[pp->head];
	pthread_mutex_unlock(&pp->mu);
	return b;
}

/* Give the writer's current batch back to the reader. */
static void pipe_release(imp_pipe *pp)
{
	pthread_mutex_lock(&pp->mu);
	pp->head = (pp->head + 1) % NBATCHES;
	pp->count--;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
}

int store_import_file(store *st, const char *path, const store_import_opts *opts, store_import_result *res)
{
	int rc = STORE_OK, in_tx = 0, started = 0, done = 0;
	imp_pipe *pp = xcalloc(1, sizeof *pp);
	pthread_t reader;
	util_buf rb = UTIL_BUF_INIT;
	char *src = NULL;
	unsigned long long offset = 0;
	long nitems = 0;
	char recno[40];

	memset(res, 0, sizeof *res);
	res->format = opts->format;
	src = opts->source ? xstrdup(opts->source) : store_import_default_source(path);
	snprintf(res->source, sizeof res->source, "%s", src);
	pthread_mutex_init(&pp->mu, NULL);
	pthread_cond_init(&pp->cv, NULL);
	char why[600];
	pp->src = store__recsrc_open(path, opts->container, opts->map, why, sizeof why);
	if (!pp->src) {
		seterr(res, "%s", why);
		rc = STORE_ERR;
		goto out;
	}
	snprintf(res->container, sizeof res->container, "%s", store__recsrc_kind(pp->src));
	pp->p = store_import_parser_new(opts->format);
	pp->keep_lines = opts->rejects != NULL;
	pp->look = opts->format == STORE_IMPORT_AUTO;
	if (pthread_create(&reader, NULL, reader_main, pp)) {
		seterr(res, "%s: cannot start the reading thread", path);
		rc = STORE_ERR;
		goto out;
	}
	started = 1;
	if ((rc = store__bulk_begin(st))) {
		seterr(res, "%s: %s", path, store_errmsg(st));
		goto out;
	}
	in_tx = 1;
	while (!done) {
		imp_batch *b = pipe_take(pp);
		for (int i = 0; i < b->n; i++) {
			imp_item *it = &b->items[i];
			const char *reason;
			long lineno = it->lineno;
			res->lines = lineno;
			if (opts->progress && (++nitems & 4095) == 0 &&
			    opts->progress(opts->progress_ud, lineno, offset)) {
				seterr(res, "%s:%ld: interrupted", path, lineno);
				rc = STORE_ERR;
				goto out;
			}
			if (it->blank)
				continue;
			if (it->parsed) {
				long before = res->counts.records, conflicts = res->counts.comparisons_conflict;
				apply_annotator(&it->rec, opts);
				it->rec.run_id = opts->run_id; /* provenance: the run and the line */
				it->rec.line = lineno;
				rc = store_add_record(st, &it->rec, src, opts->split, &res->counts);
				if (rc == STORE_OK && it->dropped) {
					res->completions_dropped += it->dropped;
					if (opts->rejects && write_reject(opts->rejects, &rb, path, lineno, it->drop_reason,
									  it->line, it->len)) {
						seterr(res, "writing the rejects file: %s", strerror(errno));
						rc = STORE_ERR;
						goto out;
					}
				}
				if (rc == STORE_OK) {
					if (res->counts.comparisons_conflict != conflicts &&
					    res->nconflict_lines < (int)(sizeof res->conflict_lines / sizeof res->conflict_lines[0]))
						res->conflict_lines[res->nconflict_lines++] = lineno;
					continue;
				}
				/* The store checks a record before writing any of it
				 * (and counts it only then): a refusal before that
				 * point is a bad line like any other; later, it is
				 * fatal. */
				if (rc != STORE_EINVAL || res->counts.records != before) {
					seterr(res, "%s:%ld: %s", path, lineno, store_errmsg(st));
					goto out;
				}
				reason = store_errmsg(st);
			} else {
				reason = it->reason;
			}
			/* a JSON array's records are numbered too: several may
			 * share a line */
			recno[0] = '\0';
			if (it->recno)
				snprintf(recno, sizeof recno, " record %ld:", it->recno);
			if (!opts->rejects) {
				/* One transaction per file: say what was lost and
				 * how to keep the good records. */
				seterr(res,
				       "%s:%ld:%s %s (after %ld good record%s; nothing of this file was imported: "
				       "--skip-bad FILE imports the good records and writes the bad ones to FILE)",
				       path, lineno, recno, reason, res->counts.records, res->counts.records == 1 ? "" : "s");
				rc = STORE_EINVAL;
				goto out;
			}
			if (write_reject(opts->rejects, &rb, path, lineno, reason, it->line, it->len)) {
				seterr(res, "writing the rejects file: %s", strerror(errno));
				rc = STORE_ERR;
				goto out;
			}
			res->rejected++;
			rc = STORE_OK;
		}
		offset = b->offset;
		done = b->last;
		pipe_release(pp);
	}
	if (pp->read_failed && pp->read_line) {
		seterr(res, "%s:%ld: %s (%ld good record%s before it); nothing of this file was imported", path,
		       pp->read_line, pp->read_err, res->counts.records, res->counts.records == 1 ? "" : "s");
		rc = STORE_ERR;
		goto out;
	}
	if (pp->read_failed) {
		seterr(res, "%s: %s, after %ld line%s (%ld good record%s); nothing of this file was imported", path,
		       pp->read_err, res->lines, res->lines == 1 ? "" : "s", res->counts.records,
		       res->counts.records == 1 ? "" : "s");
		rc = STORE_ERR;
		goto out;
	}
	if (res->counts.records == 0 && res->rejected == 0) {
		seterr(res, "%s: no records", path);
		rc = STORE_EINVAL;
		goto out;
	}
	if (res->counts.records == 0) {
		seterr(res, "%s: no good records (all %ld written to the rejects file); nothing imported", path,
		       res->rejected);
		rc = STORE_EINVAL;
		goto out;
	}
	if (opts->rejects && fflush(opts->rejects)) {
		seterr(res, "writing the rejects file: %s", strerror(errno));
		rc = STORE_ERR;
		goto out;
	}
	if ((rc = store__bulk_commit(st))) {
		seterr(res, "%s: %s", path, store_errmsg(st));
		goto out;
	}
	in_tx = 0;
	if (opts->progress)
		(void)opts->progress(opts->progress_ud, res->lines, offset);
out:
	if (in_tx)
		store__bulk_rollback(st);
	if (started) {
		pthread_mutex_lock(&pp->mu);
		pp->stop = 1;
		pthread_cond_broadcast(&pp->cv);
		pthread_mutex_unlock(&pp->mu);
		pthread_join(reader, NULL);
	}
	if (pp->p) {
		res->format = store_import_parser_format(pp->p);
		snprintf(res->variant, sizeof res->variant, "%s", store_import_parser_variant(pp->p));
	}
	store_import_parser_free(pp->p);
	store__recsrc_close(pp->src);
	for (int i = 0; i < NBATCHES; i++)
		arena_free(&pp->b[i].mem);
	pthread_mutex_destroy(&pp->mu);
	pthread_cond_destroy(&pp->cv);
	free(pp);
	util_buf_free(&rb);
	free(src);
	return rc;
}
