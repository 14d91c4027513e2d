/* The 16550 UART from a CPL-0 guest (tests/kvm/test_platform_uart.c), as a kernel's
 * serial driver uses it: masks the legacy PIC, enables the x2APIC, programs IOAPIC pin 4
 * (edge, vector 0x44, APIC id 0), probes the UART the way Linux's 8250 driver does
 * (scratch register, loopback, FIFO), sets 115200 8N1 through the divisor latch, writes
 * a greeting polling LSR.THRE, enables the receive interrupt with OUT2, and reports READY.
 * Then it waits in sti;hlt: the interrupt handler drains the receiver (IIR until "no
 * interrupt", LSR.DR, RBR) into rx_buf and reports (0x44 << 16 | bytes received so far).
 * A failed probe step returns PROBE_FAILED | step. */
#include "rt/rt.h"

#define COM1 0x3f8
#define RBR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define VECTOR 0x44u

#define READY 0x5541u /* "UA" */
#define PROBE_FAILED 0xbad00u

volatile uint8_t rx_buf[1024];
volatile uint32_t rx_len;
volatile uint32_t isr_count;

GUEST_INTERRUPT void uart_isr(struct interrupt_frame *f)
{
	(void)f;
	while (!(inb(COM1 + IIR) & 1)) {
		while (inb(COM1 + LSR) & 1) {
			uint8_t b = inb(COM1 + RBR);
			if (rx_len < sizeof rx_buf)
				rx_buf[rx_len] = b;
			rx_len++;
		}
	}
	isr_count++;
	x2apic_eoi();
	report(VECTOR << 16 | rx_len);
}

static void serial_puts(const char *s)
{
	for (; *s; s++) {
		while (!(inb(COM1 + LSR) & 0x20))
			cpu_relax();
		outb(COM1 + RBR, (uint8_t)*s);
	}
}

int guest_main(uint64_t arg)
{
	(void)arg;
	outb(0x21, 0xff); /* mask the 8259s: pin 4 must arrive only through the IOAPIC */
	outb(0xa1, 0xff);
	x2apic_enable();
	x2apic_svr_enable();
	ioapic_write(REDIR_HI(4), 0);
	ioapic_write(REDIR_LO(4), VECTOR); /* fixed, physical, edge, active high, unmasked */

	outb(COM1 + SCR, 0xa5);
	if (inb(COM1 + SCR) != 0xa5)
		return PROBE_FAILED | 1;
	outb(COM1 + MCR, 0x1a); /* loopback | OUT2 | RTS */
	if ((inb(COM1 + MSR) & 0xf0) != 0x90)
		return PROBE_FAILED | 2;
	outb(COM1 + RBR, 0x42); /* looped back, not sent */
	if (!(inb(COM1 + LSR) & 1) || inb(COM1 + RBR) != 0x42)
		return PROBE_FAILED | 3;
	outb(COM1 + MCR, 0);
	outb(COM1 + LCR, 0x80); /* DLAB */
	outb(COM1 + RBR, 1);    /* divisor 1: 115200 baud */
	outb(COM1 + IER, 0);
	outb(COM1 + LCR, 0x03); /* 8N1 */
	outb(COM1 + FCR, 0x07); /* FIFOs on and cleared, trigger 1 */
	if ((inb(COM1 + IIR) & 0xc0) != 0xc0)
		return PROBE_FAILED | 4;
	outb(COM1 + MCR, 0x0b); /* DTR | RTS | OUT2 (the PC's interrupt enable) */

	serial_puts("hello from the guest's 16550\r\n");
	outb(COM1 + IER, 0x01); /* received data available */
	report(READY);
	for (;;)
		sti_hlt();
}
