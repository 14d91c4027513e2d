/* fuzz-in-vm: a libFuzzer driver that runs every input inside a VM, in a function sandbox
 * reset to a snapshot before each input, steered by the guest's own coverage.
 *
 *   fuzz-in-vm [libFuzzer flags] [corpus dirs or files]   (clang -fsanitize=fuzzer build)
 *   fuzz-in-vm <files or dirs>                            (any other build: replays them)
 *
 * The target (examples/guest/fuzz_target.c, built as fuzz-in-vm-guest.elf; or
 * FUZZ_IN_VM_GUEST=<elf>) is a guest program built with the guest SDK's COVERAGE
 * option: clang's inline-8bit-counters, in pages of their own between
 * __start___sancov_cntrs and __stop___sancov_cntrs. For each
 * input the driver calls the guest's exported function (FUZZ_IN_VM_FUNC, default
 * "parse") with the input as input buffer 0. The sandbox resets itself before every
 * call, so every input starts from the state the guest's init left, counters at zero.
 *
 * Coverage hand-over: libFuzzer reads "extra counters" from the section
 * __libfuzzer_extra_counters of the fuzzer binary, clears them before each input and
 * collects them after it, exactly like its own inline 8-bit counters. The driver defines
 * a host array in that section and, after each call (before the next call resets the
 * guest), copies the guest's counter pages into it (read through vmm_sandbox_ptr, which
 * maps them once). Guest edge i is thus extra counter i, and libFuzzer keeps an input
 * whenever it lights a new guest edge or a new hit-count bucket, as if the guest code
 * were linked in. This costs one memcpy of the counters per input (bytes, not pages) and
 * needs no change to libFuzzer. (The alternative, __sanitizer_cov_8bit_counters_init on
 * a host buffer, would also need a matching fake PC table, or libFuzzer refuses to run.)
 * With FUZZ_IN_VM_BLIND=1 nothing is copied (only one constant counter is set, the
 * same for every input): libFuzzer sees no difference between inputs and fuzzes blind,
 * for comparison.
 *
 * A guest crash is a crash of the fuzz target: a CPU exception in the guest (-EFAULT,
 * the message names the vector, RIP and address), a guest abort (-ECANCELED), a call
 * that overruns its deadline (-ETIMEDOUT, FUZZ_IN_VM_TIMEOUT_MS, default 1000) or breaks
 * the protocol (-EPROTO). The driver prints the detail and abort()s, so libFuzzer writes
 * the input as crash-<sha1> and exits with its error code. Host-side failures (no
 * memory, KVM errors) are not the input's fault: they end the process with exit code 3
 * and no crash file. No usable /dev/kvm: exit code 77 (skip).
 *
 * The driver prints, at exit or at the crash, the runs, execs/s, and the largest value
 * the guest function returned (for the sample target: how many bytes of its magic an
 * input matched, which shows how far each mode got). scripts/fuzz-in-vm-demo.sh runs
 * guided and blind with the same seed and budget. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvmm/libvmm.h>

#ifndef GUEST_DIR
#define GUEST_DIR "."
#endif
/* The target run when FUZZ_IN_VM_GUEST is not set (the build passes its path). */
#ifndef FUZZ_IN_VM_DEFAULT_GUEST
#define FUZZ_IN_VM_DEFAULT_GUEST GUEST_DIR "/fuzz-in-vm-guest.elf"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The driver's own branches must not steer the fuzzer: some depend on the input (the
 * depth bookkeeping, the error paths), which would leak guidance into blind mode. So
 * the per-input function gets no coverage instrumentation; only the guest's counters
 * count. */
#if defined(FUZZ_IN_VM_LIBFUZZER) && defined(__clang__) && __clang_major__ >= 13
#define FIV_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define FIV_NO_COVERAGE
#endif

#ifdef FUZZ_IN_VM_LIBFUZZER
/* libFuzzer's extra counters: the guest's counters are copied here after each input.
 * 64 Ki edges is far more than a sample target has; a bigger guest is cut (with a
 * warning), which only loses guidance for its last edges. */
#define FIV_MAX_COUNTERS 65536u
__attribute__((section("__libfuzzer_extra_counters"), used, aligned(64))) static uint8_t
	fiv_extra_counters[FIV_MAX_COUNTERS];
#endif

/* The driver's state. libFuzzer's callbacks take no context, so it is a file-scope
 * object (this is an example program, not library code). */
static struct {
	vmm_sandbox *sb;
	const char *func;
	const uint8_t *counters; /* the guest's counters, mapped into the host */
	size_t nr_counters;      /* how many of them are copied */
	bool blind;
	const char *mode;        /* "guided", "blind" or "replay" (no libFuzzer) */
	uint64_t deadline_ns;
	uint64_t runs;           /* inputs run so far */
	uint64_t start_ns;       /* first input */
	uint64_t call_ns;        /* time spent in vmm_sandbox_call */
	uint64_t max_depth;      /* deepest return value seen */
	uint64_t depth_run;      /* run that first reached it */
} fiv;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0") != 0;
}

static void print_stats(const char *what)
{
	double secs = fiv.runs ? (double)(now_ns() - fiv.start_ns) / 1e9 : 0.0;
	fprintf(stderr,
		"fuzz-in-vm: %s: mode %s, %llu runs in %.2f s, %.0f execs/s (%.1f us per call in the "
		"sandbox), deepest depth returned %llu (first at run %llu)\n",
		what, fiv.mode, (unsigned long long)fiv.runs, secs,
		secs > 0 ? (double)fiv.runs / secs : 0.0,
		fiv.runs ? (double)fiv.call_ns / (double)fiv.runs / 1e3 : 0.0,
		(unsigned long long)fiv.max_depth, (unsigned long long)fiv.depth_run);
}

static void at_exit(void)
{
	print_stats("done");
	vmm_sandbox_destroy(fiv.sb);
	fiv.sb = NULL;
}

/* Finds the guest's coverage counters. A guest built without COVERAGE has none: the
 * driver then runs it blind, and says so. */
static void map_counters(void)
{
	uint64_t start, stop;
	if (vmm_sandbox_symbol(fiv.sb, "__start___sancov_cntrs", &start) ||
	    vmm_sandbox_symbol(fiv.sb, "__stop___sancov_cntrs", &stop) || stop <= start) {
		fprintf(stderr, "fuzz-in-vm: the guest has no coverage counters (not built with "
				"COVERAGE): no guidance\n");
		return;
	}
	size_t n = (size_t)(stop - start);
	void *p;
	int r = vmm_sandbox_ptr(fiv.sb, start, n, false, &p);
	if (r) {
		fprintf(stderr, "fuzz-in-vm: counters at %#llx: %s: %s\n", (unsigned long long)start,
			vmm_strerror(r), vmm_last_error());
		exit(3);
	}
	fiv.counters = p;
#ifdef FUZZ_IN_VM_LIBFUZZER
	if (n > FIV_MAX_COUNTERS) {
		fprintf(stderr, "fuzz-in-vm: warning: the guest has %zu counters, only the first %u "
				"guide the fuzzer\n", n, FIV_MAX_COUNTERS);
		n = FIV_MAX_COUNTERS;
	}
#endif
	fiv.nr_counters = n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *guest = getenv("FUZZ_IN_VM_GUEST");
	if (!guest || !*guest)
		guest = FUZZ_IN_VM_DEFAULT_GUEST;
	fiv.func = getenv("FUZZ_IN_VM_FUNC");
	if (!fiv.func || !*fiv.func)
		fiv.func = "parse";
	fiv.blind = env_flag("FUZZ_IN_VM_BLIND");
	const char *t = getenv("FUZZ_IN_VM_TIMEOUT_MS");
	fiv.deadline_ns = (t && *t ? strtoull(t, NULL, 10) : 1000) * 1000000u;

	vmm_sandbox_opts o = VMM_SANDBOX_OPTS_INIT;
	o.elf_path = guest;
	o.deadline_ns = fiv.deadline_ns;
	int r = vmm_sandbox_create(&fiv.sb, &o);
	if (r) {
		fprintf(stderr, "fuzz-in-vm: %s: %s: %s\n", guest, vmm_strerror(r), vmm_last_error());
		exit(r == -ENODEV || r == -EACCES ? 77 : 3);
	}
	map_counters();
#ifndef FUZZ_IN_VM_LIBFUZZER
	fiv.blind = true; /* nobody to hand the counters to */
#endif
	if (!fiv.counters)
		fiv.blind = true;
#ifdef FUZZ_IN_VM_LIBFUZZER
	fiv.mode = fiv.blind ? "blind" : "guided";
#else
	fiv.mode = "replay";
#endif
	fprintf(stderr, "fuzz-in-vm: guest %s, function %s, %zu coverage counters, %s\n", guest,
		fiv.func, fiv.nr_counters,
		fiv.blind ? "blind (counters not handed to the fuzzer)" : "guided by the guest's coverage");
	atexit(at_exit);
	return 0;
}

FIV_NO_COVERAGE int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fiv.runs)
		fiv.start_ns = now_ns();
	fiv.runs++;

	vmm_sandbox_in in = { data, size };
	vmm_sandbox_call_opts c = VMM_SANDBOX_CALL_OPTS_INIT;
	c.in = &in;
	c.nr_in = 1;
	uint64_t ret = 0, t = now_ns();
	int r = vmm_sandbox_call(fiv.sb, fiv.func, NULL, 0, &c, &ret);
	fiv.call_ns += now_ns() - t;

	switch (r) {
	case 0:
		break;
	case -E2BIG: /* larger than the sandbox's I/O area: not an input for this target */
		return -1;
	case -EFAULT:
	case -ECANCELED:
	case -ETIMEDOUT:
	case -EPROTO:
		fprintf(stderr, "fuzz-in-vm: guest crash on run %llu (%zu-byte input): %s: %s\n",
			(unsigned long long)fiv.runs, size, vmm_strerror(r), vmm_last_error());
		print_stats("crash");
		abort(); /* libFuzzer saves the input as crash-<sha1> */
	default:
		fprintf(stderr, "fuzz-in-vm: host error on run %llu: %s: %s\n",
			(unsigned long long)fiv.runs, vmm_strerror(r), vmm_last_error());
		_Exit(3);
	}

	if (ret > fiv.max_depth) {
		fiv.max_depth = ret;
		fiv.depth_run = fiv.runs;
	}
#ifdef FUZZ_IN_VM_LIBFUZZER
	/* After the call, before the next call's reset clears them. Blind: one fixed
	 * counter, the same for every input, so libFuzzer (which refuses to run a target
	 * that shows no coverage at all) runs, but learns nothing from the guest. */
	if (!fiv.blind)
		memcpy(fiv_extra_counters, fiv.counters, fiv.nr_counters);
	else
		fiv_extra_counters[FIV_MAX_COUNTERS - 1] = 1;
#endif
	return 0;
}

#ifndef FUZZ_IN_VM_LIBFUZZER
/* Without libFuzzer (a gcc build): run each file given, or each file in each directory
 * given, once; flags (-...) are ignored so libFuzzer command lines work unchanged. */
#include <dirent.h>

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(3);
	}
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) {
				fprintf(stderr, "fuzz-in-vm: out of memory\n");
				exit(3);
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	bool err = ferror(f);
	fclose(f);
	if (err) {
		fprintf(stderr, "fuzz-in-vm: cannot read %s\n", path);
		exit(3);
	}
	fprintf(stderr, "fuzz-in-vm: running %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
}

int main(int argc, char **argv)
{
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		DIR *d = opendir(argv[i]);
		if (!d) {
			run_file(argv[i]);
			continue;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			if ((size_t)snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name) < sizeof path)
				run_file(path);
		}
		closedir(d);
	}
	return 0;
}
#endif
