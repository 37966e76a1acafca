/* test_util.c: unit tests for util/ (buffer, sha256, line reader, files, UTF-8,
 * splitmix64, command lines, die hooks, huge-page allocation). */
#include "tests/tap.h"
#include "util/buf.h"
#include "util/cli.h"
#include "util/cmdline.h"
#include "util/file.h"
#include "util/lineread.h"
#include "util/rand.h"
#include "util/sha256.h"
#include "util/utf8.h"
#include "util/xmalloc.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* util_lineread_peek looks past white space (and a byte order mark)
 * without consuming it; util_lineread_chunk then hands over every byte. */
static void test_lineread_peek(void)
{
	static const struct {
		const char *data;
		int want;
	} cases[] = {
		{"[1]", '['},
		{" \t\r\n {\"a\":1}\n", '{'},
		{"\xEF\xBB\xBF  [1]", '['},
		{"\xEF\xBB", 0xEF},
		{"   \n", -1},
		{"", -1},
	};
	char path[] = "/tmp/dpo-test-peek-XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		for (int gz = 0; gz <= 1; gz++) {
			size_t n = strlen(cases[i].data);
			write_file(path, cases[i].data, n, gz);
			util_lineread *r = util_lineread_open(path);
			TAP_IS_INT(util_lineread_peek(r), cases[i].want, "peek case %zu (%s)", i, gz ? "gzip" : "plain");
			size_t total = 0, len;
			const char *chunk;
			while (util_lineread_chunk(r, &chunk, &len) == 1)
				total += len;
			TAP_IS_INT(total, n, "peek case %zu: every byte still there", i);
			util_lineread_close(r);
		}
	/* more white space than one read holds */
	size_t big = 600 * 1024;
	char *data = xmalloc(big + 2);
	memset(data, ' ', big);
	data[big] = '[';
	data[big + 1] = ']';
	write_file(path, data, big + 2, 0);
	util_lineread *r = util_lineread_open(path);
	TAP_IS_INT(util_lineread_peek(r), '[', "peek past 600 KB of spaces");
	size_t total = 0, len;
	const char *chunk;
	while (util_lineread_chunk(r, &chunk, &len) == 1)
		total += len;
	TAP_IS_INT(total, big + 2, "and every byte read after it");
	TAP_IS_INT(util_lineread_offset(r), big + 2, "offset counts the chunks");
	util_lineread_close(r);
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
	/* the folder that holds a path */
	static const struct { const char *path, *dir; } pd[] = {
		{"a/b/c", "a/b"}, {"a/b/", "a"}, {"out", "."}, {"out//", "."},
		{"/x", "/"}, {"/x/", "/"}, {"/", "/"},
	};
	for (size_t i = 0; i < sizeof pd / sizeof *pd; i++) {
		char *p = util_parent_dir(pd[i].path);
		TAP_IS_STR(p, pd[i].dir, "util_parent_dir(\"%s\")", pd[i].path);
		free(p);
	}
}

/* util_same_file / util_check_output: an output must not name the database
 * (or its -wal/-shm) or an input, by inode for existing files and by the
 * resolved folder + name for files not yet created. */
static void test_check_output(void)
{
	char dir[] = "/tmp/dpo-test-out-XXXXXX";
	TAP_OK(mkdtemp(dir) != NULL, "make a scratch folder");
	char *db = xasprintf("%s/t.db", dir), *in = xasprintf("%s/x.jsonl", dir);
	char *in2 = xasprintf("%s/./sub/../x.jsonl", dir), *lnk = xasprintf("%s/link.jsonl", dir);
	char *sub = xasprintf("%s/sub", dir), *wal = xasprintf("%s/sub/../t.db-wal", dir);
	char *newf = xasprintf("%s/new.jsonl", dir), *newf2 = xasprintf("%s/sub/../new.jsonl", dir);
	char err[256];
	TAP_IS_INT(mkdir(sub, 0755), 0, "make a sub-folder");
	TAP_IS_INT(util_write_file_atomic(db, "db", 2), 0, "a database file");
	TAP_IS_INT(util_write_file_atomic(in, "in", 2), 0, "an input file");
	TAP_IS_INT(symlink(in, lnk), 0, "a link to the input");
	TAP_OK(util_same_file(in, in2), "same existing file, other spelling");
	TAP_OK(util_same_file(in, lnk), "same existing file through a link");
	TAP_OK(!util_same_file(in, db), "different existing files");
	TAP_OK(util_same_file(newf, newf2), "a file not yet created, two spellings");
	TAP_OK(!util_same_file(newf, in), "a new file is not an existing one");
	const char *inputs[] = {NULL, "-", in};
	TAP_IS_INT(util_check_output(newf, db, inputs, 3, err, sizeof err), 0, "a new output passes");
	TAP_IS_INT(util_check_output("-", db, inputs, 3, err, sizeof err), 0, "standard output passes");
	TAP_IS_INT(util_check_output(db, db, inputs, 3, err, sizeof err), -1, "the database is refused");
	TAP_IS_STR(err, "refusing to write the output over the database", "the database: message");
	TAP_IS_INT(util_check_output(wal, db, NULL, 0, err, sizeof err), -1, "the -wal (not yet there) is refused");
	TAP_IS_STR(err, "refusing to write the output over the database (its -wal file)", "the -wal: message");
	TAP_IS_INT(util_check_output(lnk, db, inputs, 3, err, sizeof err), -1, "an input (by a link) is refused");
	char *want = xasprintf("refusing to write the output over the input file %s", in);
	TAP_IS_STR(err, want, "the input: message");
	TAP_IS_INT(util_check_output(in, NULL, NULL, 0, err, sizeof err), 0, "no database, no inputs: passes");
	free(want);
	unlink(lnk);
	unlink(in);
	unlink(db);
	rmdir(sub);
	rmdir(dir);
	free(db), free(in), free(in2), free(lnk), free(sub), free(wal), free(newf), free(newf2);
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

/* Write n bytes of data to path (plain, not atomic); nonzero on success. */
static int put_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(data, 1, n, f) == n;
	return f && !fclose(f) && ok;
}

/* Nonzero when path holds exactly the n bytes at want. */
static int file_is(const char *path, const char *want, size_t n)
{
	size_t len;
	char *d = util_read_file(path, &len);
	int ok = d && len == n && !memcmp(d, want, n);
	free(d);
	return ok;
}

/* Number of entries in dir besides . and .. (no stray temporary files). */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

static void test_copy_file(void)
{
	char dir[] = "/tmp/dpo-test-copy-XXXXXX";
	TAP_OK(mkdtemp(dir) != NULL, "copy: make a scratch folder");
	char *src = xasprintf("%s/src", dir), *dst = xasprintf("%s/dst", dir);
	/* larger than the copy buffer, with NUL bytes */
	size_t n = 200000;
	char *data = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7 % 251);
	TAP_OK(put_file(src, data, n), "copy: write the source");
	TAP_IS_INT(util_copy_file(src, dst), 0, "copy to a new file");
	TAP_OK(file_is(dst, data, n), "copy: content is the source's");
	TAP_OK(put_file(dst, "old", 3), "copy: an existing destination");
	TAP_IS_INT(util_copy_file(src, dst), 0, "copy over an existing file");
	TAP_OK(file_is(dst, data, n), "copy: existing file replaced");
	TAP_IS_INT(util_copy_file(dst, dst), 0, "copy a file onto itself");
	TAP_OK(file_is(dst, data, n), "copy onto itself keeps the content");

	/* failures leave the destination as it was */
	TAP_OK(put_file(dst, "old", 3), "copy: reset the destination");
	char *missing = xasprintf("%s/missing", dir);
	errno = 0;
	TAP_IS_INT(util_copy_file(missing, dst), -1, "copy from a missing file fails");
	TAP_IS_INT(errno, ENOENT, "copy from a missing file: ENOENT");
	TAP_OK(file_is(dst, "old", 3), "copy from a missing file keeps the old destination");
	errno = 0;
	TAP_IS_INT(util_copy_file(dir, dst), -1, "copy from a folder (read error) fails");
	TAP_IS_INT(errno, EISDIR, "copy from a folder: EISDIR");
	TAP_OK(file_is(dst, "old", 3), "a failed read keeps the old destination");
	char *bad = xasprintf("%s/no/such/dir/f", dir);
	TAP_IS_INT(util_copy_file(src, bad), -1, "copy into a missing folder fails");
	TAP_IS_INT(count_entries(dir), 2, "copy: no temporary file is left behind");

	/* util_write_all on a pipe, in pieces larger than its buffer */
	int fds[2];
	TAP_OK(pipe(fds) == 0, "write_all: a pipe");
	int fl = fcntl(fds[1], F_GETFL);
	TAP_OK(fl >= 0 && fcntl(fds[1], F_SETFL, fl | O_NONBLOCK) == 0, "write_all: non-blocking");
	errno = 0;
	TAP_IS_INT(util_write_all(fds[1], data, n), -1, "write_all fails on a full pipe");
	TAP_IS_INT(errno, EAGAIN, "write_all: the write's errno (EAGAIN)");
	close(fds[0]);
	close(fds[1]);
	int fd = open(src, O_WRONLY | O_TRUNC);
	TAP_IS_INT(util_write_all(fd, "abc", 3), 0, "write_all to a file");
	TAP_IS_INT(util_write_all(fd, "", 0), 0, "write_all of nothing");
	close(fd);
	TAP_OK(file_is(src, "abc", 3), "write_all: content");

	unlink(src);
	unlink(dst);
	rmdir(dir);
	free(bad);
	free(missing);
	free(data);
	free(src);
	free(dst);
}

/* UTF-8 decoding: each case is a byte string, the expected return value of
 * util_utf8_decode at its start (length, or minus the maximal subpart's
 * length) and the code point when valid. */
static void test_utf8(void)
{
	static const struct {
		const char *s;
		size_t n;
		int ret;
		uint32_t cp;
		const char *what;
	} c[] = {
		{"", 0, 0, 0, "empty"},
		{"A", 1, 1, 'A', "ASCII"},
		{"\0", 1, 1, 0, "NUL"},
		{"\x7f", 1, 1, 0x7f, "last 1-byte"},
		{"\xc2\x80", 2, 2, 0x80, "first 2-byte"},
		{"\xc3\xa9x", 3, 2, 0xe9, "2-byte, more follows"},
		{"\xdf\xbf", 2, 2, 0x7ff, "last 2-byte"},
		{"\xe0\xa0\x80", 3, 3, 0x800, "first 3-byte"},
		{"\xe2\x82\xac", 3, 3, 0x20ac, "euro sign"},
		{"\xed\x9f\xbf", 3, 3, 0xd7ff, "just below the surrogates"},
		{"\xee\x80\x80", 3, 3, 0xe000, "just above the surrogates"},
		{"\xef\xbf\xbf", 3, 3, 0xffff, "last 3-byte"},
		{"\xf0\x90\x80\x80", 4, 4, 0x10000, "first 4-byte"},
		{"\xf0\x9f\x98\x80", 4, 4, 0x1f600, "emoji"},
		{"\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff, "U+10FFFF"},
		{"\x80", 1, -1, 0, "lone continuation byte"},
		{"\xbf\x80", 2, -1, 0, "continuation bytes"},
		{"\xc0\x80", 2, -1, 0, "overlong NUL (C0)"},
		{"\xc1\xbf", 2, -1, 0, "overlong (C1)"},
		{"\xe0\x80\x80", 3, -1, 0, "overlong 3-byte"},
		{"\xe0\x9f\xbf", 3, -1, 0, "overlong 3-byte, top"},
		{"\xf0\x80\x80\x80", 4, -1, 0, "overlong 4-byte"},
		{"\xf0\x8f\xbf\xbf", 4, -1, 0, "overlong 4-byte, top"},
		{"\xed\xa0\x80", 3, -1, 0, "high surrogate D800"},
		{"\xed\xbf\xbf", 3, -1, 0, "low surrogate DFFF"},
		{"\xf4\x90\x80\x80", 4, -1, 0, "past U+10FFFF"},
		{"\xf5\x80\x80\x80", 4, -1, 0, "lead F5"},
		{"\xff", 1, -1, 0, "byte FF"},
		{"\xc3", 1, -1, 0, "truncated 2-byte"},
		{"\xe2\x82", 2, -2, 0, "truncated 3-byte"},
		{"\xe2", 1, -1, 0, "truncated 3-byte, lead only"},
		{"\xf0\x9f\x98", 3, -3, 0, "truncated 4-byte"},
		{"\xe2\x82\xac", 2, -2, 0, "3-byte cut short by n"},
		{"\xc3(", 2, -1, 0, "bad second byte"},
		{"\xe2\x82(", 3, -2, 0, "bad third byte"},
		{"\xf0\x9f\x98(", 4, -3, 0, "bad fourth byte"},
		{"\xe2\x28\xac", 3, -1, 0, "bad second byte of three"},
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		uint32_t cp = 0xdeadbeef;
		int r = util_utf8_decode(c[i].s, c[i].n, &cp);
		TAP_IS_INT(r, c[i].ret, "utf8 decode: %s", c[i].what);
		if (c[i].ret > 0)
			TAP_IS_INT(cp, c[i].cp, "utf8 decode: %s: code point", c[i].what);
		else
			TAP_IS_INT(cp, 0xdeadbeef, "utf8 decode: %s: code point untouched", c[i].what);
		/* the validator agrees, and puts the error at the start */
		size_t at = 99;
		int ok = util_utf8_valid(c[i].s, c[i].n, &at);
		if (c[i].ret >= 0 && (size_t)c[i].ret == c[i].n)
			TAP_OK(ok, "utf8 valid: %s", c[i].what);
		else if (c[i].ret < 0)
			TAP_OK(!ok && at == 0, "utf8 invalid at 0: %s", c[i].what);
	}
	/* the ASCII fast path hands over to the decoder at the right byte */
	size_t at = 0;
	TAP_OK(!util_utf8_valid("0123456789abcdef\xc3\xa9ghij\xed\xa0\x80", 25, &at) && at == 22,
	       "utf8 valid: offset past the fast path");
	TAP_OK(util_utf8_valid("0123456789abcdef\xc3\xa9ghij\xf0\x9f\x98\x80", 26, NULL),
	       "utf8 valid: mixed text");
	/* encoding: the boundaries round-trip through the decoder */
	static const uint32_t cps[] = {0, 0x7f, 0x80, 0x7ff, 0x800,
				       0xd7ff, 0xe000, 0xffff, 0x10000, 0x10ffff};
	static const size_t lens[] = {1, 1, 2, 2, 3, 3, 3, 3, 4, 4};
	for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
		char o[4];
		uint32_t back = 0;
		size_t n = util_utf8_encode(cps[i], o);
		TAP_OK(n == lens[i] && util_utf8_decode(o, n, &back) == (int)n && back == cps[i],
		       "utf8 encode U+%04X round-trips in %zu bytes", (unsigned)cps[i], lens[i]);
	}
	char o[4];
	TAP_OK(util_utf8_encode(0x20ac, o) == 3 && !memcmp(o, "\xe2\x82\xac", 3),
	       "utf8 encode: euro sign");
}

/* splitmix64's published outputs: seed 0 (Vigna's splitmix64.c) and seed
 * 1234567 (the reference values of rand_xoshiro's SplitMix64). */
static void test_splitmix64(void)
{
	static const uint64_t seed0[] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull,
					 0x06c45d188009454full, 0xf88bb8a8724c81ecull,
					 0x1b39896a51a8749bull};
	static const uint64_t seed1234567[] = {6457827717110365317ull, 3203168211198807973ull,
					       9817491932198370423ull, 4593380528125082431ull,
					       16408922859458223821ull};
	uint64_t s = 0, t = 1234567;
	int ok0 = 1, ok1 = 1;
	for (int i = 0; i < 5; i++) {
		ok0 &= util_splitmix64(&s) == seed0[i];
		ok1 &= util_splitmix64(&t) == seed1234567[i];
	}
	TAP_OK(ok0, "splitmix64 from seed 0");
	TAP_OK(ok1, "splitmix64 from seed 1234567");
	TAP_OK(s == 5 * 0x9e3779b97f4a7c15ull, "splitmix64 state advances by the golden ratio");
	TAP_OK(util_mix64(0) == seed0[0] && util_mix64(0x9e3779b97f4a7c15ull) == seed0[1],
	       "mix64 is splitmix64 of the state, which it leaves alone");
}

/* util_term_escape: controls as \xNN, printable UTF-8 kept. */
static void test_term_escape(void)
{
	static const struct {
		const char *in, *out, *what;
	} c[] = {
		{"alice", "alice", "plain ASCII kept"},
		{"", "", "empty"},
		{"evil\x1b[2J", "evil\\x1b[2J", "ESC as \\x1b"},
		{"a\tb\nc\rd", "a\\x09b\\x0ac\\x0dd", "tab, newline, CR"},
		{"\x01\x1f\x7f", "\\x01\\x1f\\x7f", "C0 and DEL"},
		{"x\xc2\x9b" "31m", "x\\x9b31m", "C1 CSI (U+009B) as \\x9b"},
		{"\xc2\x85", "\\x85", "C1 NEL"},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		 "well-formed UTF-8 kept"},
		{"\xc2\xa0", "\xc2\xa0", "U+00A0 (past C1) kept"},
		{"a\x9b" "b", "a\\x9bb", "a lone C1 byte (ill-formed) as \\x9b"},
		{"\xff\xc3", "\\xff\\xc3", "ill-formed bytes, and one cut short"},
		{"\xe2\x82", "\\xe2\\x82", "a cut-short sequence byte by byte"},
		{"back\\slash", "back\\slash", "backslash kept"},
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		util_buf b = UTIL_BUF_INIT;
		const char *r = util_term_escape(c[i].in, &b);
		TAP_IS_STR(r, c[i].out, "term escape: %s", c[i].what);
		util_buf_free(&b);
	}
	util_buf b = UTIL_BUF_INIT;
	util_buf_adds(&b, "[");
	util_term_escape("\x1b", &b);
	TAP_IS_STR(util_buf_str(&b), "[\\x1b", "term escape appends");
	util_buf_reset(&b);
	TAP_IS_STR(util_term_escape(NULL, &b), "(null)", "term escape: NULL");
	util_buf_free(&b);
}

/* The kB of transparent huge pages in the mapping that holds p, from
 * /proc/self/smaps; -1 when that cannot be read. */
static long huge_kb_at(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in = 0;
	long kb = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static void test_calloc_huge(void)
{
	size_t big = (size_t)5 << 20; /* 2.5 huge pages */
	unsigned char *p = xcalloc_huge(big / 4, 4);
	TAP_OK((uintptr_t)p % ((size_t)2 << 20) == 0, "xcalloc_huge: 5 MiB aligned to 2 MiB");
	size_t nz = 0;
	for (size_t i = 0; i < big; i++)
		nz += p[i] != 0;
	TAP_IS_INT(nz, 0, "xcalloc_huge: 5 MiB all zero");
	memset(p, 7, big);
	/* the advice took where the system has huge pages for the asking */
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (f) {
		if (!fgets(mode, sizeof mode, f))
			mode[0] = 0;
		fclose(f);
	}
	long kb = huge_kb_at(p);
	if (!strstr(mode, "[always]") && !strstr(mode, "[madvise]"))
		TAP_SKIP(1, "transparent huge pages are off here");
	else if (kb < 0)
		TAP_SKIP(1, "no /proc/self/smaps to read");
	else
		TAP_OK(kb >= 2048, "xcalloc_huge: in huge pages (%ld kB of them; THP %.*s)", kb,
		       (int)strcspn(mode, "\n"), mode);
	free(p);
	int *q = xcalloc_huge(10, sizeof(int));
	int sum = 0;
	for (int i = 0; i < 10; i++)
		sum += q[i];
	TAP_IS_INT(sum, 0, "xcalloc_huge: a small array, zeroed");
	free(q);
}

int main(void)
{
	test_calloc_huge();
	test_term_escape();
	test_file();
	test_check_output();
	test_cmdline();
	test_die_hooks();
	test_copy_file();
	test_utf8();
	test_splitmix64();
	test_sha256();
	test_buf();
	test_lineread();
	test_lineread_peek();
	return tap_done();
}
