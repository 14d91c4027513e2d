/* Port I/O and MMIO of every size to the host's test devices (tests/kvm/test_pio_mmio.c).
 * Writes known values, reads the devices' known values back and prints them on the
 * console; the exit code is 0x100 | a bit per unclaimed-address check that saw all-ones. */
#include "rt/rt.h"

#define TEST_PORT 0x100            /* 8 ports: the host records every access */
#define TEST_MMIO 0xd0000000ull    /* 4 KiB: the host records every access */
#define UNCLAIMED_PORT 0x300
#define UNCLAIMED_MMIO 0xd0100000ull

int guest_main(uint64_t arg)
{
	(void)arg;
	outb(TEST_PORT + 0, 0xa5);
	outw(TEST_PORT + 2, 0xbeef);
	outl(TEST_PORT + 4, 0xdeadbeef);
	uint8_t pb = inb(TEST_PORT + 1);
	uint16_t pw = inw(TEST_PORT + 2);
	uint32_t pl = inl(TEST_PORT + 4);

	mmio_write8(TEST_MMIO + 0x10, 0x5a);
	mmio_write16(TEST_MMIO + 0x20, 0x1234);
	mmio_write32(TEST_MMIO + 0x40, 0x89abcdef);
	mmio_write64(TEST_MMIO + 0x80, 0x0123456789abcdefull);
	uint8_t mb = mmio_read8(TEST_MMIO + 0x11);
	uint16_t mw = mmio_read16(TEST_MMIO + 0x22);
	uint32_t ml = mmio_read32(TEST_MMIO + 0x44);
	uint64_t mq = mmio_read64(TEST_MMIO + 0x88);

	puts("pio ");
	put_hex(pb);
	putc(' ');
	put_hex(pw);
	putc(' ');
	put_hex(pl);
	puts("\nmmio ");
	put_hex(mb);
	putc(' ');
	put_hex(mw);
	putc(' ');
	put_hex(ml);
	putc(' ');
	put_hex(mq);
	putc('\n');

	/* Nobody claims these: writes vanish, reads see all-ones. */
	outb(UNCLAIMED_PORT, 0x11);
	mmio_write32(UNCLAIMED_MMIO, 0x22);
	uint32_t ok = 0;
	if (inb(UNCLAIMED_PORT) == 0xff)
		ok |= 1;
	if (inw(UNCLAIMED_PORT) == 0xffff)
		ok |= 2;
	if (inl(UNCLAIMED_PORT) == 0xffffffffu)
		ok |= 4;
	if (mmio_read32(UNCLAIMED_MMIO) == 0xffffffffu)
		ok |= 8;
	if (mmio_read64(UNCLAIMED_MMIO + 8) == ~0ull)
		ok |= 16;
	return 0x100 | ok;
}
