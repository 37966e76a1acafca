/* store_runs.c: runs (one row per invocation of a program that changes the
 * store or measures something) and their metrics.
 *
 * A run is started by the process that does the work; the row keeps its
 * pid, host name and a token of when the process started. util_die closes
 * it as failed (a hook registered at start); a clean interrupt ends it
 * "interrupted" through store_run_end. A process killed outright cannot
 * write anything: its row stays "running", and readers on the same host
 * see that the process is gone and report the run as "interrupted". That
 * is computed on every read, not written back: readers stay read-only (no
 * write lock, no change to a store someone only looked at), and nothing is
 * lost, since the row keeps what the process wrote. */
#include "config.h"
#include "store/store_int.h"
#include "util/cli.h"
#include "util/cmdline.h"
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- who runs: host, pid, start token ------------------------------------ */

static char self_host[256];
static char boot_id[64];

static void read_identity(void)
{
	if (gethostname(self_host, sizeof self_host - 1) != 0)
		self_host[0] = '\0';
	self_host[sizeof self_host - 1] = '\0';
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f) {
		if (!fgets(boot_id, sizeof boot_id, f))
			boot_id[0] = '\0';
		boot_id[strcspn(boot_id, "\r\n")] = '\0';
		fclose(f);
	}
}

/* This machine's host name ("" when unknown) and boot id (Linux; ""
 * elsewhere), read once. */
static const char *host_name(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, read_identity);
	return self_host;
}

enum { PROC_ALIVE, PROC_DEAD, PROC_NONE, PROC_UNKNOWN };

/* The start token of process pid ("BOOT_ID/STARTTIME", STARTTIME in clock
 * ticks after boot, from /proc/PID/stat) into tok. PROC_ALIVE when read,
 * PROC_DEAD for a zombie, PROC_NONE when there is no such process,
 * PROC_UNKNOWN when /proc cannot tell (not Linux, not mounted). */
static int proc_token(long pid, char *tok, size_t n)
{
	host_name(); /* reads the boot id */
	char path[64], line[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT || errno == ESRCH) {
			FILE *self = fopen("/proc/self/stat", "r");
			if (self) { /* /proc works: the process is gone */
				fclose(self);
				return PROC_NONE;
			}
		}
		return PROC_UNKNOWN;
	}
	size_t len = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[len] = '\0';
	/* "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	 * so fields are counted after the last ')'; state is field 3, the
	 * start time field 22 */
	char *p = strrchr(line, ')');
	if (!p)
		return PROC_UNKNOWN;
	p++;
	char state = 0;
	unsigned long long start = 0;
	int field = 2, got = 0;
	while (*p && field < 22) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		field++;
		if (field == 3)
			state = *p;
		if (field == 22) {
			start = strtoull(p, NULL, 10);
			got = 1;
		}
		while (*p && *p != ' ')
			p++;
	}
	if (!got)
		return PROC_UNKNOWN;
	if (state == 'Z' || state == 'X')
		return PROC_DEAD;
	snprintf(tok, n, "%s/%llu", boot_id, start);
	return PROC_ALIVE;
}

int store__run_gone(int64_t pid, const char *host, const char *proc_start)
{
	if (pid <= 0 || !host || !*host || strcmp(host, host_name()))
		return 0;
	if (pid == (int64_t)getpid()) { /* this process, or an earlier one with its pid */
		long me;
		const char *h, *tok;
		store__self_identity(&me, &h, &tok);
		return proc_start && *proc_start && tok && strcmp(tok, proc_start) != 0;
	}
	if (proc_start && *proc_start) {
		char tok[128];
		switch (proc_token((long)pid, tok, sizeof tok)) {
		case PROC_ALIVE: return strcmp(tok, proc_start) != 0; /* else the pid was reused */
		case PROC_DEAD:
		case PROC_NONE: return 1;
		default: break; /* ask kill() */
		}
	}
	if (kill((pid_t)pid, 0) == 0)
		return 0;
	return errno == ESRCH;
}

void store__self_identity(long *pid, const char **host, const char **tok)
{
	/* read once per process (again after a fork): a judge run asks for
	 * every claim it takes, and /proc costs an open and a read */
	static char token[128];
	static long token_pid;
	static int have;
	long me = (long)getpid();
	if (token_pid != me) {
		have = proc_token(me, token, sizeof token) == PROC_ALIVE;
		token_pid = me;
	}
	*pid = me;
	*host = host_name();
	*tok = have ? token : NULL;
}

int store__run_checkable(const store_run *r)
{
	return r->pid > 0 && r->host && *r->host && !strcmp(r->host, host_name());
}

/* ---- starting and ending ------------------------------------------------------- */

/* util_die's hook: close the open run as failed (after rolling back a
 * transaction left open), in the process that started it only. */
static void close_on_die(void *ctx)
{
	store *st = ctx;
	if (!st->db || !st->open_run || st->open_run_pid != (long)getpid())
		return;
	if (st->bulk_fk_off)
		store__bulk_rollback(st);
	else
		store_rollback(st);
	store_run_end(st, st->open_run, "failed", NULL);
}

void store__run_forget(store *st)
{
	if (st->open_run)
		util_on_die_remove(close_on_die, st);
	st->open_run = 0;
	st->open_run_pid = 0;
}

/* util_die closes the latest run started (or taken over) through this
 * handle, by process pid. */
static void watch_run(store *st, int64_t id, long pid)
{
	store__run_forget(st);
	if (util_on_die(close_on_die, st) == 0) {
		st->open_run = id;
		st->open_run_pid = pid;
	}
}

int store_run_begin(store *st, const char *kind, const char *command, const char *params_json, int64_t *run_id)
{
	if (!kind || !*kind || !command)
		return store__err(st, STORE_EINVAL, "store_run_begin: kind and command are required");
	if (!st->db)
		return store__err(st, STORE_EINVAL, "store_run_begin: the store is not open");
	sqlite3_stmt *s = store__prepare(st, "INSERT INTO runs(kind, command, params, started_at, pid, host, "
					     "proc_start) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	if (!s)
		return STORE_ERR;
	char tok[128];
	long pid = (long)getpid();
	const char *host = host_name();
	int rc = STORE_OK;
	store__bind_text(s, 1, kind);
	store__bind_text(s, 2, command);
	store__bind_text(s, 3, params_json);
	store__bind_text(s, 4, store__now(st));
	sqlite3_bind_int64(s, 5, pid);
	store__bind_text(s, 6, *host ? host : NULL);
	store__bind_text(s, 7, proc_token(pid, tok, sizeof tok) == PROC_ALIVE ? tok : NULL);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = store__dberr(st, "record run");
	} else {
		int64_t id = sqlite3_last_insert_rowid(st->db);
		if (run_id)
			*run_id = id;
		watch_run(st, id, pid);
	}
	sqlite3_finalize(s);
	return rc;
}

int store_run_start(store *st, const char *kind, int argc, char **argv, const char *params_json,
		    int64_t *run_id)
{
	if (argc < 1 || !argv)
		return store__err(st, STORE_EINVAL, "store_run_start: no command line");
	util_buf cmd = UTIL_BUF_INIT;
	util_cmdline_quote(argc, argv, &cmd);
	int rc = store_run_begin(st, kind, util_buf_str(&cmd), params_json, run_id);
	util_buf_free(&cmd);
	return rc;
}

/* store_run_continue's look at the run before taking it over. */
struct run_look {
	const char *kind;
	int found, live;
	long pid;
	char host[256];
};

static int look_run(void *ud, const store_run *r)
{
	struct run_look *l = ud;
	l->found = !strcmp(r->kind, l->kind);
	l->live = !strcmp(r->status, "running");
	l->pid = (long)r->pid;
	snprintf(l->host, sizeof l->host, "%s", r->host ? r->host : "");
	return 0;
}

int store_run_continue(store *st, int64_t run_id, const char *kind)
{
	if (!st->db || !kind)
		return store__err(st, STORE_EINVAL, "store_run_continue: the store is not open, or no kind");
	struct run_look l = {.kind = kind};
	int rc = store_run_get(st, run_id, look_run, &l);
	if (rc < 0)
		return rc;
	if (!l.found)
		return store__err(st, STORE_ENOTFOUND, "no %s run with id %lld", kind, (long long)run_id);
	if (l.live)
		return store__err(st, STORE_EBUSY, "run %lld is still running (process %ld on %s)",
				  (long long)run_id, l.pid, *l.host ? l.host : "an unknown host");
	sqlite3_stmt *s = store__prepare(st, "UPDATE runs SET status = 'running', ended_at = NULL, pid = ?2, "
					     "host = ?3, proc_start = ?4 WHERE id = ?1");
	if (!s)
		return STORE_ERR;
	char tok[128];
	long pid = (long)getpid();
	const char *host = host_name();
	sqlite3_bind_int64(s, 1, run_id);
	sqlite3_bind_int64(s, 2, pid);
	store__bind_text(s, 3, *host ? host : NULL);
	store__bind_text(s, 4, proc_token(pid, tok, sizeof tok) == PROC_ALIVE ? tok : NULL);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = store__dberr(st, "take over run");
	} else {
		rc = STORE_OK;
		watch_run(st, run_id, pid);
	}
	sqlite3_finalize(s);
	return rc;
}

int store_run_end(store *st, int64_t run_id, const char *status, const char *summary_json)
{
	if (!status || (strcmp(status, "ok") && strcmp(status, "failed") && strcmp(status, "interrupted")))
		return store__err(st, STORE_EINVAL, "store_run_end: status must be ok, failed or interrupted, not \"%s\"",
				  status ? status : "(null)");
	if (run_id == st->open_run)
		store__run_forget(st);
	sqlite3_stmt *s = store__prepare(st, "UPDATE runs SET status = ?2, summary = ?3, ended_at = ?4 "
					     "WHERE id = ?1");
	if (!s)
		return STORE_ERR;
	int rc = STORE_OK;
	sqlite3_bind_int64(s, 1, run_id);
	store__bind_text(s, 2, status);
	store__bind_text(s, 3, summary_json);
	store__bind_text(s, 4, store__now(st));
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(st, "end run");
	else if (sqlite3_changes(st->db) == 0)
		rc = store__err(st, STORE_ENOTFOUND, "no run with id %lld", (long long)run_id);
	sqlite3_finalize(s);
	return rc;
}

/* ---- reading ----------------------------------------------------------------- */

#define RUN_COLUMNS "id, kind, command, params, started_at, ended_at, status, summary, pid, host, proc_start"

/* The run of the current row of s (selected with RUN_COLUMNS), a running
 * one whose process is gone read as interrupted. */
static store_run run_row(sqlite3_stmt *s)
{
	store_run r = {
		.id = sqlite3_column_int64(s, 0),
		.kind = store__col_text(s, 1),
		.command = store__col_text(s, 2),
		.params_json = store__col_text(s, 3),
		.started_at = store__col_text(s, 4),
		.ended_at = store__col_text(s, 5),
		.status = store__col_text(s, 6),
		.summary_json = store__col_text(s, 7),
		.pid = sqlite3_column_int64(s, 8),
		.host = store__col_text(s, 9),
	};
	if (r.status && !strcmp(r.status, "running") && store__run_gone(r.pid, r.host, store__col_text(s, 10))) {
		r.status = "interrupted";
		r.abandoned = 1;
	}
	return r;
}

int store_run_get(store *st, int64_t run_id, store_run_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, run_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		store_run r = run_row(s);
		rc = cb(ud, &r);
	} else if (rc == SQLITE_DONE) {
		rc = store__err(st, STORE_ENOTFOUND, "no run with id %lld", (long long)run_id);
	} else {
		rc = store__dberr(st, "read run");
	}
	sqlite3_finalize(s);
	return rc;
}

int store_runs_foreach(store *st, const char *kind, store_run_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT " RUN_COLUMNS " FROM runs WHERE ?1 IS NULL OR kind = ?1 "
					     "ORDER BY id");
	if (!s)
		return STORE_ERR;
	store__bind_text(s, 1, kind);
	int rc, r = STORE_OK;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_run run = run_row(s);
		if ((r = cb(ud, &run)))
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = store__dberr(st, "read runs");
	sqlite3_finalize(s);
	return r;
}

/* ---- metrics ------------------------------------------------------------------ */

int store_metric_add(store *st, int64_t run_id, long step, const char *name, double value)
{
	if (!name || !*name)
		return store__err(st, STORE_EINVAL, "store_metric_add: a metric needs a name");
	sqlite3_stmt *s = store__stmt(st, SS_METRIC_ADD);
	if (!s)
		return STORE_ERR;
	int rc = STORE_OK;
	sqlite3_bind_int64(s, 1, run_id);
	sqlite3_bind_int64(s, 2, step);
	store__bind_text(s, 3, name);
	if (isnan(value))
		sqlite3_bind_null(s, 4);
	else
		sqlite3_bind_double(s, 4, value);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = store__dberr(st, "add metric");
	sqlite3_reset(s);
	return rc;
}

int store_metrics_foreach(store *st, int64_t run_id, const char *name, store_metric_cb cb, void *ud)
{
	sqlite3_stmt *s = store__prepare(st, "SELECT run_id, step, name, value FROM metrics WHERE run_id = ?1 "
					     "AND (?2 IS NULL OR name = ?2) ORDER BY name, step");
	if (!s)
		return STORE_ERR;
	sqlite3_bind_int64(s, 1, run_id);
	store__bind_text(s, 2, name);
	int rc, r = STORE_OK;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		store_metric m = {
			.run_id = sqlite3_column_int64(s, 0),
			.step = (long)sqlite3_column_int64(s, 1),
			.name = store__col_text(s, 2),
			.value = sqlite3_column_type(s, 3) == SQLITE_NULL ? NAN : sqlite3_column_double(s, 3),
		};
		if ((r = cb(ud, &m)))
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = store__dberr(st, "read metrics");
	sqlite3_finalize(s);
	return r;
}

/* ---- for store_check ------------------------------------------------------------ */

struct check_runs {
	long n, ok, failed, interrupted, running, abandoned, unchecked;
	util_buf ids; /* of the abandoned runs, the first 10 */
};

static int check_run(void *ud, const store_run *r)
{
	struct check_runs *c = ud;
	c->n++;
	const char *s = r->status ? r->status : "";
	if (!strcmp(s, "ok"))
		c->ok++;
	else if (!strcmp(s, "failed"))
		c->failed++;
	else if (!strcmp(s, "interrupted"))
		c->interrupted++;
	else if (!strcmp(s, "running"))
		c->running++;
	if (r->abandoned && c->abandoned++ < 10)
		util_buf_addf(&c->ids, "%s%lld", c->abandoned > 1 ? ", " : "", (long long)r->id);
	else if (!strcmp(s, "running") && !store__run_checkable(r))
		c->unchecked++;
	return 0;
}

int store__check_runs(store *st, util_buf *out)
{
	struct check_runs c = {0};
	int rc = store_runs_foreach(st, NULL, check_run, &c);
	if (rc) {
		util_buf_free(&c.ids);
		return rc;
	}
	util_buf_addf(out, "runs: %ld (%ld ok, %ld failed, %ld interrupted, %ld running)\n", c.n, c.ok, c.failed,
		      c.interrupted, c.running);
	if (c.abandoned)
		util_buf_addf(out, "runs interrupted: %ld left \"running\" by a process that is gone (run%s %s%s)\n",
			      c.abandoned, c.abandoned > 1 ? "s" : "", util_buf_str(&c.ids),
			      c.abandoned > 10 ? ", ..." : "");
	if (c.unchecked)
		util_buf_addf(out, "runs running: %ld of another host or recorded without a process id: "
			      "not checked from here\n", c.unchecked);
	util_buf_free(&c.ids);
	return STORE_OK;
}
