/* file.h: whole-file reading and atomic writing. */
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

/* fsync the folder dir so that a rename inside it is durable. Returns 0 or -1
 * with errno set. */
int util_fsync_dir(const char *dir);

#endif
