/* A main() for fuzz targets when the compiler has no libFuzzer (gcc).
 *
 * Runs LLVMFuzzerTestOneInput on every file argument and on every file in every
 * directory argument. With -runs=N and/or -max_total_time=S it then keeps going with
 * inputs made by mutating the corpus with a seeded PRNG: no coverage feedback, but with
 * the sanitizers on, a gcc build still finds shallow bugs. Options use libFuzzer's
 * spelling so scripts drive both the same way; unknown -options are ignored.
 *
 * On a crash (signal or sanitizer report) or a hang (-timeout) the current input is
 * written to <artifact_prefix>crash-<hash> or timeout-<hash>, like libFuzzer does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

struct input {
	uint8_t *data;
	size_t len;
};

struct corpus {
	struct input *in;
	size_t n, cap;
};

/* What the crash handlers need: the input being run. Globals, as signal handlers can
 * reach nothing else. */
static const uint8_t *volatile cur_data;
static volatile size_t cur_len;
static volatile unsigned long exec_seq;
static char artifact_prefix[512] = "./";
static long timeout_s = 20;

/* ---- crash and hang artifacts (async-signal-safe) ------------------------------------- */

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void put_str(int fd, const char *s)
{
	ssize_t r = write(fd, s, strlen(s));
	(void)r;
}

static void dump_input(const char *kind)
{
	char path[600];
	size_t n = strlen(artifact_prefix), k = strlen(kind);
	if (n + k + 1 + 16 + 1 > sizeof path)
		return;
	memcpy(path, artifact_prefix, n);
	memcpy(path + n, kind, k);
	n += k;
	path[n++] = '-';
	uint64_t h = fnv1a((const uint8_t *)cur_data, cur_len);
	for (int i = 15; i >= 0; i--)
		path[n++] = "0123456789abcdef"[(h >> (4 * i)) & 15];
	path[n] = '\0';
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		put_str(2, "standalone driver: cannot write the artifact\n");
		return;
	}
	size_t done = 0;
	while (done < cur_len) {
		ssize_t w = write(fd, (const uint8_t *)cur_data + done, cur_len - done);
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	close(fd);
	put_str(2, "standalone driver: input written to ");
	put_str(2, path);
	put_str(2, "\n");
}

static void on_death(void)
{
	if (cur_data)
		dump_input("crash");
}

static void on_signal(int sig)
{
	on_death();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_alarm(int sig)
{
	static unsigned long last_seq;
	static long stuck;
	(void)sig;
	if (exec_seq != last_seq || !cur_data) {
		last_seq = exec_seq;
		stuck = 0;
		return;
	}
	if (++stuck < timeout_s)
		return;
	put_str(2, "standalone driver: timeout: one input ran longer than -timeout\n");
	dump_input("timeout");
	_exit(70);
}

static void install_handlers(void)
{
	if (__sanitizer_set_death_callback) {
		/* The sanitizers report SEGV and friends themselves, then call this. */
		__sanitizer_set_death_callback(on_death);
	} else {
		signal(SIGSEGV, on_signal);
		signal(SIGBUS, on_signal);
		signal(SIGFPE, on_signal);
		signal(SIGILL, on_signal);
	}
	signal(SIGABRT, on_signal);
	if (timeout_s > 0) {
		struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
		sigaction(SIGALRM, &sa, NULL);
		struct itimerval it = { { 1, 0 }, { 1, 0 } };
		setitimer(ITIMER_REAL, &it, NULL);
	}
}

/* ---- running inputs ------------------------------------------------------------------ */

static void run_one(const uint8_t *data, size_t len)
{
	/* An exactly sized heap copy, so ASan sees any read past the end. */
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy) {
		fprintf(stderr, "standalone driver: out of memory\n");
		exit(1);
	}
	memcpy(copy, data, len);
	cur_len = len;
	cur_data = copy;
	exec_seq++;
	LLVMFuzzerTestOneInput(copy, len);
	cur_data = NULL;
	free(copy);
}

static int read_file(const char *path, struct input *out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	int err = ferror(f) ? -EIO : 0;
	fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	*out = (struct input){ buf, len };
	return 0;
}

static void corpus_add(struct corpus *c, struct input in)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->in = realloc(c->in, c->cap * sizeof *c->in);
		if (!c->in) {
			fprintf(stderr, "standalone driver: out of memory\n");
			exit(1);
		}
	}
	c->in[c->n++] = in;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the file, or every regular file in the directory (in name order, so runs are
 * reproducible), to the corpus. */
static void load_path(struct corpus *c, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "standalone driver: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (!S_ISDIR(st.st_mode)) {
		struct input in;
		int r = read_file(path, &in);
		if (r) {
			fprintf(stderr, "standalone driver: %s: %s\n", path, strerror(-r));
			exit(1);
		}
		corpus_add(c, in);
		return;
	}
	DIR *d = opendir(path);
	if (!d) {
		fprintf(stderr, "standalone driver: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof *names);
			if (!names)
				exit(1);
		}
		size_t l = strlen(path) + 1 + strlen(e->d_name) + 1;
		if (!(names[n] = malloc(l)))
			exit(1);
		snprintf(names[n++], l, "%s/%s", path, e->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, compare_names);
	for (size_t i = 0; i < n; i++) {
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
			struct input in;
			if (read_file(names[i], &in) == 0)
				corpus_add(c, in);
		}
		free(names[i]);
	}
	free(names);
}

/* ---- mutation ------------------------------------------------------------------------ */

static uint64_t rng;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* An offset for a field of `width` bytes, often aligned like a header field is. */
static size_t pick_offset(size_t len, size_t width)
{
	if (len < width)
		return 0;
	size_t off = below(len - width + 1);
	if (rnd() & 1)
		off &= ~(width - 1);
	return off;
}

static const uint64_t interesting[] = {
	0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff,
	0x80000000, 0xffffffff, 0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
	UINT64_MAX, UINT64_MAX - 1, 0x1000, 0xfff, 0x40, 0x38,
};

/* Applies one random mutation to buf[0, *len) (capacity max_len). */
static void mutate_once(uint8_t *buf, size_t *len, size_t max_len, const struct corpus *c)
{
	size_t n = *len;
	static const size_t widths[] = { 1, 2, 4, 8 };
	switch (rnd() % 9) {
	case 0: /* flip a bit */
		if (n)
			buf[below(n)] ^= (uint8_t)(1u << below(8));
		break;
	case 1: /* random byte */
		if (n)
			buf[below(n)] = (uint8_t)rnd();
		break;
	case 2: { /* interesting value, little-endian */
		size_t w = widths[below(4)];
		if (n < w)
			break;
		uint64_t v = interesting[below(sizeof interesting / sizeof interesting[0])];
		if (rnd() % 4 == 0)
			v = n; /* sizes and offsets near the input's own size */
		if (rnd() % 8 == 0)
			v -= below(16);
		memcpy(buf + pick_offset(n, w), &v, w);
		break;
	}
	case 3: { /* add or subtract a small delta */
		size_t w = widths[below(4)];
		if (n < w)
			break;
		size_t off = pick_offset(n, w);
		uint64_t v = 0;
		memcpy(&v, buf + off, w);
		v += (rnd() & 1) ? 1 + below(64) : -(uint64_t)(1 + below(64));
		memcpy(buf + off, &v, w);
		break;
	}
	case 4: { /* erase a chunk */
		if (n < 2)
			break;
		size_t off = below(n), k = 1 + below(n - off < 64 ? n - off : 64);
		memmove(buf + off, buf + off + k, n - off - k);
		*len = n - k;
		break;
	}
	case 5: { /* insert random bytes or a copy of a chunk */
		size_t k = 1 + below(32);
		uint8_t chunk[32];
		if (n + k > max_len)
			break;
		if (n && (rnd() & 1)) {
			size_t src = below(n);
			for (size_t i = 0; i < k; i++)
				chunk[i] = buf[(src + i) % n];
		} else {
			for (size_t i = 0; i < k; i++)
				chunk[i] = (uint8_t)rnd();
		}
		size_t off = below(n + 1);
		memmove(buf + off + k, buf + off, n - off);
		memcpy(buf + off, chunk, k);
		*len = n + k;
		break;
	}
	case 6: { /* crossover: a chunk of another input at the same offset */
		if (!c->n || !n)
			break;
		const struct input *o = &c->in[below(c->n)];
		if (!o->len)
			break;
		size_t off = below(n < o->len ? n : o->len);
		size_t k = 1 + below(128);
		if (off + k > n)
			k = n - off;
		if (off + k > o->len)
			k = o->len - off;
		memcpy(buf + off, o->data + off, k);
		break;
	}
	case 7: /* truncate */
		if (n)
			*len = below(n);
		break;
	default: /* overwrite a run with one byte value */
		if (n) {
			size_t off = below(n), k = 1 + below(16);
			memset(buf + off, (int)(rnd() & 1 ? 0 : rnd()), off + k > n ? n - off : k);
		}
		break;
	}
}

static size_t make_input(uint8_t *buf, size_t max_len, const struct corpus *c)
{
	size_t len;
	if (!c->n || rnd() % 64 == 0) {
		/* a fresh random input now and then */
		len = below(max_len + 1);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd();
		return len;
	}
	const struct input *base = &c->in[below(c->n)];
	len = base->len < max_len ? base->len : max_len;
	memcpy(buf, base->data, len);
	for (size_t k = 1 + below(8); k; k--)
		mutate_once(buf, &len, max_len, c);
	return len;
}

/* ---- main ---------------------------------------------------------------------------- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool opt(const char *arg, const char *name, const char **val)
{
	size_t n = strlen(name);
	if (strncmp(arg, name, n) != 0 || arg[n] != '=')
		return false;
	*val = arg + n + 1;
	return true;
}

int main(int argc, char **argv)
{
	long long runs = -1;
	double max_time = 0;
	size_t max_len = 4096;
	uint64_t seed = 0;
	struct corpus corpus = { 0 };
	const char *v;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			continue;
		if (opt(a, "-runs", &v))
			runs = atoll(v);
		else if (opt(a, "-max_total_time", &v))
			max_time = atof(v);
		else if (opt(a, "-max_len", &v))
			max_len = (size_t)atoll(v);
		else if (opt(a, "-seed", &v))
			seed = strtoull(v, NULL, 0);
		else if (opt(a, "-timeout", &v))
			timeout_s = atol(v);
		else if (opt(a, "-artifact_prefix", &v))
			snprintf(artifact_prefix, sizeof artifact_prefix, "%s", v);
		else if (!strcmp(a, "-help=1") || !strcmp(a, "--help")) {
			fprintf(stderr, "usage: %s [-runs=N] [-max_total_time=S] [-max_len=N] [-seed=N] "
				"[-timeout=S] [-artifact_prefix=P] [file|dir]...\n", argv[0]);
			return 0;
		}
		/* anything else: a libFuzzer option we do not implement */
	}
	if (max_len == 0)
		max_len = 1;
	if (!seed)
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	rng = seed | 1;
	install_handlers();

	for (int i = 1; i < argc; i++)
		if (argv[i][0] != '-')
			load_path(&corpus, argv[i]);

	double start = now();
	for (size_t i = 0; i < corpus.n; i++)
		run_one(corpus.in[i].data, corpus.in[i].len);
	fprintf(stderr, "standalone driver: ran %zu input(s)\n", corpus.n);

	/* Generate only when asked, as libFuzzer would; -runs=-1 with a time budget is
	 * "until the time is up". */
	bool generate = runs > 0 || (runs < 0 && max_time > 0);
	unsigned long long generated = 0;
	if (generate) {
		uint8_t *buf = malloc(max_len);
		if (!buf)
			return 1;
		fprintf(stderr, "standalone driver: generating (seed %llu)\n", (unsigned long long)seed);
		while (runs < 0 || generated < (unsigned long long)runs) {
			if (max_time > 0 && (generated & 63) == 0 && now() - start >= max_time)
				break;
			size_t len = make_input(buf, max_len, &corpus);
			run_one(buf, len);
			generated++;
		}
		free(buf);
	}
	fprintf(stderr, "standalone driver: done, %zu given + %llu generated inputs in %.1f s\n",
		corpus.n, generated, now() - start);
	for (size_t i = 0; i < corpus.n; i++)
		free(corpus.in[i].data);
	free(corpus.in);
	return 0;
}
