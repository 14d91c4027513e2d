/* Helpers shared by the snapshot KVM tests (test_snapshot_*.c): temporary files, save
 * and restore wrappers that fail the test on error, a kt_vm around a restored VM, state
 * capture through the library's own capture code, and a guest-memory hash. */
#ifndef TEST_SNAPSHOT_COMMON_H
#define TEST_SNAPSHOT_COMMON_H

#include "harness/harness.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/vm_internal.h"
#include "snapshot/snapshot_internal.h"

/* A scratch directory with a state and a memory file path. */
typedef struct st_files {
	char dir[64];
	char state[96];
	char mem[96];
} st_files;

static inline void st_files_init(st_files *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/libvmm-snap-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->state, sizeof f->state, "%s/state", f->dir);
	snprintf(f->mem, sizeof f->mem, "%s/mem", f->dir);
}

static inline void st_files_remove(st_files *f)
{
	unlink(f->state);
	unlink(f->mem);
	rmdir(f->dir);
}

static inline double st_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline void st_save(vmm_vm *vm, const st_files *f)
{
	vmm_snapshot_save_opts o = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	o.state_path = f->state;
	o.mem_path = f->mem;
	kt_check(vmm_snapshot_save(vm, &o), "vmm_snapshot_save");
}

static inline vmm_vm *st_restore(const st_files *f, vmm_snapshot_mem_mode mode)
{
	vmm_snapshot_restore_opts o = VMM_SNAPSHOT_RESTORE_OPTS_INIT;
	o.state_path = f->state;
	o.mem_path = f->mem;
	o.mem_mode = mode;
	vmm_vm *vm = NULL;
	kt_check(vmm_snapshot_restore(&vm, &o), "vmm_snapshot_restore");
	assert_non_null(vm);
	return vm;
}

/* A kt_vm around a VM the test did not build with kt_create (a restored one), so
 * kt_run / kt_run_expect / kt_read work on it. Destroy with kt_destroy. */
static inline kt_vm *st_wrap(vmm_vm *vm, unsigned cpl)
{
	kt_vm *t = calloc(1, sizeof *t);
	assert_non_null(t);
	pthread_mutex_init(&t->console_lock, NULL);
	t->vm = vm;
	t->mem = vmm_vm_mem(vm);
	t->bus = vmm_vm_bus(vm);
	t->irq = vmm_vm_irq(vm);
	t->cpl = cpl;
	size_t n = vmm_vm_vcpu_count(vm);
	assert_true(n <= KT_MAX_VCPUS);
	for (size_t i = 0; i < n; i++)
		assert_non_null(t->vcpu[i] = vmm_vm_get_vcpu(vm, i));
	t->nvcpus = (unsigned)n;
	return t;
}

/* The VM's state as a save would record it (the library's own capture). */
static inline struct snap_desc *st_capture(vmm_vm *vm)
{
	struct snap_desc *d = NULL;
	struct snap_claim c;
	int r = snap_claim_vcpus(vm, &c);
	if (r == 0) {
		r = snap_capture(vm, &c, SNAP_MEM_FILE, &d);
		snap_release_vcpus(&c);
	}
	kt_check(r, "capture");
	return d;
}

/* The description in a state file. */
static inline struct snap_desc *st_parse_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	struct snap_desc *d = NULL;
	kt_check(snap_parse(buf, (size_t)st.st_size, &d), "snap_parse");
	free(buf);
	return d;
}

#define MSR_IA32_TSC 0x10u

/* Asserts that `got` (captured from a VM) equals the saved description `want`, except
 * for what moves with wall-clock time: the TSC and the kvmclock may only have advanced,
 * by less than `max_s` seconds. */
static inline void st_compare(const struct snap_desc *want, const struct snap_desc *got, unsigned max_s)
{
	assert_int_equal(got->nr_vcpus, want->nr_vcpus);
	assert_int_equal(got->irqchip, want->irqchip);
	assert_int_equal(got->nr_regions, want->nr_regions);
	for (uint32_t i = 0; i < want->nr_regions; i++) {
		assert_int_equal(got->regions[i].gpa, want->regions[i].gpa);
		assert_int_equal(got->regions[i].len, want->regions[i].len);
		assert_int_equal(got->regions[i].flags, want->regions[i].flags);
	}
	for (uint32_t i = 0; i < want->nr_vcpus; i++) {
		const struct snap_vcpu *a = &want->vcpus[i], *b = &got->vcpus[i];
		assert_int_equal(b->id, a->id);
		assert_int_equal(b->mp_state, a->mp_state);
		assert_memory_equal(&b->regs, &a->regs, sizeof a->regs);
		assert_memory_equal(&b->sregs, &a->sregs, sizeof a->sregs);
		assert_int_equal(b->have, a->have);
		if (a->have & SNAP_HAVE_XSAVE) {
			assert_int_equal(b->xsave_len, a->xsave_len);
			assert_memory_equal(b->xsave, a->xsave, a->xsave_len);
		} else {
			assert_memory_equal(&b->fpu, &a->fpu, sizeof a->fpu);
		}
		if (a->have & SNAP_HAVE_XCRS)
			assert_memory_equal(&b->xcrs, &a->xcrs, sizeof a->xcrs);
		if (a->have & SNAP_HAVE_LAPIC)
			assert_memory_equal(&b->lapic, &a->lapic, sizeof a->lapic);
		assert_memory_equal(&b->events, &a->events, sizeof a->events);
		assert_memory_equal(&b->debugregs, &a->debugregs, sizeof a->debugregs);
		assert_int_equal(b->nr_cpuid, a->nr_cpuid);
		assert_memory_equal(b->cpuid, a->cpuid, a->nr_cpuid * sizeof a->cpuid[0]);
		assert_int_equal(b->nr_msrs, a->nr_msrs);
		assert_true(a->nr_msrs > 0);
		for (uint32_t k = 0; k < a->nr_msrs; k++) {
			assert_int_equal(b->msrs[k].index, a->msrs[k].index);
			if (a->msrs[k].index == MSR_IA32_TSC) {
				uint64_t d = b->msrs[k].value - a->msrs[k].value;
				assert_true(b->msrs[k].value >= a->msrs[k].value);
				assert_true(d < (uint64_t)max_s * a->tsc_khz * 1000);
				continue;
			}
			if (b->msrs[k].value != a->msrs[k].value)
				fail_msg("vCPU %u MSR %#x: saved %#" PRIx64 ", now %#" PRIx64, i, a->msrs[k].index,
					 a->msrs[k].value, b->msrs[k].value);
		}
	}
	assert_int_equal(got->have & (SNAP_HAVE_IRQCHIP | SNAP_HAVE_PIT | SNAP_HAVE_CLOCK),
			 want->have & (SNAP_HAVE_IRQCHIP | SNAP_HAVE_PIT | SNAP_HAVE_CLOCK));
	if (want->have & SNAP_HAVE_IRQCHIP) {
		assert_memory_equal(&got->pic, &want->pic, sizeof want->pic);
		assert_memory_equal(&got->ioapic, &want->ioapic, sizeof want->ioapic);
	}
	if (want->have & SNAP_HAVE_PIT) {
		assert_int_equal(got->pit.flags, want->pit.flags);
		for (int c = 0; c < 3; c++) {
			struct kvm_pit_channel_state x = want->pit.channels[c], y = got->pit.channels[c];
			x.count_load_time = y.count_load_time = 0; /* host time of the last load */
			assert_memory_equal(&y, &x, sizeof x);
		}
	}
	if (want->have & SNAP_HAVE_CLOCK) {
		assert_true(got->clock >= want->clock);
		assert_true(got->clock - want->clock < (uint64_t)max_s * 1000000000ull);
	}
}

/* FNV-1a over every region's bytes (8 at a time), with the region layout mixed in. */
static inline uint64_t st_mem_hash(vmm_vm *vm)
{
	vmm_mem *mem = vmm_vm_mem(vm);
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < vmm_mem_region_count(mem); i++) {
		vmm_mem_region_info info;
		kt_check(vmm_mem_get_region(mem, i, &info), "vmm_mem_get_region");
		h = (h ^ info.gpa) * 0x100000001b3ull;
		h = (h ^ info.len) * 0x100000001b3ull;
		const uint64_t *p = info.host;
		for (uint64_t k = 0; k < info.len / 8; k++)
			h = (h ^ p[k]) * 0x100000001b3ull;
	}
	return h;
}

/* What the snap_count guest's hash is after `n` iterations. */
static inline uint64_t st_count_hash(uint64_t n)
{
	uint64_t h = 0;
	for (uint64_t c = 1; c <= n; c++)
		h = (h ^ c) * 0x100000001b3ull;
	return h;
}

/* Runs vCPU `cpu` of a snap_count guest until the watchdog stops it between two reports,
 * checking each report it makes on the way (last + 1, last + 2, ...), and returns the
 * last report seen. A 3 ms watchdog nearly always stops it before its next report (one
 * takes 70 ms or more), but on a shared host the watchdog thread can be held off far
 * longer: CI once saw 17 reports in a row. So this keeps trying for up to 60 s. After
 * it, the vCPU's counter is in [last * every, (last + 1) * every], both ends included:
 * a kick can land before the first iteration of a run or between the store of
 * (last + 1) * every and the report's OUT. Either way the next report is last + 1. */
static inline uint32_t st_run_until_kicked(kt_vm *t, unsigned cpu, uint32_t last)
{
	double deadline = st_now_us() + 60e6;
	while (st_now_us() < deadline) {
		vmm_exit e;
		int r = kt_run(t, cpu, &e, 3);
		if (r == -ETIMEDOUT)
			return last;
		if (r != 0 || e.reason != VMM_EXIT_GUEST || e.u.guest.code != last + 1) {
			char buf[256];
			fail_msg("vCPU %u after report %u: r=%d, %s (expected report %u)", cpu, last, r,
				 kt_exit_str(&e, buf, sizeof buf), last + 1);
		}
		last++;
	}
	fail_msg("vCPU %u was never stopped between two reports in 60 s (last report %u)", cpu, last);
	return 0;
}

/* Fails unless snap_count's counter `c` is where st_run_until_kicked can leave it. */
static inline void st_assert_mid_count(uint64_t c, uint32_t last, uint64_t every)
{
	if (c < (uint64_t)last * every || c > (uint64_t)(last + 1) * every)
		fail_msg("stopped at count %llu after report %u of every %llu", (unsigned long long)c,
			 last, (unsigned long long)every);
}

#endif
