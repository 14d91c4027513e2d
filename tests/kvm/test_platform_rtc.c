/* The CMOS RTC read by a real guest (tests/guests/platform_rtc.c) the way Linux reads
 * it, in BCD and in binary format: the time the guest sees is the host's, within a few
 * seconds; the 12-hour format agrees with the 24-hour one. */
#include "harness/harness.h"

#include <stdio.h>
#include <time.h>

struct rtc_time {
	uint32_t sec, min, hour, wday, mday, mon, year, century;
};

static vmm_rtc *rtc;

static int teardown(void **state)
{
	vmm_rtc_destroy(rtc);
	rtc = NULL;
	return kt_teardown(state);
}

static uint32_t from_bcd(uint32_t v)
{
	assert_true((v & 0x0f) <= 9 && (v >> 4) <= 9);
	return (v >> 4) * 10 + (v & 0x0f);
}

/* Checks the guest's fields against the host clock; returns the guest's time. */
static time_t check_time(const struct rtc_time *g, bool bcd)
{
	uint32_t (*conv)(uint32_t) = bcd ? from_bcd : NULL;
	struct tm tm = { 0 };
	tm.tm_sec = (int)(conv ? conv(g->sec) : g->sec);
	tm.tm_min = (int)(conv ? conv(g->min) : g->min);
	tm.tm_hour = (int)(conv ? conv(g->hour) : g->hour);
	tm.tm_mday = (int)(conv ? conv(g->mday) : g->mday);
	tm.tm_mon = (int)(conv ? conv(g->mon) : g->mon) - 1;
	int year = (int)((conv ? conv(g->century) : g->century) * 100 + (conv ? conv(g->year) : g->year));
	tm.tm_year = year - 1900;
	time_t guest = timegm(&tm);
	time_t host = time(NULL);
	long diff = (long)(host - guest);
	if (diff < -1 || diff > 5)
		fail_msg("guest RTC %04d-%02d-%02d %02d:%02d:%02d is %ld s off the host's clock", year,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, diff);
	/* Day of the week, 1 = Sunday. */
	struct tm check;
	gmtime_r(&guest, &check);
	assert_int_equal(conv ? conv(g->wday) : g->wday, (uint32_t)check.tm_wday + 1);
	return guest;
}

static void test_guest_reads_host_time(void **state)
{
	kt_opts o = { .guest = "platform_rtc", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	kt_check(vmm_rtc_create(&rtc, t->vm, NULL), "vmm_rtc_create");

	struct rtc_time g;
	kt_run_expect(t, 0, 1);
	kt_read(t, kt_sym(t, "bcd"), &g, sizeof g);
	check_time(&g, true);

	kt_run_expect(t, 0, 2);
	kt_read(t, kt_sym(t, "bin"), &g, sizeof g);
	check_time(&g, false);

	kt_run_expect(t, 0, 3);
	uint32_t h12 = (uint32_t)kt_read_u64(t, kt_sym(t, "h12"));
	uint32_t h24 = (h12 & 0x7f) % 12 + (h12 & 0x80 ? 12 : 0);
	assert_true((h12 & 0x7f) >= 1 && (h12 & 0x7f) <= 12);
	/* The hour may have turned between the two reads only at hh:59:59. */
	assert_true(h24 == g.hour || h24 == (g.hour + 1) % 24);

	kt_run_expect(t, 0, 0);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_guest_reads_host_time, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
