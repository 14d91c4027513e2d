/* virtio-blk benchmark guest (bench/bench_virtio_blk.c), at CPL 3. Protocol and command
 * block: bench_virtio.h. Device at BV_DEV_BASE.
 *
 * A pass keeps cmd.qd requests in flight until cmd.nreq completed: request k goes to
 * bv_blk_offset(cmd, k), and each completion immediately reuses its slot for the next
 * request. Slot s owns descriptors 3s (header), 3s + 1 (cmd.req_bytes of data at
 * bufs + s * req_bytes), 3s + 2 (status), built once per pass, so resubmitting is one
 * avail-ring entry. The avail index is published after each batch of completions and
 * the device is notified only when it asked (bench_ring.h), so the number of exits per
 * request is what the notification suppression makes it. FLUSH is negotiated (else
 * every write would be write-through) but never sent: data stays in the page cache,
 * as with the host's own pwrite. */
#include "bench_ring.h"
#include "bench_virtio.h"

#define T_IN 0
#define T_OUT 1
#define F_FLUSH (1ull << 9)
#define S_UNTOUCHED 0xaa

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

struct bv_blk_cmd cmd;
struct bv_blk_out out;

static uint8_t bufs[BV_BLK_BUF_BYTES] __attribute__((aligned(4096)));
static uint8_t ring[VIO_RING_BYTES(BV_BLK_QSIZE)] __attribute__((aligned(4096)));
static struct hdr hdrs[BV_BLK_MAX_QD];
static volatile uint8_t status[BV_BLK_MAX_QD];
static struct vio_dev dev;
static struct bring r;

static int setup(uint32_t event_idx)
{
	uint64_t want = F_FLUSH | (event_idx ? VIO_F_EVENT_IDX : 0);
	if (vio_init(&dev, BV_DEV_BASE, 2, want) != 0)
		return 0xe0;
	if ((dev.features & want) != want)
		return 0xe1;
	if (vio_queue_setup(&dev, 0, BV_BLK_QSIZE, ring) != 0)
		return 0xe2;
	vio_driver_ok(&dev);
	if (!(vio_status(&dev) & VIO_S_DRIVER_OK))
		return 0xe3;
	bring_init(&r, &dev, 0);
	return 0;
}

static void build_slots(void)
{
	volatile struct vio_desc *d = r.q->desc;
	uint16_t data_flags = (uint16_t)(VIO_DESC_F_NEXT | (cmd.op == BV_BLK_READ ? VIO_DESC_F_WRITE : 0));
	for (uint32_t s = 0; s < cmd.qd; s++) {
		uint16_t h = (uint16_t)(3 * s);
		d[h] = (struct vio_desc){ (uint64_t)(uintptr_t)&hdrs[s], sizeof hdrs[s], VIO_DESC_F_NEXT, (uint16_t)(h + 1) };
		d[h + 1] = (struct vio_desc){ (uint64_t)(uintptr_t)(bufs + (uint64_t)s * cmd.req_bytes), cmd.req_bytes,
					      data_flags, (uint16_t)(h + 2) };
		d[h + 2] = (struct vio_desc){ (uint64_t)(uintptr_t)&status[s], 1, VIO_DESC_F_WRITE, 0 };
	}
}

static void submit(uint32_t s, uint64_t k)
{
	hdrs[s].type = cmd.op == BV_BLK_WRITE ? T_OUT : T_IN;
	hdrs[s].reserved = 0;
	hdrs[s].sector = bv_blk_offset(&cmd, k) / 512;
	status[s] = S_UNTOUCHED;
	bring_add(&r, (uint16_t)(3 * s));
}

static uint16_t irq_ahead(uint32_t inflight)
{
	return cmd.irq == BV_IRQ_DELAYED && inflight ? (uint16_t)(inflight * 3 / 4) : 0;
}

static int pass(void)
{
	if ((cmd.op != BV_BLK_READ && cmd.op != BV_BLK_WRITE) || cmd.qd == 0 || cmd.qd > BV_BLK_MAX_QD ||
	    cmd.req_bytes == 0 || cmd.req_bytes % 512 || (uint64_t)cmd.qd * cmd.req_bytes > BV_BLK_BUF_BYTES ||
	    cmd.span_bytes < cmd.req_bytes)
		return 0xe4;
	build_slots();
	uint64_t sub = 0, done = 0, errors = 0, kicks0 = r.kicks;
	uint32_t inflight = 0;
	for (uint32_t s = 0; s < cmd.qd && sub < cmd.nreq; s++, inflight++)
		submit(s, sub++);
	bring_want_irq(&r, irq_ahead(inflight));
	bring_publish(&r);
	while (done < cmd.nreq) {
		uint32_t id, len;
		int got = 0;
		while (bring_used(&r, &id, &len)) {
			uint32_t s = id / 3;
			if (id % 3 || s >= cmd.qd)
				return 0xe5;
			errors += status[s] != 0;
			done++;
			inflight--;
			got = 1;
			if (sub < cmd.nreq) {
				submit(s, sub++);
				inflight++;
			}
		}
		if (got) {
			bring_want_irq(&r, irq_ahead(inflight));
			bring_publish(&r);
		} else {
			cpu_relax();
		}
	}
	out.done = done;
	out.errors = errors;
	out.kicks = r.kicks - kicks0;
	return 0;
}

int guest_main(uint64_t arg)
{
	(void)arg;
	int cur = -1;
	for (;;) {
		report(BV_READY);
		if (cmd.op == BV_QUIT)
			return 0;
		if ((int)cmd.event_idx != cur) {
			int e = setup(cmd.event_idx);
			if (e)
				return e;
			cur = (int)cmd.event_idx;
		}
		int e = pass();
		if (e)
			return e;
	}
}
