/* lineread.c: buffered, gzip-transparent line reader built on zlib's gzread. */
#include "util/lineread.h"
#include "util/xmalloc.h"
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (256 * 1024)

struct util_lineread {
	gzFile gz;
	char *buf;        /* holds [start, end) of unread data */
	size_t start, end, cap;
	int eof;
	long lineno;
	unsigned long long offset;
	char err[256];
};

util_lineread *util_lineread_open(const char *path)
{
	int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	gzFile gz = gzdopen(fd, "rb");
	if (!gz) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	gzbuffer(gz, CHUNK);
	util_lineread *r = xcalloc(1, sizeof *r);
	r->gz = gz;
	r->cap = CHUNK;
	r->buf = xmalloc(r->cap);
	return r;
}

/* Read more data into the buffer; returns bytes read, 0 at EOF, -1 on error. */
static int fill(util_lineread *r)
{
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end < CHUNK / 2) {
		r->cap *= 2;
		r->buf = xrealloc(r->buf, r->cap);
	}
	int n = gzread(r->gz, r->buf + r->end, (unsigned)(r->cap - r->end - 1));
	if (n < 0) {
		int zerr;
		const char *m = gzerror(r->gz, &zerr);
		snprintf(r->err, sizeof r->err, "%s", zerr == Z_ERRNO ? strerror(errno) : m);
		return -1;
	}
	if (n == 0) {
		/* A truncated gzip stream reads as EOF with Z_BUF_ERROR pending. */
		int zerr;
		const char *m = gzerror(r->gz, &zerr);
		if (zerr != Z_OK && zerr != Z_STREAM_END) {
			snprintf(r->err, sizeof r->err, "%s", m);
			return -1;
		}
	}
	r->end += (size_t)n;
	return n;
}

int util_lineread_next(util_lineread *r, const char **line, size_t *len)
{
	size_t scanned = 0; /* bytes after start known to hold no newline */
	for (;;) {
		char *nl = memchr(r->buf + r->start + scanned, '\n', r->end - r->start - scanned);
		if (nl) {
			size_t s = r->start, e = (size_t)(nl - r->buf);
			r->offset += e - s + 1;
			r->start = e + 1;
			if (e > s && r->buf[e - 1] == '\r')
				e--;
			r->buf[e] = '\0';
			*line = r->buf + s;
			*len = e - s;
			r->lineno++;
			return 1;
		}
		if (r->eof) {
			if (r->start == r->end)
				return 0;
			size_t s = r->start, e = r->end;
			r->offset += e - s;
			r->start = r->end;
			if (e > s && r->buf[e - 1] == '\r')
				e--;
			r->buf[e] = '\0';
			*line = r->buf + s;
			*len = e - s;
			r->lineno++;
			return 1;
		}
		scanned = r->end - r->start;
		int n = fill(r);
		if (n < 0)
			return -1;
		if (n == 0)
			r->eof = 1;
	}
}

long util_lineread_lineno(const util_lineread *r)
{
	return r->lineno;
}

unsigned long long util_lineread_offset(const util_lineread *r)
{
	return r->offset;
}

const char *util_lineread_error(const util_lineread *r)
{
	return r->err[0] ? r->err : "read error";
}

void util_lineread_close(util_lineread *r)
{
	if (!r)
		return;
	gzclose(r->gz);
	free(r->buf);
	free(r);
}
