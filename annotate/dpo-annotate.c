/* dpo-annotate: a keyboard-first terminal UI to label pairs of completions
 * (or rank K of them) into the store. This file parses options and owns
 * the screen: one loop prepares the layout, draws, and hands keys to the
 * handlers (keys.c). The model is annotate/session.c. */
#include "config.h"
#include "annotate/gold.h"
#include "annotate/margins.h"
#include "annotate/session.h"
#include "annotate/ui.h"
#include "store/store.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/opt.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t screen_on;

static void restore_terminal(void)
{
	if (screen_on) {
		screen_on = 0;
		endwin();
	}
}

static void on_stop(int sig)
{
	stop_signal = sig;
}

/* A fatal signal: give the terminal back, then die of the same signal. */
static void on_fatal(int sig)
{
	if (screen_on) {
		screen_on = 0;
		endwin();
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_signals(void)
{
	struct sigaction sa = {0};
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_fatal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
}

static char *read_guidelines(const char *path)
{
	size_t n;
	char *buf = util_read_file(path, &n);
	if (!buf)
		util_die("%s: %s", path, strerror(errno));
	if (n > ((size_t)16 << 20))
		util_die("%s: guidelines longer than 16 MiB", path);
	return buf;
}

/* Wide-character curses needs a UTF-8 locale: take the user's, else C.UTF-8. */
static void setup_locale(void)
{
	setlocale(LC_ALL, "");
	const char *cs = nl_langinfo(CODESET);
	if (cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8")))
		return;
	if (!setlocale(LC_CTYPE, "C.UTF-8") && !setlocale(LC_CTYPE, "C.utf8") &&
	    !setlocale(LC_CTYPE, "en_US.UTF-8"))
		util_warn("no UTF-8 locale: non-ASCII text may show wrongly");
}

/* ---- the command line ---------------------------------------------------------- */

/* What the option table fills in; turned into ann_options by parse_options. */
struct cmdline {
	const char *db, *annotator, *mode, *order, *split, *source, *guidelines;
	long overlap, seed, limit;
	int review, show_judge, strength, no_color;
	const char *policy, *reference, *chat_format, *gold;
	double beta, gold_rate;
	int margins_only;
};

static const util_opt opts_table[] = {
	UTIL_OPT_DB(struct cmdline, db),
	{"annotator", 0, UTIL_OPT_STRING, offsetof(struct cmdline, annotator), .arg = "NAME",
	 .help = "who is labeling (default: $USER)"},
	{"mode", 0, UTIL_OPT_ENUM, offsetof(struct cmdline, mode), .def = "pair", .choices = "pair|rank",
	 .help = "label pairs, or rank the K completions of each\nprompt (as implied comparisons)"},
	{"review", 0, UTIL_OPT_FLAG, offsetof(struct cmdline, review),
	 .help = "settle pairs on which annotators disagree, seeing\nevery verdict given so far"},
	{"overlap", 0, UTIL_OPT_INT, offsetof(struct cmdline, overlap), .def = "1", .range = "[1, 1000]",
	 .help = "show each pair to up to N different\nannotators"},
	{"show-judge", 0, UTIL_OPT_FLAG, offsetof(struct cmdline, show_judge),
	 .help = "after each label, show the judge's verdict on the\npair and keep a human-judge agreement figure"},
	{"strength", 0, UTIL_OPT_FLAG, offsetof(struct cmdline, strength),
	 .help = "say how much better: 1/2 (Left/Right) slightly,\n! @ (Shift-Left/Right) much better; stored as\nconfidence 0.75 and 1"},
	{"split", 0, UTIL_OPT_STRING, offsetof(struct cmdline, split), .arg = "NAME",
	 .help = "only prompts of this split"},
	{"source", 0, UTIL_OPT_STRING, offsetof(struct cmdline, source), .arg = "NAME",
	 .help = "only prompts of this import source"},
	{"order", 0, UTIL_OPT_ENUM, offsetof(struct cmdline, order), .def = "sequential",
	 .choices = "random|sequential|uncertain",
	 .help = "the order of the queue; uncertain: pairs a judge\nlabelled inconsistently across orders first, then\n"
		 "those judges disagree on, then the smallest DPO\nmargins (--policy/--reference), then the rest"},
	{"policy", 0, UTIL_OPT_PATH, offsetof(struct cmdline, policy), .arg = "DIR",
	 .help = "--order uncertain: the policy model whose implicit\nreward margins order the queue"},
	{"reference", 0, UTIL_OPT_PATH, offsetof(struct cmdline, reference), .arg = "DIR",
	 .help = "the reference model of --policy"},
	{"beta", 0, UTIL_OPT_FLOAT, offsetof(struct cmdline, beta), .def = "0.1", .range = "(0, inf)", .arg = "B",
	 .help = "DPO beta, the scale of the margins"},
	{"chat-format", 0, UTIL_OPT_STRING, offsetof(struct cmdline, chat_format), .arg = "NAME",
	 .help = "render conversations for --policy with this chat\nfamily instead of the tokenizer's template"},
	{"margins-only", 0, UTIL_OPT_FLAG, offsetof(struct cmdline, margins_only),
	 .help = "compute (or read) the margins, print the queue in\norder as TSV (prompt, a, b, margin) and exit"},
	{"gold", 0, UTIL_OPT_PATH, offsetof(struct cmdline, gold), .arg = "FILE",
	 .help = "add the pairs of FILE (JSONL, any labelled-pair\nshape dpo-db import reads) as gold items: known\n"
		 "answers mixed into every annotator's queue"},
	{"gold-rate", 0, UTIL_OPT_FLOAT, offsetof(struct cmdline, gold_rate), .def = "0.1", .range = "[0, 1)",
	 .arg = "R", .help = "share of the queue made of gold items (the\nstore's, when it has any; 0: none)"},
	UTIL_OPT_SEED(struct cmdline, seed, NULL),
	{"limit", 0, UTIL_OPT_INT, offsetof(struct cmdline, limit), .range = "[1, inf)",
	 .help = "at most N items in the queue (default: all)"},
	{"guidelines", 0, UTIL_OPT_PATH, offsetof(struct cmdline, guidelines), .arg = "FILE",
	 .help = "text shown by the g key"},
	{"no-color", 0, UTIL_OPT_FLAG, offsetof(struct cmdline, no_color),
	 .help = "no colours (also when NO_COLOR is set)"},
	{"no-colour", 0, UTIL_OPT_FLAG, offsetof(struct cmdline, no_color), .flags = UTIL_OPT_HIDDEN},
	UTIL_OPT_TABLE_END,
};

static util_cli cli = {
	.name = "dpo-annotate",
	.synopsis = "[OPTIONS]",
	.summary = "Label pairs of completions (or rank K of them) in a terminal; every label is\n"
		   "saved to the store the moment it is made.",
	.footer = "Without --seed, the seed of the random order and of which completion is shown\n"
		  "left is derived from the annotator's name. Defaults may be set in the config\n"
		  "file's section [dpo-annotate] ($DPO_CONFIG, else $XDG_CONFIG_HOME/dpo/config).\n"
		  "\n"
		  "Keys: 1 or Left: left better; 2 or Right: right better; t tie; x both bad;\n"
		  "s skip; u undo; n note; d word diff; / search; g guidelines; ? all keys; q quit.\n"
		  "Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.\n",
	.opts = opts_table,
};

/* Parse the command line into c and the session's options into o (exits 0
 * on --help/--version, 2 on a usage error). */
static void parse_options(struct cmdline *c, ann_options *o, int argc, char **argv)
{
	util_cli_parse(&cli, c, argc, argv);
	*o = (ann_options){
		.annotator = c->annotator ? c->annotator : getenv("USER"),
		.mode = strcmp(c->mode, "rank") ? ANN_MODE_PAIR : ANN_MODE_RANK,
		.order = !strcmp(c->order, "random")	? ANN_ORDER_RANDOM :
			 !strcmp(c->order, "uncertain") ? ANN_ORDER_UNCERTAIN :
							  ANN_ORDER_SEQUENTIAL,
		.gold_rate = c->gold_rate,
		.split = c->split,
		.source = c->source,
		.overlap = (int)c->overlap,
		.limit = c->limit,
		.show_judge = c->show_judge,
		.retries = -1,
	};
	if (c->review) {
		if (o->mode == ANN_MODE_RANK)
			util_cli_usage_error(&cli, "--review and --mode rank cannot be combined");
		o->mode = ANN_MODE_REVIEW;
	}
	if (!o->annotator || !*o->annotator)
		util_cli_usage_error(&cli, "no annotator: give --annotator NAME (or set $USER)");
	if (!c->policy != !c->reference)
		util_cli_usage_error(&cli, "--policy and --reference go together");
	if (c->policy && o->order != ANN_ORDER_UNCERTAIN)
		util_cli_usage_error(&cli, "--policy and --reference order the queue with --order uncertain");
	if (c->margins_only && !c->policy)
		util_cli_usage_error(&cli, "--margins-only needs --policy and --reference");
	if (c->gold && o->mode != ANN_MODE_PAIR)
		util_cli_usage_error(&cli, "--gold mixes pairs into pair mode (not --mode rank or --review)");
	o->seed = util_cli_source(&cli, "seed") != UTIL_OPT_UNSET ? (uint64_t)c->seed
								   : ann_seed_from_string(o->annotator);
}

/* Colours unless --no-color or a non-empty $NO_COLOR says otherwise. */
static int use_color(const struct cmdline *c)
{
	const char *nc = getenv("NO_COLOR");
	return !c->no_color && !(nc && *nc);
}

/* ---- the store and the session ------------------------------------------------- */

/* Open the store at path, waiting a little for a locked one; NULL (with a
 * message) when it cannot be opened. */
static store *open_store(const char *path)
{
	store *st = store_new();
	int rc = store_open_existing(st, path);
	for (int t = 0; rc == STORE_EBUSY && t < 20; t++)
		rc = store_open_existing(st, path);
	if (rc == STORE_ENOTFOUND) {
		util_warn("%s", store_errmsg(st));
		store_free(st);
		return NULL;
	}
	if (rc != STORE_OK) {
		util_warn("%s: %s", path, store_errmsg(st));
		store_free(st);
		return NULL;
	}
	return st;
}

/* Register the annotator and build the queue; NULL (with a message) on an
 * error. */
static ann_session *open_session(store *st, const ann_options *o, const char *path)
{
	ann_session *s = ann_session_new(st, o);
	/* starting, a locked database is waited for (about 50 tries of 0.2 s) */
	store_set_busy_timeout(st, 200);
	if (ann_session_load(s) < 0) {
		util_warn("%s: %s", path, ann_session_errmsg(s));
		ann_session_free(s);
		return NULL;
	}
	/* then a write never blocks the screen for long: one try of at most
	 * 0.1 s, and a label that finds the database locked waits in the
	 * session while the loop retries it (ann_ui_tick) */
	store_set_busy_timeout(st, 100);
	ann_session_set_retries(s, 0);
	return s;
}

/* ---- the screen ---------------------------------------------------------------- */

/* Start curses on the terminal (the terminal is given back at exit and on
 * fatal signals); NULL (with a message) when it cannot start. */
static SCREEN *start_screen(void)
{
	setup_locale();
	install_signals();
	atexit(restore_terminal);
	if (!getenv("ESCDELAY"))
		set_escdelay(25);
	SCREEN *scr = newterm(NULL, stdout, stdin);
	if (!scr) {
		util_warn("cannot start the terminal UI (TERM=%s)", getenv("TERM") ? getenv("TERM") : "");
		return NULL;
	}
	screen_on = 1;
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	timeout(100);
	return scr;
}

/* Idle: read more of the queue (for about 20 ms) so that the total becomes
 * known. Returns 1 when the screen should be drawn again. */
static int load_while_idle(ann_ui *ui, ann_session *s)
{
	if (ann_session_loaded_all(s))
		return 0;
	double t0 = util_now();
	while (util_now() - t0 < 0.02) {
		int lr = ann_session_load_more(s, 2048);
		if (lr < 0) {
			ann_ui_message(ui, 1, "%s", ann_session_errmsg(s));
			break;
		}
		if (lr == 0)
			break;
	}
	return 1;
}

/* Draw when needed and hand keys to the handlers (keys.c), until the
 * annotator quits or a signal arrives. */
static void key_loop(ann_ui *ui, ann_session *s)
{
	int redraw = 1;
	while (!stop_signal) {
		if (redraw) {
			ann_ui_prepare(ui, LINES, COLS);
			ann_view_draw(ui);
			refresh();
			redraw = 0;
		}
		wint_t wc;
		int r = get_wch(&wc);
		if (r == ERR) {
			/* idle: retry a label waiting for the database, else read the queue */
			if (ann_session_pending(s))
				redraw |= ann_ui_tick(ui);
			else
				redraw |= load_while_idle(ui, s);
			continue;
		}
		int flags = ann_keys_handle(ui, r == KEY_CODE_YES, (int)wc);
		if (flags & ANN_KEY_QUIT)
			break;
		if (flags & ANN_KEY_REPAINT)
			clearok(curscr, TRUE); /* the next refresh repaints every cell */
		if (flags & ANN_KEY_REDRAW)
			redraw = 1;
	}
}

/* The goodbye line on stderr: what this session saved and what is left. */
static void report(ann_session *s)
{
	ann_stats stt;
	ann_session_stats(s, &stt);
	fprintf(stderr, "dpo-annotate: %zu item%s labeled in this session (all saved)", stt.done,
		stt.done == 1 ? "" : "s");
	if (ann_session_loaded_all(s))
		fprintf(stderr, "; %zu left in the queue", stt.remaining);
	fprintf(stderr, "%s\n", stt.remaining ? "; run dpo-annotate again to resume" : "");
	if (ann_session_pending(s))
		fprintf(stderr, "dpo-annotate: the last label was NOT saved: the database stayed locked by another "
				"writer; that item is offered again next time\n");
}

/* Label in the terminal until the annotator quits or a signal arrives, then
 * give the terminal back and report. Returns the exit status. */
static int run_ui(ann_session *s, const ann_options *o, int color, const char *guidelines, int strength)
{
	SCREEN *scr = start_screen();
	if (!scr)
		return UTIL_EXIT_FAIL;
	ann_ui ui;
	ann_ui_init(&ui, s, o->mode, o->annotator, o->show_judge, color, guidelines);
	ui.strength = strength;
	ann_view_init_colors(&ui);
	key_loop(&ui, s);
	restore_terminal();
	delscreen(scr);
	report(s);
	ann_ui_free(&ui);
	if (stop_signal)
		return UTIL_EXIT_INTERRUPTED;
	return ann_session_pending(s) ? UTIL_EXIT_FAIL : UTIL_EXIT_OK;
}

/* --gold FILE: add its items to the store, saying how many on stderr.
 * Returns 0 or -1 (message printed). */
static int add_gold(store *st, const char *file)
{
	char *err = NULL;
	long added = 0, known = 0;
	if (ann_gold_import(st, file, &added, &known, &err)) {
		util_warn("--gold: %s", err);
		free(err);
		return -1;
	}
	fprintf(stderr, "dpo-annotate: %s: %ld gold item%s added, %ld already there\n", file, added,
		added == 1 ? "" : "s", known);
	return 0;
}

static int margin_by_pair(const void *x, const void *y)
{
	const ann_margin *p = x, *q = y;
	if (p->completion_a != q->completion_a)
		return p->completion_a < q->completion_a ? -1 : 1;
	return p->completion_b < q->completion_b ? -1 : p->completion_b > q->completion_b;
}

/* --margins-only: the queue in order as TSV (prompt, a, b, margin). */
static void print_margins(ann_session *s, ann_margin *m, size_t n)
{
	qsort(m, n, sizeof *m, margin_by_pair);
	size_t nq = 0;
	store_pair_ref *q = ann_session_queue_pairs(s, &nq);
	for (size_t i = 0; i < nq; i++) {
		ann_margin key = {q[i].completion_a, q[i].completion_b, 0};
		const ann_margin *hit = bsearch(&key, m, n, sizeof *m, margin_by_pair);
		printf("%lld\t%lld\t%lld\t%.9g\n", (long long)q[i].prompt_id, (long long)q[i].completion_a,
		       (long long)q[i].completion_b, hit ? hit->margin : NAN);
	}
	free(q);
}

/* --policy/--reference: the margins of the queue's pairs (progress on
 * stderr before the screen opens), then the queue ordered by them. Returns
 * the exit status. */
static int order_by_margins(ann_session *s, store *st, const struct cmdline *c)
{
	size_t n = 0;
	store_pair_ref *pairs = ann_session_queue_pairs(s, &n);
	ann_margin *m = xcalloc(n ? n : 1, sizeof *m);
	ann_margin_opts mo = {c->policy, c->reference, c->beta, c->chat_format, 0};
	ann_margin_counts k;
	char *err = NULL;
	int status = UTIL_EXIT_OK;
	util_catch_interrupts();
	if (ann_margins_compute(st, &mo, pairs, n, m, &k, &err)) {
		util_warn("margins: %s", err);
		status = util_interrupted() ? UTIL_EXIT_INTERRUPTED : UTIL_EXIT_FAIL;
		goto out;
	}
	fprintf(stderr, "dpo-annotate: margins of %zu pair%s: %zu computed, %zu from the cache\n", n,
		n == 1 ? "" : "s", k.computed, k.cached);
	if (ann_session_set_margins(s, m, n) != ANN_OK) {
		util_warn("%s", ann_session_errmsg(s));
		status = UTIL_EXIT_FAIL;
		goto out;
	}
	if (c->margins_only)
		print_margins(s, m, n);
out:
	free(err);
	free(m);
	free(pairs);
	return status;
}

int main(int argc, char **argv)
{
	struct cmdline c = {0};
	ann_options o;

	util_set_progname("dpo-annotate");
	parse_options(&c, &o, argc, argv);
	char *guidelines = c.guidelines ? read_guidelines(c.guidelines) : NULL;
	if (!c.margins_only && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
		util_die("needs a terminal on standard input and output");

	const char *path = util_db_path(c.db);
	store *st = open_store(path);
	if (st && c.gold && add_gold(st, c.gold) < 0) { /* nothing of the file was added */
		store_free(st);
		st = NULL;
	}
	ann_session *s = st ? open_session(st, &o, path) : NULL;
	int status = s ? UTIL_EXIT_OK : UTIL_EXIT_FAIL;
	if (s && c.policy)
		status = order_by_margins(s, st, &c);
	if (s && status == UTIL_EXIT_OK && !c.margins_only)
		status = run_ui(s, &o, use_color(&c), guidelines, c.strength);

	ann_session_free(s);
	store_free(st);
	free(guidelines);
	util_cli_free(&cli);
	return status;
}
