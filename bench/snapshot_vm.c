/* bench_snapshot's building blocks: the "dirty" guest (a CPL-3 loop that stores to n
 * pages spread over its RAM), the native process baseline (the same memory, the same
 * stores, after a fork), RSS readings and the output helpers. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapshot_bench.h"

int lib_fail(const char *what, int err)
{
	fprintf(stderr, "bench_snapshot: %s: %s (%s)\n", what, vmm_strerror(err), vmm_last_error());
	return -1;
}

#define CHECK(call)                                   \
	do {                                          \
		int r_ = (call);                      \
		if (r_ < 0)                           \
			return lib_fail(#call, r_);   \
	} while (0)

/* The guest, at SNAP_CODE_GPA (registers: rdi = pages, rbx = first address, rsi =
 * stride, rax = the value stored, also the exit code's low byte):
 *    0: e6 f4        ready: out 0xf4, al      <- first exit; the snapshot point follows
 *    2: 48 85 ff     test rdi, rdi
 *    5: 74 0b        jz done                  (rdi = 0: straight to the exit port)
 *    7: 48 89 03     loop: mov [rbx], rax
 *   10: 48 01 f3     add rbx, rsi
 *   13: 48 ff cf     dec rdi
 *   16: 75 f5        jnz loop
 *   18: e6 f4        done: out 0xf4, al
 *   20: eb ea        jmp ready
 * No stack, no interrupts: the only memory it writes is the n pages (and the accessed/
 * dirty bits the CPU sets in the page tables). */
static const uint8_t dirty_code[] = {
	0xe6, 0xf4, 0x48, 0x85, 0xff, 0x74, 0x0b, 0x48, 0x89, 0x03, 0x48, 0x01,
	0xf3, 0x48, 0xff, 0xcf, 0x75, 0xf5, 0xe6, 0xf4, 0xeb, 0xea,
};

#define DIRTY_VALUE 0x1122334455667788ull

uint64_t dirty_stride(uint64_t size, uint32_t n)
{
	uint64_t stride = n ? (size - SNAP_DIRTY_BASE) / n / 4096 * 4096 : 4096;
	return stride ? stride : 4096;
}

static int expect_exit(const vmm_exit *e)
{
	if (e->reason == VMM_EXIT_GUEST)
		return 0;
	fprintf(stderr, "bench_snapshot: unexpected exit: reason %d (fault vector %u at %#" PRIx64 ", cr2 %#" PRIx64 ")\n",
		(int)e->reason, e->u.fault.vector, e->u.fault.rip, e->u.fault.cr2);
	return -1;
}

int dirty_run(vmm_vcpu *vcpu, uint64_t size, uint32_t n)
{
	vmm_regs regs;
	CHECK(vmm_vcpu_get_regs(vcpu, &regs));
	regs.rdi = n;
	regs.rbx = SNAP_DIRTY_BASE;
	regs.rsi = dirty_stride(size, n);
	regs.rax = DIRTY_VALUE;
	CHECK(vmm_vcpu_set_regs(vcpu, &regs));
	vmm_exit e;
	CHECK(vmm_vcpu_run(vcpu, &e));
	return expect_exit(&e);
}

static int dirty_setup(struct dirty_vm *d, uint64_t size, const struct bench_params *p)
{
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	vo.irqchip = p->irqchip;
	vo.flags = p->no_pit ? VMM_VM_NO_PIT : 0;
	vo.dirty_ring_entries = p->dirty_ring;
	CHECK(vmm_vm_create(&d->vm, &vo));
	vmm_mem *mem = vmm_vm_mem(d->vm);
	vmm_mem_region_opts mo = VMM_MEM_REGION_OPTS_INIT;
	mo.len = size;
	mo.name = "bench-ram";
	CHECK(vmm_mem_add_region(mem, &mo));
	vmm_mem_region_info info;
	CHECK(vmm_mem_get_region(mem, 0, &info));
	/* Every page the guest can own holds data (the system area stays as the library
	 * writes it). Written through the mapping before the snapshot: nothing to track. */
	memset((uint8_t *)info.host + SNAP_FILL_FROM, SNAP_FILL_BYTE, size - SNAP_FILL_FROM);
	CHECK(vmm_mem_write(mem, SNAP_CODE_GPA, dirty_code, sizeof dirty_code));
	CHECK(vmm_vcpu_create(&d->vcpu, d->vm, NULL));
	vmm_long_mode_opts lo = VMM_LONG_MODE_OPTS_INIT;
	lo.cpl = 3;
	lo.entry = SNAP_CODE_GPA;
	lo.stack = SNAP_STACK;
	lo.identity_map = size;
	CHECK(vmm_vcpu_setup_long_mode(d->vcpu, &lo));
	vmm_regs regs;
	CHECK(vmm_vcpu_get_regs(d->vcpu, &regs));
	regs.rdi = 0;
	regs.rbx = SNAP_DIRTY_BASE;
	regs.rsi = 4096;
	regs.rax = DIRTY_VALUE;
	CHECK(vmm_vcpu_set_regs(d->vcpu, &regs));
	vmm_exit e;
	CHECK(vmm_vcpu_run(d->vcpu, &e));
	return expect_exit(&e);
}

int dirty_vm_create(struct dirty_vm *d, uint64_t size, const struct bench_params *p)
{
	*d = (struct dirty_vm){ .size = size };
	if (dirty_setup(d, size, p)) {
		dirty_vm_destroy(d);
		return -1;
	}
	return 0;
}

void dirty_vm_destroy(struct dirty_vm *d)
{
	vmm_vm_destroy(d->vm);
	d->vm = NULL;
	d->vcpu = NULL;
}

int native_create(struct native_mem *m, uint64_t size, bool thp)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("bench_snapshot: mmap");
		return -1;
	}
	if (thp && madvise(p, size, MADV_HUGEPAGE))
		perror("bench_snapshot: madvise(MADV_HUGEPAGE)"); /* the figure then says so */
	memset(p, SNAP_FILL_BYTE, size);
	m->p = p;
	m->size = size;
	return 0;
}

void native_destroy(struct native_mem *m)
{
	if (m->p)
		munmap(m->p, m->size);
	m->p = NULL;
}

int native_dontfork(const struct native_mem *m, bool dontfork)
{
	if (madvise(m->p, m->size, dontfork ? MADV_DONTFORK : MADV_DOFORK) == 0)
		return 0;
	perror("bench_snapshot: madvise(MADV_DONTFORK/DOFORK)");
	return -1;
}

int vm_dontfork(vmm_vm *vm)
{
	vmm_mem *mem = vmm_vm_mem(vm);
	for (size_t i = 0; i < vmm_mem_region_count(mem); i++) {
		vmm_mem_region_info info;
		CHECK(vmm_mem_get_region(mem, i, &info));
		if (madvise(info.host, info.len, MADV_DONTFORK)) {
			perror("bench_snapshot: madvise(MADV_DONTFORK) of guest memory");
			return -1;
		}
	}
	return 0;
}

static double reap(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("bench_snapshot: waitpid");
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench_snapshot: the forked child failed (status %#x)\n", status);
		return -1;
	}
	return 0;
}

double native_fork_dirty(const struct native_mem *m, uint32_t n)
{
	uint64_t stride = dirty_stride(m->size, n);
	double t0 = bench_now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		volatile uint64_t *q;
		for (uint32_t i = 0; i < n; i++) {
			q = (volatile uint64_t *)(m->p + SNAP_DIRTY_BASE + i * stride);
			*q = DIRTY_VALUE;
		}
		_exit(0);
	}
	if (pid < 0) {
		perror("bench_snapshot: fork");
		return -1;
	}
	if (reap(pid))
		return -1;
	return bench_now_ns() - t0;
}

double native_fork_only(const struct native_mem *m)
{
	(void)m; /* it is this process's memory that the fork copies */
	double t0 = bench_now_ns();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	double t = bench_now_ns() - t0;
	if (pid < 0) {
		perror("bench_snapshot: fork");
		return -1;
	}
	return reap(pid) ? -1 : t;
}

int read_rss(struct rss *out)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	if (!f) {
		perror("bench_snapshot: /proc/self/smaps_rollup");
		return -1;
	}
	char line[256];
	*out = (struct rss){ 0 };
	while (fgets(line, sizeof line, f)) {
		unsigned long long v;
		if (sscanf(line, "Rss: %llu kB", &v) == 1)
			out->rss = v;
		else if (sscanf(line, "Pss: %llu kB", &v) == 1)
			out->pss = v;
		else if (sscanf(line, "Anonymous: %llu kB", &v) == 1)
			out->anon = v;
	}
	fclose(f);
	return 0;
}

void print_pair(const char *name, const struct bench_series *lib, const struct bench_series *base,
		const char *unit, const char *what)
{
	double l = bench_median(lib), b = bench_median(base);
	printf("%s lib=%.2f%s base=%.2f%s ratio=%.3f\n", name, l, unit, b, unit, b > 0 ? l / b : 0.0);
	double p10, p50, p90;
	bench_pair_ratios(lib, base, &p10, &p50, &p90);
	printf("# %s: %s; pairwise ratio median %.3f, 10th-90th percentile %.3f .. %.3f, %zu pairs\n", name, what,
	       p50, p10, p90, lib->n < base->n ? lib->n : base->n);
}

const char *size_name(uint64_t size, char *buf, size_t cap)
{
	if (size >= (1ull << 30) && size % (1ull << 30) == 0)
		snprintf(buf, cap, "%" PRIu64 "g", size >> 30);
	else
		snprintf(buf, cap, "%" PRIu64 "m", size >> 20);
	return buf;
}

void snap_file_paths(const struct bench_params *p, uint64_t size, char *state, char *mem, size_t cap)
{
	char n[32];
	size_name(size, n, sizeof n);
	snprintf(state, cap, "%s/bench_snapshot_%d_%s.state", p->dir, (int)getpid(), n);
	snprintf(mem, cap, "%s/bench_snapshot_%d_%s.mem", p->dir, (int)getpid(), n);
}
