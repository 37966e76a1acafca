/* safetensors.c: safetensors reading (mmap) and writing. */
#include "config.h"
#include "train/safetensors.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/xmalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct train_st_file {
	void *map;            /* mmap base, or NULL when parsed from memory */
	size_t map_len;
	const uint8_t *data;  /* start of the data section */
	size_t data_len;
	int n;
	train_st_tensor *t;
};

static size_t dtype_size(const char *d, train_st_dtype *code)
{
	static const struct { const char *name; size_t size; train_st_dtype code; } tab[] = {
		{"F32", 4, TRAIN_ST_F32}, {"BF16", 2, TRAIN_ST_BF16}, {"F16", 2, TRAIN_ST_F16},
		{"F64", 8, TRAIN_ST_OTHER}, {"I64", 8, TRAIN_ST_OTHER}, {"U64", 8, TRAIN_ST_OTHER},
		{"I32", 4, TRAIN_ST_OTHER}, {"U32", 4, TRAIN_ST_OTHER}, {"I16", 2, TRAIN_ST_OTHER},
		{"U16", 2, TRAIN_ST_OTHER}, {"I8", 1, TRAIN_ST_OTHER}, {"U8", 1, TRAIN_ST_OTHER},
		{"BOOL", 1, TRAIN_ST_OTHER}, {"F8_E4M3", 1, TRAIN_ST_OTHER},
		{"F8_E5M2", 1, TRAIN_ST_OTHER},
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (!strcmp(d, tab[i].name)) {
			*code = tab[i].code;
			return tab[i].size;
		}
	return 0;
}

void train_st_close(train_st_file *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->n; i++)
		free(f->t[i].name);
	free(f->t);
	if (f->map)
		munmap(f->map, f->map_len);
	free(f);
}

static int cmp_begin(const void *a, const void *b)
{
	const train_st_tensor *x = *(const train_st_tensor *const *)a;
	const train_st_tensor *y = *(const train_st_tensor *const *)b;
	return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

/* Read a JSON number that must be a non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out)
{
	if (!cJSON_IsNumber(j))
		return -1;
	double d = j->valuedouble;
	if (!(d >= 0 && d <= 9007199254740992.0) || floor(d) != d)
		return -1;
	*out = (uint64_t)d;
	return 0;
}

train_st_file *train_st_parse(const uint8_t *buf, size_t len, const char *label, char **err)
{
	train_st_file *f = xcalloc(1, sizeof *f);
	cJSON *root = NULL;
	train_st_tensor **sorted = NULL;
	char *msg = NULL;

	if (len < 8) {
		msg = xasprintf("%s: file too short for a safetensors header (%zu bytes)", label, len);
		goto fail;
	}
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | buf[i];
	if (hlen > len - 8) {
		msg = xasprintf("%s: header length %llu exceeds the file size %zu", label,
				(unsigned long long)hlen, len);
		goto fail;
	}
	if (hlen < 2) {
		msg = xasprintf("%s: header length %llu is too small", label, (unsigned long long)hlen);
		goto fail;
	}
	root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
	if (!root || !cJSON_IsObject(root)) {
		msg = xasprintf("%s: header is not a JSON object", label);
		goto fail;
	}
	f->data = buf + 8 + hlen;
	f->data_len = len - 8 - (size_t)hlen;
	int cap = cJSON_GetArraySize(root);
	f->t = xcalloc(cap ? (size_t)cap : 1, sizeof *f->t);
	for (cJSON *e = root->child; e; e = e->next) {
		if (!e->string) {
			msg = xasprintf("%s: header entry without a name", label);
			goto fail;
		}
		if (!strcmp(e->string, "__metadata__"))
			continue;
		train_st_tensor *t = &f->t[f->n];
		const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
		const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
		const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
		if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) ||
		    !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
			msg = xasprintf("%s: tensor \"%s\": expected {dtype, shape, data_offsets}",
					label, e->string);
			goto fail;
		}
		size_t esize = dtype_size(dt->valuestring, &t->dtype);
		if (!esize) {
			msg = xasprintf("%s: tensor \"%s\": unknown dtype \"%s\"", label, e->string,
					dt->valuestring);
			goto fail;
		}
		snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
		int nd = cJSON_GetArraySize(sh);
		if (nd > TRAIN_ST_MAXDIM) {
			msg = xasprintf("%s: tensor \"%s\": %d dimensions (at most %d)", label,
					e->string, nd, TRAIN_ST_MAXDIM);
			goto fail;
		}
		t->ndim = nd;
		uint64_t numel = 1;
		int i = 0;
		for (const cJSON *d = sh->child; d; d = d->next, i++) {
			uint64_t v;
			if (json_uint(d, &v) || v > (1ull << 40)) {
				msg = xasprintf("%s: tensor \"%s\": bad shape", label, e->string);
				goto fail;
			}
			t->shape[i] = (int64_t)v;
			if (v && numel > (UINT64_MAX / 16) / v) {
				msg = xasprintf("%s: tensor \"%s\": shape too large", label, e->string);
				goto fail;
			}
			numel *= v;
		}
		uint64_t b, en;
		if (json_uint(off->child, &b) || json_uint(off->child->next, &en) || b > en) {
			msg = xasprintf("%s: tensor \"%s\": bad data_offsets", label, e->string);
			goto fail;
		}
		if (en > f->data_len) {
			msg = xasprintf("%s: tensor \"%s\": data_offsets [%llu, %llu] beyond the data "
					"section (%zu bytes)", label, e->string,
					(unsigned long long)b, (unsigned long long)en, f->data_len);
			goto fail;
		}
		if (en - b != numel * esize) {
			msg = xasprintf("%s: tensor \"%s\": %llu bytes for %llu %s values", label,
					e->string, (unsigned long long)(en - b),
					(unsigned long long)numel, t->dtype_name);
			goto fail;
		}
		t->numel = (size_t)numel;
		t->begin = (size_t)b;
		t->end = (size_t)en;
		t->name = xstrdup(e->string);
		f->n++;
	}
	sorted = xcalloc(f->n ? (size_t)f->n : 1, sizeof *sorted);
	for (int i = 0; i < f->n; i++)
		sorted[i] = &f->t[i];
	qsort(sorted, f->n, sizeof *sorted, cmp_begin);
	for (int i = 1; i < f->n; i++)
		if (sorted[i]->begin < sorted[i - 1]->end) {
			msg = xasprintf("%s: tensors \"%s\" and \"%s\" overlap", label,
					sorted[i - 1]->name, sorted[i]->name);
			goto fail;
		}
	for (int i = 0; i < f->n; i++)
		for (int j = 0; j < i; j++)
			if (f->n < 4096 && !strcmp(f->t[i].name, f->t[j].name)) {
				msg = xasprintf("%s: tensor \"%s\" appears twice", label, f->t[i].name);
				goto fail;
			}
	free(sorted);
	cJSON_Delete(root);
	return f;
fail:
	free(sorted);
	cJSON_Delete(root);
	train_st_close(f);
	if (err)
		*err = msg;
	else
		free(msg);
	return NULL;
}

train_st_file *train_st_open(const char *path, char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	size_t len = (size_t)st.st_size;
	void *map = NULL;
	if (len > 0) {
		map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			*err = xasprintf("%s: mmap: %s", path, strerror(errno));
			close(fd);
			return NULL;
		}
	}
	close(fd);
	train_st_file *f = train_st_parse(map ? map : (const uint8_t *)"", len, path, err);
	if (!f) {
		if (map)
			munmap(map, len);
		return NULL;
	}
	f->map = map;
	f->map_len = len;
	return f;
}

int train_st_count(const train_st_file *f)
{
	return f->n;
}

const train_st_tensor *train_st_get(const train_st_file *f, int i)
{
	return i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const train_st_tensor *train_st_find(const train_st_file *f, const char *name)
{
	for (int i = 0; i < f->n; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	return NULL;
}

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	int exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;
	float v;
	if (exp == 0)
		v = ldexpf((float)mant, -24);
	else if (exp == 31)
		v = mant ? NAN : INFINITY;
	else
		v = ldexpf((float)(mant | 0x400), exp - 25);
	uint32_t bits;
	memcpy(&bits, &v, 4);
	bits |= sign;
	memcpy(&v, &bits, 4);
	return v;
}

int train_st_read_f32(const train_st_file *f, const train_st_tensor *t, float *out, char **err)
{
	const uint8_t *p = f->data + t->begin;
	switch (t->dtype) {
	case TRAIN_ST_F32:
		memcpy(out, p, t->numel * 4);
		return 0;
	case TRAIN_ST_BF16:
		for (size_t i = 0; i < t->numel; i++) {
			uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
			memcpy(&out[i], &bits, 4);
		}
		return 0;
	case TRAIN_ST_F16:
		for (size_t i = 0; i < t->numel; i++)
			out[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
		return 0;
	default:
		*err = xasprintf("tensor \"%s\": unsupported dtype %s (expected F32, BF16 or F16)",
				 t->name, t->dtype_name);
		return -1;
	}
}

const uint8_t *train_st_data(const train_st_file *f, const train_st_tensor *t)
{
	return f->data + t->begin;
}

void train_st_release(const train_st_file *f, const train_st_tensor *t)
{
	if (!f->map)
		return;
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)(f->data + t->begin), hi = (uintptr_t)(f->data + t->end);
	lo = (lo + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg;
	hi = hi / (uintptr_t)pg * (uintptr_t)pg;
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int train_st_write(const char *path, const train_st_out *t, int n, char **err)
{
	util_buf h = UTIL_BUF_INIT;
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = -1, rc = -1;
	size_t off = 0;
	util_buf_adds(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
	for (int i = 0; i < n; i++) {
		size_t numel = 1;
		util_buf_addc(&h, ',');
		util_buf_add_json_string(&h, t[i].name, strlen(t[i].name));
		util_buf_adds(&h, ":{\"dtype\":\"F32\",\"shape\":[");
		for (int d = 0; d < t[i].ndim; d++) {
			util_buf_addf(&h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
			numel *= (size_t)t[i].shape[d];
		}
		util_buf_addf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + numel * 4);
		off += numel * 4;
	}
	util_buf_addc(&h, '}');
	while (h.len % 8)
		util_buf_addc(&h, ' ');
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto ioerr;
	uint8_t hl[8];
	for (int i = 0; i < 8; i++)
		hl[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
	if (util_write_all(fd, hl, 8) || util_write_all(fd, h.data, h.len))
		goto ioerr;
	for (int i = 0; i < n; i++) {
		if (t[i].transpose_src) {
			int64_t rows = t[i].shape[0], cols = t[i].shape[1];
			float *row = xmalloc(sizeof(float) * (size_t)cols);
			for (int64_t r = 0; r < rows; r++) {
				for (int64_t c = 0; c < cols; c++)
					row[c] = t[i].transpose_src[(size_t)c * rows + r];
				if (util_write_all(fd, row, sizeof(float) * (size_t)cols)) {
					free(row);
					goto ioerr;
				}
			}
			free(row);
		} else {
			size_t numel = 1;
			for (int d = 0; d < t[i].ndim; d++)
				numel *= (size_t)t[i].shape[d];
			if (util_write_all(fd, t[i].data, numel * 4))
				goto ioerr;
		}
	}
	if (fsync(fd) != 0)
		goto ioerr;
	if (close(fd) != 0) {
		fd = -1;
		goto ioerr;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto ioerr;
	rc = 0;
	goto out;
ioerr:
	*err = xasprintf("%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out:
	free(tmp);
	util_buf_free(&h);
	return rc;
}
