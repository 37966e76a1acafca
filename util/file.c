/* file.c: whole-file reading, atomic writing and copying (see file.h). */
#include "util/file.h"
#include "util/buf.h"
#include "util/xmalloc.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *util_read_file(const char *path, size_t *len)
{
	int fd = strcmp(path, "-") == 0 ? dup(0) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	util_buf b = UTIL_BUF_INIT;
	util_buf_grow(&b, 0);
	for (;;) {
		util_buf_grow(&b, 65536);
		ssize_t r = read(fd, b.data + b.len, b.cap - b.len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			util_buf_free(&b);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		b.len += (size_t)r;
		b.data[b.len] = '\0';
	}
	close(fd);
	if (len)
		*len = b.len;
	return util_buf_detach(&b);
}

int util_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int util_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

char *util_parent_dir(const char *path)
{
	char *dir = xstrdup(path);
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		dir[--len] = '\0';
	char *slash = strrchr(dir, '/');
	if (!slash) {
		free(dir);
		return xstrdup(".");
	}
	*(slash == dir ? slash + 1 : slash) = '\0';
	return dir;
}

int util_fsync_parent(const char *path)
{
	char *dir = util_parent_dir(path);
	int rc = util_fsync_dir(dir);
	int e = errno;
	free(dir);
	errno = e;
	return rc;
}

int util_atomic_open(const char *path, char **tmp)
{
	*tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(*tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		free(*tmp);
		*tmp = NULL;
		errno = e;
	}
	return fd;
}

int util_atomic_close(int fd, char *tmp, const char *path, int ok)
{
	int e;
	if (!ok || fsync(fd) != 0) {
		e = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		e = errno;
		goto fail;
	}
	free(tmp);
	util_fsync_parent(path); /* make the rename durable */
	return 0;
fail:
	unlink(tmp);
	free(tmp);
	errno = e;
	return -1;
}

int util_write_file_atomic(const char *path, const void *data, size_t n)
{
	char *tmp;
	int fd = util_atomic_open(path, &tmp);
	if (fd < 0)
		return -1;
	return util_atomic_close(fd, tmp, path, util_write_all(fd, data, n) == 0);
}

int util_copy_file(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), e;
	if (in < 0)
		return -1;
	char *tmp;
	int fd = util_atomic_open(dst, &tmp);
	if (fd < 0) {
		e = errno;
		close(in);
		errno = e;
		return -1;
	}
	char buf[65536];
	int ok = 1;
	for (;;) {
		ssize_t r = read(in, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ok = r == 0;
			break;
		}
		if (util_write_all(fd, buf, (size_t)r) != 0) {
			ok = 0;
			break;
		}
	}
	e = errno;
	close(in);
	errno = e;
	return util_atomic_close(fd, tmp, dst, ok);
}

/* The path with its folder resolved: realpath(folder) + "/" + last name;
 * NULL when the folder cannot be resolved. */
static char *resolve_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
	const char *name = slash ? slash + 1 : path;
	char *real = realpath(dir, NULL), *r = NULL;
	free(dir);
	if (real) {
		r = xasprintf("%s%s%s", real, strcmp(real, "/") ? "/" : "", name);
		free(real);
	}
	return r;
}

int util_same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
	if (ea && eb)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	if (ea != eb)
		return 0;
	char *ra = resolve_parent(a), *rb = resolve_parent(b);
	int same = ra && rb ? !strcmp(ra, rb) : !strcmp(a, b);
	free(ra);
	free(rb);
	return same;
}

int util_check_output(const char *out, const char *db, const char *const *inputs, int n, char *err,
		      size_t errlen)
{
	if (!out || !strcmp(out, "-"))
		return 0;
	if (db) {
		static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
		for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
			char *p = xasprintf("%s%s", db, sfx[i]);
			int same = util_same_file(out, p);
			free(p);
			if (same) {
				snprintf(err, errlen, "refusing to write the output over the database%s%s%s",
					 *sfx[i] ? " (its " : "", sfx[i], *sfx[i] ? " file)" : "");
				return -1;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		if (!inputs[i] || !strcmp(inputs[i], "-"))
			continue;
		if (util_same_file(out, inputs[i])) {
			snprintf(err, errlen, "refusing to write the output over the input file %s", inputs[i]);
			return -1;
		}
	}
	return 0;
}

void util_remove_flat_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
				char *p = xasprintf("%s/%s", dir, e->d_name);
				unlink(p);
				free(p);
			}
		closedir(d);
	}
	rmdir(dir);
}
