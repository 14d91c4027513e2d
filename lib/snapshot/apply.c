/* Apply: creates the vCPUs of a validated snapshot description in a new VM and loads
 * their state, then the VM-level state.
 *
 * The order matters to KVM:
 *  - CPUID first (vCPU creation): which MSRs and XSAVE components exist depends on it;
 *  - special registers before the LAPIC: APIC_BASE (x2APIC or xAPIC mode) says how KVM
 *    reads the LAPIC page (in x2APIC mode the ID register is the vCPU id);
 *  - the LAPIC before the MSRs: the TSC-deadline MSR arms the LAPIC timer only when the
 *    timer is in TSC-deadline mode;
 *  - MP state and pending events after the LAPIC (an INIT/SIPI state needs it);
 *  - the PIC and IOAPIC after every LAPIC, so an interrupt they re-deliver on load
 *    lands in a LAPIC that already has its final state;
 *  - the kvmclock last, after the TSC MSRs it is computed from.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/vm_internal.h"
#include "../kvm/kvm.h"
#include "snapshot_internal.h"

static int build_cpuid(const struct snap_vcpu *v, vmm_cpuid **out)
{
	int r = vmm_cpuid_create(out);
	for (uint32_t i = 0; !r && i < v->nr_cpuid; i++)
		r = vmm_cpuid_set(*out, &v->cpuid[i]);
	if (r) {
		vmm_cpuid_destroy(*out);
		*out = NULL;
		return vmm_err(r, "snapshot: vCPU %u: CPUID table rejected", v->id);
	}
	return 0;
}

/* Keeps the guest's TSC rate: a different host frequency is scaled by KVM if it can. */
static int apply_tsc_khz(vmm_vcpu *vc, const struct snap_vcpu *v, uint32_t flags)
{
	if (!v->tsc_khz || vmm_kvm_check_extension(vc->vm->vm_fd, KVM_CAP_GET_TSC_KHZ) <= 0)
		return 0;
	int cur = vmm_kvm_get_tsc_khz(vc->fd);
	if (cur <= 0 || (uint32_t)cur == v->tsc_khz)
		return 0;
	int r = vmm_kvm_check_extension(vc->vm->vm_fd, KVM_CAP_TSC_CONTROL) > 0
			? vmm_kvm_set_tsc_khz(vc->fd, v->tsc_khz) : -ENOTSUP;
	if (r < 0 && !(flags & VMM_SNAPSHOT_RESTORE_ANY_TSC_KHZ))
		return vmm_err(-ENOTSUP, "snapshot: vCPU %u: the guest's TSC ran at %u kHz, this host's at %d kHz, and "
				"KVM cannot scale it (VMM_SNAPSHOT_RESTORE_ANY_TSC_KHZ accepts the change)",
			       v->id, v->tsc_khz, cur);
	return 0;
}

/* ---- prepared state: built once, loaded many times without allocating ---- */

static int prepare_vcpu(struct snap_vcpu *v, bool no_lapic)
{
	if (!v->set_msrs) {
		v->set_msrs = calloc(1, sizeof *v->set_msrs + (size_t)v->nr_msrs * sizeof v->set_msrs->entries[0]);
		if (!v->set_msrs)
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		uint32_t n = 0;
		for (uint32_t i = 0; i < v->nr_msrs; i++)
			if (!no_lapic || !snap_msr_needs_lapic(v->msrs[i].index))
				v->set_msrs->entries[n++] = (struct kvm_msr_entry){ .index = v->msrs[i].index,
										    .data = v->msrs[i].value };
		v->set_msrs->nmsrs = n;
	}
	if ((v->have & SNAP_HAVE_XSAVE) && !v->set_xsave) {
		/* Zero-extended: KVM_SET_XSAVE reads as many bytes as this host's
		 * KVM_CAP_XSAVE2 says (snap_check_host checks that is at most this). */
		if (!(v->set_xsave = calloc(1, SNAP_MAX_XSAVE)))
			return vmm_err(-ENOMEM, "snapshot: out of memory");
		memcpy(v->set_xsave, v->xsave, v->xsave_len);
	}
	/* GET reports which optional fields it filled; SET needs to be told to take the
	 * NMI-pending and SIPI-vector fields too. */
	v->set_events = v->events;
	v->set_events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	return 0;
}

int snap_prepare(struct snap_desc *d)
{
	if (d->prepared)
		return 0;
	for (uint32_t i = 0; i < d->nr_vcpus; i++) {
		int r = prepare_vcpu(&d->vcpus[i], d->irqchip == VMM_IRQCHIP_NONE);
		if (r)
			return r;
	}
	d->prepared = true;
	return 0;
}

int snap_check_host(vmm_vm *vm, const struct snap_desc *d)
{
	bool xsave = false, xcrs = false;
	for (uint32_t i = 0; i < d->nr_vcpus; i++) {
		xsave |= (d->vcpus[i].have & SNAP_HAVE_XSAVE) != 0;
		xcrs |= (d->vcpus[i].have & SNAP_HAVE_XCRS) != 0;
	}
	if (xsave) {
		if (vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_XSAVE) <= 0)
			return vmm_err(-ENOTSUP, "snapshot: it has XSAVE state and this host's KVM lacks KVM_CAP_XSAVE");
		int size2 = vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_XSAVE2);
		if (size2 > (int)SNAP_MAX_XSAVE)
			return vmm_err(-ENOTSUP, "snapshot: this host's XSAVE area is %d bytes, over the %u supported",
				       size2, SNAP_MAX_XSAVE);
	}
	if (xcrs && vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_XCRS) <= 0)
		return vmm_err(-ENOTSUP, "snapshot: it has XCR state and this host's KVM lacks KVM_CAP_XCRS");
	return 0;
}

static int load_fpu(vmm_vcpu *vc, const struct snap_vcpu *v)
{
	int r;
	if (!(v->have & SNAP_HAVE_XSAVE)) {
		r = vmm_kvm_set_fpu(vc->fd, &v->fpu);
		return r < 0 ? vmm_err(r, "snapshot: vCPU %u: KVM_SET_FPU failed", v->id) : 0;
	}
	if ((r = vmm_kvm_set_xsave(vc->fd, v->set_xsave)) < 0)
		return vmm_err(r, "snapshot: vCPU %u: KVM_SET_XSAVE failed (state components this host does not "
				  "support?)", v->id);
	if ((v->have & SNAP_HAVE_XCRS) && (r = vmm_kvm_set_xcrs(vc->fd, &v->xcrs)) < 0)
		return vmm_err(r, "snapshot: vCPU %u: KVM_SET_XCRS (XCR0 %#llx) failed", v->id,
			       (unsigned long long)(v->xcrs.nr_xcrs ? v->xcrs.xcrs[0].value : 0));
	return 0;
}

static int load_msrs(vmm_vcpu *vc, const struct snap_vcpu *v)
{
	const struct kvm_msrs *m = v->set_msrs;
	if (!m->nmsrs)
		return 0;
	int r = vmm_kvm_set_msrs(vc->fd, m);
	if (r < 0)
		return vmm_err(r, "snapshot: vCPU %u: KVM_SET_MSRS failed", v->id);
	if ((uint32_t)r < m->nmsrs)
		return vmm_err(-EINVAL, "snapshot: vCPU %u: KVM refused MSR %#x = %#llx", v->id, m->entries[r].index,
			       (unsigned long long)m->entries[r].data);
	return 0;
}

/* What follows the registers in both load paths: FPU/XSAVE, LAPIC, MSRs, MP state, the
 * pending events unless the caller loaded them already (sync_load), debug registers,
 * and the library's own per-vCPU facts. */
static int load_rest(vmm_vcpu *vc, const struct snap_vcpu *v, bool events)
{
	int r;
	const char *what;
	if ((r = load_fpu(vc, v)))
		return r;
	if ((v->have & SNAP_HAVE_LAPIC) && (r = vmm_kvm_set_lapic(vc->fd, &v->lapic)) < 0) {
		what = "KVM_SET_LAPIC";
		goto fail;
	}
	if ((r = load_msrs(vc, v)))
		return r;
	struct kvm_mp_state mp = { .mp_state = v->mp_state };
	if ((r = vmm_kvm_set_mp_state(vc->fd, &mp)) < 0) {
		what = "KVM_SET_MP_STATE";
		goto fail;
	}
	if (events && (r = vmm_kvm_set_vcpu_events(vc->fd, &v->set_events)) < 0) {
		what = "KVM_SET_VCPU_EVENTS";
		goto fail;
	}
	if ((r = vmm_kvm_set_debugregs(vc->fd, &v->debugregs)) < 0) {
		what = "KVM_SET_DEBUGREGS";
		goto fail;
	}
	vc->has_idt = v->lib_flags & SNAP_VCPU_HAS_IDT;
	vc->idt_gpa = v->idt_gpa;
	return 0;
fail:
	return vmm_err(r, "snapshot: vCPU %u: %s failed", v->id, what);
}

int snap_load_vcpu(vmm_vcpu *vc, const struct snap_vcpu *v)
{
	int r;
	if ((r = vmm_kvm_set_sregs(vc->fd, &v->sregs)) < 0)
		return vmm_err(r, "snapshot: vCPU %u: KVM_SET_SREGS failed (invalid control registers or segments?)",
			       v->id);
	if ((r = vmm_kvm_set_regs(vc->fd, &v->regs)) < 0)
		return vmm_err(r, "snapshot: vCPU %u: KVM_SET_REGS failed", v->id);
	return load_rest(vc, v, true);
}

/* The sync-regs fields a reset loads through KVM_RUN. */
#define RESET_SYNC (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS)

bool snap_can_sync_regs(vmm_vm *vm)
{
	int r = vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_SYNC_REGS);
	return r > 0 && ((unsigned)r & RESET_SYNC) == RESET_SYNC;
}

/* Special registers, registers and events in one KVM_RUN with immediate_exit: KVM
 * applies kvm_dirty_regs before it checks immediate_exit and returns -EINTR without
 * entering the guest. One vCPU ioctl instead of three (each costs a vcpu_load, several
 * microseconds on nested KVM). The vCPU's pending I/O must be completed before (KVM
 * completes it after applying these). */
static int sync_load(vmm_vcpu *vc, const struct snap_vcpu *v)
{
	struct kvm_run *run = vc->run;
	run->s.regs.regs = v->regs;
	run->s.regs.sregs = v->sregs;
	run->s.regs.events = v->set_events;
	run->kvm_valid_regs = 0;
	run->kvm_dirty_regs = RESET_SYNC;
	__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	int r = vmm_kvm_run(vc->fd);
	/* A kick that arrived meanwhile stays pending (kick_pending is the truth). */
	if (!atomic_load(&vc->kick_pending))
		__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	bool applied = !(run->kvm_dirty_regs & RESET_SYNC);
	run->kvm_dirty_regs = 0;
	/* KVM returns early for a vCPU in the UNINITIALIZED state (an AP waiting for its
	 * SIPI), before it looks at kvm_dirty_regs: then the caller loads them the slow
	 * way. */
	if (r == -EINTR || r == -EAGAIN || r == 0)
		return applied ? 0 : 1;
	return vmm_err(r, "snapshot: vCPU %u: loading registers, special registers and events through KVM_RUN "
			  "failed (invalid control registers or segments?)", v->id);
}

int snap_reset_vcpu(vmm_vcpu *vc, const struct snap_vcpu *v, bool sync)
{
	if (!sync)
		return snap_load_vcpu(vc, v);
	/* The order of snap_load_vcpu, except that the events come with the special
	 * registers, before the LAPIC and MP state (they are independent of both but for
	 * INIT/SIPI bookkeeping, which a running guest's snapshot does not have pending). */
	int r = sync_load(vc, v);
	if (r == 1)
		return snap_load_vcpu(vc, v);
	return r ? r : load_rest(vc, v, false);
}

int snap_load_vm(vmm_vm *vm, const struct snap_desc *d)
{
	int r = vmm_vm_realize_irqchip(vm); /* a snapshot of a VM without vCPUs */
	if (r)
		return r;
	if (d->have & SNAP_HAVE_IRQCHIP) {
		struct kvm_irqchip chip;
		for (uint32_t id = 0; id < 3; id++) {
			memset(&chip, 0, sizeof chip);
			chip.chip_id = id;
			if (id == KVM_IRQCHIP_IOAPIC)
				chip.chip.ioapic = d->ioapic;
			else
				chip.chip.pic = d->pic[id];
			if ((r = vmm_kvm_set_irqchip(vm->vm_fd, &chip)) < 0)
				return vmm_err(r, "snapshot: KVM_SET_IRQCHIP %u failed", id);
		}
	}
	if ((d->have & SNAP_HAVE_PIT) && (r = vmm_kvm_set_pit2(vm->vm_fd, &d->pit)) < 0)
		return vmm_err(r, "snapshot: KVM_SET_PIT2 failed");
	if (d->have & SNAP_HAVE_CLOCK) {
		/* The guest's clock continues from the saved value: the time the snapshot
		 * spent on disk (or since the take, for a reset) is not seen by the guest. */
		struct kvm_clock_data c;
		memset(&c, 0, sizeof c);
		c.clock = d->clock;
		if ((r = vmm_kvm_set_clock(vm->vm_fd, &c)) < 0)
			return vmm_err(r, "snapshot: KVM_SET_CLOCK failed");
	}
	return 0;
}

int snap_apply(vmm_vm *vm, const struct snap_desc *d, uint32_t flags)
{
	if (!d->prepared)
		return vmm_err(-EINVAL, "snapshot: internal error, state not prepared");
	int r = snap_check_host(vm, d);
	if (r)
		return r;
	if ((d->have & SNAP_HAVE_CLOCK) && vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_ADJUST_CLOCK) <= 0)
		return vmm_err(-ENOTSUP, "snapshot: the kvmclock cannot be set: KVM lacks KVM_CAP_ADJUST_CLOCK");
	for (uint32_t i = 0; i < d->nr_vcpus; i++) {
		const struct snap_vcpu *v = &d->vcpus[i];
		vmm_cpuid *cpuid;
		if ((r = build_cpuid(v, &cpuid)))
			return r;
		vmm_vcpu_opts o = VMM_VCPU_OPTS_INIT;
		o.id = v->id;
		o.cpuid = cpuid;
		vmm_vcpu *vc;
		r = vmm_vcpu_create(&vc, vm, &o);
		vmm_cpuid_destroy(cpuid);
		if (r)
			return r;
		if ((r = apply_tsc_khz(vc, v, flags)))
			return r;
		if ((r = snap_load_vcpu(vc, v)))
			return r;
	}
	return snap_load_vm(vm, d);
}

int snap_new_vm(const struct snap_desc *d, const vmm_vm_opts *host, vmm_vm **out)
{
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	if (host && vmm_opts_copy(&vo, sizeof vo, host))
		return vmm_err(-EINVAL, "snapshot: vm_opts->size is too small");
	vo.irqchip = (vmm_irqchip_mode)d->irqchip;
	vo.flags = d->vm_flags | (vo.flags & VMM_VM_DONTFORK); /* the host's own choice */
	vo.exit_port = d->exit_port;
	vo.fault_port = d->fault_port;
	return vmm_vm_create(out, &vo);
}
