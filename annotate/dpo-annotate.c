/* dpo-annotate: a keyboard-first terminal UI to label pairs of completions
 * (or rank K of them) into the store. This file parses options and owns
 * the screen: one loop prepares the layout, draws, and hands keys to the
 * handlers (keys.c). The model is annotate/session.c. */
#include "config.h"
#include "annotate/session.h"
#include "annotate/ui.h"
#include "store/store.h"
#include "util/cli.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
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

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: dpo-annotate [OPTION]...\n"
		"Label pairs of completions (or rank K of them) in a terminal; every label is\n"
		"saved to the store the moment it is made.\n"
		"\n"
		"Options:\n"
		"      --db PATH            the database (default: $DPO_DB, else ./dpo.db)\n"
		"      --annotator NAME     who is labeling (default: $USER)\n"
		"      --mode pair|rank     label pairs (default), or order the K completions\n"
		"                           of each prompt (stored as the implied comparisons)\n"
		"      --review             settle pairs on which annotators disagree, seeing\n"
		"                           every verdict given so far\n"
		"      --overlap N          show each pair to up to N different annotators\n"
		"                           (default 1)\n"
		"      --show-judge         after each label, show the judge's verdict on the\n"
		"                           pair and keep a human-judge agreement figure\n"
		"      --split NAME         only prompts of this split\n"
		"      --source NAME        only prompts of this import source\n"
		"      --order ORDER        random or sequential (default sequential)\n"
		"      --seed N             seed of the random order and of which completion\n"
		"                           is shown left (default: derived from the name)\n"
		"      --limit N            at most N items in the queue\n"
		"      --guidelines FILE    text shown by the g key\n"
		"      --no-color           no colours (also when NO_COLOR is set)\n"
		"  -h, --help               this help\n"
		"      --version            the version\n"
		"\n"
		"Keys: 1 or Left: left better; 2 or Right: right better; t tie; x both bad;\n"
		"s skip; u undo; n note; d word diff; / search; g guidelines; ? all keys; q quit.\n"
		"Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted.\n");
}

static char *read_file(const char *path)
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

enum {
	OPT_DB = 256, OPT_ANNOTATOR, OPT_MODE, OPT_REVIEW, OPT_OVERLAP, OPT_SHOW_JUDGE, OPT_SPLIT,
	OPT_SOURCE, OPT_ORDER, OPT_SEED, OPT_LIMIT, OPT_GUIDELINES, OPT_NO_COLOR, OPT_VERSION,
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, OPT_DB},
		{"annotator", required_argument, NULL, OPT_ANNOTATOR},
		{"mode", required_argument, NULL, OPT_MODE},
		{"review", no_argument, NULL, OPT_REVIEW},
		{"overlap", required_argument, NULL, OPT_OVERLAP},
		{"show-judge", no_argument, NULL, OPT_SHOW_JUDGE},
		{"split", required_argument, NULL, OPT_SPLIT},
		{"source", required_argument, NULL, OPT_SOURCE},
		{"order", required_argument, NULL, OPT_ORDER},
		{"seed", required_argument, NULL, OPT_SEED},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"guidelines", required_argument, NULL, OPT_GUIDELINES},
		{"no-color", no_argument, NULL, OPT_NO_COLOR},
		{"no-colour", no_argument, NULL, OPT_NO_COLOR},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	const char *db = NULL, *guide_path = NULL;
	ann_options o = {.annotator = getenv("USER"), .overlap = 1, .retries = -1};
	int have_seed = 0, review = 0, color = 1;
	long v;
	int c;

	util_set_progname("dpo-annotate");
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DB: db = optarg; break;
		case OPT_ANNOTATOR: o.annotator = optarg; break;
		case OPT_MODE:
			if (!strcmp(optarg, "pair"))
				o.mode = ANN_MODE_PAIR;
			else if (!strcmp(optarg, "rank"))
				o.mode = ANN_MODE_RANK;
			else
				util_usage_error("--mode must be pair or rank, not \"%s\"", optarg);
			break;
		case OPT_REVIEW: review = 1; break;
		case OPT_OVERLAP:
			util_parse_long("--overlap", optarg, &v);
			if (v < 1 || v > 1000)
				util_usage_error("--overlap must be between 1 and 1000, not %ld", v);
			o.overlap = (int)v;
			break;
		case OPT_SHOW_JUDGE: o.show_judge = 1; break;
		case OPT_SPLIT: o.split = optarg; break;
		case OPT_SOURCE: o.source = optarg; break;
		case OPT_ORDER:
			if (!strcmp(optarg, "random"))
				o.order = ANN_ORDER_RANDOM;
			else if (!strcmp(optarg, "sequential"))
				o.order = ANN_ORDER_SEQUENTIAL;
			else
				util_usage_error("--order must be random or sequential, not \"%s\"", optarg);
			break;
		case OPT_SEED:
			util_parse_long("--seed", optarg, &v);
			o.seed = (uint64_t)v;
			have_seed = 1;
			break;
		case OPT_LIMIT:
			util_parse_long("--limit", optarg, &v);
			if (v < 1)
				util_usage_error("--limit must be at least 1, not %ld", v);
			o.limit = v;
			break;
		case OPT_GUIDELINES: guide_path = optarg; break;
		case OPT_NO_COLOR: color = 0; break;
		case 'h': usage(stdout); return UTIL_EXIT_OK;
		case OPT_VERSION: util_print_version(); return UTIL_EXIT_OK;
		default: util_usage_error("unknown option");
		}
	}
	if (optind < argc)
		util_usage_error("unexpected argument \"%s\"", argv[optind]);
	if (review) {
		if (o.mode == ANN_MODE_RANK)
			util_usage_error("--review and --mode rank cannot be combined");
		o.mode = ANN_MODE_REVIEW;
	}
	if (!o.annotator || !*o.annotator)
		util_usage_error("no annotator: give --annotator NAME (or set $USER)");
	if (!have_seed)
		o.seed = ann_seed_from_string(o.annotator);
	const char *nc = getenv("NO_COLOR");
	if (nc && *nc)
		color = 0;
	char *guidelines = guide_path ? read_file(guide_path) : NULL;
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
		util_die("needs a terminal on standard input and output");

	int status = UTIL_EXIT_OK;
	const char *path = util_db_path(db);
	store *st = store_new();
	int rc = store_open(st, path);
	for (int t = 0; rc == STORE_EBUSY && t < 20; t++)
		rc = store_open(st, path);
	if (rc != STORE_OK) {
		util_warn("%s: %s", path, store_errmsg(st));
		store_free(st);
		free(guidelines);
		return UTIL_EXIT_FAIL;
	}
	ann_session *s = ann_session_new(st, &o);
	if (ann_session_load(s) < 0) {
		util_warn("%s: %s", path, ann_session_errmsg(s));
		status = UTIL_EXIT_FAIL;
		goto out;
	}

	setup_locale();
	install_signals();
	atexit(restore_terminal);
	if (!getenv("ESCDELAY"))
		set_escdelay(25);
	SCREEN *scr = newterm(NULL, stdout, stdin);
	if (!scr) {
		util_warn("cannot start the terminal UI (TERM=%s)", getenv("TERM") ? getenv("TERM") : "");
		status = UTIL_EXIT_FAIL;
		goto out;
	}
	screen_on = 1;
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	timeout(100);

	ann_ui ui;
	ann_ui_init(&ui, s, o.mode, o.annotator, o.show_judge, color, guidelines);
	ann_view_init_colors(&ui);
	int redraw = 1;
	while (!stop_signal) {
		if (redraw) {
			ann_ui_prepare(&ui, LINES, COLS);
			ann_view_draw(&ui);
			refresh();
			redraw = 0;
		}
		wint_t wc;
		int r = get_wch(&wc);
		if (r == ERR) {
			/* idle: read more of the queue so that the total becomes known */
			if (!ann_session_loaded_all(s)) {
				double t0 = util_now();
				while (util_now() - t0 < 0.02) {
					int lr = ann_session_load_more(s, 2048);
					if (lr < 0) {
						ann_ui_message(&ui, 1, "%s", ann_session_errmsg(s));
						break;
					}
					if (lr == 0)
						break;
				}
				redraw = 1;
			}
			continue;
		}
		int flags = ann_keys_handle(&ui, r == KEY_CODE_YES, (int)wc);
		if (flags & ANN_KEY_QUIT)
			break;
		if (flags & ANN_KEY_REDRAW)
			redraw = 1;
	}
	restore_terminal();
	delscreen(scr);
	if (stop_signal)
		status = UTIL_EXIT_INTERRUPTED;

	ann_stats stt;
	ann_session_stats(s, &stt);
	fprintf(stderr, "dpo-annotate: %zu item%s labeled in this session (all saved)", stt.done,
		stt.done == 1 ? "" : "s");
	if (ann_session_loaded_all(s))
		fprintf(stderr, "; %zu left in the queue", stt.remaining);
	fprintf(stderr, "%s\n", stt.remaining ? "; run dpo-annotate again to resume" : "");
	ann_ui_free(&ui);
out:
	ann_session_free(s);
	store_free(st);
	free(guidelines);
	return status;
}
