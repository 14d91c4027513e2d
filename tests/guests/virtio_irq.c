/* Interrupt-driven virtio at CPL 0 (tests/kvm/test_virtio_mmio.c, test_irq_*): the
 * echo device at 0xd0000000 interrupts through IOAPIC pin 5 (edge, vector 0x45). The
 * guest sends one request and halts until the handler saw the used-buffer interrupt;
 * the handler reads InterruptStatus and acknowledges it. Ring-0 code is interpreted on
 * nested-PVM hosts, so this stays short. Results in res[]: interrupts taken, the OR of
 * the InterruptStatus values seen, used length, InterruptStatus after the handler. */
#include "rt/virtio.h"

#define BASE 0xd0000000ull
#define VECTOR 0x45
#define QSIZE 4

volatile uint64_t res[4];
static uint8_t ring[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t ping[8], pong[8];
static struct vio_dev dev;

GUEST_INTERRUPT void vio_irq_handler(struct interrupt_frame *f)
{
	(void)f;
	uint32_t isr = mmio_read32(BASE + VIO_INTERRUPT_STATUS);
	mmio_write32(BASE + VIO_INTERRUPT_ACK, isr);
	res[1] |= isr;
	res[0]++;
	x2apic_eoi();
}

int guest_main(uint64_t arg)
{
	(void)arg;
	outb(0x21, 0xff); /* mask the legacy PIC (see interrupts.c) */
	outb(0xa1, 0xff);
	x2apic_enable();
	x2apic_svr_enable();
	ioapic_write(REDIR_HI(5), 0);      /* pin 5: destination APIC id 0 */
	ioapic_write(REDIR_LO(5), VECTOR); /* fixed, edge, active high, unmasked */

	if (vio_init(&dev, BASE, 0x4242, 0) != 0 || vio_queue_setup(&dev, 0, QSIZE, ring) != 0)
		return 0xe01;
	vio_driver_ok(&dev);
	ping[0] = 0x5a;
	struct vio_buf b[2] = { { ping, 8, 0 }, { pong, 8, 1 } };
	if (vio_add(&dev, 0, b, 2) < 0)
		return 0xe02;
	vio_notify(&dev, 0);
	while (res[0] == 0)
		sti_hlt();
	cli();
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, 1000000) < 0)
		return 0xe03;
	res[2] = len;
	res[3] = vio_reg_read(&dev, VIO_INTERRUPT_STATUS);
	return 0x100;
}
