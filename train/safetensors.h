/* safetensors.h: read and write the safetensors format (an 8-byte little
 * endian header length, a JSON header naming each tensor's dtype, shape and
 * byte range, then the data). Files are mmapped; tensors are converted to
 * float32 on request (F32, BF16, F16). */
#ifndef DPO_TRAIN_SAFETENSORS_H
#define DPO_TRAIN_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

typedef enum { TRAIN_ST_OTHER = 0, TRAIN_ST_F32, TRAIN_ST_BF16, TRAIN_ST_F16 } train_st_dtype;

#define TRAIN_ST_MAXDIM 8

typedef struct train_st_tensor {
	char *name;
	char dtype_name[12];     /* as written in the header, e.g. "BF16" */
	train_st_dtype dtype;    /* TRAIN_ST_OTHER for dtypes we cannot convert */
	int ndim;
	int64_t shape[TRAIN_ST_MAXDIM];
	size_t numel;
	size_t begin, end;       /* byte range relative to the data section */
} train_st_tensor;

typedef struct train_st_file train_st_file;

/* Parse a whole safetensors image (header + data) held in memory; the image
 * must outlive the result. Checks the header length, the JSON, every dtype,
 * shape and offset (in range, size matching dtype x shape, no overlaps).
 * Returns the parsed file (free with train_st_close) or NULL with a message
 * in *err (caller frees) prefixed by label (e.g. the path). Fuzzed. */
train_st_file *train_st_parse(const uint8_t *buf, size_t len, const char *label, char **err);

/* mmap path and parse it. NULL with *err on failure. */
train_st_file *train_st_open(const char *path, char **err);

/* Unmap/free (NULL allowed). */
void train_st_close(train_st_file *f);

/* Number of tensors and the i-th (owned by f, in header order). */
int train_st_count(const train_st_file *f);
const train_st_tensor *train_st_get(const train_st_file *f, int i);
/* Find a tensor by name, NULL if absent. */
const train_st_tensor *train_st_find(const train_st_file *f, const char *name);

/* Convert tensor t of f to float32 into out (t->numel floats). Returns 0, or
 * -1 for an unsupported dtype with *err naming the tensor and dtype. */
int train_st_read_f32(const train_st_file *f, const train_st_tensor *t, float *out, char **err);

/* The raw (little-endian) bytes of tensor t of f: t->end - t->begin of
 * them, owned by f. */
const uint8_t *train_st_data(const train_st_file *f, const train_st_tensor *t);

/* Tell the OS that tensor t's bytes are no longer needed (read once): the
 * whole pages inside it leave the resident set (a later read maps them in
 * again). No-op for files parsed from memory. */
void train_st_release(const train_st_file *f, const train_st_tensor *t);

/* A tensor to write: name, shape, float32 data. */
typedef struct train_st_out {
	const char *name;
	int ndim;
	int64_t shape[2];
	const float *data;        /* numel floats, or NULL when transpose_src is set */
	const float *transpose_src; /* write the transpose of this [shape[1], shape[0]] matrix */
} train_st_out;

/* Write n F32 tensors to path (through a temporary file, fsync, rename).
 * Tensors are written in the given order; the header has
 * __metadata__ {"format": "pt"}. Returns 0 or -1 with *err. */
int train_st_write(const char *path, const train_st_out *t, int n, char **err);

#endif
