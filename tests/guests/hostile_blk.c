/* A virtio-blk driver that misbehaves on purpose (tests/kvm/test_hostile_blk.c), one
 * HOSTILE-GUEST.md line per mode. The device sits at 0xd0000000; RAM is 32 MiB at 0; the
 * image holds img_byte(offset) everywhere (the host fills it).
 *
 * Mode 1 (GOOD) is the well-behaved neighbour that runs in a second VM meanwhile: it
 * writes and reads back its own sectors until the host sets `stop`, counting rounds in
 * good_ok / good_bad, and exits 0x200.
 *
 * The hostile modes follow one shape: bring the device up and prove it works, misbehave,
 * record what the driver observes in res[] (res[1]: the status register once
 * DEVICE_NEEDS_RESET showed up, or the last value read), report(0x101) so the host can
 * look at the broken device while the neighbour keeps working, then reset the device,
 * prove it works again (recover: a read checked against the image, a write of sector
 * 200 read back) and exit 0x100. Modes that do not break the device exit 0x100 directly
 * (or report intermediate steps as 0x101, 0x102). 0xe00 | step: a step failed.
 */
#include "rt/virtio.h"

#define BASE 0xd0000000ull
#define RAM_END 0x2000000ull
#define BLK_ID 2
#define QSIZE 16
#define BIGQ 256
#define SPINS (1ull << 28)

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8

#define S_OK 0
#define S_IOERR 1
#define S_UNTOUCHED 0xaa

#define F_FLUSH (1ull << 9)

#define FAIL(step) return 0xe00 | (step)

enum {
	M_GOOD = 1,
	M_CHAIN_LOOP,
	M_ZERO_LOOP,
	M_AVAIL_JUMP,
	M_HEAD_OOR,
	M_NEXT_OOR,
	M_INDIRECT_LOOP,
	M_WRAP,
	M_HUGE_LEN,
	M_PAST_RAM_IN,
	M_PAST_RAM_OUT,
	M_MMIO_BUF,
	M_IND_LEN,
	M_IND_NESTED,
	M_IND_OUTSIDE,
	M_IND_NEXT,
	M_NO_INDIRECT,
	M_TOTAL_4G,
	M_RW_ORDER,
	M_WRONG_DIRECTION,
	M_ZERO_LEN,
	M_HEADER_ONLY,
	M_REGS_AFTER_OK,
	M_RESUBMIT,
	M_REWRITE,
	M_NOTIFY_IDX,
	M_BEFORE_OK,
	M_BAD_SIZE,
	M_BAD_RING,
	M_UNREAPED,
	M_GET_ID_SHORT,
	M_DURABLE,
};

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

uint64_t res[64];
volatile uint64_t stop;
volatile uint64_t good_ok, good_bad;

static struct vio_dev dev;
static uint8_t ring[VIO_RING_BYTES(BIGQ)] __attribute__((aligned(4096)));
static uint8_t ring_b[VIO_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static struct hdr hdrs[BIGQ];
static uint8_t stat[BIGQ];
static uint8_t buf[64 * 1024] __attribute__((aligned(4096)));
static uint8_t slots[128][513];
static struct vio_desc itab[256] __attribute__((aligned(16)));
static struct vio_desc itab2[4] __attribute__((aligned(16)));
static uint8_t id[40];

/* What the host put in the image (keep in sync with the test). */
static uint8_t img_byte(uint64_t off) { return (uint8_t)(off * 7 + (off >> 9) * 13 + 5); }

static void spin(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		cpu_relax();
}

static int up(uint64_t wanted, uint16_t qsize)
{
	if (vio_init(&dev, BASE, BLK_ID, wanted | F_FLUSH) != 0)
		return -1;
	if (vio_queue_setup(&dev, 0, qsize, ring) != 0)
		return -1;
	vio_driver_ok(&dev);
	uint32_t s = vio_status(&dev);
	return (s & VIO_S_DRIVER_OK) && !(s & VIO_S_NEEDS_RESET) ? 0 : -1;
}

/* header | data | status through the driver's allocator; returns the status byte, or
 * 0xee when the device did not answer. */
static uint8_t rw(uint32_t type, uint64_t sector, void *data, uint32_t len, int data_write, uint32_t *used)
{
	static struct hdr h;
	static uint8_t st;
	h = (struct hdr){ type, 0, sector };
	st = S_UNTOUCHED;
	struct vio_buf b[3] = { { &h, sizeof h, 0 }, { data, len, data_write }, { &st, 1, 1 } };
	struct vio_buf nb[2] = { { &h, sizeof h, 0 }, { &st, 1, 1 } };
	if (vio_add(&dev, 0, len ? b : nb, len ? 3 : 2) < 0)
		return 0xed;
	vio_notify(&dev, 0);
	uint32_t l = 0;
	if (vio_wait_used(&dev, 0, &l, SPINS) < 0)
		return 0xee;
	if (used)
		*used = l;
	return st;
}

/* Mismatches of [p, p + len) against the image from `sector` on. */
static uint32_t check(const uint8_t *p, uint64_t sector, uint32_t len)
{
	uint32_t bad = 0;
	for (uint32_t i = 0; i < len; i++)
		bad += p[i] != img_byte(sector * 512 + i);
	return bad;
}

/* Reset, set up again, read sectors 8..15 and check them, write sector 200 with
 * 0xa0 + mode and read it back. */
static int recover(uint8_t mark)
{
	if (up(0, QSIZE) != 0)
		return 1;
	memset(buf, 0, 4096);
	if (rw(T_IN, 8, buf, 4096, 1, 0) != S_OK || check(buf, 8, 4096))
		return 2;
	memset(buf, mark, 512);
	if (rw(T_OUT, 200, buf, 512, 0, 0) != S_OK)
		return 3;
	memset(buf, 0, 512);
	if (rw(T_IN, 200, buf, 512, 1, 0) != S_OK)
		return 4;
	for (int i = 0; i < 512; i++)
		if (buf[i] != mark)
			return 5;
	return 0;
}

/* ---- raw ring access (the driver's allocator is bypassed; the next up() resets it) ---- */

static void setd(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	volatile struct vio_desc *d = &dev.q[0].desc[i];
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static uint64_t A(const void *p) { return (uint64_t)(uintptr_t)p; }

static void pub(uint16_t head)
{
	struct vio_queue *q = &dev.q[0];
	uint16_t idx = q->avail[1];
	q->avail[2 + idx % q->size] = head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->avail[1] = (uint16_t)(idx + 1);
}

static void kick(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vio_reg_write(&dev, VIO_QUEUE_NOTIFY, 0);
}

static uint16_t used_idx(void) { return dev.q[0].used[1]; }

static uint32_t wait_broken(void)
{
	uint32_t s = 0;
	for (int i = 0; i < 200000 && !((s = vio_status(&dev)) & VIO_S_NEEDS_RESET); i++)
		spin(500);
	return s;
}

/* A request the way a correct driver writes it, in descriptors 0..2. */
static void good_chain(uint32_t type, uint64_t sector, void *data, uint32_t len, int data_write)
{
	hdrs[0] = (struct hdr){ type, 0, sector };
	stat[0] = S_UNTOUCHED;
	setd(0, A(&hdrs[0]), 16, VIO_DESC_F_NEXT, 1);
	setd(1, A(data), len, (uint16_t)(VIO_DESC_F_NEXT | (data_write ? VIO_DESC_F_WRITE : 0)), 2);
	setd(2, A(&stat[0]), 1, VIO_DESC_F_WRITE, 0);
}

/* ---- the neighbour ---- */

static int mode_good(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	static uint8_t w[4096], r[4096];
	for (uint64_t round = 0; !stop; round++) {
		uint64_t sector = 16 + (round % 32) * 8;
		for (int i = 0; i < 4096; i++)
			w[i] = (uint8_t)(round * 29 + (uint64_t)i * 3);
		memset(r, 0, sizeof r);
		if (rw(T_OUT, sector, w, 4096, 0, 0) != S_OK || rw(T_IN, sector, r, 4096, 1, 0) != S_OK ||
		    memcmp(w, r, sizeof r) != 0 || (vio_status(&dev) & VIO_S_NEEDS_RESET)) {
			good_bad++;
			FAIL(2);
		}
		good_ok++;
	}
	return 0x200;
}

/* ---- modes that break the ring: the device must enter DEVICE_NEEDS_RESET ---- */

/* Brings the device up, checks it works, runs `misbehave`, waits for NEEDS_RESET,
 * checks that a valid request on the broken ring is not served, reports 0x101, then
 * recovers. */
static int breaking(int mode, uint64_t wanted, void (*misbehave)(void))
{
	if (up(wanted, QSIZE) != 0)
		FAIL(1);
	memset(buf, 0, 4096);
	res[0] = rw(T_IN, 8, buf, 4096, 1, 0);
	if (res[0] != S_OK || check(buf, 8, 4096))
		FAIL(2);
	uint16_t u0 = used_idx();
	misbehave();
	res[1] = wait_broken();
	res[2] = vio_reg_read(&dev, VIO_INTERRUPT_STATUS);
	/* The ring is broken: a valid request after it is not served. */
	good_chain(T_IN, 8, buf, 512, 1);
	pub(0);
	kick();
	spin(200000);
	res[3] = (uint16_t)(used_idx() - u0);
	res[4] = stat[0];
	report(0x101);
	res[5] = (uint64_t)recover((uint8_t)(0xa0 + mode));
	return res[5] ? (int)(0xe10 | res[5]) : 0x100;
}

static void mis_chain_loop(void)
{
	hdrs[1] = (struct hdr){ T_IN, 0, 0 };
	setd(3, A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 4);
	setd(4, A(buf), 512, VIO_DESC_F_NEXT, 3); /* a -> b -> a */
	pub(3);
	kick();
}

static void mis_zero_loop(void)
{
	/* CVE-2016-6490: zero-length descriptors that loop; one points nowhere. */
	setd(3, 0xdead00000000ull, 0, VIO_DESC_F_NEXT, 4);
	setd(4, A(buf), 0, VIO_DESC_F_NEXT, 3);
	pub(3);
	kick();
}

static void mis_avail_jump(void)
{
	struct vio_queue *q = &dev.q[0];
	q->avail[1] = (uint16_t)(q->avail[1] + 0x8000);
	kick();
}

static void mis_head_oor(void)
{
	pub(QSIZE);
	kick();
}

static void mis_next_oor(void)
{
	hdrs[1] = (struct hdr){ T_IN, 0, 0 };
	setd(3, A(&hdrs[1]), 16, VIO_DESC_F_NEXT, QSIZE);
	pub(3);
	kick();
}

static void mis_indirect_loop(void)
{
	hdrs[1] = (struct hdr){ T_IN, 0, 0 };
	itab[0] = (struct vio_desc){ A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 1 };
	itab[1] = (struct vio_desc){ A(buf), 512, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 0 };
	setd(3, A(itab), 2 * 16, VIO_DESC_F_INDIRECT, 0);
	pub(3);
	kick();
}

/* header (T_IN sector 0) | data as given | status, in descriptors 3..5. */
static void bad_data(uint32_t type, uint64_t sector, uint64_t addr, uint32_t len, uint16_t flags)
{
	hdrs[1] = (struct hdr){ type, 0, sector };
	stat[1] = S_UNTOUCHED;
	setd(3, A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 4);
	setd(4, addr, len, (uint16_t)(flags | VIO_DESC_F_NEXT), 5);
	setd(5, A(&stat[1]), 1, VIO_DESC_F_WRITE, 0);
	pub(3);
	kick();
}

static void mis_wrap(void) { bad_data(T_IN, 0, 0xfffffffffffff000ull, 0x2000, VIO_DESC_F_WRITE); }
/* CVE-2016-7422: a length of almost 4 GiB from a valid address (with the 16-byte
 * header the chain holds exactly 4 GiB, so it is the RAM check that refuses it; 4 GiB - 1
 * would trip the 4 GiB total first). */
static void mis_huge_len(void) { bad_data(T_IN, 0, A(buf), 0xfffffff0u, VIO_DESC_F_WRITE); }
/* CVE-2019-18960: a buffer that ends one byte past the end of RAM. */
static void mis_past_ram_in(void) { bad_data(T_IN, 0, RAM_END - 511, 512, VIO_DESC_F_WRITE); }
static void mis_past_ram_out(void) { bad_data(T_OUT, 300, RAM_END - 511, 512, 0); }
/* CVE-2024-3446: DMA into the device's own registers. */
static void mis_mmio_buf(void) { bad_data(T_IN, 0, BASE, 512, VIO_DESC_F_WRITE); }

static void indirect_head(uint64_t table, uint32_t len, uint16_t extra)
{
	setd(3, table, len, (uint16_t)(VIO_DESC_F_INDIRECT | extra), 4);
	setd(4, A(&stat[1]), 1, VIO_DESC_F_WRITE, 0);
	pub(3);
	kick();
}

static void fill_itab(void)
{
	hdrs[1] = (struct hdr){ T_IN, 0, 0 };
	itab[0] = (struct vio_desc){ A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 1 };
	itab[1] = (struct vio_desc){ A(buf), 512, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 2 };
	itab[2] = (struct vio_desc){ A(&stat[1]), 1, VIO_DESC_F_WRITE, 0 };
}

static void mis_ind_len(void)
{
	fill_itab();
	indirect_head(A(itab), 24, 0);
}

static void mis_ind_nested(void)
{
	fill_itab();
	itab2[0] = (struct vio_desc){ A(&hdrs[1]), 16, 0, 0 };
	itab[2] = (struct vio_desc){ A(itab2), 16, VIO_DESC_F_INDIRECT, 0 };
	indirect_head(A(itab), 48, 0);
}

static void mis_ind_outside(void)
{
	fill_itab();
	indirect_head(RAM_END - 16, 32, 0); /* the table's second entry is past RAM */
}

static void mis_ind_next(void)
{
	fill_itab();
	indirect_head(A(itab), 48, VIO_DESC_F_NEXT);
}

static void mis_no_indirect(void)
{
	fill_itab();
	indirect_head(A(itab), 48, 0);
}

/* Item 9: 129 readable descriptors over all 32 MiB of RAM: more than 4 GiB in total. A
 * device that missed it would see a write of 4 GiB at sector 0 (IOERR: past the end). */
static void mis_total_4g(void)
{
	hdrs[1] = (struct hdr){ T_OUT, 0, 0 };
	itab[0] = (struct vio_desc){ A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 1 };
	for (uint16_t i = 1; i <= 129; i++)
		itab[i] = (struct vio_desc){ 0, (uint32_t)RAM_END, VIO_DESC_F_NEXT, (uint16_t)(i + 1) };
	itab[130] = (struct vio_desc){ A(&stat[1]), 1, VIO_DESC_F_WRITE, 0 };
	setd(3, A(itab), 131 * 16, VIO_DESC_F_INDIRECT, 0);
	pub(3);
	kick();
}

/* Item 10: a device-readable buffer after the device-writable status. */
static void mis_rw_order(void)
{
	hdrs[1] = (struct hdr){ T_OUT, 0, 301 };
	setd(3, A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 4);
	setd(4, A(&stat[1]), 1, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 5);
	setd(5, A(buf), 512, 0, 0);
	pub(3);
	kick();
}

/* ---- modes where the device answers with a status, or simply keeps working ---- */

/* Item 10 the other way round: buffers of the wrong direction that the ring rules allow.
 * The header in a writable descriptor -> IOERR; OUT data in a writable buffer -> a write
 * of nothing (the file keeps its bytes, the buffer its contents); IN data in a readable
 * buffer -> a read of nothing (the buffer untouched). */
static int mode_wrong_direction(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	hdrs[0] = (struct hdr){ T_IN, 0, 8 };
	stat[0] = S_UNTOUCHED;
	setd(0, A(&hdrs[0]), 16, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 1);
	setd(1, A(&stat[0]), 1, VIO_DESC_F_WRITE, 0);
	pub(0);
	kick();
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(2);
	res[0] = stat[0];
	/* OUT whose data the device may write: descriptors 2..4. */
	memset(buf, 0x5c, 512);
	hdrs[1] = (struct hdr){ T_OUT, 0, 301 };
	stat[1] = S_UNTOUCHED;
	setd(2, A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 3);
	setd(3, A(buf), 512, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 4);
	setd(4, A(&stat[1]), 1, VIO_DESC_F_WRITE, 0);
	pub(2);
	kick();
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(3);
	res[1] = stat[1];
	res[2] = 0;
	for (int i = 0; i < 512; i++)
		res[2] += buf[i] != 0x5c;
	/* IN whose data the device may only read: descriptors 5..7. */
	memset(buf + 1024, 0x3d, 512);
	hdrs[2] = (struct hdr){ T_IN, 0, 8 };
	stat[2] = S_UNTOUCHED;
	setd(5, A(&hdrs[2]), 16, VIO_DESC_F_NEXT, 6);
	setd(6, A(buf + 1024), 512, VIO_DESC_F_NEXT, 7);
	setd(7, A(&stat[2]), 1, VIO_DESC_F_WRITE, 0);
	pub(5);
	kick();
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(4);
	res[3] = stat[2];
	res[4] = len;
	res[5] = 0;
	for (int i = 0; i < 512; i++)
		res[5] += buf[1024 + i] != 0x3d;
	res[6] = vio_status(&dev);
	return recover(0xa0 + M_WRONG_DIRECTION) ? 0xe05 : 0x100;
}

/* Item 11 / CVE-2016-6490: zero-length descriptors inside a valid request (one of them
 * pointing nowhere) are skipped; a chain of nothing but zero-length descriptors
 * completes with nothing written. */
static int mode_zero_len(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	hdrs[0] = (struct hdr){ T_IN, 0, 8 };
	stat[0] = S_UNTOUCHED;
	memset(buf, 0, 1024);
	setd(0, A(&hdrs[0]), 16, VIO_DESC_F_NEXT, 1);
	setd(1, 0xdead00000000ull, 0, VIO_DESC_F_NEXT, 2);
	setd(2, A(buf), 512, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 3);
	setd(3, BASE, 0, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 4);
	setd(4, A(buf + 512), 512, VIO_DESC_F_WRITE | VIO_DESC_F_NEXT, 5);
	setd(5, A(&stat[0]), 1, VIO_DESC_F_WRITE, 0);
	pub(0);
	kick();
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(2);
	res[0] = stat[0];
	res[1] = len;
	res[2] = check(buf, 8, 1024);
	setd(6, A(buf), 0, VIO_DESC_F_NEXT, 7);
	setd(7, 0xdead00000000ull, 0, VIO_DESC_F_WRITE, 0);
	pub(6);
	kick();
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(3);
	res[3] = len;
	res[4] = vio_status(&dev);
	return recover(0xa0 + M_ZERO_LEN) ? 0xe04 : 0x100;
}

/* Item 11 and Cloud Hypervisor #8401/#8142: a full ring of head-only chains (no status
 * byte), four times over, each comes back with length 0; a 3-byte header and a lone
 * status byte get IOERR; then a full ring of valid requests completes. */
static int mode_header_only(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < QSIZE; i++) {
			hdrs[i] = (struct hdr){ T_IN, 0, 8 };
			struct vio_buf b = { &hdrs[i], sizeof hdrs[i], 0 };
			if (vio_add(&dev, 0, &b, 1) < 0)
				FAIL(2);
		}
		vio_notify(&dev, 0);
		for (int i = 0; i < QSIZE; i++) {
			uint32_t len = 1;
			if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
				FAIL(3);
			res[0] += len;
		}
		if (dev.q[0].num_free != QSIZE)
			FAIL(4);
	}
	hdrs[0] = (struct hdr){ T_IN, 0, 8 };
	stat[0] = S_UNTOUCHED;
	struct vio_buf shorth[2] = { { &hdrs[0], 3, 0 }, { &stat[0], 1, 1 } };
	if (vio_add(&dev, 0, shorth, 2) < 0)
		FAIL(5);
	vio_notify(&dev, 0);
	if (vio_wait_used(&dev, 0, 0, SPINS) < 0)
		FAIL(6);
	res[1] = stat[0];
	stat[1] = S_UNTOUCHED;
	struct vio_buf only = { &stat[1], 1, 1 };
	if (vio_add(&dev, 0, &only, 1) < 0)
		FAIL(7);
	vio_notify(&dev, 0);
	if (vio_wait_used(&dev, 0, 0, SPINS) < 0)
		FAIL(8);
	res[2] = stat[1];
	/* Five valid reads in flight at once (15 of the 16 descriptors). */
	for (int i = 0; i < 5; i++) {
		hdrs[i] = (struct hdr){ T_IN, 0, 8 + (uint64_t)i };
		stat[i] = S_UNTOUCHED;
		struct vio_buf b[3] = { { &hdrs[i], 16, 0 }, { buf + 512 * i, 512, 1 }, { &stat[i], 1, 1 } };
		if (vio_add(&dev, 0, b, 3) < 0)
			FAIL(9);
	}
	vio_notify(&dev, 0);
	for (int i = 0; i < 5; i++)
		if (vio_wait_used(&dev, 0, 0, SPINS) < 0)
			FAIL(10);
	res[3] = 0;
	for (int i = 0; i < 5; i++)
		res[3] += stat[i] != S_OK;
	res[4] = check(buf, 8, 5 * 512);
	res[5] = vio_status(&dev);
	return 0x100;
}

/* Item 12 / CVE-2026-5747: rewrite size, addresses and ready after DRIVER_OK. */
static int mode_regs_after_ok(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	memset(buf, 0, 512);
	res[0] = rw(T_IN, 8, buf, 512, 1, 0);
	memset(ring_b, 0, sizeof ring_b);
	uint64_t bd = A(ring_b), ba = bd + QSIZE * 16, bu = bd + ((QSIZE * 16 + 6 + 2 * QSIZE + 4095) & ~4095ull);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	vio_reg_write(&dev, VIO_QUEUE_NUM, 4);
	vio_reg_write(&dev, VIO_QUEUE_DESC_LOW, (uint32_t)bd);
	vio_reg_write(&dev, VIO_QUEUE_DESC_HIGH, 1); /* and a high half far outside RAM */
	vio_reg_write(&dev, VIO_QUEUE_DRIVER_LOW, (uint32_t)ba);
	vio_reg_write(&dev, VIO_QUEUE_DEVICE_LOW, (uint32_t)bu);
	vio_reg_write(&dev, VIO_QUEUE_READY, 0);
	res[1] = vio_reg_read(&dev, VIO_QUEUE_READY);
	vio_reg_write(&dev, VIO_QUEUE_READY, 1);
	/* A request in ring B only. */
	volatile struct vio_desc *d = (volatile struct vio_desc *)bd;
	volatile uint16_t *av = (volatile uint16_t *)ba, *us = (volatile uint16_t *)bu;
	hdrs[1] = (struct hdr){ T_OUT, 0, 302 };
	stat[1] = S_UNTOUCHED;
	memset(buf + 4096, 0x77, 512);
	d[0] = (struct vio_desc){ A(&hdrs[1]), 16, VIO_DESC_F_NEXT, 1 };
	d[1] = (struct vio_desc){ A(buf + 4096), 512, VIO_DESC_F_NEXT, 2 };
	d[2] = (struct vio_desc){ A(&stat[1]), 1, VIO_DESC_F_WRITE, 0 };
	av[2] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	av[1] = 1;
	kick();
	/* Ring A keeps working; once its request is done, the notify above was handled. */
	memset(buf, 0, 512);
	res[2] = rw(T_IN, 9, buf, 512, 1, 0);
	res[3] = check(buf, 9, 512);
	res[4] = us[1];
	res[5] = stat[1];
	res[6] = vio_status(&dev);
	return 0x100;
}

/* Item 13: the same head published twice before the device looked. virtio-blk completes
 * each request before it pops the next (even under a rate limit the waiting request is
 * finished first), so the head is no longer in flight when the device reaches the second
 * entry: it serves it twice and the used ring names the head twice. (A head that is
 * really still in flight breaks the ring: the balloon's stats queue, and test_virtq.) */
static int mode_resubmit(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	good_chain(T_IN, 8, buf, 512, 1);
	pub(0);
	pub(0);
	kick();
	for (int i = 0; i < 200000 && used_idx() != 2; i++)
		spin(500);
	volatile uint32_t *e = (volatile uint32_t *)(dev.q[0].used + 2);
	res[0] = used_idx();
	res[1] = e[0];
	res[2] = e[1];
	res[3] = e[2];
	res[4] = e[3];
	res[5] = stat[0];
	res[6] = vio_status(&dev);
	return recover(0xa0 + M_RESUBMIT) ? 0xe02 : 0x100;
}

/* Item 14: the driver rewrites descriptors while the device works on them. Each round
 * posts a valid 4 KiB read and keeps flipping its descriptors between valid and invalid
 * values (data address in MMIO, length 4 GiB - 1, next out of range) from before the
 * notify until the request is used or the device gives up, so the device reads them at
 * an arbitrary moment of the flipping (the vCPU and the loop thread run on different
 * CPUs). Every round must end as a correct read or as DEVICE_NEEDS_RESET (then the
 * driver resets); nothing else. */
#define REWRITE_ROUNDS 300
static int mode_rewrite(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	uint64_t ok = 0, broken = 0, bad = 0;
	for (int round = 0; round < REWRITE_ROUNDS; round++) {
		uint64_t sector = 8 + (uint64_t)(round % 16) * 8;
		memset(buf, 0, 4096);
		good_chain(T_IN, sector, buf, 4096, 1);
		uint16_t u0 = used_idx();
		pub(0);
		volatile struct vio_desc *d = dev.q[0].desc;
		uint64_t kick_at = 1 + (uint64_t)round % 37;
		uint32_t st = 0;
		for (uint64_t k = 1; used_idx() == u0; k++) {
			d[1].addr = (k % 4 == 1) ? BASE : A(buf);
			d[1].len = (k % 4 == 3) ? 0xffffffffu : 4096u;
			d[0].next = (k % 8 == 6) ? 200 : 1;
			if (k == kick_at)
				kick();
			if (k % 2048 == 0 && ((st = vio_status(&dev)) & VIO_S_NEEDS_RESET))
				break;
			if (k > (1ull << 26)) {
				bad++;
				break;
			}
		}
		d[1].addr = A(buf);
		d[1].len = 4096;
		d[0].next = 1;
		if (st & VIO_S_NEEDS_RESET) {
			broken++;
			if (up(0, QSIZE) != 0)
				FAIL(2);
			continue;
		}
		volatile uint32_t *e = (volatile uint32_t *)(dev.q[0].used + 2) + 2u * (u0 % QSIZE);
		dev.q[0].last_used = used_idx();
		if (e[0] == 0 && e[1] == 4097 && stat[0] == S_OK && check(buf, sector, 4096) == 0)
			ok++;
		else
			bad++;
	}
	res[0] = ok;
	res[1] = broken;
	res[2] = bad;
	return recover(0xa0 + M_REWRITE) ? 0xe03 : 0x100;
}

/* CVE-2011-2512: QueueNotify with indexes that are out of range, "negative", or that a
 * 16-bit truncation would turn into queue 0; narrow writes. None may reach queue 0. */
static int mode_notify_idx(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	memset(buf, 0, 512);
	hdrs[0] = (struct hdr){ T_IN, 0, 10 };
	stat[0] = S_UNTOUCHED;
	struct vio_buf b[3] = { { &hdrs[0], 16, 0 }, { buf, 512, 1 }, { &stat[0], 1, 1 } };
	if (vio_add(&dev, 0, b, 3) < 0)
		FAIL(2);
	static const uint32_t bad[] = { 0xffffffffu, 0x80000000u, 1, 2, 0xffff, 0x10000, 0x7fffffffu };
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
		vio_reg_write(&dev, VIO_QUEUE_NOTIFY, bad[i]);
	mmio_write16(BASE + VIO_QUEUE_NOTIFY, 0);
	mmio_write8(BASE + VIO_QUEUE_NOTIFY, 0);
	mmio_write64(BASE + VIO_QUEUE_NOTIFY, 0xffffffff00000000ull);
	spin(2000000);
	res[0] = used_idx();
	res[1] = stat[0];
	vio_notify(&dev, 0);
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(3);
	res[2] = stat[0];
	res[3] = check(buf, 10, 512);
	res[4] = vio_status(&dev);
	return 0x100;
}

/* Item 3: a request notified before DRIVER_OK is not served; nor on a queue that was
 * never made ready; served once DRIVER_OK is set. */
static int mode_before_ok(void)
{
	if (vio_init(&dev, BASE, BLK_ID, F_FLUSH) != 0 || vio_queue_setup(&dev, 0, QSIZE, ring) != 0)
		FAIL(1);
	memset(buf, 0, 512);
	hdrs[0] = (struct hdr){ T_IN, 0, 11 };
	stat[0] = S_UNTOUCHED;
	struct vio_buf b[3] = { { &hdrs[0], 16, 0 }, { buf, 512, 1 }, { &stat[0], 1, 1 } };
	if (vio_add(&dev, 0, b, 3) < 0)
		FAIL(2);
	vio_notify(&dev, 0);
	spin(2000000);
	res[0] = used_idx();
	res[1] = stat[0];
	vio_driver_ok(&dev);
	vio_notify(&dev, 0);
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(3);
	res[2] = stat[0];
	res[3] = check(buf, 11, 512);
	/* A queue that is set up but never made ready, then DRIVER_OK: notifies do
	 * nothing. */
	if (vio_init(&dev, BASE, BLK_ID, F_FLUSH) != 0)
		FAIL(4);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	vio_reg_write(&dev, VIO_QUEUE_NUM, QSIZE);
	memset(ring, 0, VIO_RING_BYTES(QSIZE));
	dev.q[0].size = QSIZE;
	dev.q[0].desc = (volatile struct vio_desc *)ring;
	dev.q[0].avail = (volatile uint16_t *)(ring + QSIZE * 16);
	dev.q[0].used = (volatile uint16_t *)(ring + 4096);
	vio_reg_write(&dev, VIO_QUEUE_DESC_LOW, (uint32_t)A(ring));
	vio_reg_write(&dev, VIO_QUEUE_DRIVER_LOW, (uint32_t)A(ring + QSIZE * 16));
	vio_reg_write(&dev, VIO_QUEUE_DEVICE_LOW, (uint32_t)A(ring + 4096));
	vio_driver_ok(&dev);
	good_chain(T_IN, 11, buf, 512, 1);
	pub(0);
	kick();
	spin(2000000);
	res[4] = used_idx();
	res[5] = stat[0];
	res[6] = vio_status(&dev);
	return recover(0xa0 + M_BEFORE_OK) ? 0xe05 : 0x100;
}

/* Item 1: sizes 0, 3, 255, above QueueNumMax, 2^16: QueueReady stays 0. */
static int mode_bad_size(void)
{
	if (vio_init(&dev, BASE, BLK_ID, F_FLUSH) != 0)
		FAIL(1);
	static const uint32_t sizes[] = { 0, 3, 255, 512, 0x10000, 0xffffffffu };
	uint64_t a = A(ring);
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	res[0] = vio_reg_read(&dev, VIO_QUEUE_NUM_MAX);
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		vio_reg_write(&dev, VIO_QUEUE_NUM, sizes[i]);
		vio_reg_write(&dev, VIO_QUEUE_DESC_LOW, (uint32_t)a);
		vio_reg_write(&dev, VIO_QUEUE_DRIVER_LOW, (uint32_t)(a + 0x2000));
		vio_reg_write(&dev, VIO_QUEUE_DEVICE_LOW, (uint32_t)(a + 0x3000));
		vio_reg_write(&dev, VIO_QUEUE_READY, 1);
		res[1 + i] += vio_reg_read(&dev, VIO_QUEUE_READY);
	}
	vio_driver_ok(&dev);
	res[8] = vio_status(&dev);
	return recover(0xa0 + M_BAD_SIZE) ? 0xe02 : 0x100;
}

static void set_ring(uint64_t desc, uint64_t avail, uint64_t used)
{
	vio_reg_write(&dev, VIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vio_reg_write(&dev, VIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vio_reg_write(&dev, VIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	vio_reg_write(&dev, VIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
	vio_reg_write(&dev, VIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	vio_reg_write(&dev, VIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
}

/* Sets QueueNum QSIZE and the ring at (desc, avail, used), QueueReady 1, DRIVER_OK.
 * Returns QueueReady as read back; *status the status afterwards. */
static uint32_t try_ring(uint64_t desc, uint64_t avail, uint64_t used, uint64_t *status)
{
	if (vio_init(&dev, BASE, BLK_ID, F_FLUSH) != 0)
		return 0xdead;
	vio_reg_write(&dev, VIO_QUEUE_SEL, 0);
	vio_reg_write(&dev, VIO_QUEUE_NUM, QSIZE);
	set_ring(desc, avail, used);
	vio_reg_write(&dev, VIO_QUEUE_READY, 1);
	uint32_t ready = vio_reg_read(&dev, VIO_QUEUE_READY);
	vio_driver_ok(&dev);
	*status = vio_status(&dev);
	return ready;
}

/* Item 2: rings misaligned (refused at QueueReady), past the end of RAM or over MMIO
 * (refused at DRIVER_OK with NEEDS_RESET). Sizes for 16 entries: descriptors 256 bytes,
 * avail 38, used 134. */
static int mode_bad_ring(void)
{
	uint64_t a = A(ring);
	uint64_t st;
	res[0] = try_ring(a + 8, a + 0x2000, a + 0x3000, &st);
	res[1] = try_ring(a, a + 0x2001, a + 0x3000, &st);
	res[2] = try_ring(a, a + 0x2000, a + 0x3002, &st);
	res[3] = st;
	/* The used ring ends 2 bytes past RAM (alignment allows no less: 4-aligned, 134
	 * bytes long). */
	res[4] = try_ring(a, a + 0x2000, RAM_END - 132, &res[5]);
	report(0x101);
	/* The descriptor table on the device's own registers. */
	res[6] = try_ring(BASE, a + 0x2000, a + 0x3000, &res[7]);
	report(0x102);
	/* The avail ring in the next device's window, above RAM. */
	res[8] = try_ring(a, BASE + 0x1000, a + 0x3000, &res[9]);
	report(0x103);
	res[10] = (uint64_t)recover(0xa0 + M_BAD_RING);
	return res[10] ? 0xe01 : 0x100;
}

/* CVE-2016-5403: the driver publishes requests as fast as it can and never reaps a
 * completion (no used element is ever read, descriptors are reused at once). 128 chains
 * of two descriptors (header, 512 bytes + status) are published round robin, a notify
 * every 32; the status register is looked at every 4096 entries. Without `paced` the
 * driver laps the device sooner or later, and the device breaks the ring (avail index
 * too far ahead, or a head still in flight). With `paced` it stays within a ring of the
 * device's progress (it reads used->idx, nothing else), so the device serves all of
 * them. Either way the host checks its memory meanwhile. */
#define UNREAPED_MAX (1u << 20)
#define PACED_MAX (200u * 1000u)
static int mode_unreaped(int paced)
{
	if (up(0, BIGQ) != 0)
		FAIL(1);
	for (int i = 0; i < 128; i++) {
		hdrs[i] = (struct hdr){ T_IN, 0, (uint64_t)(i % 64) };
		setd((uint16_t)(2 * i), A(&hdrs[i]), 16, VIO_DESC_F_NEXT, (uint16_t)(2 * i + 1));
		setd((uint16_t)(2 * i + 1), A(slots[i]), 513, VIO_DESC_F_WRITE, 0);
	}
	struct vio_queue *q = &dev.q[0];
	uint32_t n = 0, st = 0;
	uint16_t idx = q->avail[1];
	for (; n < (paced ? PACED_MAX : UNREAPED_MAX); n++) {
		if (paced) {
			uint64_t w = 0;
			while ((uint16_t)(idx - used_idx()) >= 128 && w++ < (1ull << 28))
				cpu_relax();
		}
		q->avail[2 + idx % BIGQ] = (uint16_t)(2 * (n % 128));
		idx++;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		q->avail[1] = idx;
		if (n % 32 == 31)
			kick();
		if (n % 4096 == 4095 && ((st = vio_status(&dev)) & VIO_S_NEEDS_RESET))
			break;
	}
	kick();
	res[0] = n;
	res[1] = vio_status(&dev);
	for (uint64_t w = 0; paced && used_idx() != idx && w < (1ull << 28); w++)
		cpu_relax();
	res[2] = used_idx();
	res[4] = idx;
	report(0x101);
	res[3] = (uint64_t)recover(0xa0 + M_UNREAPED);
	return res[3] ? 0xe02 : 0x100;
}

/* CVE-2023-3180 (lengths not compared): GET_ID needs 20 bytes; a 19-byte buffer with
 * guard bytes after it gets IOERR and nothing written; 20 bytes split 7 + 13 work. */
static int mode_get_id_short(void)
{
	if (up(0, QSIZE) != 0)
		FAIL(1);
	memset(id, 0xcc, sizeof id);
	res[0] = rw(T_GET_ID, 0, id, 19, 1, 0);
	res[1] = 0;
	for (unsigned i = 0; i < sizeof id; i++)
		res[1] += id[i] != 0xcc;
	memset(id, 0xcc, sizeof id);
	hdrs[0] = (struct hdr){ T_GET_ID, 0, 0 };
	stat[0] = S_UNTOUCHED;
	struct vio_buf b[4] = { { &hdrs[0], 16, 0 }, { id, 7, 1 }, { id + 7, 13, 1 }, { &stat[0], 1, 1 } };
	if (vio_add(&dev, 0, b, 4) < 0)
		FAIL(2);
	vio_notify(&dev, 0);
	uint32_t len = 0;
	if (vio_wait_used(&dev, 0, &len, SPINS) < 0)
		FAIL(3);
	res[2] = stat[0];
	res[3] = len;
	memcpy(&res[4], id, 24); /* res[4..6]: the id and 4 guard bytes */
	res[7] = vio_status(&dev);
	return 0x100;
}

/* Block durability: without FLUSH negotiated every write is synced before it is
 * acknowledged (write-through); with FLUSH, writes are not, FLUSH is; a FLUSH whose sync
 * fails gets IOERR. The host counts the syncs and makes them fail at 0x103. */
static int mode_durable(void)
{
	if (vio_init(&dev, BASE, BLK_ID, 0) != 0 || vio_queue_setup(&dev, 0, QSIZE, ring) != 0)
		FAIL(1);
	vio_driver_ok(&dev);
	res[0] = dev.features & F_FLUSH;
	memset(buf, 0x61, 512);
	for (int i = 0; i < 4; i++)
		res[1] |= rw(T_OUT, 400 + (uint64_t)i, buf, 512, 0, 0);
	report(0x101);
	if (up(0, QSIZE) != 0)
		FAIL(2);
	res[2] = dev.features & F_FLUSH;
	for (int i = 0; i < 4; i++)
		res[3] |= rw(T_OUT, 404 + (uint64_t)i, buf, 512, 0, 0);
	report(0x102);
	res[4] = rw(T_FLUSH, 0, 0, 0, 0, 0);
	report(0x103);
	res[5] = rw(T_FLUSH, 0, 0, 0, 0, 0);
	res[6] = rw(T_OUT, 408, buf, 512, 0, 0);
	report(0x104);
	res[7] = rw(T_FLUSH, 0, 0, 0, 0, 0);
	return 0x100;
}

/* A mode that bypasses `breaking` but still needs the data-ending-at-RAM check. */
static int mode_past_ram_in(void)
{
	/* First the boundary itself: a buffer ending exactly at the end of RAM is valid. */
	if (up(0, QSIZE) != 0)
		FAIL(1);
	uint32_t len = 0;
	res[10] = rw(T_IN, 12, (void *)(uintptr_t)(RAM_END - 512), 512, 1, &len);
	res[11] = len;
	return breaking(M_PAST_RAM_IN, 0, mis_past_ram_in);
}

int guest_main(uint64_t arg)
{
	switch (arg) {
	case M_GOOD: return mode_good();
	case M_CHAIN_LOOP: return breaking(M_CHAIN_LOOP, 0, mis_chain_loop);
	case M_ZERO_LOOP: return breaking(M_ZERO_LOOP, 0, mis_zero_loop);
	case M_AVAIL_JUMP: return breaking(M_AVAIL_JUMP, 0, mis_avail_jump);
	case M_HEAD_OOR: return breaking(M_HEAD_OOR, 0, mis_head_oor);
	case M_NEXT_OOR: return breaking(M_NEXT_OOR, 0, mis_next_oor);
	case M_INDIRECT_LOOP: return breaking(M_INDIRECT_LOOP, VIO_F_INDIRECT_DESC, mis_indirect_loop);
	case M_WRAP: return breaking(M_WRAP, 0, mis_wrap);
	case M_HUGE_LEN: return breaking(M_HUGE_LEN, 0, mis_huge_len);
	case M_PAST_RAM_IN: return mode_past_ram_in();
	case M_PAST_RAM_OUT: return breaking(M_PAST_RAM_OUT, 0, mis_past_ram_out);
	case M_MMIO_BUF: return breaking(M_MMIO_BUF, 0, mis_mmio_buf);
	case M_IND_LEN: return breaking(M_IND_LEN, VIO_F_INDIRECT_DESC, mis_ind_len);
	case M_IND_NESTED: return breaking(M_IND_NESTED, VIO_F_INDIRECT_DESC, mis_ind_nested);
	case M_IND_OUTSIDE: return breaking(M_IND_OUTSIDE, VIO_F_INDIRECT_DESC, mis_ind_outside);
	case M_IND_NEXT: return breaking(M_IND_NEXT, VIO_F_INDIRECT_DESC, mis_ind_next);
	case M_NO_INDIRECT: return breaking(M_NO_INDIRECT, 0, mis_no_indirect);
	case M_TOTAL_4G: return breaking(M_TOTAL_4G, VIO_F_INDIRECT_DESC, mis_total_4g);
	case M_RW_ORDER: return breaking(M_RW_ORDER, 0, mis_rw_order);
	case M_WRONG_DIRECTION: return mode_wrong_direction();
	case M_ZERO_LEN: return mode_zero_len();
	case M_HEADER_ONLY: return mode_header_only();
	case M_REGS_AFTER_OK: return mode_regs_after_ok();
	case M_RESUBMIT: return mode_resubmit();
	case M_REWRITE: return mode_rewrite();
	case M_NOTIFY_IDX: return mode_notify_idx();
	case M_BEFORE_OK: return mode_before_ok();
	case M_BAD_SIZE: return mode_bad_size();
	case M_BAD_RING: return mode_bad_ring();
	case M_UNREAPED: return mode_unreaped(0);
	case M_UNREAPED | 0x100: return mode_unreaped(1);
	case M_GET_ID_SHORT: return mode_get_id_short();
	case M_DURABLE: return mode_durable();
	default: return 0xeff;
	}
}
