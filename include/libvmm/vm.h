/* libvmm: the virtual machine.
 *
 * A vmm_vm owns a KVM VM, its guest memory map (vmm_vm_mem), its I/O bus (vmm_vm_bus),
 * its interrupt controller (vmm_vm_irq) and every vCPU created in it. Destroying the VM
 * destroys all of them.
 *
 * Threading: vmm_vm_create/vmm_vm_destroy must not race with other calls on the same VM.
 * The accessors below may be called from any thread.
 */
#ifndef LIBVMM_VM_H
#define LIBVMM_VM_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Interrupt-controller composition. */
typedef enum vmm_irqchip_mode {
	/* LAPIC, IOAPIC, PIC (and the PIT unless VMM_VM_NO_PIT) all in the kernel. */
	VMM_IRQCHIP_KERNEL = 0,
	/* LAPIC in the kernel; the IOAPIC is a user-space object of this library, at
	 * 0xFEC00000, fed by vmm_irq_set_line(). No PIC, no in-kernel PIT. */
	VMM_IRQCHIP_SPLIT = 1,
	/* No interrupt controller at all (pure compute guests). vmm_vm_irq() is NULL. */
	VMM_IRQCHIP_NONE = 2,
} vmm_irqchip_mode;

/* vmm_vm_opts.flags */
#define VMM_VM_NO_PIT (1u << 0)            /* kernel irqchip without the in-kernel PIT */
#define VMM_VM_EXIT_ON_UNHANDLED_IO (1u << 1) /* vmm_vcpu_run returns VMM_EXIT_IO for port or
                                               * MMIO accesses no device claims, instead of
                                               * reading all-ones and dropping writes */
/* Host-side: fork() children of the application do not inherit this VM's guest RAM
 * (madvise(MADV_DONTFORK) on every region the VM maps, including those of restore and
 * clone, and on the caller's own mapping for VMM_MEM_HOST regions). Without it a
 * fork() copies the page tables of all guest RAM and, for copy-on-write clones, makes
 * every later guest write fault. Set it when the application forks (or spawns with
 * fork + exec) while VMs exist; the child must then not touch guest memory. Not part
 * of a snapshot: restore and clone take it from their host options. */
#define VMM_VM_DONTFORK (1u << 2)

typedef struct vmm_vm_opts {
	uint32_t size;            /* sizeof(vmm_vm_opts); set by VMM_VM_OPTS_INIT */
	uint32_t flags;           /* VMM_VM_* */
	vmm_irqchip_mode irqchip; /* default VMM_IRQCHIP_KERNEL */
	const char *kvm_path;     /* default "/dev/kvm" */
	/* A guest write to this port ends vmm_vcpu_run with VMM_EXIT_GUEST and the value
	 * written as the exit code. 0 = the default, 0xf4 (the isa-debug-exit port). */
	uint16_t exit_port;
	/* Port the fault-reporting IDT of vmm_vcpu_setup_long_mode writes vectors to;
	 * 0 = the default, 0xf5. */
	uint16_t fault_port;
	/* Signal used by vmm_vcpu_kick to interrupt KVM_RUN. 0 = SIGRTMAX - 1. The library
	 * installs an empty handler for it only if its disposition is SIG_DFL (an existing
	 * handler is kept: any handler interrupts KVM_RUN, and it then runs on every kick,
	 * so it must tolerate calls it did not cause), and never blocks or steals other
	 * signals. The installed handler is process-wide and stays after the VM is gone. */
	int kick_signal;
	/* Dirty-page tracking through KVM's per-vCPU dirty rings instead of the per-slot
	 * bitmap: entries per vCPU ring, a power of two from 512 to 65536; 0 = bitmap.
	 * Rings cost nothing per clean page, so collecting a few dirty pages of a large
	 * guest is cheap. -ENOTSUP if KVM has no dirty ring. Same vmm_mem_dirty_* API. */
	uint32_t dirty_ring_entries;
} vmm_vm_opts;

#define VMM_VM_OPTS_INIT { sizeof(vmm_vm_opts), 0, VMM_IRQCHIP_KERNEL, 0, 0, 0, 0, 0 }

/* Opens /dev/kvm, checks the API version and the capabilities the chosen composition
 * needs, creates the VM with an empty memory map, an empty bus and the interrupt
 * controller. opts may be NULL (defaults).
 * The interrupt controller (and PIT) is made in KVM when first needed: by the first
 * vmm_vcpu_create or the first vmm_irq_* call that reaches KVM. Add guest memory before
 * that: on some hosts the first memory slot added after it costs milliseconds (5-12 ms
 * on our nested hosts, against ~0.5 ms for the whole VM). Errors of that late creation
 * (rare: -ENOMEM) come from the call that triggered it.
 * KVM_GET_SUPPORTED_CPUID is read once per process and KVM device and shared.
 * Returns 0 and *out, or: -ENODEV no /dev/kvm (or kvm_path is not a KVM device),
 * -EACCES no permission on it, -ENOTSUP a needed capability is missing (vmm_last_error
 * names it), -EINVAL bad options (or the kick signal is ignored with SIG_IGN), -ENOMEM.
 *
 * With VMM_IRQCHIP_KERNEL the legacy PIC is live after reset, unmasked with vector base
 * 0: a guest that does not mask it (as every OS does) sees IOAPIC pins 0-15 also as low
 * vectors. */
VMM_API int vmm_vm_create(vmm_vm **out, const vmm_vm_opts *opts);

/* Stops and destroys every vCPU of the VM (vCPUs on library threads, see
 * vmm_vcpu_start, are kicked and joined), then frees memory, bus, irq and the VM.
 * vCPUs driven by the caller's own threads must have returned from vmm_vcpu_run and must
 * not be used again. NULL is a no-op. */
VMM_API void vmm_vm_destroy(vmm_vm *vm);

/* Borrowed handles, valid until vmm_vm_destroy. vmm_vm_irq is NULL with
 * VMM_IRQCHIP_NONE. */
VMM_API vmm_mem *vmm_vm_mem(vmm_vm *vm);
VMM_API vmm_bus *vmm_vm_bus(vmm_vm *vm);
VMM_API vmm_irq *vmm_vm_irq(vmm_vm *vm);

/* The effective exit and fault ports (after defaults were applied). */
VMM_API uint16_t vmm_vm_exit_port(const vmm_vm *vm);
VMM_API uint16_t vmm_vm_fault_port(const vmm_vm *vm);

/* ---- system events: a device stops the whole VM ------------------------------------ */

/* Values of vmm_exit.u.system.type (the same numbers KVM uses for its own
 * KVM_EXIT_SYSTEM_EVENT, so one switch handles both). */
#define VMM_SYSTEM_EVENT_SHUTDOWN 1u /* power off (e.g. the ACPI S5 sleep register) */
#define VMM_SYSTEM_EVENT_RESET 2u    /* reboot (e.g. the i8042 "pulse reset line" command) */

/* How a platform device reports a system event to its owner (the i8042 and ACPI power
 * devices take one in their options; NULL there means vmm_vm_request_stop). Called on
 * the thread of the vCPU whose I/O caused the event. */
typedef void (*vmm_system_event_fn)(void *ctx, uint32_t event);

/* Records system event `event` (VMM_SYSTEM_EVENT_*, non-zero) for the VM and kicks every
 * vCPU: from then on every vmm_vcpu_run of every vCPU of this VM returns at once with
 * VMM_EXIT_SYSTEM_EVENT and u.system.type = the event, instead of entering the guest,
 * until vmm_vm_clear_stop. The first event wins: a later request while one is pending is
 * ignored (a machine that is powering off does not also reboot). So an exit function of
 * vmm_vcpu_start should end its thread on VMM_EXIT_SYSTEM_EVENT (or clear the stop):
 * running again returns the same exit at once. Any thread, including a device callback
 * on a vCPU thread. NULL vm or event 0: no-op. */
VMM_API void vmm_vm_request_stop(vmm_vm *vm, uint32_t event);

/* The pending system event, or 0 if none. Any thread. */
VMM_API uint32_t vmm_vm_stop_requested(const vmm_vm *vm);

/* Forgets the pending system event, so the vCPUs can run again (for an application that
 * resets the machine in place: reload the guest, reset the vCPUs' registers, clear, run).
 * Any thread; NULL is a no-op. */
VMM_API void vmm_vm_clear_stop(vmm_vm *vm);

/* ---- the VM's vCPUs ------------------------------------------------------------ */

/* Number of vCPUs the VM has now. Any thread (a vCPU created or destroyed meanwhile
 * changes it). 0 for NULL. */
VMM_API size_t vmm_vm_vcpu_count(vmm_vm *vm);

/* The i-th vCPU in creation order (borrowed, valid until it or the VM is destroyed),
 * or NULL if i >= vmm_vm_vcpu_count(vm). A VM made by vmm_snapshot_restore has its
 * vCPUs in the saved VM's order. Any thread. */
VMM_API vmm_vcpu *vmm_vm_get_vcpu(vmm_vm *vm, size_t i);

#ifdef __cplusplus
}
#endif
#endif
