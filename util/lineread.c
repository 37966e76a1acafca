/* lineread.c: buffered, gzip-transparent line reader built on zlib's inflate. */
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

/* gzip is read with inflate directly (not gzread) so that a truncated
 * stream and bytes after the last member are errors with a plain message
 * rather than "<fd:6>: unexpected end of file" or silence. */
struct util_lineread {
	int fd;
	int gzip;              /* the input is gzip (else plain text) */
	int member_end;        /* inflate finished a gzip member */
	z_stream zs;
	unsigned char *in;     /* compressed input: zs.next_in/avail_in in it */
	int in_eof;
	unsigned long long in_used; /* compressed bytes given to inflate */
	char *buf;             /* holds [start, end) of unread data */
	size_t start, end, cap;
	int eof;
	long lineno;
	unsigned long long offset;
	char err[256];
};

/* Read up to n bytes (n > 0) into p; 0 at end of file, -1 on error. */
static long read_some(int fd, void *p, size_t n)
{
	for (;;) {
		ssize_t k = read(fd, p, n);
		if (k >= 0 || errno != EINTR)
			return (long)k;
	}
}

util_lineread *util_lineread_open(const char *path)
{
	int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	util_lineread *r = xcalloc(1, sizeof *r);
	r->fd = fd;
	r->cap = CHUNK;
	r->buf = xmalloc(r->cap);
	/* Sniff the gzip magic: the first bytes read stay in buf (plain) or
	 * move to the compressed input (gzip). */
	while (r->end < 2) {
		long k = read_some(fd, r->buf + r->end, r->cap - r->end - 1);
		if (k < 0) {
			int e = errno;
			util_lineread_close(r);
			errno = e;
			return NULL;
		}
		if (k == 0) {
			r->eof = 1;
			break;
		}
		r->end += (size_t)k;
	}
	if (r->end >= 2 && (unsigned char)r->buf[0] == 0x1f && (unsigned char)r->buf[1] == 0x8b) {
		r->gzip = 1;
		r->in = xmalloc(CHUNK); /* the sniff above read fewer than CHUNK bytes */
		memcpy(r->in, r->buf, r->end);
		r->zs.next_in = r->in;
		r->zs.avail_in = (uInt)r->end;
		r->in_eof = r->eof;
		r->eof = 0;
		r->end = 0;
		if (inflateInit2(&r->zs, 15 + 16) != Z_OK) {
			r->gzip = 0; /* nothing to end */
			util_lineread_close(r);
			errno = ENOMEM;
			return NULL;
		}
	}
	return r;
}

/* Inflate more into buf[end..]; returns bytes made, 0 at a clean end, -1 on
 * error (message in r->err). */
static long inflate_some(util_lineread *r)
{
	for (;;) {
		if (r->zs.avail_in == 0 && !r->in_eof) {
			long k = read_some(r->fd, r->in, CHUNK);
			if (k < 0) {
				snprintf(r->err, sizeof r->err, "%s", strerror(errno));
				return -1;
			}
			if (k == 0)
				r->in_eof = 1;
			r->zs.next_in = r->in;
			r->zs.avail_in = (uInt)k;
		}
		if (r->member_end) {
			if (r->zs.avail_in == 0) {
				if (r->in_eof)
					return 0;
				continue;
			}
			/* another gzip member (as gzip -d reads them), else junk */
			if (r->zs.next_in[0] != 0x1f) {
				snprintf(r->err, sizeof r->err,
					 "data after the end of the gzip stream (at compressed byte %llu)",
					 r->in_used + 1);
				return -1;
			}
			inflateReset(&r->zs);
			r->member_end = 0;
		}
		uInt before_in = r->zs.avail_in;
		r->zs.next_out = (unsigned char *)r->buf + r->end;
		r->zs.avail_out = (uInt)(r->cap - r->end - 1);
		uInt before_out = r->zs.avail_out;
		int zr = inflate(&r->zs, Z_NO_FLUSH);
		r->in_used += before_in - r->zs.avail_in;
		long made = (long)(before_out - r->zs.avail_out);
		if (zr == Z_STREAM_END) {
			r->member_end = 1;
		} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
			snprintf(r->err, sizeof r->err, "invalid gzip data near compressed byte %llu%s%s",
				 r->in_used + 1, r->zs.msg ? ": " : "", r->zs.msg ? r->zs.msg : "");
			return -1;
		}
		if (made > 0)
			return made;
		if (!r->member_end && r->zs.avail_in == 0 && r->in_eof) {
			snprintf(r->err, sizeof r->err,
				 "the gzip data ends early (truncated after %llu compressed bytes)", r->in_used);
			return -1;
		}
	}
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
	long n;
	if (r->gzip) {
		n = inflate_some(r);
	} else {
		n = read_some(r->fd, r->buf + r->end, r->cap - r->end - 1);
		if (n < 0)
			snprintf(r->err, sizeof r->err, "%s", strerror(errno));
	}
	if (n < 0)
		return -1;
	r->end += (size_t)n;
	return (int)(n > 0);
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

int util_lineread_chunk(util_lineread *r, const char **data, size_t *len)
{
	while (r->start == r->end) {
		if (r->eof)
			return 0;
		int n = fill(r);
		if (n < 0)
			return -1;
		if (n == 0)
			r->eof = 1;
	}
	*data = r->buf + r->start;
	*len = r->end - r->start;
	r->offset += *len;
	r->start = r->end;
	return 1;
}

int util_lineread_peek(util_lineread *r)
{
	size_t skip = 0; /* bytes after start known to be white space or a BOM */
	for (;;) {
		while (r->start + skip < r->end) {
			const unsigned char *u = (const unsigned char *)r->buf + r->start;
			unsigned char c = u[skip];
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				skip++;
				continue;
			}
			if (skip == 0 && c == 0xEF) { /* a byte order mark? */
				if (r->end - r->start < 3 && !r->eof)
					break; /* read more first */
				if (r->end - r->start >= 3 && u[1] == 0xBB && u[2] == 0xBF) {
					skip = 3;
					continue;
				}
			}
			return c;
		}
		if (r->eof)
			return -1;
		int n = fill(r); /* keeps the unread bytes, moved to the front */
		if (n < 0)
			return -2;
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
	if (r->gzip)
		inflateEnd(&r->zs);
	if (r->fd >= 0)
		close(r->fd);
	free(r->in);
	free(r->buf);
	free(r);
}
