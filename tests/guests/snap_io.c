/* Snapshot tests (tests/kvm/test_snapshot_vm.c): a port read the VMM has not completed
 * yet. Run with VMM_VM_EXIT_ON_UNHANDLED_IO, the `inb` from the unclaimed port 0x99 ends
 * vmm_vcpu_run with VMM_EXIT_IO while KVM still holds the instruction half done; a save
 * at that point must complete it (with the all-ones an unclaimed port reads), so the
 * restored guest goes on and reports 0x100 | value instead of reading the port again. */
#include "rt/rt.h"

int guest_main(uint64_t arg)
{
	(void)arg;
	uint8_t v = inb(0x99);
	report(0x100u | v);
	return 0x200;
}
