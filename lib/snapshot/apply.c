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

static int apply_fpu(vmm_vcpu *vc, const struct snap_vcpu *v)
{
	int vm_fd = vc->vm->vm_fd, r;
	if (!(v->have & SNAP_HAVE_XSAVE)) {
		r = vmm_kvm_set_fpu(vc->fd, &v->fpu);
		return r < 0 ? vmm_err(r, "snapshot: vCPU %u: KVM_SET_FPU failed", v->id) : 0;
	}
	if (vmm_kvm_check_extension(vm_fd, KVM_CAP_XSAVE) <= 0)
		return vmm_err(-ENOTSUP, "snapshot: vCPU %u has XSAVE state and this host's KVM lacks KVM_CAP_XSAVE",
			       v->id);
	/* KVM_SET_XSAVE reads as many bytes as this host's KVM_CAP_XSAVE2 says: give it a
	 * zero-extended copy if the saved image is shorter. */
	int size2 = vmm_kvm_check_extension(vm_fd, KVM_CAP_XSAVE2);
	size_t len = size2 > (int)v->xsave_len ? (size_t)size2 : v->xsave_len;
	uint8_t *buf = calloc(1, len);
	if (!buf)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	memcpy(buf, v->xsave, v->xsave_len);
	r = vmm_kvm_set_xsave(vc->fd, buf);
	free(buf);
	if (r < 0)
		return vmm_err(r, "snapshot: vCPU %u: KVM_SET_XSAVE failed (state components this host does not "
				  "support?)", v->id);
	if (v->have & SNAP_HAVE_XCRS) {
		if (vmm_kvm_check_extension(vm_fd, KVM_CAP_XCRS) <= 0)
			return vmm_err(-ENOTSUP, "snapshot: vCPU %u has XCR state and this host's KVM lacks KVM_CAP_XCRS",
				       v->id);
		if ((r = vmm_kvm_set_xcrs(vc->fd, &v->xcrs)) < 0)
			return vmm_err(r, "snapshot: vCPU %u: KVM_SET_XCRS (XCR0 %#llx) failed", v->id,
				       (unsigned long long)(v->xcrs.nr_xcrs ? v->xcrs.xcrs[0].value : 0));
	}
	return 0;
}

static int apply_msrs(vmm_vcpu *vc, const struct snap_vcpu *v)
{
	if (!v->nr_msrs)
		return 0;
	struct kvm_msrs *b = calloc(1, sizeof *b + (size_t)v->nr_msrs * sizeof b->entries[0]);
	if (!b)
		return vmm_err(-ENOMEM, "snapshot: out of memory");
	b->nmsrs = v->nr_msrs;
	for (uint32_t i = 0; i < v->nr_msrs; i++)
		b->entries[i] = (struct kvm_msr_entry){ .index = v->msrs[i].index, .data = v->msrs[i].value };
	int r = vmm_kvm_set_msrs(vc->fd, b);
	free(b);
	if (r < 0)
		return vmm_err(r, "snapshot: vCPU %u: KVM_SET_MSRS failed", v->id);
	if ((uint32_t)r < v->nr_msrs)
		return vmm_err(-EINVAL, "snapshot: vCPU %u: KVM refused MSR %#x = %#llx", v->id, v->msrs[r].index,
			       (unsigned long long)v->msrs[r].value);
	return 0;
}

static int apply_vcpu_state(vmm_vcpu *vc, const struct snap_vcpu *v, uint32_t flags)
{
	int r;
	const char *what;
	if ((r = apply_tsc_khz(vc, v, flags)))
		return r;
	if ((r = vmm_kvm_set_sregs(vc->fd, &v->sregs)) < 0) {
		what = "KVM_SET_SREGS (invalid control registers or segments?)";
		goto fail;
	}
	if ((r = vmm_kvm_set_regs(vc->fd, &v->regs)) < 0) {
		what = "KVM_SET_REGS";
		goto fail;
	}
	if ((r = apply_fpu(vc, v)))
		return r;
	if ((v->have & SNAP_HAVE_LAPIC) && (r = vmm_kvm_set_lapic(vc->fd, &v->lapic)) < 0) {
		what = "KVM_SET_LAPIC";
		goto fail;
	}
	if ((r = apply_msrs(vc, v)))
		return r;
	struct kvm_mp_state mp = { .mp_state = v->mp_state };
	if ((r = vmm_kvm_set_mp_state(vc->fd, &mp)) < 0) {
		what = "KVM_SET_MP_STATE";
		goto fail;
	}
	/* GET reports which optional fields it filled; SET needs to be told to take the
	 * NMI-pending and SIPI-vector fields too. */
	struct kvm_vcpu_events ev = v->events;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	if ((r = vmm_kvm_set_vcpu_events(vc->fd, &ev)) < 0) {
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

static int apply_vm_state(vmm_vm *vm, const struct snap_desc *d)
{
	int r;
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
		if (vmm_kvm_check_extension(vm->vm_fd, KVM_CAP_ADJUST_CLOCK) <= 0)
			return vmm_err(-ENOTSUP, "snapshot: the kvmclock cannot be set: KVM lacks KVM_CAP_ADJUST_CLOCK");
		/* The guest's clock continues from the saved value: the time the snapshot
		 * spent on disk is not seen by the guest. */
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
	for (uint32_t i = 0; i < d->nr_vcpus; i++) {
		const struct snap_vcpu *v = &d->vcpus[i];
		vmm_cpuid *cpuid;
		int r = build_cpuid(v, &cpuid);
		if (r)
			return r;
		vmm_vcpu_opts o = VMM_VCPU_OPTS_INIT;
		o.id = v->id;
		o.cpuid = cpuid;
		vmm_vcpu *vc;
		r = vmm_vcpu_create(&vc, vm, &o);
		vmm_cpuid_destroy(cpuid);
		if (r)
			return r;
		if ((r = apply_vcpu_state(vc, v, flags)))
			return r;
	}
	return apply_vm_state(vm, d);
}
