/* The benchmark's scenarios through the public libvmm API, as an application uses it:
 * default memory backing (memfd), default CPUID, vmm_vcpu_setup_long_mode, devices on
 * the VM's bus, vmm_vcpu_run. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libvmm/libvmm.h>

#include "bench.h"

struct lib_vm {
	vmm_vm *vm;
	vmm_vcpu *vcpu;
};

static int fail(const char *what, int err)
{
	fprintf(stderr, "bench lib: %s: %s (%s)\n", what, vmm_strerror(err), vmm_last_error());
	return -1;
}

#define CHECK(call)                                   \
	do {                                          \
		int r_ = (call);                      \
		if (r_ < 0)                           \
			return fail(#call, r_);       \
	} while (0)

/* VM + 64 MiB at GPA 0 + vCPU 0, `code` at GUEST_CODE_GPA, long mode at `cpl`. The
 * caller destroys l->vm even on failure. */
static int lib_open(struct lib_vm *l, vmm_irqchip_mode chip, bool pit, unsigned cpl,
		    const struct guest_code *code)
{
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	vo.irqchip = chip;
	vo.flags = pit ? 0 : VMM_VM_NO_PIT; /* as the raw baseline does */
	l->vm = NULL;
	CHECK(vmm_vm_create(&l->vm, &vo));
	vmm_mem_region_opts mo = VMM_MEM_REGION_OPTS_INIT;
	mo.gpa = 0;
	mo.len = GUEST_MEM_SIZE;
	CHECK(vmm_mem_add_region(vmm_vm_mem(l->vm), &mo));
	CHECK(vmm_vcpu_create(&l->vcpu, l->vm, NULL));
	CHECK(vmm_mem_write(vmm_vm_mem(l->vm), GUEST_CODE_GPA, code->bytes, code->len));
	vmm_long_mode_opts lo = VMM_LONG_MODE_OPTS_INIT;
	lo.cpl = cpl;
	lo.entry = GUEST_CODE_GPA;
	lo.stack = GUEST_STACK;
	lo.identity_map = GUEST_IDENTITY_MAP;
	CHECK(vmm_vcpu_setup_long_mode(l->vcpu, &lo));
	return 0;
}

static int expect_guest_exit(const vmm_exit *e, uint64_t code)
{
	if (e->reason == VMM_EXIT_GUEST && e->u.guest.code == code)
		return 0;
	fprintf(stderr, "bench lib: unexpected exit: reason %d (guest code %llu, fault vector %u)\n",
		(int)e->reason, (unsigned long long)e->u.guest.code, e->u.fault.vector);
	return -1;
}

static int lib_create_run(struct lib_vm *l, bool platform)
{
	struct guest_code code;
	guest_first_out(&code);
	int r = lib_open(l, platform ? VMM_IRQCHIP_KERNEL : VMM_IRQCHIP_NONE, platform, 0, &code);
	if (r)
		return r;
	vmm_exit e;
	CHECK(vmm_vcpu_run(l->vcpu, &e));
	return expect_guest_exit(&e, 0);
}

static int lib_create(bool platform, double *create_ns, double *destroy_ns)
{
	struct lib_vm l;
	double t0 = bench_now_ns();
	int r = lib_create_run(&l, platform);
	double t1 = bench_now_ns();
	vmm_vm_destroy(l.vm);
	*create_ns = t1 - t0;
	*destroy_ns = bench_now_ns() - t1;
	return r;
}

/* A libvmm VM running one of the loops. */
struct lib_loop {
	struct lib_vm l;
	enum loop_kind kind;
	uint32_t chunk;
	uint64_t count;  /* incremented by the device */
	int efd;
};

/* The device: counts writes, as a minimal device model would handle them. */
static void count_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)offset;
	(void)size;
	(void)value;
	++*(uint64_t *)opaque;
}

static int lib_loop_setup(struct lib_loop *p, unsigned cpl)
{
	struct lib_vm *l = &p->l;
	struct guest_code code;
	if (p->kind == LOOP_IRQFD) {
		struct guest_code handler;
		guest_irq_main(&code);
		guest_irq_handler(&handler);
		if (lib_open(l, VMM_IRQCHIP_KERNEL, false, 0, &code))
			return -1;
		CHECK(vmm_mem_write(vmm_vm_mem(l->vm), GUEST_HANDLER_GPA, handler.bytes, handler.len));
		CHECK(vmm_vcpu_set_idt_gate(l->vcpu, GUEST_IRQ_VECTOR, GUEST_HANDLER_GPA, 0));
		uint64_t addr;
		uint32_t data;
		vmm_irq_msi_for(0, GUEST_IRQ_VECTOR, &addr, &data);
		vmm_irq *irq = vmm_vm_irq(l->vm);
		CHECK(vmm_irq_route_msi(irq, GUEST_IRQ_GSI, addr, data));
		if ((p->efd = eventfd(0, EFD_CLOEXEC)) < 0) {
			perror("bench lib: eventfd");
			return -1;
		}
		CHECK(vmm_irq_add_irqfd(irq, p->efd, GUEST_IRQ_GSI, -1));
		vmm_exit e;
		CHECK(vmm_vcpu_run(l->vcpu, &e));
		return expect_guest_exit(&e, 0); /* x2APIC on, about to halt */
	}
	if (p->kind == LOOP_PIO)
		guest_pio_loop(&code, p->chunk);
	else
		guest_mmio_loop(&code, p->chunk);
	if (lib_open(l, VMM_IRQCHIP_NONE, false, cpl, &code))
		return -1;
	static const vmm_bus_ops ops = { .write = count_write };
	if (p->kind == LOOP_PIO)
		CHECK(vmm_bus_register(vmm_vm_bus(l->vm), VMM_BUS_PIO, GUEST_PIO_PORT, 1, &ops, &p->count));
	else
		CHECK(vmm_bus_register(vmm_vm_bus(l->vm), VMM_BUS_MMIO, GUEST_MMIO_GPA, 0x1000, &ops,
				       &p->count));
	return 0;
}

static void lib_loop_close(void *lp)
{
	struct lib_loop *p = lp;
	if (!p)
		return;
	vmm_vm_destroy(p->l.vm); /* removes the irqfd before its fd goes */
	if (p->efd >= 0)
		close(p->efd);
	free(p);
}

static void *lib_loop_open(enum loop_kind kind, unsigned cpl, uint32_t chunk)
{
	struct lib_loop *p = calloc(1, sizeof *p);
	if (!p) {
		perror("bench lib: calloc");
		return NULL;
	}
	p->kind = kind;
	p->chunk = chunk;
	p->efd = -1;
	if (lib_loop_setup(p, cpl)) {
		lib_loop_close(p);
		return NULL;
	}
	return p;
}

static int lib_loop_chunk(void *lp, double *ns)
{
	struct lib_loop *p = lp;
	vmm_exit e;
	const uint64_t one = 1;
	double t0 = bench_now_ns();
	if (p->kind == LOOP_IRQFD) {
		for (uint32_t i = 0; i < p->chunk; i++) {
			if (write(p->efd, &one, sizeof one) != (ssize_t)sizeof one) {
				perror("bench lib: eventfd write");
				return -1;
			}
			CHECK(vmm_vcpu_run(p->l.vcpu, &e));
			if (expect_guest_exit(&e, 1))
				return -1;
		}
		*ns = bench_now_ns() - t0;
		return 0;
	}
	uint64_t before = p->count;
	CHECK(vmm_vcpu_run(p->l.vcpu, &e));
	*ns = bench_now_ns() - t0;
	if (expect_guest_exit(&e, 0))
		return -1;
	if (p->count - before != p->chunk) {
		fprintf(stderr, "bench lib: %llu exits counted, %u expected\n",
			(unsigned long long)(p->count - before), p->chunk);
		return -1;
	}
	return 0;
}

const struct backend bench_lib = {
	.name = "lib",
	.create_to_first_insn = lib_create,
	.loop_open = lib_loop_open,
	.loop_chunk = lib_loop_chunk,
	.loop_close = lib_loop_close,
};
