/* test_util.c: unit tests for util/ (buffer, sha256, line reader, command
 * lines, die hooks). */
#include "tests/tap.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/cmdline.h"
#include "util/file.h"
#include "util/lineread.h"
#include "util/sha256.h"
#include "util/xmalloc.h"
#include <stdlib.h>
#include <sys/wait.h>
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

/* util_cmdline_quote of a NULL-terminated list of arguments. */
static void is_cmdline(const char *want, const char *name, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, name);
	const char *a;
	while (argc < 32 && (a = va_arg(ap, const char *)))
		argv[argc++] = (char *)a;
	va_end(ap);
	util_buf b = UTIL_BUF_INIT;
	util_cmdline_quote(argc, argv, &b);
	TAP_IS_STR(util_buf_str(&b), want, "command line: %s", name);
	util_buf_free(&b);
}

static void test_cmdline(void)
{
	util_buf b = UTIL_BUF_INIT;
	const char *q[][2] = {
		{"plain-word_1.5/x:y,z@%+=", "plain-word_1.5/x:y,z@%+="},
		{"", "''"},
		{"two words", "'two words'"},
		{"it's", "'it'\\''s'"},
		{"$HOME;`x`|&<>*?~#!", "'$HOME;`x`|&<>*?~#!'"},
		{"line\nbreak", "'line\nbreak'"},
		{"caf\xc3\xa9", "'caf\xc3\xa9'"},
	};
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		util_buf_reset(&b);
		util_shell_quote(q[i][0], &b);
		TAP_IS_STR(util_buf_str(&b), q[i][1], "shell quote %zu", i);
	}
	util_buf_free(&b);

	is_cmdline("dpo-train --lr 1e-5 --out 'my dir'", "argv[0] as its basename, quoting",
		   "/usr/local/bin/dpo-train", "--lr", "1e-5", "--out", "my dir", NULL);
	is_cmdline("dpo-judge --api-key '***' --model m", "--api-key X", "dpo-judge", "--api-key", "sk-123",
		   "--model", "m", NULL);
	is_cmdline("dpo-judge '--api-key=***'", "--api-key=X", "dpo-judge", "--api-key=sk-123", NULL);
	is_cmdline("p '--hf-token=***' --client-secret '***' --db-password '***' --apikey '***'",
		   "token, secret, password, apikey", "p", "--hf-token=abc", "--client-secret", "s", "--db-password",
		   "pw", "--apikey", "k", NULL);
	is_cmdline("p --api-key-env MY_KEY --key-file /k --max-tokens 5 --max-new-tokens 6 --tokenizer t",
		   "names of places and counts are kept", "p", "--api-key-env", "MY_KEY", "--key-file", "/k",
		   "--max-tokens", "5", "--max-new-tokens", "6", "--tokenizer", "t", NULL);
	is_cmdline("p --token --json", "a secret option followed by an option", "p", "--token", "--json", NULL);
	is_cmdline("p --base-url 'https://alice:***@example.com/v1'", "user:password@ in a URL", "p", "--base-url",
		   "https://alice:s3cr3t@example.com/v1", NULL);
	is_cmdline("p '--base-url=http://u:***@h:8080/x?y=1' http://h:8080/ https://bob@h/",
		   "URLs without a password are kept", "p", "--base-url=http://u:p@ss@h:8080/x?y=1",
		   "http://h:8080/", "https://bob@h/", NULL);
	is_cmdline("p --header 'Authorization: Bearer ***' -H 'x-api-key: ***' -H 'Content-Type: a/b'",
		   "Authorization and x-api-key headers", "p", "--header", "Authorization: Bearer sk-abc.def",
		   "-H", "x-api-key: sk-ant-123", "-H", "Content-Type: a/b", NULL);
	is_cmdline("p 'AUTHORIZATION:***' 'proxy-authorization: Basic ***'", "header names in any case", "p",
		   "AUTHORIZATION:sk", "proxy-authorization: Basic dXNlcjpwYXNz", NULL);
	is_cmdline("p --command 'curl -H \"Authorization: Bearer ***\" https://u:***@h/ --api-key ***'",
		   "secrets inside a command given as one argument", "p", "--command",
		   "curl -H \"Authorization: Bearer tok\" https://u:pw@h/ --api-key kkk", NULL);
	is_cmdline("p --task-command 'HF_TOKEN=*** verify --password=*** x'", "NAME=VALUE and --opt=VALUE in a text",
		   "p", "--task-command", "HF_TOKEN=abc verify --password=hunter2 x", NULL);
	is_cmdline("p '--task-command=OPENAI_API_KEY=*** prog'", "a secret in an option's =value", "p",
		   "--task-command=OPENAI_API_KEY=sk prog", NULL);
	is_cmdline("p --prompt 'the key is here' --split test", "ordinary text is kept", "p", "--prompt",
		   "the key is here", "--split", "test", NULL);
	is_cmdline("p -- --provider exec", "after --", "p", "--", "--provider", "exec", NULL);
	is_cmdline("p", "only the program", "p", NULL);
	is_cmdline("", "nothing", NULL);
}

static int hook_fd = -1;

static void hook(void *ctx)
{
	const char *s = ctx;
	if (write(hook_fd, s, strlen(s)) < 0)
		_exit(99);
}

static void test_die_hooks(void)
{
	int fd[2];
	if (pipe(fd)) {
		TAP_SKIP(3, "pipe failed");
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fd[0]);
		hook_fd = fd[1];
		util_on_die(hook, "1");
		util_on_die(hook, "2");
		util_on_die(hook, "3");
		util_on_die_remove(hook, "2");
		if (!freopen("/dev/null", "w", stderr))
			_exit(98);
		util_die("dying");
	}
	close(fd[1]);
	char got[16] = {0};
	size_t n = 0;
	ssize_t r;
	while (n < sizeof got - 1 && (r = read(fd[0], got + n, sizeof got - 1 - n)) > 0)
		n += (size_t)r;
	close(fd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	TAP_OK(WIFEXITED(status), "util_die exits");
	TAP_IS_INT(WEXITSTATUS(status), UTIL_EXIT_FAIL, "with status 1");
	TAP_IS_STR(got, "31", "the hooks ran, latest first, without the removed one");
	int full = 0;
	for (int i = 0; i < 9; i++)
		full += util_on_die(hook, "x") != 0;
	TAP_IS_INT(full, 1, "at most 8 hooks");
	for (int i = 0; i < 8; i++)
		util_on_die_remove(hook, "x");
	TAP_IS_INT(util_on_die(NULL, NULL), -1, "no NULL hook");
}

int main(void)
{
	test_file();
	test_cmdline();
	test_die_hooks();
	test_sha256();
	test_buf();
	test_lineread();
	return tap_done();
}
