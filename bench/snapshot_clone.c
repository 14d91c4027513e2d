/* Part 3 of bench_snapshot: p->clones clones of one 64 MiB snapshot (memory fully
 * touched), all alive at the end. Each clone's latency (vmm_snapshot_clone) is measured
 * next to a fork() of this process with the same 64 MiB touched (the parent's side of
 * fork: the copy-on-write copy of an address space), and each clone then runs its
 * guest, which dirties 16 pages; the RSS this process gains from clone + run is that
 * clone's memory (RSS counts every mapping of a shared page, so this over-states what
 * the machine pays; PSS is printed too). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "snapshot_bench.h"

#define CLONE_DIRTY 16u

struct clone_run {
	vmm_vm **clones;
	struct bench_series lib, base, rss, pss, anon;
};

static int clone_one(const struct bench_params *p, vmm_snapshot *snap, struct clone_run *c, unsigned i)
{
	struct rss a, b;
	if (read_rss(&a))
		return -1;
	vmm_vm_opts host = VMM_VM_OPTS_INIT;
	host.dirty_ring_entries = p->dirty_ring;
	double t0 = bench_now_ns();
	int r = vmm_snapshot_clone(snap, &host, &c->clones[i]);
	double t = bench_now_ns() - t0;
	if (r)
		return lib_fail("vmm_snapshot_clone", r);
	if (dirty_run(vmm_vm_get_vcpu(c->clones[i], 0), p->small, CLONE_DIRTY) || read_rss(&b))
		return -1;
	/* The baseline forks this process: keep the clones' copy-on-write mappings out of
	 * those forks, or each fork would also copy the page tables of every clone so far. */
	if (vm_dontfork(c->clones[i]))
		return -1;
	bench_push(&c->lib, t / 1e3);
	bench_push(&c->rss, (double)b.rss - (double)a.rss);
	bench_push(&c->pss, (double)b.pss - (double)a.pss);
	bench_push(&c->anon, (double)b.anon - (double)a.anon);
	return 0;
}

static int fork_one(const struct native_mem *m, struct clone_run *c)
{
	double t = native_fork_only(m);
	if (t < 0)
		return -1;
	bench_push(&c->base, t / 1e3);
	return 0;
}

static void report(const struct bench_params *p, struct clone_run *c, double destroy_ms)
{
	char what[256];
	snprintf(what, sizeof what, "lib = vmm_snapshot_clone of a 64 MiB snapshot (%u clones, all kept), base = "
		 "fork() of this process with 64 MiB touched, as the parent sees it, ratio = lib/base", p->clones);
	print_pair("clone_64m", &c->lib, &c->base, "us", what);
	double touched = CLONE_DIRTY * 4.0;
	double rss = bench_median(&c->rss);
	printf("clone_64m_rss value=%.1fKiB\n", rss);
	printf("clone_64m_rss_max value=%.1fKiB\n", bench_quantile(&c->rss, 1.0));
	printf("clone_64m_rss_net value=%.1fKiB\n", rss - touched);
	printf("# clone_64m_rss: RSS added per clone after its guest dirtied %u pages (%.0f KiB), median over %zu "
	       "clones; _net subtracts those pages (goal: <= 1024 KiB); PSS added median %.1f KiB, anonymous "
	       "%.1f KiB; KVM's kernel memory per VM is not in these\n", CLONE_DIRTY, touched, c->rss.n,
	       bench_median(&c->pss), bench_median(&c->anon));
	/* Does a clone cost more when many exist (fork does: it copies every clone's
	 * private pages' page tables)? */
	size_t k = c->lib.n < 10 ? c->lib.n : 10;
	if (k && c->base.n >= c->lib.n)
		printf("# clone_64m: first %zu clones median %.1f us, last %zu %.1f us (fork: %.1f us, %.1f us)\n", k,
		       bench_median_of(c->lib.v, k), k, bench_median_of(c->lib.v + c->lib.n - k, k),
		       bench_median_of(c->base.v, k), bench_median_of(c->base.v + c->base.n - k, k));
	printf("# clone_64m: destroying the %u clones took %.1f ms\n", p->clones, destroy_ms);
}

int bench_clones(const struct bench_params *p)
{
	struct dirty_vm d;
	if (dirty_vm_create(&d, p->small, p))
		return -1;
	vmm_snapshot *snap = NULL;
	int r = vmm_snapshot_take(d.vm, NULL, &snap);
	/* The snapshot keeps its own copy of the memory: the source VM can go. */
	dirty_vm_destroy(&d);
	if (r)
		return lib_fail("vmm_snapshot_take", r);
	struct native_mem m = { 0 };
	struct clone_run c = { 0 };
	c.clones = calloc(p->clones, sizeof *c.clones);
	if (!c.clones || native_create(&m, p->small, false))
		r = -1;
	for (unsigned i = 0; i < p->clones && !r; i++) {
		/* fork() is timed outside the RSS window of the clone (it does not change this
		 * process's RSS, but its page-table copy would add noise). */
		if (i % 2)
			r = clone_one(p, snap, &c, i) || fork_one(&m, &c);
		else
			r = fork_one(&m, &c) || clone_one(p, snap, &c, i);
	}
	double t0 = bench_now_ns();
	for (unsigned i = 0; c.clones && i < p->clones; i++)
		vmm_vm_destroy(c.clones[i]);
	double destroy_ms = (bench_now_ns() - t0) / 1e6;
	if (!r)
		report(p, &c, destroy_ms);
	native_destroy(&m);
	vmm_snapshot_free(snap);
	free(c.clones);
	bench_series_free(&c.lib);
	bench_series_free(&c.base);
	bench_series_free(&c.rss);
	bench_series_free(&c.pss);
	bench_series_free(&c.anon);
	return r;
}
