/* judge_engine.c: one curl multi loop that runs judging requests: HTTP
 * POSTs with keep-alive (HTTP/2 where offered), --rpm/--tpm token buckets,
 * retries with backoff honouring Retry-After, bounded response buffers;
 * and local verifier processes (the exec provider) driven by the same poll. */
#include "config.h"
#include "judge/judge.h"
#include "util/cli.h"
#include "util/progress.h"
#include "util/xmalloc.h"
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum jstate { J_WAITING, J_HTTP, J_EXEC };

typedef struct jpriv {
	enum jstate state;
	double not_before;   /* J_WAITING: earliest start */
	double started;      /* start of the current try */
	int charged;         /* buckets were charged for this try */
	int sends;           /* HTTP: times this try's request left (libcurl may re-send) */
	int free_tries;      /* rate-limited tries not charged (another request's pause) */
	unsigned pause_epoch;/* the shared pause its jitter was drawn for */
	double jitter;       /* its place in that pause's resume window, [0,1) */
	/* HTTP */
	CURL *easy;
	long retry_after_ms; /* from the last response, -1 if none */
	int too_large;
	int answered;        /* a response began */
	size_t limit;        /* response cap in bytes */
	judge_engine *eng;
	/* exec */
	pid_t pid;
	int in_fd, out_fd, err_fd;
	int pid_fd;          /* readable once the verifier exited (-1: poll for it) */
	size_t in_off;
	util_buf err;
	int exited, wstatus;
} jpriv;

struct judge_engine {
	judge_engine_opts o;
	CURLM *multi;
	CURL **pool;
	size_t npool;
	judge_job **slot;
	int nslots, nactive;
	judge_job **ready;   /* answered, reported once their replacements left */
	int nready;
	judge_job **ahead;   /* ring of jobs asked for ahead of a free slot */
	int nahead, ahead_head;
	int ahead_more;      /* the ring has room and next may have more */
	judge_bucket rpm, tpm;
	double pause_until;  /* a shared pause (429/503/529): nothing starts before */
	double pause_set;    /* when the pause was last extended */
	double pause_window; /* requests resume spread over this many seconds after it */
	unsigned pause_epoch;
	long retries;
	long sent, resends;  /* requests that left (first try); libcurl's silent re-sends */
	int reached;         /* a server answered at least once */
	uint64_t rng;
	int epfd;            /* epoll set: curl's sockets and the verifiers' pipes */
	double curl_due;     /* when curl's timer fires; < 0: not armed */
	int exec_wait;       /* a verifier closed its pipes but has not been reaped */
};

/* epoll tags: curl sockets carry the fd, pipes the fd with this bit set */
#define PIPE_TAG (1ULL << 40)

static int on_socket(CURL *easy, curl_socket_t s, int what, void *ud, void *sockp)
{
	judge_engine *e = ud;
	struct epoll_event ev = {0};
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(e->multi, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	ev.data.u64 = (uint64_t)s;
	if (sockp) {
		epoll_ctl(e->epfd, EPOLL_CTL_MOD, s, &ev);
	} else {
		if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, s, &ev) && errno == EEXIST)
			epoll_ctl(e->epfd, EPOLL_CTL_MOD, s, &ev);
		curl_multi_assign(e->multi, s, e);
	}
	return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *ud)
{
	judge_engine *e = ud;
	(void)m;
	e->curl_due = timeout_ms < 0 ? -1 : util_now() + (double)timeout_ms / 1000.0;
	return 0;
}

static void watch_pipe(judge_engine *e, int fd, uint32_t events)
{
	struct epoll_event ev = {0};
	if (fd < 0)
		return;
	ev.events = events;
	ev.data.u64 = PIPE_TAG | (uint64_t)fd;
	epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev);
}

void judge_engine_opts_default(judge_engine_opts *o)
{
	memset(o, 0, sizeof *o);
	o->concurrency = JUDGE_ENGINE_CONCURRENCY;
	o->timeout_s = JUDGE_ENGINE_TIMEOUT_S;
	o->max_retries = JUDGE_ENGINE_MAX_RETRIES;
	o->backoff_base_ms = JUDGE_ENGINE_BACKOFF_MS;
	o->backoff_max_ms = 60000;
	o->seed = 1;
	o->max_response = (size_t)4 << 20;
	o->http2 = 1;
}

static double uniform(judge_engine *e)
{
	/* xorshift64* */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return (double)((e->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

judge_engine *judge_engine_new(const judge_engine_opts *o)
{
	judge_engine *e = xcalloc(1, sizeof *e);
	struct sigaction sa = {0};

	e->o = *o;
	if (e->o.concurrency < 1)
		e->o.concurrency = 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "%s: cannot initialise libcurl\n", util_progname());
		abort();
	}
	e->multi = curl_multi_init();
	if (!e->multi) {
		fprintf(stderr, "%s: cannot create a curl multi handle\n", util_progname());
		abort();
	}
	/* HTTP/1.1 (mode 0) never multiplexes: every request gets a connection
	 * of its own at once */
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING,
			  e->o.http2 ? (long)CURLPIPE_MULTIPLEX : (long)CURLPIPE_NOTHING);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)e->o.concurrency + 4);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		fprintf(stderr, "%s: epoll_create1: %s\n", util_progname(), strerror(errno));
		abort();
	}
	e->curl_due = -1;
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
	e->nslots = e->o.concurrency;
	e->slot = xcalloc((size_t)e->nslots, sizeof *e->slot);
	e->pool = xcalloc((size_t)e->nslots, sizeof *e->pool);
	e->ready = xcalloc((size_t)e->nslots, sizeof *e->ready);
	e->ahead = xcalloc((size_t)e->nslots, sizeof *e->ahead);
	double now = util_now();
	/* bursts of about one second's worth of the per-minute limits */
	judge_bucket_init(&e->rpm, e->o.rpm / 60.0, e->o.rpm / 60.0 < 1 ? 1 : e->o.rpm / 60.0, now);
	judge_bucket_init(&e->tpm, e->o.tpm / 60.0, e->o.tpm / 60.0, now);
	e->rng = e->o.seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
	if (!e->rng)
		e->rng = 1;
	/* a verifier that exits before reading its input must not kill us */
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	return e;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Stop whatever a job is doing and drop its engine state. */
static void job_abandon(judge_engine *e, judge_job *j)
{
	jpriv *p = j->priv;
	if (!p)
		return;
	if (p->easy) {
		curl_multi_remove_handle(e->multi, p->easy);
		e->pool[e->npool++] = p->easy;
		p->easy = NULL;
	}
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
	close_fd(&p->pid_fd);
	util_buf_free(&p->err);
	free(p);
	j->priv = NULL;
}

void judge_engine_free(judge_engine *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->nslots; i++)
		if (e->slot[i])
			job_abandon(e, e->slot[i]);
	for (size_t i = 0; i < e->npool; i++)
		curl_easy_cleanup(e->pool[i]);
	curl_multi_cleanup(e->multi);
	curl_global_cleanup();
	free(e->pool);
	free(e->ready);
	free(e->ahead);
	free(e->slot);
	close(e->epfd);
	free(e);
}

long judge_engine_retries(const judge_engine *e)
{
	return e->retries + e->resends;
}

long judge_engine_sent(const judge_engine *e)
{
	return e->sent;
}

long judge_engine_resends(const judge_engine *e)
{
	return e->resends;
}

void judge_engine_tokens_used(judge_engine *e, double delta)
{
	judge_bucket_adjust(&e->tpm, delta, util_now());
}

void judge_job_reset(judge_job *j)
{
	j->status = 0;
	util_buf_reset(&j->response);
	j->attempts = 0;
	j->ok = 0;
	j->fatal = 0;
	j->unreachable = 0;
	j->sends = 0;
	j->errmsg[0] = '\0';
}

void judge_job_clear(judge_job *j)
{
	util_buf_free(&j->response);
	if (j->priv) {
		jpriv *p = j->priv;
		util_buf_free(&p->err);
		free(p);
		j->priv = NULL;
	}
}

/* ---- HTTP ---------------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	judge_job *j = ud;
	jpriv *p = j->priv;
	size_t n = size * nmemb;
	if (j->response.len + n > p->limit) {
		p->too_large = 1;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	util_buf_add(&j->response, data, n);
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	judge_job *j = ud;
	jpriv *p = j->priv;
	size_t n = size * nmemb;
	char line[256];
	if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
		p->retry_after_ms = -1; /* a new response (after 100-continue, say) */
		p->answered = 1;
		return n;
	}
	if (n >= sizeof line)
		return n;
	memcpy(line, data, n);
	line[n] = '\0';
	if (!strncasecmp(line, "retry-after-ms:", 15)) {
		char *end;
		double v = strtod(line + 15, &end);
		if (end != line + 15 && v >= 0 && v < 1e10)
			p->retry_after_ms = (long)(v + 0.5);
	} else if (!strncasecmp(line, "retry-after:", 12) && p->retry_after_ms < 0) {
		p->retry_after_ms = judge_parse_retry_after(line + 12, (long)time(NULL));
	}
	return n;
}

/* libcurl's debug callback: the request's headers going out mark a send.
 * A second send within one try is libcurl re-sending on a new connection
 * after a reused one was reset before any answer: counted as a retry. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *ud)
{
	judge_job *j = ud;
	jpriv *p = j->priv;
	(void)easy;
	(void)data;
	(void)size;
	if (type != CURLINFO_HEADER_OUT || !p)
		return 0;
	if (p->sends++ > 0)
		p->eng->resends++;
	if (!j->sends++)
		p->eng->sent++;
	return 0;
}

/* Nonzero when url is https:// (where TLS can negotiate HTTP/2). */
static int is_https(const char *url)
{
	return !strncasecmp(url, "https://", 8);
}

static int start_http(judge_engine *e, judge_job *j)
{
	jpriv *p = j->priv;
	CURL *c = e->npool ? e->pool[--e->npool] : curl_easy_init();
	if (!c) {
		snprintf(j->errmsg, sizeof j->errmsg, "cannot create a curl handle");
		return -1;
	}
	curl_easy_reset(c);
	p->easy = c;
	p->retry_after_ms = -1;
	p->too_large = 0;
	p->answered = 0;
	p->sends = 0;
	p->eng = e;
	p->limit = e->o.max_response;
	util_buf_reset(&j->response);
	curl_easy_setopt(c, CURLOPT_URL, j->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, (struct curl_slist *)j->headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(c, CURLOPT_PRIVATE, j);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "dpo-judge/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(e->o.timeout_s * 1000));
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(e->o.timeout_s < 30 ? e->o.timeout_s * 1000 : 30000));
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, j);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L); /* to the callback, not stderr */
	/* HTTP/2 where TLS negotiates it (mode 1), or on http:// as well by
	 * prior knowledge (mode 2); waiting to learn whether a connection
	 * multiplexes only where it may: otherwise every request of the first
	 * batch would queue behind the first connection */
	long ver = e->o.http2 == 0 ? (long)CURL_HTTP_VERSION_1_1
		   : e->o.http2 == 2 && !is_https(j->url) ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
							   : (long)CURL_HTTP_VERSION_2TLS;
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, ver);
	curl_easy_setopt(c, CURLOPT_PIPEWAIT, e->o.http2 == 2 || (e->o.http2 == 1 && is_https(j->url)) ? 1L : 0L);
	if (curl_multi_add_handle(e->multi, c) != CURLM_OK) {
		p->easy = NULL;
		e->pool[e->npool++] = c;
		snprintf(j->errmsg, sizeof j->errmsg, "cannot start a transfer");
		return -1;
	}
	p->state = J_HTTP;
	return 0;
}

/* Curl errors worth another try: the network or the server hiccuped. */
static int curl_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_BAD_CONTENT_ENCODING:
		return 1;
	default:
		return 0;
	}
}

/* Curl errors that mean the server cannot be reached at all: nothing
 * answers at its address, its name does not resolve, TLS fails. */
static int curl_unreachable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		return 1;
	default:
		return 0;
	}
}

/* Why a try could not reach the server, in words. */
static void unreachable_reason(CURL *easy, CURLcode rc, char *out, size_t n)
{
	long oserr = 0;
	curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &oserr);
	if (rc == CURLE_COULDNT_CONNECT && oserr == ECONNREFUSED)
		snprintf(out, n, "connection refused");
	else if (rc == CURLE_COULDNT_CONNECT && oserr)
		snprintf(out, n, "%s", strerror((int)oserr));
	else if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY)
		snprintf(out, n, "cannot resolve the host name");
	else if (rc == CURLE_COULDNT_CONNECT)
		snprintf(out, n, "cannot connect");
	else
		snprintf(out, n, "TLS failure: %s", curl_easy_strerror(rc));
}

/* Tries of one request that must fail to reach a server that never
 * answered before the run stops (judge_job.unreachable). */
#define UNREACHABLE_TRIES 3

/* ---- exec ---------------------------------------------------------------- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The words of cmd when it is a program path followed by plain words
 * (letters, digits and _ . / - + = : , @, separated by spaces), so that
 * sh -c would run exactly them; else NULL. Free with free_argv. */
static char **split_plain_command(const char *cmd)
{
	size_t n = 0;
	for (const char *c = cmd; *c; c++) {
		if (*c == ' ') {
			continue;
		}
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      strchr("_./-+=:,@", *c)))
			return NULL;
		if (c == cmd || c[-1] == ' ')
			n++;
	}
	const char *w = cmd + strspn(cmd, " ");
	size_t wl = strcspn(w, " ");
	/* only a program named by its path: a bare first word may be a shell
	 * builtin or keyword (exec, cd, ...), and VAR=x in front is an
	 * assignment; those are left to sh */
	if (n == 0 || !memchr(w, '/', wl) || memchr(w, '=', wl))
		return NULL;
	char **argv = xcalloc(n + 1, sizeof *argv);
	size_t k = 0;
	for (const char *c = cmd; *c;) {
		while (*c == ' ')
			c++;
		if (!*c)
			break;
		const char *e = strchr(c, ' ');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		argv[k++] = xstrndup(c, len);
		c += len;
	}
	return argv;
}

static void free_argv(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

static int start_exec(judge_engine *e, judge_job *j)
{
	jpriv *p = j->priv;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		snprintf(j->errmsg, sizeof j->errmsg, "cannot create pipes: %s", strerror(errno));
		goto fail;
	}
	/* posix_spawn (vfork underneath) does not copy our page tables as
	 * fork would: per-pair verifiers start several times faster. A
	 * command of plain words runs directly; anything else through sh -c. */
	char **argv = split_plain_command(j->command);
	char *shargv[] = {"sh", "-c", (char *)j->command, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t def;
	pid_t pid;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawnattr_init(&at);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
	int src = argv ? posix_spawnp(&pid, argv[0], &fa, &at, argv, environ)
		       : posix_spawn(&pid, "/bin/sh", &fa, &at, shargv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (src) {
		snprintf(j->errmsg, sizeof j->errmsg, "cannot run %s: %s", argv ? argv[0] : "/bin/sh",
			 strerror(src));
		free_argv(argv);
		goto fail;
	}
	free_argv(argv);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->pid = pid;
	/* a pidfd wakes the loop when the verifier exits, instead of polling
	 * for its status (kernels before 5.3 have none: then we poll) */
	close_fd(&p->pid_fd);
#ifdef SYS_pidfd_open
	p->pid_fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pid_fd >= 0)
		fcntl(p->pid_fd, F_SETFD, FD_CLOEXEC);
#endif
	p->in_fd = in[1];
	p->out_fd = out[0];
	p->err_fd = err[0];
	p->in_off = 0;
	p->exited = 0;
	util_buf_reset(&p->err);
	util_buf_reset(&j->response);
	set_nonblock(p->in_fd);
	set_nonblock(p->out_fd);
	set_nonblock(p->err_fd);
	if (j->body_len == 0)
		close_fd(&p->in_fd);
	/* closing an end later also drops it from the set: only we hold it */
	watch_pipe(e, p->in_fd, EPOLLOUT);
	watch_pipe(e, p->out_fd, EPOLLIN);
	watch_pipe(e, p->err_fd, EPOLLIN);
	watch_pipe(e, p->pid_fd, EPOLLIN);
	p->state = J_EXEC;
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
	}
	return -1;
}

/* Move data to and from a verifier. Returns 1 once it has finished. */
static int pump_exec(judge_engine *e, judge_job *j)
{
	jpriv *p = j->priv;
	char chunk[8192];
	ssize_t r;

	while (p->in_fd >= 0 && p->in_off < j->body_len) {
		r = write(p->in_fd, j->body + p->in_off, j->body_len - p->in_off);
		if (r > 0) {
			p->in_off += (size_t)r;
		} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			break;
		} else {
			close_fd(&p->in_fd); /* EPIPE: it stopped reading; fine */
			break;
		}
	}
	if (p->in_fd >= 0 && p->in_off >= j->body_len)
		close_fd(&p->in_fd);
	while (p->out_fd >= 0) {
		r = read(p->out_fd, chunk, sizeof chunk);
		if (r > 0) {
			if (j->response.len + (size_t)r > e->o.max_response) {
				p->too_large = 1;
				close_fd(&p->out_fd);
				kill(p->pid, SIGKILL);
				break;
			}
			util_buf_add(&j->response, chunk, (size_t)r);
		} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			break;
		} else {
			close_fd(&p->out_fd);
		}
	}
	while (p->err_fd >= 0) {
		r = read(p->err_fd, chunk, sizeof chunk);
		if (r > 0) {
			if (p->err.len < 4096)
				util_buf_add(&p->err, chunk, (size_t)r);
		} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			break;
		} else {
			close_fd(&p->err_fd);
		}
	}
	if (!p->exited && p->out_fd < 0 && p->err_fd < 0) {
		pid_t w = waitpid(p->pid, &p->wstatus, WNOHANG);
		if (w == p->pid) {
			p->exited = 1;
			p->pid = 0;
			close_fd(&p->pid_fd);
		}
	}
	return p->exited;
}

/* ---- the loop ------------------------------------------------------------ */

/* The most rate-limited tries of one request that go uncharged (see
 * retry_or_fail): a bound, so that a server that never stops asking to wait
 * still ends the run. */
#define FREE_TRIES_MAX 20

static void retry_or_fail(judge_engine *e, judge_job *j, const judge_engine_cbs *cb, int rate_limited,
			  int *finished)
{
	jpriv *p = j->priv;
	double now = util_now();
	double d = judge_backoff_ms(j->attempts, e->o.backoff_base_ms, e->o.backoff_max_ms, p->retry_after_ms,
				    uniform(e));
	int free_try = 0;
	if (rate_limited) {
		/* a try that was under way when another request's 429 paused
		 * everyone was caught in the same burst: it waits out that pause
		 * without spending its own retries */
		if (e->pause_until > now && p->started < e->pause_set && p->free_tries < FREE_TRIES_MAX) {
			free_try = 1;
			p->free_tries++;
		}
		double until = now + d / 1000.0;
		if (until > e->pause_until) {
			double w = (until - now) / 2;
			e->pause_until = until;
			e->pause_set = now;
			e->pause_window = w < 0.1 ? 0.1 : w > 10 ? 10 : w;
			e->pause_epoch++;
		}
	}
	if (free_try || j->attempts <= e->o.max_retries) {
		if (free_try)
			j->attempts--; /* the next start_try counts it again */
		p->state = J_WAITING;
		p->not_before = now + d / 1000.0;
		e->retries++;
		if (cb->retry)
			cb->retry(cb->ud, j, d);
		*finished = 0;
	} else {
		size_t l = strlen(j->errmsg);
		snprintf(j->errmsg + l, sizeof j->errmsg - l, " (gave up after %d tries)", j->attempts);
		*finished = 1;
	}
}

/* A try of job j ended; decide: done, retry, or fatal. Returns 1 when the job
 * is finished (ok or not). */
static int http_finished(judge_engine *e, judge_job *j, CURLcode rc, const judge_engine_cbs *cb)
{
	jpriv *p = j->priv;
	int finished = 1;
	long status = 0;

	curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
	if (p->answered || status)
		e->reached = 1;
	char why[200] = "";
	if (rc != CURLE_OK && curl_unreachable(rc))
		unreachable_reason(p->easy, rc, why, sizeof why);
	curl_multi_remove_handle(e->multi, p->easy);
	e->pool[e->npool++] = p->easy;
	p->easy = NULL;
	j->status = status;
	j->errmsg[0] = '\0';
	if (rc == CURLE_WRITE_ERROR && p->too_large) {
		snprintf(j->errmsg, sizeof j->errmsg, "the response is larger than %zu bytes",
			 e->o.max_response);
		return 1;
	}
	if (rc != CURLE_OK && why[0] && !e->reached &&
	    (j->attempts >= UNREACHABLE_TRIES || j->attempts > e->o.max_retries)) {
		/* nothing ever answered: the address is wrong or the server is
		 * down; retrying every pair for minutes would not help */
		snprintf(j->errmsg, sizeof j->errmsg, "%s", why);
		j->unreachable = 1;
		j->fatal = 1;
		return 1;
	}
	if (rc != CURLE_OK) {
		snprintf(j->errmsg, sizeof j->errmsg, "%s", why[0] ? why : curl_easy_strerror(rc));
		if (curl_retryable(rc) || why[0]) {
			retry_or_fail(e, j, cb, 0, &finished);
		} else {
			j->fatal = 1;
		}
		return finished;
	}
	if (status >= 200 && status < 300) {
		if (cb->accept && cb->accept(cb->ud, j) != 0) {
			p->retry_after_ms = -1;
			retry_or_fail(e, j, cb, 0, &finished);
			return finished;
		}
		j->ok = 1;
		return 1;
	}
	char *msg = judge_error_message(util_buf_str(&j->response), j->response.len);
	snprintf(j->errmsg, sizeof j->errmsg, "HTTP %ld: %s", status, msg);
	free(msg);
	if (judge_status_retryable(status))
		retry_or_fail(e, j, cb, status == 429 || status == 529 || status == 503, &finished);
	else
		j->fatal = 1;
	return finished;
}

static int exec_finished(judge_engine *e, judge_job *j, const judge_engine_cbs *cb)
{
	jpriv *p = j->priv;
	int st = p->wstatus;
	(void)e;
	j->errmsg[0] = '\0';
	if (p->too_large) {
		snprintf(j->errmsg, sizeof j->errmsg, "the verifier wrote more than %zu bytes",
			 e->o.max_response);
		return 1;
	}
	if (WIFEXITED(st)) {
		j->status = WEXITSTATUS(st);
	} else {
		j->status = -1;
		snprintf(j->errmsg, sizeof j->errmsg, "the verifier was killed by signal %d",
			 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		return 1;
	}
	if (j->status != 0) {
		const char *es = util_buf_str(&p->err);
		int n = (int)strcspn(es, "\n");
		snprintf(j->errmsg, sizeof j->errmsg, "the verifier exited with status %ld%s%.*s",
			 j->status, n ? ": " : "", n > 300 ? 300 : n, es);
		if (j->status == 126 || j->status == 127)
			j->fatal = 1; /* not executable / not found: every pair would fail */
		return 1;
	}
	if (cb->accept && cb->accept(cb->ud, j) != 0)
		return 1;
	j->ok = 1;
	return 1;
}

/* Start the next try of a waiting job. Returns 1 if it finished at once
 * (could not start). */
static int start_try(judge_engine *e, judge_job *j)
{
	jpriv *p = j->priv;
	int rc;
	j->attempts++;
	p->started = util_now();
	rc = j->command ? start_exec(e, j) : start_http(e, j);
	if (rc) {
		j->fatal = 1;
		return 1;
	}
	if (j->command && !j->sends++)
		e->sent++;
	return 0;
}

/* Take a finished job out of its slot (its engine state freed). */
static judge_job *release_slot(judge_engine *e, int slot)
{
	judge_job *j = e->slot[slot];
	jpriv *p = j->priv;
	e->slot[slot] = NULL;
	e->nactive--;
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
	close_fd(&p->pid_fd);
	util_buf_free(&p->err);
	free(p);
	j->priv = NULL;
	return j;
}

/* Take a finished job out of its slot and report it. */
static int finish(judge_engine *e, int slot, const judge_engine_cbs *cb)
{
	return cb->done(cb->ud, release_slot(e, slot));
}

static int find_slot(judge_engine *e, judge_job *j)
{
	for (int i = 0; i < e->nslots; i++)
		if (e->slot[i] == j)
			return i;
	return -1;
}

/* The next job: the oldest asked for ahead, else a new one from next. */
static judge_job *next_job(judge_engine *e, const judge_engine_cbs *cb)
{
	if (!e->nahead)
		return cb->next(cb->ud);
	judge_job *j = e->ahead[e->ahead_head];
	e->ahead_head = (e->ahead_head + 1) % e->nslots;
	e->nahead--;
	e->ahead_more = 1;
	return j;
}

/* Ask next for up to max jobs ahead of the slots that will free up (one
 * slot's worth each, nslots in all), so that a finished request's
 * replacement starts without waiting for next's work (claims, building
 * the body). Sets e->ahead_more: whether there may be more to ask for. */
static void fetch_ahead(judge_engine *e, const judge_engine_cbs *cb, int max)
{
	for (int k = 0; k < max && e->ahead_more; k++) {
		if (e->nahead >= e->nslots) {
			e->ahead_more = 0;
			break;
		}
		judge_job *j = cb->next(cb->ud);
		if (!j) {
			e->ahead_more = 0; /* next ran dry: fill_slots still asks it */
			break;
		}
		e->ahead[(e->ahead_head + e->nahead) % e->nslots] = j;
		e->nahead++;
	}
}

/* Give free slots the next jobs; *exhausted: next has none left. */
static void fill_slots(judge_engine *e, const judge_engine_cbs *cb, double now, int *exhausted)
{
	*exhausted = 0;
	while (e->nactive < e->nslots) {
		judge_job *j = next_job(e, cb);
		if (!j) {
			*exhausted = 1;
			break;
		}
		int s = find_slot(e, NULL);
		jpriv *p = xcalloc(1, sizeof *p);
		p->state = J_WAITING;
		p->not_before = now;
		p->in_fd = p->out_fd = p->err_fd = p->pid_fd = -1;
		j->priv = p;
		judge_job_reset(j);
		e->slot[s] = j;
		e->nactive++;
	}
}

/* Start the waiting jobs whose time has come (after a shared pause, and
 * once the rate buckets allow); lowers *wake to the next start due.
 * Returns a done callback's nonzero value, else 0. */
static int start_due(judge_engine *e, const judge_engine_cbs *cb, double now, double *wake)
{
	int rc = 0;
	for (int i = 0; i < e->nslots && !rc; i++) {
		judge_job *j = e->slot[i];
		if (!j || ((jpriv *)j->priv)->state != J_WAITING)
			continue;
		jpriv *p = j->priv;
		double t = p->not_before;
		if (!j->command && p->not_before < e->pause_until + e->pause_window) {
			/* after a shared pause, requests resume spread over a
			 * window, each at a random place drawn once per pause */
			if (p->pause_epoch != e->pause_epoch) {
				p->pause_epoch = e->pause_epoch;
				p->jitter = uniform(e);
			}
			double r = e->pause_until + p->jitter * e->pause_window;
			if (r > t)
				t = r;
		}
		if (!j->command && t <= now && !p->charged) {
			double w1 = judge_bucket_take(&e->rpm, 1, now);
			double w2 = w1 > 0 ? 0 : judge_bucket_take(&e->tpm, j->est_tokens, now);
			if (w1 > 0 || w2 > 0) {
				if (w2 > 0)
					judge_bucket_adjust(&e->rpm, 1, now);
				p->not_before = now + (w1 > w2 ? w1 : w2);
				t = p->not_before;
			} else {
				p->charged = 1;
			}
		}
		if (t > now) {
			if (t < *wake)
				*wake = t;
			continue;
		}
		p->charged = 0;
		if (start_try(e, j))
			rc = finish(e, i, cb);
	}
	return rc;
}

/* Report the answers waiting in e->ready, in the order they came; stops
 * at the first nonzero callback value and returns it (else 0). */
static int report_ready(judge_engine *e, const judge_engine_cbs *cb)
{
	int rc = 0;
	for (int i = 0; i < e->nready && !rc; i++)
		rc = cb->done(cb->ud, e->ready[i]);
	e->nready = 0;
	return rc;
}

/* Read the finished transfers. A fatal one is reported at once, after the
 * answers before it (nothing more may start after it); the others wait in
 * e->ready for send_then_report. Returns a done callback's nonzero value,
 * else 0. */
static int collect_http(judge_engine *e, const judge_engine_cbs *cb)
{
	CURLMsg *m;
	int left, rc = 0;
	while (!rc && (m = curl_multi_info_read(e->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		judge_job *j = NULL;
		CURLcode res = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		if (!j || !http_finished(e, j, res, cb))
			continue;
		if (j->fatal) {
			int s = find_slot(e, j);
			if (!(rc = report_ready(e, cb)))
				rc = finish(e, s, cb);
		}
		else
			e->ready[e->nready++] = release_slot(e, find_slot(e, j));
	}
	return rc;
}

/* The answers in e->ready freed their slots: first give those slots new
 * requests and let curl send them, then report the answers (the store's
 * work per answer then overlaps the new requests' latency instead of
 * delaying them). Returns the first nonzero callback value, else 0. */
static int send_then_report(judge_engine *e, const judge_engine_cbs *cb)
{
	int exhausted, running = 0, rc;
	double now = util_now(), wake = now;
	fill_slots(e, cb, now, &exhausted);
	rc = start_due(e, cb, now, &wake);
	if (!rc && e->curl_due >= 0 && util_now() >= e->curl_due) {
		e->curl_due = -1;
		curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	if (rc) {
		e->nready = 0;
		return rc;
	}
	return report_ready(e, cb);
}

int judge_engine_run(judge_engine *e, const judge_engine_cbs *cb)
{
	int rc = 0, exhausted = 0;
	double last_tick = util_now();

	e->ahead_more = 1;
	for (;;) {
		double now = util_now();
		if (util_interrupted()) {
			rc = JUDGE_EINTR;
			break;
		}
		fill_slots(e, cb, now, &exhausted);
		if (exhausted && e->nactive == 0)
			break;
		/* start waiting jobs whose time has come */
		double wake = now + (e->exec_wait ? 0.005 : 0.1);
		e->exec_wait = 0;
		if ((rc = start_due(e, cb, now, &wake)))
			break;
		/* wait for sockets, pipes or the next timer (at most 100 ms) */
		int running = 0;
		double due = wake;
		if (e->curl_due >= 0 && e->curl_due < due)
			due = e->curl_due;
		long timeout_ms = (long)((due - util_now()) * 1000.0 + 0.999);
		if (timeout_ms < 0)
			timeout_ms = 0;
		if (timeout_ms > 100)
			timeout_ms = 100;
		if (e->ahead_more)
			timeout_ms = 0; /* only look at the sockets between fetches */
		struct epoll_event evs[64];
		int nev = epoll_wait(e->epfd, evs, 64, (int)timeout_ms);
		for (int i = 0; i < nev; i++) {
			if (evs[i].data.u64 & PIPE_TAG)
				continue; /* verifiers are pumped below */
			int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
				    (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
				    (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
			curl_multi_socket_action(e->multi, (curl_socket_t)evs[i].data.u64, flags, &running);
		}
		if (e->curl_due >= 0 && util_now() >= e->curl_due) {
			e->curl_due = -1;
			curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		rc = collect_http(e, cb);
		if (!rc && e->nready)
			rc = send_then_report(e, cb);
		e->nready = 0;
		if (rc)
			break;
		/* verifiers: pump, time out, finish */
		now = util_now();
		for (int i = 0; i < e->nslots && !rc; i++) {
			judge_job *j = e->slot[i];
			if (!j || ((jpriv *)j->priv)->state != J_EXEC)
				continue;
			jpriv *p = j->priv;
			if (pump_exec(e, j)) {
				if (exec_finished(e, j, cb))
					rc = finish(e, i, cb);
				continue;
			}
			if (now - p->started > e->o.timeout_s) {
				kill(p->pid, SIGKILL);
				waitpid(p->pid, NULL, 0);
				p->pid = 0;
				job_abandon(e, j);
				j->priv = p = xcalloc(1, sizeof *p);
				p->in_fd = p->out_fd = p->err_fd = p->pid_fd = -1;
				snprintf(j->errmsg, sizeof j->errmsg,
					 "the verifier did not finish within %g s (killed)", e->o.timeout_s);
				rc = finish(e, i, cb);
				continue;
			}
			if (p->out_fd < 0 && p->err_fd < 0 && p->pid_fd < 0)
				e->exec_wait = 1; /* only the exit status is missing: look again soon */
		}
		if (rc)
			break;
		if (now - last_tick >= 0.1) {
			last_tick = now;
			if (cb->tick && (rc = cb->tick(cb->ud)))
				break;
		}
		/* a few at a time, so that answers arriving meanwhile wait little */
		fetch_ahead(e, cb, 8);
	}
	/* abandon whatever is still in flight */
	for (int i = 0; i < e->nslots; i++) {
		if (e->slot[i]) {
			job_abandon(e, e->slot[i]);
			e->slot[i] = NULL;
		}
	}
	e->nactive = 0;
	e->nahead = 0; /* asked for ahead and never started: the caller's */
	return rc;
}
