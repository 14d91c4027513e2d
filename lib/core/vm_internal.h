/* struct vmm_vm and struct vmm_vcpu, shared by lib/core, lib/cpu/x86 and lib/irq. */
#ifndef LIBVMM_VM_INTERNAL_H
#define LIBVMM_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../internal.h"

struct kvm_run;

struct vmm_vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_mmap_size;
	uint32_t flags;          /* VMM_VM_* */
	vmm_irqchip_mode irqchip;
	uint16_t exit_port;
	uint16_t fault_port;
	int kick_signal;
	bool exit_on_unhandled_io;
	/* vm_event.c: the pending VMM_SYSTEM_EVENT_* (0 = none), read by the run loop. */
	_Atomic uint32_t stop_event;

	uint32_t dirty_ring_entries; /* 0: dirty bitmap mode */

	vmm_mem *mem;
	vmm_bus *bus;
	vmm_irq *irq;
	/* The interrupt controller exists in KVM (see vmm_vm_realize_irqchip); set once,
	 * under `lock`, read without it. */
	atomic_bool irqchip_ready;

	pthread_mutex_t lock;    /* protects the vCPU list and supported_cpuid */
	vmm_cpuid *supported_cpuid; /* KVM_GET_SUPPORTED_CPUID, imported once (cpuid.c) */
	bool supported_cpuid_shared; /* ...and shared by the process: not the VM's to free */
	vmm_vcpu **vcpus;
	size_t nr_vcpus, cap_vcpus;
	uint32_t max_vcpus;
};

enum vcpu_thread_state { VCPU_THREAD_NONE, VCPU_THREAD_RUNNING, VCPU_THREAD_JOINED };

struct vmm_vcpu {
	vmm_vm *vm;
	uint32_t id;
	int fd;
	struct kvm_run *run;
	int run_size;

	/* Kick protocol: kick sets `kick_pending`, then run->immediate_exit, then signals
	 * the thread recorded in `runner` (if any). The run loop consumes kick_pending. */
	atomic_bool kick_pending;
	atomic_bool in_run;          /* a thread is inside vmm_vcpu_run */
	pthread_mutex_t runner_lock; /* orders pthread_kill against runner changes */
	pthread_t runner;
	bool has_runner;

	/* Dirty ring (vm->dirty_ring_entries entries), harvested under ring_lock by the
	 * vCPU thread (ring full) or by a collector (vmm_mem_dirty_collect). */
	struct kvm_dirty_gfn *ring;
	uint32_t ring_fetch;
	pthread_mutex_t ring_lock;

	/* Long-mode system area, remembered for vmm_vcpu_set_idt_gate. */
	uint64_t idt_gpa;
	bool has_idt;

	/* Library thread (vmm_vcpu_start). */
	pthread_t thread;
	enum vcpu_thread_state thread_state;
	vmm_vcpu_exit_fn thread_fn;
	void *thread_ctx;
	int thread_result;
	atomic_bool stop;           /* vmm_vcpu_destroy asks the library thread to end */
};

/* lib/cpu/x86/fixup.c: tries to complete an emulation failure in user space. Returns
 * 1 if completed (continue running), 0 if not completable, negative errno on error. */
VMM_HIDDEN int vmm_fixup_emulation(vmm_vcpu *vcpu, const uint8_t *insn, size_t len, uint64_t rip);

/* lib/irq: hooks the run loop needs in split-irqchip mode. */
VMM_HIDDEN int vmm_irq_create_for_vm(vmm_irq **out, vmm_vm *vm);
VMM_HIDDEN void vmm_irq_free(vmm_irq *irq);
VMM_HIDDEN void vmm_irq_eoi(vmm_irq *irq, uint32_t vector);
/* Installs the routing table in KVM once the irqchip exists (vmm_vm_realize_irqchip). */
VMM_HIDDEN int vmm_irq_realize(vmm_irq *irq);

/* lib/core/vm.c: harvests one vCPU's dirty ring into the memory map and resets the
 * rings (vCPU thread on KVM_EXIT_DIRTY_RING_FULL). Returns 0 or a negative errno. */
VMM_HIDDEN int vmm_vm_harvest_ring(vmm_vcpu *vcpu);

/* lib/core/vm.c: vCPU list management. */
VMM_HIDDEN int vmm_vm_add_vcpu(vmm_vm *vm, vmm_vcpu *vcpu);
VMM_HIDDEN void vmm_vm_remove_vcpu(vmm_vm *vm, vmm_vcpu *vcpu);

/* Creates the VM's interrupt controller in KVM if it is not there yet (vmm_vm_create
 * only checks the capabilities): the first memory slot added after KVM_CREATE_IRQCHIP
 * costs 5-12 ms on our hosts (4-8x a whole VM), slots added before it cost nothing
 * extra. So it is made when first needed: before the first vCPU, and before any call
 * that touches it (vmm_irq_*, snapshots, Linux platform set-up). Returns 0 or -errno;
 * any thread; does nothing for VMM_IRQCHIP_NONE. */
VMM_HIDDEN int vmm_vm_realize_irqchip(vmm_vm *vm);

#endif
