/* Interrupts at CPL 0 (tests/kvm/test_interrupts.c). Enables the x2APIC, programs IOAPIC
 * pin 5 (level, vector 0x41) and pin 6 (edge, vector 0x42) to APIC id 0, reports READY,
 * then waits in an sti;hlt loop. Each handler counts and reports
 * (vector << 16 | count) on the exit port *before* its EOI, so for the level-triggered
 * pin the host decides, while the guest is in the handler, whether the line is still
 * asserted at EOI (and the IOAPIC must deliver again) or lowered. */
#include "rt/rt.h"

#define LEVEL (1u << 15)

volatile uint32_t count40, count41, count42;

GUEST_INTERRUPT void msi_handler(struct interrupt_frame *f)
{
	(void)f;
	report(0x40u << 16 | ++count40);
	x2apic_eoi();
}

GUEST_INTERRUPT void level_handler(struct interrupt_frame *f)
{
	(void)f;
	report(0x41u << 16 | ++count41);
	x2apic_eoi();
}

GUEST_INTERRUPT void edge_handler(struct interrupt_frame *f)
{
	(void)f;
	report(0x42u << 16 | ++count42);
	x2apic_eoi();
}

int guest_main(uint64_t arg)
{
	(void)arg;
	/* Mask the legacy PIC (a no-op without one): in the kernel-irqchip composition
	 * GSIs 0-15 also reach the PIC, which comes out of reset unmasked with vector base 0,
	 * and KVM's BSP LAPIC accepts it through LVT0 (ExtINT), so pin 6 would also arrive
	 * as "vector 6". Every OS does this first. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	x2apic_enable();
	x2apic_svr_enable();
	ioapic_write(REDIR_HI(5), 0);          /* physical destination APIC id 0 */
	ioapic_write(REDIR_LO(5), 0x41 | LEVEL); /* fixed, active high, unmasked */
	ioapic_write(REDIR_HI(6), 0);
	ioapic_write(REDIR_LO(6), 0x42);
	uint32_t max_entry = ioapic_read(1) >> 16 & 0xff;
	uint32_t back = ioapic_read(REDIR_LO(5)) & 0xffff;
	/* READY: 'R' | number of redirection entries - 1 | read-back of entry 5. */
	report(0x52u << 24 | max_entry << 16 | back);
	for (;;)
		sti_hlt();
}
