/* HOSTILE-GUEST.md against virtio-balloon (guest: tests/guests/hostile_balloon.c), with
 * a neighbour VM whose balloon shares the event loop thread and keeps inflating and
 * deflating the whole time (test_hostile_common.h):
 *  - item 13 on a device that really keeps a chain: the stats buffer is held by the
 *    device until the host asks for statistics; the same head published again while it
 *    is held -> DEVICE_NEEDS_RESET; asking for statistics on the broken device is safe;
 *    a driver reset brings the balloon back;
 *  - CVE-2021-3748 (a buffer written after it was unmapped): the guest inflates the
 *    pages a virtio-blk read is writing into at that moment, the two devices on two
 *    loop threads. The balloon frees memory with fallocate(PUNCH_HOLE) or
 *    madvise(MADV_DONTNEED), which never unmaps: the host addresses the blk device
 *    holds stay valid (the pages read back as zeros or get new ones), so there is
 *    nothing to use after free. Every read completes, the sanitizer builds report
 *    nothing, and inflating the blk ring's own pages just makes the ring look empty
 *    and rewound, which the device refuses (NEEDS_RESET) until the driver resets it. */
#include "test_hostile_common.h"

#include <stdlib.h>
#include <sys/mman.h>

#define RAM (32ull << 20)
#define DISK_SECTORS 2048u

static uint8_t img_byte(uint64_t off) { return (uint8_t)(off * 7 + (off >> 9) * 13 + 5); }

struct hbal {
	vt_env *a;                /* its loop: A's balloon and the neighbour's */
	struct hn b;
	vmm_loop *loop2;          /* A's blk, on a thread of its own */
	pthread_t loop2_th;
	bool loop2_running;
	int loop2_result;
	vmm_virtio_mmio *t_blk;
	vmm_virtio_device *bal_a;
	int img;
	uint64_t res[32];
};

static void *loop2_main(void *arg)
{
	struct hbal *h = arg;
	h->loop2_result = vmm_loop_run(h->loop2);
	return NULL;
}

static int hbal_teardown(void **state)
{
	struct hbal *h = *state;
	if (!h)
		return 0;
	if (h->b.vm)
		hn_stop(&h->b);
	hn_stop_loop(h->a);
	if (h->loop2_running) {
		vmm_loop_stop(h->loop2);
		pthread_join(h->loop2_th, NULL);
	}
	hn_destroy(&h->b);
	vmm_virtio_mmio_destroy(h->t_blk);
	vt_destroy(h->a);
	vmm_loop_destroy(h->loop2);
	if (h->img > 0)
		close(h->img);
	free(h);
	*state = NULL;
	return 0;
}

static struct hbal *hbal_setup(void **state, bool with_blk)
{
	hbal_teardown(state);
	struct hbal *h = calloc(1, sizeof *h);
	assert_non_null(h);
	*state = h;
	kt_opts o = { .guest = "hostile_balloon", .cpl = 3, .ram = RAM };
	h->a = vt_new(&o);
	kt_check(vmm_virtio_balloon_create(&h->bal_a, NULL), "vmm_virtio_balloon_create");
	vt_attach(h->a, 0, h->bal_a);
	if (with_blk) {
		h->img = memfd_create("hostile-balloon-blk", MFD_CLOEXEC);
		assert_true(h->img >= 0);
		static uint8_t img[DISK_SECTORS * 512];
		for (uint64_t i = 0; i < sizeof img; i++)
			img[i] = img_byte(i);
		assert_int_equal(pwrite(h->img, img, sizeof img, 0), (ssize_t)sizeof img);
		vmm_virtio_blk_opts bo = VMM_VIRTIO_BLK_OPTS_INIT;
		bo.fd = h->img;
		vmm_virtio_device *blk;
		kt_check(vmm_virtio_blk_create(&blk, &bo), "vmm_virtio_blk_create");
		kt_check(vmm_loop_create(&h->loop2), "vmm_loop_create");
		vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
		mo.base = VIO_TEST_BASE(1);
		mo.gsi = VIO_TEST_GSI(1);
		int r = vmm_virtio_mmio_attach(&h->t_blk, h->a->kt->vm, h->loop2, &mo, blk);
		if (r)
			vmm_virtio_device_destroy(blk);
		kt_check(r, "vmm_virtio_mmio_attach (blk)");
		assert_int_equal(pthread_create(&h->loop2_th, NULL, loop2_main, h), 0);
		h->loop2_running = true;
	}
	vmm_virtio_device *bal_b;
	kt_check(vmm_virtio_balloon_create(&bal_b, NULL), "vmm_virtio_balloon_create (neighbour)");
	hn_start(&h->b, &o, h->a, bal_b, 0, 1);
	hn_progress(&h->b, 10, "at the start");
	return h;
}

static void fetch(struct hbal *h)
{
	kt_read(h->a->kt, kt_sym(h->a->kt, "res"), h->res, sizeof h->res);
}

static void test_stats_head_resubmitted(void **state)
{
	struct hbal *h = hbal_setup(state, false);
	kt_set_arg(h->a->kt, 0, 2);
	kt_run_expect(h->a->kt, 0, 0x101);
	fetch(h);
	assert_int_equal(h->res[0], 0);  /* inflate/deflate worked */
	assert_int_equal(h->res[1], 0);  /* the stats buffer was kept, not returned */
	assert_true(h->res[2] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(h->res[3] & 2);
	vmm_virtio_mmio *t = h->a->dev[0];
	assert_true(vmm_virtio_mmio_status(t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	char err[256];
	vmm_virtio_mmio_error(t, err, sizeof err);
	print_message("  A: %s\n", err);
	assert_non_null(strstr(err, "virtio-balloon"));
	assert_non_null(strstr(err, "stats queue broken"));
	/* The application asks the broken device for statistics: harmless. */
	vmm_virtio_balloon_stats st;
	kt_check(vmm_virtio_balloon_get_stats(h->bal_a, &st), "vmm_virtio_balloon_get_stats");
	hn_progress(&h->b, 20, "while A's balloon was broken");
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[4], 0);
	assert_false(vmm_virtio_mmio_status(t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	hn_finish(&h->b, 0x200);
}

static void test_inflate_under_io(void **state)
{
	struct hbal *h = hbal_setup(state, true);
	kt_set_arg(h->a->kt, 0, 3);
	kt_run_expect(h->a->kt, 0, 0x101);
	fetch(h);
	assert_int_equal(h->res[0], 0);      /* every racing read completed with OK */
	assert_int_equal(h->res[1], 0);
	assert_int_equal(h->res[2], 0);      /* and the pages are ordinary memory again */
	assert_int_equal(h->res[3], 0);      /* the ring's memory is gone (zeros) */
	assert_true(h->res[4] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(h->res[5] & VIRTIO_CONFIG_S_NEEDS_RESET); /* the balloon is fine */
	char err[256];
	vmm_virtio_mmio_error(h->t_blk, err, sizeof err);
	print_message("  A's blk: %s\n", err);
	assert_non_null(strstr(err, "entries ahead"));
	vmm_virtio_balloon_stats st;
	kt_check(vmm_virtio_balloon_get_stats(h->bal_a, &st), "vmm_virtio_balloon_get_stats");
	assert_true(st.inflated_pages >= 200 * 16 + 2);
	hn_progress(&h->b, 20, "while A's blk was broken");
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[6], 0);
	assert_int_equal(h->res[7], 0);
	assert_false(vmm_virtio_mmio_status(h->t_blk) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_false(vmm_virtio_mmio_status(h->a->dev[0]) & VIRTIO_CONFIG_S_NEEDS_RESET);
	hn_finish(&h->b, 0x200);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stats_head_resubmitted, hbal_teardown),
		cmocka_unit_test_teardown(test_inflate_under_io, hbal_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
