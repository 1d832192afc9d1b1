/*
 * replay_main.c — run a libFuzzer target over saved inputs without libFuzzer.
 *
 *   fuzz_x DIR|FILE...
 *
 * Each argument is a file, or a directory whose regular files are read in
 * name order; every file is passed once to LLVMFuzzerTestOneInput.  Built
 * with gcc and the sanitizers by `make fuzz-replay`, so the seed corpora and
 * every crash reproducer kept in tests/fuzz/corpus/ run on each `make test`.
 * Prints "replayed N inputs from DIR" per argument; exits 1 if an argument
 * cannot be read or a directory holds no inputs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs larger than this are refused rather than replayed. */
#define REPLAY_MAX (16u << 20)

static int run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		perror(path);
		return -1;
	}
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (!buf) {
			fprintf(stderr, "%s: out of memory\n", path);
			fclose(fp);
			return -1;
		}
		n += fread(buf + n, 1, cap - n, fp);
		if (n < cap || cap >= REPLAY_MAX)
			break;
		cap *= 2;
		uint8_t *p = realloc(buf, cap);
		if (!p)
			free(buf);
		buf = p;
	}
	int bad = ferror(fp) || (n == cap && fgetc(fp) != EOF);
	fclose(fp);
	if (bad) {
		fprintf(stderr, "%s: read error or larger than %u bytes\n", path, REPLAY_MAX);
		free(buf);
		return -1;
	}
	/* An exact-size heap copy, so the sanitizers catch reads past the end. */
	uint8_t *exact = malloc(n ? n : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	if (n)
		memcpy(exact, buf, n);
	free(buf);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 0;
}

static int regular_file(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		struct stat st;
		if (stat(argv[a], &st) != 0) {
			perror(argv[a]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[a]) != 0)
				return 1;
			printf("replayed 1 inputs from %s\n", argv[a]);
			continue;
		}
		struct dirent **names;
		int n = scandir(argv[a], &names, regular_file, alphasort);
		if (n < 0) {
			perror(argv[a]);
			return 1;
		}
		size_t replayed = 0;
		int rc = 0;
		for (int i = 0; i < n; i++) {
			char path[4096];
			int len = snprintf(path, sizeof path, "%s/%s", argv[a], names[i]->d_name);
			if (len > 0 && (size_t)len < sizeof path && stat(path, &st) == 0 &&
			    S_ISREG(st.st_mode)) {
				if (run_file(path) != 0)
					rc = 1;
				else
					replayed++;
			}
			free(names[i]);
		}
		free(names);
		if (rc)
			return rc;
		if (replayed == 0) {
			fprintf(stderr, "%s: no inputs\n", argv[a]);
			return 1;
		}
		printf("replayed %zu inputs from %s\n", replayed, argv[a]);
	}
	return 0;
}
