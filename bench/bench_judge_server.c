/* bench_judge_server.c: a minimal fake OpenAI chat-completions server for
 * bench_judge, in C so that the server is not the bottleneck: one thread,
 * epoll, HTTP/1.1 keep-alive, bound to 127.0.0.1 on a free port (written to
 * PORT_FILE). Every POST is answered after LATENCY seconds with a fixed
 * completion ending in "[[A]]". Since every answer waits equally long, the
 * pending answers form a FIFO already sorted by due time.
 *
 *   bench_judge_server PORT_FILE LATENCY_S */
#include "config.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 4096
#define BUFSZ (1 << 20)

typedef struct conn {
	char *buf;
	size_t len;
	int waiting; /* an answer is queued */
} conn;

static conn conns[MAXFD];
static struct {
	int fd;
	double due;
} q[1 << 16];
static size_t qh, qt;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char body[] =
	"{\"id\":\"b\",\"object\":\"chat.completion\",\"model\":\"bench\",\"choices\":[{\"index\":0,"
	"\"message\":{\"role\":\"assistant\",\"content\":\"Both are fine; the first is a bit better.\\n[[A]]\"},"
	"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":300,\"completion_tokens\":12,\"total_tokens\":312}}";

static void drop(int ep, int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd].buf);
	memset(&conns[fd], 0, sizeof conns[fd]);
}

/* A complete request in the buffer? Returns its length or 0. */
static size_t complete(conn *c)
{
	char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (!e)
		return 0;
	size_t hl = (size_t)(e - c->buf) + 4, cl = 0;
	for (char *p = c->buf; p < e; p++)
		if ((p == c->buf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15))
			cl = strtoul(p + 15, NULL, 10);
	return c->len >= hl + cl ? hl + cl : 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bench_judge_server PORT_FILE LATENCY_S\n");
		return 2;
	}
	double lat = atof(argv[2]);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in a = {0};
	socklen_t al = sizeof a;
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024) ||
	    getsockname(ls, (struct sockaddr *)&a, &al)) {
		perror("bench_judge_server");
		return 1;
	}
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return 1;
	fprintf(f, "%d", ntohs(a.sin_port));
	fclose(f);
	rename(tmp, argv[1]);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	char head[256];
	int hl = snprintf(head, sizeof head,
			  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			  sizeof body - 1);
	for (;;) {
		int timeout = -1;
		if (qh != qt) {
			double d = q[qh % (1 << 16)].due - now();
			timeout = d <= 0 ? 0 : (int)(d * 1000) + 1;
		}
		int n = epoll_wait(ep, evs, 256, timeout);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				int c;
				while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					if (c >= MAXFD) {
						close(c);
						continue;
					}
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					conns[c].buf = malloc(BUFSZ);
					conns[c].len = 0;
					struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
				}
				continue;
			}
			conn *c = &conns[fd];
			ssize_t r = read(fd, c->buf + c->len, BUFSZ - c->len);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				drop(ep, fd);
				continue;
			}
			c->len += (size_t)r;
			size_t rl;
			if (!c->waiting && (rl = complete(c))) {
				memmove(c->buf, c->buf + rl, c->len - rl);
				c->len -= rl;
				c->waiting = 1;
				q[qt % (1 << 16)].fd = fd;
				q[qt % (1 << 16)].due = now() + lat;
				qt++;
			}
		}
		double t = now();
		while (qh != qt && q[qh % (1 << 16)].due <= t) {
			int fd = q[qh % (1 << 16)].fd;
			qh++;
			conn *c = &conns[fd];
			if (!c->buf)
				continue;
			struct iovec iov[2] = {{head, (size_t)hl}, {(void *)body, sizeof body - 1}};
			if (writev(fd, iov, 2) < 0) {
				drop(ep, fd);
				continue;
			}
			c->waiting = 0;
			size_t rl;
			if ((rl = complete(c))) { /* a pipelined request was already read */
				memmove(c->buf, c->buf + rl, c->len - rl);
				c->len -= rl;
				c->waiting = 1;
				q[qt % (1 << 16)].fd = fd;
				q[qt % (1 << 16)].due = t + lat;
				qt++;
			}
		}
	}
}
