/* The token bucket of lib/devices/rate_limit.c, on a clock the test drives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "devices/rate_limit.h"

#define SEC 1000000000ull
#define T0 (5 * SEC)

static void test_disabled(void **state)
{
	(void)state;
	vmm_rate_limit rl;
	vmm_rate_limit_init(&rl, 0, 0, T0);
	assert_false(vmm_rate_limit_enabled(&rl));
	for (int i = 0; i < 100000; i++) {
		assert_int_equal(vmm_rate_limit_wait(&rl, T0), 0);
		vmm_rate_limit_consume(&rl, 1, 1 << 30);
	}
}

/* 10 ops/s: a burst of 10, then one every 100 ms. */
static void test_ops(void **state)
{
	(void)state;
	vmm_rate_limit rl;
	vmm_rate_limit_init(&rl, 10, 0, T0);
	assert_true(vmm_rate_limit_enabled(&rl));
	for (int i = 0; i < 10; i++) {
		assert_int_equal(vmm_rate_limit_wait(&rl, T0), 0);
		vmm_rate_limit_consume(&rl, 1, 12345);
	}
	uint64_t w = vmm_rate_limit_wait(&rl, T0);
	assert_true(w > 0);
	assert_true(w <= SEC / 10);
	assert_true(vmm_rate_limit_wait(&rl, T0 + SEC / 10 - 1) > 0);
	assert_int_equal(vmm_rate_limit_wait(&rl, T0 + SEC / 10), 0);
	vmm_rate_limit_consume(&rl, 1, 0);
	assert_true(vmm_rate_limit_wait(&rl, T0 + SEC / 10) > 0);

	/* Time spent with a full bucket earns nothing: a burst 50 ms after creation
	 * still waits the whole 100 ms for the next token. */
	vmm_rate_limit_init(&rl, 10, 0, T0);
	uint64_t t1 = T0 + SEC / 20;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(vmm_rate_limit_wait(&rl, t1), 0);
		vmm_rate_limit_consume(&rl, 1, 0);
	}
	assert_true(vmm_rate_limit_wait(&rl, t1 + SEC / 10 - 1) > 0);
	assert_int_equal(vmm_rate_limit_wait(&rl, t1 + SEC / 10), 0);

	/* Over a long run the average is the rate: count starts over 10 s in 1 ms steps. */
	vmm_rate_limit_init(&rl, 10, 0, T0);
	unsigned started = 0;
	for (uint64_t t = T0; t <= T0 + 10 * SEC; t += SEC / 1000) {
		while (vmm_rate_limit_wait(&rl, t) == 0) {
			vmm_rate_limit_consume(&rl, 1, 0);
			started++;
		}
	}
	assert_int_equal(started, 10 + 100); /* the burst, then 10 per second */
}

/* Fractions accumulate: polled every 1 ms, a rate of 3/s still yields 3 per second. */
static void test_fractions(void **state)
{
	(void)state;
	vmm_rate_limit rl;
	vmm_rate_limit_init(&rl, 3, 0, T0);
	vmm_rate_limit_consume(&rl, 3, 0);
	unsigned started = 0;
	for (uint64_t t = T0; t <= T0 + 100 * SEC; t += SEC / 1000) {
		if (vmm_rate_limit_wait(&rl, t) == 0) {
			vmm_rate_limit_consume(&rl, 1, 0);
			started++;
		}
	}
	assert_int_equal(started, 300);
}

/* Bytes: a request may overdraw the bucket; the next waits until the debt is paid. */
static void test_bytes_debt(void **state)
{
	(void)state;
	vmm_rate_limit rl;
	vmm_rate_limit_init(&rl, 0, 1000, T0);
	assert_int_equal(vmm_rate_limit_wait(&rl, T0), 0);
	vmm_rate_limit_consume(&rl, 1, 5000); /* 1000 in the bucket: 4000 in debt */
	uint64_t w = vmm_rate_limit_wait(&rl, T0);
	assert_int_equal(w, 4 * SEC);
	assert_true(vmm_rate_limit_wait(&rl, T0 + 4 * SEC - 1000) > 0);
	assert_int_equal(vmm_rate_limit_wait(&rl, T0 + 4 * SEC), 0);
	/* The bucket never holds more than a second's worth, however long it idles. */
	assert_int_equal(vmm_rate_limit_wait(&rl, T0 + 100 * SEC), 0);
	vmm_rate_limit_consume(&rl, 1, 1000);
	assert_int_equal(vmm_rate_limit_wait(&rl, T0 + 100 * SEC), 0);
	vmm_rate_limit_consume(&rl, 1, 1);
	assert_true(vmm_rate_limit_wait(&rl, T0 + 100 * SEC) > 0);
}

/* Both limits: the later of the two decides. */
static void test_both(void **state)
{
	(void)state;
	vmm_rate_limit rl;
	vmm_rate_limit_init(&rl, 1, 1 << 20, T0);
	vmm_rate_limit_consume(&rl, 1, 3u << 20);
	uint64_t w = vmm_rate_limit_wait(&rl, T0);
	assert_int_equal(w, 2 * SEC); /* bytes: 2 MiB of debt at 1 MiB/s; ops: 1 s */
}

/* Huge rates and clock oddities stay sane. */
static void test_extremes(void **state)
{
	(void)state;
	vmm_rate_limit rl;
	vmm_rate_limit_init(&rl, UINT64_MAX, UINT64_MAX, T0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(vmm_rate_limit_wait(&rl, T0 + (uint64_t)i), 0);
		vmm_rate_limit_consume(&rl, 1, UINT32_MAX);
	}
	vmm_rate_limit_init(&rl, 1, 1, T0);
	vmm_rate_limit_consume(&rl, UINT64_MAX, UINT64_MAX);
	uint64_t w = vmm_rate_limit_wait(&rl, T0 - SEC); /* time going backwards */
	assert_true(w > 0);
	assert_true(w <= 1000 * SEC); /* clamped for the timer */
	/* The clamped debt (2^62 tokens at 1/s) outlasts the clock: still waiting. */
	assert_true(vmm_rate_limit_wait(&rl, UINT64_MAX) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_fractions),
		cmocka_unit_test(test_bytes_debt),
		cmocka_unit_test(test_both),
		cmocka_unit_test(test_extremes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
