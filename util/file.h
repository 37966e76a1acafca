/* file.h: whole-file reading, atomic writing and copying. */
#ifndef DPO_FILE_H
#define DPO_FILE_H
#include <stddef.h>

/* Read the whole file at path ("-" is standard input) into a new NUL-terminated buffer (the caller
 * frees it); its length, without the NUL, goes to *len when len is not NULL.
 * Returns NULL with errno set when the file cannot be read. */
char *util_read_file(const char *path, size_t *len);

/* Write n bytes to path atomically: to "path.tmp.PID", fsync, rename over
 * path, fsync the folder. Returns 0, or -1 with errno set (the temporary
 * file is removed and path is left as it was). */
int util_write_file_atomic(const char *path, const void *data, size_t n);

/* Copy the file src to dst the way util_write_file_atomic writes: through
 * "dst.tmp.PID", fsync, rename over dst, fsync the folder. So dst is either
 * its old self or a complete copy, never a torn one (and src == dst is
 * harmless). Returns 0, or -1 with errno set (ENOENT when src or the folder
 * of dst does not exist); on failure the temporary file is removed and dst
 * is left as it was. */
int util_copy_file(const char *src, const char *dst);

/* Write all n bytes at buf to fd, going on after short writes and EINTR.
 * Returns 0, or -1 with errno set. */
int util_write_all(int fd, const void *buf, size_t n);

/* fsync the folder dir so that a rename inside it is durable. Returns 0 or -1
 * with errno set. */
int util_fsync_dir(const char *dir);

/* The folder that holds path, newly allocated (caller frees): the path up
 * to its last name, trailing slashes ignored; "." when path names no
 * folder, "/" for a name at the root. */
char *util_parent_dir(const char *path);

/* fsync the folder that holds path (util_parent_dir). Returns 0 or -1 with
 * errno set. */
int util_fsync_parent(const char *path);

/* 1 when a and b name the same file, else 0. Two existing files are the
 * same when they have the same device and inode (so links and other
 * spellings match); otherwise the paths are compared after resolving the
 * folder (realpath of the folder + the last name), so a file not yet
 * created is matched by where it would be. */
int util_same_file(const char *a, const char *b);

/* Check, before anything is written, that the output out does not name the
 * database db (nor its "-wal", "-shm" or "-journal" file) or one of the n
 * inputs (NULL entries and "-" are skipped; db may be NULL; an out of "-",
 * standard output, always passes). Returns 0, or -1 with the reason written
 * to err ("refusing to write the output over the database", "... over the
 * input file IN"); callers print it as "PROGRAM: OUT: REASON" and exit 1. */
int util_check_output(const char *out, const char *db, const char *const *inputs, int n, char *err,
		      size_t errlen);

/* The two halves of an atomic write, for writers that stream. util_atomic_open
 * creates "path.tmp.PID" (its name, owned by the caller until
 * util_atomic_close, goes to *tmp) and returns its descriptor, or -1 with
 * errno set. util_atomic_close takes fd and tmp over: when ok (the caller
 * wrote everything) it fsyncs, renames tmp over path and fsyncs the folder,
 * returning 0; otherwise, or when one of those fails, it removes tmp and
 * returns -1 with errno set (the caller's errno when !ok). */
int util_atomic_open(const char *path, char **tmp);
int util_atomic_close(int fd, char *tmp, const char *path, int ok);

/* Remove dir and the plain files in it (a temporary output folder that is
 * given up, a superseded checkpoint); subfolders are not descended into.
 * Errors are ignored: what cannot be removed stays. */
void util_remove_flat_dir(const char *dir);

#endif
