/* Parts 1 and 5 of bench_snapshot, per guest size on one VM:
 *  - reset: the guest dirties n pages, vmm_snapshot_reset alone is timed; against
 *    fork() + the child storing to the same n pages of the same touched memory + _exit +
 *    waitpid (what a process-based fuzzer pays per input);
 *  - save: vmm_snapshot_save to files, against writing the guest's memory to a file
 *    with plain write() calls (the least any save must do); and the files' sizes. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot_bench.h"

static const uint32_t dirty_pages[] = { 1, 16, 256, 4096 };
#define NR_COUNTS (sizeof dirty_pages / sizeof dirty_pages[0])

struct reset_fig {
	struct bench_series lib, base, base_thp, pages, mem_us, vcpu_us;
};

static void reset_fig_free(struct reset_fig *f)
{
	bench_series_free(&f->lib);
	bench_series_free(&f->base);
	bench_series_free(&f->base_thp);
	bench_series_free(&f->pages);
	bench_series_free(&f->mem_us);
	bench_series_free(&f->vcpu_us);
}

static int reset_sample(struct dirty_vm *d, vmm_snapshot *snap, uint32_t n, struct reset_fig *f)
{
	if (dirty_run(d->vcpu, d->size, n))
		return -1;
	vmm_snapshot_reset_stats st = VMM_SNAPSHOT_RESET_STATS_INIT;
	double t0 = bench_now_ns();
	int r = vmm_snapshot_reset(snap, d->vm, &st);
	double t = bench_now_ns() - t0;
	if (r)
		return lib_fail("vmm_snapshot_reset", r);
	if (st.pages_copied < n) {
		fprintf(stderr, "bench_snapshot: reset copied %" PRIu64 " pages, the guest dirtied %u\n",
			st.pages_copied, n);
		return -1;
	}
	if (f) {
		bench_push(&f->lib, t / 1e3);
		bench_push(&f->pages, (double)st.pages_copied);
		bench_push(&f->mem_us, (double)st.ns_memory / 1e3);
		bench_push(&f->vcpu_us, (double)st.ns_vcpus / 1e3);
	}
	return 0;
}

/* Forks with `m` as the only baseline memory the child inherits (`other` is left out). */
static int fork_sample(const struct native_mem *m, const struct native_mem *other, uint32_t n,
		       struct bench_series *s)
{
	if (native_dontfork(other, true) || native_dontfork(m, false))
		return -1;
	double t = native_fork_dirty(m, n);
	if (t < 0)
		return -1;
	if (s)
		bench_push(s, t / 1e3);
	return 0;
}

/* m: the baseline's memory as an ordinary heap gets it; thp: the same in huge pages (a
 * second, cheaper baseline, printed as a comment). The three sides take turns. */
static int reset_figures(const struct bench_params *p, struct dirty_vm *d, vmm_snapshot *snap,
			 const struct native_mem *m, const struct native_mem *thp)
{
	char sz[32];
	size_name(d->size, sz, sizeof sz);
	/* Warm-up, not recorded: the first dirtying faults pages into KVM's MMU. */
	for (int i = 0; i < 2; i++)
		if (reset_sample(d, snap, 16, NULL) || fork_sample(m, thp, 16, NULL) || fork_sample(thp, m, 16, NULL))
			return -1;
	for (size_t c = 0; c < NR_COUNTS; c++) {
		uint32_t n = dirty_pages[c];
		struct reset_fig f = { 0 };
		int r = 0;
		for (unsigned s = 0; s < p->reset_samples && !r; s++) {
			for (unsigned k = 0; k < 3 && !r; k++) {
				unsigned side = (s + k) % 3;
				r = side == 0 ? reset_sample(d, snap, n, &f)
				    : side == 1 ? fork_sample(m, thp, n, &f.base) : fork_sample(thp, m, n, &f.base_thp);
			}
		}
		if (!r) {
			char name[64], what[256];
			snprintf(name, sizeof name, "reset_%s_%up", sz, n);
			snprintf(what, sizeof what, "lib = vmm_snapshot_reset after the guest dirtied %u pages, base = "
				 "fork + child stores to %u pages + exit + waitpid, ratio = lib/base (< 1: reset is faster)",
				 n, n);
			print_pair(name, &f.lib, &f.base, "us", what);
			printf("%s_pages value=%.0fpages\n", name, bench_median(&f.pages));
			printf("# %s: reset medians: %.1f us collecting the dirty log and copying pages, %.1f us loading "
			       "vCPU and VM state; fork is %.2fx the reset\n", name, bench_median(&f.mem_us),
			       bench_median(&f.vcpu_us), bench_median(&f.base) / bench_median(&f.lib));
			printf("# %s: fork with the memory in transparent huge pages (MADV_HUGEPAGE) instead: %.2f us, "
			       "%.2fx the reset\n", name, bench_median(&f.base_thp),
			       bench_median(&f.base_thp) / bench_median(&f.lib));
		}
		reset_fig_free(&f);
		if (r)
			return -1;
	}
	return 0;
}

/* The baseline of a save: the guest memory written to a file, one write() per 1 MiB. */
static double dump_memory(const char *path, const uint8_t *p, uint64_t size)
{
	double t0 = bench_now_ns();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		return -1;
	}
	for (uint64_t off = 0; off < size;) {
		size_t len = size - off < (1u << 20) ? (size_t)(size - off) : (1u << 20);
		ssize_t w = write(fd, p + off, len);
		if (w <= 0) {
			perror(path);
			close(fd);
			return -1;
		}
		off += (uint64_t)w;
	}
	close(fd);
	return bench_now_ns() - t0;
}

static int save_figures(const struct bench_params *p, struct dirty_vm *d)
{
	char sz[32], state[4096], mem[4096], dump[4200];
	size_name(d->size, sz, sizeof sz);
	snap_file_paths(p, d->size, state, mem, sizeof state);
	snprintf(dump, sizeof dump, "%s.dump", mem);
	vmm_mem_region_info info;
	int r = vmm_mem_get_region(vmm_vm_mem(d->vm), 0, &info);
	if (r)
		return lib_fail("vmm_mem_get_region", r);
	unsigned samples = d->size > p->small ? p->save_samples_big : p->save_samples_small;
	struct bench_series lib = { 0 }, base = { 0 };
	for (unsigned s = 0; s < samples && !r; s++) {
		for (int k = 0; k < 2 && !r; k++) {
			if ((s + (unsigned)k) % 2 == 0) {
				vmm_snapshot_save_opts so = VMM_SNAPSHOT_SAVE_OPTS_INIT;
				so.state_path = state;
				so.mem_path = mem;
				double t0 = bench_now_ns();
				int e = vmm_snapshot_save(d->vm, &so);
				double t = bench_now_ns() - t0;
				if (e)
					r = lib_fail("vmm_snapshot_save", e);
				else
					bench_push(&lib, t / 1e6);
			} else {
				double t = dump_memory(dump, info.host, d->size);
				if (t < 0)
					r = -1;
				else
					bench_push(&base, t / 1e6);
			}
		}
	}
	unlink(dump);
	struct stat st_state, st_mem;
	if (!r && (stat(state, &st_state) || stat(mem, &st_mem))) {
		perror("bench_snapshot: stat of the snapshot files");
		r = -1;
	}
	if (!r) {
		char name[64], what[256];
		snprintf(name, sizeof name, "save_%s", sz);
		snprintf(what, sizeof what, "lib = vmm_snapshot_save to %s (state + sparse memory file, no fsync), "
			 "base = the guest memory written to one file with write(), ratio = lib/base", p->dir);
		print_pair(name, &lib, &base, "ms", what);
		printf("%s_state_file value=%.1fKiB\n", name, (double)st_state.st_size / 1024);
		printf("%s_mem_file value=%.1fMiB\n", name, (double)st_mem.st_size / 1048576);
		printf("%s_mem_file_alloc value=%.1fMiB\n", name, (double)st_mem.st_blocks * 512 / 1048576);
	}
	bench_series_free(&lib);
	bench_series_free(&base);
	return r;
}

static int one_size(const struct bench_params *p, uint64_t size)
{
	struct dirty_vm d;
	if (dirty_vm_create(&d, size, p))
		return -1;
	int r = 0;
	if (p->parts & PART(1)) {
		struct native_mem m = { 0 }, thp = { 0 };
		vmm_snapshot *snap = NULL;
		r = native_create(&m, size, false) || native_create(&thp, size, true);
		double t0 = bench_now_ns();
		if (!r && (r = vmm_snapshot_take(d.vm, NULL, &snap)))
			r = lib_fail("vmm_snapshot_take", r);
		if (!r) {
			char sz[32];
			printf("# %s guest: vmm_snapshot_take %.1f ms (copies the guest's %" PRIu64 " MiB once)\n",
			       size_name(size, sz, sizeof sz), (bench_now_ns() - t0) / 1e6, size >> 20);
			r = reset_figures(p, &d, snap, &m, &thp);
		}
		native_destroy(&m);
		native_destroy(&thp);
		vmm_snapshot_free(snap);
	}
	/* The VM is at the snapshot point (the last sample ended with a reset): its memory
	 * and state are the snapshot's, which the save writes for part 4. */
	if (!r && (p->parts & (PART(4) | PART(5))))
		r = save_figures(p, &d);
	dirty_vm_destroy(&d);
	return r;
}

int bench_reset_and_save(const struct bench_params *p)
{
	if (!(p->parts & (PART(1) | PART(4) | PART(5))))
		return 0;
	if (one_size(p, p->small) || one_size(p, p->big))
		return -1;
	return 0;
}
