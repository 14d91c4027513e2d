/* Holding a VM's vCPUs for a save, and finishing what their last exits left half done.
 *
 * KVM completes a port I/O or MMIO exit only at the next KVM_RUN: that is when it stores
 * an IN's value in RAX and advances RIP past the instruction, so state read before that would have the
 * instruction executed twice after a restore. KVM's documented way to finish it without
 * running the guest is a KVM_RUN with immediate_exit set: it completes the pending
 * operation, then returns -EINTR before guest entry. */
#include <stdlib.h>
#include <string.h>

#include "../core/vm_internal.h"
#include "../kvm/kvm.h"
#include "snapshot_internal.h"

/* How many further exits the completion of one pending I/O may take (a `rep ins` of a
 * page-crossing buffer exits once per chunk). Bounded so a save cannot spin. */
#define MAX_COMPLETION_EXITS 4096

/* The completion of a pending I/O exited again: serve the bus access like the run loop
 * does, so the instruction can finish. Returns 0 to re-enter, or -EAGAIN for an exit
 * that needs the application (its exit or fault port, an unclaimed access it asked to
 * see with VMM_VM_EXIT_ON_UNHANDLED_IO, anything else). */
static int serve_exit(vmm_vcpu *v)
{
	struct kvm_run *run = v->run;
	vmm_bus *bus = v->vm->bus;
	if (run->exit_reason == KVM_EXIT_IO) {
		uint16_t port = run->io.port;
		bool out = run->io.direction == KVM_EXIT_IO_OUT;
		if (port == v->vm->exit_port || port == v->vm->fault_port)
			goto app;
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
			int r = out ? vmm_bus_write(bus, VMM_BUS_PIO, port, data, run->io.size)
				    : vmm_bus_read(bus, VMM_BUS_PIO, port, data, run->io.size);
			if (r == -ENOENT && v->vm->exit_on_unhandled_io)
				goto app;
		}
		return 0;
	}
	if (run->exit_reason == KVM_EXIT_MMIO && run->mmio.len >= 1 && run->mmio.len <= 8) {
		int r = run->mmio.is_write
				? vmm_bus_write(bus, VMM_BUS_MMIO, run->mmio.phys_addr, run->mmio.data, run->mmio.len)
				: vmm_bus_read(bus, VMM_BUS_MMIO, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
		if (r == -ENOENT && v->vm->exit_on_unhandled_io)
			goto app;
		return 0;
	}
app:
	return vmm_err(-EAGAIN, "snapshot: vCPU %u: finishing its last instruction exited again (KVM exit %u): "
			"run it once more before saving", v->id, run->exit_reason);
}

static int complete_pending_io(vmm_vcpu *v)
{
	for (int n = 0; n < MAX_COMPLETION_EXITS; n++) {
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		int r = vmm_kvm_run(v->fd);
		/* A kick that arrived meanwhile stays pending (kick_pending is the truth). */
		if (!atomic_load(&v->kick_pending))
			__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (r == -EINTR || r == -EAGAIN)
			return 0;
		if (r < 0)
			return vmm_err(r, "snapshot: vCPU %u: KVM_RUN to complete its last I/O failed", v->id);
		if ((r = serve_exit(v)))
			return r;
	}
	return vmm_err(-EAGAIN, "snapshot: vCPU %u: its last instruction did not finish in %d exits", v->id,
		       MAX_COMPLETION_EXITS);
}

void snap_release_vcpus(struct snap_claim *c)
{
	for (size_t i = 0; i < c->n; i++)
		atomic_store(&c->vcpus[i]->in_run, false);
	if (c->vcpus != c->inline_vcpus)
		free(c->vcpus);
	c->vcpus = NULL;
	c->n = 0;
}

int snap_claim_vcpus(vmm_vm *vm, struct snap_claim *c)
{
	c->vcpus = NULL;
	c->n = 0;
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	if (vm->nr_vcpus <= SNAP_CLAIM_INLINE)
		c->vcpus = c->inline_vcpus;
	else if (!(c->vcpus = malloc(vm->nr_vcpus * sizeof *c->vcpus))) {
		r = vmm_err(-ENOMEM, "snapshot: out of memory");
		goto out;
	}
	for (size_t i = 0; i < vm->nr_vcpus; i++) {
		vmm_vcpu *v = vm->vcpus[i];
		/* The same flag vmm_vcpu_run takes: while we hold it, run refuses (-EBUSY). */
		if (atomic_exchange(&v->in_run, true)) {
			r = vmm_err(-EBUSY, "snapshot: vCPU %u is inside vmm_vcpu_run: pause every vCPU first "
					"(vmm_vcpu_kick, and let vmm_vcpu_run return)", v->id);
			goto out;
		}
		c->vcpus[c->n++] = v;
	}
out:
	pthread_mutex_unlock(&vm->lock);
	if (r)
		snap_release_vcpus(c);
	return r;
}

int snap_complete_io(const struct snap_claim *c, bool only_pending)
{
	for (size_t i = 0; i < c->n; i++) {
		vmm_vcpu *v = c->vcpus[i];
		/* KVM_RUN leaves the last exit's reason in the run page: only an I/O or MMIO
		 * exit leaves KVM something to finish at the next KVM_RUN (the exits libvmm
		 * enables; user-space MSR and hypercall exits are not). */
		if (only_pending && v->run->exit_reason != KVM_EXIT_IO && v->run->exit_reason != KVM_EXIT_MMIO)
			continue;
		int r = complete_pending_io(v);
		if (r)
			return r;
	}
	return 0;
}
