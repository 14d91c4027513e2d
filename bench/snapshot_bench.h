/* bench_snapshot: snapshots, clones, resets and sandbox calls against their baselines
 * (see bench_snapshot.c). Shared by bench_snapshot.c and the snapshot_*.c parts. */
#ifndef BENCH_SNAPSHOT_H
#define BENCH_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvmm/libvmm.h>

#include "stats.h"

/* Guest layout of the "dirty" VM: libvmm's system area at GPA 0 - 0x20000, the code page
 * at 0x20000, the pages the guest dirties from SNAP_DIRTY_BASE up to the end of RAM.
 * Everything above the code page is filled with non-zero bytes before the snapshot. */
#define SNAP_CODE_GPA 0x20000ull
#define SNAP_FILL_FROM 0x21000ull
#define SNAP_DIRTY_BASE (2ull << 20)
#define SNAP_STACK 0x80000ull
#define SNAP_FILL_BYTE 0x5a

struct bench_params {
	bool quick;
	const char *dir;       /* snapshot files */
	uint64_t big;          /* the large guest size (1 GiB; --quick: 128 MiB) */
	uint64_t small;        /* 64 MiB */
	unsigned reset_samples;  /* per side, per size and page count */
	unsigned call_samples;   /* per side */
	unsigned calls_per_sample;
	unsigned clones;
	unsigned restore_samples;      /* lazy, per size */
	unsigned restore_eager_small;  /* eager 64 MiB */
	unsigned restore_eager_big;    /* eager 1 GiB */
	unsigned save_samples_small;
	unsigned save_samples_big;
	uint32_t dirty_ring;   /* dirty ring entries of the dirty VMs (0 = bitmap) */
	vmm_irqchip_mode irqchip;
	bool no_pit;           /* VMM_VM_NO_PIT for those VMs */
	unsigned parts;        /* bit n: run part n (1-5); part 4 needs part 5's files */
};

#define PART(n) (1u << (n))

/* A VM whose vCPU, at CPL 3, each time it runs after set_dirty, stores to `n` pages
 * spread over guest memory and then writes the exit port; the snapshot point is the
 * instruction after its first exit ("ready"), where it runs straight to the exit port
 * without touching memory. */
struct dirty_vm {
	vmm_vm *vm;
	vmm_vcpu *vcpu;
	uint64_t size;
};

/* Creates the VM (size bytes of RAM at GPA 0), fills RAM with non-zero bytes, and runs
 * it to "ready". Prints why and returns -1 on failure (vm destroyed). */
int dirty_vm_create(struct dirty_vm *d, uint64_t size, const struct bench_params *p);
void dirty_vm_destroy(struct dirty_vm *d);
/* The guest's loop parameters for `n` pages spread over `size` bytes. */
uint64_t dirty_stride(uint64_t size, uint32_t n);
/* Sets the registers of a vCPU at "ready" so that the next run dirties n pages, runs it
 * and checks that it ended at the exit port. Returns 0 or -1 (printed). */
int dirty_run(vmm_vcpu *vcpu, uint64_t size, uint32_t n);

/* The native baseline: `size` bytes of private anonymous memory, all touched; in
 * transparent huge pages with `thp` (MADV_HUGEPAGE: a fork then copies one entry per
 * 2 MiB instead of one per 4 KiB page), else in whatever the system's THP mode gives an
 * ordinary heap (4 KiB pages under the common "madvise" mode). */
struct native_mem {
	uint8_t *p;
	uint64_t size;
};

int native_create(struct native_mem *m, uint64_t size, bool thp);
void native_destroy(struct native_mem *m);
/* MADV_DONTFORK (or back to MADV_DOFORK): keeps one baseline's memory out of the other
 * baseline's forks, so each fork copies the memory it stands for and nothing more. */
int native_dontfork(const struct native_mem *m, bool dontfork);
/* The same for every memory region of a VM (the library's mappings; a fork child
 * never touches them). */
int vm_dontfork(vmm_vm *vm);
/* fork(); the child stores to the same n pages as dirty_run and _exits; waitpid. Returns
 * the time of the whole round trip in ns, or a negative value on failure (printed). */
double native_fork_dirty(const struct native_mem *m, uint32_t n);
/* fork() alone, as the parent sees it (the child _exits at once and is reaped after the
 * timing). Returns ns or a negative value. */
double native_fork_only(const struct native_mem *m);

/* Resident memory of this process from /proc/self/smaps_rollup, in KiB. */
struct rss {
	uint64_t rss, pss, anon;
};
int read_rss(struct rss *out);

int lib_fail(const char *what, int err);

/* Prints "<name> lib=<v><unit> base=<v><unit> ratio=<r>" from the medians (samples in
 * `unit`s), and a '#' line saying what the sides are and how far the pairwise ratios
 * (sample i of one side over sample i of the other, taken next to each other) spread. */
void print_pair(const char *name, const struct bench_series *lib, const struct bench_series *base,
		const char *unit, const char *what);

/* The parts; each prints its lines and returns 0, or -1 after printing why. */
int bench_reset_and_save(const struct bench_params *p);   /* parts 1 and 5 */
int bench_calls(const struct bench_params *p);            /* part 2 */
int bench_clones(const struct bench_params *p);           /* part 3 */
int bench_restore(const struct bench_params *p);          /* part 4 (needs part 5's files) */

/* The snapshot files of part 5, for part 4: "<dir>/bench_snapshot_<size>.{state,mem}". */
void snap_file_paths(const struct bench_params *p, uint64_t size, char *state, char *mem, size_t cap);
/* "64m", "1g", ... */
const char *size_name(uint64_t size, char *buf, size_t cap);

#endif
