/* A minimal virtio-balloon driver for tests/kvm/test_virtio_balloon.c, one phase per
 * report:
 *  1 touches every page of [TOUCH, TOUCH + TOUCH_PAGES + CANARY_PAGES) and of the
 *    anonymous region at ANON, posts the stats
 *    buffer (MEMFREE 0x1111, MEMTOT 0x2222, tag 9 = 7)                      -> report(1)
 *  2 reads the target num_pages, inflates that many pages from TOUCH on (256 PFNs per
 *    buffer), then the ANON pages, plus hostile buffers (PFNs outside RAM or in the host's ROM region, a
 *    3-byte buffer) that must change nothing, writes `actual`               -> report(2)
 *  3 waits for the device to hand the stats buffer back, re-posts it with MEMFREE
 *    0x3333, deflates the first half of the balloon, checks those pages read as zeros
 *    (their memory was freed) and the canary pages kept their contents, writes
 *    `actual`                                                               -> report(3)
 * and returns 0, or the number of the failed check. */
#include "rt/virtio.h"

#define BALLOON_BASE 0xd0000000ull
#define BALLOON_ID 5
#define F_STATS_VQ (1ull << 1)
#define QSZ 64
#define RING_AREA 0x1000000ull
#define PFN_AREA 0x1100000ull     /* PFN arrays, 1 KiB each */
#define STATS_AREA 0x1180000ull
#define TOUCH 0x2000000ull        /* 32 MiB */
#define TOUCH_PAGES 4096u         /* 16 MiB */
#define CANARY_PAGES 256u         /* touched, never ballooned */
#define ROM_PFN 0x5000u           /* the host's read-only region at 80 MiB */
#define ANON 0x6000000ull         /* the host's private anonymous region at 96 MiB */
#define ANON_PAGES 512u
#define PER_BUF 256u
#define SPINS (1ull << 32)

struct stat_entry {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

static struct vio_dev dev;

static uint64_t page_word(uint64_t pfn) { return 0x5a00000000ull | pfn; }

static void post_stats(uint64_t memfree)
{
	struct stat_entry *s = (struct stat_entry *)STATS_AREA;
	s[0] = (struct stat_entry){ 4, memfree };
	s[1] = (struct stat_entry){ 5, 0x2222 };
	s[2] = (struct stat_entry){ 9, 7 };
	struct vio_buf b = { s, 3 * sizeof *s, 0 };
	vio_add(&dev, 2, &b, 1);
	vio_notify(&dev, 2);
}

/* Sends n PFNs from `first` on queue q, PER_BUF per buffer, and waits for them all. */
static int send_pfns(int q, uint32_t first, uint32_t n)
{
	uint32_t bufs = 0;
	for (uint32_t done = 0; done < n; bufs++) {
		uint32_t *arr = (uint32_t *)(PFN_AREA + (uint64_t)(bufs % QSZ) * 1024);
		uint32_t k = n - done < PER_BUF ? n - done : PER_BUF;
		for (uint32_t i = 0; i < k; i++)
			arr[i] = first + done + i;
		struct vio_buf b = { arr, k * 4, 0 };
		if (vio_add(&dev, q, &b, 1) < 0)
			return -1;
		done += k;
		/* Keep well inside the ring; one notify per batch of buffers. */
		if (bufs % 32 == 31) {
			vio_notify(&dev, q);
			for (int i = 0; i < 32; i++)
				if (vio_wait_used(&dev, q, 0, SPINS) < 0)
					return -1;
		}
	}
	vio_notify(&dev, q);
	for (uint32_t i = bufs - bufs / 32 * 32; i > 0; i--)
		if (vio_wait_used(&dev, q, 0, SPINS) < 0)
			return -1;
	return 0;
}

static int send_raw(int q, const void *p, uint32_t len)
{
	struct vio_buf b = { p, len, 0 };
	if (vio_add(&dev, q, &b, 1) < 0)
		return -1;
	vio_notify(&dev, q);
	return vio_wait_used(&dev, q, 0, SPINS) < 0 ? -1 : 0;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	if (vio_init(&dev, BALLOON_BASE, BALLOON_ID, F_STATS_VQ) < 0)
		return 10;
	if (!(dev.features & F_STATS_VQ))
		return 11;
	for (int q = 0; q < 3; q++)
		if (vio_queue_setup(&dev, q, QSZ, (void *)(RING_AREA + (uint64_t)q * 0x10000)) < 0)
			return 12;
	vio_driver_ok(&dev);

	/* 1 */
	for (uint32_t p = 0; p < TOUCH_PAGES + CANARY_PAGES; p++) {
		uint64_t pfn = TOUCH / 4096 + p;
		*(volatile uint64_t *)(pfn * 4096) = page_word(pfn);
		*(volatile uint64_t *)(pfn * 4096 + 2048) = ~page_word(pfn);
	}
	for (uint32_t p = 0; p < ANON_PAGES; p++)
		*(volatile uint64_t *)(ANON + (uint64_t)p * 4096) = page_word(p);
	post_stats(0x1111);
	report(1);

	/* 2 */
	uint32_t target = vio_config_read(&dev, 0, 4);
	if (target == 0 || target > TOUCH_PAGES)
		return 20;
	if (send_pfns(0, TOUCH / 4096, target) < 0)
		return 21;
	if (send_pfns(0, ANON / 4096, ANON_PAGES) < 0)
		return 24;
	static const uint32_t hostile[] = { 0xffffffffu, 0x100000u, ROM_PFN, ROM_PFN + 1, 0xd0000u };
	if (send_raw(0, hostile, sizeof hostile) < 0)
		return 22;
	if (send_raw(0, hostile, 3) < 0)
		return 23;
	vio_config_write(&dev, 4, target, 4);
	report(2);

	/* 3 */
	if (vio_wait_used(&dev, 2, 0, SPINS) < 0)
		return 30;
	post_stats(0x3333);
	uint32_t half = target / 2;
	if (send_pfns(1, TOUCH / 4096, half) < 0)
		return 31;
	for (uint32_t p = 0; p < half; p++) {
		uint64_t a = TOUCH + (uint64_t)p * 4096;
		if (*(volatile uint64_t *)a != 0 || *(volatile uint64_t *)(a + 2048) != 0)
			return 32;
	}
	for (uint32_t p = TOUCH_PAGES; p < TOUCH_PAGES + CANARY_PAGES; p++) {
		uint64_t pfn = TOUCH / 4096 + p;
		if (*(volatile uint64_t *)(pfn * 4096) != page_word(pfn) ||
		    *(volatile uint64_t *)(pfn * 4096 + 2048) != ~page_word(pfn))
			return 33;
	}
	vio_config_write(&dev, 4, target - half, 4);
	report(3);
	return 0;
}
