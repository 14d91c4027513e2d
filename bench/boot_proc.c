/* bench_boot: clocks, console line assembly and /proc readers (see boot_bench.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "boot_bench.h"

double boot_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void boot_copy_line(char *dst, const char *src)
{
	size_t i = 0;
	for (; src[i] && i < BOOT_LINE_MAX - 1; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
	dst[i] = '\0';
}

void boot_lines_feed(struct boot_lines *l, const char *data, size_t n,
		     void (*line_fn)(void *ctx, const char *line), void *ctx)
{
	l->bytes += n;
	for (size_t i = 0; i < n; i++) {
		char c = data[i];
		if (c == '\n') {
			l->buf[l->len] = '\0';
			if (l->len)
				memcpy(l->last, l->buf, l->len + 1);
			line_fn(ctx, l->buf);
			l->len = 0;
		} else if (c != '\r' && l->len < sizeof l->buf - 1) {
			/* A longer line is cut: the markers are near the start of theirs. */
			l->buf[l->len++] = c;
		}
	}
}

static FILE *open_proc(pid_t pid, const char *what)
{
	char path[64];
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
	else
		snprintf(path, sizeof path, "/proc/self/%s", what);
	return fopen(path, "re");
}

int boot_proc_mem(pid_t pid, uint64_t *rss, uint64_t *anon, uint64_t *file, uint64_t *shmem)
{
	FILE *f = open_proc(pid, "status");
	if (!f)
		return -1;
	char line[256];
	unsigned found = 0;
	*rss = *anon = *file = *shmem = 0;
	while (fgets(line, sizeof line, f)) {
		static const char *const keys[] = { "VmRSS:", "RssAnon:", "RssFile:", "RssShmem:" };
		uint64_t *dst[] = { rss, anon, file, shmem };
		for (unsigned k = 0; k < 4; k++) {
			size_t kl = strlen(keys[k]);
			if (strncmp(line, keys[k], kl) == 0 && sscanf(line + kl, "%" SCNu64, dst[k]) == 1)
				found |= 1u << k;
		}
	}
	fclose(f);
	return found == 0xf ? 0 : -1;
}

int boot_proc_mapping_rss(pid_t pid, uint64_t min_kb, uint64_t max_kb, uint64_t *rss_kb)
{
	FILE *f = open_proc(pid, "smaps");
	if (!f)
		return -1;
	char line[512];
	uint64_t size = 0, best = 0;
	int found = -1;
	/* Each mapping: a header line, then "Size:", ..., "Rss:", ... */
	while (fgets(line, sizeof line, f)) {
		uint64_t v;
		if (sscanf(line, "Size: %" SCNu64, &v) == 1) {
			size = v;
		} else if (sscanf(line, "Rss: %" SCNu64, &v) == 1) {
			if (size >= min_kb && size <= max_kb && (found < 0 || v > best)) {
				best = v;
				found = 0;
			}
		}
	}
	fclose(f);
	if (found == 0)
		*rss_kb = best;
	return found;
}
