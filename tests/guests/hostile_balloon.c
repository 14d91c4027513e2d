/* virtio-balloon drivers that misbehave on purpose (tests/kvm/test_hostile_balloon.c).
 * The balloon sits at 0xd0000000 (id 5), a virtio-blk at 0xd0001000 (id 2) whose image
 * holds img_byte(offset). RAM: 32 MiB at 0.
 *
 * Mode 1 (GOOD): the neighbour. Writes a pattern into 16 pages, inflates them, deflates
 *   them, checks they read as zeros (their memory was freed), until the host sets
 *   `stop`; counts rounds in good_ok / good_bad; exits 0x200.
 * Mode 2 (RESUBMIT_STATS, HOSTILE-GUEST.md item 13): posts the stats buffer (the device
 *   keeps it until the host wants statistics), then publishes the same head again while
 *   the device still holds it: DEVICE_NEEDS_RESET. report(0x101); reset; the balloon
 *   works again; exit 0x100.
 * Mode 3 (UNDER_IO, CVE-2021-3748): inflates the pages a virtio-blk read is writing into
 *   at that very moment (the two devices run on different loop threads), 200 times;
 *   every read completes with OK and the pages are usable again after deflating. Then
 *   it inflates the pages of the blk ring itself and uses the ring: the device finds
 *   the ring's indexes gone (zeros) and gives up on it: DEVICE_NEEDS_RESET,
 *   report(0x101); reset; blk works; exit 0x100.
 * 0xe00 | step: a step failed. */
#include "rt/virtio.h"

#define BAL_BASE 0xd0000000ull
#define BLK_BASE 0xd0001000ull
#define F_STATS_VQ (1ull << 1)
#define QSIZE 16
#define SPINS (1ull << 28)
#define GOOD_AREA 0x1800000ull
#define IO_AREA 0x1a00000ull
#define PAGES 16u

#define FAIL(step) return 0xe00 | (step)

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

uint64_t res[32];
volatile uint64_t stop;
volatile uint64_t good_ok, good_bad;

static struct vio_dev bal, blk;
static uint8_t bal_rings[3][VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t blk_ring[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint32_t pfns[2][PAGES];
static uint8_t stats[30];
static struct hdr h;
static uint8_t st;

static uint8_t img_byte(uint64_t off) { return (uint8_t)(off * 7 + (off >> 9) * 13 + 5); }

static void spin(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		cpu_relax();
}

static int bal_up(uint64_t wanted)
{
	if (vio_init(&bal, BAL_BASE, 5, wanted) != 0)
		return -1;
	int nq = (bal.features & F_STATS_VQ) ? 3 : 2;
	for (int q = 0; q < nq; q++)
		if (vio_queue_setup(&bal, q, QSIZE, bal_rings[q]) != 0)
			return -1;
	vio_driver_ok(&bal);
	uint32_t s = vio_status(&bal);
	return (s & VIO_S_DRIVER_OK) && !(s & VIO_S_NEEDS_RESET) ? 0 : -1;
}

static int blk_up(void)
{
	if (vio_init(&blk, BLK_BASE, 2, 0) != 0 || vio_queue_setup(&blk, 0, QSIZE, blk_ring) != 0)
		return -1;
	vio_driver_ok(&blk);
	uint32_t s = vio_status(&blk);
	return (s & VIO_S_DRIVER_OK) && !(s & VIO_S_NEEDS_RESET) ? 0 : -1;
}

/* Publishes `n` PFNs from `first` on queue q (0 inflate, 1 deflate); does not wait. */
static int pfns_post(int q, uint64_t first_pfn, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		pfns[q][i] = (uint32_t)(first_pfn + i);
	struct vio_buf b = { pfns[q], n * 4, 0 };
	if (vio_add(&bal, q, &b, 1) < 0)
		return -1;
	vio_notify(&bal, q);
	return 0;
}

static int pfns_send(int q, uint64_t first_pfn, uint32_t n)
{
	if (pfns_post(q, first_pfn, n) != 0)
		return -1;
	return vio_wait_used(&bal, q, 0, SPINS) < 0 ? -1 : 0;
}

/* One inflate/deflate round over GOOD_AREA; returns 0 if the pages came back zeroed. */
static int round_trip(void)
{
	for (uint32_t p = 0; p < PAGES; p++)
		*(volatile uint64_t *)(GOOD_AREA + p * 4096ull) = 0x5a5a0000ull + p;
	if (pfns_send(0, GOOD_AREA / 4096, PAGES) != 0 || pfns_send(1, GOOD_AREA / 4096, PAGES) != 0)
		return -1;
	for (uint32_t p = 0; p < PAGES; p++)
		if (*(volatile uint64_t *)(GOOD_AREA + p * 4096ull) != 0)
			return -2;
	return 0;
}

static uint32_t wait_broken(struct vio_dev *d)
{
	uint32_t s = 0;
	for (int i = 0; i < 200000 && !((s = vio_status(d)) & VIO_S_NEEDS_RESET); i++)
		spin(500);
	return s;
}

static int mode_good(void)
{
	if (bal_up(0) != 0)
		FAIL(1);
	while (!stop) {
		if (round_trip() != 0 || (vio_status(&bal) & VIO_S_NEEDS_RESET)) {
			good_bad++;
			FAIL(2);
		}
		good_ok++;
	}
	return 0x200;
}

static int mode_resubmit_stats(void)
{
	if (bal_up(F_STATS_VQ) != 0 || !(bal.features & F_STATS_VQ))
		FAIL(1);
	res[0] = (uint64_t)round_trip();
	memset(stats, 0, sizeof stats);
	struct vio_buf b = { stats, sizeof stats, 0 };
	int head = vio_add(&bal, 2, &b, 1);
	if (head < 0)
		FAIL(2);
	vio_notify(&bal, 2);
	spin(3000000); /* the device takes it and keeps it */
	struct vio_queue *q = &bal.q[2];
	res[1] = q->used[1];
	/* The same head again, while the device holds it. */
	uint16_t idx = q->avail[1];
	q->avail[2 + idx % q->size] = (uint16_t)head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->avail[1] = (uint16_t)(idx + 1);
	vio_reg_write(&bal, VIO_QUEUE_NOTIFY, 2);
	res[2] = wait_broken(&bal);
	res[3] = vio_reg_read(&bal, VIO_INTERRUPT_STATUS);
	report(0x101);
	if (bal_up(F_STATS_VQ) != 0)
		FAIL(3);
	res[4] = (uint64_t)round_trip();
	return res[4] ? 0xe04 : 0x100;
}

/* A 64 KiB read of sector s into IO_AREA, published and notified, not waited for. */
static int blk_post_read(uint64_t s)
{
	h = (struct hdr){ 0, 0, s };
	st = 0xaa;
	struct vio_buf b[3] = { { &h, sizeof h, 0 }, { (void *)IO_AREA, PAGES * 4096, 1 }, { &st, 1, 1 } };
	if (vio_add(&blk, 0, b, 3) < 0)
		return -1;
	vio_notify(&blk, 0);
	return 0;
}

#define UNDER_IO_ROUNDS 200
static int mode_under_io(void)
{
	if (bal_up(0) != 0 || blk_up() != 0)
		FAIL(1);
	uint64_t bad = 0;
	for (int r = 0; r < UNDER_IO_ROUNDS; r++) {
		/* Half the rounds start with the read, half with the inflate. */
		if (r & 1) {
			if (pfns_post(0, IO_AREA / 4096, PAGES) != 0 || blk_post_read((uint64_t)(r % 16) * 128) != 0)
				FAIL(2);
		} else {
			if (blk_post_read((uint64_t)(r % 16) * 128) != 0 || pfns_post(0, IO_AREA / 4096, PAGES) != 0)
				FAIL(3);
		}
		uint32_t len = 0;
		if (vio_wait_used(&blk, 0, &len, SPINS) < 0 || vio_wait_used(&bal, 0, 0, SPINS) < 0)
			FAIL(4);
		bad += st != 0 || len != PAGES * 4096 + 1;
		if (pfns_send(1, IO_AREA / 4096, PAGES) != 0)
			FAIL(5);
	}
	res[0] = bad;
	/* The pages are ordinary memory again: a read fills them correctly. */
	if (blk_post_read(256) != 0 || vio_wait_used(&blk, 0, 0, SPINS) < 0)
		FAIL(6);
	res[1] = st;
	uint64_t mismatch = 0;
	for (uint32_t i = 0; i < PAGES * 4096; i++)
		mismatch += ((volatile uint8_t *)IO_AREA)[i] != img_byte(256 * 512 + i);
	res[2] = mismatch;
	/* Now the blk ring's own pages go into the balloon. */
	if (pfns_send(0, (uint64_t)(uintptr_t)blk_ring / 4096, sizeof blk_ring / 4096) != 0)
		FAIL(7);
	res[3] = blk.q[0].avail[1]; /* zero now */
	if (blk_post_read(0) != 0)
		FAIL(8);
	res[4] = wait_broken(&blk);
	res[5] = vio_status(&bal);
	report(0x101);
	if (pfns_send(1, (uint64_t)(uintptr_t)blk_ring / 4096, sizeof blk_ring / 4096) != 0)
		FAIL(9);
	if (blk_up() != 0 || blk_post_read(16) != 0 || vio_wait_used(&blk, 0, 0, SPINS) < 0)
		FAIL(10);
	res[6] = st;
	mismatch = 0;
	for (uint32_t i = 0; i < PAGES * 4096; i++)
		mismatch += ((volatile uint8_t *)IO_AREA)[i] != img_byte(16 * 512 + i);
	res[7] = mismatch;
	return 0x100;
}

int guest_main(uint64_t arg)
{
	switch (arg) {
	case 1: return mode_good();
	case 2: return mode_resubmit_stats();
	case 3: return mode_under_io();
	default: return 0xeff;
	}
}
