/* test_safetensors.c: the safetensors header parser (corrupt headers are
 * errors, never crashes), dtype conversion, and the writer round trip. */
#include "config.h"
#include "tests/tap.h"
#include "train/safetensors.h"
#include "util/xmalloc.h"

#include <stdint.h>
#include <unistd.h>

/* An image: 8-byte length, header, then ndata bytes of data. hlen_override
 * (if not 0) replaces the header length field. */
static uint8_t *image(const char *header, size_t ndata, uint64_t hlen_override, size_t *len)
{
	size_t h = strlen(header);
	*len = 8 + h + ndata;
	uint8_t *b = xcalloc(1, *len);
	uint64_t hl = hlen_override ? hlen_override : h;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(hl >> (8 * i));
	memcpy(b + 8, header, h);
	return b;
}

static const struct {
	const char *name, *header;
	size_t ndata;
	uint64_t hlen;
	const char *want; /* substring of the error */
} bad[] = {
	{"header length beyond the file", "{}", 0, 1000, "exceeds the file size"},
	{"huge header length", "{}", 0, UINT64_MAX, "exceeds the file size"},
	{"not JSON", "{\"a\":", 0, 0, "not a JSON object"},
	{"JSON array", "[1,2]", 0, 0, "not a JSON object"},
	{"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "expected"},
	{"unknown dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0,
	 "unknown dtype"},
	{"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, 0,
	 "bad shape"},
	{"fractional dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
	 0, "bad shape"},
	{"offsets beyond data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
	 0, "beyond the data"},
	{"begin after end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, 0,
	 "bad data_offsets"},
	{"size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, 0,
	 "bytes for 2"},
	{"overlap",
	 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
	 12, 0, "overlap"},
	{"duplicate name",
	 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
	 8, 0, "twice"},
	{"nine dims",
	 "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, 0,
	 "dimensions"},
	{"offsets not numbers", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}",
	 4, 0, "bad data_offsets"},
	{"shape overflow",
	 "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776],"
	 "\"data_offsets\":[0,4]}}",
	 4, 0, "shape too large"},
};

static void test_bad_headers(void)
{
	char *err = NULL;
	uint8_t three[3] = {1, 2, 3};
	train_st_file *f = train_st_parse(three, 3, "short", &err);
	TAP_OK(!f && err && strstr(err, "too short"), "3-byte file: %s", err ? err : "(no error)");
	free(err);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len;
		uint8_t *img = image(bad[i].header, bad[i].ndata, bad[i].hlen, &len);
		err = NULL;
		f = train_st_parse(img, len, "x.safetensors", &err);
		int ok = !f && err && strstr(err, bad[i].want) && !strncmp(err, "x.safetensors: ", 15);
		if (!TAP_OK(ok, "corrupt header: %s", bad[i].name))
			tap_diag("error: %s", err ? err : "(none)");
		train_st_close(f);
		free(err);
		free(img);
	}
}

static void test_good(void)
{
	char *err = NULL;
	size_t len;
	/* BF16 1.0, -2.0; F16 1.0, 0.5, 2^-24, -inf; F32 3.25; an I64 */
	const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
			"\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
			"\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[4,12]},"
			"\"f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]},"
			"\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
			"\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[24,24]}}";
	uint8_t *img = image(h, 24, 0, &len);
	uint8_t *d = img + 8 + strlen(h);
	uint8_t raw[16] = {0x80, 0x3f, 0x00, 0xc0, 0x00, 0x3c, 0x00, 0x38, 0x01, 0x00, 0x00, 0xfc};
	float f325 = 3.25f;
	memcpy(d, raw, 12);
	memcpy(d + 12, &f325, 4);
	train_st_file *f = train_st_parse(img, len, "good", &err);
	if (!TAP_OK(f != NULL, "valid file parses")) {
		tap_diag("%s", err);
		free(err);
		free(img);
		return;
	}
	TAP_IS_INT(train_st_count(f), 5, "five tensors (metadata skipped)");
	float out[4];
	const train_st_tensor *t = train_st_find(f, "b");
	TAP_OK(t && train_st_read_f32(f, t, out, &err) == 0 && out[0] == 1.0f && out[1] == -2.0f,
	       "BF16 to f32");
	t = train_st_find(f, "h");
	TAP_OK(t && t->ndim == 2 && t->numel == 4 && train_st_read_f32(f, t, out, &err) == 0 &&
		       out[0] == 1.0f && out[1] == 0.5f && out[2] == ldexpf(1, -24) &&
		       isinf(out[3]) && out[3] < 0,
	       "F16 to f32 (normal, subnormal, -inf)");
	t = train_st_find(f, "f");
	TAP_OK(t && t->ndim == 0 && t->numel == 1 && train_st_read_f32(f, t, out, &err) == 0 &&
		       out[0] == 3.25f,
	       "F32 scalar");
	t = train_st_find(f, "i");
	err = NULL;
	TAP_OK(t && train_st_read_f32(f, t, out, &err) < 0 && err && strstr(err, "\"i\"") &&
		       strstr(err, "I64"),
	       "I64 is an unsupported dtype naming the tensor: %s", err ? err : "");
	free(err);
	TAP_OK(train_st_find(f, "nope") == NULL, "absent tensor not found");
	train_st_close(f);
	free(img);
}

static void test_write(void)
{
	char dir[] = "/tmp/dpo-st-XXXXXX";
	if (!mkdtemp(dir)) {
		TAP_OK(0, "mkdtemp");
		return;
	}
	char *path = xasprintf("%s/m.safetensors", dir);
	float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1, 0.5f, 7};
	train_st_out t[3] = {
		{"a", 2, {2, 3}, a, NULL},
		{"b", 1, {3, 0}, b, NULL},
		{"at", 2, {3, 2}, NULL, a}, /* the transpose of a [2,3] */
	};
	char *err = NULL;
	TAP_OK(train_st_write(path, t, 3, &err) == 0, "write");
	train_st_file *f = train_st_open(path, &err);
	if (TAP_OK(f, "read back")) {
		float o[6];
		const train_st_tensor *x = train_st_find(f, "a");
		TAP_OK(x && x->shape[0] == 2 && x->shape[1] == 3 && !train_st_read_f32(f, x, o, &err) &&
			       !memcmp(o, a, sizeof a),
		       "tensor a round-trips");
		x = train_st_find(f, "b");
		TAP_OK(x && x->ndim == 1 && !train_st_read_f32(f, x, o, &err) && !memcmp(o, b, sizeof b),
		       "tensor b round-trips");
		x = train_st_find(f, "at");
		float want[6] = {1, 4, 2, 5, 3, 6};
		TAP_OK(x && !train_st_read_f32(f, x, o, &err) && !memcmp(o, want, sizeof want),
		       "transposed tensor written as [3, 2]");
	} else {
		tap_diag("%s", err);
	}
	train_st_close(f);
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	TAP_OK(access(tmp, F_OK) != 0, "no temporary file left behind");
	err = NULL;
	f = train_st_open("/nonexistent/x.safetensors", &err);
	TAP_OK(!f && err && strstr(err, "/nonexistent/x.safetensors"), "missing file names the path");
	free(err);
	unlink(path);
	rmdir(dir);
	free(tmp);
	free(path);
}

int main(void)
{
	test_bad_headers();
	test_good();
	test_write();
	return tap_done();
}
