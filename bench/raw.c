/* The baseline: the benchmark's scenarios with KVM ioctls written inline, no library.
 * This is what a hand-written VMM does at minimum, so it is the physical limit libvmm
 * can approach. It does the same work as the library where the result must be the same
 * (64 MiB slot, CPUID from KVM_GET_SUPPORTED_CPUID, long mode with an all-allowing TSS
 * I/O bitmap, which nested-PVM hosts check at CPL 3 instead of RFLAGS.IOPL), and nothing
 * more: no capability checks, no bookkeeping, no error messages. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

/* System tables in guest RAM (inside what libvmm calls its system area). */
enum {
	RAW_GDT = 0x1000,
	RAW_IDT = 0x2000,
	RAW_PML4 = 0x3000,
	RAW_PDPT = 0x4000,
	RAW_PD = 0x5000,      /* one page directory: 1 GiB in 2 MiB pages */
	RAW_TSS = 0x6000,     /* 0x68-byte TSS, 8 KiB I/O bitmap, trailing 0xff */
	RAW_KSTACK = 0x10000, /* RSP0 */
	TSS_SIZE = 0x68,
	IOBITMAP = 65536 / 8 + 1,
};

struct raw_vm {
	int kvm, vm, vcpu;
	uint8_t *mem;
	struct kvm_run *run;
	size_t run_size;
};

static int fail(const char *what)
{
	fprintf(stderr, "bench raw: %s: %s\n", what, strerror(errno));
	return -1;
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static void raw_close(struct raw_vm *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->mem)
		munmap(v->mem, GUEST_MEM_SIZE);
	if (v->vcpu >= 0)
		close(v->vcpu);
	if (v->vm >= 0)
		close(v->vm);
	if (v->kvm >= 0)
		close(v->kvm);
}

/* VM (with the in-kernel irqchip if asked), 64 MiB of RAM at GPA 0, vCPU 0 with the
 * supported CPUID. RAM goes in before the irqchip: the first memory slot added after
 * KVM_CREATE_IRQCHIP costs milliseconds here, so a careful hand-written VMM (and
 * libvmm) orders it this way. */
static int raw_open(struct raw_vm *v, int irqchip)
{
	*v = (struct raw_vm){ .kvm = -1, .vm = -1, .vcpu = -1 };
	if ((v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		return fail("/dev/kvm");
	if ((v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0)) < 0)
		return fail("KVM_CREATE_VM");
	void *mem = mmap(NULL, GUEST_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap guest RAM");
	v->mem = mem;
	struct kvm_userspace_memory_region r = { .slot = 0, .memory_size = GUEST_MEM_SIZE,
						 .userspace_addr = (uint64_t)(uintptr_t)mem };
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	if (irqchip && ioctl(v->vm, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail("KVM_CREATE_IRQCHIP");
	if ((v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0)) < 0)
		return fail("KVM_CREATE_VCPU");
	int size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	void *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");
	v->run = run;
	v->run_size = (size_t)size;
	/* A kvm_cpuid2 with room for 256 entries (a union: clang rejects a struct with a
	 * flexible-array struct in front of more members). */
	union {
		struct kvm_cpuid2 c;
		uint8_t room[sizeof(struct kvm_cpuid2) + 256 * sizeof(struct kvm_cpuid_entry2)];
	} cpuid = { .c.nent = 256 };
	if (ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, &cpuid.c) < 0)
		return fail("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(v->vcpu, KVM_SET_CPUID2, &cpuid.c) < 0)
		return fail("KVM_SET_CPUID2");
	return 0;
}

static struct kvm_segment seg(uint16_t sel, int code)
{
	return (struct kvm_segment){ .limit = 0xffffffff, .selector = sel, .type = code ? 11 : 3,
				     .present = 1, .dpl = sel & 3, .s = 1, .l = code, .db = !code,
				     .g = 1 };
}

/* 64-bit mode at `cpl`, RIP = GUEST_CODE_GPA, RSP = GUEST_STACK. */
static int raw_long_mode(struct raw_vm *v, unsigned cpl)
{
	uint8_t *m = v->mem;
	put64(m + RAW_PML4, RAW_PDPT | 7);
	put64(m + RAW_PDPT, RAW_PD | 7);
	for (uint64_t i = 0; i < 512; i++)  /* present, writable, user, 2 MiB */
		put64(m + RAW_PD + i * 8, i << 21 | 0x87);
	put64(m + RAW_GDT + 0x08, 0x00af9b000000ffffull); /* kernel code */
	put64(m + RAW_GDT + 0x10, 0x00cf93000000ffffull); /* kernel data */
	put64(m + RAW_GDT + 0x18, 0x00affb000000ffffull); /* user code */
	put64(m + RAW_GDT + 0x20, 0x00cff3000000ffffull); /* user data */
	uint64_t tss_limit = TSS_SIZE + IOBITMAP - 1;
	put64(m + RAW_GDT + 0x28, tss_limit | (uint64_t)RAW_TSS << 16 | 0x89ull << 40);
	put64(m + RAW_TSS + 4, RAW_KSTACK);                 /* RSP0 */
	m[RAW_TSS + 0x66] = TSS_SIZE;                       /* I/O bitmap right after the TSS */
	m[RAW_TSS + TSS_SIZE + IOBITMAP - 1] = 0xff;        /* bitmap itself: zero = allowed */

	struct kvm_sregs s;
	if (ioctl(v->vcpu, KVM_GET_SREGS, &s) < 0)
		return fail("KVM_GET_SREGS");
	s.cs = seg(cpl ? 0x1b : 0x08, 1);
	s.ds = s.es = s.fs = s.gs = s.ss = seg(cpl ? 0x23 : 0x10, 0);
	s.tr = (struct kvm_segment){ .base = RAW_TSS, .limit = (uint32_t)tss_limit, .selector = 0x28,
				     .type = 11, .present = 1 };
	s.gdt.base = RAW_GDT;
	s.gdt.limit = 0x38 - 1;
	s.idt.base = RAW_IDT;
	s.idt.limit = 256 * 16 - 1;
	s.cr3 = RAW_PML4;
	s.cr4 = 1 << 5 | 1 << 9 | 1 << 10;  /* PAE, OSFXSR, OSXMMEXCPT */
	s.cr0 = 0x80000033;                 /* PG, NE, ET, MP, PE */
	s.efer = 0x501;                     /* LMA, LME, SCE */
	if (ioctl(v->vcpu, KVM_SET_SREGS, &s) < 0)
		return fail("KVM_SET_SREGS");
	struct kvm_regs g = { .rip = GUEST_CODE_GPA, .rsp = GUEST_STACK,
			      .rflags = cpl ? 0x3002 : 0x2 };
	if (ioctl(v->vcpu, KVM_SET_REGS, &g) < 0)
		return fail("KVM_SET_REGS");
	return 0;
}

static int unexpected(const struct raw_vm *v)
{
	const struct kvm_run *r = v->run;
	if (r->exit_reason == KVM_EXIT_IO)
		fprintf(stderr, "bench raw: unexpected port I/O exit at port %#x\n", r->io.port);
	else if (r->exit_reason == KVM_EXIT_MMIO)
		fprintf(stderr, "bench raw: unexpected MMIO exit at %#llx\n", (unsigned long long)r->mmio.phys_addr);
	else
		fprintf(stderr, "bench raw: unexpected exit reason %u\n", r->exit_reason);
	return -1;
}

static int run(struct raw_vm *v)
{
	while (ioctl(v->vcpu, KVM_RUN, 0) < 0)
		if (errno != EINTR && errno != EAGAIN)
			return fail("KVM_RUN");
	return 0;
}

static int raw_create(bool platform, double *create_ns, double *destroy_ns)
{
	struct guest_code code;
	guest_first_out(&code);
	struct raw_vm v;
	double t0 = bench_now_ns();
	int r = raw_open(&v, platform);
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (!r && platform && ioctl(v.vm, KVM_CREATE_PIT2, &pit) < 0)
		r = fail("KVM_CREATE_PIT2");
	if (!r) {
		memcpy(v.mem + GUEST_CODE_GPA, code.bytes, code.len);
		r = raw_long_mode(&v, 0);
	}
	if (!r && !(r = run(&v)) &&
	    (v.run->exit_reason != KVM_EXIT_IO || v.run->io.port != GUEST_EXIT_PORT))
		r = unexpected(&v);
	double t1 = bench_now_ns();
	raw_close(&v);
	*create_ns = t1 - t0;
	*destroy_ns = bench_now_ns() - t1;
	return r;
}

/* A raw VM running one of the loops. */
struct raw_loop {
	struct raw_vm v;
	enum loop_kind kind;
	uint32_t chunk;
	uint64_t count;  /* the "device": exits seen on the loop's port or MMIO address */
	int efd;
};

static int raw_irqfd_setup(struct raw_vm *v, int *efd)
{
	struct guest_code main_code, handler;
	guest_irq_main(&main_code);
	guest_irq_handler(&handler);
	memcpy(v->mem + GUEST_CODE_GPA, main_code.bytes, main_code.len);
	memcpy(v->mem + GUEST_HANDLER_GPA, handler.bytes, handler.len);
	uint64_t h = GUEST_HANDLER_GPA;  /* ring-0 interrupt gate */
	put64(v->mem + RAW_IDT + GUEST_IRQ_VECTOR * 16,
	      (h & 0xffff) | 0x08ull << 16 | 0x8eull << 40 | (h >> 16 & 0xffff) << 48);
	put64(v->mem + RAW_IDT + GUEST_IRQ_VECTOR * 16 + 8, h >> 32);
	union {
		struct kvm_irq_routing r;
		uint8_t room[sizeof(struct kvm_irq_routing) + sizeof(struct kvm_irq_routing_entry)];
	} rt = { .r.nr = 1 };
	rt.r.entries[0] = (struct kvm_irq_routing_entry){ .gsi = GUEST_IRQ_GSI,
		.type = KVM_IRQ_ROUTING_MSI,
		.u.msi = { .address_lo = 0xfee00000, .data = GUEST_IRQ_VECTOR } };
	if (ioctl(v->vm, KVM_SET_GSI_ROUTING, &rt.r) < 0)
		return fail("KVM_SET_GSI_ROUTING");
	if ((*efd = eventfd(0, EFD_CLOEXEC)) < 0)
		return fail("eventfd");
	struct kvm_irqfd irqfd = { .fd = (uint32_t)*efd, .gsi = GUEST_IRQ_GSI };
	if (ioctl(v->vm, KVM_IRQFD, &irqfd) < 0)
		return fail("KVM_IRQFD");
	return 0;
}

/* Runs to the next exit-port write; returns the byte written, or -1. */
static int run_to_exit_port(struct raw_loop *l)
{
	struct kvm_run *k = l->v.run;
	for (;;) {
		if (run(&l->v))
			return -1;
		if (k->exit_reason == KVM_EXIT_IO && k->io.direction == KVM_EXIT_IO_OUT) {
			switch (k->io.port) {
			case GUEST_PIO_PORT:
				l->count++;
				continue;
			case GUEST_EXIT_PORT:
				return *((uint8_t *)k + k->io.data_offset);
			default:
				return unexpected(&l->v);
			}
		}
		if (k->exit_reason == KVM_EXIT_MMIO && k->mmio.is_write &&
		    k->mmio.phys_addr == GUEST_MMIO_GPA) {
			l->count++;
			continue;
		}
		return unexpected(&l->v);
	}
}

static void raw_loop_close(void *p)
{
	struct raw_loop *l = p;
	if (!l)
		return;
	if (l->efd >= 0)
		close(l->efd);
	raw_close(&l->v);
	free(l);
}

static void *raw_loop_open(enum loop_kind kind, unsigned cpl, uint32_t chunk)
{
	struct raw_loop *l = calloc(1, sizeof *l);
	if (!l) {
		fail("calloc");
		return NULL;
	}
	l->kind = kind;
	l->chunk = chunk;
	l->efd = -1;
	int r = raw_open(&l->v, kind == LOOP_IRQFD);
	if (!r)
		r = raw_long_mode(&l->v, kind == LOOP_IRQFD ? 0 : cpl);
	if (!r && kind == LOOP_IRQFD) {
		r = raw_irqfd_setup(&l->v, &l->efd);
		if (!r && run_to_exit_port(l) != 0)  /* x2APIC on, about to halt */
			r = -1;
	} else if (!r) {
		struct guest_code code;
		if (kind == LOOP_PIO)
			guest_pio_loop(&code, chunk);
		else
			guest_mmio_loop(&code, chunk);
		memcpy(l->v.mem + GUEST_CODE_GPA, code.bytes, code.len);
	}
	if (r) {
		raw_loop_close(l);
		return NULL;
	}
	return l;
}

static int raw_loop_chunk(void *p, double *ns)
{
	struct raw_loop *l = p;
	const uint64_t one = 1;
	double t0 = bench_now_ns();
	if (l->kind == LOOP_IRQFD) {
		for (uint32_t i = 0; i < l->chunk; i++) {
			if (write(l->efd, &one, sizeof one) != (ssize_t)sizeof one)
				return fail("eventfd write");
			if (run_to_exit_port(l) != 1)
				return -1;
		}
		*ns = bench_now_ns() - t0;
		return 0;
	}
	uint64_t before = l->count;
	if (run_to_exit_port(l) != 0)
		return -1;
	*ns = bench_now_ns() - t0;
	if (l->count - before != l->chunk) {
		fprintf(stderr, "bench raw: %llu exits counted, %u expected\n",
			(unsigned long long)(l->count - before), l->chunk);
		return -1;
	}
	return 0;
}

const struct backend bench_raw = {
	.name = "raw",
	.create_to_first_insn = raw_create,
	.loop_open = raw_loop_open,
	.loop_chunk = raw_loop_chunk,
	.loop_close = raw_loop_close,
};
