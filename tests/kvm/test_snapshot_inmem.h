/* Helpers of the in-memory snapshot tests (test_snapshot_clone.c, test_snapshot_reset.c):
 * the snap_scribble guest's job, its expected page count, and checked wrappers. */
#ifndef TEST_SNAPSHOT_INMEM_H
#define TEST_SNAPSHOT_INMEM_H

#include "test_snapshot_common.h"

#define SI_RAM (64ull << 20)
#define SI_AREA_START (16ull << 20)
#define SI_AREA_LEN (SI_RAM - SI_AREA_START)

static inline void si_set(kt_vm *sym_src, kt_vm *t, const char *sym, uint64_t v)
{
	kt_write(t, kt_sym(sym_src, sym), &v, sizeof v);
}

/* How many distinct pages the scribble guest writes for (seed, n) (mirrors its loop). */
static inline uint64_t si_distinct_pages(uint64_t seed, uint64_t n)
{
	uint64_t pages = SI_AREA_LEN / 4096;
	uint8_t *seen = calloc(pages, 1);
	assert_non_null(seen);
	uint64_t s = seed, distinct = 0;
	for (uint64_t i = 0; i < n; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		if (!seen[s % pages]++)
			distinct++;
	}
	free(seen);
	return distinct;
}

/* One call of the scribble guest on `t` (symbols from `sym_src`): set the job, run to
 * its report 2. */
static inline void si_scribble(kt_vm *sym_src, kt_vm *t, uint64_t seed, uint64_t n)
{
	si_set(sym_src, t, "cfg_seed", seed);
	si_set(sym_src, t, "cfg_pages", n);
	si_set(sym_src, t, "cfg_start", SI_AREA_START);
	si_set(sym_src, t, "cfg_len", SI_AREA_LEN);
	kt_run_expect(t, 0, 2);
}

static inline vmm_snapshot *si_take(vmm_vm *vm)
{
	vmm_snapshot *s = NULL;
	kt_check(vmm_snapshot_take(vm, NULL, &s), "vmm_snapshot_take");
	assert_non_null(s);
	return s;
}

static inline vmm_vm *si_clone(vmm_snapshot *s, const vmm_vm_opts *host)
{
	vmm_vm *vm = NULL;
	kt_check(vmm_snapshot_clone(s, host, &vm), "vmm_snapshot_clone");
	assert_non_null(vm);
	return vm;
}

static inline vmm_snapshot_reset_stats si_reset(vmm_snapshot *s, vmm_vm *vm)
{
	vmm_snapshot_reset_stats st = VMM_SNAPSHOT_RESET_STATS_INIT;
	kt_check(vmm_snapshot_reset(s, vm, &st), "vmm_snapshot_reset");
	return st;
}

#endif
