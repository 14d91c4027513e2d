/* virtio-rng end to end (guest: tests/guests/virtio_rng.c): random bytes reach the
 * guest through the real ring, used lengths are exact, only writable buffers are
 * touched, a request never gets more than max_bytes_per_request, and a 1 MiB request
 * costs the host no memory of its size (Firecracker #5762). */
#include "harness/virtio_harness.h"

#include <linux/virtio_config.h>
#include <stdlib.h>
#include <string.h>

struct rng_result {
	uint32_t len;
	uint32_t nonzero;
	uint64_t sum;
};

#define BIG (1u << 20)

static uint64_t checksum(const uint8_t *p, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static size_t count_byte(const uint8_t *p, size_t n, uint8_t b)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += p[i] == b;
	return c;
}

static vmm_virtio_mmio *setup(void **state, vmm_irqchip_mode irqchip, uint32_t max_bytes, vt_env **out)
{
	kt_opts o = { .guest = "virtio_rng", .cpl = 3, .irqchip = irqchip };
	vt_env *e = vt_create(state, &o);
	vmm_virtio_rng_opts ro = VMM_VIRTIO_RNG_OPTS_INIT;
	ro.max_bytes_per_request = max_bytes;
	vmm_virtio_device *rng;
	kt_check(vmm_virtio_rng_create(&rng, &ro), "vmm_virtio_rng_create");
	*out = e;
	return vt_attach(e, 0, rng);
}

static void basic(void **state, vmm_irqchip_mode irqchip)
{
	vt_env *e;
	vmm_virtio_mmio *t = setup(state, irqchip, 0, &e);
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);

	struct rng_result res[8];
	kt_read(e->kt, kt_sym(e->kt, "results"), res, sizeof res);
	uint8_t small[4][256], multi[600], readable[64], ind[256];
	kt_read(e->kt, kt_sym(e->kt, "small"), small, sizeof small);
	kt_read(e->kt, kt_sym(e->kt, "multi"), multi, sizeof multi);
	kt_read(e->kt, kt_sym(e->kt, "readable"), readable, sizeof readable);
	kt_read(e->kt, kt_sym(e->kt, "indirect_buf"), ind, sizeof ind);

	for (int k = 0; k < 4; k++) {
		assert_int_equal(res[k].len, 256);
		/* The guest saw exactly what is in memory, and it is random, not zeros. */
		assert_true(res[k].sum == checksum(small[k], 256));
		assert_true(res[k].nonzero >= 230);
		assert_true(count_byte(small[k], 256, 0) <= 26);
	}
	assert_memory_not_equal(small[0], small[1], 256);
	assert_memory_not_equal(small[2], small[3], 256);

	/* Three writable segments behind a readable one: 600 bytes, all filled. */
	assert_int_equal(res[4].len, 600);
	assert_true(res[4].sum == checksum(multi, 600));
	assert_true(count_byte(multi, 600, 0) < 30);
	assert_true(count_byte(multi, 100, 0) < 10 && count_byte(multi + 500, 100, 0) < 10);
	/* The device-readable buffer was not written. */
	assert_int_equal(count_byte(readable, sizeof readable, 0x5a), sizeof readable);

	/* Indirect chain (the transport offers INDIRECT_DESC and the guest accepted it). */
	assert_int_equal(res[6].len, 256);
	assert_true(res[6].sum == checksum(ind, 256));
	assert_true(count_byte(ind, 256, 0) < 26);

	uint32_t st = vmm_virtio_mmio_status(t);
	assert_true(st & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(st & VIRTIO_CONFIG_S_NEEDS_RESET);
	vmm_virtio_mmio_stats stats;
	vmm_virtio_mmio_get_stats(t, &stats);
	assert_true(stats.notifies >= 6);
	/* The guest polls, but the device still raised one interrupt per batch. */
	assert_true(stats.interrupts >= 6);
}

static void test_basic(void **state) { basic(state, VMM_IRQCHIP_KERNEL); }
static void test_basic_split_irqchip(void **state) { basic(state, VMM_IRQCHIP_SPLIT); }

/* The default limit (64 KiB) caps a 1 MiB request; the rest stays untouched. */
static void test_default_limit(void **state)
{
	vt_env *e;
	setup(state, VMM_IRQCHIP_KERNEL, 0, &e);
	uint64_t big = kt_sym(e->kt, "big");
	uint8_t *buf = malloc(BIG);
	assert_non_null(buf);
	memset(buf, 0xaa, BIG);
	kt_write(e->kt, big, buf, BIG);
	kt_set_arg(e->kt, 0, 2);
	kt_run_expect(e->kt, 0, 0x101);
	kt_run_expect(e->kt, 0, 0x102);
	struct rng_result res[2];
	kt_read(e->kt, kt_sym(e->kt, "results"), res, sizeof res);
	assert_int_equal(res[1].len, 64 * 1024);
	kt_read(e->kt, big, buf, BIG);
	assert_true(count_byte(buf, 64 * 1024, 0xaa) < 1024);
	assert_int_equal(count_byte(buf + 64 * 1024, BIG - 64 * 1024, 0xaa), BIG - 64 * 1024);
	free(buf);
}

/* A small explicit limit. */
static void test_small_limit(void **state)
{
	vt_env *e;
	setup(state, VMM_IRQCHIP_KERNEL, 100, &e);
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);
	struct rng_result res[8];
	kt_read(e->kt, kt_sym(e->kt, "results"), res, sizeof res);
	for (int k = 0; k < 4; k++)
		assert_int_equal(res[k].len, 100);
	assert_int_equal(res[4].len, 100);
	uint8_t multi[600];
	kt_read(e->kt, kt_sym(e->kt, "multi"), multi, sizeof multi);
	/* Only the first segment (100 bytes) was filled. */
	assert_int_equal(count_byte(multi + 100, 500, 0), 500);
	assert_true(count_byte(multi, 100, 0) < 10);
}

/* With a 2 MiB limit a 1 MiB request is filled completely, straight into guest memory:
 * the host's peak RSS does not grow by anything like the request. */
static void test_no_host_allocation(void **state)
{
	vt_env *e;
	setup(state, VMM_IRQCHIP_KERNEL, 2u << 20, &e);
	uint64_t big = kt_sym(e->kt, "big");
	uint8_t *buf = malloc(BIG);
	assert_non_null(buf);
	memset(buf, 0xaa, BIG);
	kt_write(e->kt, big, buf, BIG); /* faults the guest pages in before the baseline */
	kt_set_arg(e->kt, 0, 2);
	kt_run_expect(e->kt, 0, 0x101); /* warm-up request done: loop and ring are hot */

	vt_reset_peak_rss();
	uint64_t base = vt_rss_bytes();
	kt_run_expect(e->kt, 0, 0x102);
	uint64_t peak = vt_peak_rss_bytes();
	uint64_t growth = peak > base ? peak - base : 0;
	print_message("peak RSS growth during a 1 MiB rng request: %llu KiB\n",
		      (unsigned long long)(growth / 1024));
	assert_true(growth < 256 * 1024);

	struct rng_result res[2];
	kt_read(e->kt, kt_sym(e->kt, "results"), res, sizeof res);
	assert_int_equal(res[1].len, BIG);
	kt_read(e->kt, big, buf, BIG);
	assert_true(count_byte(buf, BIG, 0xaa) < BIG / 128);
	free(buf);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_basic, vt_teardown),
		cmocka_unit_test_teardown(test_basic_split_irqchip, vt_teardown),
		cmocka_unit_test_teardown(test_default_limit, vt_teardown),
		cmocka_unit_test_teardown(test_small_limit, vt_teardown),
		cmocka_unit_test_teardown(test_no_host_allocation, vt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
