/* Part 2 of bench_snapshot: the round trip of a sandbox call to an empty guest function
 * (vmm_sandbox_call: reset if needed, enter the guest, run the function, one exit back),
 * with the default per-call reset and with VMM_SANDBOX_NO_RESET, against one raw KVM
 * port-I/O exit round trip from the same privilege level (CPL 3; raw.c, no library).
 * The three sides take turns, sample by sample. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "snapshot_bench.h"

#ifndef BENCH_SNAPSHOT_GUEST
#error "BENCH_SNAPSHOT_GUEST (the path of the guest ELF) must be defined by the build"
#endif

enum { SIDE_RESET, SIDE_NORESET, SIDE_RAW, NR_SIDES };

static int call_chunk(vmm_sandbox *sb, unsigned calls, struct bench_series *s)
{
	double t0 = bench_now_ns();
	for (unsigned i = 0; i < calls; i++) {
		uint64_t ret = 1;
		int r = vmm_sandbox_call(sb, "empty", NULL, 0, NULL, &ret);
		if (r)
			return lib_fail("vmm_sandbox_call(empty)", r);
		if (ret != 0) {
			fprintf(stderr, "bench_snapshot: empty() returned %llu\n", (unsigned long long)ret);
			return -1;
		}
	}
	if (s)
		bench_push(s, (bench_now_ns() - t0) / 1e3 / calls);
	return 0;
}

static int raw_chunk(void *raw, unsigned exits, struct bench_series *s)
{
	double ns;
	if (bench_raw.loop_chunk(raw, &ns))
		return -1;
	if (s)
		bench_push(s, ns / 1e3 / exits);
	return 0;
}

static int sample(vmm_sandbox *const sb[2], void *raw, unsigned n, int side, struct bench_series *s)
{
	if (side == SIDE_RAW)
		return raw_chunk(raw, n, s ? &s[side] : NULL);
	return call_chunk(sb[side], n, s ? &s[side] : NULL);
}

static void print_stats(const char *name, vmm_sandbox *sb)
{
	vmm_sandbox_stats st = VMM_SANDBOX_STATS_INIT;
	if (vmm_sandbox_get_stats(sb, &st) == 0)
		printf("# %s: %llu calls, %llu resets, %.1f pages copied back per reset\n", name,
		       (unsigned long long)st.calls, (unsigned long long)st.resets,
		       st.resets ? (double)st.pages_reset / (double)st.resets : 0.0);
}

int bench_calls(const struct bench_params *p)
{
	vmm_sandbox *sb[2] = { NULL, NULL };
	void *raw = NULL;
	struct bench_series s[NR_SIDES] = { 0 };
	unsigned n = p->calls_per_sample;
	int r = 0;
	for (int i = 0; i < 2 && !r; i++) {
		vmm_sandbox_opts so = VMM_SANDBOX_OPTS_INIT;
		so.elf_path = BENCH_SNAPSHOT_GUEST;
		so.flags = i == SIDE_NORESET ? VMM_SANDBOX_NO_RESET : 0;
		int e = vmm_sandbox_create(&sb[i], &so);
		if (e)
			r = lib_fail("vmm_sandbox_create", e);
	}
	if (!r && !(raw = bench_raw.loop_open(LOOP_PIO, 3, n)))
		r = -1;
	/* Warm-up, not recorded. */
	for (int side = 0; side < NR_SIDES && !r; side++)
		r = sample(sb, raw, n, side, NULL);
	for (unsigned i = 0; i < p->call_samples && !r; i++)
		for (int k = 0; k < NR_SIDES && !r; k++)
			r = sample(sb, raw, n, (int)((i + (unsigned)k) % NR_SIDES), s);
	if (!r) {
		print_pair("call_reset", &s[SIDE_RESET], &s[SIDE_RAW], "us",
			   "lib = vmm_sandbox_call of an empty function (CPL 3) with the default reset before every "
			   "call, base = one raw KVM port-I/O exit round trip at CPL 3, ratio = lib/base");
		print_pair("call_noreset", &s[SIDE_NORESET], &s[SIDE_RAW], "us",
			   "lib = the same call with VMM_SANDBOX_NO_RESET, base = the same raw exit, ratio = lib/base");
		print_stats("call_reset", sb[SIDE_RESET]);
		print_stats("call_noreset", sb[SIDE_NORESET]);
	}
	for (int i = 0; i < NR_SIDES; i++)
		bench_series_free(&s[i]);
	if (raw)
		bench_raw.loop_close(raw);
	vmm_sandbox_destroy(sb[0]);
	vmm_sandbox_destroy(sb[1]);
	return r;
}
