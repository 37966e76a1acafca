/* standalone.c: a main() for fuzz targets in ordinary builds. It feeds every
 * file in the folder FUZZ_SEEDS (or the files named on the command line) to
 * LLVMFuzzerTestOneInput once and prints one TAP case per file, so the seed
 * corpus is replayed by `make check`, under ASan+UBSan in CI. A crash or a
 * sanitizer report fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("not ok %d - %s: cannot open\n", ++n, path);
		return;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	size_t r;
	while ((r = fread(buf + len, 1, cap - len, f)) > 0) {
		len += r;
		if (len == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	/* copy into an exact-size block so ASan sees reads past the end */
	uint8_t *exact = malloc(len ? len : 1);
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	printf("ok %d - %s\n", ++n, path);
	fflush(stdout);
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			run_file(argv[i]);
	} else {
#ifdef FUZZ_SEEDS
		DIR *d = opendir(FUZZ_SEEDS);
		if (!d) {
			printf("1..0 # SKIP no seed folder %s\n", FUZZ_SEEDS);
			return 0;
		}
		char **names = NULL;
		size_t nn = 0;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			names = realloc(names, (nn + 1) * sizeof *names);
			size_t l = strlen(FUZZ_SEEDS) + strlen(e->d_name) + 2;
			names[nn] = malloc(l);
			snprintf(names[nn++], l, "%s/%s", FUZZ_SEEDS, e->d_name);
		}
		closedir(d);
		qsort(names, nn, sizeof *names, cmp);
		for (size_t i = 0; i < nn; i++) {
			run_file(names[i]);
			free(names[i]);
		}
		free(names);
#endif
	}
	printf("1..%d\n", n);
	return 0;
}
