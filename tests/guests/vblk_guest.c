/* virtio-blk through real rings (tests/kvm/test_virtio_blk.c). The device sits at
 * 0xd0000000; the guest records every status byte and what it read in `res`, and the
 * host checks them against the image file.
 *
 * arg 1 (read-write disk):
 *   config: capacity, seg_max, blk_size, discard/write-zeroes limits -> res
 *   writes sectors [8, 72) in 8 requests of 4 KiB (the last with its data split over
 *   three descriptors at odd boundaries), FLUSH, reads all 64 back in one request and
 *   compares (res.mismatch), checksums them (res.sum1); GET_ID; a read at the capacity
 *   and a write straddling the end (IOERR); an unknown type (UNSUPP); DISCARD [16, 24)
 *   and WRITE_ZEROES [40, 44); reads back again and checks zeros there (res.mismatch2,
 *   res.sum2); a chain without a status byte (used length 0, device still alive) and a
 *   request after it. Exit 0x100, or 0xe0 + step.
 * arg 2 (read-only disk): RO offered; a write gets IOERR; a 16-sector read succeeds
 *   (res.sum1). Exit 0x200.
 * arg 3: 20 reads of one sector, exit 0x300. arg 4: 32 reads of 64 KiB, exit 0x400
 *   (the host times them against its rate limit).
 */
#include "rt/virtio.h"

#define BLK_BASE 0xd0000000ull
#define QSIZE 32

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13

#define F_SEG_MAX (1ull << 2)
#define F_RO (1ull << 5)
#define F_BLK_SIZE (1ull << 6)
#define F_FLUSH (1ull << 9)
#define F_DISCARD (1ull << 13)
#define F_WRITE_ZEROES (1ull << 14)

#define S_UNTOUCHED 0xaa

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct range {
	uint64_t sector;
	uint32_t num_sectors, flags;
};

struct vblk_results {
	uint64_t capacity;
	uint64_t features;
	uint32_t seg_max, blk_size, max_discard_sectors, max_wz_sectors;
	uint8_t st_write[8];
	uint8_t st_flush, st_read, st_get_id, st_oob_read, st_oob_write, st_unsupp;
	uint8_t st_discard, st_wz, st_read2, st_after_malformed, st_ro_write, st_ro_read;
	uint32_t len_read, len_get_id, len_malformed, len_after_malformed;
	uint32_t mismatch, mismatch2;
	uint32_t status_after_malformed;
	uint64_t sum1, sum2;
	char id[20];
	uint32_t requests;
};

struct vblk_results res;
static uint8_t wbuf[64 * 512] __attribute__((aligned(4096)));
static uint8_t rbuf[64 * 1024] __attribute__((aligned(4096)));
static uint8_t ring[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static struct vio_dev dev;
static struct hdr h;
static struct range rng[2];
static uint8_t status;

/* The byte at position i of sector s: what the host recomputes. */
static uint8_t pattern(uint64_t s, uint32_t i) { return (uint8_t)(s * 31 + i * 7 + (i >> 8)); }

static uint64_t fnv(const uint8_t *p, uint32_t n)
{
	uint64_t x = 1469598103934665603ull;
	for (uint32_t i = 0; i < n; i++)
		x = (x ^ p[i]) * 1099511628211ull;
	return x;
}

/* header | bufs | status; returns the status byte (S_UNTOUCHED if the device did not
 * write it), the used length in *len. */
static uint8_t request(uint32_t type, uint64_t sector, const struct vio_buf *data, int ndata, uint32_t *len)
{
	struct vio_buf b[6];
	h.type = type;
	h.reserved = 0;
	h.sector = sector;
	status = S_UNTOUCHED;
	b[0] = (struct vio_buf){ &h, sizeof h, 0 };
	for (int i = 0; i < ndata; i++)
		b[1 + i] = data[i];
	b[1 + ndata] = (struct vio_buf){ &status, 1, 1 };
	int64_t l = vio_request(&dev, 0, b, ndata + 2);
	res.requests++;
	if (len)
		*len = l < 0 ? 0xffffffffu : (uint32_t)l;
	return l < 0 ? 0xee : status;
}

static uint8_t simple(uint32_t type, uint64_t sector, void *buf, uint32_t n, int write, uint32_t *len)
{
	struct vio_buf d = { buf, n, write };
	return request(type, sector, &d, n ? 1 : 0, len);
}

static int setup(uint64_t wanted)
{
	if (vio_init(&dev, BLK_BASE, 2, wanted) != 0)
		return -1;
	if (vio_queue_setup(&dev, 0, QSIZE, ring) != 0)
		return -1;
	vio_driver_ok(&dev);
	return (vio_status(&dev) & VIO_S_DRIVER_OK) ? 0 : -1;
}

static void read_config(void)
{
	res.capacity = vio_config_read(&dev, 0, 4) | (uint64_t)vio_config_read(&dev, 4, 4) << 32;
	res.seg_max = vio_config_read(&dev, 12, 4);
	res.blk_size = vio_config_read(&dev, 20, 4);
	res.max_discard_sectors = vio_config_read(&dev, 36, 4);
	res.max_wz_sectors = vio_config_read(&dev, 48, 4);
	res.features = dev.features;
}

/* Sectors [8, 72) as rbuf holds them: pattern, zeros where `zeroed`. */
static uint32_t compare(int zeroed)
{
	uint32_t bad = 0;
	for (uint64_t s = 8; s < 72; s++) {
		bool zero = zeroed && ((s >= 16 && s < 24) || (s >= 40 && s < 44));
		for (uint32_t i = 0; i < 512; i++)
			bad += rbuf[(s - 8) * 512 + i] != (zero ? 0 : pattern(s, i));
	}
	return bad;
}

static int read_write(void)
{
	if (setup(F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES | F_RO) != 0)
		return 0xe0;
	read_config();
	for (uint64_t s = 8; s < 72; s++)
		for (uint32_t i = 0; i < 512; i++)
			wbuf[(s - 8) * 512 + i] = pattern(s, i);
	for (int k = 0; k < 7; k++)
		res.st_write[k] = simple(T_OUT, 8 + 8 * (uint64_t)k, wbuf + k * 4096, 4096, 0, NULL);
	struct vio_buf split[3] = {
		{ wbuf + 7 * 4096, 1000, 0 },
		{ wbuf + 7 * 4096 + 1000, 2000, 0 },
		{ wbuf + 7 * 4096 + 3000, 1096, 0 },
	};
	res.st_write[7] = request(T_OUT, 64, split, 3, NULL);
	res.st_flush = simple(T_FLUSH, 0, NULL, 0, 0, NULL);

	memset(rbuf, 0x55, sizeof rbuf);
	res.st_read = simple(T_IN, 8, rbuf, 64 * 512, 1, &res.len_read);
	res.mismatch = compare(0);
	res.sum1 = fnv(rbuf, 64 * 512);

	res.st_get_id = simple(T_GET_ID, 0, res.id, sizeof res.id, 1, &res.len_get_id);
	res.st_oob_read = simple(T_IN, res.capacity, rbuf, 512, 1, NULL);
	res.st_oob_write = simple(T_OUT, res.capacity - 1, wbuf, 1024, 0, NULL);
	res.st_unsupp = simple(99, 0, NULL, 0, 0, NULL);

	rng[0] = (struct range){ 16, 8, 0 };
	res.st_discard = simple(T_DISCARD, 0, rng, sizeof rng[0], 0, NULL);
	rng[0] = (struct range){ 40, 4, 0 };
	res.st_wz = simple(T_WRITE_ZEROES, 0, rng, sizeof rng[0], 0, NULL);
	memset(rbuf, 0x55, sizeof rbuf);
	res.st_read2 = simple(T_IN, 8, rbuf, 64 * 512, 1, NULL);
	res.mismatch2 = compare(1);
	res.sum2 = fnv(rbuf, 64 * 512);

	/* A chain with no device-writable byte: the device cannot report on it, must
	 * complete it with nothing written, and must go on working. */
	h = (struct hdr){ T_IN, 0, 8 };
	struct vio_buf bad[1] = { { &h, sizeof h, 0 } };
	int64_t l = vio_request(&dev, 0, bad, 1);
	res.len_malformed = l < 0 ? 0xffffffffu : (uint32_t)l;
	res.status_after_malformed = vio_status(&dev);
	memset(rbuf, 0, 512);
	res.st_after_malformed = simple(T_IN, 8, rbuf, 512, 1, &res.len_after_malformed);
	if (rbuf[511] != pattern(8, 511))
		return 0xe1;
	if (dev.q[0].num_free != QSIZE)
		return 0xe2;
	return 0x100;
}

static int read_only(void)
{
	if (setup(F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_RO) != 0)
		return 0xe0;
	read_config();
	memset(wbuf, 0x77, 512);
	res.st_ro_write = simple(T_OUT, 0, wbuf, 512, 0, NULL);
	res.st_ro_read = simple(T_IN, 0, rbuf, 16 * 512, 1, &res.len_read);
	res.sum1 = fnv(rbuf, 16 * 512);
	return 0x200;
}

static int many(int n, uint32_t len, int code)
{
	if (setup(F_FLUSH) != 0)
		return 0xe0;
	for (int i = 0; i < n; i++)
		if (simple(T_IN, 0, rbuf, len, 1, NULL) != 0)
			return 0xe1;
	return code;
}

int guest_main(uint64_t arg)
{
	switch (arg) {
	case 1: return read_write();
	case 2: return read_only();
	case 3: return many(20, 512, 0x300);
	case 4: return many(32, 64 * 1024, 0x400);
	}
	return 0xef;
}
