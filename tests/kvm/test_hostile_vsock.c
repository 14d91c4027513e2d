/* HOSTILE-GUEST.md against virtio-vsock (guest: tests/guests/hostile_vsock.c), with a
 * neighbour VM whose vsock device shares the event loop thread and keeps doing round
 * trips (a REQUEST to a port nobody listens on, answered by a RST) the whole time:
 *  - CVE-2019-18960: a TX payload, or an RX buffer, ending one byte past RAM -> the
 *    ring is refused (DEVICE_NEEDS_RESET), nothing is read or written past RAM;
 *  - CVE-2024-3446: an RX buffer on the device's own registers -> the same;
 *  - CVE-2023-3180: a packet whose len disagrees with its chain gets a RST;
 *  - CVE-2016-5403: 20000 packets that each owe the guest a reply while the guest gives
 *    the device no buffer to reply in: the device keeps a bounded queue of owed resets
 *    (VSOCK_RST_QUEUE), drops the rest, and host memory stays flat.
 * After each breakage a driver reset brings the device back. */
#include "test_hostile_common.h"

#include <stdlib.h>

#include "devices/vsock_internal.h"

#define RAM (32ull << 20)

struct hv {
	vt_env *a;
	struct hn b;
	char dir[64];
	char path_a[108], path_b[108];
	uint64_t res[16];
};

static int hv_teardown(void **state)
{
	struct hv *h = *state;
	if (!h)
		return 0;
	if (h->b.vm)
		hn_stop(&h->b);
	hn_stop_loop(h->a);
	hn_destroy(&h->b);
	vt_destroy(h->a);
	if (h->dir[0])
		rmdir(h->dir);
	free(h);
	*state = NULL;
	return 0;
}

static vmm_virtio_device *vsock_dev(const char *path)
{
	vmm_virtio_vsock_opts o = VMM_VIRTIO_VSOCK_OPTS_INIT;
	o.guest_cid = 3;
	o.uds_path = path;
	vmm_virtio_device *d;
	kt_check(vmm_virtio_vsock_create(&d, &o), "vmm_virtio_vsock_create");
	return d;
}

static struct hv *hv_setup(void **state)
{
	hv_teardown(state);
	struct hv *h = calloc(1, sizeof *h);
	assert_non_null(h);
	*state = h;
	snprintf(h->dir, sizeof h->dir, "/tmp/libvmm-hv-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->path_a, sizeof h->path_a, "%s/a", h->dir);
	snprintf(h->path_b, sizeof h->path_b, "%s/b", h->dir);
	kt_opts o = { .guest = "hostile_vsock", .cpl = 3, .ram = RAM };
	h->a = vt_new(&o);
	vt_attach(h->a, 0, vsock_dev(h->path_a));
	hn_start(&h->b, &o, h->a, vsock_dev(h->path_b), 0, 1);
	hn_progress(&h->b, 10, "at the start");
	return h;
}

static void fetch(struct hv *h)
{
	kt_read(h->a->kt, kt_sym(h->a->kt, "res"), h->res, sizeof h->res);
}

static void breaking_case(void **state, uint64_t mode, bool pinged_first, const char *needle)
{
	struct hv *h = hv_setup(state);
	kt_set_arg(h->a->kt, 0, mode);
	kt_run_expect(h->a->kt, 0, 0x101);
	fetch(h);
	if (pinged_first)
		assert_int_equal(h->res[0], 0);
	assert_true(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(h->res[2] & 2);
	vmm_virtio_mmio *t = h->a->dev[0];
	assert_true(vmm_virtio_mmio_status(t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	char err[256];
	vmm_virtio_mmio_error(t, err, sizeof err);
	print_message("  A: %s\n", err);
	assert_non_null(strstr(err, needle));
	hn_progress(&h->b, 20, "while A's device was broken");
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[3], 0);
	assert_false(vmm_virtio_mmio_status(t) & VIRTIO_CONFIG_S_NEEDS_RESET);
	hn_finish(&h->b, 0x200);
}

static void test_tx_payload_past_ram(void **state) { breaking_case(state, 2, true, "tx queue broken"); }
static void test_rx_buffer_past_ram(void **state) { breaking_case(state, 3, false, "rx queue broken"); }
static void test_rx_buffer_in_own_mmio(void **state) { breaking_case(state, 4, false, "rx queue broken"); }

static void test_len_not_matching_chain(void **state)
{
	struct hv *h = hv_setup(state);
	kt_set_arg(h->a->kt, 0, 5);
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	assert_int_equal(h->res[0], 0);
	assert_false(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET);
	hn_finish(&h->b, 0x200);
}

static void test_unreaped_replies(void **state)
{
	struct hv *h = hv_setup(state);
	kt_set_arg(h->a->kt, 0, 6);
	vt_reset_peak_rss();
	uint64_t rss0 = vt_rss_bytes();
	kt_run_expect(h->a->kt, 0, 0x101);
	uint64_t peak = vt_peak_rss_bytes();
	fetch(h);
	uint64_t growth = peak > rss0 ? peak - rss0 : 0;
	print_message("  20000 unanswerable requests: peak RSS +%llu KiB\n", (unsigned long long)growth / 1024);
	assert_true(growth < (4u << 20));
	assert_int_equal(h->res[0], 1);   /* every TX chain came back */
	assert_false(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET);
	hn_progress(&h->b, 20, "after A's flood");
	kt_run_expect(h->a->kt, 0, 0x100);
	fetch(h);
	print_message("  %llu owed resets delivered once buffers came\n", (unsigned long long)h->res[2]);
	assert_int_equal(h->res[2], VSOCK_RST_QUEUE);
	assert_int_equal(h->res[3], 1);   /* the first ones, in order */
	assert_int_equal(h->res[4], 0);
	assert_false(h->res[5] & VIRTIO_CONFIG_S_NEEDS_RESET);
	hn_finish(&h->b, 0x200);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_tx_payload_past_ram, hv_teardown),
		cmocka_unit_test_teardown(test_rx_buffer_past_ram, hv_teardown),
		cmocka_unit_test_teardown(test_rx_buffer_in_own_mmio, hv_teardown),
		cmocka_unit_test_teardown(test_len_not_matching_chain, hv_teardown),
		cmocka_unit_test_teardown(test_unreaped_replies, hv_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
