/* model_bf16.c: bf16 parameter storage for inference (see model_bf16.h). */
#include "config.h"
#include "train/model_bf16.h"
#include "train/precision.h"
#include "util/xmalloc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct train_bf16 {
	uint16_t *mat;          /* the 2-D parameters, in f32-layout order */
	float *vec;             /* the 1-D parameters, likewise */
	size_t nmat, nvec;      /* elements of each */
	const train_param *tab; /* the model's table (entries by index) */
	int n;
	size_t *coff;           /* [n] offset of each parameter in its arena */
	train_bf16w w;
};

/* Every float pointer of train_weights; the matrices also name their
 * train_bf16w field (SIZE_MAX for the 1-D ones). */
static const struct {
	size_t f32, bf16;
} bf16_fields[] = {
#define M(x) {offsetof(train_weights, x), offsetof(train_bf16w, x)}
#define V(x) {offsetof(train_weights, x), (size_t)-1}
	M(wte), M(wpe), V(ln1w), V(ln1b), M(wqkv), V(bqkv), V(qnorm), V(knorm), M(wo), V(bo),
	V(ln2w), V(ln2b), M(wfc), V(bfc), M(wproj), V(bproj), V(lnfw), V(lnfb), M(lm_head),
#undef M
#undef V
};

static const train_param *sort_tab;

static int by_offset(const void *a, const void *b)
{
	size_t x = sort_tab[*(const int *)a].offset, y = sort_tab[*(const int *)b].offset;
	return x < y ? -1 : x > y;
}

train_bf16 *train_bf16_new(const train_config *c, const float *probe, const train_param *tab,
			   int n, train_weights *w)
{
	train_bf16 *b = xcalloc(1, sizeof *b);
	int *ord = xmalloc(sizeof(int) * (n ? n : 1));
	b->tab = tab;
	b->n = n;
	b->coff = xmalloc(sizeof(size_t) * (n ? n : 1));
	for (int i = 0; i < n; i++)
		ord[i] = i;
	sort_tab = tab; /* (loading is single-threaded) */
	qsort(ord, (size_t)n, sizeof *ord, by_offset);
	for (int k = 0; k < n; k++) {
		const train_param *p = &tab[ord[k]];
		size_t *cnt = p->ndim == 2 ? &b->nmat : &b->nvec;
		b->coff[ord[k]] = *cnt;
		*cnt += p->numel;
	}
	/* streamed whole at every decode step: in huge pages */
	b->mat = xcalloc_huge(b->nmat ? b->nmat : 1, sizeof(uint16_t));
	b->vec = xcalloc(b->nvec ? b->nvec : 1, sizeof(float));
	/* each train_weights field starts at some parameter's offset */
	train_weights fw;
	train_weights_layout(c, (float *)probe, &fw);
	memset(w, 0, sizeof *w);
	for (size_t f = 0; f < sizeof bf16_fields / sizeof bf16_fields[0]; f++) {
		const float *fp = *(float *const *)((const char *)&fw + bf16_fields[f].f32);
		if (!fp)
			continue;
		size_t off = (size_t)(fp - probe);
		int lo = 0, hi = n - 1;
		while (lo < hi) {
			int mid = (lo + hi) / 2;
			if (tab[ord[mid]].offset < off)
				lo = mid + 1;
			else
				hi = mid;
		}
		int i = ord[lo];
		if (tab[i].ndim == 2 && bf16_fields[f].bf16 != (size_t)-1)
			*(uint16_t **)((char *)&b->w + bf16_fields[f].bf16) = b->mat + b->coff[i];
		else if (tab[i].ndim != 2)
			*(float **)((char *)w + bf16_fields[f].f32) = b->vec + b->coff[i];
	}
	free(ord);
	return b;
}

void train_bf16_free(train_bf16 *b)
{
	if (!b)
		return;
	free(b->mat);
	free(b->vec);
	free(b->coff);
	free(b);
}

const train_bf16w *train_bf16_weights(const train_bf16 *b)
{
	return &b->w;
}

size_t train_bf16_bytes(const train_bf16 *b)
{
	return b->nmat * sizeof(uint16_t) + b->nvec * sizeof(float);
}

void *train_bf16_arena(train_bf16 *b, int i, size_t *bytes)
{
	*bytes = i == 0 ? b->nmat * sizeof(uint16_t) : i == 1 ? b->nvec * sizeof(float) : 0;
	return i == 0 ? (void *)b->mat : i == 1 ? (void *)b->vec : NULL;
}

void train_bf16_set(train_bf16 *b, const train_param *p, const float *src)
{
	size_t off = b->coff[p - b->tab];
	if (p->ndim == 2)
		train_f32_to_bf16_n(b->mat + off, src, p->numel);
	else
		memcpy(b->vec + off, src, sizeof(float) * p->numel);
}

void train_bf16_get(const train_bf16 *b, const train_param *p, float *dst)
{
	size_t off = b->coff[p - b->tab];
	if (p->ndim == 2)
		train_bf16_to_f32_n(dst, b->mat + off, p->numel);
	else
		memcpy(dst, b->vec + off, sizeof(float) * p->numel);
}

/* Element i of a little-endian F32 or BF16 tensor at p, as float32. */
static inline float st_elem(const uint8_t *p, train_st_dtype dt, size_t i)
{
	uint32_t u;
	if (dt == TRAIN_ST_BF16) {
		u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
	} else {
		const uint8_t *q = p + 4 * i;
		u = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
	}
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* F32 or BF16 tensor t straight from the file into p's storage (no float32
 * copy of the tensor): matrices rounded to bf16 (BF16 values round to
 * themselves), GPT-2 Conv1D ones transposed on the way. */
static void load_direct(train_bf16 *b, const train_st_file *f, const train_st_tensor *t,
			const train_param *p)
{
	const uint8_t *src = train_st_data(f, t);
	size_t off = b->coff[p - b->tab];
	if (p->ndim != 2) {
		for (size_t i = 0; i < p->numel; i++)
			b->vec[off + i] = st_elem(src, t->dtype, i);
		return;
	}
	uint16_t *dst = b->mat + off;
	if (!p->transposed) {
		for (size_t i = 0; i < p->numel; i++)
			dst[i] = train_f32_to_bf16(st_elem(src, t->dtype, i));
		return;
	}
	size_t rows = (size_t)p->shape[0], cols = (size_t)p->shape[1];
	for (size_t r = 0; r < rows; r++)
		for (size_t k = 0; k < cols; k++)
			dst[k * rows + r] = train_f32_to_bf16(st_elem(src, t->dtype, r * cols + k));
}

int train_bf16_load(train_bf16 *b, const train_st_file *f, const train_st_tensor *t,
		    const train_param *p, char **err)
{
	if (t->dtype == TRAIN_ST_F32 || t->dtype == TRAIN_ST_BF16) {
		load_direct(b, f, t, p);
		/* read once: the file's pages need not stay resident next to
		 * the bf16 copy */
		train_st_release(f, t);
		return 0;
	}
	/* other dtypes through float32, one tensor at a time */
	float *tmp = xmalloc(sizeof(float) * (p->numel ? p->numel : 1));
	if (train_st_read_f32(f, t, tmp, err)) {
		free(tmp);
		return TRAIN_EUNSUP;
	}
	if (p->transposed) {
		float *tr = xmalloc(sizeof(float) * p->numel);
		size_t rows = (size_t)p->shape[0], cols = (size_t)p->shape[1];
		for (size_t r = 0; r < rows; r++)
			for (size_t k = 0; k < cols; k++)
				tr[k * rows + r] = tmp[r * cols + k];
		free(tmp);
		tmp = tr;
	}
	train_bf16_set(b, p, tmp);
	free(tmp);
	train_st_release(f, t);
	return 0;
}
