/* The CMOS RTC from a guest (tests/kvm/test_platform_rtc.c), read as Linux's
 * mc146818_get_time does: wait for UIP clear, read the fields, re-read until the seconds
 * agree. Fills `bcd` (register B as firmware leaves it: BCD, 24-hour), reports 1; then
 * `bin` (binary, 24-hour), reports 2; then `h12` (the hour in binary 12-hour format),
 * reports 3; returns 0. Register D's VRT bit must be set, else returns 0xbad0d. */
#include "rt/rt.h"

struct rtc_time {
	uint32_t sec, min, hour, wday, mday, mon, year, century;
};

volatile struct rtc_time bcd, bin;
volatile uint32_t h12;

static uint8_t cmos(uint8_t index)
{
	outb(0x70, index);
	return inb(0x71);
}

static void cmos_set(uint8_t index, uint8_t v)
{
	outb(0x70, index);
	outb(0x71, v);
}

static void read_time(volatile struct rtc_time *t)
{
	do {
		while (cmos(0x0a) & 0x80)
			cpu_relax();
		t->sec = cmos(0x00);
		t->min = cmos(0x02);
		t->hour = cmos(0x04);
		t->wday = cmos(0x06);
		t->mday = cmos(0x07);
		t->mon = cmos(0x08);
		t->year = cmos(0x09);
		t->century = cmos(0x32);
	} while (cmos(0x00) != t->sec);
}

int guest_main(uint64_t arg)
{
	(void)arg;
	if (!(cmos(0x0d) & 0x80))
		return 0xbad0d;
	read_time(&bcd);
	report(1);
	uint8_t b = cmos(0x0b);
	cmos_set(0x0b, (uint8_t)(b | 0x04 | 0x02)); /* binary, 24-hour */
	read_time(&bin);
	report(2);
	cmos_set(0x0b, (uint8_t)((b | 0x04) & ~0x02)); /* binary, 12-hour */
	h12 = cmos(0x04);
	report(3);
	cmos_set(0x0b, b);
	return 0;
}
