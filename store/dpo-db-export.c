/* dpo-db-export.c: `dpo-db export [OPTIONS] OUT`: the resolved preference
 * pairs as JSON Lines in the trl, trl-conversational or hh layout. */
#include "config.h"
#include "store/dpo_db.h"
#include "store/provenance.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/xmalloc.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

enum export_format { EXP_TRL, EXP_TRL_CONV, EXP_HH, EXP_KTO };

typedef struct export_ctx {
	enum export_format fmt;
	util_buf line;
	FILE *f;
	gzFile gz;
	long n;
	int err;
	const char *errwhat;
	store *st;     /* for --with-meta */
	int with_meta;
} export_ctx;

/* Append compact JSON (as the store writes messages) with a space after
 * each ',' and ':' outside strings, the layout of every exported line. */
static void add_spaced_json(util_buf *b, const char *json)
{
	int in_str = 0;
	for (const char *p = json; *p; p++) {
		util_buf_addc(b, *p);
		if (in_str) {
			if (*p == '\\' && p[1])
				util_buf_addc(b, *++p);
			else if (*p == '"')
				in_str = 0;
		} else if (*p == '"') {
			in_str = 1;
		} else if (*p == ',' || *p == ':') {
			util_buf_addc(b, ' ');
		}
	}
}

static void add_assistant(util_buf *b, const char *text)
{
	util_buf_adds(b, "[{\"role\": \"assistant\", \"content\": ");
	add_str(b, text);
	util_buf_adds(b, "}]");
}

static int starts_with(const char *s, const char *pre)
{
	return !strncmp(s, pre, strlen(pre));
}

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && !strcmp(s + n - m, suf);
}

/* The HH transcript of a prompt, through the final "\n\nAssistant:". A plain
 * prompt that already is such a transcript (as the hh import keeps them) is
 * used as is, and *verbatim set: its completions carry their own leading
 * space, so prompt + completion is the imported transcript. */
static int hh_prefix(const store_pair *p, util_buf *out, int *verbatim)
{
	util_buf_reset(out);
	*verbatim = 0;
	if (p->prompt_text) {
		if (starts_with(p->prompt_text, "\n\nHuman:") && ends_with(p->prompt_text, "\n\nAssistant:")) {
			util_buf_adds(out, p->prompt_text);
			*verbatim = 1;
		} else {
			util_buf_adds(out, "\n\nHuman: ");
			util_buf_adds(out, p->prompt_text);
			util_buf_adds(out, "\n\nAssistant:");
		}
		return 0;
	}
	cJSON *msgs = cJSON_Parse(p->prompt_messages_json);
	if (!cJSON_IsArray(msgs)) {
		cJSON_Delete(msgs);
		return -1;
	}
	/* HH has no system turn: system text opens the next human turn,
	 * separated by a blank line. */
	const cJSON *m;
	const char *pending_system = NULL;
	cJSON_ArrayForEach(m, msgs)
	{
		const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
		const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
		if (!role || !content) {
			cJSON_Delete(msgs);
			return -1;
		}
		if (!strcmp(role, "system")) {
			if (pending_system) {
				util_buf_adds(out, "\n\nHuman: ");
				util_buf_adds(out, pending_system);
			}
			pending_system = content;
			continue;
		}
		if (!strcmp(role, "user")) {
			util_buf_adds(out, "\n\nHuman: ");
			if (pending_system) {
				util_buf_adds(out, pending_system);
				util_buf_adds(out, "\n\n");
			}
		} else {
			if (pending_system) {
				util_buf_adds(out, "\n\nHuman: ");
				util_buf_adds(out, pending_system);
			}
			util_buf_adds(out, "\n\nAssistant: ");
		}
		pending_system = NULL;
		util_buf_adds(out, content);
	}
	if (pending_system) {
		util_buf_adds(out, "\n\nHuman: ");
		util_buf_adds(out, pending_system);
	}
	util_buf_adds(out, "\n\nAssistant:");
	cJSON_Delete(msgs);
	return 0;
}

/* Write the line in x->line; nonzero (x->err set) on a write error. */
static int write_line(export_ctx *x)
{
	util_buf *b = &x->line;
	if (x->gz) {
		if (gzwrite(x->gz, b->data, (unsigned)b->len) != (int)b->len) {
			x->err = 1;
			return 1;
		}
	} else if (fwrite(b->data, 1, b->len, x->f) != b->len) {
		x->err = 1;
		return 1;
	}
	x->n++;
	return 0;
}

/* One binary label in TRL's KTO layout: {"prompt", "completion", "label"},
 * strings, or for a conversation its messages and a list of one assistant
 * message. */
static int export_feedback(void *ud, const store_feedback *f)
{
	export_ctx *x = ud;
	util_buf *b = &x->line;
	util_buf_reset(b);
	util_buf_adds(b, "{\"prompt\": ");
	if (f->prompt_messages_json) {
		add_spaced_json(b, f->prompt_messages_json);
		util_buf_adds(b, ", \"completion\": ");
		add_assistant(b, f->completion);
	} else {
		add_str(b, f->prompt_text);
		util_buf_adds(b, ", \"completion\": ");
		add_str(b, f->completion);
	}
	util_buf_addf(b, ", \"label\": %s}\n", f->good ? "true" : "false");
	return write_line(x);
}

static int export_pair(void *ud, const store_pair *p)
{
	export_ctx *x = ud;
	util_buf *b = &x->line;
	util_buf_reset(b);
	if (x->fmt == EXP_HH) {
		util_buf pre = UTIL_BUF_INIT, side = UTIL_BUF_INIT;
		int verbatim;
		if (hh_prefix(p, &pre, &verbatim)) {
			util_buf_free(&pre);
			util_warn("prompt %lld: stored messages are not valid JSON", (long long)p->prompt_id);
			x->err = 1;
			return 1;
		}
		for (int i = 0; i < 2; i++) {
			util_buf_reset(&side);
			util_buf_add(&side, pre.data, pre.len);
			if (!verbatim)
				util_buf_addc(&side, ' ');
			util_buf_adds(&side, i ? p->rejected : p->chosen);
			util_buf_adds(b, i ? ", \"rejected\": " : "{\"chosen\": ");
			util_buf_add_json_string(b, side.data, side.len);
		}
		util_buf_free(&pre);
		util_buf_free(&side);
	} else {
		int conv = x->fmt == EXP_TRL_CONV || p->prompt_messages_json;
		util_buf_adds(b, "{\"prompt\": ");
		if (p->prompt_messages_json) {
			add_spaced_json(b, p->prompt_messages_json);
		} else if (conv) {
			util_buf_adds(b, "[{\"role\": \"user\", \"content\": ");
			add_str(b, p->prompt_text);
			util_buf_adds(b, "}]");
		} else {
			add_str(b, p->prompt_text);
		}
		util_buf_adds(b, ", \"chosen\": ");
		conv ? add_assistant(b, p->chosen) : add_str(b, p->chosen);
		util_buf_adds(b, ", \"rejected\": ");
		conv ? add_assistant(b, p->rejected) : add_str(b, p->rejected);
	}
	if (x->with_meta) {
		util_buf_adds(b, ", \"meta\": ");
		if (store_pair_meta(x->st, p, b)) {
			util_warn("%s", store_errmsg(x->st));
			x->err = 2;
			return 1;
		}
	}
	util_buf_adds(b, "}\n");
	return write_line(x);
}

typedef struct export_opts {
	const char *db, *format, *split, *policy;
	long min;
	int with_meta;
} export_opts;

/* --resolve's choices are store_policies (store.h). */
static const util_opt export_table[] = {
	UTIL_OPT_DB(export_opts, db),
	{"format", 0, UTIL_OPT_ENUM, offsetof(export_opts, format), .def = "trl",
	 .choices = "trl|trl-conversational|hh|kto", .arg = "FORMAT",
	 .help = "trl (strings; messages for a conversation,\n"
		 "and for every pair of a file that has both),\n"
		 "trl-conversational (always messages), hh\n"
		 "(HH-RLHF transcripts) or kto (the binary\n"
		 "feedback, not pairs: {prompt, completion,\n"
		 "label})"},
	{"split", 0, UTIL_OPT_STRING, offsetof(export_opts, split), .arg = "S",
	 .help = "only prompts of split S (default: every split)"},
	{"resolve", 0, UTIL_OPT_ENUM, offsetof(export_opts, policy), .def = "majority",
	 .choices = "majority|humans-over-judges|unanimous|consistent-judge", .arg = "POLICY",
	 .help = "how comparisons become pairs: majority,\n"
		 "humans-over-judges, unanimous or\n"
		 "consistent-judge"},
	{"min-annotations", 0, UTIL_OPT_INT, offsetof(export_opts, min), .def = "1", .range = "[0, 1000000]",
	 .arg = "N", .help = "only pairs decided by at least N agreeing\na/b votes"},
	{"with-meta", 0, UTIL_OPT_FLAG, offsetof(export_opts, with_meta),
	 .help = "add \"meta\" to each line: source, scores,\n"
		 "votes, annotators and runs of the pair"},
	UTIL_OPT_TABLE_END,
};

/* For check_layout: the first pair of each prompt kind. */
typedef struct kinds_seen {
	int64_t text, chat; /* prompt ids, 0: none yet */
} kinds_seen;

static int see_kind(void *ud, const store_pair *p)
{
	kinds_seen *k = ud;
	int64_t *slot = p->prompt_messages_json ? &k->chat : &k->text;
	if (!*slot)
		*slot = p->prompt_id;
	return k->text && k->chat;
}

/* --format trl writes a plain prompt as a string and a conversation as a
 * list of messages: one file of both would have a "prompt" column of two
 * types, which datasets refuses. So when the pairs to export have both
 * kinds of prompt, the whole file is written in the conversational layout
 * (as --format trl-conversational: a plain prompt becomes one user message),
 * and a note says so. *conv is set then; -1 on a read error (said), else 0.
 * A cheap look at the labelled prompts first; the pairs are only walked
 * when it finds both kinds. */
static int check_layout(store *st, const export_opts *o, int *conv)
{
	*conv = 0;
	int mask;
	kinds_seen k = {0, 0};
	if (store_labelled_prompt_kinds(st, o->split, &mask) ||
	    (mask == 3 && store_pairs_foreach(st, o->split, o->policy, (int)o->min, see_kind, &k) < 0)) {
		util_warn("%s", store_errmsg(st));
		return -1;
	}
	if (!k.text || !k.chat)
		return 0;
	util_warn("note: the pairs have plain-text prompts (e.g. prompt %lld) and conversations (e.g. prompt %lld); "
		  "one \"prompt\" column cannot be both a string and a list of messages (datasets refuses it), so "
		  "every pair is written as messages, a plain prompt as one user message, as --format "
		  "trl-conversational does",
		  (long long)k.text, (long long)k.chat);
	*conv = 1;
	return 0;
}

/* Split names and prompt counts, for check_split. */
typedef struct split_list {
	util_buf names;
	int found;
	const char *want;
} split_list;

static int add_split(void *ud, const store_stat *s)
{
	split_list *l = ud;
	if (!strcmp(s->key, l->want))
		l->found = 1;
	util_buf_addf(&l->names, "%s%s (%ld prompt%s)", l->names.len ? ", " : "", s->key, s->value,
		      s->value == 1 ? "" : "s");
	return 0;
}

/* 0 when some prompt is in split name; else say which splits there are. */
static int check_split(store *st, const char *name)
{
	split_list l = {UTIL_BUF_INIT, 0, name};
	int rc = store_splits_foreach(st, add_split, &l);
	if (rc)
		util_warn("%s", store_errmsg(st));
	else if (!l.found)
		util_warn("no split \"%s\" in %s; the splits are: %s", name, store_path(st),
			  l.names.len ? util_buf_str(&l.names) : "none (no prompts)");
	util_buf_free(&l.names);
	return rc || !l.found;
}

int db_cmd_export(int argc, char **argv)
{
	static util_cli cli = {
		.name = "dpo-db export",
		.synopsis = "[OPTIONS] OUT",
		.summary = "Write the resolved preference pairs to OUT as JSON Lines, one pair per line\n"
			   "(OUT - is standard output; gzip when OUT ends in .gz). A file is written to a\n"
			   "temporary name and renamed, so readers never see half a file. --format kto\n"
			   "writes the binary feedback instead, one label per line; the pair formats\n"
			   "leave binary feedback out.",
		.opts = export_table,
		.min_args = 1,
		.max_args = 1,
	};
	export_opts o = {0};
	util_cli_parse(&cli, &o, argc, argv);
	const char *out = cli.args[0];
	int to_stdout = !strcmp(out, "-"), gz = !to_stdout && ends_with(out, ".gz");
	char *tmp = NULL;
	int fd = -1, status = UTIL_EXIT_FAIL, rc;
	export_ctx x = {.fmt = !strcmp(o.format, "hh")    ? EXP_HH
			       : !strcmp(o.format, "trl") ? EXP_TRL
			       : !strcmp(o.format, "kto") ? EXP_KTO
							  : EXP_TRL_CONV};

	char why[512];
	if (util_check_output(out, db_path(o.db), NULL, 0, why, sizeof why)) {
		util_warn("%s: %s", out, why);
		return UTIL_EXIT_FAIL;
	}
	store *st = db_open(db_path(o.db));
	if (!st)
		return UTIL_EXIT_FAIL;
	if (o.split && check_split(st, o.split))
		goto out;
	int conv = 0;
	if (x.fmt == EXP_TRL && check_layout(st, &o, &conv))
		goto out;
	if (conv)
		x.fmt = EXP_TRL_CONV;
	x.st = st;
	x.with_meta = o.with_meta;
	if (to_stdout) {
		x.f = stdout;
	} else {
		tmp = xasprintf("%s.tmp.XXXXXX", out);
		if ((fd = mkstemp(tmp)) < 0) {
			util_warn("%s: cannot create a temporary file: %s", out, strerror(errno));
			free(tmp);
			tmp = NULL;
			goto out;
		}
		mode_t um = umask(0);
		umask(um);
		fchmod(fd, 0666 & ~um); /* mkstemp made it 0600 */
		if (gz) {
			int fd2 = dup(fd);
			if (fd2 < 0 || !(x.gz = gzdopen(fd2, "wb"))) {
				util_warn("%s: %s", out, strerror(errno));
				if (fd2 >= 0)
					close(fd2);
				goto out;
			}
		} else if (!(x.f = fdopen(dup(fd), "wb"))) {
			util_warn("%s: %s", out, strerror(errno));
			goto out;
		}
	}
	if (x.fmt == EXP_KTO)
		rc = store_feedback_foreach(st, o.split, export_feedback, &x);
	else
		rc = store_pairs_foreach(st, o.split, o.policy, (int)o.min, export_pair, &x);
	if (rc < 0) {
		util_warn("%s", store_errmsg(st));
		goto out;
	}
	if (x.err == 2)
		goto out;
	if (x.err == 1) {
		util_warn("%s: write error: %s", out, strerror(errno));
		goto out;
	}
	if (x.gz) {
		int zrc = gzclose(x.gz);
		x.gz = NULL;
		if (zrc != Z_OK) {
			util_warn("%s: write error (gzip)", out);
			goto out;
		}
	} else if (to_stdout) {
		if (fflush(stdout)) {
			util_warn("standard output: %s", strerror(errno));
			goto out;
		}
	} else {
		int e = fclose(x.f);
		x.f = NULL;
		if (e) {
			util_warn("%s: write error: %s", out, strerror(errno));
			goto out;
		}
	}
	if (tmp) {
		if (fsync(fd) || close(fd)) {
			fd = -1;
			util_warn("%s: %s", out, strerror(errno));
			goto out;
		}
		fd = -1;
		if (rename(tmp, out)) {
			util_warn("%s: cannot rename %s: %s", out, tmp, strerror(errno));
			goto out;
		}
		util_fsync_parent(out); /* make the rename durable (best effort) */
		free(tmp);
		tmp = NULL;
	}
	if (x.fmt == EXP_KTO)
		util_warn("wrote %ld binary label%s (kto) to %s", x.n, x.n == 1 ? "" : "s",
			  to_stdout ? "standard output" : out);
	else
		util_warn("wrote %ld pair%s (%s, %s) to %s", x.n, x.n == 1 ? "" : "s", o.format, o.policy,
			  to_stdout ? "standard output" : out);
	status = UTIL_EXIT_OK;
out:
	if (x.gz)
		gzclose(x.gz);
	if (x.f && !to_stdout)
		fclose(x.f);
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	util_buf_free(&x.line);
	store_free(st);
	return status;
}
