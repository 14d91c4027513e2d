/* virtio-rng and virtio-net drivers for tests/kvm/test_hostile_misc.c. The device is at
 * 0xd0000000 (rng id 4 or net id 1); RAM is 64 MiB.
 *
 * Mode 1 (RNG_GOOD), the rng neighbour: 256-byte requests until the host sets `stop`,
 *   each must come back full and not all zeros; good_ok / good_bad; exit 0x200.
 * Mode 2 (RNG_BIG, Firecracker #5762): touches BIG_LEN bytes of buffers, report(0x101);
 *   then one request whose writable part is BIG_LEN bytes in 1024 indirect descriptors
 *   of 16 KiB; res[0] = used length; report(0x102); exit 0x100.
 * Mode 3 (NET_GOOD), the net neighbour: sends 64-byte frames one at a time until `stop`,
 *   each must be used; exit 0x200.
 * Mode 4 (NET_RX_FULL, CVE-2020-16843): posts no receive buffer, report(0x101) (the host
 *   floods the device); then posts 8 buffers and takes every frame that arrives (nothing
 *   is injected any more), res[0] = frames, res[1] = bad ones; report(0x102); exit 0x100.
 * 0xe00 | step: a step failed. */
#include "rt/virtio.h"

#define BASE 0xd0000000ull
#define QSIZE 64
#define BIG_AREA 0x1000000ull
#define BIG_SEG (16u << 10)
#define BIG_SEGS 1024u
#define BIG_LEN (BIG_SEG * BIG_SEGS) /* 16 MiB */
#define NET_HDR 12u
#define SPINS (1ull << 28)

#define FAIL(step) return 0xe00 | (step)

uint64_t res[16];
volatile uint64_t stop;
volatile uint64_t good_ok, good_bad;

static struct vio_dev dev;
static uint8_t rings[2][VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static struct vio_desc itab[BIG_SEGS] __attribute__((aligned(16)));
static uint8_t small[256];
static uint8_t tx[NET_HDR + 64];
static uint8_t rx[8][2048];

static int up(uint32_t id, uint64_t wanted, int nq)
{
	if (vio_init(&dev, BASE, id, wanted) != 0)
		return -1;
	for (int q = 0; q < nq; q++)
		if (vio_queue_setup(&dev, q, QSIZE, rings[q]) != 0)
			return -1;
	vio_driver_ok(&dev);
	uint32_t s = vio_status(&dev);
	return (s & VIO_S_DRIVER_OK) && !(s & VIO_S_NEEDS_RESET) ? 0 : -1;
}

static int mode_rng_good(void)
{
	if (up(4, 0, 1) != 0)
		FAIL(1);
	while (!stop) {
		memset(small, 0, sizeof small);
		struct vio_buf b = { small, sizeof small, 1 };
		if (vio_add(&dev, 0, &b, 1) < 0)
			FAIL(2);
		vio_notify(&dev, 0);
		uint32_t len = 0;
		uint32_t nz = 0;
		int head = vio_wait_used(&dev, 0, &len, SPINS);
		for (unsigned i = 0; i < sizeof small; i++)
			nz += small[i] != 0;
		if (head < 0 || len != sizeof small || nz < 200) {
			good_bad++;
			FAIL(3);
		}
		good_ok++;
	}
	return 0x200;
}

static int mode_rng_big(void)
{
	if (up(4, VIO_F_INDIRECT_DESC, 1) != 0 || !(dev.features & VIO_F_INDIRECT_DESC))
		FAIL(1);
	memset((void *)BIG_AREA, 0xaa, BIG_LEN);
	report(0x101);
	for (uint32_t i = 0; i < BIG_SEGS; i++)
		itab[i] = (struct vio_desc){ BIG_AREA + (uint64_t)i * BIG_SEG, BIG_SEG,
					     (uint16_t)(VIO_DESC_F_WRITE | (i + 1 < BIG_SEGS ? VIO_DESC_F_NEXT : 0)),
					     (uint16_t)(i + 1) };
	struct vio_queue *q = &dev.q[0];
	uint16_t head = q->free_head;
	q->desc[head] = (struct vio_desc){ (uint64_t)(uintptr_t)itab, BIG_SEGS * 16, VIO_DESC_F_INDIRECT, 0 };
	uint16_t idx = q->avail[1];
	q->avail[2 + idx % q->size] = head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->avail[1] = (uint16_t)(idx + 1);
	vio_notify(&dev, 0);
	for (uint64_t w = 0; q->used[1] == idx && w < SPINS; w++)
		cpu_relax();
	volatile uint32_t *e = (volatile uint32_t *)(q->used + 2) + 2u * (idx % q->size);
	res[0] = q->used[1] != idx ? e[1] : 0xffffffffu;
	res[1] = vio_status(&dev);
	report(0x102);
	return 0x100;
}

static int mode_net_good(void)
{
	if (up(1, 0, 2) != 0)
		FAIL(1);
	memset(tx, 0, sizeof tx);
	memset(tx + NET_HDR, 0xff, 6);            /* broadcast */
	tx[NET_HDR + 12] = 0x88;                   /* ethertype 0x88b5 */
	tx[NET_HDR + 13] = 0xb5;
	while (!stop) {
		struct vio_buf b = { tx, sizeof tx, 0 };
		if (vio_add(&dev, 1, &b, 1) < 0)
			FAIL(2);
		vio_notify(&dev, 1);
		if (vio_wait_used(&dev, 1, 0, SPINS) < 0 || (vio_status(&dev) & VIO_S_NEEDS_RESET)) {
			good_bad++;
			FAIL(3);
		}
		good_ok++;
	}
	return 0x200;
}

static int mode_net_rx_full(void)
{
	if (up(1, 0, 2) != 0)
		FAIL(1);
	report(0x101);
	for (int i = 0; i < 8; i++) {
		struct vio_buf b = { rx[i], sizeof rx[i], 1 };
		if (vio_add(&dev, 0, &b, 1) < 0)
			FAIL(2);
	}
	vio_notify(&dev, 0);
	uint64_t frames = 0, bad = 0;
	uint32_t len;
	int head;
	while ((head = vio_wait_used(&dev, 0, &len, 1u << 25)) >= 0) {
		/* Frames of 100 bytes, ethertype 0x88b7, byte 14 = sequence number. */
		uint8_t *f = rx[head % 8] + NET_HDR;
		bad += len != NET_HDR + 100 || f[12] != 0x88 || f[13] != 0xb7 || f[14] != (uint8_t)frames;
		frames++;
		struct vio_buf b = { rx[head % 8], sizeof rx[0], 1 };
		if (vio_add(&dev, 0, &b, 1) < 0)
			FAIL(3);
		vio_notify(&dev, 0);
	}
	res[0] = frames;
	res[1] = bad;
	res[2] = vio_status(&dev);
	report(0x102);
	return 0x100;
}

int guest_main(uint64_t arg)
{
	switch (arg) {
	case 1: return mode_rng_good();
	case 2: return mode_rng_big();
	case 3: return mode_net_good();
	case 4: return mode_net_rx_full();
	default: return 0xeff;
	}
}
