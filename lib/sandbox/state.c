/* Which reset a call needs: memory only, or the whole VM.
 *
 * A full reset (vmm_snapshot_reset) loads every vCPU register set again: about ten vCPU
 * ioctls, more than the call itself costs on nested KVM. After a call that returned
 * normally, the guest SDK's runtime (sdk/guest/src/start.S) leaves the vCPU exactly as
 * the snapshot has it: stopped at the same OUT, general registers and RFLAGS set to
 * fixed values, and it resets the FPU/SSE/AVX state itself on the way into the next call.
 * Then copying back the dirtied pages is enough (VMM_SNAPSHOT_RESET_MEMORY_ONLY).
 *
 * The host does not take the guest's word for it: every exit brings the registers,
 * special registers and pending events along in the run page (KVM's sync regs, no extra
 * ioctl), and the vCPU state at a call's DONE exit must match the state at init's DONE
 * exit, which is the snapshot's, in all of them: RIP (the loop's OUT, so the next call enters through the FPU reset), RSP, every
 * general register, RFLAGS, segments, control registers (CR2 included: a page fault
 * would have ended the call anyway), EFER, the descriptor tables, and no pending
 * exception, interrupt or NMI. Anything else, any error, a guest at CPL 0 (its runtime
 * cannot reset the FPU there), a runtime that does not announce the FPU reset (RSI at
 * DONE, vmm_guest_rt_clean), or a host without sync regs: the full reset.
 * What a memory-only reset leaves: the TSC keeps running (a guest that reads it sees time
 * pass between calls, as it would on any machine), and MSRs, which code at CPL 3 cannot
 * write. */
#include <string.h>

#include "../core/vm_internal.h"
#include "../kvm/kvm.h"
#include "sandbox_internal.h"

#define SBX_SYNC (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS)
#define SBX_RT_CLEAN 0x5b0dc1eau /* sdk/guest/src/runtime.c VMM_GUEST_RT_CLEAN */

void sbx_state_init(vmm_sandbox *sb)
{
	int r = vmm_kvm_check_extension(sb->vm->vm_fd, KVM_CAP_SYNC_REGS);
	sb->sync_regs = r > 0 && ((unsigned)r & SBX_SYNC) == SBX_SYNC;
}

void sbx_state_arm(vmm_sandbox *sb)
{
	/* Set before every run: a full reset loads registers through the same fields and
	 * clears them. */
	if (sb->sync_regs)
		sb->vcpu->run->kvm_valid_regs = SBX_SYNC;
}

void sbx_state_record(vmm_sandbox *sb)
{
	const struct kvm_sync_regs *s = &sb->vcpu->run->s.regs;
	sb->ref_regs = s->regs;
	sb->ref_sregs = s->sregs;
	sb->ref_events = s->events;
	sb->can_mem_only = sb->sync_regs && !(sb->flags & VMM_SANDBOX_RING0) &&
			   (uint32_t)s->regs.rsi == SBX_RT_CLEAN && !(s->regs.rsi >> 32);
	sb->clean = false;
}

bool sbx_state_clean(const vmm_sandbox *sb)
{
	if (!sb->can_mem_only)
		return false;
	const struct kvm_sync_regs *s = &sb->vcpu->run->s.regs;
	return !memcmp(&s->regs, &sb->ref_regs, sizeof s->regs) &&
	       !memcmp(&s->sregs, &sb->ref_sregs, sizeof s->sregs) &&
	       !memcmp(&s->events, &sb->ref_events, sizeof s->events);
}
