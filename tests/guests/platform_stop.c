/* Reboot and power-off requests from a guest (tests/kvm/test_platform_stop.c), at CPL 3
 * (port I/O with IOPL 3). The argument selects:
 *  1: i8042: check the status register, run the controller self-test (0xAA -> 0x55),
 *     report I8042_OK, then command 0xFE (pulse reset) and report AFTER.
 *  2: ACPI power-off: clear the wake status, write SLP_TYP=S5 | SLP_EN to the sleep
 *     port, report AFTER.
 *  3: spin forever (a second vCPU that only a VM-wide stop ends). */
#include "rt/rt.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define SLEEP_PORT 0x600 /* VMM_POWER_PORT_DEFAULT */

#define I8042_OK 0x8042u
#define AFTER 0xaf7e4u
#define BAD 0xbad00u

int guest_main(uint64_t arg)
{
	switch (arg) {
	case 1: {
		uint8_t st = inb(I8042_CMD);
		if (st == 0xff || (st & 0x01))
			return BAD | st;
		outb(I8042_CMD, 0xaa);
		for (int i = 0; !(inb(I8042_CMD) & 0x01); i++)
			if (i > 1000)
				return BAD | 0x100;
		uint8_t v = inb(I8042_DATA);
		if (v != 0x55)
			return BAD | 0x200 | v;
		report(I8042_OK);
		outb(I8042_CMD, 0xfe);
		report(AFTER);
		return 0;
	}
	case 2:
		outb(SLEEP_PORT, 0x80);          /* WAK_STS */
		outb(SLEEP_PORT, (5 << 2) | 0x20); /* SLP_TYP = S5, SLP_EN */
		report(AFTER);
		return 0;
	default:
		for (;;)
			cpu_relax();
	}
}
