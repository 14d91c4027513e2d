/* libvmm: virtual CPUs (x86_64).
 *
 * A vmm_vcpu belongs to a VM and is destroyed with it. A vCPU is driven by one thread
 * at a time: all calls on it come from that thread, except vmm_vcpu_kick (any thread,
 * any time) and vmm_vcpu_join. vmm_vcpu_start runs it on a library-owned thread.
 */
#ifndef LIBVMM_VCPU_H
#define LIBVMM_VCPU_H

#include <stdbool.h>
#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* General-purpose registers (same order as KVM's struct kvm_regs). */
typedef struct vmm_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
} vmm_regs;

typedef struct vmm_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl, unusable;
} vmm_segment;

typedef struct vmm_dtable {
	uint64_t base;
	uint16_t limit;
} vmm_dtable;

typedef struct vmm_sregs {
	vmm_segment cs, ds, es, fs, gs, ss, tr, ldt;
	vmm_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
} vmm_sregs;

/* The legacy FXSAVE-format FPU/SSE state. */
typedef struct vmm_fpu {
	uint8_t fpr[8][16];
	uint16_t fcw, fsw;
	uint8_t ftwx;
	uint16_t last_opcode;
	uint64_t last_ip, last_dp;
	uint8_t xmm[16][16];
	uint32_t mxcsr;
} vmm_fpu;

typedef struct vmm_vcpu_opts {
	uint32_t size;   /* sizeof(vmm_vcpu_opts) */
	uint32_t id;     /* vCPU (and x2APIC) id; must be unique in the VM */
	/* CPUID table to install; NULL = vmm_cpuid_create_default(vm) for this id. The
	 * table is copied; it stays the caller's. */
	const vmm_cpuid *cpuid;
} vmm_vcpu_opts;

#define VMM_VCPU_OPTS_INIT { sizeof(vmm_vcpu_opts), 0, 0 }

/* Creates a vCPU in `vm` (reset state: real mode at 0xfff0, as after power-on). opts may
 * be NULL (id 0). Returns 0, -EEXIST (id in use), -EINVAL, -ENOMEM, or the errno of
 * KVM_CREATE_VCPU. */
VMM_API int vmm_vcpu_create(vmm_vcpu **out, vmm_vm *vm, const vmm_vcpu_opts *opts);

/* Destroys the vCPU (kicking and joining its library thread if started). The caller's
 * own thread must not be inside vmm_vcpu_run. KVM keeps a vCPU until its VM is
 * destroyed, so the id cannot be used again in this VM (-EEXIST). NULL is a no-op. */
VMM_API void vmm_vcpu_destroy(vmm_vcpu *vcpu);

VMM_API uint32_t vmm_vcpu_id(const vmm_vcpu *vcpu);
VMM_API vmm_vm *vmm_vcpu_vm(const vmm_vcpu *vcpu);

/* Register access. Each returns 0 or a negative errno from KVM. */
VMM_API int vmm_vcpu_get_regs(vmm_vcpu *vcpu, vmm_regs *regs);
VMM_API int vmm_vcpu_set_regs(vmm_vcpu *vcpu, const vmm_regs *regs);
VMM_API int vmm_vcpu_get_sregs(vmm_vcpu *vcpu, vmm_sregs *sregs);
VMM_API int vmm_vcpu_set_sregs(vmm_vcpu *vcpu, const vmm_sregs *sregs);
VMM_API int vmm_vcpu_get_fpu(vmm_vcpu *vcpu, vmm_fpu *fpu);
VMM_API int vmm_vcpu_set_fpu(vmm_vcpu *vcpu, const vmm_fpu *fpu);

/* Reads/writes `n` MSRs: indices in `idx`, values in `val`. Returns 0 if all n were
 * transferred; -EINVAL if n is 0 or too large (max 256); -EIO naming the first MSR KVM
 * refused. */
VMM_API int vmm_vcpu_get_msrs(vmm_vcpu *vcpu, const uint32_t *idx, uint64_t *val, size_t n);
VMM_API int vmm_vcpu_set_msrs(vmm_vcpu *vcpu, const uint32_t *idx, const uint64_t *val, size_t n);

/* Installs a CPUID table (copied). Call before the first vmm_vcpu_run. */
VMM_API int vmm_vcpu_set_cpuid(vmm_vcpu *vcpu, const vmm_cpuid *cpuid);

/* Translates a guest virtual address through the vCPU's current paging mode (page walk
 * in guest memory, 4-level paging with 2 MiB and 1 GiB pages; identity when paging is
 * off). Returns 0 and *gpa, or -EFAULT (not present / not in RAM). */
VMM_API int vmm_vcpu_translate(vmm_vcpu *vcpu, uint64_t gva, uint64_t *gpa);

/* ---- 64-bit long mode without a boot loader --------------------------------------- */

/* vmm_long_mode_opts.flags */
#define VMM_LONG_MODE_FAULT_IDT (1u << 0) /* install an IDT whose 32 exception gates report the
                                           * fault to the host as VMM_EXIT_FAULT */

typedef struct vmm_long_mode_opts {
	uint32_t size;      /* sizeof(vmm_long_mode_opts) */
	uint32_t flags;     /* VMM_LONG_MODE_* ; default VMM_LONG_MODE_FAULT_IDT */
	uint32_t cpl;       /* 0 or 3. At 3: user segments, IOPL 3 (port I/O needs no ring-0 code),
	                     * a TSS whose RSP0 is `kernel_stack`. */
	uint64_t entry;     /* RIP */
	uint64_t stack;     /* RSP (at `cpl`) */
	uint64_t kernel_stack; /* ring-0 stack for interrupts and exceptions; 0 = top of the
	                        * system area's own 64 KiB stack */
	/* Guest-physical base of the VMM_LONG_MODE_SYSTEM_AREA_SIZE (128 KiB), page
	 * aligned, system area in RAM that holds the GDT, TSS with an all-ports-allowed
	 * I/O bitmap, IDT, fault stubs, page tables and a 64 KiB ring-0 stack. It must be
	 * in RAM and is overwritten. Default 0 (GPA 0 - 0x20000). */
	uint64_t system_area;
	/* Bytes of guest-physical space identity-mapped (2 MiB pages, user-accessible and
	 * writable), rounded up to 1 GiB; default 0 = 4 GiB; at most 8 GiB. */
	uint64_t identity_map;
} vmm_long_mode_opts;

#define VMM_LONG_MODE_OPTS_INIT { sizeof(vmm_long_mode_opts), VMM_LONG_MODE_FAULT_IDT, 0, 0, 0, 0, 0, 0 }

/* Bytes of guest memory vmm_vcpu_setup_long_mode uses at opts->system_area. Several
 * vCPUs of one VM may share one system area only if they share one kernel stack, so
 * give each vCPU its own area. */
#define VMM_LONG_MODE_SYSTEM_AREA_SIZE 0x20000u

/* Puts the vCPU straight into 64-bit mode: writes GDT, TSS, IDT (with
 * VMM_LONG_MODE_FAULT_IDT) and identity page tables into guest memory at
 * opts->system_area, sets CR0/CR3/CR4/EFER, segments, RIP, RSP and RFLAGS (IOPL 3 at
 * CPL 3). Returns 0, -EINVAL (bad cpl, misaligned area), -EFAULT (area not in RAM), or a
 * KVM errno. */
VMM_API int vmm_vcpu_setup_long_mode(vmm_vcpu *vcpu, const vmm_long_mode_opts *opts);

/* Points IDT vector `vector` of the IDT built by vmm_vcpu_setup_long_mode at guest code
 * `handler` (a ring-0 interrupt gate; `dpl` 3 lets CPL-3 code raise it with INT n).
 * Returns 0, -EINVAL (NULL vcpu, dpl > 3, or no IDT set up yet), -EFAULT. */
VMM_API int vmm_vcpu_set_idt_gate(vmm_vcpu *vcpu, uint8_t vector, uint64_t handler, unsigned dpl);

/* ---- running -------------------------------------------------------------------- */

typedef enum vmm_exit_reason {
	VMM_EXIT_HLT = 1,      /* the guest executed HLT (VMM_IRQCHIP_NONE only: with an
	                        * in-kernel LAPIC, KVM waits for the interrupt itself) */
	VMM_EXIT_SHUTDOWN,     /* triple fault or shutdown */
	VMM_EXIT_GUEST,        /* the guest wrote u.guest.code to the exit port */
	VMM_EXIT_FAULT,        /* an exception reached the fault-reporting IDT */
	VMM_EXIT_KICK,         /* vmm_vcpu_kick was called */
	VMM_EXIT_IO,           /* unhandled port/MMIO access (VMM_VM_EXIT_ON_UNHANDLED_IO) */
	VMM_EXIT_SYSTEM_EVENT, /* KVM system event (reset, shutdown, crash) u.system.type */
	VMM_EXIT_INTERNAL_ERROR, /* an emulation failure libvmm cannot complete; run also
	                          * returned -EIO and vmm_last_error() describes it */
} vmm_exit_reason;

typedef struct vmm_exit {
	vmm_exit_reason reason;
	union {
		struct { uint64_t code; } guest;
		struct {
			uint32_t vector;     /* 0-31 */
			uint32_t has_error_code;
			uint64_t error_code;
			uint64_t rip;        /* faulting RIP (from the exception frame) */
			uint64_t cr2;        /* page-fault address for vector 14 */
			uint64_t cs;         /* CS of the faulting code: CPL = cs & 3 */
		} fault;
		struct {
			uint64_t addr;
			uint32_t size;
			uint32_t is_write;
			uint32_t is_mmio;
			uint64_t value;      /* written value */
		} io;
		struct { uint32_t type; } system;
		struct {
			uint64_t rip;
			uint32_t suberror;
			uint32_t insn_len;   /* bytes valid in insn */
			uint8_t insn[16];
		} internal;
	} u;
} vmm_exit;

/* Runs the vCPU until an exit the caller must see. Port I/O and MMIO go to the VM's bus
 * (and to the split-mode IOAPIC); emulation failures that libvmm can complete soundly
 * (INT3 and INT n at ring 0, FWAIT) are completed; all else returns. Call it from the
 * vCPU's thread. Returns 0 with *exit filled; -EIO with exit->reason
 * VMM_EXIT_INTERNAL_ERROR for an uncompletable emulation failure (vmm_last_error() holds
 * RIP, instruction bytes and registers); -EINVAL for a NULL argument; -EBUSY if another
 * thread is already running this vCPU; or the errno of KVM_RUN. The kick signal
 * (vmm_vm_opts.kick_signal) must not be blocked in the calling thread. */
VMM_API int vmm_vcpu_run(vmm_vcpu *vcpu, vmm_exit *exit);

/* Makes vmm_vcpu_run return VMM_EXIT_KICK as soon as possible: at once if the vCPU is in
 * the guest, at the next vmm_vcpu_run otherwise (a kick is never lost; several kicks
 * before the vCPU notices coalesce into one). Async-signal-unsafe; any thread. */
VMM_API void vmm_vcpu_kick(vmm_vcpu *vcpu);

/* Called on the vCPU's library thread for each exit of vmm_vcpu_run (and with exit NULL
 * and the negative errno if run failed). Return 0 to keep running, anything else to
 * stop the thread; that value is what vmm_vcpu_join reports. */
typedef int (*vmm_vcpu_exit_fn)(void *ctx, vmm_vcpu *vcpu, const vmm_exit *exit, int err);

/* Runs the vCPU on a new library thread: loops vmm_vcpu_run, calling fn for each exit.
 * The thread blocks every signal but the kick signal (a signal sent to that thread
 * with pthread_kill stays pending and is lost when it ends; process-directed signals
 * go to the application's threads). Returns 0, -EINVAL (NULL vcpu or
 * fn), -EBUSY (already started), or the errno of pthread_create. */
VMM_API int vmm_vcpu_start(vmm_vcpu *vcpu, vmm_vcpu_exit_fn fn, void *ctx);

/* Waits for the library thread to stop (fn returned non-zero) and stores fn's value in
 * *result (may be NULL). To stop a spinning guest, vmm_vcpu_kick first and have fn
 * return non-zero for VMM_EXIT_KICK. Returns 0 or -EINVAL (not started). */
VMM_API int vmm_vcpu_join(vmm_vcpu *vcpu, int *result);

#ifdef __cplusplus
}
#endif
#endif
