/* Snapshot tests (tests/kvm/test_snapshot_*.c): interrupt-controller state across a
 * save and restore. At CPL 0 (kept tiny: ring-0 code is interpreted on nested hosts):
 * masks the legacy PIC, enables the x2APIC (MSR-based), programs IOAPIC pin 6 edge
 * triggered to vector 0x42 for APIC id 0, reports READY, then halts with interrupts
 * enabled. The handler reports (0x42 << 16 | count). After a restore the host pulses pin
 * 6 in the new VM: the report arrives only if the IOAPIC redirection entry, the x2APIC
 * mode and SVR, the IDT in memory and the halted vCPU all came back. */
#include "rt/rt.h"


volatile uint32_t count42;

GUEST_INTERRUPT void edge_handler(struct interrupt_frame *f)
{
	(void)f;
	report(0x42u << 16 | ++count42);
	x2apic_eoi();
}

int guest_main(uint64_t arg)
{
	(void)arg;
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	x2apic_enable();
	x2apic_svr_enable();
	ioapic_write(REDIR_HI(6), 0);
	ioapic_write(REDIR_LO(6), 0x42);
	report(0x52454459); /* "REDY" */
	for (;;)
		sti_hlt();
}
