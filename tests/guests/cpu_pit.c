/* The in-kernel PIT delivering through the in-kernel IOAPIC (tests/kvm/test_cpu_platform.c).
 * Runs at CPL 0. Masks the legacy PIC, enables the x2APIC, routes IOAPIC pin 0 to vector
 * PIN0_VECTOR and pin 2 to PIN2_VECTOR (both edge, fixed, APIC id 0, unmasked: pin 0 is
 * where libvmm's identity GSI routing delivers the PIT's GSI 0; pin 2 is where a PC with
 * an IRQ0 -> GSI2 override would), checks that both entries read back as written, then
 * programs PIT channel 0 for mode 2 (rate generator) at PIT_COUNT and waits with
 * sti;hlt until `arg` interrupts arrived on either pin. Each handler counts and EOIs.
 * Returns PIT_DONE; the counts are in pin0_count and pin2_count (the host reads them
 * even when the guest never finishes). Returns PIT_BAD_IOAPIC | pin if a read-back
 * differs. */
#include "rt/rt.h"


#define PIN0_VECTOR 0x30
#define PIN2_VECTOR 0x32
#define PIT_COUNT 11932 /* 1193182 Hz / 11932 = 100 Hz: one tick per 10 ms */

#define PIT_DONE 0x7170d000u
#define PIT_BAD_IOAPIC 0x7170ba00u

volatile uint32_t pin0_count, pin2_count;
volatile uint32_t pit_programmed; /* 1 once the PIT is running */

GUEST_INTERRUPT void pit_pin0_handler(struct interrupt_frame *f)
{
	(void)f;
	pin0_count = pin0_count + 1;
	x2apic_eoi();
}

GUEST_INTERRUPT void pit_pin2_handler(struct interrupt_frame *f)
{
	(void)f;
	pin2_count = pin2_count + 1;
	x2apic_eoi();
}

static int route(uint32_t pin, uint32_t vector)
{
	ioapic_write(REDIR_HI(pin), 0);      /* physical destination: APIC id 0 */
	ioapic_write(REDIR_LO(pin), vector); /* fixed, edge, active high, unmasked */
	if (ioapic_read(REDIR_HI(pin)) >> 24 != 0 || (ioapic_read(REDIR_LO(pin)) & 0x1ffff) != vector)
		return -1;
	return 0;
}

int guest_main(uint64_t arg)
{
	uint32_t want = (uint32_t)arg;
	outb(0x21, 0xff); /* mask both PICs: IRQ 0 must arrive through the IOAPIC only */
	outb(0xa1, 0xff);
	x2apic_enable();
	x2apic_svr_enable();
	if (route(0, PIN0_VECTOR))
		return (int)(PIT_BAD_IOAPIC | 0);
	if (route(2, PIN2_VECTOR))
		return (int)(PIT_BAD_IOAPIC | 2);

	outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
	outb(0x40, PIT_COUNT & 0xff);
	outb(0x40, PIT_COUNT >> 8);
	pit_programmed = 1;

	while (pin0_count + pin2_count < want)
		sti_hlt();
	cli();
	puts("pit: pin0 ");
	put_dec(pin0_count);
	puts(" pin2 ");
	put_dec(pin2_count);
	putc('\n');
	return (int)PIT_DONE;
}
