/* virtio-rng through real rings (tests/kvm/test_virtio_rng.c). The device sits at
 * 0xd0000000. The guest records what each request returned in `results`, which the host
 * checks against the buffers themselves.
 *
 * arg 1: four 256-byte requests, a 3-segment chain (100 + 200 + 300 bytes) behind a
 *        device-readable segment, and (if negotiated) an indirect 2-segment chain.
 *        Exit 0x100, or 0xe0 | step on failure.
 * arg 2: a 256-byte warm-up request, report(0x101); then one request with the 1 MiB
 *        writable buffer `big`, exit 0x102.
 */
#include "rt/virtio.h"

#define RNG_BASE 0xd0000000ull
#define QSIZE 16

struct rng_result {
	uint32_t len;     /* used length the device returned */
	uint32_t nonzero; /* non-zero bytes in the buffer afterwards */
	uint64_t sum;     /* checksum of the buffer (see checksum) */
};

struct rng_result results[8];
uint8_t small[4][256];
uint8_t readable[64];
uint8_t multi[600];
uint8_t indirect_buf[2][128];
struct vio_desc itable[2] __attribute__((aligned(16)));
uint8_t big[1u << 20] __attribute__((aligned(4096)));
static uint8_t ring[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static struct vio_dev dev;

/* Position-dependent, so the host's recomputation proves the guest saw these bytes. */
static uint64_t checksum(const uint8_t *p, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void record(int slot, int64_t len, const uint8_t *p, uint32_t n)
{
	uint32_t nz = 0;
	for (uint32_t i = 0; i < n; i++)
		nz += p[i] != 0;
	results[slot].len = (uint32_t)len;
	results[slot].nonzero = nz;
	results[slot].sum = checksum(p, n);
}

static int setup(void)
{
	if (vio_init(&dev, RNG_BASE, 4, VIO_F_INDIRECT_DESC) != 0)
		return -1;
	if (vio_queue_setup(&dev, 0, QSIZE, ring) != 0)
		return -1;
	vio_driver_ok(&dev);
	return (vio_status(&dev) & VIO_S_DRIVER_OK) ? 0 : -1;
}

static uint32_t basic(void)
{
	for (int k = 0; k < 4; k++) {
		struct vio_buf b = { small[k], sizeof small[k], 1 };
		int64_t len = vio_request(&dev, 0, &b, 1);
		if (len < 0)
			return 0xe1;
		record(k, len, small[k], sizeof small[k]);
	}
	/* The device fills only writable buffers and reports exactly what it wrote. */
	memset(readable, 0x5a, sizeof readable);
	struct vio_buf m[4] = {
		{ readable, sizeof readable, 0 },
		{ multi, 100, 1 },
		{ multi + 100, 200, 1 },
		{ multi + 300, 300, 1 },
	};
	int64_t len = vio_request(&dev, 0, m, 4);
	if (len < 0)
		return 0xe2;
	record(4, len, multi, sizeof multi);
	record(5, 0, readable, sizeof readable);

	if (dev.features & VIO_F_INDIRECT_DESC) {
		struct vio_buf ib[2] = { { indirect_buf[0], 128, 1 }, { indirect_buf[1], 128, 1 } };
		if (vio_add_indirect(&dev, 0, ib, 2, itable) < 0)
			return 0xe3;
		vio_notify(&dev, 0);
		uint32_t ulen = 0;
		if (vio_wait_used(&dev, 0, &ulen, 0) < 0)
			return 0xe4;
		record(6, ulen, &indirect_buf[0][0], sizeof indirect_buf);
	}
	/* Every descriptor came back to the free list. */
	if (dev.q[0].num_free != QSIZE)
		return 0xe5;
	return 0x100;
}

int guest_main(uint64_t arg)
{
	if (setup() != 0)
		return 0xe0;
	if (arg == 1)
		return (int)basic();
	if (arg == 2) {
		struct vio_buf b = { small[0], sizeof small[0], 1 };
		int64_t len = vio_request(&dev, 0, &b, 1);
		if (len < 0)
			return 0xe1;
		record(0, len, small[0], sizeof small[0]);
		report(0x101);
		struct vio_buf g = { big, sizeof big, 1 };
		len = vio_request(&dev, 0, &g, 1);
		if (len < 0)
			return 0xe2;
		results[1].len = (uint32_t)len;
		return 0x102;
	}
	return 0xef;
}
