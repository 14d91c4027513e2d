/* User-space completion of instructions KVM's emulator gives up on.
 *
 * On hosts where ring-0 guest code is emulated (nested KVM such as PVM), KVM's
 * instruction emulator fails on some instructions that are easy to complete soundly from
 * user space. Each table entry matches the instruction bytes at RIP and completes the
 * instruction with the architectural effect, exceptions included. Add an entry to
 * extend: a match function on the bytes and a completion function (which may return
 * FIXUP_DECLINE for forms it does not handle). Anything not completed is reported to the
 * caller as an error with RIP, bytes and registers.
 *
 * The XSAVE family (fixup_xsave.c): on nested-PVM hosts XGETBV, XSAVE, XSAVEOPT and
 * XRSTOR at CPL 0 reach this table (XSETBV KVM's emulator completes by itself; its entry
 * is for hosts where it does not). All five are completed, so a Linux guest may keep
 * XSAVE on (no `noxsave`, which leaks YMM state between its processes). XSAVEC, XSAVES
 * and XRSTORS are not: XSAVES/XRSTORS move supervisor state that KVM does not expose to
 * user space, so no sound completion exists; XSAVEC has no user once XSAVES is hidden
 * (see fixup_xsave.c and guest/README.md). Memory operands go through fixup_mem.c, which
 * faults and sets accessed/dirty bits the way the CPU would. */
#include <string.h>

#include "../../kvm/kvm.h"
#include "fixup.h"

#define CR0_MP (1ull << 1)
#define CR0_TS (1ull << 3)
#define CR0_NE (1ull << 5)
#define FSW_ES (1u << 7)

enum { VEC_BP = 3, VEC_MF = 16 };

struct fixup {
	const char *name;
	/* Returns true if the bytes are this instruction (insn has len >= 1 bytes). */
	bool (*match)(const uint8_t *insn, size_t len);
	/* Completes it. Returns FIXUP_DONE, FIXUP_DECLINE or a negative errno. */
	int (*complete)(vmm_vcpu *v, const uint8_t *insn, size_t len, const struct kvm_regs *regs,
			const struct kvm_sregs *sregs);
	bool ring0_only; /* at CPL 3 privilege checks would apply that we do not model */
};

int vmm_fixup_advance_rip(vmm_vcpu *v, const struct kvm_regs *regs, uint64_t by)
{
	struct kvm_regs r = *regs;
	r.rip += by;
	int e = vmm_kvm_set_regs(v->fd, &r);
	return e < 0 ? vmm_err(e, "fix-up: KVM_SET_REGS failed") : 0;
}

/* Injects an exception (exception = true, error code if err >= 0) or an interrupt
 * vector, to be delivered at the next entry through the guest's IDT. */
static int inject(vmm_vcpu *v, uint8_t vector, bool exception, int64_t err)
{
	struct kvm_vcpu_events ev;
	int e = vmm_kvm_get_vcpu_events(v->fd, &ev);
	if (e < 0)
		return vmm_err(e, "fix-up: KVM_GET_VCPU_EVENTS failed");
	memset(&ev.exception, 0, sizeof ev.exception);
	if (exception) {
		ev.exception.injected = 1;
		ev.exception.nr = vector;
		if (err >= 0) {
			ev.exception.has_error_code = 1;
			ev.exception.error_code = (uint32_t)err;
		}
	} else {
		ev.interrupt.injected = 1;
		ev.interrupt.nr = vector;
	}
	ev.flags = 0;
	e = vmm_kvm_set_vcpu_events(v->fd, &ev);
	return e < 0 ? vmm_err(e, "fix-up: KVM_SET_VCPU_EVENTS failed") : 0;
}

int vmm_fixup_raise(vmm_vcpu *v, const struct kvm_sregs *sregs, uint8_t vector, int64_t err, uint64_t cr2)
{
	if (vector == FIXUP_VEC_PF) {
		struct kvm_sregs s = *sregs;
		s.cr2 = cr2;
		int e = vmm_kvm_set_sregs(v->fd, &s);
		if (e < 0)
			return vmm_err(e, "fix-up: KVM_SET_SREGS (CR2) failed");
	}
	return inject(v, vector, true, err);
}

static bool is_int3(const uint8_t *i, size_t len) { return len >= 1 && i[0] == 0xcc; }
static bool is_int_n(const uint8_t *i, size_t len) { return len >= 2 && i[0] == 0xcd; }
static bool is_fwait(const uint8_t *i, size_t len) { return len >= 1 && i[0] == 0x9b; }

/* INT3 is a trap: #BP is delivered with RIP after the instruction. */
static int complete_int3(vmm_vcpu *v, const uint8_t *insn, size_t len, const struct kvm_regs *regs,
			 const struct kvm_sregs *sregs)
{
	(void)insn; (void)len; (void)sregs;
	int r = vmm_fixup_advance_rip(v, regs, 1);
	return r ? r : inject(v, VEC_BP, true, -1);
}

static int complete_int_n(vmm_vcpu *v, const uint8_t *insn, size_t len, const struct kvm_regs *regs,
			  const struct kvm_sregs *sregs)
{
	(void)len; (void)sregs;
	int r = vmm_fixup_advance_rip(v, regs, 2);
	return r ? r : inject(v, insn[1], false, -1);
}

/* FWAIT checks for pending x87 exceptions: #NM if CR0.TS and CR0.MP are set, #MF if an
 * unmasked exception is pending (CR0.NE), otherwise it does nothing. */
static int complete_fwait(vmm_vcpu *v, const uint8_t *insn, size_t len, const struct kvm_regs *regs,
			  const struct kvm_sregs *sregs)
{
	(void)insn; (void)len;
	if ((sregs->cr0 & (CR0_TS | CR0_MP)) == (CR0_TS | CR0_MP))
		return inject(v, FIXUP_VEC_NM, true, -1);
	struct kvm_fpu fpu;
	int r = vmm_kvm_get_fpu(v->fd, &fpu);
	if (r < 0)
		return vmm_err(r, "fix-up: KVM_GET_FPU failed");
	if ((fpu.fsw & FSW_ES) && (sregs->cr0 & CR0_NE))
		return inject(v, VEC_MF, true, -1);
	return vmm_fixup_advance_rip(v, regs, 1);
}

static const struct fixup fixups[] = {
	{ "int3", is_int3, complete_int3, true },
	{ "int n", is_int_n, complete_int_n, true },
	{ "fwait", is_fwait, complete_fwait, false },
	{ "xgetbv", vmm_fixup_is_xgetbv, vmm_fixup_xgetbv, false },
	{ "xsetbv", vmm_fixup_is_xsetbv, vmm_fixup_xsetbv, false },
	{ "xsave/xsaveopt", vmm_fixup_is_xsave, vmm_fixup_xsave, false },
	{ "xrstor", vmm_fixup_is_xrstor, vmm_fixup_xrstor, false },
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
		r = f->complete(v, insn, len, &regs, &sregs);
		if (r < 0)
			return r;
		return r == FIXUP_DONE ? 1 : 0;
	}
	return 0;
}
