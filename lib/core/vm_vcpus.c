/* The VM's vCPU list seen from outside: count and indexed access (vm.h). */
#include "vm_internal.h"

size_t vmm_vm_vcpu_count(vmm_vm *vm)
{
	if (!vm)
		return 0;
	pthread_mutex_lock(&vm->lock);
	size_t n = vm->nr_vcpus;
	pthread_mutex_unlock(&vm->lock);
	return n;
}

vmm_vcpu *vmm_vm_get_vcpu(vmm_vm *vm, size_t i)
{
	if (!vm)
		return NULL;
	pthread_mutex_lock(&vm->lock);
	vmm_vcpu *v = i < vm->nr_vcpus ? vm->vcpus[i] : NULL;
	pthread_mutex_unlock(&vm->lock);
	return v;
}
