/* test_util.c: unit tests for util/ (buffer, sha256, line reader). */
#include "tests/tap.h"
#include "util/buf.h"
#include "util/file.h"
#include "util/lineread.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

/* The FIPS 180-4 / NIST example vectors, with the compression function
 * chosen by accel (0 portable, 1 SHA-NI). */
static void sha256_vectors(int accel)
{
	static const struct {
		const char *in;
		const char *hex;
	} cases[] = {
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
		 "mnopqrstnopqrstu",
		 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
	};
	const char *impl = accel ? "sha-ni" : "portable";
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char hex[65];
		util_sha256_hex(cases[i].in, strlen(cases[i].in), hex);
		TAP_IS_STR(hex, cases[i].hex, "sha256 (%s) vector %zu", impl, i);
	}
	/* a million 'a', fed in odd-sized pieces */
	util_sha256 c;
	util_sha256_init(&c);
	char a[997];
	memset(a, 'a', sizeof a);
	size_t left = 1000000;
	while (left) {
		size_t n = left < sizeof a ? left : sizeof a;
		util_sha256_update(&c, a, n);
		left -= n;
	}
	char hex[65];
	util_sha256_final_hex(&c, hex);
	TAP_IS_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
		   "sha256 (%s) of a million 'a'", impl);
}

static void test_sha256(void)
{
	sha256_vectors(0);
	if (!util_sha256_accel(1)) {
		TAP_SKIP(6, "this CPU has no SHA-NI: only the portable SHA-256 is used");
		util_sha256_accel(0);
		return;
	}
	sha256_vectors(1);
	/* both implementations agree on every length around the block and
	 * padding boundaries, for pseudo-random bytes fed in uneven pieces */
	unsigned char data[300];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof data; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	int same = 1;
	size_t bad = 0;
	for (size_t n = 0; n <= sizeof data && same; n++) {
		char hex[2][65];
		for (int impl = 0; impl < 2; impl++) {
			util_sha256_accel(impl);
			util_sha256 c;
			util_sha256_init(&c);
			size_t half = n / 3;
			util_sha256_update(&c, data, half);
			util_sha256_update(&c, data + half, n - half);
			util_sha256_final_hex(&c, hex[impl]);
		}
		if (strcmp(hex[0], hex[1])) {
			same = 0;
			bad = n;
		}
	}
	if (same)
		TAP_OK(1, "sha-ni and portable SHA-256 agree on every length from 0 to 300 bytes");
	else
		TAP_OK(0, "sha-ni and portable SHA-256 differ on %zu bytes", bad);
	util_sha256_accel(1);
}

static void test_buf(void)
{
	util_buf b = UTIL_BUF_INIT;
	TAP_IS_STR(util_buf_str(&b), "", "empty buffer reads as empty string");
	util_buf_adds(&b, "x=");
	util_buf_addf(&b, "%d", 42);
	util_buf_addc(&b, ' ');
	util_buf_add_json_string(&b, "a\"b\\\n\x01", 6);
	TAP_IS_STR(util_buf_str(&b), "x=42 \"a\\\"b\\\\\\n\\u0001\"", "append and JSON escaping");
	for (int i = 0; i < 10000; i++)
		util_buf_addc(&b, 'z');
	TAP_IS_INT(b.len, 21 + 10000, "buffer grows");
	char *s = util_buf_detach(&b);
	TAP_OK(b.data == NULL && b.len == 0, "detach empties the buffer");
	free(s);
	util_buf_free(&b);
}

static void write_file(const char *path, const char *data, size_t n, int gz)
{
	if (gz) {
		gzFile g = gzopen(path, "wb");
		gzwrite(g, data, (unsigned)n);
		gzclose(g);
	} else {
		FILE *f = fopen(path, "wb");
		fwrite(data, 1, n, f);
		fclose(f);
	}
}

static void test_lineread(void)
{
	char path[] = "/tmp/dpo-test-lineread-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	/* a 3 MB line between short ones, CRLF endings, no final newline */
	size_t big = 3u << 20;
	char *data = xmalloc(big + 64);
	size_t n = 0;
	n += (size_t)sprintf(data + n, "first\r\n");
	memset(data + n, 'x', big);
	n += big;
	n += (size_t)sprintf(data + n, "\n\nlast");
	for (int gz = 0; gz <= 1; gz++) {
		write_file(path, data, n, gz);
		util_lineread *r = util_lineread_open(path);
		TAP_OK(r != NULL, "open (%s)", gz ? "gzip" : "plain");
		const char *line;
		size_t len;
		TAP_IS_INT(util_lineread_next(r, &line, &len), 1, "line 1 read");
		TAP_IS_STR(line, "first", "CR stripped");
		TAP_IS_INT(util_lineread_next(r, &line, &len), 1, "line 2 read");
		TAP_IS_INT(len, big, "3 MB line intact");
		TAP_IS_INT(util_lineread_next(r, &line, &len), 1, "line 3 read");
		TAP_IS_INT(len, 0, "empty line");
		TAP_IS_INT(util_lineread_next(r, &line, &len), 1, "line 4 read");
		TAP_IS_STR(line, "last", "last line without newline");
		TAP_IS_INT(util_lineread_lineno(r), 4, "line numbers");
		TAP_IS_INT(util_lineread_next(r, &line, &len), 0, "end of file");
		util_lineread_close(r);
	}
	/* truncated gzip is an error, not a silent short read */
	write_file(path, data, n, 1);
	FILE *f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fclose(f);
	TAP_OK(truncate(path, sz / 2) == 0, "truncate gzip file");
	util_lineread *r = util_lineread_open(path);
	const char *line;
	size_t len;
	int rc;
	while ((rc = util_lineread_next(r, &line, &len)) == 1)
		;
	TAP_IS_INT(rc, -1, "truncated gzip reports an error");
	util_lineread_close(r);
	util_lineread_close(NULL);
	free(data);
	unlink(path);
}

static void test_file(void)
{
	char dir[] = "/tmp/dpo-test-file-XXXXXX";
	TAP_OK(mkdtemp(dir) != NULL, "make a scratch folder");
	char *path = xasprintf("%s/f.txt", dir);
	TAP_OK(util_read_file(path, NULL) == NULL, "reading a missing file fails");
	TAP_IS_INT(util_write_file_atomic(path, "hello\0world", 11), 0, "atomic write");
	size_t len = 0;
	char *d = util_read_file(path, &len);
	TAP_OK(d && len == 11 && !memcmp(d, "hello\0world", 11) && d[11] == '\0', "read back, NUL kept, terminated");
	free(d);
	TAP_IS_INT(util_write_file_atomic(path, "x", 1), 0, "atomic overwrite");
	d = util_read_file(path, &len);
	TAP_IS_STR(d, "x", "overwritten content");
	free(d);
	char *bad = xasprintf("%s/no/such/dir/f", dir);
	TAP_IS_INT(util_write_file_atomic(bad, "x", 1), -1, "write into a missing folder fails");
	free(bad);
	unlink(path);
	free(path);
	rmdir(dir);
}

int main(void)
{
	test_file();
	test_sha256();
	test_buf();
	test_lineread();
	return tap_done();
}
