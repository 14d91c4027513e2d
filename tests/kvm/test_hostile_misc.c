/* HOSTILE-GUEST.md lines for virtio-rng and virtio-net, with a neighbour VM of the same
 * device type on the same event loop thread (guest: tests/guests/hostile_misc.c):
 *  - Firecracker #5762: a 16 MiB rng request (1024 indirect segments of 16 KiB) is
 *    filled straight into guest memory: the host's peak RSS does not grow by anything
 *    like it, and the neighbour's requests keep being served;
 *  - CVE-2020-16843: a guest that posts no receive buffer while the host pours frames
 *    at it: the first rx_backlog frames wait, the rest are dropped and counted (host
 *    memory stays flat), and the waiting ones arrive, in order, as soon as the guest
 *    posts buffers, with no further ingress; the neighbour's transmit path keeps
 *    working throughout. (The TAP variant is test_virtio_net.c test_tap.) */
#include "test_hostile_common.h"

#include <stdlib.h>

#define RAM (64ull << 20)
#define BIG_LEN (16u << 20)
#define BACKLOG 4u
#define FLOOD 20000u

struct hm {
	vt_env *a;
	struct hn b;
	vmm_virtio_device *dev_a;
	atomic_uint_fast64_t b_frames;
	uint64_t res[16];
};

static int hm_teardown(void **state)
{
	struct hm *h = *state;
	if (!h)
		return 0;
	if (h->b.vm)
		hn_stop(&h->b);
	hn_stop_loop(h->a);
	hn_destroy(&h->b);
	vt_destroy(h->a);
	free(h);
	*state = NULL;
	return 0;
}

static struct hm *hm_new(void **state)
{
	hm_teardown(state);
	struct hm *h = calloc(1, sizeof *h);
	assert_non_null(h);
	*state = h;
	kt_opts o = { .guest = "hostile_misc", .cpl = 3, .ram = RAM };
	h->a = vt_new(&o);
	return h;
}

static void fetch(struct hm *h)
{
	kt_read(h->a->kt, kt_sym(h->a->kt, "res"), h->res, sizeof h->res);
}

static void test_rng_big_request(void **state)
{
	struct hm *h = hm_new(state);
	vmm_virtio_rng_opts ro = VMM_VIRTIO_RNG_OPTS_INIT;
	ro.max_bytes_per_request = 32u << 20;
	kt_check(vmm_virtio_rng_create(&h->dev_a, &ro), "vmm_virtio_rng_create");
	vt_attach(h->a, 0, h->dev_a);
	vmm_virtio_device *rb;
	kt_check(vmm_virtio_rng_create(&rb, NULL), "vmm_virtio_rng_create (neighbour)");
	kt_opts o = { .guest = "hostile_misc", .cpl = 3, .ram = RAM };
	hn_start(&h->b, &o, h->a, rb, 0, 1);
	hn_progress(&h->b, 20, "at the start");

	kt_set_arg(h->a->kt, 0, 2);
	kt_run_expect(h->a->kt, 0, 0x101); /* the guest touched its 16 MiB */
	vt_reset_peak_rss();
	uint64_t rss0 = vt_rss_bytes();
	kt_run_expect(h->a->kt, 0, 0x102);
	uint64_t peak = vt_peak_rss_bytes();
	fetch(h);
	uint64_t growth = peak > rss0 ? peak - rss0 : 0;
	print_message("  16 MiB rng request: used %llu bytes, peak RSS +%llu KiB\n", (unsigned long long)h->res[0],
		      (unsigned long long)growth / 1024);
	assert_int_equal(h->res[0], BIG_LEN);
	assert_true(growth < (1u << 20));
	assert_false(h->res[1] & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* Filled: hardly any 0xaa left. */
	uint8_t *buf = malloc(BIG_LEN);
	assert_non_null(buf);
	kt_read(h->a->kt, 0x1000000, buf, BIG_LEN);
	size_t aa = 0;
	for (size_t i = 0; i < BIG_LEN; i++)
		aa += buf[i] == 0xaa;
	free(buf);
	assert_true(aa < BIG_LEN / 128);
	kt_run_expect(h->a->kt, 0, 0x100);
	hn_finish(&h->b, 0x200);
}

static void count_tx(void *ctx, const void *frame, size_t len)
{
	struct hm *h = ctx;
	(void)frame;
	if (len == 64)
		atomic_fetch_add(&h->b_frames, 1);
}

static void drop_tx(void *ctx, const void *frame, size_t len)
{
	(void)ctx;
	(void)frame;
	(void)len;
}

static vmm_virtio_net_stats net_stats(vmm_virtio_device *d)
{
	vmm_virtio_net_stats st;
	kt_check(vmm_virtio_net_get_stats(d, &st), "vmm_virtio_net_get_stats");
	return st;
}

static void test_net_rx_full(void **state)
{
	struct hm *h = hm_new(state);
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	no.backend = VMM_NET_CALLBACK;
	no.tx = drop_tx;
	no.rx_backlog = BACKLOG;
	kt_check(vmm_virtio_net_create(&h->dev_a, &no), "vmm_virtio_net_create");
	vt_attach(h->a, 0, h->dev_a);
	vmm_virtio_device *nb;
	no.tx = count_tx;
	no.ctx = h;
	no.rx_backlog = 0;
	kt_check(vmm_virtio_net_create(&nb, &no), "vmm_virtio_net_create (neighbour)");
	kt_opts o = { .guest = "hostile_misc", .cpl = 3, .ram = RAM };
	hn_start(&h->b, &o, h->a, nb, 0, 3);
	hn_progress(&h->b, 20, "at the start");

	kt_set_arg(h->a->kt, 0, 4);
	kt_run_expect(h->a->kt, 0, 0x101); /* up, no receive buffer */
	vt_reset_peak_rss();
	uint64_t rss0 = vt_rss_bytes();
	uint8_t f[100];
	memset(f, 0xff, 12);
	f[12] = 0x88;
	f[13] = 0xb7;
	unsigned accepted = 0, refused = 0;
	for (unsigned i = 0; i < FLOOD; i++) {
		memset(f + 14, (int)(uint8_t)i, sizeof f - 14);
		int r = vmm_virtio_net_receive(h->dev_a, f, sizeof f);
		if (r == 0)
			accepted++;
		else if (r == -ENOBUFS)
			refused++;
		else
			kt_check(r, "vmm_virtio_net_receive");
	}
	uint64_t peak = vt_peak_rss_bytes();
	uint64_t growth = peak > rss0 ? peak - rss0 : 0;
	print_message("  %u frames at a guest with no buffers: %u kept, %u dropped, peak RSS +%llu KiB\n", FLOOD,
		      accepted, refused, (unsigned long long)growth / 1024);
	assert_int_equal(accepted, BACKLOG);
	assert_int_equal(refused, FLOOD - BACKLOG);
	assert_true(growth < (4u << 20));
	vmm_virtio_net_stats st = net_stats(h->dev_a);
	assert_int_equal(st.rx_frames, 0);
	assert_int_equal(st.rx_dropped, FLOOD - BACKLOG);
	hn_progress(&h->b, 20, "while A's receive queue was full");

	/* The guest posts buffers: the waiting frames arrive with nothing more injected. */
	kt_run_expect(h->a->kt, 0, 0x102);
	fetch(h);
	assert_int_equal(h->res[0], BACKLOG);
	assert_int_equal(h->res[1], 0);
	assert_false(h->res[2] & VIRTIO_CONFIG_S_NEEDS_RESET);
	st = net_stats(h->dev_a);
	assert_int_equal(st.rx_frames, BACKLOG);
	kt_run_expect(h->a->kt, 0, 0x100);
	hn_finish(&h->b, 0x200);
	/* Every frame the neighbour saw completed reached its back end, byte count right. */
	uint64_t rounds = hn_read(&h->b, h->b.ok_gpa);
	assert_true(rounds >= 40);
	assert_true(atomic_load(&h->b_frames) >= rounds);
	assert_int_equal(net_stats(nb).tx_errors, 0);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_rng_big_request, hm_teardown),
		cmocka_unit_test_teardown(test_net_rx_full, hm_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
