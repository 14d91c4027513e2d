/* Puts a vCPU straight into 64-bit mode, without firmware or boot loader. The system
 * area (VMM_LONG_MODE_SYSTEM_AREA_SIZE bytes of guest RAM) holds the GDT, TSS, IDT,
 * fault stubs, identity page tables and the ring-0 stack at the offsets below. */
#include <string.h>

#include "../../core/vm_internal.h"
#include "../../kvm/kvm.h"

enum {
	OFF_GDT = 0x0000,
	OFF_IDT = 0x1000,
	OFF_STUBS = 0x2000,    /* 32 fault stubs of STUB_SIZE bytes, then the common tail */
	OFF_PML4 = 0x3000,
	OFF_PDPT = 0x4000,
	OFF_TSS = 0x5000,      /* 104-byte TSS, then the I/O permission bitmap */
	OFF_PD = 0x8000,       /* MAX_GIB page directories, one per GiB */
	OFF_STACK_TOP = 0x20000, /* the ring-0 stack grows down from the end of the area */
	MAX_GIB = 8,
	STUB_SIZE = 16,
	NR_FAULT_VECTORS = 32,
	TSS_SIZE = 0x68,
	/* One bit per port, all clear (= allowed), and the required trailing 0xff byte. */
	IOBITMAP_SIZE = 65536 / 8 + 1,
	TSS_LIMIT = TSS_SIZE + IOBITMAP_SIZE - 1,
};

_Static_assert(OFF_TSS + TSS_SIZE + IOBITMAP_SIZE <= OFF_PD, "TSS and I/O bitmap fit");
_Static_assert(OFF_PD + MAX_GIB * 0x1000 <= 0x10000, "page directories leave 64 KiB of stack");
_Static_assert(OFF_STACK_TOP == VMM_LONG_MODE_SYSTEM_AREA_SIZE, "stack at the end of the area");

enum { SEL_KCODE = 0x08, SEL_KDATA = 0x10, SEL_UCODE = 0x18 | 3, SEL_UDATA = 0x20 | 3, SEL_TSS = 0x28 };

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define RFLAGS_RESERVED (1ull << 1)
#define RFLAGS_IOPL3 (3ull << 12)
#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull

static bool has_error_code(unsigned v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* A 64-bit interrupt gate to `handler` in the kernel code segment. */
static void idt_gate(uint8_t *entry, uint64_t handler, unsigned dpl)
{
	uint64_t lo = (handler & 0xffff) | ((uint64_t)SEL_KCODE << 16) |
		      ((uint64_t)(0x8e | (dpl & 3) << 5) << 40) | (((handler >> 16) & 0xffff) << 48);
	put64(entry, lo);
	put64(entry + 8, handler >> 32);
}

/* Each stub pushes a dummy error code where the CPU pushes none, then its vector, so the
 * host finds the same frame for every vector: vector, error code, RIP, CS, RFLAGS, RSP,
 * SS. The common tail writes to the fault port; the host reads the frame at RSP. It then
 * loops on the write, so running the vCPU again reports the same fault again. */
static void write_fault_stubs(uint8_t *area, uint64_t base, uint16_t port)
{
	uint8_t *stubs = area + OFF_STUBS;
	uint32_t common = NR_FAULT_VECTORS * STUB_SIZE;
	for (unsigned v = 0; v < NR_FAULT_VECTORS; v++) {
		uint8_t *s = stubs + v * STUB_SIZE;
		size_t n = 0;
		memset(s, 0xcc, STUB_SIZE);
		if (!has_error_code(v)) {
			s[n++] = 0x6a; /* push $0 */
			s[n++] = 0x00;
		}
		s[n++] = 0x6a; /* push $v */
		s[n++] = (uint8_t)v;
		s[n++] = 0xe9; /* jmp common */
		put32(s + n, common - (uint32_t)(v * STUB_SIZE + n + 4));
		idt_gate(area + OFF_IDT + v * 16, base + OFF_STUBS + v * STUB_SIZE, 0);
	}
	uint8_t tail[] = { 0x66, 0xba, (uint8_t)port, (uint8_t)(port >> 8), /* mov $port, %dx */
			   0xee,                                              /* out %al, (%dx) */
			   0xeb, 0xfd };                                      /* jmp out */
	memcpy(stubs + common, tail, sizeof tail);
}

static void write_gdt_tss(uint8_t *area, uint64_t base, uint64_t kernel_stack)
{
	uint8_t *gdt = area + OFF_GDT;
	put64(gdt + 0x08, 0x00af9b000000ffffull); /* kernel code: L, P, DPL 0 */
	put64(gdt + 0x10, 0x00cf93000000ffffull); /* kernel data */
	put64(gdt + 0x18, 0x00affb000000ffffull); /* user code: L, P, DPL 3 */
	put64(gdt + 0x20, 0x00cff3000000ffffull); /* user data */
	uint64_t tss = base + OFF_TSS, limit = TSS_LIMIT;
	put64(gdt + SEL_TSS, limit | ((tss & 0xffffff) << 16) | (0x89ull << 40) | (((tss >> 24) & 0xff) << 56));
	put64(gdt + SEL_TSS + 8, tss >> 32);
	uint8_t *t = area + OFF_TSS;
	put64(t + 4, kernel_stack);                  /* RSP0 */
	/* An I/O bitmap that allows every port. With IOPL 3 the CPU never reads it, but
	 * nested hosts that run guest user mode at the host's IOPL 0 (PVM) check it. */
	t[0x66] = TSS_SIZE;
	t[TSS_SIZE + IOBITMAP_SIZE - 1] = 0xff;
}

static void write_page_tables(uint8_t *area, uint64_t base, unsigned gib)
{
	put64(area + OFF_PML4, (base + OFF_PDPT) | PTE_P | PTE_RW | PTE_US);
	for (unsigned i = 0; i < gib; i++) {
		put64(area + OFF_PDPT + i * 8, (base + OFF_PD + i * 0x1000ull) | PTE_P | PTE_RW | PTE_US);
		for (unsigned j = 0; j < 512; j++)
			put64(area + OFF_PD + i * 0x1000 + j * 8,
			      ((uint64_t)i << 30 | (uint64_t)j << 21) | PTE_P | PTE_RW | PTE_US | PTE_PS);
	}
}

static struct kvm_segment segment(uint16_t sel, bool code)
{
	struct kvm_segment s = { .base = 0, .limit = 0xffffffff, .selector = sel, .present = 1,
				 .dpl = sel & 3, .s = 1, .g = 1 };
	s.type = code ? 11 : 3;
	s.l = code;
	s.db = !code;
	return s;
}

int vmm_vcpu_setup_long_mode(vmm_vcpu *v, const vmm_long_mode_opts *opts)
{
	if (!v || !opts)
		return vmm_err(-EINVAL, "vmm_vcpu_setup_long_mode: NULL argument");
	vmm_long_mode_opts o = VMM_LONG_MODE_OPTS_INIT;
	if (vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_vcpu_setup_long_mode: opts->size is too small");
	if (o.cpl != 0 && o.cpl != 3)
		return vmm_err(-EINVAL, "long mode: cpl must be 0 or 3, not %u", o.cpl);
	if (o.flags & ~(uint32_t)VMM_LONG_MODE_FAULT_IDT)
		return vmm_err(-EINVAL, "long mode: unknown flags %#x", o.flags);
	if (o.system_area & (VMM_PAGE_SIZE - 1))
		return vmm_err(-EINVAL, "long mode: system area %#llx is not page aligned",
			       (unsigned long long)o.system_area);
	uint64_t map = o.identity_map ? o.identity_map : 4ull << 30;
	if (map > (uint64_t)MAX_GIB << 30)
		return vmm_err(-EINVAL, "long mode: identity map of %llu bytes exceeds %d GiB",
			       (unsigned long long)map, MAX_GIB);
	unsigned gib = (unsigned)((map + (1ull << 30) - 1) >> 30);
	uint64_t base = o.system_area;
	if (base + VMM_LONG_MODE_SYSTEM_AREA_SIZE > (uint64_t)gib << 30)
		return vmm_err(-EINVAL, "long mode: system area %#llx lies outside the identity map",
			       (unsigned long long)base);

	void *host;
	int r = vmm_mem_translate(v->vm->mem, base, VMM_LONG_MODE_SYSTEM_AREA_SIZE, true, &host);
	if (r)
		return vmm_err(r, "long mode: system area [%#llx, +128 KiB) is not in writable guest RAM",
			       (unsigned long long)base);
	uint8_t *area = host;
	uint64_t kstack = o.kernel_stack ? o.kernel_stack : base + OFF_STACK_TOP;
	memset(area, 0, OFF_PD); /* tables; page directories are written whole below */
	write_gdt_tss(area, base, kstack);
	if (o.flags & VMM_LONG_MODE_FAULT_IDT)
		write_fault_stubs(area, base, v->vm->fault_port);
	write_page_tables(area, base, gib);

	struct kvm_sregs s;
	if ((r = vmm_kvm_get_sregs(v->fd, &s)) < 0)
		return vmm_err(r, "KVM_GET_SREGS failed");
	bool user = o.cpl == 3;
	s.cs = segment(user ? SEL_UCODE : SEL_KCODE, true);
	s.ds = s.es = s.fs = s.gs = s.ss = segment(user ? SEL_UDATA : SEL_KDATA, false);
	s.tr = (struct kvm_segment){ .base = base + OFF_TSS, .limit = TSS_LIMIT, .selector = SEL_TSS,
				     .type = 11, .present = 1 };
	s.ldt = (struct kvm_segment){ .unusable = 1 };
	s.gdt.base = base + OFF_GDT;
	s.gdt.limit = SEL_TSS + 16 - 1;
	s.idt.base = base + OFF_IDT;
	s.idt.limit = 256 * 16 - 1;
	s.cr3 = base + OFF_PML4;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG;
	s.efer = EFER_LME | EFER_LMA | EFER_SCE;
	if ((r = vmm_kvm_set_sregs(v->fd, &s)) < 0)
		return vmm_err(r, "KVM_SET_SREGS (long mode) failed");

	/* Secondary vCPUs of an in-kernel LAPIC wait for INIT/SIPI; this one starts now.
	 * Without an in-kernel LAPIC every vCPU is runnable already. */
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	if (v->vm->irqchip != VMM_IRQCHIP_NONE && (r = vmm_kvm_set_mp_state(v->fd, &mp)) < 0)
		return vmm_err(r, "KVM_SET_MP_STATE failed");
	struct kvm_regs regs = { .rip = o.entry, .rsp = o.stack,
				 .rflags = RFLAGS_RESERVED | (user ? RFLAGS_IOPL3 : 0) };
	if ((r = vmm_kvm_set_regs(v->fd, &regs)) < 0)
		return vmm_err(r, "KVM_SET_REGS failed");
	v->idt_gpa = base + OFF_IDT;
	v->has_idt = true;
	return 0;
}

int vmm_vcpu_set_idt_gate(vmm_vcpu *v, uint8_t vector, uint64_t handler, unsigned dpl)
{
	if (!v || dpl > 3)
		return vmm_err(-EINVAL, "vmm_vcpu_set_idt_gate: bad argument");
	if (!v->has_idt)
		return vmm_err(-EINVAL, "vmm_vcpu_set_idt_gate: vCPU %u has no IDT from "
				"vmm_vcpu_setup_long_mode", v->id);
	/* The guest (or a loader) may have moved to an IDT of its own since. */
	struct kvm_sregs s;
	int r = vmm_kvm_get_sregs(v->fd, &s);
	if (r < 0)
		return vmm_err(r, "KVM_GET_SREGS failed");
	if (s.idt.base != v->idt_gpa)
		return vmm_err(-EINVAL, "vmm_vcpu_set_idt_gate: vCPU %u no longer uses the IDT of "
				"vmm_vcpu_setup_long_mode", v->id);
	uint8_t entry[16];
	idt_gate(entry, handler, dpl);
	return vmm_mem_write(v->vm->mem, v->idt_gpa + vector * 16u, entry, sizeof entry);
}
