/* System events raised by devices: a guest's reboot or power-off request stops every
 * vCPU of the VM.
 *
 * The event is one atomic word in the VM. A device stores it (first event wins), then
 * kicks every vCPU so those inside KVM_RUN come out; the run loop checks the word before
 * each entry into the guest and returns VMM_EXIT_SYSTEM_EVENT while it is set. A vCPU
 * that misses the kick (created or between runs at that moment) still sees the word the
 * next time it would enter the guest, so nothing depends on the kick being delivered. */
#include <linux/kvm.h>

#include "vm_internal.h"

/* vmm_exit.u.system.type carries KVM's own system events too: keep one numbering. */
_Static_assert(VMM_SYSTEM_EVENT_SHUTDOWN == KVM_SYSTEM_EVENT_SHUTDOWN, "shutdown event number");
_Static_assert(VMM_SYSTEM_EVENT_RESET == KVM_SYSTEM_EVENT_RESET, "reset event number");

void vmm_vm_request_stop(vmm_vm *vm, uint32_t event)
{
	if (!vm || event == 0)
		return;
	uint32_t none = 0;
	if (!atomic_compare_exchange_strong(&vm->stop_event, &none, event))
		return; /* an earlier event is pending; its kicks are already out */
	pthread_mutex_lock(&vm->lock);
	for (size_t i = 0; i < vm->nr_vcpus; i++) {
		vmm_vcpu *v = vm->vcpus[i];
		/* A vCPU still being created has no run area to kick yet; it cannot be in
		 * KVM_RUN, and its first run sees the event. */
		if (__atomic_load_n(&v->run, __ATOMIC_ACQUIRE))
			vmm_vcpu_kick(v);
	}
	pthread_mutex_unlock(&vm->lock);
}

uint32_t vmm_vm_stop_requested(const vmm_vm *vm)
{
	return vm ? atomic_load(&((vmm_vm *)vm)->stop_event) : 0;
}

void vmm_vm_clear_stop(vmm_vm *vm)
{
	if (vm)
		atomic_store(&vm->stop_event, 0);
}
