/* Part 4 of bench_snapshot: restore to the first guest instruction. Each sample is
 * vmm_snapshot_restore from the files part 5 saved (state + memory file) and one
 * vmm_vcpu_run up to the guest's first exit (its first instruction after the snapshot
 * point goes straight to the exit port); destroying the VM is not timed. Eager and lazy
 * restores of the 64 MiB and 1 GiB snapshots take turns. Goal: a lazy restore of 1 GiB
 * costs the same as one of 64 MiB, within 10%. */
#include <stdio.h>
#include <stdlib.h>

#include "snapshot_bench.h"

enum { LAZY_SMALL, LAZY_BIG, EAGER_SMALL, EAGER_BIG, NR_KINDS };

static int restore_sample(const struct bench_params *p, int kind, struct bench_series *s)
{
	uint64_t size = kind == LAZY_SMALL || kind == EAGER_SMALL ? p->small : p->big;
	char state[4096], mem[4096];
	snap_file_paths(p, size, state, mem, sizeof state);
	vmm_snapshot_restore_opts o = VMM_SNAPSHOT_RESTORE_OPTS_INIT;
	o.state_path = state;
	o.mem_path = mem;
	o.mem_mode = kind == LAZY_SMALL || kind == LAZY_BIG ? VMM_SNAPSHOT_MEM_LAZY : VMM_SNAPSHOT_MEM_EAGER;
	vmm_vm *vm = NULL;
	vmm_exit e;
	double t0 = bench_now_ns();
	int r = vmm_snapshot_restore(&vm, &o);
	if (r)
		return lib_fail("vmm_snapshot_restore", r);
	r = vmm_vcpu_run(vmm_vm_get_vcpu(vm, 0), &e);
	double t = bench_now_ns() - t0;
	vmm_vm_destroy(vm);
	if (r)
		return lib_fail("vmm_vcpu_run after the restore", r);
	if (e.reason != VMM_EXIT_GUEST) {
		fprintf(stderr, "bench_snapshot: the restored guest stopped with exit reason %d\n", (int)e.reason);
		return -1;
	}
	bench_push(&s[kind], t / 1e3);
	return 0;
}

int bench_restore(const struct bench_params *p)
{
	unsigned want[NR_KINDS] = {
		[LAZY_SMALL] = p->restore_samples, [LAZY_BIG] = p->restore_samples,
		[EAGER_SMALL] = p->restore_eager_small, [EAGER_BIG] = p->restore_eager_big,
	};
	unsigned rounds = 0;
	for (int k = 0; k < NR_KINDS; k++)
		rounds = want[k] > rounds ? want[k] : rounds;
	struct bench_series s[NR_KINDS] = { 0 }, warm[NR_KINDS] = { 0 };
	int r = 0;
	/* Warm-up: page cache and KVM's first-use paths. */
	for (int k = 0; k < NR_KINDS && !r; k++)
		r = restore_sample(p, k, warm);
	for (unsigned i = 0; i < rounds && !r; i++)
		for (int j = 0; j < NR_KINDS && !r; j++) {
			int k = (int)((i + (unsigned)j) % NR_KINDS);
			if (s[k].n < want[k])
				r = restore_sample(p, k, s);
		}
	if (!r) {
		char big[32], name[64], what[256];
		size_name(p->big, big, sizeof big);
		print_pair("restore_64m", &s[LAZY_SMALL], &s[EAGER_SMALL], "us",
			   "restore from files + run to the first guest exit; lib = lazy (MAP_PRIVATE of the memory "
			   "file), base = eager (read into fresh memory), ratio = lazy/eager");
		snprintf(name, sizeof name, "restore_%s", big);
		print_pair(name, &s[LAZY_BIG], &s[EAGER_BIG], "us", "the same for the large guest");
		snprintf(name, sizeof name, "restore_lazy_%s_vs_64m", big);
		snprintf(what, sizeof what, "lazy restore: lib = %s guest, base = 64 MiB guest, ratio = lib/base "
			 "(goal: 0.9 .. 1.1)", big);
		print_pair(name, &s[LAZY_BIG], &s[LAZY_SMALL], "us", what);
	}
	for (int k = 0; k < NR_KINDS; k++) {
		bench_series_free(&s[k]);
		bench_series_free(&warm[k]);
	}
	return r;
}
