/* Unit tests for the CMOS RTC through a standalone bus: the time in BCD and binary, 24-
 * and 12-hour, from a fixed clock and from the host's; setting the time with and
 * without register B's SET bit; registers A-D, the century, the NMI bit, NVRAM. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>

enum { SEC = 0, MIN = 2, HOUR = 4, WDAY = 6, MDAY = 7, MON = 8, YEAR = 9, A = 10, B = 11, C = 12, D = 13, CENTURY = 0x32 };

struct fixture {
	vmm_bus *bus;
	vmm_rtc *rtc;
	int64_t now; /* the fixed clock */
};

static int64_t fixed_clock(void *ctx)
{
	return ((struct fixture *)ctx)->now;
}

static uint8_t cmos(struct fixture *f, uint8_t index)
{
	uint8_t v = 0;
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, 0x70, &index, 1), 0);
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, 0x71, &v, 1), 0);
	return v;
}

static void cmos_set(struct fixture *f, uint8_t index, uint8_t v)
{
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, 0x70, &index, 1), 0);
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, 0x71, &v, 1), 0);
}

/* 2024-02-29 (a Thursday) 13:05:09 UTC. */
#define LEAP_DAY_PM 1709211909

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->now = LEAP_DAY_PM;
	assert_int_equal(vmm_bus_create(&f->bus), 0);
	vmm_rtc_opts o = VMM_RTC_OPTS_INIT;
	o.bus = f->bus;
	o.clock = fixed_clock;
	o.ctx = f;
	assert_int_equal(vmm_rtc_create(&f->rtc, NULL, &o), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	vmm_rtc_destroy(f->rtc);
	vmm_bus_destroy(f->bus);
	free(f);
	return 0;
}

static void test_bcd_24h(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(cmos(f, B), 0x02); /* BCD, 24-hour */
	assert_int_equal(cmos(f, SEC), 0x09);
	assert_int_equal(cmos(f, MIN), 0x05);
	assert_int_equal(cmos(f, HOUR), 0x13);
	assert_int_equal(cmos(f, WDAY), 5); /* Sunday = 1 */
	assert_int_equal(cmos(f, MDAY), 0x29);
	assert_int_equal(cmos(f, MON), 0x02);
	assert_int_equal(cmos(f, YEAR), 0x24);
	assert_int_equal(cmos(f, CENTURY), 0x20);
	/* The NMI-disable bit of the index is ignored. */
	assert_int_equal(cmos(f, 0x80 | MIN), 0x05);
	/* The clock moves on. */
	f->now += 3600 * 11 + 60 * 54 + 51; /* 2024-03-01 01:00:00 */
	assert_int_equal(cmos(f, HOUR), 0x01);
	assert_int_equal(cmos(f, MIN), 0x00);
	assert_int_equal(cmos(f, SEC), 0x00);
	assert_int_equal(cmos(f, MDAY), 0x01);
	assert_int_equal(cmos(f, MON), 0x03);
	assert_int_equal(cmos(f, WDAY), 6);
}

static void test_binary_and_12h(void **state)
{
	struct fixture *f = *state;
	cmos_set(f, B, 0x06); /* binary, 24-hour */
	assert_int_equal(cmos(f, SEC), 9);
	assert_int_equal(cmos(f, HOUR), 13);
	assert_int_equal(cmos(f, MDAY), 29);
	assert_int_equal(cmos(f, YEAR), 24);
	assert_int_equal(cmos(f, CENTURY), 20);
	cmos_set(f, B, 0x04); /* binary, 12-hour: 1 PM */
	assert_int_equal(cmos(f, HOUR), 0x80 | 1);
	cmos_set(f, B, 0x00); /* BCD, 12-hour */
	assert_int_equal(cmos(f, HOUR), 0x81);
	f->now = 1704067200; /* 2024-01-01 00:00:00: 12 AM */
	assert_int_equal(cmos(f, HOUR), 0x12);
	f->now += 12 * 3600; /* 12 PM */
	assert_int_equal(cmos(f, HOUR), 0x92);
	f->now += 11 * 3600 + 59 * 60; /* 11:59 PM */
	assert_int_equal(cmos(f, HOUR), 0x91);
	assert_int_equal(cmos(f, MIN), 0x59);
}

static void test_status_registers(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(cmos(f, A), 0x26);
	cmos_set(f, A, 0xff);
	assert_int_equal(cmos(f, A), 0x7f); /* UIP never set, never writable */
	assert_int_equal(cmos(f, C), 0);
	cmos_set(f, C, 0xff);
	assert_int_equal(cmos(f, C), 0);
	assert_int_equal(cmos(f, D), 0x80);
	cmos_set(f, D, 0x00);
	assert_int_equal(cmos(f, D), 0x80);
	/* The index port reads as nothing. */
	uint8_t v = 0;
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, 0x70, &v, 1), 0);
	assert_int_equal(v, 0xff);
}

static void test_nvram(void **state)
{
	struct fixture *f = *state;
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i == CENTURY)
			continue;
		assert_int_equal(cmos(f, (uint8_t)i), 0); /* incl. the memory-size bytes */
		cmos_set(f, (uint8_t)i, (uint8_t)(i ^ 0xa5));
	}
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != CENTURY)
			assert_int_equal(cmos(f, (uint8_t)i), (uint8_t)(i ^ 0xa5));
	/* Alarm bytes are storage. */
	cmos_set(f, 1, 0x42);
	assert_int_equal(cmos(f, 1), 0x42);
	assert_int_equal(cmos(f, SEC), 0x09);
	/* Index 0xff is 0x7f with the NMI bit. */
	assert_int_equal(cmos(f, 0xff), (uint8_t)(0x7f ^ 0xa5));
}

static void test_set_time(void **state)
{
	struct fixture *f = *state;
	/* As Linux's mc146818_set_time: SET, the fields, then SET off. */
	cmos_set(f, B, 0x82);
	f->now += 100; /* time frozen while SET is on */
	assert_int_equal(cmos(f, SEC), 0x09);
	cmos_set(f, SEC, 0x30);
	cmos_set(f, MIN, 0x45);
	cmos_set(f, HOUR, 0x22);
	cmos_set(f, MDAY, 0x31);
	cmos_set(f, MON, 0x12);
	cmos_set(f, YEAR, 0x99);
	cmos_set(f, CENTURY, 0x19);
	assert_int_equal(cmos(f, YEAR), 0x99);
	cmos_set(f, B, 0x02);
	/* 1999-12-31 22:45:30, then ticking with the clock. */
	assert_int_equal(cmos(f, SEC), 0x30);
	assert_int_equal(cmos(f, YEAR), 0x99);
	assert_int_equal(cmos(f, CENTURY), 0x19);
	assert_int_equal(cmos(f, WDAY), 6); /* a Friday */
	f->now += 3600 + 15 * 60 - 30; /* +1:14:30 -> 2000-01-01 00:00:00 */
	assert_int_equal(cmos(f, SEC), 0x00);
	assert_int_equal(cmos(f, MIN), 0x00);
	assert_int_equal(cmos(f, HOUR), 0x00);
	assert_int_equal(cmos(f, MDAY), 0x01);
	assert_int_equal(cmos(f, MON), 0x01);
	assert_int_equal(cmos(f, YEAR), 0x00);
	assert_int_equal(cmos(f, CENTURY), 0x20);

	/* A single field without SET takes effect at once; binary, 12-hour PM. */
	cmos_set(f, B, 0x04);
	cmos_set(f, HOUR, 0x80 | 3);
	assert_int_equal(cmos(f, HOUR), 0x80 | 3);
	cmos_set(f, B, 0x06);
	assert_int_equal(cmos(f, HOUR), 15);
	assert_int_equal(cmos(f, MDAY), 1);

	/* Garbage (invalid BCD, month 0x99) neither crashes nor leaves invalid BCD. */
	cmos_set(f, B, 0x02);
	cmos_set(f, MON, 0x99);
	cmos_set(f, SEC, 0xff);
	cmos_set(f, CENTURY, 0xff);
	static const uint8_t regs[] = { SEC, MIN, HOUR, MDAY, MON, YEAR, CENTURY };
	for (size_t i = 0; i < sizeof regs; i++) {
		uint8_t v = cmos(f, regs[i]);
		assert_true((v & 0x0f) <= 9 && (v >> 4) <= 9);
	}
}

static void test_host_clock(void **state)
{
	(void)state;
	vmm_bus *bus;
	vmm_rtc *rtc;
	assert_int_equal(vmm_bus_create(&bus), 0);
	vmm_rtc_opts o = VMM_RTC_OPTS_INIT;
	o.bus = bus;
	o.port = 0x170;
	assert_int_equal(vmm_rtc_create(&rtc, NULL, &o), 0);
	uint8_t idx = SEC, v;
	/* Port 0x70 is not this one's. */
	assert_int_equal(vmm_bus_write(bus, VMM_BUS_PIO, 0x70, &idx, 1), -ENOENT);
	for (int tries = 0; tries < 5; tries++) {
		/* The clock the device reads: time() may be the coarse clock, a tick behind. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		time_t before = ts.tv_sec;
		struct tm tm;
		gmtime_r(&before, &tm);
		idx = SEC;
		assert_int_equal(vmm_bus_write(bus, VMM_BUS_PIO, 0x170, &idx, 1), 0);
		assert_int_equal(vmm_bus_read(bus, VMM_BUS_PIO, 0x171, &v, 1), 0);
		uint8_t min = 0, hour = 0, day = 0;
		idx = MIN;
		vmm_bus_write(bus, VMM_BUS_PIO, 0x170, &idx, 1);
		vmm_bus_read(bus, VMM_BUS_PIO, 0x171, &min, 1);
		idx = HOUR;
		vmm_bus_write(bus, VMM_BUS_PIO, 0x170, &idx, 1);
		vmm_bus_read(bus, VMM_BUS_PIO, 0x171, &hour, 1);
		idx = MDAY;
		vmm_bus_write(bus, VMM_BUS_PIO, 0x170, &idx, 1);
		vmm_bus_read(bus, VMM_BUS_PIO, 0x171, &day, 1);
		clock_gettime(CLOCK_REALTIME, &ts);
		if (ts.tv_sec != before)
			continue; /* a second boundary passed: read again */
		assert_int_equal(v, (tm.tm_sec / 10) << 4 | tm.tm_sec % 10);
		assert_int_equal(min, (tm.tm_min / 10) << 4 | tm.tm_min % 10);
		assert_int_equal(hour, (tm.tm_hour / 10) << 4 | tm.tm_hour % 10);
		assert_int_equal(day, (tm.tm_mday / 10) << 4 | tm.tm_mday % 10);
		vmm_rtc_destroy(rtc);
		vmm_bus_destroy(bus);
		return;
	}
	fail_msg("the second never held still");
}

static void test_bad_options(void **state)
{
	struct fixture *f = *state;
	vmm_rtc *r = NULL;
	vmm_rtc_opts o = VMM_RTC_OPTS_INIT;
	assert_int_equal(vmm_rtc_create(&r, NULL, &o), -EINVAL);
	assert_int_equal(vmm_rtc_create(&r, NULL, NULL), -EINVAL);
	o.bus = f->bus;
	assert_int_equal(vmm_rtc_create(&r, NULL, &o), -EEXIST);
	o.port = 0xffff;
	assert_int_equal(vmm_rtc_create(&r, NULL, &o), -EINVAL);
	assert_null(r);
	vmm_rtc_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bcd_24h, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_and_12h, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nvram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_time, setup, teardown),
		cmocka_unit_test(test_host_clock),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
