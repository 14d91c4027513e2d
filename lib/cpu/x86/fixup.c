/* User-space completion of instructions KVM's emulator gives up on.
 *
 * On hosts where ring-0 guest code is emulated (nested KVM such as PVM), KVM's
 * instruction emulator fails on some instructions that are easy to complete soundly from
 * user space. Each table entry matches the instruction bytes at RIP and completes the
 * instruction with the architectural effect. Add an entry to extend. Anything not in the
 * table is reported to the caller as an error with RIP, bytes and registers. */
#include <string.h>

#include "../../core/vm_internal.h"
#include "../../kvm/kvm.h"

#define CR0_MP (1ull << 1)
#define CR0_TS (1ull << 3)
#define CR0_NE (1ull << 5)
#define FSW_ES (1u << 7)

enum { VEC_BP = 3, VEC_NM = 7, VEC_MF = 16 };

struct fixup {
	const char *name;
	/* Returns true if the bytes are this instruction (insn has len >= 1 bytes). */
	bool (*match)(const uint8_t *insn, size_t len);
	/* Completes it. Returns 0 or a negative errno. */
	int (*complete)(vmm_vcpu *v, const uint8_t *insn, const struct kvm_regs *regs,
			const struct kvm_sregs *sregs);
	bool ring0_only; /* at CPL 3 privilege checks would apply that we do not model */
};

static int advance_rip(vmm_vcpu *v, const struct kvm_regs *regs, uint64_t by)
{
	struct kvm_regs r = *regs;
	r.rip += by;
	int e = vmm_kvm_set_regs(v->fd, &r);
	return e < 0 ? vmm_err(e, "fix-up: KVM_SET_REGS failed") : 0;
}

/* Injects an exception (exception = true) or an interrupt vector, to be delivered at the
 * next entry through the guest's IDT. */
static int inject(vmm_vcpu *v, uint8_t vector, bool exception)
{
	struct kvm_vcpu_events ev;
	int e = vmm_kvm_get_vcpu_events(v->fd, &ev);
	if (e < 0)
		return vmm_err(e, "fix-up: KVM_GET_VCPU_EVENTS failed");
	memset(&ev.exception, 0, sizeof ev.exception);
	if (exception) {
		ev.exception.injected = 1;
		ev.exception.nr = vector;
	} else {
		ev.interrupt.injected = 1;
		ev.interrupt.nr = vector;
	}
	ev.flags = 0;
	e = vmm_kvm_set_vcpu_events(v->fd, &ev);
	return e < 0 ? vmm_err(e, "fix-up: KVM_SET_VCPU_EVENTS failed") : 0;
}

static bool is_int3(const uint8_t *i, size_t len) { return len >= 1 && i[0] == 0xcc; }
static bool is_int_n(const uint8_t *i, size_t len) { return len >= 2 && i[0] == 0xcd; }
static bool is_fwait(const uint8_t *i, size_t len) { return len >= 1 && i[0] == 0x9b; }

/* INT3 is a trap: #BP is delivered with RIP after the instruction. */
static int complete_int3(vmm_vcpu *v, const uint8_t *insn, const struct kvm_regs *regs,
			 const struct kvm_sregs *sregs)
{
	(void)insn; (void)sregs;
	int r = advance_rip(v, regs, 1);
	return r ? r : inject(v, VEC_BP, true);
}

static int complete_int_n(vmm_vcpu *v, const uint8_t *insn, const struct kvm_regs *regs,
			  const struct kvm_sregs *sregs)
{
	(void)sregs;
	int r = advance_rip(v, regs, 2);
	return r ? r : inject(v, insn[1], false);
}

/* FWAIT checks for pending x87 exceptions: #NM if CR0.TS and CR0.MP are set, #MF if an
 * unmasked exception is pending (CR0.NE), otherwise it does nothing. */
static int complete_fwait(vmm_vcpu *v, const uint8_t *insn, const struct kvm_regs *regs,
			  const struct kvm_sregs *sregs)
{
	(void)insn;
	if ((sregs->cr0 & (CR0_TS | CR0_MP)) == (CR0_TS | CR0_MP))
		return inject(v, VEC_NM, true);
	struct kvm_fpu fpu;
	int r = vmm_kvm_get_fpu(v->fd, &fpu);
	if (r < 0)
		return vmm_err(r, "fix-up: KVM_GET_FPU failed");
	if ((fpu.fsw & FSW_ES) && (sregs->cr0 & CR0_NE))
		return inject(v, VEC_MF, true);
	return advance_rip(v, regs, 1);
}

static const struct fixup fixups[] = {
	{ "int3", is_int3, complete_int3, true },
	{ "int n", is_int_n, complete_int_n, true },
	{ "fwait", is_fwait, complete_fwait, false },
};

int vmm_fixup_emulation(vmm_vcpu *v, const uint8_t *insn, size_t len, uint64_t rip)
{
	(void)rip;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	for (size_t i = 0; i < sizeof fixups / sizeof fixups[0]; i++) {
		const struct fixup *f = &fixups[i];
		if (!f->match(insn, len))
			continue;
		int r = vmm_kvm_get_regs(v->fd, &regs);
		if (r >= 0)
			r = vmm_kvm_get_sregs(v->fd, &sregs);
		if (r < 0)
			return vmm_err(r, "fix-up: reading registers failed");
		if (f->ring0_only && (sregs.cs.selector & 3) != 0)
			return 0;
		r = f->complete(v, insn, &regs, &sregs);
		return r ? r : 1;
	}
	return 0;
}
